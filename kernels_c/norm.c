/* Normalization over one axis (layer norm per row, batch norm per column), plain or with a learned
 * scale and shift: forward and backward. Kernel layer (kernels_c); ABI in nd_kernels.h. Sums are
 * kept in double and the variance is two-pass (mean first, then the mean squared deviation), so
 * long or offset groups lose nothing. Line kernels: norm_lines.c; per-member parameter gradients:
 * norm_parameter_grads.c. */
#include <math.h>
#include <stddef.h>

#include "nd_kernels.h"
#include "norm_parts.h"

/* One forward call (weight NULL: the plain norm_forward). */
typedef struct {
    const float *x, *weight, *bias;
    float *out, *stats;
    int64_t groups, members, group_stride, member_stride;
    double eps;
    int per_member;
} forward_args;

typedef nd_norm_backward_args backward_args;

/* The weight and bias of a line whose elements share parameter `index` (step 0) or run through
 * the parameters from `index` on (step 1); without a weight, the identity. */
static void set_parameters(nd_norm_line *ops, const float *weight, const float *bias,
                           int64_t index, int64_t step)
{
    if (!weight) {
        ops->weight = &nd_norm_one;
        ops->bias = &nd_norm_zero;
        ops->param_step = 0;
        return;
    }
    ops->weight = weight + index;
    ops->bias = bias ? bias + index : &nd_norm_zero;
    ops->param_step = step;
}

/* Group i, all of its members read before any is written (out may alias x). */
static void forward_group(const forward_args *a, int64_t i)
{
    int64_t n = a->members, stride = n == 1 ? 1 : a->member_stride;
    const float *x = a->x + i * a->group_stride;
    double mean = nd_norm_line_sum(x, n, stride) / (double)n;
    double var = nd_norm_line_squared_deviation(x, n, stride, mean) / (double)n;
    float shift = (float)mean, scale = nd_norm_inverse_std(var, a->eps);
    a->stats[i] = shift;
    a->stats[a->groups + i] = (float)var;
    nd_norm_line ops = {.shift = &shift, .scale = &scale, .stat_step = 0};
    set_parameters(&ops, a->weight, a->bias, a->per_member ? 0 : i, a->per_member);
    nd_norm_line_affine(x, a->out + i * a->group_stride, n, stride, &ops);
}

/* Group i of a backward call. A group's own weight factors out of its sums (which then are its
 * weight_grad and bias_grad); per-member weights enter them. */
static void backward_group(const backward_args *a, int64_t i)
{
    int64_t n = a->members, stride = n == 1 ? 1 : a->member_stride, at = i * a->group_stride;
    float inv_std = nd_norm_inverse_std(a->stats[a->groups + i], a->eps);
    float shift = a->x_is_xhat ? 0.0f : a->stats[i], scale = a->x_is_xhat ? 1.0f : inv_std;
    nd_norm_line ops = {.shift = &shift, .scale = &scale, .inv_std = &inv_std, .stat_step = 0};
    set_parameters(&ops, a->per_member ? a->weight : NULL, NULL, 0, 1);
    double sum_h, sum_hx, factor = 1.0;
    nd_norm_line_gradient_sums(a->g + at, a->x + at, n, stride, &ops, &sum_h, &sum_hx);
    if (a->weight && !a->per_member) {
        a->weight_grad[i] = (float)sum_hx;
        a->bias_grad[i] = (float)sum_h;
        factor = a->weight[i];
    }
    float mean_h = (float)(factor * sum_h / (double)n);
    float projection = (float)(factor * sum_hx / (double)n);
    ops.mean_h = &mean_h;
    ops.projection = &projection;
    set_parameters(&ops, a->weight, NULL, a->per_member ? 0 : i, a->per_member);
    nd_norm_line_gradient(a->g + at, a->x + at, a->out + at, n, stride, &ops);
}

/* Columns [c0, c0 + width) of the per-column layout (group i at column i, member j at row j *
 * member_stride), width <= ND_NORM_COLUMN_BLOCK: sweeps over rows, each a unit-stride loop that
 * vectorizes across columns, so no column is walked with a stride. */
static void forward_columns(const forward_args *a, int64_t c0, int64_t width)
{
    int64_t rows = a->members, row_stride = a->member_stride;
    double sum[ND_NORM_COLUMN_BLOCK], mean[ND_NORM_COLUMN_BLOCK];
    float shift[ND_NORM_COLUMN_BLOCK], scale[ND_NORM_COLUMN_BLOCK];
    for (int64_t i = 0; i < width; i++) sum[i] = 0.0;
    for (int64_t j = 0; j < rows; j++) {
        const float *row = a->x + j * row_stride + c0;
        for (int64_t i = 0; i < width; i++) sum[i] += row[i];
    }
    for (int64_t i = 0; i < width; i++) {
        mean[i] = sum[i] / (double)rows;
        sum[i] = 0.0;
    }
    for (int64_t j = 0; j < rows; j++) {
        const float *row = a->x + j * row_stride + c0;
        for (int64_t i = 0; i < width; i++) {
            double d = row[i] - mean[i];
            sum[i] += d * d;
        }
    }
    for (int64_t i = 0; i < width; i++) {
        double var = sum[i] / (double)rows;
        shift[i] = (float)mean[i];
        scale[i] = nd_norm_inverse_std(var, a->eps);
        a->stats[c0 + i] = shift[i];
        a->stats[a->groups + c0 + i] = (float)var;
    }
    nd_norm_line ops = {.shift = shift, .scale = scale, .stat_step = 1};
    for (int64_t j = 0; j < rows; j++) {
        set_parameters(&ops, a->weight, a->bias, a->per_member ? j : c0, !a->per_member);
        nd_norm_line_affine(a->x + j * row_stride + c0, a->out + j * row_stride + c0, width, 1,
                            &ops);
    }
}

static void backward_columns(const backward_args *a, int64_t c0, int64_t width)
{
    int64_t rows = a->members, row_stride = a->member_stride;
    double sum_h[ND_NORM_COLUMN_BLOCK], sum_hx[ND_NORM_COLUMN_BLOCK];
    float shift[ND_NORM_COLUMN_BLOCK], scale[ND_NORM_COLUMN_BLOCK], inv_std[ND_NORM_COLUMN_BLOCK];
    float mean_h[ND_NORM_COLUMN_BLOCK], projection[ND_NORM_COLUMN_BLOCK];
    for (int64_t i = 0; i < width; i++) {
        inv_std[i] = nd_norm_inverse_std(a->stats[a->groups + c0 + i], a->eps);
        shift[i] = a->x_is_xhat ? 0.0f : a->stats[c0 + i];
        scale[i] = a->x_is_xhat ? 1.0f : inv_std[i];
        sum_h[i] = sum_hx[i] = 0.0;
    }
    nd_norm_line ops = {.shift = shift, .scale = scale, .mean_h = mean_h,
                        .projection = projection, .inv_std = inv_std, .stat_step = 1};
    for (int64_t j = 0; j < rows; j++) {
        set_parameters(&ops, a->per_member ? a->weight : NULL, NULL, j, 0);
        int64_t at = j * row_stride + c0;
        nd_norm_line_accumulate(a->g + at, a->x + at, width, 1, &ops, sum_h, sum_hx);
    }
    for (int64_t i = 0; i < width; i++) {
        double factor = 1.0;
        if (a->weight && !a->per_member) {
            a->weight_grad[c0 + i] = (float)sum_hx[i];
            a->bias_grad[c0 + i] = (float)sum_h[i];
            factor = a->weight[c0 + i];
        }
        mean_h[i] = (float)(factor * sum_h[i] / (double)rows);
        projection[i] = (float)(factor * sum_hx[i] / (double)rows);
    }
    for (int64_t j = 0; j < rows; j++) {
        set_parameters(&ops, a->weight, NULL, a->per_member ? j : c0, !a->per_member);
        int64_t at = j * row_stride + c0;
        nd_norm_line_gradient(a->g + at, a->x + at, a->out + at, width, 1, &ops);
    }
}

enum layout { PER_GROUP, PER_COLUMN };

/* Which loop structure fits, and whether groups are disjoint (only then may threads split them;
 * overlapping groups run serially in the spec's order, group after group). */
static enum layout choose_layout(int64_t groups, int64_t members, int64_t group_stride,
                                 int64_t member_stride, int *disjoint)
{
    int unit_members = member_stride == 1 || members == 1;
    if (unit_members && (groups == 1 || group_stride >= members)) {
        *disjoint = 1;
        return PER_GROUP;
    }
    if ((group_stride == 1 || groups == 1) && (members == 1 || member_stride >= groups)) {
        *disjoint = 1;
        return PER_COLUMN;
    }
    *disjoint = 0;
    return PER_GROUP;
}

static int norm_threads(int64_t groups, int64_t members, enum layout layout, int disjoint)
{
    if (!disjoint) return 1;
    int threads = nd_threads_for(groups * members, ND_NORM_GRAIN);
    int64_t units = layout == PER_COLUMN ? (groups + ND_NORM_COLUMN_UNIT - 1) / ND_NORM_COLUMN_UNIT
                                         : groups;
    return threads > units ? (int)units : threads;
}

/* This caller's share [first, last) of the columns, in whole units; the callers below walk it in
 * stack-sized blocks. Each column's arithmetic does not depend on the block or thread that
 * computes it, so results are identical for any thread count. */
static void column_share(int64_t groups, int64_t *first, int64_t *last)
{
    int64_t units = (groups + ND_NORM_COLUMN_UNIT - 1) / ND_NORM_COLUMN_UNIT, begin, end;
    nd_thread_rows(units, &begin, &end);
    *first = begin * ND_NORM_COLUMN_UNIT;
    *last = end * ND_NORM_COLUMN_UNIT < groups ? end * ND_NORM_COLUMN_UNIT : groups;
}

static void forward_column_share(const forward_args *a)
{
    int64_t first, last;
    column_share(a->groups, &first, &last);
    for (int64_t c0 = first; c0 < last; c0 += ND_NORM_COLUMN_BLOCK)
        forward_columns(a, c0, last - c0 < ND_NORM_COLUMN_BLOCK ? last - c0
                                                                : ND_NORM_COLUMN_BLOCK);
}

static void backward_column_share(const backward_args *a)
{
    int64_t first, last;
    column_share(a->groups, &first, &last);
    for (int64_t c0 = first; c0 < last; c0 += ND_NORM_COLUMN_BLOCK)
        backward_columns(a, c0, last - c0 < ND_NORM_COLUMN_BLOCK ? last - c0
                                                                 : ND_NORM_COLUMN_BLOCK);
}

/* Sizes already checked, groups >= 1, members >= 1. */
static void run_forward(const forward_args *a)
{
    int disjoint;
    enum layout layout = choose_layout(a->groups, a->members, a->group_stride, a->member_stride,
                                       &disjoint);
    int threads = norm_threads(a->groups, a->members, layout, disjoint);
    if (layout == PER_COLUMN) {
        /* A single column (groups == 1) may come with any group stride; it is never used. */
        if (threads == 1) {
            forward_column_share(a);
        } else {
#pragma omp parallel num_threads(threads)
            forward_column_share(a);
        }
    } else if (threads == 1) {
        /* No OpenMP region at all: even a serial one costs microseconds per call. */
        for (int64_t i = 0; i < a->groups; i++) forward_group(a, i);
    } else {
#pragma omp parallel for num_threads(threads)
        for (int64_t i = 0; i < a->groups; i++) forward_group(a, i);
    }
}

static void run_backward(const backward_args *a)
{
    int disjoint;
    enum layout layout = choose_layout(a->groups, a->members, a->group_stride, a->member_stride,
                                       &disjoint);
    int threads = norm_threads(a->groups, a->members, layout, disjoint);
    if (layout == PER_COLUMN) {
        if (threads == 1) {
            backward_column_share(a);
        } else {
#pragma omp parallel num_threads(threads)
            backward_column_share(a);
        }
    } else if (threads == 1) {
        for (int64_t i = 0; i < a->groups; i++) backward_group(a, i);
    } else {
#pragma omp parallel for num_threads(threads)
        for (int64_t i = 0; i < a->groups; i++) backward_group(a, i);
    }
    if (a->weight && a->per_member) nd_norm_member_parameter_grads(a);
}

static int check_norm_args(int64_t groups, int64_t members, int64_t group_stride,
                           int64_t member_stride)
{
    if (groups < 0 || members < 0 || group_stride < 0 || member_stride < 0) return ND_ERR_SIZE;
    return ND_OK;
}

/* The checks and edge cases both forward entry points share. */
static int forward(const forward_args *a)
{
    int status = check_norm_args(a->groups, a->members, a->group_stride, a->member_stride);
    if (status != ND_OK) return status;
    if (a->groups == 0) return ND_OK;
    if (!a->stats || (a->members > 0 && (!a->x || !a->out))) return ND_ERR_NULL;
    if (a->members == 0) {
        for (int64_t i = 0; i < 2 * a->groups; i++) a->stats[i] = NAN;
        return ND_OK;
    }
    run_forward(a);
    return ND_OK;
}

int nd_norm_forward_f32(const float *x, float *out, float *stats, int64_t groups, int64_t members,
                        int64_t group_stride, int64_t member_stride, double eps)
{
    forward_args a = {x, NULL, NULL, out, stats, groups, members, group_stride, member_stride,
                      eps, 0};
    return forward(&a);
}

/* running = keep * running + take * stats over 2 * groups elements, written as
 * nd_ewise_axpby_f32 writes it so both contract to the same FMA. Serial: two floats per group
 * (batch norm's channels) cost nothing next to the normalization, and no thread count changes
 * a bit. */
static void update_running(float *running, const float *stats, int64_t count, float keep,
                           float take)
{
    for (int64_t k = 0; k < count; k++) running[k] = keep * running[k] + take * stats[k];
}

/* ReLU along one line of `count` elements `stride` apart, as nd_ewise_relu_f32 computes it (a NaN
 * stays NaN), vectorized: a branch per element would mispredict on half of them. */
static void relu_line(float *line, int64_t count, int64_t stride)
{
    if (stride == 1) {
#pragma omp simd
        for (int64_t j = 0; j < count; j++)
            line[j] = (line[j] > 0.0f || line[j] != line[j]) ? line[j] : 0.0f;
    } else {
#pragma omp simd
        for (int64_t j = 0; j < count; j++) {
            float v = line[j * stride];
            line[j * stride] = (v > 0.0f || v != v) ? v : 0.0f;
        }
    }
}

#define ND_RELU_PIECE 16384 /* elements of a dense run per piece threads share */

/* ReLU over the groups x members elements of out, the smaller stride innermost; a dense layout is
 * one run, cut into pieces so that threads can share it. Elementwise: no thread count changes a
 * bit. */
static void relu_elements(float *out, int64_t groups, int64_t members, int64_t group_stride,
                          int64_t member_stride)
{
    const int members_inner = member_stride <= group_stride;
    int64_t lines = members_inner ? groups : members;
    int64_t length = members_inner ? members : groups;
    int64_t line_stride = members_inner ? group_stride : member_stride;
    const int64_t stride = members_inner ? member_stride : group_stride;
    if (stride == 1 && line_stride == length) {
        const int64_t total = lines * length;
        lines = (total + ND_RELU_PIECE - 1) / ND_RELU_PIECE;
        length = ND_RELU_PIECE;
        line_stride = ND_RELU_PIECE;
        const int threads = nd_threads_for(total, ND_NORM_GRAIN);
#pragma omp parallel for num_threads(threads) if (threads > 1)
        for (int64_t i = 0; i < lines; i++) {
            const int64_t start = i * line_stride;
            relu_line(out + start, total - start < length ? total - start : length, 1);
        }
        return;
    }
    const int threads = nd_threads_for(lines * length, ND_NORM_GRAIN);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < lines; i++) relu_line(out + i * line_stride, length, stride);
}

int nd_norm_affine_forward_f32(const float *x, const float *weight, const float *bias, float *out,
                               float *stats, int64_t groups, int64_t members,
                               int64_t group_stride, int64_t member_stride, double eps,
                               int per_member, float *running, float keep, float take, int relu)
{
    if (per_member != 0 && per_member != 1) return ND_ERR_ARG;
    if (relu != 0 && relu != 1) return ND_ERR_ARG;
    if (groups > 0 && members > 0 && (!weight || !bias)) return ND_ERR_NULL;
    forward_args a = {x, weight, bias, out, stats, groups, members, group_stride, member_stride,
                      eps, per_member};
    int status = forward(&a);
    /* With no members the stats are NaN, and so becomes running, as in the spec. */
    if (status == ND_OK && groups > 0 && running)
        update_running(running, stats, 2 * groups, keep, take);
    if (status == ND_OK && relu && members > 0)
        relu_elements(out, groups, members, group_stride, member_stride);
    return status;
}

int nd_norm_backward_f32(const float *g, const float *xhat, const float *stats, float *out,
                         int64_t groups, int64_t members, int64_t group_stride,
                         int64_t member_stride, double eps)
{
    int status = check_norm_args(groups, members, group_stride, member_stride);
    if (status != ND_OK) return status;
    if (groups == 0 || members == 0) return ND_OK;
    if (!g || !xhat || !stats || !out) return ND_ERR_NULL;
    backward_args a = {g, xhat, stats, NULL, out, NULL, NULL, groups, members, group_stride,
                       member_stride, eps, 0, 1};
    run_backward(&a);
    return ND_OK;
}

int nd_norm_affine_backward_f32(const float *g, const float *x, const float *stats,
                                const float *weight, float *out, float *weight_grad,
                                float *bias_grad, int64_t groups, int64_t members,
                                int64_t group_stride, int64_t member_stride, double eps,
                                int per_member)
{
    int status = check_norm_args(groups, members, group_stride, member_stride);
    if (status != ND_OK) return status;
    if (per_member != 0 && per_member != 1) return ND_ERR_ARG;
    int64_t parameters = per_member ? members : groups;
    if (parameters > 0 && (!weight_grad || !bias_grad)) return ND_ERR_NULL;
    if (groups == 0 || members == 0) {
        /* Sums over no elements. */
        for (int64_t p = 0; p < parameters; p++) weight_grad[p] = bias_grad[p] = 0.0f;
        return ND_OK;
    }
    if (!g || !x || !stats || !weight || !out) return ND_ERR_NULL;
    backward_args a = {g, x, stats, weight, out, weight_grad, bias_grad, groups, members,
                       group_stride, member_stride, eps, per_member, 0};
    run_backward(&a);
    return ND_OK;
}
