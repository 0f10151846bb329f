/* Private interface between norm.c, norm_lines.c and norm_parameter_grads.c (not part of the ABI
 * in nd_kernels.h). Kernel layer (kernels_c): the normalization functions' shared pieces. */
#ifndef ND_NORM_PARTS_H
#define ND_NORM_PARTS_H

#include <math.h>
#include <stdint.h>

/* Elements per thread: each element is read three times (forward) and written once. */
#define ND_NORM_GRAIN 16384
/* Columns per stack block of the column sweeps: their double sums stay in L1. */
#define ND_NORM_COLUMN_BLOCK 256
/* Threads of the column sweeps split columns in units of a cache line of floats, so no two
 * threads write the same line. */
#define ND_NORM_COLUMN_UNIT 16

/* The operands of one line of elements (a group's members, or one row of a block of columns).
 * Along the line each per-group value (stat_step) and each parameter (param_step) is one value
 * (step 0) or one per element (step 1):
 *   xhat = (x - shift) * scale,
 *   forward:  out = xhat * weight + bias,
 *   backward: h = weight * g, out = (h - mean_h - xhat * projection) * inv_std.
 * The plain norm functions pass weight 1 and bias 0, and (backward, xhat given) shift 0 and
 * scale 1: those are exact, so they give the same values as a path without them. */
typedef struct {
    const float *shift, *scale, *mean_h, *projection, *inv_std;
    int64_t stat_step;
    const float *weight, *bias;
    int64_t param_step;
} nd_norm_line;

extern const float nd_norm_one, nd_norm_zero;

static inline float nd_norm_inverse_std(double var, double eps)
{
    return (float)(1.0 / sqrt(var + eps));
}

/* Sums along a line, in double; unit stride keeps vector accumulators in a fixed order. */
double nd_norm_line_sum(const float *a, int64_t n, int64_t stride);
double nd_norm_line_squared_deviation(const float *a, int64_t n, int64_t stride, double mean);
/* *sum_h = sum of h, *sum_hx = sum of h * xhat. */
void nd_norm_line_gradient_sums(const float *g, const float *x, int64_t n, int64_t stride,
                                const nd_norm_line *ops, double *sum_h, double *sum_hx);
/* Element-wise along a line: sum_h[k] += h_k, sum_hx[k] += h_k * xhat_k (a column sweep's step). */
void nd_norm_line_accumulate(const float *g, const float *x, int64_t n, int64_t stride,
                             const nd_norm_line *ops, double *sum_h, double *sum_hx);
/* out = xhat * weight + bias, reading x's element before writing out's (out may alias x). */
void nd_norm_line_affine(const float *x, float *out, int64_t n, int64_t stride,
                         const nd_norm_line *ops);
/* out = backward's formula, element for element (out may alias g or x). */
void nd_norm_line_gradient(const float *g, const float *x, float *out, int64_t n, int64_t stride,
                           const nd_norm_line *ops);

/* One backward call: norm_affine_backward's arguments (weight NULL: the plain norm_backward, whose
 * x is xhat, x_is_xhat 1). */
typedef struct {
    const float *g, *x, *stats, *weight;
    float *out, *weight_grad, *bias_grad;
    int64_t groups, members, group_stride, member_stride;
    double eps;
    int per_member, x_is_xhat;
} nd_norm_backward_args;

/* weight_grad[j] and bias_grad[j] for every member j (per_member 1), groups >= 1 and members >= 1:
 * each a sum over the groups in group order, so independent of the thread count. */
void nd_norm_member_parameter_grads(const nd_norm_backward_args *a);

#endif
