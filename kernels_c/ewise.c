/* Elementwise kernels over compact data: binary, scalar and unary math and two fused pairs
 * (a row repeated along an array is in ewise_row.c). Kernel layer (kernels_c); ABI in
 * nd_kernels.h. Written out one function per op on purpose (no macro-generated C), each a single
 * loop the compiler vectorizes. out may alias an input. */
#include <math.h>

#include "nd_kernels.h"

/* Below these sizes waking a second thread costs more than it saves. Each kernel keeps a serial
 * branch outside OpenMP: a region with if(false) still costs microseconds per call. */
#define ND_GRAIN_CHEAP 65536
#define ND_GRAIN_MATH 8192

static int check_args(int64_t size, const void *a, const void *b, const void *out)
{
    if (size < 0) return ND_ERR_SIZE;
    if (size > 0 && (!a || !b || !out)) return ND_ERR_NULL;
    return ND_OK;
}

int nd_ewise_add_f32(const float *a, const float *b, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] + b[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] + b[i];
    }
    return ND_OK;
}

int nd_ewise_mul_f32(const float *a, const float *b, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] * b[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] * b[i];
    }
    return ND_OK;
}

int nd_ewise_div_f32(const float *a, const float *b, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] / b[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] / b[i];
    }
    return ND_OK;
}

int nd_ewise_maximum_f32(const float *a, const float *b, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = (a[i] > b[i] || a[i] != a[i]) ? a[i] : b[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = (a[i] > b[i] || a[i] != a[i]) ? a[i] : b[i];
    }
    return ND_OK;
}

int nd_ewise_eq_f32(const float *a, const float *b, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] == b[i] ? 1.0f : 0.0f;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] == b[i] ? 1.0f : 0.0f;
    }
    return ND_OK;
}

int nd_ewise_ge_f32(const float *a, const float *b, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] >= b[i] ? 1.0f : 0.0f;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] >= b[i] ? 1.0f : 0.0f;
    }
    return ND_OK;
}

int nd_ewise_gt_f32(const float *a, const float *b, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] > b[i] ? 1.0f : 0.0f;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] > b[i] ? 1.0f : 0.0f;
    }
    return ND_OK;
}

int nd_scalar_add_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] + value;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] + value;
    }
    return ND_OK;
}

int nd_scalar_mul_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] * value;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] * value;
    }
    return ND_OK;
}

int nd_scalar_div_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] / value;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] / value;
    }
    return ND_OK;
}

int nd_scalar_maximum_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = (a[i] > value || a[i] != a[i]) ? a[i] : value;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = (a[i] > value || a[i] != a[i]) ? a[i] : value;
    }
    return ND_OK;
}

int nd_scalar_eq_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] == value ? 1.0f : 0.0f;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] == value ? 1.0f : 0.0f;
    }
    return ND_OK;
}

int nd_scalar_ge_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] >= value ? 1.0f : 0.0f;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] >= value ? 1.0f : 0.0f;
    }
    return ND_OK;
}

int nd_scalar_gt_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] > value ? 1.0f : 0.0f;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] > value ? 1.0f : 0.0f;
    }
    return ND_OK;
}

int nd_scalar_power_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_MATH);
    if (value == 2.0f) { /* the common square: exact and far cheaper than powf */
#pragma omp parallel for simd num_threads(threads) if (threads > 1)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] * a[i];
        return ND_OK;
    }
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < size; i++) out[i] = powf(a[i], value);
    return ND_OK;
}

int nd_scalar_rdiv_f32(const float *a, float value, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = value / a[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = value / a[i];
    }
    return ND_OK;
}

int nd_ewise_neg_f32(const float *a, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = -a[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = -a[i];
    }
    return ND_OK;
}

int nd_ewise_log_f32(const float *a, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_MATH);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < size; i++) out[i] = logf(a[i]);
    return ND_OK;
}

int nd_ewise_exp_f32(const float *a, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_MATH);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < size; i++) out[i] = expf(a[i]);
    return ND_OK;
}

int nd_ewise_tanh_f32(const float *a, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_MATH);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < size; i++) out[i] = tanhf(a[i]);
    return ND_OK;
}

int nd_ewise_relu_f32(const float *a, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = (a[i] > 0.0f || a[i] != a[i]) ? a[i] : 0.0f;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = (a[i] > 0.0f || a[i] != a[i]) ? a[i] : 0.0f;
    }
    return ND_OK;
}

int nd_ewise_sigmoid_f32(const float *a, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_MATH);
    /* Split by sign so that expf never overflows. */
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < size; i++) {
        float x = a[i], e = expf(-fabsf(x));
        out[i] = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
    return ND_OK;
}

int nd_ewise_sqrt_f32(const float *a, float *out, int64_t size)
{
    int status = check_args(size, a, a, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = sqrtf(a[i]);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = sqrtf(a[i]);
    }
    return ND_OK;
}

/* The ReLU gradient, one pass instead of a mask and a product: out = 0 where x <= 0, NaN g
 * included, else g (a NaN x passes g on, so a NaN's gradient stays traceable), as in PyTorch. */
int nd_ewise_relu_grad_f32(const float *g, const float *x, float *out, int64_t size)
{
    int status = check_args(size, g, x, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = x[i] <= 0.0f ? 0.0f : g[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = x[i] <= 0.0f ? 0.0f : g[i];
    }
    return ND_OK;
}

/* out = a + value * b, the update of SGD, momentum and weight decay in one pass (contracted to a
 * fused multiply-add where the CPU has one). */
int nd_ewise_axpby_f32(const float *a, const float *b, float alpha, float beta, float *out,
                       int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = alpha * a[i] + beta * b[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = alpha * a[i] + beta * b[i];
    }
    return ND_OK;
}

int nd_ewise_add_scaled_f32(const float *a, const float *b, float value, float *out, int64_t size)
{
    int status = check_args(size, a, b, out);
    if (status != ND_OK) return status;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = a[i] + value * b[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = a[i] + value * b[i];
    }
    return ND_OK;
}
