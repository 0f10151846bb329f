/* Softmax cross-entropy over the last axis of compact logits: the per-row loss and its gradient.
 * Kernel layer (kernels_c); ABI in nd_kernels.h. Each row's log-sum-exp comes from the reduce
 * kernel itself, so the loss agrees bit for bit with reduce_logsumexp; no -ffast-math anywhere. */
#include <math.h>

#include "nd_kernels.h"

/* Elements per thread, as for logsumexp: every element costs an expf (two for the gradient). */
#define ND_XENT_GRAIN 4096

/* The class a label names, or -1 when it names none. The float is tested before the cast because
 * converting NaN or an out-of-range float to an integer is undefined behaviour in C; the bound is
 * compared in double, which holds every float and every class count below 2^53 exactly. */
static int64_t label_index(float label, int64_t classes)
{
    if (!(label >= 0.0f && (double)label < (double)classes)) return -1;
    return (int64_t)label;
}

/* A one-row call of the reduce kernel: it cannot fail here (sizes and pointers already checked). */
static float row_logsumexp(const float *row, int64_t classes)
{
    float lse;
    nd_reduce_logsumexp_f32(row, &lse, classes, 1);
    return lse;
}

static void loss_row(const float *z, const float *labels, float *out, int64_t classes, int64_t i)
{
    int64_t label = label_index(labels[i], classes);
    if (label < 0) {
        out[i] = NAN;
        return;
    }
    const float *row = z + i * classes;
    out[i] = row_logsumexp(row, classes) - row[label];
}

/* Reads the whole row (and its label) before writing, so out may even alias z. */
static void grad_row(const float *z, const float *labels, const float *g, float *out,
                     int64_t classes, int64_t i)
{
    const float *row = z + i * classes;
    float *out_row = out + i * classes;
    int64_t label = label_index(labels[i], classes);
    if (label < 0) {
        for (int64_t j = 0; j < classes; j++) out_row[j] = NAN;
        return;
    }
    float lse = row_logsumexp(row, classes), scale = g[i];
    /* The spec's order of roundings: exp, then minus the one-hot, then times g. */
    for (int64_t j = 0; j < classes; j++)
        out_row[j] = (expf(row[j] - lse) - (j == label ? 1.0f : 0.0f)) * scale;
}

static int xent_threads(int64_t classes, int64_t rows)
{
    int threads = nd_threads_for(classes * rows, ND_XENT_GRAIN);
    return threads > rows ? (int)rows : threads;
}

int nd_softmax_xent_f32(const float *z, const float *labels, float *out, int64_t classes,
                        int64_t rows)
{
    if (classes < 0 || rows < 0) return ND_ERR_SIZE;
    if (rows == 0) return ND_OK;
    if (!labels || !out || (classes > 0 && !z)) return ND_ERR_NULL;
    int threads = xent_threads(classes, rows);
    if (threads == 1) {
        /* No OpenMP region at all: even a serial one costs microseconds per call. */
        for (int64_t i = 0; i < rows; i++) loss_row(z, labels, out, classes, i);
        return ND_OK;
    }
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < rows; i++) loss_row(z, labels, out, classes, i);
    return ND_OK;
}

int nd_softmax_xent_grad_f32(const float *z, const float *labels, const float *g, float *out,
                             int64_t classes, int64_t rows)
{
    if (classes < 0 || rows < 0) return ND_ERR_SIZE;
    if (rows == 0 || classes == 0) return ND_OK;
    if (!z || !labels || !g || !out) return ND_ERR_NULL;
    int threads = xent_threads(classes, rows);
    if (threads == 1) {
        for (int64_t i = 0; i < rows; i++) grad_row(z, labels, g, out, classes, i);
        return ND_OK;
    }
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < rows; i++) grad_row(z, labels, g, out, classes, i);
    return ND_OK;
}
