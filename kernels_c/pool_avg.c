/* Average pooling over NHWC float32 activations and its gradient (the protocol's avg_pool2d
 * pair). Kernel layer (kernels_c); ABI in nd_kernels.h, shared pieces in pool_parts.h. Channels
 * stay innermost (one vector operation per window tap), every output element has one writer, and
 * sums run in the numpy spec's tap order, so results match it to the bit for any thread count. */
#include "pool_parts.h"

static inline void add_into(float *restrict acc, const float *restrict v, int64_t c)
{
    for (int64_t ch = 0; ch < c; ch++) acc[ch] += v[ch];
}

/* Output rows (b, oy) in [begin, end). Padded taps are skipped: the spec adds +0 for them, which
 * changes no sum that starts from +0. The sum is divided, not scaled by 1 / (kh * kw), as the
 * spec does. */
static void forward_rows(const pool_args *a, int64_t begin, int64_t end)
{
    const pool_shape s = a->s;
    const float taps = (float)(s.kh * s.kw);
    for (int64_t row = begin; row < end; row++) {
        const int64_t b = row / s.oh, top = (row % s.oh) * s.sh - s.ph;
        const int64_t r0 = clamp64(top, 0, s.h), r1 = clamp64(top + s.kh, 0, s.h);
        const float *image = a->x + b * s.h * s.w * s.c;
        float *o = a->dst + row * s.ow * s.c;
        for (int64_t ox = 0; ox < s.ow; ox++, o += s.c) {
            const int64_t left = ox * s.sw - s.pw;
            const int64_t c0 = clamp64(left, 0, s.w), c1 = clamp64(left + s.kw, 0, s.w);
            for (int64_t ch = 0; ch < s.c; ch++) o[ch] = 0.0f;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t col = c0; col < c1; col++)
                    add_into(o, image + (r * s.w + col) * s.c, s.c);
            for (int64_t ch = 0; ch < s.c; ch++) o[ch] /= taps;
        }
    }
}

/* Input rows (b, iy) in [begin, end): each gx element gathers gy / (kh * kw) from the windows
 * covering it, taps r then t ascending from +0 like the spec's scatter (which also turns a -0
 * share into +0); one pass serves disjoint and overlapping windows alike. Tap r of window oy
 * covers padded row oy * sh + r, so the taps covering padded row py are r = py mod sh, + sh, ...
 * (r <= py keeps oy >= 0). */
static void gather_rows(const pool_args *a, int64_t begin, int64_t end)
{
    const pool_shape s = a->s;
    const float taps = (float)(s.kh * s.kw);
    for (int64_t row = begin; row < end; row++) {
        const int64_t b = row / s.h, py = row % s.h + s.ph;
        const float *window_rows = a->gy + b * s.oh * s.ow * s.c;
        for (int64_t ix = 0; ix < s.w; ix++) {
            const int64_t px = ix + s.pw;
            float *restrict d = a->dst + (row * s.w + ix) * s.c;
            for (int64_t ch = 0; ch < s.c; ch++) d[ch] = 0.0f;
            for (int64_t r = py % s.sh; r < s.kh && r <= py; r += s.sh) {
                const int64_t oy = (py - r) / s.sh;
                if (oy >= s.oh) continue;
                for (int64_t t = px % s.sw; t < s.kw && t <= px; t += s.sw) {
                    const int64_t ox = (px - t) / s.sw;
                    if (ox >= s.ow) continue;
                    const float *restrict g = window_rows + (oy * s.ow + ox) * s.c;
                    for (int64_t ch = 0; ch < s.c; ch++) d[ch] += g[ch] / taps;
                }
            }
        }
    }
}

int nd_avg_pool2d_forward_f32(const float *x, float *out, int64_t n, int64_t h, int64_t w_,
                              int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                              int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w)
{
    const pool_shape s = {n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w};
    return pool_forward(forward_rows, x, out, s);
}

int nd_avg_pool2d_backward_f32(const float *gy, float *gx, int64_t n, int64_t h, int64_t w_,
                               int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                               int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w)
{
    const pool_args a = {.gy = gy, .dst = gx,
                         .s = {n, h, w_, c, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w}};
    const int status = pool_check_shape(&a.s);
    if (status) return status;
    if (n * h * w_ * c == 0) return ND_OK;
    if (!gy || !gx) return ND_ERR_NULL;
    const int64_t rows = n * h;
    pool_run_rows(gather_rows, &a, rows,
                  nd_threads_for(n * oh * ow * c * kh * kw, ND_POOL_GRAIN));
    return ND_OK;
}
