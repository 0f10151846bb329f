/* The direct sgemm path for small problems (the MLP's 100x100-class matmuls): nothing is packed.
 * Kernel layer (kernels_c); called by nd_sgemm_f32 in sgemm.c, AVX-512 builds only.
 * A elements are broadcast straight from strided memory and B rows are loaded in place (B needs a
 * unit column stride: sgemm.c packs it otherwise), so a call costs no copy and no allocation. The
 * last vector of a row panel is a masked load/store, so n = 100 or n = 10 waste no columns beyond
 * the 16-lane rounding, and row edges use smaller tiles instead of padded ones. */
#include <stdint.h>

#ifdef __AVX512F__
#include <immintrin.h>

#define ND_HIDDEN __attribute__((visibility("hidden"))) /* shared with sgemm.c, not exported */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Rows of the main tile for a panel of nv 16-float vectors: rows x nv accumulators plus nv B
 * vectors and one broadcast must fit the 32 zmm registers (6 x 4 + 4 + 1 = 29), and with A
 * row-major each row costs a general register for its offset; 10 rows also tile m = 100 exactly. */
#define MR_FOR(nv) ((nv) == 4 ? 6 : (nv) == 3 ? 8 : 10)
#define MR_MAX 10
#define NV_MAX 4   /* vectors per panel: 64 columns, so n = 100 is two panels (64 + 36) */
#define KC_MAX 256 /* k block: one panel's B rows (256 x 256 bytes) stay in L1/L2 across tiles */
#define MB 360     /* row chunk (a multiple of 6, 8 and 10): its A block stays in L2 */

/* How A is addressed: rows unit-stride (a_cs == 1), columns unit-stride (a_rs == 1), or neither.
 * A constant layout lets the compiler turn the MR broadcasts into fixed address offsets. */
enum { A_ROW_MAJOR, A_COL_MAJOR, A_STRIDED };

/* C[0:mr, 0:16*nv] (+)= A[0:mr, 0:kc] B[0:kc, 0:16*nv]; the last vector covers `last` lanes.
 * mr, nv and layout are constants after inlining, so the accumulators live in registers. */
ALWAYS_INLINE void tile(const int mr, const int nv, const int layout, int64_t kc, const float *a,
                        int64_t a_rs, int64_t a_cs, const float *b, int64_t b_rs, float *c,
                        int64_t ldc, __mmask16 last, int accumulate)
{
    __m512 acc[MR_MAX][NV_MAX];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    const int64_t a_step = layout == A_ROW_MAJOR ? 1 : a_cs;
    const int64_t row = layout == A_COL_MAJOR ? 1 : a_rs;
    for (int64_t p = 0; p < kc; p++) {
        __m512 bv[NV_MAX];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, b + 16 * v)
                                : _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const __m512 ai = _mm512_set1_ps(a[i * row]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += a_step;
        b += b_rs;
    }
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            float *dst = c + i * ldc + 16 * v;
            const __mmask16 mask = v == nv - 1 ? last : (__mmask16)0xFFFF;
            __m512 value = acc[i][v];
            if (accumulate) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, dst));
            _mm512_mask_storeu_ps(dst, mask, value);
        }
}

/* One panel of nv vectors over rows [0, m): main tiles of mr_main rows (as many as the 32 zmm
 * registers hold next to the nv B vectors), then the row edge in tiles of 8, 4, 2 and 1 rows. */
ALWAYS_INLINE void panel(const int nv, const int layout, int64_t m, int64_t kc, const float *a,
                         int64_t a_rs, int64_t a_cs, const float *b, int64_t b_rs, float *c,
                         int64_t ldc, __mmask16 last, int accumulate)
{
    const int mr_main = MR_FOR(nv);
    int64_t i = 0;
    for (; i + mr_main <= m; i += mr_main)
        tile(mr_main, nv, layout, kc, a + i * a_rs, a_rs, a_cs, b, b_rs, c + i * ldc, ldc, last,
             accumulate);
#pragma GCC unroll 4
    for (int rows = 8; rows >= 1; rows /= 2)
        for (; rows < mr_main && m - i >= rows; i += rows)
            tile(rows, nv, layout, kc, a + i * a_rs, a_rs, a_cs, b, b_rs, c + i * ldc, ldc, last,
                 accumulate);
}

/* Every panel of columns for one A layout; the last panel narrows to the vectors it needs. */
ALWAYS_INLINE void all_panels(const int layout, int64_t m, int64_t n, int64_t kc, const float *a,
                              int64_t a_rs, int64_t a_cs, const float *b, int64_t b_rs, float *c,
                              int64_t ldc, int accumulate)
{
    for (int64_t j = 0; j < n; j += 16 * NV_MAX) {
        const int64_t width = n - j < 16 * NV_MAX ? n - j : 16 * NV_MAX;
        const int vectors = (int)((width + 15) / 16);
        const int tail = (int)(width - 16 * (vectors - 1));
        const __mmask16 last = (__mmask16)((1u << tail) - 1u);
        switch (vectors) {
        case 4:
            panel(4, layout, m, kc, a, a_rs, a_cs, b + j, b_rs, c + j, ldc, last, accumulate);
            break;
        case 3:
            panel(3, layout, m, kc, a, a_rs, a_cs, b + j, b_rs, c + j, ldc, last, accumulate);
            break;
        case 2:
            panel(2, layout, m, kc, a, a_rs, a_cs, b + j, b_rs, c + j, ldc, last, accumulate);
            break;
        default:
            panel(1, layout, m, kc, a, a_rs, a_cs, b + j, b_rs, c + j, ldc, last, accumulate);
        }
    }
}

static void rows_a_row_major(int64_t m, int64_t n, int64_t kc, const float *a, int64_t a_rs,
                             const float *b, int64_t b_rs, float *c, int64_t ldc, int accumulate)
{
    all_panels(A_ROW_MAJOR, m, n, kc, a, a_rs, 1, b, b_rs, c, ldc, accumulate);
}

static void rows_a_col_major(int64_t m, int64_t n, int64_t kc, const float *a, int64_t a_cs,
                             const float *b, int64_t b_rs, float *c, int64_t ldc, int accumulate)
{
    all_panels(A_COL_MAJOR, m, n, kc, a, 1, a_cs, b, b_rs, c, ldc, accumulate);
}

static void rows_a_strided(int64_t m, int64_t n, int64_t kc, const float *a, int64_t a_rs,
                           int64_t a_cs, const float *b, int64_t b_rs, float *c, int64_t ldc,
                           int accumulate)
{
    all_panels(A_STRIDED, m, n, kc, a, a_rs, a_cs, b, b_rs, c, ldc, accumulate);
}

/* r[x] (row x of a 16 x 16 block) becomes column x: three rounds of in-lane and cross-lane
 * shuffles (64 in all, no memory round trip). */
ALWAYS_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const __m512d lo0 = _mm512_castps_pd(t[4 * i]), lo1 = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d hi0 = _mm512_castps_pd(t[4 * i + 1]), hi1 = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
    }
    /* u[4i + q] holds rows 4i..4i+3 of columns q, 4 + q, 8 + q, 12 + q (one per 128-bit lane) */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        const __m512 x0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44);
        const __m512 y0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
        const __m512 x1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
        const __m512 y1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
        r[q] = _mm512_shuffle_f32x4(x0, x1, 0x88);
        r[4 + q] = _mm512_shuffle_f32x4(x0, x1, 0xDD);
        r[8 + q] = _mm512_shuffle_f32x4(y0, y1, 0x88);
        r[12 + q] = _mm512_shuffle_f32x4(y0, y1, 0xDD);
    }
}

ND_HIDDEN void nd_sgemm_small_pack_b_transposed(const float *b, int64_t cs, int64_t k, int64_t n,
                                                float *dst, int64_t ldd)
{
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const int cols = n - j0 < 16 ? (int)(n - j0) : 16;
        for (int64_t p0 = 0; p0 < k; p0 += 16) {
            const int rows = k - p0 < 16 ? (int)(k - p0) : 16;
            const __mmask16 row_mask = (__mmask16)((1u << rows) - 1u);
            __m512 block[16];
#pragma GCC unroll 16
            for (int x = 0; x < 16; x++)
                block[x] = x < cols ? _mm512_maskz_loadu_ps(row_mask, b + (j0 + x) * cs + p0)
                                    : _mm512_setzero_ps();
            transpose16(block);
            for (int y = 0; y < rows; y++) _mm512_store_ps(dst + (p0 + y) * ldd + j0, block[y]);
        }
    }
}

ND_HIDDEN void nd_sgemm_small_rows(const float *a, const float *b, float *c, int64_t m, int64_t n,
                                   int64_t k, int64_t a_rs, int64_t a_cs, int64_t b_rs,
                                   int64_t ldc, int accumulate)
{
    const int64_t blocks = (k + KC_MAX - 1) / KC_MAX, block = (k + blocks - 1) / blocks;
    for (int64_t ic = 0; ic < m; ic += MB) {
        const int64_t mc = m - ic < MB ? m - ic : MB;
        const float *a_chunk = a + ic * a_rs;
        float *c_chunk = c + ic * ldc;
        for (int64_t pc = 0; pc < k; pc += block) { /* equal k blocks: no thin last block */
            const int64_t kc = k - pc < block ? k - pc : block;
            const float *ab = a_chunk + pc * a_cs, *bb = b + pc * b_rs;
            const int acc = accumulate || pc > 0;
            if (a_cs == 1)
                rows_a_row_major(mc, n, kc, ab, a_rs, bb, b_rs, c_chunk, ldc, acc);
            else if (a_rs == 1)
                rows_a_col_major(mc, n, kc, ab, a_cs, bb, b_rs, c_chunk, ldc, acc);
            else
                rows_a_strided(mc, n, kc, ab, a_rs, a_cs, bb, b_rs, c_chunk, ldc, acc);
        }
    }
}

#else
typedef int nd_sgemm_small_needs_avx512; /* ISO C wants a non-empty translation unit */
#endif
