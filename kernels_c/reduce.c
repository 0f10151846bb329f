/* Reductions over the last axis of compact data: sum, max and logsumexp.
 * Kernel layer (kernels_c); ABI in nd_kernels.h. The sum keeps 32 partial sums in two vectors
 * (a fixed, reproducible reassociation, like numpy's pairwise sum); no -ffast-math anywhere. */
#include <math.h>
#include <string.h>

#include "nd_kernels.h"

#define ND_GRAIN 32768
#define ND_SUM_BLOCK 4096

typedef float v16 __attribute__((vector_size(64)));

static float sum_contiguous(const float *a, int64_t n)
{
    v16 acc0 = {0}, acc1 = {0};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        v16 x0, x1;
        memcpy(&x0, a + i, sizeof x0); /* unaligned vector loads */
        memcpy(&x1, a + i + 16, sizeof x1);
        acc0 += x0;
        acc1 += x1;
    }
    acc0 += acc1;
    float total = 0.0f;
    for (int j = 0; j < 16; j++) total += acc0[j];
    for (; i < n; i++) total += a[i];
    return total;
}

static float max_contiguous(const float *a, int64_t n)
{
    float m = a[0];
    for (int64_t i = 1; i < n; i++) m = (a[i] > m || a[i] != a[i]) ? a[i] : m;
    return m;
}

/* log(sum exp(a)) shifted by the finite maximum. An infinite or NaN maximum shifts by 0, and the
 * sum itself then gives inf (an inf element), 0 (all -inf: log gives -inf) or NaN (a NaN). */
static float logsumexp_contiguous(const float *a, int64_t n)
{
    if (n == 0) return -INFINITY;
    float peak = max_contiguous(a, n);
    float shift = isfinite(peak) ? peak : 0.0f;
    /* A double sum: expf does not vectorize here (no vector expf without -ffast-math), so a float
     * sum would be sequential and lose digits on long rows; the double costs nothing beside expf. */
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += expf(a[i] - shift);
    return logf((float)total) + shift;
}

int nd_reduce_sum_f32(const float *a, float *out, int64_t reduce_size, int64_t out_size)
{
    if (reduce_size < 0 || out_size < 0) return ND_ERR_SIZE;
    if (out_size == 0) return ND_OK;
    if (!out || (reduce_size > 0 && !a)) return ND_ERR_NULL;
    int threads = nd_threads_for(reduce_size * out_size, ND_GRAIN);
    if (threads == 1) {
        /* No OpenMP region at all: even a serial one costs microseconds per call. */
        for (int64_t i = 0; i < out_size; i++) out[i] = sum_contiguous(a + i * reduce_size, reduce_size);
        return ND_OK;
    }
    if (out_size >= threads) {
#pragma omp parallel for num_threads(threads)
        for (int64_t i = 0; i < out_size; i++) out[i] = sum_contiguous(a + i * reduce_size, reduce_size);
        return ND_OK;
    }
    /* Few long rows: split each row into fixed blocks so the result does not depend on threads. */
    for (int64_t i = 0; i < out_size; i++) {
        const float *row = a + i * reduce_size;
        int64_t blocks = (reduce_size + ND_SUM_BLOCK - 1) / ND_SUM_BLOCK;
        double total = 0.0;
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t start = b * ND_SUM_BLOCK;
            int64_t len = reduce_size - start < ND_SUM_BLOCK ? reduce_size - start : ND_SUM_BLOCK;
            total += sum_contiguous(row + start, len);
        }
        out[i] = (float)total;
    }
    return ND_OK;
}

int nd_reduce_max_f32(const float *a, float *out, int64_t reduce_size, int64_t out_size)
{
    if (reduce_size < 0 || out_size < 0) return ND_ERR_SIZE;
    if (out_size == 0) return ND_OK;
    if (reduce_size == 0) return ND_ERR_SIZE; /* max of nothing is undefined */
    if (!a || !out) return ND_ERR_NULL;
    int threads = nd_threads_for(reduce_size * out_size, ND_GRAIN);
    if (threads > out_size) threads = (int)out_size;
    if (threads == 1) {
        for (int64_t i = 0; i < out_size; i++) out[i] = max_contiguous(a + i * reduce_size, reduce_size);
        return ND_OK;
    }
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < out_size; i++) out[i] = max_contiguous(a + i * reduce_size, reduce_size);
    return ND_OK;
}

int nd_reduce_logsumexp_f32(const float *a, float *out, int64_t reduce_size, int64_t out_size)
{
    if (reduce_size < 0 || out_size < 0) return ND_ERR_SIZE;
    if (out_size == 0) return ND_OK;
    if (!out || (reduce_size > 0 && !a)) return ND_ERR_NULL;
    int threads = nd_threads_for(reduce_size * out_size, ND_GRAIN / 8); /* exp: more work each */
    if (threads > out_size) threads = (int)out_size;
    if (threads == 1) {
        for (int64_t i = 0; i < out_size; i++)
            out[i] = logsumexp_contiguous(a + i * reduce_size, reduce_size);
        return ND_OK;
    }
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < out_size; i++)
        out[i] = logsumexp_contiguous(a + i * reduce_size, reduce_size);
    return ND_OK;
}
