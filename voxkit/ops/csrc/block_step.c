/* One transformer block (voxkit/lm/transformer.py: TransformerBlock) for the few rows of a
 * streaming step, in one call.
 *
 * Why: a live step of a small model runs each block on one decoder token or four encoder frames
 * per stream. PyTorch spends most of that step dispatching ~200 small operators per block
 * (norms, rotary, cache writes, masks, attention, SwiGLU); the arithmetic itself is a few
 * hundred microseconds. This kernel does the same computation on raw pointers:
 *
 *   h   = x + wo(attention(rope(wqkv(rms_norm(x) * attention_norm))))   (ring KV cache, GQA)
 *   out = h + w2(silu(w1 n) * w3 n),  n = rms_norm(h) * ffn_norm [* (1 + g(delay))]
 *
 * with the weights read once per call in their storage type (float16, bfloat16 or float32, see
 * linear16.c). The ring cache follows voxkit/lm/cache.py: slot j of stream b holds absolute
 * position slot_pos[b, j] (-1: empty); a query at position p sees slot j when
 * 0 <= slot_pos <= p and, with a sliding window W, p - slot_pos < W. Keys of the call's own rows
 * are written before attending, as the reference does. The numbers agree with the reference to
 * float32 rounding (sums run in another order), not bit for bit.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "linear16.c"

/* Storage type codes (voxkit/lm/fused_step.py). */
enum { W_F16 = 0, W_BF16 = 1, W_F32 = 2 };

typedef struct {
    const void *w;
    const float *b; /* NULL: no bias */
    int dtype;
} Matrix;

typedef struct {
    long dim, n_heads, n_kv_heads, head_dim, hidden;
    long window; /* <= 0: no sliding window */
    float eps;
    const float *attention_norm, *ffn_norm; /* [dim] */
    Matrix wqkv;                            /* [(n_heads + 2 n_kv_heads) head_dim, dim] */
    Matrix wo;                              /* [dim, n_heads head_dim] */
    Matrix w13;                             /* [2 hidden, dim]: w1 rows, then w3 rows */
    Matrix w2;                              /* [dim, hidden] */
} Block;

typedef struct {
    long batch, rows;         /* streams, new rows per stream */
    long capacity, used;      /* ring slots; attention reads slots [0, used) */
    float *x;                 /* [batch, rows, dim], updated in place */
    const float *gain;        /* [batch, dim] Ada-RMSNorm factor 1 + g, or NULL */
    const float *rotation;    /* [rot_batch, rows, head_dim / 2, 2]: (cos, sin) times the RoPE scale */
    long rot_batch;           /* 1 (shared positions) or batch */
    const int64_t *slots;     /* [batch, rows] ring slot of each new row */
    const int64_t *positions; /* [batch, rows] absolute position of each new row */
    const int64_t *slot_pos;  /* [batch, capacity] */
    float *k_cache, *v_cache; /* [batch, n_kv_heads, capacity, head_dim] */
    float *scratch;           /* block_step_scratch() floats */
} Step;

#if ISA
/* y [rows, N] = x [rows, K] @ m.T (+ bias). */
static void matmul(const Matrix *m, const float *x, float *y, long rows, long N, long K) {
    if (m->dtype == W_F16)
        linear_f16((const wt_f16 *)m->w, x, K, m->b, y, rows, N, K);
    else if (m->dtype == W_BF16)
        linear_bf16((const wt_bf16 *)m->w, x, K, m->b, y, rows, N, K);
    else
        linear_f32((const wt_f32 *)m->w, x, K, m->b, y, rows, N, K);
}

static void rms_norm(const float *x, const float *weight, const float *gain, float eps, float *y, long dim) {
    float sum = 0.f;
    for (long i = 0; i < dim; i++) sum += x[i] * x[i];
    float inv = 1.f / sqrtf(sum / (float)dim + eps);
    for (long i = 0; i < dim; i++) y[i] = x[i] * inv * weight[i];
    if (gain)
        for (long i = 0; i < dim; i++) y[i] *= gain[i];
}

/* Interleaved pairs (x0 + i x1) times (c + i s). */
static void rotate(float *x, const float *rot, long half) {
    for (long i = 0; i < half; i++) {
        float x0 = x[2 * i], x1 = x[2 * i + 1], c = rot[2 * i], s = rot[2 * i + 1];
        x[2 * i] = x0 * c - x1 * s;
        x[2 * i + 1] = x0 * s + x1 * c;
    }
}

static float dot(const float *a, const float *b, long n) {
    long i = 0;
    float s = 0.f;
    if (n >= LANES) {
        vec acc = vzero();
        for (; i + LANES <= n; i += LANES) acc = vfma(vload(a + i), vload(b + i), acc);
        s = vsum(acc);
    }
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One query row of one head: softmax over the visible slots, weighted sum of their values. */
static void attend(const float *q, const float *keys, const float *values, const int64_t *slot_pos, long used,
                   long pos, long window, long hd, float *scores, float *out) {
    float scale = 1.f / sqrtf((float)hd), best = -INFINITY;
    for (long j = 0; j < used; j++) {
        int64_t p = slot_pos[j];
        int visible = p >= 0 && p <= pos && (window <= 0 || pos - p < window);
        scores[j] = visible ? dot(q, keys + j * hd, hd) * scale : -INFINITY;
        if (scores[j] > best) best = scores[j];
    }
    for (long i = 0; i < hd; i++) out[i] = 0.f;
    if (best == -INFINITY) return; /* nothing visible (cannot happen: a row sees itself) */
    float total = 0.f;
    for (long j = 0; j < used; j++) {
        if (scores[j] == -INFINITY) continue;
        float e = expf(scores[j] - best);
        total += e;
        const float *v = values + j * hd;
        for (long i = 0; i < hd; i++) out[i] += e * v[i];
    }
    float inv = 1.f / total;
    for (long i = 0; i < hd; i++) out[i] *= inv;
}
#endif

long block_step_scratch(long rows, long dim, long n_heads, long n_kv_heads, long head_dim, long hidden, long capacity) {
    long qkv = (n_heads + 2 * n_kv_heads) * head_dim;
    return rows * (2 * dim + qkv + n_heads * head_dim + 3 * hidden) + capacity;
}

int block_step_isa(void) { return ISA; }

/* The memory layout of Block, Matrix and Step as this compiler laid them out: sizes, then every
 * field's offset in declaration order. voxkit/lm/fused_step.py compares it with its ctypes
 * mirrors before the first call, so a field added on one side only is refused, never misread. */
#define OFF(T, f) (long)offsetof(T, f)
long block_step_layout(long *out, long n) {
    const long layout[] = {
        (long)sizeof(Matrix), OFF(Matrix, w), OFF(Matrix, b), OFF(Matrix, dtype),
        (long)sizeof(Block), OFF(Block, dim), OFF(Block, n_heads), OFF(Block, n_kv_heads), OFF(Block, head_dim),
        OFF(Block, hidden), OFF(Block, window), OFF(Block, eps), OFF(Block, attention_norm), OFF(Block, ffn_norm),
        OFF(Block, wqkv), OFF(Block, wo), OFF(Block, w13), OFF(Block, w2),
        (long)sizeof(Step), OFF(Step, batch), OFF(Step, rows), OFF(Step, capacity), OFF(Step, used), OFF(Step, x),
        OFF(Step, gain), OFF(Step, rotation), OFF(Step, rot_batch), OFF(Step, slots), OFF(Step, positions),
        OFF(Step, slot_pos), OFF(Step, k_cache), OFF(Step, v_cache), OFF(Step, scratch),
    };
    long count = (long)(sizeof(layout) / sizeof(layout[0]));
    for (long i = 0; i < count && i < n; i++) out[i] = layout[i];
    return count;
}

#if ISA
void block_step(const Block *w, const Step *s) {
    const long B = s->batch, T = s->rows, R = B * T, D = w->dim, H = w->n_heads, G = w->n_kv_heads;
    const long hd = w->head_dim, F = w->hidden, C = s->capacity, QKV = (H + 2 * G) * hd;
    float *normed = s->scratch;    /* [R, D] */
    float *qkv = normed + R * D;   /* [R, QKV] */
    float *att = qkv + R * QKV;    /* [R, H hd] */
    float *proj = att + R * H * hd; /* [R, D] */
    float *gu = proj + R * D;      /* [R, 2 F] */
    float *act = gu + R * 2 * F;   /* [R, F] */
    float *scores = act + R * F;   /* [used] */

    for (long r = 0; r < R; r++) rms_norm(s->x + r * D, w->attention_norm, NULL, w->eps, normed + r * D, D);
    matmul(&w->wqkv, normed, qkv, R, QKV, D);
    for (long b = 0; b < B; b++) {
        for (long t = 0; t < T; t++) {
            float *row = qkv + (b * T + t) * QKV;
            const float *rot = s->rotation + ((s->rot_batch > 1 ? b : 0) * T + t) * hd;
            for (long h = 0; h < H + G; h++) rotate(row + h * hd, rot, hd / 2); /* q and k heads */
            int64_t slot = s->slots[b * T + t];
            for (long g = 0; g < G; g++) {
                float *k = s->k_cache + ((b * G + g) * C + slot) * hd;
                float *v = s->v_cache + ((b * G + g) * C + slot) * hd;
                for (long i = 0; i < hd; i++) {
                    k[i] = row[(H + g) * hd + i];
                    v[i] = row[(H + G + g) * hd + i];
                }
            }
        }
        for (long t = 0; t < T; t++) {
            const float *row = qkv + (b * T + t) * QKV;
            for (long h = 0; h < H; h++) {
                long g = h / (H / G);
                attend(row + h * hd, s->k_cache + (b * G + g) * C * hd, s->v_cache + (b * G + g) * C * hd,
                       s->slot_pos + b * C, s->used, s->positions[b * T + t], w->window, hd, scores,
                       att + (b * T + t) * H * hd + h * hd);
            }
        }
    }
    matmul(&w->wo, att, proj, R, D, H * hd);
    for (long i = 0; i < R * D; i++) s->x[i] += proj[i];
    for (long r = 0; r < R; r++)
        rms_norm(s->x + r * D, w->ffn_norm, s->gain ? s->gain + (r / T) * D : NULL, w->eps, normed + r * D, D);
    matmul(&w->w13, normed, gu, R, 2 * F, D);
    for (long r = 0; r < R; r++) {
        const float *gate = gu + r * 2 * F, *up = gate + F;
        for (long i = 0; i < F; i++) act[r * F + i] = gate[i] / (1.f + expf(-gate[i])) * up[i];
    }
    matmul(&w->w2, act, proj, R, D, F);
    for (long i = 0; i < R * D; i++) s->x[i] += proj[i];
}
#endif
