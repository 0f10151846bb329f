/* Direct 2-D convolution (no im2col) for layers with few input values per output pixel
 * (c*kh*kw <= ND_DIRECT_MAX_TAPS, groups == 1): forward and weight gradient.
 * Kernel layer (kernels_c); conv.c validates the sizes and dispatches here. With c = 1 an im2col
 * row holds only kh*kw values, so packing costs more than the multiply; here each output pixel's
 * k outputs are 16-float vectors updated straight from the (zero-padded) input. */
#include <stdlib.h>
#include <string.h>

#include "conv_direct.h"
#include "nd_kernels.h"

typedef float vec16 __attribute__((vector_size(64)));
/* The same vector at any float-aligned address (like the compiler's own __m512_u). */
typedef float vec16u __attribute__((vector_size(64), aligned(4), may_alias));

enum {
    LANES = 16,
    PIXEL_BLOCK = 12, /* output pixels whose accumulators stay in registers together */
    TAP_BLOCK = 8,    /* weight-gradient taps whose accumulators stay in registers together */
    SPAN = 128        /* pixels per weight-gradient pass: their gy vectors stay in L1 */
};

int nd_conv_direct_applies(int64_t c, int64_t kh, int64_t kw, int64_t groups)
{
    return groups == 1 && c * kh * kw <= ND_DIRECT_MAX_TAPS;
}

/* The padded input one image needs: (h + 2ph, w + 2pw, c), or 0 when the image is used as is. */
static int64_t padded_floats(const conv_shape_t *s)
{
    if (s->ph == 0 && s->pw == 0) return 0;
    return (s->h + 2 * s->ph) * (s->w + 2 * s->pw) * s->c;
}

/* Image b of x with its zero border, so that no tap ever needs a bounds check. */
static const float *image_of(const conv_shape_t *s, const float *x, int64_t b, float *pad_buf)
{
    const float *img = x + b * s->h * s->w * s->c;
    if (!pad_buf) return img;
    const int64_t row = s->w * s->c, padded_row = (s->w + 2 * s->pw) * s->c;
    const int64_t side = s->pw * s->c;
    memset(pad_buf, 0, (size_t)(s->ph * padded_row) * sizeof(float));
    for (int64_t iy = 0; iy < s->h; iy++) {
        float *dst = pad_buf + (iy + s->ph) * padded_row;
        memset(dst, 0, (size_t)side * sizeof(float));
        memcpy(dst + side, img + iy * row, (size_t)row * sizeof(float));
        memset(dst + side + row, 0, (size_t)side * sizeof(float));
    }
    memset(pad_buf + (s->h + s->ph) * padded_row, 0, (size_t)(s->ph * padded_row) * sizeof(float));
    return pad_buf;
}

/* off[t] for t = (ky*kw + kx)*c + ci (the weight's row order): where tap t reads, relative to
 * the top-left input value of an output pixel's window in the padded image. */
static void tap_offsets(const conv_shape_t *s, int64_t *off)
{
    const int64_t padded_w = s->w + 2 * s->pw;
    for (int64_t ky = 0; ky < s->kh; ky++)
        for (int64_t kx = 0; kx < s->kw; kx++)
            for (int64_t ci = 0; ci < s->c; ci++)
                off[(ky * s->kw + kx) * s->c + ci] =
                    (ky * s->dh * padded_w + kx * s->dw) * s->c + ci;
}

static int64_t padded_k(const conv_shape_t *s) { return (s->k + LANES - 1) / LANES * LANES; }

static float *alloc_floats(int64_t count)
{
    size_t bytes = ((size_t)count * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* Threads for `rows` output rows of `row_work` multiply-adds each: at least ~64k per thread. */
static int threads_for_rows(int64_t rows, int64_t row_work)
{
    int threads = nd_threads_for(rows * row_work, 1 << 16);
    return rows < threads ? (int)(rows > 0 ? rows : 1) : threads;
}

/* y[p, j..j+16*slices] = sum_t x[p*step + off[t]] * w[t, j..] for `count` pixels and `slices`
 * 16-wide slices of the outputs (the last one `lanes` wide); both are constants at every call,
 * so acc[][] lives in registers and each x value loaded serves all slices. */
static inline __attribute__((always_inline)) void
forward_pixels(const float *xp, int64_t step, const int64_t *off, int64_t taps,
               const float *w_slice, int64_t w_stride, float *yp, int64_t k, int64_t lanes,
               int count, int slices)
{
    vec16 acc[2][PIXEL_BLOCK];
#pragma GCC unroll 2
    for (int q = 0; q < slices; q++)
#pragma GCC unroll 16
        for (int p = 0; p < count; p++) acc[q][p] = (vec16){0};
    for (int64_t t = 0; t < taps; t++) {
        vec16 wv[2];
#pragma GCC unroll 2
        for (int q = 0; q < slices; q++)
            wv[q] = *(const vec16 *)(w_slice + t * w_stride + q * LANES);
        const float *xt = xp + off[t];
#pragma GCC unroll 16
        for (int p = 0; p < count; p++) {
            const float xv = xt[p * step];
#pragma GCC unroll 2
            for (int q = 0; q < slices; q++) acc[q][p] += xv * wv[q];
        }
    }
#pragma GCC unroll 2
    for (int q = 0; q < slices; q++) {
        float *yq = yp + q * LANES;
        if (q < slices - 1 || lanes == LANES) {
#pragma GCC unroll 16
            for (int p = 0; p < count; p++) *(vec16u *)(yq + p * k) = acc[q][p];
        } else {
            for (int p = 0; p < count; p++)
                for (int64_t l = 0; l < lanes; l++) yq[p * k + l] = acc[q][p][l];
        }
    }
}

/* One output row's pixels for outputs j.. (`slices` slices): blocks of PIXEL_BLOCK, 4, then 1. */
static inline __attribute__((always_inline)) void
forward_row(const float *xrow, int64_t step, const int64_t *off, int64_t taps,
            const float *w_slice, int64_t w_stride, float *yrow, int64_t k, int64_t ow,
            int64_t lanes, int slices)
{
    int64_t ox = 0;
    for (; ox + PIXEL_BLOCK <= ow; ox += PIXEL_BLOCK)
        forward_pixels(xrow + ox * step, step, off, taps, w_slice, w_stride, yrow + ox * k, k,
                       lanes, PIXEL_BLOCK, slices);
    for (; ox + 4 <= ow; ox += 4)
        forward_pixels(xrow + ox * step, step, off, taps, w_slice, w_stride, yrow + ox * k, k,
                       lanes, 4, slices);
    for (; ox < ow; ox++)
        forward_pixels(xrow + ox * step, step, off, taps, w_slice, w_stride, yrow + ox * k, k,
                       lanes, 1, slices);
}

/* Output rows r0..r1 of all images (row r = image r / oh, output row r % oh). */
static void forward_rows(const conv_shape_t *s, const float *x, const float *w_padded,
                         const int64_t *off, float *y, int64_t r0, int64_t r1, float *pad_buf)
{
    const int64_t kkc = s->kh * s->kw * s->c, kp = padded_k(s);
    const int64_t step = s->sw * s->c, row_step = s->sh * (s->w + 2 * s->pw) * s->c;
    int64_t current = -1;
    const float *img = NULL;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / s->oh, oy = r % s->oh;
        if (b != current) img = image_of(s, x, current = b, pad_buf);
        const float *xrow = img + oy * row_step;
        float *yrow = y + r * s->ow * s->k;
        int64_t j = 0;
        for (; j + 2 * LANES <= kp; j += 2 * LANES) {
            const int64_t lanes = s->k - j - LANES < LANES ? s->k - j - LANES : LANES;
            forward_row(xrow, step, off, kkc, w_padded + j, kp, yrow + j, s->k, s->ow, lanes, 2);
        }
        if (j < kp)
            forward_row(xrow, step, off, kkc, w_padded + j, kp, yrow + j, s->k, s->ow, s->k - j, 1);
    }
}

int nd_conv_direct_forward(const conv_shape_t *s, const float *x, const float *w, float *y)
{
    const int64_t kkc = s->kh * s->kw * s->c, kp = padded_k(s), rows = s->n * s->oh;
    const int threads = threads_for_rows(rows, s->ow * kkc * kp);
    const int64_t per_thread = padded_floats(s);
    /* The weight with k padded to a multiple of 16 (zeros), so every slice is a full vector. */
    float *w_padded = alloc_floats(kkc * kp + threads * per_thread);
    if (!w_padded) return ND_ERR_NOMEM;
    float *pad_bufs = w_padded + kkc * kp;
    for (int64_t t = 0; t < kkc; t++) {
        memcpy(w_padded + t * kp, w + t * s->k, (size_t)s->k * sizeof(float));
        memset(w_padded + t * kp + s->k, 0, (size_t)(kp - s->k) * sizeof(float));
    }
    int64_t off[ND_DIRECT_MAX_TAPS];
    tap_offsets(s, off);
    if (threads == 1) {
        forward_rows(s, x, w_padded, off, y, 0, rows, per_thread ? pad_bufs : NULL);
    } else {
#pragma omp parallel num_threads(threads)
        {
            int64_t begin, end;
            const int t = nd_thread_rows(rows, &begin, &end);
            forward_rows(s, x, w_padded, off, y, begin, end,
                         per_thread ? pad_bufs + t * per_thread : NULL);
        }
    }
    free(w_padded);
    return ND_OK;
}

/* acc[i, j..j+16*slices] += sum_p x[p*step + off[i]] * gy[p*gy_step + j..] for `taps` taps and
 * `count` pixels, summed over the pixels in order, then added once; `taps` and `slices` are
 * constants at every call, so sum[][] lives in registers. */
static inline __attribute__((always_inline)) void
weight_taps(const float *xp, int64_t step, const int64_t *off, const float *gyp, int64_t gy_step,
            int64_t count, float *acc_p, int64_t acc_stride, int taps, int slices)
{
    vec16 sum[2][TAP_BLOCK];
    const float *xt[TAP_BLOCK];
#pragma GCC unroll 8
    for (int i = 0; i < taps; i++) {
        xt[i] = xp + off[i];
        sum[0][i] = sum[1][i] = (vec16){0};
    }
    for (int64_t p = 0; p < count; p++) {
        vec16 g[2];
#pragma GCC unroll 2
        for (int q = 0; q < slices; q++) g[q] = *(const vec16u *)(gyp + p * gy_step + q * LANES);
#pragma GCC unroll 8
        for (int i = 0; i < taps; i++) {
            const float xv = xt[i][p * step];
#pragma GCC unroll 2
            for (int q = 0; q < slices; q++) sum[q][i] += xv * g[q];
        }
    }
#pragma GCC unroll 2
    for (int q = 0; q < slices; q++)
#pragma GCC unroll 8
        for (int i = 0; i < taps; i++) *(vec16 *)(acc_p + i * acc_stride + q * LANES) += sum[q][i];
}

/* All kkc taps of one span for outputs j.. (`slices` slices): tap blocks of 8, 4, 2, then 1. */
static inline __attribute__((always_inline)) void
weight_span(const float *xp, int64_t step, const int64_t *off, int64_t kkc, const float *gyp,
            int64_t gy_step, int64_t count, float *acc_p, int64_t kp, int slices)
{
    int64_t t = 0;
    for (; t + TAP_BLOCK <= kkc; t += TAP_BLOCK)
        weight_taps(xp, step, off + t, gyp, gy_step, count, acc_p + t * kp, kp, TAP_BLOCK, slices);
    if (t + 4 <= kkc) {
        weight_taps(xp, step, off + t, gyp, gy_step, count, acc_p + t * kp, kp, 4, slices);
        t += 4;
    }
    if (t + 2 <= kkc) {
        weight_taps(xp, step, off + t, gyp, gy_step, count, acc_p + t * kp, kp, 2, slices);
        t += 2;
    }
    if (t < kkc) weight_taps(xp, step, off + t, gyp, gy_step, count, acc_p + t * kp, kp, 1, slices);
}

/* acc (kkc, kp) += the weight gradient of output rows r0..r1. When k is not a multiple of 16, gy
 * spans are copied into gy_buf (SPAN, kp) with zero lanes, so no load crosses a pixel's end. */
static void weight_rows(const conv_shape_t *s, const float *x, const float *gy, const int64_t *off,
                        float *acc, int64_t r0, int64_t r1, float *pad_buf, float *gy_buf)
{
    const int64_t kkc = s->kh * s->kw * s->c, kp = padded_k(s);
    const int64_t step = s->sw * s->c, row_step = s->sh * (s->w + 2 * s->pw) * s->c;
    int64_t current = -1;
    const float *img = NULL;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / s->oh, oy = r % s->oh;
        if (b != current) img = image_of(s, x, current = b, pad_buf);
        for (int64_t ox0 = 0; ox0 < s->ow; ox0 += SPAN) {
            const int64_t count = s->ow - ox0 < SPAN ? s->ow - ox0 : SPAN;
            const float *xp = img + oy * row_step + ox0 * step;
            const float *gyp = gy + (r * s->ow + ox0) * s->k;
            int64_t gy_step = s->k;
            if (gy_buf) {
                for (int64_t p = 0; p < count; p++) {
                    memcpy(gy_buf + p * kp, gyp + p * s->k, (size_t)s->k * sizeof(float));
                    memset(gy_buf + p * kp + s->k, 0, (size_t)(kp - s->k) * sizeof(float));
                }
                gyp = gy_buf;
                gy_step = kp;
            }
            int64_t j = 0;
            for (; j + 2 * LANES <= kp; j += 2 * LANES)
                weight_span(xp, step, off, kkc, gyp + j, gy_step, count, acc + j, kp, 2);
            if (j < kp) weight_span(xp, step, off, kkc, gyp + j, gy_step, count, acc + j, kp, 1);
        }
    }
}

int nd_conv_direct_backward_weight(const conv_shape_t *s, const float *x, const float *gy,
                                   float *gw)
{
    const int64_t kkc = s->kh * s->kw * s->c, kp = padded_k(s), rows = s->n * s->oh;
    const int threads = threads_for_rows(rows, s->ow * kkc * kp);
    /* Each thread's block starts on a 64-byte line: its accumulator is stored as whole vectors. */
    const int64_t acc_size = kkc * kp, pad_size = (padded_floats(s) + LANES - 1) / LANES * LANES;
    const int64_t gy_size = s->k % LANES ? SPAN * kp : 0;
    const int64_t per_thread = acc_size + pad_size + gy_size;
    float *buffers = alloc_floats(threads * per_thread);
    if (!buffers) return ND_ERR_NOMEM;
    /* Every thread's accumulator starts at zero, also one a smaller team leaves unused. */
    for (int t = 0; t < threads; t++)
        memset(buffers + t * per_thread, 0, (size_t)acc_size * sizeof(float));
    int64_t off[ND_DIRECT_MAX_TAPS];
    tap_offsets(s, off);
    if (threads == 1) {
        weight_rows(s, x, gy, off, buffers, 0, rows, pad_size ? buffers + acc_size : NULL,
                    gy_size ? buffers + acc_size + pad_size : NULL);
    } else {
#pragma omp parallel num_threads(threads)
        {
            int64_t begin, end;
            float *mine = buffers + nd_thread_rows(rows, &begin, &end) * per_thread;
            weight_rows(s, x, gy, off, mine, begin, end,
                        pad_size ? mine + acc_size : NULL,
                        gy_size ? mine + acc_size + pad_size : NULL);
        }
    }
    /* Partial sums added in thread order: the result does not depend on scheduling. */
    for (int64_t t = 0; t < kkc; t++)
        for (int64_t o = 0; o < s->k; o++) {
            float total = 0.0f;
            for (int i = 0; i < threads; i++) total += buffers[i * per_thread + t * kp + o];
            gw[t * s->k + o] = total;
        }
    free(buffers);
    return ND_OK;
}
