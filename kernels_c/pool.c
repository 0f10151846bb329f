/* Max pooling over NHWC float32 activations and its gradient (the protocol's max_pool2d pair).
 * Kernel layer (kernels_c); ABI in nd_kernels.h, shared pieces in pool_parts.h. Loops keep the
 * contiguous channel axis innermost, so every window tap is one vector operation over c; every
 * output element has one writer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pool_parts.h"

#define ND_POOL_CHANNEL_BLOCK 64 /* channels whose tie counts live on the stack together */

/* m = max(m, v) per channel, NaN winning: (v > m) is false for a NaN on either side, so a NaN v
 * is taken explicitly and a NaN m is kept because nothing compares greater than it. */
static inline void take_max(float *restrict m, const float *restrict v, int64_t c)
{
    for (int64_t ch = 0; ch < c; ch++) m[ch] = ((v[ch] > m[ch]) | (v[ch] != v[ch])) ? v[ch] : m[ch];
}

/* Output rows (b, oy) in [begin, end): every window starts at -inf, which padding never beats. */
static void forward_rows(const pool_args *a, int64_t begin, int64_t end)
{
    const pool_shape s = a->s;
    for (int64_t row = begin; row < end; row++) {
        const int64_t b = row / s.oh, top = (row % s.oh) * s.sh - s.ph;
        const int64_t r0 = clamp64(top, 0, s.h), r1 = clamp64(top + s.kh, 0, s.h);
        const float *image = a->x + b * s.h * s.w * s.c;
        float *o = a->dst + row * s.ow * s.c;
        for (int64_t ox = 0; ox < s.ow; ox++, o += s.c) {
            const int64_t left = ox * s.sw - s.pw;
            const int64_t c0 = clamp64(left, 0, s.w), c1 = clamp64(left + s.kw, 0, s.w);
            for (int64_t ch = 0; ch < s.c; ch++) o[ch] = -INFINITY;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t col = c0; col < c1; col++)
                    take_max(o, image + (r * s.w + col) * s.c, s.c);
        }
    }
}

/* What one window sends, for channels [0, cb) of its peak / g pointers: share = g / ties to each
 * element equal to the peak, miss to the others (0, or NaN for all when none equals the peak). */
static void window_shares(const float *image, const float *peak, const float *g, int64_t rows0,
                          int64_t rows1, int64_t cols0, int64_t cols1, const pool_shape *s,
                          int64_t cb, float *restrict share, float *restrict miss)
{
    for (int64_t ch = 0; ch < cb; ch++) share[ch] = 0.0f;
    for (int64_t r = rows0; r < rows1; r++)
        for (int64_t col = cols0; col < cols1; col++) {
            const float *v = image + (r * s->w + col) * s->c;
            for (int64_t ch = 0; ch < cb; ch++) share[ch] += (float)(v[ch] == peak[ch]);
        }
    for (int64_t ch = 0; ch < cb; ch++) {
        const float ties = share[ch];
        miss[ch] = ties > 0.0f ? 0.0f : NAN;
        share[ch] = ties > 0.0f ? g[ch] / ties : NAN;
    }
}

/* Windows that never overlap (stride >= kernel), one window row (b, oy) per task: the task owns
 * input rows from its window's top to the next window row's top (the last: to the bottom), so it
 * writes every gx element there once, zeros where no window reaches. `0.0f +` matches the spec's
 * sum from zero (it turns a -0 share into +0). */
static void backward_disjoint_rows(const pool_args *a, int64_t begin, int64_t end)
{
    const pool_shape s = a->s;
    const int64_t row_floats = s.w * s.c;
    float share[ND_POOL_CHANNEL_BLOCK], miss[ND_POOL_CHANNEL_BLOCK];
    for (int64_t row = begin; row < end; row++) {
        const int64_t b = row / s.oh, oy = row % s.oh, top = oy * s.sh - s.ph;
        const int64_t r0 = clamp64(top, 0, s.h), r1 = clamp64(top + s.kh, 0, s.h);
        const int64_t next = oy + 1 == s.oh ? s.h : clamp64(top + s.sh, 0, s.h);
        const float *image = a->x + b * s.h * row_floats;
        float *grad = a->dst + b * s.h * row_floats;
        for (int64_t r = r1; r < next; r++)
            memset(grad + r * row_floats, 0, (size_t)row_floats * sizeof(float));
        for (int64_t ox = 0; ox < s.ow; ox++) {
            const int64_t left = ox * s.sw - s.pw;
            const int64_t c0 = clamp64(left, 0, s.w), c1 = clamp64(left + s.kw, 0, s.w);
            const int64_t gap_end = ox + 1 == s.ow ? s.w : clamp64(left + s.sw, 0, s.w);
            if (c1 < gap_end)
                for (int64_t r = r0; r < r1; r++)
                    memset(grad + (r * s.w + c1) * s.c, 0,
                           (size_t)((gap_end - c1) * s.c) * sizeof(float));
            const int64_t at = (row * s.ow + ox) * s.c;
            for (int64_t ch0 = 0; ch0 < s.c; ch0 += ND_POOL_CHANNEL_BLOCK) {
                const int64_t cb = s.c - ch0 < ND_POOL_CHANNEL_BLOCK ? s.c - ch0
                                                                     : ND_POOL_CHANNEL_BLOCK;
                const float *peak = a->out + at + ch0;
                window_shares(image + ch0, peak, a->gy + at + ch0, r0, r1, c0, c1, &s, cb, share,
                              miss);
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t col = c0; col < c1; col++) {
                        const int64_t pixel = (r * s.w + col) * s.c + ch0;
                        const float *v = image + pixel;
                        float *d = grad + pixel;
                        for (int64_t ch = 0; ch < cb; ch++)
                            d[ch] = 0.0f + (v[ch] == peak[ch] ? share[ch] : miss[ch]);
                    }
            }
        }
    }
}

/* Overlapping windows, pass 1, per window row (b, oy): each window's share and miss. */
static void shares_rows(const pool_args *a, int64_t begin, int64_t end)
{
    const pool_shape s = a->s;
    for (int64_t row = begin; row < end; row++) {
        const int64_t b = row / s.oh, top = (row % s.oh) * s.sh - s.ph;
        const int64_t r0 = clamp64(top, 0, s.h), r1 = clamp64(top + s.kh, 0, s.h);
        const float *image = a->x + b * s.h * s.w * s.c;
        for (int64_t ox = 0; ox < s.ow; ox++) {
            const int64_t left = ox * s.sw - s.pw;
            const int64_t c0 = clamp64(left, 0, s.w), c1 = clamp64(left + s.kw, 0, s.w);
            const int64_t at = (row * s.ow + ox) * s.c;
            window_shares(image, a->out + at, a->gy + at, r0, r1, c0, c1, &s, s.c,
                          a->share_out + at, a->miss_out + at);
        }
    }
}

/* Overlapping windows, pass 2, per input row (b, iy): each gx element gathers what its windows
 * send, taps in the spec's order (r, then s, ascending) from 0, so the sum is the spec's to the
 * bit whatever the thread count. */
static void gather_rows(const pool_args *a, int64_t begin, int64_t end)
{
    const pool_shape s = a->s;
    for (int64_t row = begin; row < end; row++) {
        const int64_t b = row / s.h, iy = row % s.h;
        for (int64_t ix = 0; ix < s.w; ix++) {
            const int64_t pixel = (row * s.w + ix) * s.c;
            const float *restrict v = a->x + pixel;
            float *restrict d = a->dst + pixel;
            for (int64_t ch = 0; ch < s.c; ch++) d[ch] = 0.0f;
            for (int64_t r = 0; r < s.kh; r++) {
                const int64_t py = iy + s.ph - r;
                if (py < 0) break;
                if (py % s.sh || py / s.sh >= s.oh) continue;
                for (int64_t t = 0; t < s.kw; t++) {
                    const int64_t px = ix + s.pw - t;
                    if (px < 0) break;
                    if (px % s.sw || px / s.sw >= s.ow) continue;
                    const int64_t at = ((b * s.oh + py / s.sh) * s.ow + px / s.sw) * s.c;
                    const float *restrict peak = a->out + at, *restrict share = a->share + at;
                    const float *restrict miss = a->miss + at;
                    for (int64_t ch = 0; ch < s.c; ch++)
                        d[ch] += v[ch] == peak[ch] ? share[ch] : miss[ch];
                }
            }
        }
    }
}

int nd_max_pool2d_forward_f32(const float *x, float *out, int64_t n, int64_t h, int64_t w_,
                              int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                              int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w)
{
    const pool_shape s = {n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w};
    return pool_forward(forward_rows, x, out, s);
}

int nd_max_pool2d_backward_f32(const float *x, const float *out, const float *gy, float *gx,
                               int64_t n, int64_t h, int64_t w_, int64_t c, int64_t kh,
                               int64_t kw, int64_t oh, int64_t ow, int64_t stride_h,
                               int64_t stride_w, int64_t pad_h, int64_t pad_w)
{
    pool_args a = {.x = x, .out = out, .gy = gy, .dst = gx,
                   .s = {n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w}};
    const int status = pool_check_shape(&a.s);
    if (status) return status;
    if (n * h * w_ * c == 0) return ND_OK;
    if (!x || !out || !gy || !gx) return ND_ERR_NULL;
    const int64_t windows = n * oh * ow * c;
    const int threads = nd_threads_for(windows * kh * kw, ND_POOL_GRAIN);
    if (stride_h >= kh && stride_w >= kw) {
        pool_run_rows(backward_disjoint_rows, &a, n * oh, threads);
        return ND_OK;
    }
    float *scratch = malloc((size_t)(2 * windows) * sizeof(float));
    if (!scratch) return ND_ERR_NOMEM;
    a.share_out = scratch;
    a.miss_out = scratch + windows;
    a.share = a.share_out;
    a.miss = a.miss_out;
    pool_run_rows(shares_rows, &a, n * oh, threads);
    pool_run_rows(gather_rows, &a, n * h, threads);
    free(scratch);
    return ND_OK;
}
