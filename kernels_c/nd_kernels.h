/* The ABI of the engine's CPU kernels: flat C11 functions over float32 buffers.
 * Kernel layer (kernels_c); loaded with ctypes by kernels_c/loader.py, never includes engine code.
 *
 * Conventions
 * - Every kernel is `int nd_<op>_f32(inputs..., out, sizes...)` and returns ND_OK (0) or one of
 *   the ND_ERR_* codes below; it never aborts and never writes out of bounds when it reports an
 *   error (checks happen before any write).
 * - Sizes, offsets and strides count elements (never bytes) and are int64_t; strides may be 0
 *   (broadcast) or negative (flip). Strided kernels receive the element count of each buffer
 *   (`*_len`) and refuse any access outside it.
 * - "Compact" data is dense row-major starting at element 0.
 * - Ranks of strided kernels are 0..ND_MAX_RANK.
 * - Memory: kernels allocate nothing, except nd_sgemm_f32 / nd_matmul_f32, the conv kernels and
 *   nd_max_pool2d_backward_f32 with overlapping windows (see pool.c below).
 *   sgemm takes its packing buffers from a per-thread scratch block kept between calls (at most
 *   4 MiB per thread, freed at thread exit); larger requests (the tiled path at m >~ 2700) use
 *   aligned_alloc/free per call, and the direct small-matrix path (m*n*k <= 2^26, AVX-512 builds)
 *   allocates nothing when B's columns are unit-stride. The nd_conv2d_*_f32 kernels allocate
 *   im2col chunk buffers of about 1 MB per thread plus one weight-gradient accumulator per thread,
 *   freed before returning; their direct path (c*kh*kw <= 32, groups == 1, conv_direct.c) instead
 *   allocates a k-padded weight copy plus, per thread, a zero-padded image and, for the weight
 *   gradient, a (c*kh*kw, k rounded up to 16) accumulator. Allocation failure gives ND_ERR_NOMEM.
 * - The only global mutable state is the thread count (nd_set_num_threads) and sgemm's
 *   per-thread scratch; every OpenMP region
 *   passes it in a num_threads clause, so no kernel uses more threads than asked.
 * - Optimized kernels (sgemm, conv) have a naive twin `..._naive_f32` with the same signature: the
 *   reference in tests and the fallback for tiny problems.
 */
#ifndef ND_KERNELS_H
#define ND_KERNELS_H

#include <stdint.h>

#define ND_MAX_RANK 8

enum {
    ND_OK = 0,
    ND_ERR_RANK = 1,   /* rank outside 0..ND_MAX_RANK */
    ND_ERR_SIZE = 2,   /* a negative size, or sizes that disagree with each other */
    ND_ERR_BOUNDS = 3, /* a strided access would fall outside its buffer */
    ND_ERR_NULL = 4,   /* a NULL buffer where elements are accessed */
    ND_ERR_NOMEM = 5,  /* a packing / scratch allocation failed */
    ND_ERR_ARG = 6     /* another invalid argument (threads < 1, groups not dividing channels) */
};

/* threads.c */
int nd_set_num_threads(int n);
int nd_get_num_threads(void);
int nd_threads_for(int64_t work, int64_t min_work_per_thread);
int nd_thread_rows(int64_t rows, int64_t *begin, int64_t *end);

/* memory.c: out[0:size] = value */
int nd_fill_f32(float *out, float value, int64_t size);

/* strided.c: `shape`/`strides` hold `ndim` entries; i runs over row-major `shape`.
 * compact:        out[i] = a[offset + sum_d idx_d(i) * strides[d]]
 * ewise_setitem:  out[offset + sum_d idx_d(i) * strides[d]] = a[i]
 * scalar_setitem: out[offset + sum_d idx_d(i) * strides[d]] = value, size == prod(shape) */
int nd_compact_f32(const float *a, float *out, int64_t a_len, int64_t out_len, int64_t ndim,
                   const int64_t *shape, const int64_t *strides, int64_t offset);
int nd_ewise_setitem_f32(const float *a, float *out, int64_t a_len, int64_t out_len, int64_t ndim,
                         const int64_t *shape, const int64_t *strides, int64_t offset);
int nd_scalar_setitem_f32(float value, float *out, int64_t size, int64_t out_len, int64_t ndim,
                          const int64_t *shape, const int64_t *strides, int64_t offset);

/* ewise.c: compact operands of `size` elements; out may alias an input.
 * Comparisons give 0.f / 1.f; maximum propagates NaN like numpy. */
int nd_ewise_add_f32(const float *a, const float *b, float *out, int64_t size);
int nd_ewise_mul_f32(const float *a, const float *b, float *out, int64_t size);
int nd_ewise_div_f32(const float *a, const float *b, float *out, int64_t size);
int nd_ewise_maximum_f32(const float *a, const float *b, float *out, int64_t size);
int nd_ewise_eq_f32(const float *a, const float *b, float *out, int64_t size);
int nd_ewise_ge_f32(const float *a, const float *b, float *out, int64_t size);
int nd_ewise_gt_f32(const float *a, const float *b, float *out, int64_t size);

int nd_scalar_add_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_mul_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_div_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_maximum_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_eq_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_ge_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_gt_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_power_f32(const float *a, float value, float *out, int64_t size);
int nd_scalar_rdiv_f32(const float *a, float value, float *out, int64_t size); /* value / a */

int nd_ewise_neg_f32(const float *a, float *out, int64_t size);
int nd_ewise_log_f32(const float *a, float *out, int64_t size);
int nd_ewise_exp_f32(const float *a, float *out, int64_t size);
int nd_ewise_tanh_f32(const float *a, float *out, int64_t size);
int nd_ewise_relu_f32(const float *a, float *out, int64_t size);
int nd_ewise_sigmoid_f32(const float *a, float *out, int64_t size);
int nd_ewise_sqrt_f32(const float *a, float *out, int64_t size);
int nd_ewise_relu_grad_f32(const float *g, const float *x, float *out, int64_t size);
int nd_ewise_add_scaled_f32(const float *a, const float *b, float value, float *out,
                            int64_t size); /* a + value * b */
int nd_ewise_axpby_f32(const float *a, const float *b, float alpha, float beta, float *out,
                       int64_t size); /* alpha * a + beta * b */
/* a and out compact over size, row over period (>= 1, dividing size; size 0 writes nothing):
 * out[i] = a[i] OP row[i % period], a broadcast bias or scale. */
int nd_ewise_add_row_f32(const float *a, const float *row, float *out, int64_t size,
                         int64_t period);
int nd_ewise_mul_row_f32(const float *a, const float *row, float *out, int64_t size,
                         int64_t period);

/* dropout.c: out[i] = a[i] * scale where (hash(seed, i) >> 8) >= threshold, else 0 (a dropped
 * NaN or inf too), hash being the device protocol's (fmix32 of (i * 0x9E3779B9) ^ seed, uint32).
 * size <= 2^32, 0 <= threshold <= 2^24, 0 <= seed < 2^32, else ND_ERR_SIZE; out may alias a; the
 * result does not depend on the thread count. */
int nd_ewise_dropout_f32(const float *a, float *out, int64_t size, int64_t threshold, float scale,
                         int64_t seed);
/* Elements [begin, end) of the same rule, arguments unchecked (matmul.c's dropout epilogue, on
 * ranges of an output it checked). */
void nd_dropout_range_f32(const float *a, float *out, int64_t begin, int64_t end,
                          uint32_t threshold, float scale, uint32_t seed);

/* optim.c: one update of `count` parameters, in place; ws[t], gs[t] and the state buffers hold
 * sizes[t] elements each, d = g + weight_decay * w (g when weight_decay is 0).
 * sgd:  us NULL: w -= step * d; else u' = keep * u + take * d, w = w - step * u' (+ lookback * u
 *       when lookback != 0), u = u'
 * adam: m = keep1 * m + take1 * d, v = keep2 * v + take2 * d * d, w -= step * m / (sqrt(v) + eps) */
int nd_sgd_update_f32(float *const *ws, const float *const *gs, float *const *us,
                      const int64_t *sizes, int64_t count, float weight_decay, float keep,
                      float take, float step, float lookback);
int nd_adam_update_f32(float *const *ws, const float *const *gs, float *const *ms,
                       float *const *vs, const int64_t *sizes, int64_t count,
                       float weight_decay, float keep1, float take1, float keep2, float take2,
                       float eps, float step);

/* reduce.c: over the last axis of compact a (out_size, reduce_size).
 * reduce_max needs reduce_size >= 1 and propagates NaN; logsumexp of an empty row is -inf. */
int nd_reduce_sum_f32(const float *a, float *out, int64_t reduce_size, int64_t out_size);
int nd_reduce_max_f32(const float *a, float *out, int64_t reduce_size, int64_t out_size);
int nd_reduce_logsumexp_f32(const float *a, float *out, int64_t reduce_size, int64_t out_size);

/* softmax_xent.c: compact logits z (rows, classes), labels (rows,) as floats, lse_i the value
 * nd_reduce_logsumexp_f32 gives row i. A label is valid when 0 <= label < classes (NaN is not)
 * and names class (int64_t)label; an invalid one makes its row NaN, and z is never read outside.
 * xent:  out[i] = lse_i - z[i, label_i]; classes == 0 gives all NaN.
 * grad:  out[i, j] = g[i] * (exp(z[i, j] - lse_i) - (j == label_i)), out (rows, classes);
 *        out may alias z. rows == 0 (either) or classes == 0 (grad) writes nothing. */
int nd_softmax_xent_f32(const float *z, const float *labels, float *out, int64_t classes,
                        int64_t rows);
int nd_softmax_xent_grad_f32(const float *z, const float *labels, const float *g, float *out,
                             int64_t classes, int64_t rows);

/* norm.c: group i < groups has members x[i*group_stride + j*member_stride], j < members (per row
 * of a compact (rows, cols) array: (rows, cols, cols, 1); per column: (cols, rows, 1, cols));
 * g, xhat and out are indexed alike, stats is compact (2 * groups). Strides must be >= 0.
 * forward:  stats[i] = mean_i, stats[groups + i] = var_i (biased, two-pass, summed in double),
 *           out = (x - mean_i) / sqrt(var_i + eps); members == 0 gives NaN stats only.
 * backward: out = (g - mean_j(g) - xhat * mean_j(g * xhat)) / sqrt(var_i + eps) with var_i read
 *           from stats; members == 0 writes nothing.
 * out may alias x (forward) or g / xhat (backward) element for element; results do not depend on
 * the thread count. Overlapping groups run serially, group after group. */
int nd_norm_forward_f32(const float *x, float *out, float *stats, int64_t groups, int64_t members,
                        int64_t group_stride, int64_t member_stride, double eps);
int nd_norm_backward_f32(const float *g, const float *xhat, const float *stats, float *out,
                         int64_t groups, int64_t members, int64_t group_stride,
                         int64_t member_stride, double eps);
/* norm.c, with a learned scale and shift (norm_parameter_grads.c, norm_lines.c): one parameter
 * per group (per_member 0, batch norm) or per member (per_member 1, layer norm), p = i or j;
 * weight, bias, weight_grad and bias_grad are compact with that many elements; per_member other
 * than 0 or 1 gives ND_ERR_ARG.
 * forward:  norm_forward's stats, out = weight[p] * xhat + bias[p] (out may alias x); running
 *           (NULL: none; else compact, 2 * groups elements overlapping no other buffer: batch
 *           norm's running mean and variance) then becomes keep * running + take * stats as
 *           nd_ewise_axpby_f32 computes it (NaN with members 0; untouched with groups 0);
 *           relu 1 then applies ReLU to out as nd_ewise_relu_f32 does (other values than 0 or 1:
 *           ND_ERR_ARG): a layer's normalization and activation in one call.
 * backward: xhat = (x - mean_i) / sqrt(var_i + eps) from stats, h = weight[p] * g,
 *           out = norm_backward's out for the cotangent h, weight_grad[p] = sum of g * xhat and
 *           bias_grad[p] = sum of g over parameter p's elements (0 with none: groups or members 0
 *           write only those zeros). out, weight_grad and bias_grad overlap no input.
 * Per-group sums are the ones the gradient needs anyway; per-member sums are a second pass that
 * splits members among threads. Results do not depend on the thread count. */
int nd_norm_affine_forward_f32(const float *x, const float *weight, const float *bias, float *out,
                               float *stats, int64_t groups, int64_t members,
                               int64_t group_stride, int64_t member_stride, double eps,
                               int per_member, float *running, float keep, float take,
                               int relu);
int nd_norm_affine_backward_f32(const float *g, const float *x, const float *stats,
                                const float *weight, float *out, float *weight_grad,
                                float *bias_grad, int64_t groups, int64_t members,
                                int64_t group_stride, int64_t member_stride, double eps,
                                int per_member);

/* sgemm.c
 * nd_sgemm_f32: C[i, j] (+)= sum_l A[i, l] * B[l, j] with A[i, l] = a[i*a_rs + l*a_cs],
 * B[l, j] = b[l*b_rs + j*b_cs], C[i, j] = c[i*ldc + j]; accumulate = 0 overwrites C.
 * nthreads <= 1 runs on the calling thread (callers inside a parallel region pass 1). */
int nd_sgemm_f32(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k,
                 int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs, int64_t ldc,
                 int accumulate, int nthreads);
int nd_sgemm_naive_f32(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k,
                       int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs, int64_t ldc,
                       int accumulate, int nthreads);
/* The protocol's batched matmul: out (batch, m, n) compact,
 * A[t, i, l] = a[a_offset + t*a_bs + i*a_rs + l*a_cs], B alike; bounds-checked against *_len. */
int nd_matmul_f32(const float *a, const float *b, float *out, int64_t a_len, int64_t b_len,
                  int64_t out_len, int64_t batch, int64_t m, int64_t k, int64_t n,
                  int64_t a_offset, int64_t a_bs, int64_t a_rs, int64_t a_cs,
                  int64_t b_offset, int64_t b_bs, int64_t b_rs, int64_t b_cs);
/* nd_matmul_f32 with its sizes in one array of 21, in the same order (a_len, b_len, out_len,
 * batch, m, k, n, a_offset, a_bs, a_rs, a_cs, b_offset, b_bs, b_rs, b_cs), then gate_len, relu,
 * bias_len, dropout (1 applies it), its threshold and seed: from Python, converting 15 separate
 * int64 arguments costs more than the kernel on a 100x100 matrix. Epilogues, in this order: a
 * non-NULL bias (bias_len >= n elements, else ND_ERR_BOUNDS) is added to every row; dropout as
 * nd_ewise_dropout_f32 with dropout_scale (threshold <= 2^24, seed < 2^32, batch*m*n <= 2^32,
 * else ND_ERR_SIZE); a non-NULL gate (compact like out, gate_len >= batch*m*n elements, else
 * ND_ERR_BOUNDS) zeroes out where gate <= 0 (ReLU's gradient); relu 1 applies ReLU as
 * nd_ewise_relu_f32 does. A layer's product, bias, activation and dropout in one call. */
int nd_matmul_sizes_f32(const float *a, const float *b, float *out, const float *gate,
                        const float *bias, float dropout_scale, const int64_t *sizes);
int nd_matmul_naive_f32(const float *a, const float *b, float *out, int64_t a_len, int64_t b_len,
                        int64_t out_len, int64_t batch, int64_t m, int64_t k, int64_t n,
                        int64_t a_offset, int64_t a_bs, int64_t a_rs, int64_t a_cs,
                        int64_t b_offset, int64_t b_bs, int64_t b_rs, int64_t b_cs);

/* conv.c: NHWC x (n, h, w, c), weight (kh, kw, c/groups, k), y (n, oh, ow, k), implicit zero
 * padding: y[b, oy, ox, g*kg + q] = sum_{ky, kx, ci} w[ky, kx, ci, g*kg + q] *
 *     x[b, oy*stride_h - pad_h + ky*dil_h, ox*stride_w - pad_w + kx*dil_w, g*cg + ci]
 * with cg = c / groups, kg = k / groups; oh, ow must match the other sizes.
 * backward_input overwrites gx (n, h, w, c); backward_weight overwrites gw (kh, kw, cg, k). */
int nd_conv2d_forward_f32(const float *x, const float *w, float *y, int64_t n, int64_t h,
                          int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw, int64_t oh,
                          int64_t ow, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                          int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups);
int nd_conv2d_backward_input_f32(const float *gy, const float *w, float *gx, int64_t n, int64_t h,
                                 int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw,
                                 int64_t oh, int64_t ow, int64_t stride_h, int64_t stride_w,
                                 int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                                 int64_t groups);
int nd_conv2d_backward_weight_f32(const float *x, const float *gy, float *gw, int64_t n, int64_t h,
                                  int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw,
                                  int64_t oh, int64_t ow, int64_t stride_h, int64_t stride_w,
                                  int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                                  int64_t groups);
int nd_conv2d_forward_naive_f32(const float *x, const float *w, float *y, int64_t n, int64_t h,
                                int64_t w_, int64_t c, int64_t k, int64_t kh, int64_t kw,
                                int64_t oh, int64_t ow, int64_t stride_h, int64_t stride_w,
                                int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                                int64_t groups);
int nd_conv2d_backward_input_naive_f32(const float *gy, const float *w, float *gx, int64_t n,
                                       int64_t h, int64_t w_, int64_t c, int64_t k, int64_t kh,
                                       int64_t kw, int64_t oh, int64_t ow, int64_t stride_h,
                                       int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                       int64_t dil_h, int64_t dil_w, int64_t groups);
int nd_conv2d_backward_weight_naive_f32(const float *x, const float *gy, float *gw, int64_t n,
                                        int64_t h, int64_t w_, int64_t c, int64_t k, int64_t kh,
                                        int64_t kw, int64_t oh, int64_t ow, int64_t stride_h,
                                        int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                        int64_t dil_h, int64_t dil_w, int64_t groups);


/* pool.c: max pooling, NHWC x (n, h, w, c), out and gy (n, oh, ow, c), gx (n, h, w, c); window
 * (oy, ox) covers x rows oy*stride_h - pad_h + r (r < kh), columns alike; padding is outside x and
 * never wins; 2 * pad <= kernel and oh, ow must match the other sizes (else ND_ERR_SIZE).
 * forward:  out = each window's maximum over the x elements it covers (NaN if one is NaN, -inf
 *           if it covers none).
 * backward: gx overwritten: window o sends gy[o] / ties_o to each covered element equal to
 *           out[o] (ties_o of them), NaN to every covered element when none is; an element sums
 *           what its windows send in the numpy spec's tap order (0 from none). Non-overlapping
 *           windows (stride >= kernel) take one pass; overlapping ones allocate two (n, oh, ow, c)
 *           scratch arrays (ND_ERR_NOMEM if that fails). Results do not depend on the thread
 *           count. */
int nd_max_pool2d_forward_f32(const float *x, float *out, int64_t n, int64_t h, int64_t w_,
                              int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                              int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w);
int nd_max_pool2d_backward_f32(const float *x, const float *out, const float *gy, float *gx,
                               int64_t n, int64_t h, int64_t w_, int64_t c, int64_t kh,
                               int64_t kw, int64_t oh, int64_t ow, int64_t stride_h,
                               int64_t stride_w, int64_t pad_h, int64_t pad_w);

/* pool_avg.c: average pooling, same layout, windows and size rules as max pooling above; padding
 * counts as zeros (every window divides by kh * kw, PyTorch's count_include_pad).
 * forward:  out = each window's sum over the x elements it covers (taps row-major) / (kh * kw).
 * backward: gx overwritten: window o sends gy[o] / (kh * kw) to each covered element; an element
 *           sums what its windows send in the numpy spec's tap order (0 from none). Allocates
 *           nothing; results do not depend on the thread count. */
int nd_avg_pool2d_forward_f32(const float *x, float *out, int64_t n, int64_t h, int64_t w_,
                              int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                              int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w);
int nd_avg_pool2d_backward_f32(const float *gy, float *gx, int64_t n, int64_t h, int64_t w_,
                               int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                               int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w);

#endif
