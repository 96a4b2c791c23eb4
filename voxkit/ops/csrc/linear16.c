/* y = x @ w.T (+ b) for a few float32 rows and a weight stored in float16 or bfloat16.
 *
 * Why: a streaming step multiplies one to eight rows by every weight matrix, so on a CPU it is
 * bound by the bytes of weight it reads. PyTorch has no product of float32 rows with a 16-bit
 * weight, so the reference widens the whole weight to float32 first (reads 2 bytes, writes 4 and
 * reads them again per weight). This kernel widens 16 (or 8) weights at a time in registers and
 * accumulates in float32: the same numbers multiplied, summed in a different order.
 *
 * Built by voxkit/ops/native.py with the machine's C compiler (-O3 -march=native). Without
 * AVX-512 or AVX2 + F16C + FMA it builds only linear16_isa(), which returns 0, and voxkit keeps
 * the PyTorch reference.
 */
#include <stdint.h>

#if defined(__AVX512F__) && defined(__F16C__)
#include <immintrin.h>
#define ISA 2
#define LANES 16
typedef __m512 vec;
static inline vec vzero(void) { return _mm512_setzero_ps(); }
static inline vec vload(const float *p) { return _mm512_loadu_ps(p); }
static inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline float vsum(vec v) { return _mm512_reduce_add_ps(v); }
static inline vec wload_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline vec wload_bf16(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline vec wload_f32(const float *p) { return _mm512_loadu_ps(p); }
#define NB_ONE_ROW 8 /* weight rows per block: 32 zmm registers hold 8-16 accumulators */
#define NB_MORE_ROWS 4
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define ISA 1
#define LANES 8
typedef __m256 vec;
static inline vec vzero(void) { return _mm256_setzero_ps(); }
static inline vec vload(const float *p) { return _mm256_loadu_ps(p); }
static inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline float vsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline vec wload_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline vec wload_bf16(const uint16_t *p) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline vec wload_f32(const float *p) { return _mm256_loadu_ps(p); }
#define NB_ONE_ROW 4 /* 16 ymm registers */
#define NB_MORE_ROWS 2
#else
#define ISA 0
#endif

int linear16_isa(void) { return ISA; }

#if ISA
typedef uint16_t wt_f16; /* the C element type of each storage */
typedef uint16_t wt_bf16;
typedef float wt_f32;
static inline float widen_f32(float v) { return v; }
static inline float widen_f16(uint16_t h) { return _cvtsh_ss(h); }
static inline float widen_bf16(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}

/* Rows x[0..R) (stride ldx) times weight rows n..n+NB of type T: y[r * N + n + j]. */
#define BLOCK(T, R, NB)                                                                             \
    static void block_##T##_##R##_##NB(const wt_##T *w, const float *x, long ldx, const float *b, \
                                       float *y, long N, long K, long n) {                         \
        vec acc[NB][R];                                                                             \
        for (int j = 0; j < NB; j++)                                                                \
            for (int r = 0; r < R; r++) acc[j][r] = vzero();                                        \
        long k = 0;                                                                                 \
        for (; k + LANES <= K; k += LANES) {                                                        \
            vec xv[R];                                                                              \
            for (int r = 0; r < R; r++) xv[r] = vload(x + r * ldx + k);                             \
            for (int j = 0; j < NB; j++) {                                                          \
                vec wv = wload_##T(w + (n + j) * K + k);                                            \
                for (int r = 0; r < R; r++) acc[j][r] = vfma(wv, xv[r], acc[j][r]);                 \
            }                                                                                       \
        }                                                                                           \
        for (int j = 0; j < NB; j++) {                                                              \
            for (int r = 0; r < R; r++) {                                                           \
                float s = vsum(acc[j][r]);                                                          \
                for (long t = k; t < K; t++) s += widen_##T(w[(n + j) * K + t]) * x[r * ldx + t];    \
                y[r * N + n + j] = b ? s + b[n + j] : s;                                            \
            }                                                                                       \
        }                                                                                           \
    }
#define BLOCK_(T, R, NB) BLOCK(T, R, NB) /* expands NB_ONE_ROW etc. before pasting the name */

/* One sweep over the weight rows for R activation rows: blocks of NB weight rows, then singles. */
#define SWEEP(T, R, NB)                                                                             \
    for (; n + NB <= N; n += NB) block_##T##_##R##_##NB(w, xm, ldx, b, ym, N, K, n);               \
    for (; n < N; n++) block_##T##_##R##_1(w, xm, ldx, b, ym, N, K, n);
#define SWEEP_(T, R, NB) SWEEP(T, R, NB)

/* Everything for one storage type T: its blocks and the loop over groups of four rows. */
#define LINEAR(T)                                                                                   \
    BLOCK_(T, 1, NB_ONE_ROW) BLOCK_(T, 1, 1) BLOCK_(T, 2, NB_MORE_ROWS) BLOCK_(T, 2, 1)              \
    BLOCK_(T, 3, NB_MORE_ROWS) BLOCK_(T, 3, 1) BLOCK_(T, 4, NB_MORE_ROWS) BLOCK_(T, 4, 1)            \
    static void linear_##T(const wt_##T *w, const float *x, long ldx, const float *b, float *y,   \
                           long rows, long N, long K) {                                             \
        for (long m = 0; m < rows; m += 4) {                                                        \
            const float *xm = x + m * ldx;                                                          \
            float *ym = y + m * N;                                                                  \
            long n = 0;                                                                             \
            switch (rows - m) {                                                                     \
            case 1: SWEEP_(T, 1, NB_ONE_ROW) break;                                                 \
            case 2: SWEEP_(T, 2, NB_MORE_ROWS) break;                                               \
            case 3: SWEEP_(T, 3, NB_MORE_ROWS) break;                                               \
            default: SWEEP_(T, 4, NB_MORE_ROWS) break;                                              \
            }                                                                                       \
        }                                                                                           \
    }

LINEAR(f16)
LINEAR(bf16)
LINEAR(f32)

/* w [N, K] 16-bit (bf16 != 0: bfloat16, else IEEE half), x [rows, K] with row stride ldx,
 * b [N] or NULL, y [rows, N] contiguous. Rows are taken four at a time. */
void linear16(const uint16_t *w, int bf16, const float *x, long ldx, const float *b, float *y, long rows, long N,
              long K) {
    if (bf16)
        linear_bf16(w, x, ldx, b, y, rows, N, K);
    else
        linear_f16(w, x, ldx, b, y, rows, N, K);
}
#endif
