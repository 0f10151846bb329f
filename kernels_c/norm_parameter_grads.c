/* Per-member parameter gradients of norm_affine_backward (layer norm's weight_grad and bias_grad):
 * sums over the groups, one per member. Kernel layer (kernels_c); private interface in
 * norm_parts.h. Threads split the members, never a sum, so no atomics and the same result for any
 * thread count: each member's sum runs over the groups in group order. */
#include "nd_kernels.h"
#include "norm_parts.h"

/* Rows per chunk of the row sweep: its double sums stay on the stack. */
#define ND_NORM_ROW_CHUNK 64

/* Members [first, last) when members run along unit (or any) stride within each group: sweeps
 * the groups, each a line over a block of members added into per-member accumulators. */
static void member_column_sums(const nd_norm_backward_args *a, int64_t first, int64_t last)
{
    int64_t stride = a->members == 1 ? 1 : a->member_stride;
    double sum_g[ND_NORM_COLUMN_BLOCK], sum_gx[ND_NORM_COLUMN_BLOCK];
    float shift, scale;
    nd_norm_line ops = {.shift = &shift, .scale = &scale, .stat_step = 0,
                        .weight = &nd_norm_one, .param_step = 0};
    for (int64_t c0 = first; c0 < last; c0 += ND_NORM_COLUMN_BLOCK) {
        int64_t width = last - c0 < ND_NORM_COLUMN_BLOCK ? last - c0 : ND_NORM_COLUMN_BLOCK;
        for (int64_t k = 0; k < width; k++) sum_g[k] = sum_gx[k] = 0.0;
        for (int64_t i = 0; i < a->groups; i++) {
            shift = a->stats[i];
            scale = nd_norm_inverse_std(a->stats[a->groups + i], a->eps);
            int64_t at = i * a->group_stride + c0 * stride;
            nd_norm_line_accumulate(a->g + at, a->x + at, width, stride, &ops, sum_g, sum_gx);
        }
        for (int64_t k = 0; k < width; k++) {
            a->weight_grad[c0 + k] = (float)sum_gx[k];
            a->bias_grad[c0 + k] = (float)sum_g[k];
        }
    }
}

/* Members [first, last) when groups run along unit stride (the per-column layout): each member
 * is a row, summed block by block of groups; a block's statistics serve a chunk of rows. */
static void member_row_sums(const nd_norm_backward_args *a, int64_t first, int64_t last)
{
    int64_t groups = a->groups, stride = groups == 1 ? 1 : a->group_stride;
    double sum_g[ND_NORM_ROW_CHUNK], sum_gx[ND_NORM_ROW_CHUNK];
    float shift[ND_NORM_COLUMN_BLOCK], scale[ND_NORM_COLUMN_BLOCK];
    nd_norm_line ops = {.shift = shift, .scale = scale, .stat_step = 1,
                        .weight = &nd_norm_one, .param_step = 0};
    for (int64_t j0 = first; j0 < last; j0 += ND_NORM_ROW_CHUNK) {
        int64_t rows = last - j0 < ND_NORM_ROW_CHUNK ? last - j0 : ND_NORM_ROW_CHUNK;
        for (int64_t r = 0; r < rows; r++) sum_g[r] = sum_gx[r] = 0.0;
        for (int64_t c0 = 0; c0 < groups; c0 += ND_NORM_COLUMN_BLOCK) {
            int64_t width = groups - c0 < ND_NORM_COLUMN_BLOCK ? groups - c0 : ND_NORM_COLUMN_BLOCK;
            for (int64_t k = 0; k < width; k++) {
                shift[k] = a->stats[c0 + k];
                scale[k] = nd_norm_inverse_std(a->stats[groups + c0 + k], a->eps);
            }
            for (int64_t r = 0; r < rows; r++) {
                int64_t at = (j0 + r) * a->member_stride + c0 * stride;
                double block_g, block_gx;
                nd_norm_line_gradient_sums(a->g + at, a->x + at, width, stride, &ops, &block_g,
                                           &block_gx);
                sum_g[r] += block_g;
                sum_gx[r] += block_gx;
            }
        }
        for (int64_t r = 0; r < rows; r++) {
            a->weight_grad[j0 + r] = (float)sum_gx[r];
            a->bias_grad[j0 + r] = (float)sum_g[r];
        }
    }
}

/* This caller's share of the members, in units of `unit` members. */
static void member_share(const nd_norm_backward_args *a, int by_rows, int64_t unit)
{
    int64_t units = (a->members + unit - 1) / unit, begin, end;
    nd_thread_rows(units, &begin, &end);
    int64_t first = begin * unit, last = end * unit < a->members ? end * unit : a->members;
    if (by_rows)
        member_row_sums(a, first, last);
    else
        member_column_sums(a, first, last);
}

void nd_norm_member_parameter_grads(const nd_norm_backward_args *a)
{
    /* Rows when members are not contiguous but groups are; otherwise sweep the groups (lines with
     * the member stride when neither is contiguous: slower, still exact). */
    int unit_members = a->member_stride == 1 && a->members > 1;
    int by_rows = !unit_members && (a->group_stride == 1 || a->groups == 1);
    int64_t unit = by_rows ? 1 : ND_NORM_COLUMN_UNIT, units = (a->members + unit - 1) / unit;
    int threads = nd_threads_for(a->groups * a->members, ND_NORM_GRAIN);
    if (threads > units) threads = (int)units;
    if (threads == 1) {
        member_share(a, by_rows, unit);
    } else {
#pragma omp parallel num_threads(threads)
        member_share(a, by_rows, unit);
    }
}
