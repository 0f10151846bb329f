/* The protocol's batched strided matmul on top of nd_sgemm_f32, and its naive twin.
 * Kernel layer (kernels_c); ABI in nd_kernels.h. Operand views are bounds-checked against their
 * buffers before anything is read. */
#include <stddef.h>

#include "nd_kernels.h"

#define ND_SMALL_MATRIX_WORK (1 << 21) /* multiply-adds under which threads split the batch */
#define ND_GATE_GRAIN 65536           /* gated elements per thread, at least */
#define ND_DROPOUT_LIMIT (INT64_C(1) << 32)   /* dropout's element indices and seeds */
#define ND_THRESHOLD_LIMIT (INT64_C(1) << 24) /* dropout's largest threshold */

/* ND_OK when every element offset + sum_d i_d * strides[d] (i_d < sizes[d]) lies in [0, len). */
static int check_extent(int64_t len, int64_t offset, int rank, const int64_t *sizes,
                        const int64_t *strides)
{
    int64_t lo = offset, hi = offset;
    for (int d = 0; d < rank; d++) {
        if (sizes[d] == 0) return ND_OK;
        int64_t extent;
        if (__builtin_mul_overflow(sizes[d] - 1, strides[d], &extent)) return ND_ERR_BOUNDS;
        if (extent < 0 ? __builtin_add_overflow(lo, extent, &lo)
                       : __builtin_add_overflow(hi, extent, &hi))
            return ND_ERR_BOUNDS;
    }
    return (lo < 0 || hi >= len) ? ND_ERR_BOUNDS : ND_OK;
}

static int check_matmul(int64_t a_len, int64_t b_len, int64_t out_len, int64_t batch, int64_t m,
                        int64_t k, int64_t n, int64_t a_offset, int64_t a_bs, int64_t a_rs,
                        int64_t a_cs, int64_t b_offset, int64_t b_bs, int64_t b_rs, int64_t b_cs)
{
    if (batch < 0 || m < 0 || k < 0 || n < 0) return ND_ERR_SIZE;
    int64_t out_size;
    if (__builtin_mul_overflow(batch * m, n, &out_size) || out_size > out_len) return ND_ERR_BOUNDS;
    if (out_size == 0 || k == 0) return ND_OK;
    const int64_t a_sizes[3] = {batch, m, k}, a_strides[3] = {a_bs, a_rs, a_cs};
    const int64_t b_sizes[3] = {batch, k, n}, b_strides[3] = {b_bs, b_rs, b_cs};
    int status = check_extent(a_len, a_offset, 3, a_sizes, a_strides);
    return status != ND_OK ? status : check_extent(b_len, b_offset, 3, b_sizes, b_strides);
}

/* Zero the elements of out whose gate is <= 0 (ReLU's gradient: a NaN gate passes them on). */
static void apply_gate(float *out, const float *gate, int64_t size, int threads)
{
    if (threads > 1 && size >= ND_GATE_GRAIN * 2) {
        int use = (int)(size / ND_GATE_GRAIN < threads ? size / ND_GATE_GRAIN : threads);
#pragma omp parallel for simd num_threads(use)
        for (int64_t i = 0; i < size; i++) out[i] = gate[i] <= 0.0f ? 0.0f : out[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = gate[i] <= 0.0f ? 0.0f : out[i];
    }
}

/* ReLU as nd_ewise_relu_f32 computes it (a NaN stays NaN). */
static inline float relu(float v) { return (v > 0.0f || v != v) ? v : 0.0f; }

static void apply_relu(float *out, int64_t size, int threads)
{
    if (threads > 1 && size >= ND_GATE_GRAIN * 2) {
        int use = (int)(size / ND_GATE_GRAIN < threads ? size / ND_GATE_GRAIN : threads);
#pragma omp parallel for simd num_threads(use)
        for (int64_t i = 0; i < size; i++) out[i] = relu(out[i]);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = relu(out[i]);
    }
}

/* out[r, j] += bias[j] over rows r of n columns, the sum ewise_add_row computes. */
static void apply_bias(float *out, const float *bias, int64_t rows, int64_t n, int threads)
{
    if (threads > 1 && rows * n >= ND_GATE_GRAIN * 2) {
        int use = (int)(rows * n / ND_GATE_GRAIN < threads ? rows * n / ND_GATE_GRAIN : threads);
#pragma omp parallel for num_threads(use)
        for (int64_t r = 0; r < rows; r++) {
            float *line = out + r * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) line[j] = line[j] + bias[j];
        }
    } else {
        for (int64_t r = 0; r < rows; r++) {
            float *line = out + r * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) line[j] = line[j] + bias[j];
        }
    }
}

/* The epilogues asked for, in order, on the item starting `first` elements into out: the bias
 * row, dropout (sz[18] 1; its mask indexed over the whole output), the gate, ReLU (sz[16] 1). */
static void finish(float *out, int64_t first, const float *gate, const float *bias, float scale,
                   const int64_t *sz, int64_t rows, int64_t n, int threads)
{
    float *item = out + first;
    if (bias) apply_bias(item, bias, rows, n, threads);
    if (sz[18])
        nd_dropout_range_f32(out, out, first, first + rows * n, (uint32_t)sz[19], scale,
                             (uint32_t)sz[20]);
    if (gate) apply_gate(item, gate + first, rows * n, threads);
    if (sz[16]) apply_relu(item, rows * n, threads);
}

static int matmul(const float *a, const float *b, float *out, const float *gate,
                  const float *bias, float scale, const int64_t *sz)
{
    const int64_t batch = sz[3], m = sz[4], k = sz[5], n = sz[6];
    const int64_t a_offset = sz[7], a_bs = sz[8], a_rs = sz[9], a_cs = sz[10];
    const int64_t b_offset = sz[11], b_bs = sz[12], b_rs = sz[13], b_cs = sz[14];
    int status = check_matmul(sz[0], sz[1], sz[2], batch, m, k, n, a_offset, a_bs, a_rs, a_cs,
                              b_offset, b_bs, b_rs, b_cs);
    if (status != ND_OK) return status;
    const int64_t item = m * n; /* no overflow: check_matmul bounded batch * m * n */
    if (gate && batch * item > sz[15]) return ND_ERR_BOUNDS;
    if (bias && n > sz[17]) return ND_ERR_BOUNDS;
    if (sz[18] && (batch * item > ND_DROPOUT_LIMIT || sz[19] < 0 || sz[19] > ND_THRESHOLD_LIMIT
                   || sz[20] < 0 || sz[20] >= ND_DROPOUT_LIMIT))
        return ND_ERR_SIZE;
    const int threads = nd_get_num_threads();
    if (batch >= threads && threads > 1 && m * n * k < ND_SMALL_MATRIX_WORK) {
        int failed = ND_OK;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : failed)
        for (int64_t t = 0; t < batch; t++) {
            int item_status = nd_sgemm_f32(a + a_offset + t * a_bs, b + b_offset + t * b_bs,
                                           out + t * item, m, n, k, a_rs, a_cs, b_rs, b_cs, n, 0,
                                           1);
            if (item_status == ND_OK) finish(out, t * item, gate, bias, scale, sz, m, n, 1);
            failed |= item_status;
        }
        return failed;
    }
    for (int64_t t = 0; t < batch; t++) {
        status = nd_sgemm_f32(a + a_offset + t * a_bs, b + b_offset + t * b_bs, out + t * item,
                              m, n, k, a_rs, a_cs, b_rs, b_cs, n, 0, threads);
        if (status != ND_OK) return status;
        finish(out, t * item, gate, bias, scale, sz, m, n, threads);
    }
    return ND_OK;
}

int nd_matmul_f32(const float *a, const float *b, float *out, int64_t a_len, int64_t b_len,
                  int64_t out_len, int64_t batch, int64_t m, int64_t k, int64_t n,
                  int64_t a_offset, int64_t a_bs, int64_t a_rs, int64_t a_cs,
                  int64_t b_offset, int64_t b_bs, int64_t b_rs, int64_t b_cs)
{
    const int64_t sizes[21] = {a_len, b_len, out_len, batch, m, k, n, a_offset, a_bs, a_rs,
                               a_cs, b_offset, b_bs, b_rs, b_cs, 0, 0, 0, 0, 0, 0};
    return matmul(a, b, out, NULL, NULL, 1.0f, sizes);
}

int nd_matmul_sizes_f32(const float *a, const float *b, float *out, const float *gate,
                        const float *bias, float dropout_scale, const int64_t *sizes)
{
    if (!sizes) return ND_ERR_NULL;
    return matmul(a, b, out, gate, bias, dropout_scale, sizes);
}

int nd_matmul_naive_f32(const float *a, const float *b, float *out, int64_t a_len, int64_t b_len,
                        int64_t out_len, int64_t batch, int64_t m, int64_t k, int64_t n,
                        int64_t a_offset, int64_t a_bs, int64_t a_rs, int64_t a_cs,
                        int64_t b_offset, int64_t b_bs, int64_t b_rs, int64_t b_cs)
{
    int status = check_matmul(a_len, b_len, out_len, batch, m, k, n, a_offset, a_bs, a_rs, a_cs,
                              b_offset, b_bs, b_rs, b_cs);
    if (status != ND_OK) return status;
    for (int64_t t = 0; t < batch; t++) {
        status = nd_sgemm_naive_f32(a + a_offset + t * a_bs, b + b_offset + t * b_bs,
                                    out + t * m * n, m, n, k, a_rs, a_cs, b_rs, b_cs, n, 0, 1);
        if (status != ND_OK) return status;
    }
    return ND_OK;
}
