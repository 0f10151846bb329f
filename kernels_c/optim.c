/* Optimizer updates over a whole list of parameters in one call: SGD (momentum, dampening,
 * Nesterov's look-ahead) and Adam, every element read and written once, in place. Kernel layer
 * (kernels_c); ABI in nd_kernels.h, the update rules defined by the device protocol
 * (engine/backend/protocol.py). */
#include <math.h>
#include <stddef.h>

#include "nd_kernels.h"

/* Per element: SGD is a few multiply-adds, Adam adds a square root and a division. */
#define ND_GRAIN_SGD 65536
#define ND_GRAIN_ADAM 8192

struct sgd_args {
    float *const *ws;
    const float *const *gs;
    float *const *us;
    float weight_decay, keep, take, step, lookback;
};

struct adam_args {
    float *const *ws;
    const float *const *gs;
    float *const *ms;
    float *const *vs;
    float weight_decay, keep1, take1, keep2, take2, eps, step;
};

typedef void (*piece_fn)(const void *args, int64_t tensor, int64_t begin, int64_t end);

/* The decay is a select, not a multiply by 0: with no weight decay an inf or NaN weight must
 * not reach the gradient. */
static inline float decayed(float g, float w, float weight_decay)
{
    return weight_decay != 0.0f ? g + weight_decay * w : g;
}

static void sgd_piece(const void *raw, int64_t t, int64_t begin, int64_t end)
{
    const struct sgd_args *a = raw;
    float *w = a->ws[t];
    const float *g = a->gs[t];
    const float wd = a->weight_decay, step = a->step;
    if (!a->us) {
#pragma omp simd
        for (int64_t i = begin; i < end; i++) w[i] = w[i] - step * decayed(g[i], w[i], wd);
        return;
    }
    float *u = a->us[t];
    const float keep = a->keep, take = a->take, lookback = a->lookback;
#pragma omp simd
    for (int64_t i = begin; i < end; i++) {
        const float previous = u[i];
        const float moved = keep * previous + take * decayed(g[i], w[i], wd);
        const float stepped = w[i] - step * moved;
        u[i] = moved;
        w[i] = lookback != 0.0f ? stepped + lookback * previous : stepped;
    }
}

static void adam_piece(const void *raw, int64_t t, int64_t begin, int64_t end)
{
    const struct adam_args *a = raw;
    float *w = a->ws[t], *m = a->ms[t], *v = a->vs[t];
    const float *g = a->gs[t];
    const float wd = a->weight_decay, keep1 = a->keep1, take1 = a->take1, keep2 = a->keep2,
                take2 = a->take2, eps = a->eps, step = a->step;
#pragma omp simd
    for (int64_t i = begin; i < end; i++) {
        const float d = decayed(g[i], w[i], wd);
        const float first = keep1 * m[i] + take1 * d;
        const float second = keep2 * v[i] + take2 * (d * d);
        m[i] = first;
        v[i] = second;
        w[i] = w[i] - step * (first / (sqrtf(second) + eps));
    }
}

/* Elements [begin, end) of the parameters laid end to end, cut at the parameters' borders. */
static void run_pieces(piece_fn fn, const void *args, const int64_t *sizes, int64_t count,
                       int64_t begin, int64_t end)
{
    int64_t start = 0;
    for (int64_t t = 0; t < count && start < end; start += sizes[t], t++) {
        const int64_t lo = begin > start ? begin - start : 0;
        const int64_t hi = end - start < sizes[t] ? end - start : sizes[t];
        if (lo < hi) fn(args, t, lo, hi);
    }
}

/* Threads split the concatenated elements evenly, so a model of many small parameters still
 * spreads; every element depends on its own index only, so the split never shows. */
static void run_split(piece_fn fn, const void *args, const int64_t *sizes, int64_t count,
                      int64_t total, int64_t grain)
{
    const int threads = nd_threads_for(total, grain);
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            int64_t begin, end;
            nd_thread_rows(total, &begin, &end);
            run_pieces(fn, args, sizes, count, begin, end);
        }
    } else {
        run_pieces(fn, args, sizes, count, 0, total);
    }
}

/* ND_OK with the element total in *total, or the error for a bad list: a negative count or
 * size, sizes whose total overflows, a missing array, or a missing buffer where a size asks for
 * elements. `optional` may be NULL as a whole. */
static int check_lists(const int64_t *sizes, int64_t count, const void *const *required[],
                       int n_required, const void *const *optional, int64_t *total)
{
    if (count < 0) return ND_ERR_SIZE;
    if (count > 0 && !sizes) return ND_ERR_NULL;
    for (int r = 0; r < n_required; r++)
        if (count > 0 && !required[r]) return ND_ERR_NULL;
    *total = 0;
    for (int64_t t = 0; t < count; t++) {
        if (sizes[t] < 0 || sizes[t] > INT64_MAX - *total) return ND_ERR_SIZE;
        if (sizes[t] == 0) continue;
        for (int r = 0; r < n_required; r++)
            if (!required[r][t]) return ND_ERR_NULL;
        if (optional && !optional[t]) return ND_ERR_NULL;
        *total += sizes[t];
    }
    return ND_OK;
}

int nd_sgd_update_f32(float *const *ws, const float *const *gs, float *const *us,
                      const int64_t *sizes, int64_t count, float weight_decay, float keep,
                      float take, float step, float lookback)
{
    const void *const *required[] = {(const void *const *)ws, (const void *const *)gs};
    int64_t total;
    const int status = check_lists(sizes, count, required, 2, (const void *const *)us, &total);
    if (status != ND_OK) return status;
    const struct sgd_args args = {ws, gs, us, weight_decay, keep, take, step, lookback};
    run_split(sgd_piece, &args, sizes, count, total, ND_GRAIN_SGD);
    return ND_OK;
}

int nd_adam_update_f32(float *const *ws, const float *const *gs, float *const *ms,
                       float *const *vs, const int64_t *sizes, int64_t count,
                       float weight_decay, float keep1, float take1, float keep2, float take2,
                       float eps, float step)
{
    const void *const *required[] = {(const void *const *)ws, (const void *const *)gs,
                                     (const void *const *)ms, (const void *const *)vs};
    int64_t total;
    const int status = check_lists(sizes, count, required, 4, NULL, &total);
    if (status != ND_OK) return status;
    const struct adam_args args = {ws, gs, ms, vs, weight_decay, keep1, take1, keep2, take2,
                                   eps, step};
    run_split(adam_piece, &args, sizes, count, total, ND_GRAIN_ADAM);
    return ND_OK;
}
