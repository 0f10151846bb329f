/* Single-precision matrix multiply over strided operands: dispatch, the tiled path, scratch.
 * Kernel layer (kernels_c); ABI in nd_kernels.h. Up to ND_SMALL_MAX_WORK multiply-adds on AVX-512
 * builds, the direct path of sgemm_small.c (no packing of A; B packed only when its columns are
 * not unit-stride). Above that, BLIS-style tiling: A is packed in MR-row slivers (a KC x MC block,
 * L3), B in NR-column slivers (a KC x NC block, L2), and a 14x32 register-blocked micro-kernel in
 * GCC vector extensions keeps one A sliver in L1 while B slivers stream from L2; zero padding in
 * the packs handles every edge. Packing buffers come from a per-thread scratch block (below). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nd_kernels.h"

#ifdef __AVX512F__
/* sgemm_small.c, the direct (unpacked) path. rows(): C[0:m, 0:n] (+)= A B for B unit-stride
 * along its columns (b_cs == 1), on the calling thread. pack_b_transposed(): dst[p*ldd + j] =
 * b[p + j*cs] for p < k, j < round_up(n, 16) (zero beyond n), dst and ldd 64-byte aligned. */
#define ND_HIDDEN __attribute__((visibility("hidden")))
ND_HIDDEN void nd_sgemm_small_rows(const float *a, const float *b, float *c, int64_t m, int64_t n,
                                   int64_t k, int64_t a_rs, int64_t a_cs, int64_t b_rs,
                                   int64_t ldc, int accumulate);
ND_HIDDEN void nd_sgemm_small_pack_b_transposed(const float *b, int64_t cs, int64_t k, int64_t n,
                                                float *dst, int64_t ldd);
#endif

#define MR 14
#define NR 32
#define KC 384
#define MC (MR * 220) /* rows of the packed A block */
#define NC 512        /* columns of the packed B block: KC * NC * 4 bytes = 768 KiB of L2 */
#define ND_MIN_WORK_PER_THREAD (1 << 19) /* multiply-adds; below that a thread costs more */
#define ND_NAIVE_MAX_WORK 4096           /* m*n*k under which packing is not worth it */
#define ND_SMALL_MAX_WORK ((int64_t)1 << 26) /* m*n*k up to which the direct path wins */

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

/* dst[p*MR + i] = A[i, p] for i < mr (zero rows up to MR), p < kc. */
static void pack_a_sliver(const float *a, int64_t rs, int64_t cs, int64_t mr, int64_t kc,
                          float *dst)
{
    if (cs == 1) {
        for (int64_t i = 0; i < mr; i++) {
            const float *row = a + i * rs;
            for (int64_t p = 0; p < kc; p++) dst[p * MR + i] = row[p];
        }
    } else {
        for (int64_t p = 0; p < kc; p++)
            for (int64_t i = 0; i < mr; i++) dst[p * MR + i] = a[i * rs + p * cs];
    }
    if (mr < MR)
        for (int64_t p = 0; p < kc; p++)
            for (int64_t i = mr; i < MR; i++) dst[p * MR + i] = 0.0f;
}

/* dst[p*NR + j] = B[p, j] for j < nr (zero columns up to NR), p < kc. */
static void pack_b_sliver(const float *b, int64_t rs, int64_t cs, int64_t nr, int64_t kc,
                          float *dst)
{
    for (int64_t p = 0; p < kc; p++) {
        const float *src = b + p * rs;
        float *d = dst + p * NR;
        if (cs == 1 && nr == NR) {
            memcpy(d, src, NR * sizeof(float));
        } else {
            for (int64_t j = 0; j < nr; j++) d[j] = src[j * cs];
            for (int64_t j = nr; j < NR; j++) d[j] = 0.0f;
        }
    }
}

/* C[0:MR, 0:NR] (+)= Apack(kc x MR)^T Bpack(kc x NR); c rows are ldc apart. */
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp,
                         float *restrict c, int64_t ldc, int accumulate)
{
    v16 acc0[MR], acc1[MR];
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        acc0[i] = (v16){0};
        acc1[i] = (v16){0};
        __builtin_prefetch(c + i * ldc, 1);
        __builtin_prefetch(c + i * ldc + 16, 1);
    }
    for (int64_t p = 0; p < kc; p++) {
        const v16 b0 = *(const v16 *)bp;
        const v16 b1 = *(const v16 *)(bp + 16);
#pragma GCC unroll 14
        for (int i = 0; i < MR; i++) {
            const float ai = ap[i];
            acc0[i] += ai * b0;
            acc1[i] += ai * b1;
        }
        ap += MR;
        bp += NR;
    }
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        v16u *row = (v16u *)(c + i * ldc);
        if (accumulate) {
            row[0] += acc0[i];
            row[1] += acc1[i];
        } else {
            row[0] = acc0[i];
            row[1] = acc1[i];
        }
    }
}

/* The left half of micro_kernel (16 columns of the packed B sliver): narrow edges cost half. */
static void half_kernel(int64_t kc, const float *restrict ap, const float *restrict bp,
                        float *restrict c, int64_t ldc)
{
    v16 acc[MR];
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) acc[i] = (v16){0};
    for (int64_t p = 0; p < kc; p++) {
        const v16 b0 = *(const v16 *)bp;
#pragma GCC unroll 14
        for (int i = 0; i < MR; i++) acc[i] += ap[i] * b0;
        ap += MR;
        bp += NR;
    }
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) *(v16u *)(c + i * ldc) = acc[i];
}

/* An edge tile (mr < MR or nr < NR): compute the tile aside, then copy the valid part. */
static void edge_kernel(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                        int64_t mr, int64_t nr, int accumulate)
{
    float tile[MR * NR] __attribute__((aligned(64)));
    if (nr <= 16)
        half_kernel(kc, ap, bp, tile, NR);
    else
        micro_kernel(kc, ap, bp, tile, NR, 0);
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
}

int nd_sgemm_naive_f32(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k,
                       int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs, int64_t ldc,
                       int accumulate, int nthreads)
{
    (void)nthreads; /* the reference runs on the calling thread */
    if (m < 0 || n < 0 || k < 0) return ND_ERR_SIZE;
    if (m == 0 || n == 0) return ND_OK;
    if (!c || (k > 0 && (!a || !b))) return ND_ERR_NULL;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int64_t l = 0; l < k; l++) sum += a[i * a_rs + l * a_cs] * b[l * b_rs + j * b_cs];
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum;
        }
    return ND_OK;
}

static void sgemm_blocked(const float *a, const float *b, float *c, int64_t m, int64_t n,
                          int64_t k, int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs,
                          int64_t ldc, int accumulate, int nthreads, float *apack, float *bpack)
{
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    for (int64_t ic = 0; ic < m; ic += MC) {
        const int64_t mc = min64(MC, m - ic), a_slivers = (mc + MR - 1) / MR;
        for (int64_t pc = 0; pc < k; pc += KC) {
            const int64_t kc = min64(KC, k - pc);
            const int acc = accumulate || pc > 0;
#pragma omp for schedule(static)
            for (int64_t s = 0; s < a_slivers; s++)
                pack_a_sliver(a + (ic + s * MR) * a_rs + pc * a_cs, a_rs, a_cs,
                              min64(MR, mc - s * MR), kc, apack + s * MR * kc);
            for (int64_t jc = 0; jc < n; jc += NC) {
                const int64_t nc = min64(NC, n - jc), b_slivers = (nc + NR - 1) / NR;
#pragma omp for schedule(static)
                for (int64_t s = 0; s < b_slivers; s++)
                    pack_b_sliver(b + pc * b_rs + (jc + s * NR) * b_cs, b_rs, b_cs,
                                  min64(NR, nc - s * NR), kc, bpack + s * NR * kc);
#pragma omp for schedule(static)
                for (int64_t s = 0; s < a_slivers; s++) {
                    const int64_t mr = min64(MR, mc - s * MR);
                    const float *ap = apack + s * MR * kc;
                    float *crow = c + (ic + s * MR) * ldc + jc;
                    for (int64_t t = 0; t < b_slivers; t++) {
                        const int64_t nr = min64(NR, nc - t * NR);
                        const float *bp = bpack + t * NR * kc;
                        if (mr == MR && nr == NR)
                            micro_kernel(kc, ap, bp, crow + t * NR, ldc, acc);
                        else
                            edge_kernel(kc, ap, bp, crow + t * NR, ldc, mr, nr, acc);
                    }
                }
            }
        }
    }
}

/* Per-thread scratch that outlives the call: a block of up to ND_SCRATCH_KEEP bytes is kept for
 * the thread's next call (freed by a pthread key destructor when the thread exits), because a
 * fresh malloc of a few hundred KiB is mmap'ed and page-faulted anew on every call. Bigger
 * requests are allocated and freed per call. */
#define ND_SCRATCH_KEEP ((size_t)4 << 20)

struct scratch {
    size_t capacity; /* bytes usable after the header */
    char pad[56];    /* keeps the data 64-byte aligned */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_key_create(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, free) == 0;
}

/* 64-byte aligned memory for `bytes`; *owned says whether the caller must free() it. */
static float *scratch_get(size_t bytes, int *owned)
{
    bytes = (bytes + 63) / 64 * 64;
    *owned = 0;
    pthread_once(&scratch_once, scratch_key_create);
    if (bytes > ND_SCRATCH_KEEP || !scratch_key_ok) {
        *owned = 1;
        return aligned_alloc(64, bytes ? bytes : 64);
    }
    struct scratch *block = pthread_getspecific(scratch_key);
    if (block && block->capacity >= bytes) return (float *)(block + 1);
    free(block);
    pthread_setspecific(scratch_key, NULL);
    block = aligned_alloc(64, sizeof(struct scratch) + bytes);
    if (!block) return NULL;
    block->capacity = bytes;
    if (pthread_setspecific(scratch_key, block) != 0) {
        free(block);
        return NULL;
    }
    return (float *)(block + 1);
}

#ifdef __AVX512F__
/* The direct path: B is read in place when its columns are unit-stride, else first copied into a
 * row-major scratch block with rows 64-byte aligned; each thread takes a band of rows. */
static int sgemm_small(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k,
                       int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs, int64_t ldc,
                       int accumulate, int threads)
{
    float *packed = NULL;
    int owned = 0;
    if (b_cs != 1) {
        const int64_t ldb = round_up(n, 16);
        packed = scratch_get((size_t)(k * ldb) * sizeof(float), &owned);
        if (!packed) return ND_ERR_NOMEM;
        if (b_rs == 1)
            nd_sgemm_small_pack_b_transposed(b, b_cs, k, n, packed, ldb);
        else
            for (int64_t p = 0; p < k; p++)
                for (int64_t j = 0; j < n; j++) packed[p * ldb + j] = b[p * b_rs + j * b_cs];
        b = packed;
        b_rs = ldb;
    }
    if (threads <= 1) { /* no OpenMP region: entering one costs microseconds */
        nd_sgemm_small_rows(a, b, c, m, n, k, a_rs, a_cs, b_rs, ldc, accumulate);
    } else {
#pragma omp parallel num_threads(threads)
        {
#ifdef _OPENMP
            const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
            const int64_t t = 0, nt = 1;
#endif
            const int64_t band = round_up((m + nt - 1) / nt, 8);
            const int64_t i0 = min64(m, t * band), i1 = min64(m, i0 + band);
            if (i1 > i0)
                nd_sgemm_small_rows(a + i0 * a_rs, b, c + i0 * ldc, i1 - i0, n, k, a_rs, a_cs,
                                    b_rs, ldc, accumulate);
        }
    }
    if (owned) free(packed);
    return ND_OK;
}
#endif

int nd_sgemm_f32(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k,
                 int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs, int64_t ldc,
                 int accumulate, int nthreads)
{
    if (m < 0 || n < 0 || k < 0) return ND_ERR_SIZE;
    if (m == 0 || n == 0) return ND_OK;
    if (!c || (k > 0 && (!a || !b))) return ND_ERR_NULL;
    if (k == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        return ND_OK;
    }
    const int64_t work = m * n * k;
    int64_t useful = work / ND_MIN_WORK_PER_THREAD;
    if (useful < 1) useful = 1;
#ifdef __AVX512F__
    /* a B that needs packing goes whole into the kept scratch, or else to the tiled path */
    const size_t b_pack_bytes = (size_t)(k * round_up(n, 16)) * sizeof(float);
    const int b_fits = b_cs == 1 || b_pack_bytes <= ND_SCRATCH_KEEP;
    if (work <= ND_SMALL_MAX_WORK && b_fits) {
        const int threads = nthreads < useful ? (nthreads < 1 ? 1 : nthreads) : (int)useful;
        return sgemm_small(a, b, c, m, n, k, a_rs, a_cs, b_rs, b_cs, ldc, accumulate, threads);
    }
#endif
    if (work <= ND_NAIVE_MAX_WORK)
        return nd_sgemm_naive_f32(a, b, c, m, n, k, a_rs, a_cs, b_rs, b_cs, ldc, accumulate, 1);
    int64_t slivers = (min64(m, MC) + MR - 1) / MR; /* the parallel loop's trip count */
    if (useful > slivers) useful = slivers;
    const int threads = nthreads < useful ? (nthreads < 1 ? 1 : nthreads) : (int)useful;
    const int64_t kc = min64(KC, k);
    const size_t a_bytes = (size_t)(min64(MC, round_up(m, MR)) * kc) * sizeof(float);
    const size_t b_bytes = (size_t)(min64(NC, round_up(n, NR)) * kc) * sizeof(float);
    int owned = 0;
    float *apack = scratch_get(a_bytes + b_bytes + 64, &owned);
    if (!apack) return ND_ERR_NOMEM;
    float *bpack = apack + round_up((int64_t)a_bytes, 64) / (int64_t)sizeof(float);
    sgemm_blocked(a, b, c, m, n, k, a_rs, a_cs, b_rs, b_cs, ldc, accumulate, threads, apack,
                  bpack);
    if (owned) free(apack);
    return ND_OK;
}
