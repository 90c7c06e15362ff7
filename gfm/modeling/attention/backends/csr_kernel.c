/* Fused CSR edge-softmax attention, forward and backward (CPU, float32), for gfm.
   Built and cached by gfm.utils.c_kernels; called through ctypes by _csr_kernel.py beside it,
   whose docstring gives the algorithm. Plain C99 + <math.h>. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PREFETCH_DISTANCE 6
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Bring a row of hd floats towards the cache (random key rows are the bottleneck on big graphs). */
ALWAYS_INLINE void prefetch_row(const float *row, int64_t hd) {
    for (int64_t t = 0; t < hd; t += 16) __builtin_prefetch(row + t, 0, 1);
}

/* The same for a row about to be updated (gradient rows): fetch it for writing, keep it close. */
ALWAYS_INLINE void prefetch_row_for_write(const float *row, int64_t hd) {
    for (int64_t t = 0; t < hd; t += 16) __builtin_prefetch(row + t, 1, 3);
}

/* Sixteen independent partial sums: without -ffast-math a compiler may not reorder one running
   sum, so a single accumulator is a scalar chain of d dependent multiply-adds; sixteen lanes
   vectorize, then fold pairwise (also vectorizable). */
ALWAYS_INLINE float dot(const float *restrict a, const float *restrict b, int64_t d) {
    if ((d & 15) == 0) {
        float acc[16] = {0.0f};
        for (int64_t t = 0; t < d; t += 16)
            for (int u = 0; u < 16; ++u) acc[u] += a[t + u] * b[t + u];
        for (int width = 8; width > 0; width >>= 1)
            for (int u = 0; u < width; ++u) acc[u] += acc[u + width];
        return acc[0];
    }
    float s = 0.0f;
    for (int64_t t = 0; t < d; ++t) s += a[t] * b[t];
    return s;
}

ALWAYS_INLINE void axpy(float *restrict y, float alpha, const float *restrict x, int64_t d) {
    for (int64_t t = 0; t < d; ++t) y[t] += alpha * x[t];
}

/* Two passes per row: scores (kept in `scores`, [degree, h]), then max-subtracted exp and sums. */
ALWAYS_INLINE void forward_rows(int64_t n, int64_t h, int64_t d, const int64_t *row_ptr, const int64_t *key,
                                const float *q, const float *k, const float *v, const float *bias,
                                float *out, float *lse, float *scores, float *m, float *l) {
    const int64_t hd = h * d;
    const int64_t nnz = row_ptr[n];
    for (int64_t i = 0; i < n; ++i) {
        const int64_t begin = row_ptr[i], end = row_ptr[i + 1];
        const float *qi = q + i * hd;
        float *oi = out + i * hd;
        memset(oi, 0, sizeof(float) * (size_t)hd);
        for (int64_t hh = 0; hh < h; ++hh) { m[hh] = -INFINITY; l[hh] = 0.0f; }
        for (int64_t e = begin; e < end; ++e) {
            if (e + PREFETCH_DISTANCE < nnz) prefetch_row(k + key[e + PREFETCH_DISTANCE] * hd, hd);
            const float *kj = k + key[e] * hd;
            float *se = scores + (e - begin) * h;
            for (int64_t hh = 0; hh < h; ++hh) {
                float s = dot(qi + hh * d, kj + hh * d, d);
                if (bias != NULL) s += bias[e * h + hh];
                se[hh] = s;
                if (s > m[hh]) m[hh] = s;
            }
        }
        for (int64_t e = begin; e < end; ++e) {
            if (e + PREFETCH_DISTANCE < nnz) prefetch_row(v + key[e + PREFETCH_DISTANCE] * hd, hd);
            const float *vj = v + key[e] * hd;
            const float *se = scores + (e - begin) * h;
            for (int64_t hh = 0; hh < h; ++hh) {
                const float p = expf(se[hh] - m[hh]);
                l[hh] += p;
                axpy(oi + hh * d, p, vj + hh * d, d);
            }
        }
        for (int64_t hh = 0; hh < h; ++hh) {
            if (l[hh] > 0.0f) {
                const float inv = 1.0f / l[hh];
                float *o = oi + hh * d;
                for (int64_t t = 0; t < d; ++t) o[t] *= inv;
                lse[i * h + hh] = m[hh] + logf(l[hh]);
            } else {
                lse[i * h + hh] = -INFINITY;
            }
        }
    }
}

ALWAYS_INLINE void backward_rows(int64_t n, int64_t h, int64_t d, const int64_t *row_ptr, const int64_t *key,
                                 const float *q, const float *k, const float *v, const float *bias,
                                 const float *out, const float *lse, const float *dout,
                                 float *dq, float *dk, float *dv, float *dbias, float *delta) {
    const int64_t hd = h * d;
    const int64_t nnz = row_ptr[n];
    for (int64_t i = 0; i < n; ++i) {
        const int64_t begin = row_ptr[i], end = row_ptr[i + 1];
        if (begin == end) continue;
        const float *qi = q + i * hd;
        const float *doi = dout + i * hd;
        for (int64_t hh = 0; hh < h; ++hh) delta[hh] = dot(doi + hh * d, out + i * hd + hh * d, d);
        for (int64_t e = begin; e < end; ++e) {
            if (e + PREFETCH_DISTANCE < nnz) {
                const int64_t ahead = key[e + PREFETCH_DISTANCE] * hd;
                prefetch_row(k + ahead, hd);
                prefetch_row(v + ahead, hd);
                if (dk != NULL) prefetch_row_for_write(dk + ahead, hd);
                if (dv != NULL) prefetch_row_for_write(dv + ahead, hd);
            }
            const int64_t j = key[e];
            const float *kj = k + j * hd;
            const float *vj = v + j * hd;
            for (int64_t hh = 0; hh < h; ++hh) {
                const int64_t off = hh * d;
                float s = dot(qi + off, kj + off, d);
                if (bias != NULL) s += bias[e * h + hh];
                const float p = expf(s - lse[i * h + hh]);
                const float ds = p * (dot(doi + off, vj + off, d) - delta[hh]);
                if (dbias != NULL) dbias[e * h + hh] = ds;
                if (dq != NULL) axpy(dq + i * hd + off, ds, kj + off, d);
                if (dk != NULL) axpy(dk + j * hd + off, ds, qi + off, d);
                if (dv != NULL) axpy(dv + j * hd + off, p, doi + off, d);
            }
        }
    }
}

/* q, k, v, out: [n, h, d]; bias: [nnz, h] or NULL; lse: [n, h]; row_ptr: [n + 1]; key: [nnz] */
int gfm_csr_forward(int64_t n, int64_t h, int64_t d, const int64_t *row_ptr, const int64_t *key,
                    const float *q, const float *k, const float *v, const float *bias,
                    float *out, float *lse) {
    int64_t widest = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t degree = row_ptr[i + 1] - row_ptr[i];
        if (degree > widest) widest = degree;
    }
    float *buffer = (float *)malloc(sizeof(float) * (size_t)(h * (widest + 2)));
    if (buffer == NULL) return 1;
    float *m = buffer, *l = buffer + h, *scores = buffer + 2 * h;
    /* constant head sizes let the compiler unroll and vectorize the inner loops */
    if (d == 16) forward_rows(n, h, 16, row_ptr, key, q, k, v, bias, out, lse, scores, m, l);
    else if (d == 32) forward_rows(n, h, 32, row_ptr, key, q, k, v, bias, out, lse, scores, m, l);
    else if (d == 64) forward_rows(n, h, 64, row_ptr, key, q, k, v, bias, out, lse, scores, m, l);
    else if (d == 128) forward_rows(n, h, 128, row_ptr, key, q, k, v, bias, out, lse, scores, m, l);
    else forward_rows(n, h, d, row_ptr, key, q, k, v, bias, out, lse, scores, m, l);
    free(buffer);
    return 0;
}

/* Gradients are accumulated into dq, dk, dv (zero-initialized by the caller); any may be NULL. */
int gfm_csr_backward(int64_t n, int64_t h, int64_t d, const int64_t *row_ptr, const int64_t *key,
                     const float *q, const float *k, const float *v, const float *bias,
                     const float *out, const float *lse, const float *dout,
                     float *dq, float *dk, float *dv, float *dbias) {
    float *delta = (float *)malloc(sizeof(float) * (size_t)h);
    if (delta == NULL) return 1;
    if (d == 16) backward_rows(n, h, 16, row_ptr, key, q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, delta);
    else if (d == 32) backward_rows(n, h, 32, row_ptr, key, q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, delta);
    else if (d == 64) backward_rows(n, h, 64, row_ptr, key, q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, delta);
    else if (d == 128) backward_rows(n, h, 128, row_ptr, key, q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, delta);
    else backward_rows(n, h, d, row_ptr, key, q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, delta);
    free(delta);
    return 0;
}
