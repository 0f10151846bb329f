/* Private interface between conv.c and conv_direct.c (not part of the ABI in nd_kernels.h).
 * Kernel layer (kernels_c): the direct convolution path for few input values per output pixel. */
#ifndef ND_CONV_DIRECT_H
#define ND_CONV_DIRECT_H

#include <stdint.h>

/* Largest c*kh*kw the direct path takes: beyond it im2col + sgemm packs efficiently. */
#define ND_DIRECT_MAX_TAPS 32

/* Sizes of one convolution, already validated by conv.c (groups == 1). */
typedef struct {
    int64_t n, h, w, c, k, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw;
} conv_shape_t;

int nd_conv_direct_applies(int64_t c, int64_t kh, int64_t kw, int64_t groups);
/* Same results as the nd_conv2d_*_f32 kernels; they return ND_OK or ND_ERR_NOMEM. */
int nd_conv_direct_forward(const conv_shape_t *s, const float *x, const float *w, float *y);
int nd_conv_direct_backward_weight(const conv_shape_t *s, const float *x, const float *gy,
                                   float *gw);

#endif
