"""CSR edge-softmax attention: any pattern, exact softmax with max subtraction, linear memory.

The links are sorted by query (CSR). Two implementations compute the same function:

* on CPU (float32), a fused C kernel (:mod:`._csr_kernel`): one online-softmax pass per query
  row in the forward, one pass over the links in the backward, no temporaries;
* everywhere else (GPU, or no C compiler), chunked PyTorch: rows are processed in chunks of
  about ``CHUNK_LINKS`` links; a chunk never splits a row, so each chunk's softmax is exact on its
  own. Per chunk the forward gathers ``q[query]`` and ``k[key]``, computes scores, the row maximum
  (``torch.segment_reduce``), ``exp``, the row sums and ``sum_j p_ij v_j`` (``index_add_``).

Both keep only the output and the row log-sum-exp for the backward, which recomputes the
probabilities (as FlashAttention does for dense attention), so nothing of size
``links x head_dim`` outlives a chunk:

    memory = O(N * H * D + links * H)   (inputs, output, log-sum-exp, per-link bias and its grad)

Written by hand because no library offers it: PyG's ``utils.softmax`` + ``scatter`` keeps every
per-link intermediate (``links x H x D`` gathers) alive for autograd, and
``torch.sparse``'s CSR ops have no sampled softmax with per-link bias and backward on CPU.
"""

from __future__ import annotations

import torch

from ..patterns import AttentionPattern, CSRLinks
from ._csr_kernel import csr_backward_c, csr_forward_c, load_csr_kernel
from .registry import AttentionBackend, register_backend

__all__ = ["CHUNK_LINKS", "csr_attention"]

#: links per chunk: small enough to stay in cache, large enough to amortize Python overhead
CHUNK_LINKS = 8192


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(-1)`` for ``[E, H, D]`` operands -> ``[E, H]``."""
    return torch.mul(a, b).sum(-1)


def _chunk_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    link_bias: torch.Tensor | None,
    local_query: torch.Tensor,
    key_index: torch.Tensor,
    row_start: int,
    row_end: int,
    link_start: int,
    link_end: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    query_gathered = query[row_start:row_end].index_select(0, local_query)
    key_gathered = key.index_select(0, key_index)
    scores = _row_dot(query_gathered, key_gathered)
    if link_bias is not None:
        scores = scores + link_bias[link_start:link_end]
    return scores, query_gathered, key_gathered


class _CSRAttention(torch.autograd.Function):
    """``out_i = sum_j softmax_j(q_i . k_j + b_ij) v_j`` over the links of row ``i``.

    Inputs: ``query`` (already scaled), ``key``, ``value`` ``[N, H, D]`` float32, ``link_bias``
    ``[nnz, H]`` or None, the :class:`CSRLinks`, the chunk size. Output ``[N, H, D]``.
    """

    @staticmethod
    def forward(ctx, query, key, value, link_bias, csr: CSRLinks, chunk_links: int, kernel):  # type: ignore[override]
        ctx.csr = csr
        ctx.chunk_links = chunk_links
        ctx.has_bias = link_bias is not None
        ctx.kernel = kernel
        if kernel is not None:
            out, log_sum_exp = csr_forward_c(kernel, csr.row_pointer, csr.key, query, key, value, link_bias)
            ctx.save_for_backward(query, key, value, link_bias, out, log_sum_exp)
            return out
        num_positions, num_heads, _ = query.shape
        out = torch.zeros_like(query)
        log_sum_exp = torch.full((num_positions, num_heads), float("-inf"), dtype=query.dtype, device=query.device)
        chunks = csr.row_chunks(chunk_links)
        for row_start, row_end, link_start, link_end in chunks:
            local_query = csr.query[link_start:link_end] - row_start
            key_index = csr.key[link_start:link_end]
            lengths = csr.row_pointer[row_start + 1 : row_end + 1] - csr.row_pointer[row_start:row_end]
            scores, _, _ = _chunk_scores(
                query, key, link_bias, local_query, key_index, row_start, row_end, link_start, link_end
            )
            row_max = torch.segment_reduce(scores, "max", lengths=lengths)
            probabilities = (scores - row_max.index_select(0, local_query)).exp_()
            row_sum = torch.segment_reduce(probabilities, "sum", lengths=lengths)
            weighted = value.index_select(0, key_index).mul_(probabilities.unsqueeze(-1))
            chunk_out = out[row_start:row_end]
            chunk_out.index_add_(0, local_query, weighted)
            nonempty = row_sum > 0
            chunk_out.div_(torch.where(nonempty, row_sum, torch.ones_like(row_sum)).unsqueeze(-1))
            log_sum_exp[row_start:row_end] = torch.where(nonempty, row_max + row_sum.log(), row_max)
        ctx.save_for_backward(query, key, value, link_bias, out, log_sum_exp)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        query, key, value, link_bias, out, log_sum_exp = ctx.saved_tensors
        csr: CSRLinks = ctx.csr
        grad_out = grad_out.contiguous()
        need_q, need_k, need_v, need_bias = ctx.needs_input_grad[:4]
        if ctx.kernel is not None:
            grads = csr_backward_c(
                ctx.kernel, csr.row_pointer, csr.key, query, key, value, link_bias, out, log_sum_exp, grad_out,
                (need_q, need_k, need_v, need_bias),
            )
            return (*grads, None, None, None)
        grad_query = torch.zeros_like(query) if need_q else None
        grad_key = torch.zeros_like(key) if need_k else None
        grad_value = torch.zeros_like(value) if need_v else None
        grad_bias = torch.zeros_like(link_bias) if (need_bias and ctx.has_bias) else None
        delta = _row_dot(grad_out, out)  # [N, H]: sum_j p_ij dp_ij
        for row_start, row_end, link_start, link_end in csr.row_chunks(ctx.chunk_links):
            local_query = csr.query[link_start:link_end] - row_start
            key_index = csr.key[link_start:link_end]
            scores, query_gathered, key_gathered = _chunk_scores(
                query, key, link_bias, local_query, key_index, row_start, row_end, link_start, link_end
            )
            probabilities = (scores - log_sum_exp[row_start:row_end].index_select(0, local_query)).exp_()
            grad_out_gathered = grad_out[row_start:row_end].index_select(0, local_query)
            if grad_value is not None:
                grad_value.index_add_(0, key_index, grad_out_gathered * probabilities.unsqueeze(-1))
            grad_probabilities = _row_dot(grad_out_gathered, value.index_select(0, key_index))
            grad_scores = grad_probabilities.sub_(delta[row_start:row_end].index_select(0, local_query))
            grad_scores.mul_(probabilities)
            if grad_bias is not None:
                grad_bias[link_start:link_end] = grad_scores
            grad_scores = grad_scores.unsqueeze(-1)
            if grad_query is not None:
                grad_query[row_start:row_end].index_add_(0, local_query, key_gathered.mul_(grad_scores))
            if grad_key is not None:
                grad_key.index_add_(0, key_index, query_gathered.mul_(grad_scores))
        return grad_query, grad_key, grad_value, grad_bias, None, None, None


def csr_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pattern: AttentionPattern,
    link_bias: torch.Tensor | None,
    scale: float,
    chunk_links: int | None = None,
    use_kernel: bool | None = None,
) -> torch.Tensor:
    """CSR edge-softmax attention; shapes as in :mod:`.registry` (``[B, T, H, D]`` in and out).

    Args:
        chunk_links: links per chunk of the PyTorch path.
        use_kernel: ``None`` = the fused C kernel when the inputs are on the CPU and it builds,
            ``False`` = always the chunked PyTorch path, ``True`` = require the kernel.
    """
    B, T, H, D = query.shape
    csr = pattern.csr()
    compute_dtype = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
    with torch.autocast(device_type=query.device.type, enabled=False):
        q = (query.to(compute_dtype) * scale).reshape(B * T, H, D)
        k = key.to(compute_dtype).reshape(B * T, H, D).contiguous()
        v = value.to(compute_dtype).reshape(B * T, H, D).contiguous()
        per_link_bias = None if link_bias is None else link_bias.to(compute_dtype)[csr.link_type]
        kernel = None
        if use_kernel is not False and query.device.type == "cpu" and compute_dtype == torch.float32:
            kernel = load_csr_kernel()
        if use_kernel and kernel is None:
            raise RuntimeError("the CSR C kernel was required (use_kernel=True) but is not available here")
        out = _CSRAttention.apply(q.contiguous(), k, v, per_link_bias, csr, chunk_links or CHUNK_LINKS, kernel)
    return out.reshape(B, T, H, D).to(query.dtype)


def _cost(pattern: AttentionPattern, head_dim: int) -> float:
    """~0.4-0.85 us per link at head size 16 (fused kernel; random key rows are the slow end)."""
    return float(pattern.num_links_estimate()) * 0.63 * (0.5 + head_dim / 32.0)


register_backend(
    AttentionBackend(
        name="csr",
        forward=csr_attention,
        unavailable_reason=lambda device: None,
        unsupported_reason=lambda pattern, head_dim: None,
        estimated_cost=_cost,
    )
)
