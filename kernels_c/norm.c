/* Normalization over one axis (layer norm per row, batch norm per column): forward and backward.
 * Kernel layer (kernels_c); ABI in nd_kernels.h. Sums are kept in double and the variance is
 * two-pass (mean first, then the mean squared deviation), so long or offset groups lose nothing. */
#include <math.h>
#include <string.h>

#include "nd_kernels.h"

/* Elements per thread: each element is read three times (forward) and written once. */
#define ND_NORM_GRAIN 16384
/* Columns per stack block of the per-column path: its double sums stay in L1. */
#define ND_NORM_COLUMN_BLOCK 256
/* Threads of the per-column path split columns in units of a cache line of floats, so no two
 * threads write the same line. */
#define ND_NORM_COLUMN_UNIT 16

typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

static v8d load_as_double(const float *a)
{
    v8f x;
    memcpy(&x, a, sizeof x); /* unaligned vector load */
    return __builtin_convertvector(x, v8d);
}

static double horizontal_sum(v8d acc)
{
    double total = 0.0;
    for (int j = 0; j < 8; j++) total += acc[j];
    return total;
}

/* The three per-group sums. Unit stride keeps two vector accumulators (a fixed reassociation,
 * independent of threads); other strides sum in order. */
static double group_sum(const float *a, int64_t n, int64_t stride)
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

static double group_squared_deviation(const float *a, int64_t n, int64_t stride, double mean)
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

static void group_gradient_sums(const float *g, const float *xhat, int64_t n, int64_t stride,
                                double *sum_g, double *sum_gx)
{
    double total_g = 0.0, total_gx = 0.0;
    int64_t i = 0;
    if (stride == 1) {
        v8d acc_g = {0}, acc_gx = {0};
        for (; i + 8 <= n; i += 8) {
            v8d gv = load_as_double(g + i);
            acc_g += gv;
            acc_gx += gv * load_as_double(xhat + i);
        }
        total_g = horizontal_sum(acc_g);
        total_gx = horizontal_sum(acc_gx);
    }
    for (; i < n; i++) {
        total_g += g[i * stride];
        total_gx += (double)g[i * stride] * xhat[i * stride];
    }
    *sum_g = total_g;
    *sum_gx = total_gx;
}

static float inverse_std(double var, double eps)
{
    return (float)(1.0 / sqrt(var + eps));
}

/* One group, all of its members read before any is written (out may alias x). */
static void forward_group(const float *x, float *out, float *mean_out, float *var_out,
                          int64_t n, int64_t stride, double eps)
{
    double mean = group_sum(x, n, stride) / (double)n;
    double var = group_squared_deviation(x, n, stride, mean) / (double)n;
    float shift = (float)mean, scale = inverse_std(var, eps);
    *mean_out = shift;
    *var_out = (float)var;
    if (stride == 1) {
        for (int64_t i = 0; i < n; i++) out[i] = (x[i] - shift) * scale;
    } else {
        for (int64_t i = 0; i < n; i++) out[i * stride] = (x[i * stride] - shift) * scale;
    }
}

static void backward_group(const float *g, const float *xhat, float var, float *out, int64_t n,
                           int64_t stride, double eps)
{
    double sum_g, sum_gx;
    group_gradient_sums(g, xhat, n, stride, &sum_g, &sum_gx);
    float mean_g = (float)(sum_g / (double)n), projection = (float)(sum_gx / (double)n);
    float scale = inverse_std(var, eps);
    if (stride == 1) {
        for (int64_t i = 0; i < n; i++) out[i] = (g[i] - mean_g - xhat[i] * projection) * scale;
    } else {
        for (int64_t i = 0; i < n; i++) {
            int64_t at = i * stride;
            out[at] = (g[at] - mean_g - xhat[at] * projection) * scale;
        }
    }
}

/* Columns [c0, c0 + width) of the per-column layout (group i at column i, member j at row j *
 * row_stride), width <= ND_NORM_COLUMN_BLOCK: sweeps over rows, each a unit-stride loop that
 * vectorizes across columns, so no column is walked with a stride. */
static void forward_columns(const float *x, float *out, float *stats, int64_t groups,
                            int64_t rows, int64_t row_stride, int64_t c0, int64_t width,
                            double eps)
{
    double sum[ND_NORM_COLUMN_BLOCK], mean[ND_NORM_COLUMN_BLOCK];
    float shift[ND_NORM_COLUMN_BLOCK], scale[ND_NORM_COLUMN_BLOCK];
    for (int64_t i = 0; i < width; i++) sum[i] = 0.0;
    for (int64_t j = 0; j < rows; j++) {
        const float *row = x + j * row_stride + c0;
        for (int64_t i = 0; i < width; i++) sum[i] += row[i];
    }
    for (int64_t i = 0; i < width; i++) {
        mean[i] = sum[i] / (double)rows;
        sum[i] = 0.0;
    }
    for (int64_t j = 0; j < rows; j++) {
        const float *row = x + j * row_stride + c0;
        for (int64_t i = 0; i < width; i++) {
            double d = row[i] - mean[i];
            sum[i] += d * d;
        }
    }
    for (int64_t i = 0; i < width; i++) {
        double var = sum[i] / (double)rows;
        shift[i] = (float)mean[i];
        scale[i] = inverse_std(var, eps);
        stats[c0 + i] = shift[i];
        stats[groups + c0 + i] = (float)var;
    }
    for (int64_t j = 0; j < rows; j++) {
        const float *row = x + j * row_stride + c0;
        float *out_row = out + j * row_stride + c0;
        for (int64_t i = 0; i < width; i++) out_row[i] = (row[i] - shift[i]) * scale[i];
    }
}

static void backward_columns(const float *g, const float *xhat, const float *stats, float *out,
                             int64_t groups, int64_t rows, int64_t row_stride, int64_t c0,
                             int64_t width, double eps)
{
    double sum_g[ND_NORM_COLUMN_BLOCK], sum_gx[ND_NORM_COLUMN_BLOCK];
    float mean_g[ND_NORM_COLUMN_BLOCK], projection[ND_NORM_COLUMN_BLOCK];
    float scale[ND_NORM_COLUMN_BLOCK];
    for (int64_t i = 0; i < width; i++) sum_g[i] = sum_gx[i] = 0.0;
    for (int64_t j = 0; j < rows; j++) {
        const float *g_row = g + j * row_stride + c0, *x_row = xhat + j * row_stride + c0;
        for (int64_t i = 0; i < width; i++) {
            sum_g[i] += g_row[i];
            sum_gx[i] += (double)g_row[i] * x_row[i];
        }
    }
    for (int64_t i = 0; i < width; i++) {
        mean_g[i] = (float)(sum_g[i] / (double)rows);
        projection[i] = (float)(sum_gx[i] / (double)rows);
        scale[i] = inverse_std(stats[groups + c0 + i], eps);
    }
    for (int64_t j = 0; j < rows; j++) {
        const float *g_row = g + j * row_stride + c0, *x_row = xhat + j * row_stride + c0;
        float *out_row = out + j * row_stride + c0;
        for (int64_t i = 0; i < width; i++)
            out_row[i] = (g_row[i] - mean_g[i] - x_row[i] * projection[i]) * scale[i];
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

static void forward_column_share(const float *x, float *out, float *stats, int64_t groups,
                                 int64_t rows, int64_t row_stride, double eps)
{
    int64_t first, last;
    column_share(groups, &first, &last);
    for (int64_t c0 = first; c0 < last; c0 += ND_NORM_COLUMN_BLOCK) {
        int64_t width = last - c0 < ND_NORM_COLUMN_BLOCK ? last - c0 : ND_NORM_COLUMN_BLOCK;
        forward_columns(x, out, stats, groups, rows, row_stride, c0, width, eps);
    }
}

static void backward_column_share(const float *g, const float *xhat, const float *stats,
                                  float *out, int64_t groups, int64_t rows, int64_t row_stride,
                                  double eps)
{
    int64_t first, last;
    column_share(groups, &first, &last);
    for (int64_t c0 = first; c0 < last; c0 += ND_NORM_COLUMN_BLOCK) {
        int64_t width = last - c0 < ND_NORM_COLUMN_BLOCK ? last - c0 : ND_NORM_COLUMN_BLOCK;
        backward_columns(g, xhat, stats, out, groups, rows, row_stride, c0, width, eps);
    }
}

static int check_norm_args(int64_t groups, int64_t members, int64_t group_stride,
                           int64_t member_stride)
{
    if (groups < 0 || members < 0 || group_stride < 0 || member_stride < 0) return ND_ERR_SIZE;
    return ND_OK;
}

int nd_norm_forward_f32(const float *x, float *out, float *stats, int64_t groups, int64_t members,
                        int64_t group_stride, int64_t member_stride, double eps)
{
    int status = check_norm_args(groups, members, group_stride, member_stride);
    if (status != ND_OK) return status;
    if (groups == 0) return ND_OK;
    if (!stats || (members > 0 && (!x || !out))) return ND_ERR_NULL;
    if (members == 0) {
        for (int64_t i = 0; i < 2 * groups; i++) stats[i] = NAN;
        return ND_OK;
    }
    int disjoint;
    enum layout layout = choose_layout(groups, members, group_stride, member_stride, &disjoint);
    int threads = norm_threads(groups, members, layout, disjoint);
    if (layout == PER_COLUMN) {
        /* A single column (groups == 1) may come with any group stride; it is never used. */
        if (threads == 1) {
            forward_column_share(x, out, stats, groups, members, member_stride, eps);
        } else {
#pragma omp parallel num_threads(threads)
            forward_column_share(x, out, stats, groups, members, member_stride, eps);
        }
        return ND_OK;
    }
    int64_t stride = members == 1 ? 1 : member_stride;
    if (threads == 1) {
        /* No OpenMP region at all: even a serial one costs microseconds per call. */
        for (int64_t i = 0; i < groups; i++)
            forward_group(x + i * group_stride, out + i * group_stride, stats + i,
                          stats + groups + i, members, stride, eps);
        return ND_OK;
    }
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < groups; i++)
        forward_group(x + i * group_stride, out + i * group_stride, stats + i, stats + groups + i,
                      members, stride, eps);
    return ND_OK;
}

int nd_norm_backward_f32(const float *g, const float *xhat, const float *stats, float *out,
                         int64_t groups, int64_t members, int64_t group_stride,
                         int64_t member_stride, double eps)
{
    int status = check_norm_args(groups, members, group_stride, member_stride);
    if (status != ND_OK) return status;
    if (groups == 0 || members == 0) return ND_OK;
    if (!g || !xhat || !stats || !out) return ND_ERR_NULL;
    int disjoint;
    enum layout layout = choose_layout(groups, members, group_stride, member_stride, &disjoint);
    int threads = norm_threads(groups, members, layout, disjoint);
    if (layout == PER_COLUMN) {
        if (threads == 1) {
            backward_column_share(g, xhat, stats, out, groups, members, member_stride, eps);
        } else {
#pragma omp parallel num_threads(threads)
            backward_column_share(g, xhat, stats, out, groups, members, member_stride, eps);
        }
        return ND_OK;
    }
    int64_t stride = members == 1 ? 1 : member_stride;
    if (threads == 1) {
        for (int64_t i = 0; i < groups; i++)
            backward_group(g + i * group_stride, xhat + i * group_stride, stats[groups + i],
                           out + i * group_stride, members, stride, eps);
        return ND_OK;
    }
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < groups; i++)
        backward_group(g + i * group_stride, xhat + i * group_stride, stats[groups + i],
                       out + i * group_stride, members, stride, eps);
    return ND_OK;
}
