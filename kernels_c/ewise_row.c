/* A row repeated along compact data (a broadcast bias or scale): out[i] = a[i] OP row[i % period],
 * read as stored instead of copied out first. Kernel layer (kernels_c); ABI in nd_kernels.h. One
 * function per op, like ewise.c. out may alias a. */
#include <string.h>

#include "nd_kernels.h"

/* Below this size waking a second thread costs more than it saves (ewise.c's cheap-op grain). */
#define ND_GRAIN_CHEAP 65536

/* a (size) against a row (period) repeated along it: size must be a whole number of rows. */
static int check_row_args(int64_t size, int64_t period, const void *a, const void *row,
                          const void *out)
{
    if (size < 0 || (size > 0 && (period < 1 || size % period != 0))) return ND_ERR_SIZE;
    if (size > 0 && (!a || !row || !out)) return ND_ERR_NULL;
    return ND_OK;
}

/* A row shorter than a few vectors would leave the inner loop mostly remainder (a 10-class bias
 * ran 1.7x slower than ewise_add), so it is first repeated into `tile` (at most ND_ROW_TILE
 * elements, whole copies only, no more than size holds). Returns the pattern the row kernels step
 * along a in blocks of *block elements (a whole number of rows). */
#define ND_ROW_TILE 512
#define ND_ROW_SHORT 64
static const float *row_pattern(const float *row, int64_t period, int64_t size, float *tile,
                                int64_t *block)
{
    *block = period;
    if (period >= ND_ROW_SHORT) return row;
    int64_t copies = ND_ROW_TILE / period;
    if (copies > size / period) copies = size / period;
    *block = copies * period;
    memcpy(tile, row, (size_t)period * sizeof(float));
    for (int64_t filled = period; filled < *block; filled *= 2) /* doubling: a few memcpy calls */
        memcpy(tile + filled, tile, (size_t)(filled < *block - filled ? filled : *block - filled)
               * sizeof(float));
    return tile;
}

/* A broadcast bias: out[i] = a[i] + row[i % period], block by block so the inner loop vectorizes
 * (the last block may be shorter: still whole rows). */
int nd_ewise_add_row_f32(const float *a, const float *row, float *out, int64_t size,
                         int64_t period)
{
    int status = check_row_args(size, period, a, row, out);
    if (status != ND_OK || size == 0) return status;
    float tile[ND_ROW_TILE];
    int64_t block;
    const float *pattern = row_pattern(row, period, size, tile, &block);
    const int64_t blocks = (size + block - 1) / block;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for num_threads(threads)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t start = b * block, n = size - start < block ? size - start : block;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) out[start + j] = a[start + j] + pattern[j];
        }
    } else {
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t start = b * block, n = size - start < block ? size - start : block;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) out[start + j] = a[start + j] + pattern[j];
        }
    }
    return ND_OK;
}

/* A broadcast scale: out[i] = a[i] * row[i % period], as nd_ewise_add_row_f32. */
int nd_ewise_mul_row_f32(const float *a, const float *row, float *out, int64_t size,
                         int64_t period)
{
    int status = check_row_args(size, period, a, row, out);
    if (status != ND_OK || size == 0) return status;
    float tile[ND_ROW_TILE];
    int64_t block;
    const float *pattern = row_pattern(row, period, size, tile, &block);
    const int64_t blocks = (size + block - 1) / block;
    int threads = nd_threads_for(size, ND_GRAIN_CHEAP);
    if (threads > 1) {
#pragma omp parallel for num_threads(threads)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t start = b * block, n = size - start < block ? size - start : block;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) out[start + j] = a[start + j] * pattern[j];
        }
    } else {
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t start = b * block, n = size - start < block ? size - start : block;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) out[start + j] = a[start + j] * pattern[j];
        }
    }
    return ND_OK;
}
