/* The normalization functions' line kernels: sums and element-wise passes along one line of
 * elements. Kernel layer (kernels_c); private interface in norm_parts.h. Sums are kept in double;
 * unit-stride lines are specialized for each pair of steps so every loop vectorizes. */
#include <string.h>

#include "norm_parts.h"

const float nd_norm_one = 1.0f, nd_norm_zero = 0.0f;

typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

#define ND_ALWAYS_INLINE static inline __attribute__((always_inline))

static v8f load8(const float *a)
{
    v8f x;
    memcpy(&x, a, sizeof x); /* unaligned vector load */
    return x;
}

static v8d load_as_double(const float *a)
{
    return __builtin_convertvector(load8(a), v8d);
}

/* Eight elements of an operand from element i on: loaded (step 1) or broadcast (step 0). */
ND_ALWAYS_INLINE v8f operand8(const float *a, int64_t i, int64_t step)
{
    if (step) return load8(a + i);
    return (v8f){0} + a[0];
}

/* Element i of an operand: a[i] (step 1) or its single value a0, read once before the loop so the
 * loop's stores cannot be taken to change it. */
ND_ALWAYS_INLINE float pick(const float *a, float a0, int64_t i, int64_t step)
{
    return step ? a[i] : a0;
}

static double horizontal_sum(v8d acc)
{
    double total = 0.0;
    for (int j = 0; j < 8; j++) total += acc[j];
    return total;
}

/* Calls body(args..., stride, stat_step, param_step) with constant steps on unit-stride lines,
 * so that the compiler emits one vectorized loop per combination. */
#define SPECIALIZED(body, stride, ops, ...)                                                     \
    do {                                                                                        \
        if ((stride) != 1)                                                                      \
            body(__VA_ARGS__, stride, (ops)->stat_step, (ops)->param_step);                     \
        else if (!(ops)->stat_step)                                                             \
            (ops)->param_step ? body(__VA_ARGS__, 1, 0, 1) : body(__VA_ARGS__, 1, 0, 0);        \
        else                                                                                    \
            (ops)->param_step ? body(__VA_ARGS__, 1, 1, 1) : body(__VA_ARGS__, 1, 1, 0);        \
    } while (0)

/* Unit stride keeps two vector accumulators (a fixed reassociation, independent of threads);
 * other strides sum in order. */
double nd_norm_line_sum(const float *a, int64_t n, int64_t stride)
{
    double total = 0.0;
    int64_t i = 0;
    if (stride == 1) {
        v8d acc0 = {0}, acc1 = {0};
        for (; i + 16 <= n; i += 16) {
            acc0 += load_as_double(a + i);
            acc1 += load_as_double(a + i + 8);
        }
        total = horizontal_sum(acc0 + acc1);
    }
    for (; i < n; i++) total += a[i * stride];
    return total;
}

double nd_norm_line_squared_deviation(const float *a, int64_t n, int64_t stride, double mean)
{
    double total = 0.0;
    int64_t i = 0;
    if (stride == 1) {
        v8d acc0 = {0}, acc1 = {0};
        for (; i + 16 <= n; i += 16) {
            v8d d0 = load_as_double(a + i) - mean, d1 = load_as_double(a + i + 8) - mean;
            acc0 += d0 * d0;
            acc1 += d1 * d1;
        }
        total = horizontal_sum(acc0 + acc1);
    }
    for (; i < n; i++) {
        double d = a[i * stride] - mean;
        total += d * d;
    }
    return total;
}

ND_ALWAYS_INLINE void gradient_sums(const float *g, const float *x, int64_t n,
                                    const nd_norm_line *ops, double *sum_h, double *sum_hx,
                                    int64_t stride, int64_t s, int64_t p)
{
    double total_h = 0.0, total_hx = 0.0;
    int64_t i = 0;
    if (stride == 1) {
        v8d acc_h = {0}, acc_hx = {0};
        for (; i + 8 <= n; i += 8) {
            v8f h = load8(g + i) * operand8(ops->weight, i, p);
            v8f xhat = (load8(x + i) - operand8(ops->shift, i, s)) * operand8(ops->scale, i, s);
            v8d hd = __builtin_convertvector(h, v8d);
            acc_h += hd;
            acc_hx += hd * __builtin_convertvector(xhat, v8d);
        }
        total_h = horizontal_sum(acc_h);
        total_hx = horizontal_sum(acc_hx);
    }
    for (; i < n; i++) {
        float h = g[i * stride] * ops->weight[i * p];
        float xhat = (x[i * stride] - ops->shift[i * s]) * ops->scale[i * s];
        total_h += h;
        total_hx += (double)h * xhat;
    }
    *sum_h = total_h;
    *sum_hx = total_hx;
}

void nd_norm_line_gradient_sums(const float *g, const float *x, int64_t n, int64_t stride,
                                const nd_norm_line *ops, double *sum_h, double *sum_hx)
{
    SPECIALIZED(gradient_sums, stride, ops, g, x, n, ops, sum_h, sum_hx);
}

ND_ALWAYS_INLINE void accumulate(const float *g, const float *x, int64_t n,
                                 const nd_norm_line *ops, double *sum_h, double *sum_hx,
                                 int64_t stride, int64_t s, int64_t p)
{
    const float *weight = ops->weight, *shift = ops->shift, *scale = ops->scale;
    float weight0 = weight[0], shift0 = shift[0], scale0 = scale[0];
    for (int64_t i = 0; i < n; i++) {
        float h = g[i * stride] * pick(weight, weight0, i, p);
        float xhat = (x[i * stride] - pick(shift, shift0, i, s)) * pick(scale, scale0, i, s);
        sum_h[i] += h;
        sum_hx[i] += (double)h * xhat;
    }
}

void nd_norm_line_accumulate(const float *g, const float *x, int64_t n, int64_t stride,
                             const nd_norm_line *ops, double *sum_h, double *sum_hx)
{
    SPECIALIZED(accumulate, stride, ops, g, x, n, ops, sum_h, sum_hx);
}

ND_ALWAYS_INLINE void affine(const float *x, float *out, int64_t n, const nd_norm_line *ops,
                             int64_t stride, int64_t s, int64_t p)
{
    const float *shift = ops->shift, *scale = ops->scale, *weight = ops->weight, *bias = ops->bias;
    float shift0 = shift[0], scale0 = scale[0], weight0 = weight[0], bias0 = bias[0];
    for (int64_t i = 0; i < n; i++) {
        int64_t at = i * stride;
        float xhat = (x[at] - pick(shift, shift0, i, s)) * pick(scale, scale0, i, s);
        out[at] = xhat * pick(weight, weight0, i, p) + pick(bias, bias0, i, p);
    }
}

void nd_norm_line_affine(const float *x, float *out, int64_t n, int64_t stride,
                         const nd_norm_line *ops)
{
    SPECIALIZED(affine, stride, ops, x, out, n, ops);
}

/* h is rounded before mean_h is subtracted, as mean_h was summed from rounded h: a contracted
 * fma(g, weight, -mean_h) would leave h's rounding error, which a group of one member (exactly 0)
 * amplifies by 1 / sqrt(eps). */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
ND_ALWAYS_INLINE void gradient(const float *g, const float *x, float *out, int64_t n,
                               const nd_norm_line *ops, int64_t stride, int64_t s, int64_t p)
{
    const float *shift = ops->shift, *scale = ops->scale, *mean_h = ops->mean_h;
    const float *projection = ops->projection, *inv_std = ops->inv_std, *weight = ops->weight;
    float shift0 = shift[0], scale0 = scale[0], mean_h0 = mean_h[0], projection0 = projection[0];
    float inv_std0 = inv_std[0], weight0 = weight[0];
    for (int64_t i = 0; i < n; i++) {
        int64_t at = i * stride;
        float xhat = (x[at] - pick(shift, shift0, i, s)) * pick(scale, scale0, i, s);
        out[at] = (g[at] * pick(weight, weight0, i, p) - pick(mean_h, mean_h0, i, s)
                   - xhat * pick(projection, projection0, i, s)) * pick(inv_std, inv_std0, i, s);
    }
}

void nd_norm_line_gradient(const float *g, const float *x, float *out, int64_t n, int64_t stride,
                           const nd_norm_line *ops)
{
    SPECIALIZED(gradient, stride, ops, g, x, out, n, ops);
}
#pragma GCC pop_options
