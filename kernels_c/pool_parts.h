/* Private interface between pool.c (max pooling) and pool_avg.c (average pooling), not part of the
 * ABI in nd_kernels.h. Kernel layer (kernels_c): the size check, row split and argument block. */
#ifndef ND_POOL_PARTS_H
#define ND_POOL_PARTS_H

#include <stdint.h>

#include "nd_kernels.h"

#define ND_POOL_GRAIN 32768

typedef struct {
    int64_t n, h, w, c, kh, kw, oh, ow, sh, sw, ph, pw;
} pool_shape;

/* One block for every pooling pass; each pass reads the fields it needs (average pooling only x
 * or gy, and dst). */
typedef struct {
    const float *x, *out, *gy, *share, *miss;
    float *dst, *share_out, *miss_out;
    pool_shape s;
} pool_args;

typedef void (*pool_rows_fn)(const pool_args *a, int64_t begin, int64_t end);

/* ND_ERR_SIZE unless the sizes pass numpy_pool.check_pool_sizes. */
static inline int pool_check_shape(const pool_shape *s)
{
    if (s->n < 0 || s->h < 0 || s->w < 0 || s->c < 0 || s->oh < 0 || s->ow < 0) return ND_ERR_SIZE;
    if (s->kh < 1 || s->kw < 1 || s->sh < 1 || s->sw < 1 || s->ph < 0 || s->pw < 0)
        return ND_ERR_SIZE;
    if (2 * s->ph > s->kh || 2 * s->pw > s->kw) return ND_ERR_SIZE;
    const int64_t span_h = s->h + 2 * s->ph - s->kh, span_w = s->w + 2 * s->pw - s->kw;
    if (span_h < 0 || span_w < 0) return ND_ERR_SIZE;
    if (s->oh != span_h / s->sh + 1 || s->ow != span_w / s->sw + 1) return ND_ERR_SIZE;
    return ND_OK;
}

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Splits `rows` among `threads`; one thread runs on the caller, without an OpenMP region (even a
 * serial one costs microseconds). Each row's result never depends on the split. */
static inline void pool_run_rows(pool_rows_fn fn, const pool_args *a, int64_t rows, int threads)
{
    if (threads <= 1) {
        fn(a, 0, rows);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int64_t begin, end;
        nd_thread_rows(rows, &begin, &end);
        fn(a, begin, end);
    }
}

/* A pooling forward's entry: checks, then `fn` over the (image, output row) pairs, threads
 * sized by the window taps read. The max and average kernels differ only in `fn`. */
static inline int pool_forward(pool_rows_fn fn, const float *x, float *out, pool_shape s)
{
    const pool_args a = {.x = x, .dst = out, .s = s};
    const int status = pool_check_shape(&a.s);
    if (status) return status;
    if (s.n * s.oh * s.ow * s.c == 0) return ND_OK;
    if (!out || (s.h * s.w > 0 && !x)) return ND_ERR_NULL;
    const int64_t rows = s.n * s.oh;
    pool_run_rows(fn, &a, rows, nd_threads_for(rows * s.ow * s.c * s.kh * s.kw, ND_POOL_GRAIN));
    return ND_OK;
}

#endif
