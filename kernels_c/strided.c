/* Strided access kernels: compact, ewise_setitem, scalar_setitem for ranks 0..ND_MAX_RANK.
 * Kernel layer (kernels_c); ABI in nd_kernels.h. The strided side is bounds-checked once, up
 * front, from the extreme offsets of the view, so a bad view is an error code, never a crash. */
#include <string.h>

#include "nd_kernels.h"

#define ND_PARALLEL_GRAIN 32768

/* A view with size-1 axes dropped and mergeable axes fused (internal, not part of the ABI). */
typedef struct {
    int rank;
    int64_t size;
    int64_t offset;
    int64_t shape[ND_MAX_RANK];
    int64_t strides[ND_MAX_RANK];
} view_t;

static int prepare_view(int64_t ndim, const int64_t *shape, const int64_t *strides, int64_t offset,
                        int64_t buf_len, view_t *v)
{
    if (ndim < 0 || ndim > ND_MAX_RANK) return ND_ERR_RANK;
    if (ndim > 0 && (!shape || !strides)) return ND_ERR_NULL;
    int64_t size = 1;
    for (int64_t d = 0; d < ndim; d++) {
        if (shape[d] < 0) return ND_ERR_SIZE;
        if (__builtin_mul_overflow(size, shape[d], &size)) return ND_ERR_SIZE;
    }
    v->size = size;
    v->offset = offset;
    v->rank = 0;
    if (size == 0) return ND_OK;
    int64_t lo = offset, hi = offset;
    for (int64_t d = 0; d < ndim; d++) {
        int64_t extent;
        if (__builtin_mul_overflow(shape[d] - 1, strides[d], &extent)) return ND_ERR_BOUNDS;
        if (extent < 0 ? __builtin_add_overflow(lo, extent, &lo)
                       : __builtin_add_overflow(hi, extent, &hi))
            return ND_ERR_BOUNDS;
    }
    if (lo < 0 || hi >= buf_len) return ND_ERR_BOUNDS;
    for (int64_t d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        int r = v->rank;
        /* Fuse with the previous kept axis when it steps exactly over this one. */
        if (r > 0 && v->strides[r - 1] == strides[d] * shape[d]) {
            v->shape[r - 1] *= shape[d];
            v->strides[r - 1] = strides[d];
        } else {
            v->shape[r] = shape[d];
            v->strides[r] = strides[d];
            v->rank = r + 1;
        }
    }
    if (v->rank == 0) { /* a single element */
        v->rank = 1;
        v->shape[0] = 1;
        v->strides[0] = 0;
    }
    return ND_OK;
}

/* Offset of the first element of outer row `row` (rows = all axes but the last), and the
 * odometer `idx` of that row. */
static int64_t row_start(const view_t *v, int64_t row, int64_t *idx)
{
    int64_t off = v->offset;
    for (int d = v->rank - 2; d >= 0; d--) {
        idx[d] = row % v->shape[d];
        row /= v->shape[d];
        off += idx[d] * v->strides[d];
    }
    return off;
}

/* Advance the odometer to the next outer row; returns the new offset. */
static int64_t next_row(const view_t *v, int64_t *idx, int64_t off)
{
    for (int d = v->rank - 2; d >= 0; d--) {
        idx[d]++;
        off += v->strides[d];
        if (idx[d] < v->shape[d]) return off;
        off -= idx[d] * v->strides[d];
        idx[d] = 0;
    }
    return off;
}

static void compact_rows(const view_t *v, const float *a, float *out, int64_t r0, int64_t r1)
{
    const int64_t inner = v->shape[v->rank - 1], step = v->strides[v->rank - 1];
    int64_t idx[ND_MAX_RANK];
    int64_t off = r0 < r1 ? row_start(v, r0, idx) : 0;
    for (int64_t r = r0; r < r1; r++) {
        float *dst = out + r * inner;
        const float *src = a + off;
        if (step == 1) {
            memcpy(dst, src, (size_t)inner * sizeof(float));
        } else {
            for (int64_t i = 0; i < inner; i++) dst[i] = src[i * step];
        }
        off = next_row(v, idx, off);
    }
}

static void setitem_rows(const view_t *v, const float *a, float *out, int64_t r0, int64_t r1)
{
    const int64_t inner = v->shape[v->rank - 1], step = v->strides[v->rank - 1];
    int64_t idx[ND_MAX_RANK];
    int64_t off = r0 < r1 ? row_start(v, r0, idx) : 0;
    for (int64_t r = r0; r < r1; r++) {
        const float *src = a + r * inner;
        float *dst = out + off;
        if (step == 1) {
            memmove(dst, src, (size_t)inner * sizeof(float));
        } else {
            for (int64_t i = 0; i < inner; i++) dst[i * step] = src[i];
        }
        off = next_row(v, idx, off);
    }
}

static void fill_rows(const view_t *v, float value, float *out, int64_t r0, int64_t r1)
{
    const int64_t inner = v->shape[v->rank - 1], step = v->strides[v->rank - 1];
    int64_t idx[ND_MAX_RANK];
    int64_t off = r0 < r1 ? row_start(v, r0, idx) : 0;
    for (int64_t r = r0; r < r1; r++) {
        float *dst = out + off;
        for (int64_t i = 0; i < inner; i++) dst[i * step] = value;
        off = next_row(v, idx, off);
    }
}

/* Threads only when no two elements of the view share an address (no 0 stride), since a
 * broadcast destination would otherwise race. */
static int write_threads(const view_t *v)
{
    for (int d = 0; d < v->rank; d++)
        if (v->strides[d] == 0 && v->shape[d] > 1) return 1;
    return nd_threads_for(v->size, ND_PARALLEL_GRAIN);
}

/* Each kernel below calls its row loop directly on one thread: an OpenMP region costs
 * microseconds even when it runs serially, more than a small copy. */
int nd_compact_f32(const float *a, float *out, int64_t a_len, int64_t out_len, int64_t ndim,
                   const int64_t *shape, const int64_t *strides, int64_t offset)
{
    view_t v;
    int status = prepare_view(ndim, shape, strides, offset, a_len, &v);
    if (status != ND_OK) return status;
    if (v.size == 0) return ND_OK;
    if (v.size > out_len) return ND_ERR_BOUNDS;
    if (!a || !out) return ND_ERR_NULL;
    const int64_t rows = v.size / v.shape[v.rank - 1];
    int threads = nd_threads_for(v.size, ND_PARALLEL_GRAIN);
    if (threads == 1) {
        compact_rows(&v, a, out, 0, rows);
        return ND_OK;
    }
#pragma omp parallel num_threads(threads)
    {
        int64_t r0, r1;
        nd_thread_rows(rows, &r0, &r1);
        compact_rows(&v, a, out, r0, r1);
    }
    return ND_OK;
}

int nd_ewise_setitem_f32(const float *a, float *out, int64_t a_len, int64_t out_len, int64_t ndim,
                         const int64_t *shape, const int64_t *strides, int64_t offset)
{
    view_t v;
    int status = prepare_view(ndim, shape, strides, offset, out_len, &v);
    if (status != ND_OK) return status;
    if (v.size == 0) return ND_OK;
    if (v.size > a_len) return ND_ERR_BOUNDS;
    if (!a || !out) return ND_ERR_NULL;
    const int64_t rows = v.size / v.shape[v.rank - 1];
    int threads = write_threads(&v);
    if (threads == 1) {
        setitem_rows(&v, a, out, 0, rows);
        return ND_OK;
    }
#pragma omp parallel num_threads(threads)
    {
        int64_t r0, r1;
        nd_thread_rows(rows, &r0, &r1);
        setitem_rows(&v, a, out, r0, r1);
    }
    return ND_OK;
}

int nd_scalar_setitem_f32(float value, float *out, int64_t size, int64_t out_len, int64_t ndim,
                          const int64_t *shape, const int64_t *strides, int64_t offset)
{
    view_t v;
    int status = prepare_view(ndim, shape, strides, offset, out_len, &v);
    if (status != ND_OK) return status;
    if (v.size != size) return ND_ERR_SIZE;
    if (v.size == 0) return ND_OK;
    if (!out) return ND_ERR_NULL;
    const int64_t rows = v.size / v.shape[v.rank - 1];
    int threads = write_threads(&v);
    if (threads == 1) {
        fill_rows(&v, value, out, 0, rows);
        return ND_OK;
    }
#pragma omp parallel num_threads(threads)
    {
        int64_t r0, r1;
        nd_thread_rows(rows, &r0, &r1);
        fill_rows(&v, value, out, r0, r1);
    }
    return ND_OK;
}
