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
static inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
static inline float vsum(vec v) { return _mm512_reduce_add_ps(v); }
static inline vec wload_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline vec wload_bf16(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline vec wload_f32(const float *p) { return _mm512_loadu_ps(p); }
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define ISA 1
#define LANES 8
typedef __m256 vec;
static inline vec vzero(void) { return _mm256_setzero_ps(); }
static inline vec vload(const float *p) { return _mm256_loadu_ps(p); }
static inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
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

/* Rows x[0..R) (stride ldx) times every weight row of type T: y[r * N + n].
 *
 * One weight row at a time, read front to back: the weights stream through memory in order,
 * which the hardware prefetchers follow (interleaving several weight rows, as a blocked
 * matrix product would, read them at a quarter of the speed once they are out of cache). Two
 * accumulators per activation row keep the chain of dependent multiply-adds short. */
#define ROWS(T, R)                                                                                  \
    static void rows_##T##_##R(const wt_##T *w, const float *x, long ldx, const float *b, float *y, \
                               long N, long K) {                                                    \
        for (long n = 0; n < N; n++) {                                                              \
            const wt_##T *wn = w + n * K;                                                           \
            vec even[R], odd[R];                                                                    \
            for (int r = 0; r < R; r++) even[r] = odd[r] = vzero();                                 \
            long k = 0;                                                                             \
            for (; k + 2 * LANES <= K; k += 2 * LANES) {                                            \
                vec w0 = wload_##T(wn + k), w1 = wload_##T(wn + k + LANES);                         \
                for (int r = 0; r < R; r++) {                                                       \
                    even[r] = vfma(w0, vload(x + r * ldx + k), even[r]);                            \
                    odd[r] = vfma(w1, vload(x + r * ldx + k + LANES), odd[r]);                      \
                }                                                                                   \
            }                                                                                       \
            if (k + LANES <= K) {                                                                   \
                vec w0 = wload_##T(wn + k);                                                         \
                for (int r = 0; r < R; r++) even[r] = vfma(w0, vload(x + r * ldx + k), even[r]);    \
                k += LANES;                                                                         \
            }                                                                                       \
            for (int r = 0; r < R; r++) {                                                           \
                float s = vsum(vadd(even[r], odd[r]));                                              \
                for (long t = k; t < K; t++) s += widen_##T(wn[t]) * x[r * ldx + t];                \
                y[r * N + n] = b ? s + b[n] : s;                                                    \
            }                                                                                       \
        }                                                                                           \
    }

/* Everything for one storage type T: the loop over groups of up to four activation rows. */
#define LINEAR(T)                                                                                   \
    ROWS(T, 1) ROWS(T, 2) ROWS(T, 3) ROWS(T, 4)                                                     \
    static void linear_##T(const wt_##T *w, const float *x, long ldx, const float *b, float *y,   \
                           long rows, long N, long K) {                                             \
        for (long m = 0; m < rows; m += 4) {                                                        \
            const float *xm = x + m * ldx;                                                          \
            float *ym = y + m * N;                                                                  \
            switch (rows - m) {                                                                     \
            case 1: rows_##T##_1(w, xm, ldx, b, ym, N, K); break;                                   \
            case 2: rows_##T##_2(w, xm, ldx, b, ym, N, K); break;                                   \
            case 3: rows_##T##_3(w, xm, ldx, b, ym, N, K); break;                                   \
            default: rows_##T##_4(w, xm, ldx, b, ym, N, K); break;                                  \
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
