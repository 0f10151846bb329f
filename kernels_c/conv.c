/* 2-D convolution (NHWC, weight (kh, kw, c/groups, k)): forward, input gradient, weight gradient,
 * each as im2col (col2im for the input gradient) feeding nd_sgemm_f32, plus naive twins.
 * Kernel layer (kernels_c); ABI and index formula in nd_kernels.h. Output pixels are processed in
 * chunks whose column matrix fits in about 1 MiB, so the im2col buffer stays in L2; threads split
 * the chunks (one single-threaded sgemm each) or, with fewer chunks than threads, the sgemm.
 * Forward and weight gradient with c*kh*kw <= ND_DIRECT_MAX_TAPS, groups == 1: conv_direct.c. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv_direct.h"
#include "nd_kernels.h"

#define ND_COL_BUDGET (1 << 18) /* floats in one thread's column chunk (1 MiB) */

/* The sizes of one convolution, derived once (internal, not part of the ABI). */
typedef struct {
    int64_t n, h, w, c, k, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
    int64_t cg, kg, kkc, pixels, chunk_rows, chunks_per_image;
    int direct; /* 1x1, stride 1, no padding: the column matrix is x itself */
    conv_shape_t shape;
} geom_t;

static int make_geom(geom_t *g, int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t kh,
                     int64_t kw, int64_t oh, int64_t ow, int64_t sh, int64_t sw, int64_t ph,
                     int64_t pw, int64_t dh, int64_t dw, int64_t groups)
{
    if (n < 0 || h < 1 || w < 1 || c < 1 || k < 1 || kh < 1 || kw < 1) return ND_ERR_SIZE;
    if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || ph < 0 || pw < 0 || groups < 1) return ND_ERR_ARG;
    if (c % groups || k % groups) return ND_ERR_ARG;
    const int64_t span_h = h + 2 * ph - dh * (kh - 1) - 1, span_w = w + 2 * pw - dw * (kw - 1) - 1;
    if (span_h < 0 || span_w < 0) return ND_ERR_SIZE; /* kernel larger than the padded input */
    if (oh != span_h / sh + 1 || ow != span_w / sw + 1) return ND_ERR_SIZE;
    *g = (geom_t){n, h, w, c, k, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups, 0, 0, 0, 0, 0, 0,
                  0, (conv_shape_t){n, h, w, c, k, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw}};
    g->cg = c / groups;
    g->kg = k / groups;
    g->kkc = kh * kw * g->cg;
    g->pixels = oh * ow;
    g->chunk_rows = ND_COL_BUDGET / g->kkc;
    if (g->chunk_rows < 1) g->chunk_rows = 1;
    if (g->chunk_rows > g->pixels) g->chunk_rows = g->pixels;
    g->chunks_per_image = (g->pixels + g->chunk_rows - 1) / g->chunk_rows;
    g->direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    return ND_OK;
}

/* col[r, (ky*kw + kx)*cg + ci] = x_img[iy, ix, group*cg + ci] (0 outside), output pixels r0.. */
static void im2col(const geom_t *g, const float *x_img, int64_t group, int64_t r0, int64_t rows,
                   float *col)
{
    for (int64_t r = 0; r < rows; r++) {
        const int64_t oy = (r0 + r) / g->ow, ox = (r0 + r) % g->ow;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            const int64_t iy = oy * g->sh - g->ph + ky * g->dh;
            for (int64_t kx = 0; kx < g->kw; kx++) {
                const int64_t ix = ox * g->sw - g->pw + kx * g->dw;
                float *dst = col + r * g->kkc + (ky * g->kw + kx) * g->cg;
                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                    memset(dst, 0, (size_t)g->cg * sizeof(float));
                else
                    memcpy(dst, x_img + (iy * g->w + ix) * g->c + group * g->cg,
                           (size_t)g->cg * sizeof(float));
            }
        }
    }
}

/* The adjoint of im2col: gx_img[iy, ix, group*cg + ci] += col[r, ...]. */
static void col2im_add(const geom_t *g, const float *col, int64_t group, int64_t r0, int64_t rows,
                       float *gx_img)
{
    for (int64_t r = 0; r < rows; r++) {
        const int64_t oy = (r0 + r) / g->ow, ox = (r0 + r) % g->ow;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            const int64_t iy = oy * g->sh - g->ph + ky * g->dh;
            if (iy < 0 || iy >= g->h) continue;
            for (int64_t kx = 0; kx < g->kw; kx++) {
                const int64_t ix = ox * g->sw - g->pw + kx * g->dw;
                if (ix < 0 || ix >= g->w) continue;
                const float *src = col + r * g->kkc + (ky * g->kw + kx) * g->cg;
                float *dst = gx_img + (iy * g->w + ix) * g->c + group * g->cg;
                for (int64_t ci = 0; ci < g->cg; ci++) dst[ci] += src[ci];
            }
        }
    }
}

/* Output pixels in the chunk that starts at pixel r0 (the last chunk of an image is short). */
static int64_t chunk_rows_at(const geom_t *g, int64_t r0)
{
    return g->pixels - r0 < g->chunk_rows ? g->pixels - r0 : g->chunk_rows;
}

/* The (rows, kkc) patch matrix of group gi over output pixels r0.. of image b, and its row stride:
 * x itself for a direct (1x1, stride 1, unpadded) convolution, else gathered into col. */
static const float *patch_matrix(const geom_t *g, const float *x, int64_t b, int64_t gi,
                                 int64_t r0, int64_t rows, float *col, int64_t *row_stride)
{
    if (g->direct) {
        *row_stride = g->c;
        return x + (b * g->pixels + r0) * g->c + gi * g->cg;
    }
    im2col(g, x + b * g->h * g->w * g->c, gi, r0, rows, col);
    *row_stride = g->kkc;
    return col;
}

static float *alloc_floats(int64_t count)
{
    size_t bytes = ((size_t)count * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

int nd_conv2d_forward_f32(const float *x, const float *w, float *y, int64_t n, int64_t h,
                          int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw, int64_t oh,
                          int64_t ow, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                          int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups)
{
    geom_t g;
    int status = make_geom(&g, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                           dil_h, dil_w, groups);
    if (status != ND_OK || n == 0) return status;
    if (!x || !w || !y) return ND_ERR_NULL;
    /* 1x1, stride 1, unpadded needs no im2col: sgemm on x itself is as fast or faster there. */
    if (!g.direct && nd_conv_direct_applies(c, kh, kw, groups))
        return nd_conv_direct_forward(&g.shape, x, w, y);
    const int64_t units = n * g.chunks_per_image;
    const int threads = nd_get_num_threads();
    const int outer = threads > 1 && units >= threads;
    int failed = ND_OK;
#pragma omp parallel num_threads(outer ? threads : 1) if (outer)
    {
        float *col = g.direct ? NULL : alloc_floats(g.chunk_rows * g.kkc);
        if (!g.direct && !col) {
#pragma omp atomic write
            failed = ND_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            if (!g.direct && !col) continue;
            const int64_t b = u / g.chunks_per_image;
            const int64_t r0 = (u % g.chunks_per_image) * g.chunk_rows;
            const int64_t rows = chunk_rows_at(&g, r0);
            for (int64_t gi = 0; gi < g.groups; gi++) {
                int64_t a_rs;
                const float *a = patch_matrix(&g, x, b, gi, r0, rows, col, &a_rs);
                int s = nd_sgemm_f32(a, w + gi * g.kg, y + (b * g.pixels + r0) * k + gi * g.kg,
                                     rows, g.kg, g.kkc, a_rs, 1, k, 1, k, 0, outer ? 1 : threads);
                if (s != ND_OK) {
#pragma omp atomic write
                    failed = s;
                }
            }
        }
        free(col);
    }
    return failed;
}

int nd_conv2d_backward_input_f32(const float *gy, const float *w, float *gx, int64_t n, int64_t h,
                                 int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw,
                                 int64_t oh, int64_t ow, int64_t stride_h, int64_t stride_w,
                                 int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                                 int64_t groups)
{
    geom_t g;
    int status = make_geom(&g, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                           dil_h, dil_w, groups);
    if (status != ND_OK || n == 0) return status;
    if (!gy || !w || !gx) return ND_ERR_NULL;
    const int threads = nd_get_num_threads();
    /* col2im of two chunks of one image overlap, so threads split whole images. */
    const int outer = threads > 1 && n >= threads;
    int failed = ND_OK;
#pragma omp parallel num_threads(outer ? threads : 1) if (outer)
    {
        float *dcol = g.direct ? NULL : alloc_floats(g.chunk_rows * g.kkc);
        if (!g.direct && !dcol) {
#pragma omp atomic write
            failed = ND_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (int64_t b = 0; b < n; b++) {
            if (!g.direct && !dcol) continue;
            float *gx_img = gx + b * h * w_ * c;
            if (!g.direct) memset(gx_img, 0, (size_t)(h * w_ * c) * sizeof(float));
            for (int64_t r0 = 0; r0 < g.pixels; r0 += g.chunk_rows) {
                const int64_t rows = chunk_rows_at(&g, r0);
                for (int64_t gi = 0; gi < g.groups; gi++) {
                    /* dcol = gy_rows (rows, kg) @ W_g^T (kg, kkc) */
                    const float *a = gy + (b * g.pixels + r0) * k + gi * g.kg;
                    float *out = g.direct ? gx_img + r0 * c + gi * g.cg : dcol;
                    int64_t ldc = g.direct ? c : g.kkc;
                    int s = nd_sgemm_f32(a, w + gi * g.kg, out, rows, g.kkc, g.kg, k, 1, 1, k, ldc,
                                         0, outer ? 1 : threads);
                    if (s != ND_OK) {
#pragma omp atomic write
                        failed = s;
                    }
                    if (!g.direct) col2im_add(&g, dcol, gi, r0, rows, gx_img);
                }
            }
        }
        free(dcol);
    }
    return failed;
}

int nd_conv2d_backward_weight_f32(const float *x, const float *gy, float *gw, int64_t n, int64_t h,
                                  int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw,
                                  int64_t oh, int64_t ow, int64_t stride_h, int64_t stride_w,
                                  int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                                  int64_t groups)
{
    geom_t g;
    int status = make_geom(&g, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                           dil_h, dil_w, groups);
    if (status != ND_OK) return status;
    if (!gw) return ND_ERR_NULL;
    const int64_t gw_size = g.kkc * k;
    memset(gw, 0, (size_t)gw_size * sizeof(float));
    if (n == 0) return ND_OK;
    if (!x || !gy) return ND_ERR_NULL;
    if (!g.direct && nd_conv_direct_applies(c, kh, kw, groups))
        return nd_conv_direct_backward_weight(&g.shape, x, gy, gw);
    const int64_t units = n * g.chunks_per_image;
    const int max_threads = nd_get_num_threads();
    const int outer = max_threads > 1 && units >= max_threads;
    const int threads = outer ? max_threads : 1;
    /* One private accumulator per thread when threads split the chunks, summed in thread order
     * afterwards so the result does not depend on scheduling. */
    float *partials = outer ? alloc_floats(threads * gw_size) : NULL;
    if (outer && !partials) return ND_ERR_NOMEM;
    if (outer) memset(partials, 0, (size_t)(threads * gw_size) * sizeof(float));
    int failed = ND_OK;
#pragma omp parallel num_threads(threads) if (outer)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        float *acc = outer ? partials + t * gw_size : gw;
        float *col = g.direct ? NULL : alloc_floats(g.chunk_rows * g.kkc);
        if (!g.direct && !col) {
#pragma omp atomic write
            failed = ND_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            if (!g.direct && !col) continue;
            const int64_t b = u / g.chunks_per_image;
            const int64_t r0 = (u % g.chunks_per_image) * g.chunk_rows;
            const int64_t rows = chunk_rows_at(&g, r0);
            for (int64_t gi = 0; gi < g.groups; gi++) {
                /* gw_g (kkc, kg) += col^T (kkc, rows) @ gy_rows (rows, kg) */
                int64_t a_cs;
                const float *a = patch_matrix(&g, x, b, gi, r0, rows, col, &a_cs);
                int s = nd_sgemm_f32(a, gy + (b * g.pixels + r0) * k + gi * g.kg, acc + gi * g.kg,
                                     g.kkc, g.kg, rows, 1, a_cs, k, 1, k, 1,
                                     outer ? 1 : max_threads);
                if (s != ND_OK) {
#pragma omp atomic write
                    failed = s;
                }
            }
        }
        free(col);
    }
    if (outer) {
        for (int t = 0; t < threads; t++)
            for (int64_t i = 0; i < gw_size; i++) gw[i] += partials[t * gw_size + i];
        free(partials);
    }
    return failed;
}

int nd_conv2d_forward_naive_f32(const float *x, const float *w, float *y, int64_t n, int64_t h,
                                int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw,
                                int64_t oh, int64_t ow, int64_t stride_h, int64_t stride_w,
                                int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                                int64_t groups)
{
    geom_t g;
    int status = make_geom(&g, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                           dil_h, dil_w, groups);
    if (status != ND_OK || n == 0) return status;
    if (!x || !w || !y) return ND_ERR_NULL;
    for (int64_t b = 0; b < n; b++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t o = 0; o < k; o++) {
                    const int64_t gi = o / g.kg;
                    float sum = 0.0f;
                    for (int64_t ky = 0; ky < kh; ky++)
                        for (int64_t kx = 0; kx < kw; kx++) {
                            const int64_t iy = oy * stride_h - pad_h + ky * dil_h;
                            const int64_t ix = ox * stride_w - pad_w + kx * dil_w;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w_) continue;
                            for (int64_t ci = 0; ci < g.cg; ci++)
                                sum += x[((b * h + iy) * w_ + ix) * c + gi * g.cg + ci] *
                                       w[((ky * kw + kx) * g.cg + ci) * k + o];
                        }
                    y[((b * oh + oy) * ow + ox) * k + o] = sum;
                }
    return ND_OK;
}

int nd_conv2d_backward_input_naive_f32(const float *gy, const float *w, float *gx, int64_t n,
                                       int64_t h, int64_t w_, int64_t c, int64_t k, int64_t kh,
                                       int64_t kw, int64_t oh, int64_t ow, int64_t stride_h,
                                       int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                       int64_t dil_h, int64_t dil_w, int64_t groups)
{
    geom_t g;
    int status = make_geom(&g, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                           dil_h, dil_w, groups);
    if (status != ND_OK || n == 0) return status;
    if (!gy || !w || !gx) return ND_ERR_NULL;
    memset(gx, 0, (size_t)(n * h * w_ * c) * sizeof(float));
    for (int64_t b = 0; b < n; b++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t o = 0; o < k; o++) {
                    const int64_t gi = o / g.kg;
                    const float dy = gy[((b * oh + oy) * ow + ox) * k + o];
                    for (int64_t ky = 0; ky < kh; ky++)
                        for (int64_t kx = 0; kx < kw; kx++) {
                            const int64_t iy = oy * stride_h - pad_h + ky * dil_h;
                            const int64_t ix = ox * stride_w - pad_w + kx * dil_w;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w_) continue;
                            for (int64_t ci = 0; ci < g.cg; ci++)
                                gx[((b * h + iy) * w_ + ix) * c + gi * g.cg + ci] +=
                                    dy * w[((ky * kw + kx) * g.cg + ci) * k + o];
                        }
                }
    return ND_OK;
}

int nd_conv2d_backward_weight_naive_f32(const float *x, const float *gy, float *gw, int64_t n,
                                        int64_t h, int64_t w_, int64_t c, int64_t k, int64_t kh,
                                        int64_t kw, int64_t oh, int64_t ow, int64_t stride_h,
                                        int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                        int64_t dil_h, int64_t dil_w, int64_t groups)
{
    geom_t g;
    int status = make_geom(&g, n, h, w_, c, k, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,
                           dil_h, dil_w, groups);
    if (status != ND_OK) return status;
    if (!gw) return ND_ERR_NULL;
    memset(gw, 0, (size_t)(g.kkc * k) * sizeof(float));
    if (n > 0 && (!x || !gy)) return ND_ERR_NULL;
    for (int64_t b = 0; b < n; b++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t o = 0; o < k; o++) {
                    const int64_t gi = o / g.kg;
                    const float dy = gy[((b * oh + oy) * ow + ox) * k + o];
                    for (int64_t ky = 0; ky < kh; ky++)
                        for (int64_t kx = 0; kx < kw; kx++) {
                            const int64_t iy = oy * stride_h - pad_h + ky * dil_h;
                            const int64_t ix = ox * stride_w - pad_w + kx * dil_w;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w_) continue;
                            for (int64_t ci = 0; ci < g.cg; ci++)
                                gw[((ky * kw + kx) * g.cg + ci) * k + o] +=
                                    dy * x[((b * h + iy) * w_ + ix) * c + gi * g.cg + ci];
                        }
                }
    return ND_OK;
}
