/* Dropout over compact data with the mask drawn from a counter-based hash of (seed, index), so
 * the backward pass redraws the forward mask instead of storing it. Kernel layer (kernels_c); ABI
 * in nd_kernels.h, the hash defined by the device protocol (engine/backend/protocol.py). */
#include "nd_kernels.h"

/* Each element costs about a dozen integer ops plus a multiply: as much as ewise.c's math ops. */
#define ND_GRAIN_DROPOUT 8192
#define ND_DROPOUT_THRESHOLD_MAX (INT64_C(1) << 24)
#define ND_DROPOUT_INDEX_LIMIT (INT64_C(1) << 32)

/* MurmurHash3's fmix32 over the index spread by the golden-ratio constant. Everything is uint32_t,
 * so the wrap-around the protocol asks for is C's own unsigned arithmetic. */
static inline uint32_t dropout_hash(uint32_t seed, uint32_t index)
{
    uint32_t x = (index * UINT32_C(0x9E3779B9)) ^ seed;
    x ^= x >> 16;
    x *= UINT32_C(0x85EBCA6B);
    x ^= x >> 13;
    x *= UINT32_C(0xC2B2AE35);
    return x ^ (x >> 16);
}

/* Elements [begin, end). A select, not a multiply by a 0/1 mask: a dropped NaN or inf gives 0.
 * Each element depends on its own index only, so the split into chunks never shows in the result. */
static void dropout_range(const float *a, float *out, int64_t begin, int64_t end,
                          uint32_t threshold, float scale, uint32_t seed)
{
#pragma omp simd
    for (int64_t i = begin; i < end; i++) {
        const uint32_t kept = (dropout_hash(seed, (uint32_t)i) >> 8) >= threshold;
        out[i] = kept ? a[i] * scale : 0.0f;
    }
}

void nd_dropout_range_f32(const float *a, float *out, int64_t begin, int64_t end,
                          uint32_t threshold, float scale, uint32_t seed)
{
    dropout_range(a, out, begin, end, threshold, scale, seed);
}

int nd_ewise_dropout_f32(const float *a, float *out, int64_t size, int64_t threshold, float scale,
                         int64_t seed)
{
    if (size < 0 || size > ND_DROPOUT_INDEX_LIMIT) return ND_ERR_SIZE;
    if (threshold < 0 || threshold > ND_DROPOUT_THRESHOLD_MAX) return ND_ERR_SIZE;
    if (seed < 0 || seed >= ND_DROPOUT_INDEX_LIMIT) return ND_ERR_SIZE;
    if (size > 0 && (!a || !out)) return ND_ERR_NULL;
    const uint32_t draw_threshold = (uint32_t)threshold, draw_seed = (uint32_t)seed;
    int threads = nd_threads_for(size, ND_GRAIN_DROPOUT);
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            int64_t begin, end;
            nd_thread_rows(size, &begin, &end);
            dropout_range(a, out, begin, end, draw_threshold, scale, draw_seed);
        }
    } else {
        dropout_range(a, out, 0, size, draw_threshold, scale, draw_seed);
    }
    return ND_OK;
}
