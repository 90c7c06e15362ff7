"""A fused C kernel for the CSR edge-softmax (CPU, float32), loaded with ctypes.

Why hand-written C: the chunked PyTorch implementation in :mod:`.csr` spends its time moving
``links x heads x head_dim`` gathered copies through memory (about ten full passes per
forward + backward); one fused loop per query row touches each key row once per pass, keeps the
running softmax in registers and needs no temporaries. No library we depend on offers a sampled
softmax with per-link bias and its backward on CPU (PyG's ``softmax`` + ``scatter`` is the
unfused recipe; ``torch.sparse`` has no such kernel), and ``torch.utils.cpp_extension`` would
compile the torch headers on first use (tens of seconds). This is plain C99 with ``<math.h>``
only; it builds with the system C compiler in about a second and is cached (by source, flags
and CPU) in ``$GFM_KERNEL_CACHE`` (default ``~/.cache/gfm/kernels``). Without a compiler the
backend falls back to the PyTorch path (same results) and logs a warning once.

Forward, per query row ``i``: the scores of all its links and heads (kept in a buffer as wide
as the widest row), the row maximum per head, then ``p = exp(s - m)``, ``l = sum p``,
``out = sum p v / l`` and ``lse = m + log l`` (``-inf`` and a zero output for a row without
links). Head sizes 16/32/64/128 get specialized, vectorized loops (dot products with sixteen
partial sums, since a single running sum cannot be vectorized without -ffast-math).
Backward, in one pass over the links: ``p = exp(s - lse)``, ``ds = p (dout . v - dout . out)``,
``dq += ds k``, ``dk += ds q``, ``dv += p dout``, ``dbias = ds``. Single-threaded (the scatter
into ``dk``/``dv`` would race across rows); memory is the inputs, outputs and gradients plus
one row of scores.
"""

from __future__ import annotations

import ctypes

import torch

from gfm.utils.c_kernels import CKernel

__all__ = ["KERNEL_SOURCE", "load_csr_kernel", "csr_forward_c", "csr_backward_c"]


KERNEL_SOURCE = r"""
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
"""

def _declare(library: ctypes.CDLL) -> None:
    library.gfm_csr_forward.restype = ctypes.c_int
    library.gfm_csr_forward.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 8
    library.gfm_csr_backward.restype = ctypes.c_int
    library.gfm_csr_backward.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 13


_KERNEL = CKernel(
    "gfm_csr_attention", KERNEL_SOURCE, ["-O3", "-std=c99", "-march=native", "-fno-math-errno"], _declare,
    fallback="using the PyTorch implementation", link_flags=["-lm"],
)


def load_csr_kernel() -> ctypes.CDLL | None:
    """Build (once, cached) and load the kernel; ``None`` (warning logged once) if impossible.

    ``GFM_DISABLE_C_KERNELS=1`` turns it off (the PyTorch path is used).
    """
    return _KERNEL.load()


def _pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _check(tensors: dict[str, torch.Tensor | None]) -> None:
    for name, tensor in tensors.items():
        if tensor is not None and (tensor.device.type != "cpu" or not tensor.is_contiguous()):
            raise ValueError(f"CSR kernel: {name} must be a contiguous CPU tensor")


def csr_forward_c(
    library: ctypes.CDLL,
    row_pointer: torch.Tensor,
    key: torch.Tensor,
    query: torch.Tensor,
    key_states: torch.Tensor,
    value: torch.Tensor,
    link_bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward of the fused kernel: ``query`` (pre-scaled) / ``key_states`` / ``value`` float32 ``[N, H, D]``.

    Returns:
        ``(out [N, H, D], log_sum_exp [N, H])``.
    """
    _check({"row_pointer": row_pointer, "key": key, "query": query, "key_states": key_states, "value": value,
            "link_bias": link_bias})
    num_positions, heads, head_dim = query.shape
    out = torch.empty_like(query)
    log_sum_exp = torch.empty(num_positions, heads, dtype=query.dtype)
    status = library.gfm_csr_forward(
        num_positions, heads, head_dim, _pointer(row_pointer), _pointer(key), _pointer(query),
        _pointer(key_states), _pointer(value), _pointer(link_bias), _pointer(out), _pointer(log_sum_exp),
    )
    if status != 0:
        raise MemoryError("CSR attention kernel could not allocate its per-row buffer")
    return out, log_sum_exp


def csr_backward_c(
    library: ctypes.CDLL,
    row_pointer: torch.Tensor,
    key: torch.Tensor,
    query: torch.Tensor,
    key_states: torch.Tensor,
    value: torch.Tensor,
    link_bias: torch.Tensor | None,
    out: torch.Tensor,
    log_sum_exp: torch.Tensor,
    grad_out: torch.Tensor,
    need: tuple[bool, bool, bool, bool],
) -> tuple[torch.Tensor | None, ...]:
    """Backward of the fused kernel; ``need`` = which of (query, key, value, bias) gradients to compute."""
    _check({"grad_out": grad_out, "out": out, "log_sum_exp": log_sum_exp})
    num_positions, heads, head_dim = query.shape
    grad_query = torch.zeros_like(query) if need[0] else None
    grad_key = torch.zeros_like(key_states) if need[1] else None
    grad_value = torch.zeros_like(value) if need[2] else None
    grad_bias = torch.zeros_like(link_bias) if (need[3] and link_bias is not None) else None
    status = library.gfm_csr_backward(
        num_positions, heads, head_dim, _pointer(row_pointer), _pointer(key), _pointer(query),
        _pointer(key_states), _pointer(value), _pointer(link_bias), _pointer(out), _pointer(log_sum_exp),
        _pointer(grad_out), _pointer(grad_query), _pointer(grad_key), _pointer(grad_value), _pointer(grad_bias),
    )
    if status != 0:
        raise MemoryError("CSR attention kernel could not allocate its per-row buffer")
    return grad_query, grad_key, grad_value, grad_bias
