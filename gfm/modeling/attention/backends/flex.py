"""FlexAttention with a block mask (CUDA only).

The pattern's links are written into a per-row link-type table ``[B, T', T']`` (``int16``,
``-1`` = no link; ``T'`` = ``T`` rounded up to FlexAttention's 128-wide blocks); the mask
function reads it, ``create_block_mask`` turns it into a block-sparse mask so fully empty
``128 x 128`` tiles are skipped, and the score function adds the link bias of the type. The
table costs ``2 B T'^2`` bytes, so ``"auto"`` uses this backend only while that stays below
256 MB (longer rows go to CSR).

PyTorch 2.13 has no FlexAttention backward on CPU (its eager CPU forward exists but is only a
slow reference), so the backend reports itself unavailable without CUDA; the tests check its
CPU forward against the dense reference through :func:`flex_attention_forward` directly.
"""

from __future__ import annotations

import functools
import importlib.util

import torch
import torch.nn.functional as F

from ..patterns import AttentionPattern
from .registry import AttentionBackend, register_backend

__all__ = ["flex_attention_forward", "flex_attention_backend"]

_BLOCK = 128
_MAX_TABLE_BYTES = 256 * 1024 * 1024


def _padded_length(length: int) -> int:
    return -(-length // _BLOCK) * _BLOCK


def link_type_table(pattern: AttentionPattern, padded_length: int) -> torch.Tensor:
    """int16 ``[B, padded_length, padded_length]``: link type of (query column, key column), -1 if none."""
    B, T = pattern.num_rows, pattern.row_length
    query, key, link_type = pattern.links()
    table = torch.full((B, padded_length, padded_length), -1, dtype=torch.int16, device=query.device)
    table[query // T, query % T, key % T] = link_type.to(torch.int16)
    return table


@functools.lru_cache(maxsize=1)
def _compiled_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_attention_forward(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pattern: AttentionPattern,
    link_bias: torch.Tensor | None,
    scale: float,
    compiled: bool = True,
) -> torch.Tensor:
    """FlexAttention over the pattern; shapes as in :mod:`.registry`.

    Args:
        compiled: use ``torch.compile``-d FlexAttention (required for speed on GPU); ``False``
            runs PyTorch's eager reference (used by the CPU tests, forward only).
    """
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    B, T, H, D = query.shape
    padded = _padded_length(T)
    table = link_type_table(pattern, padded)
    bias = None
    if link_bias is not None:
        bias = link_bias.to(torch.float32)

    def mask_mod(b, h, q_idx, kv_idx):
        return table[b, q_idx, kv_idx] >= 0

    def score_mod(score, b, h, q_idx, kv_idx):
        link = table[b, q_idx, kv_idx].to(torch.int64).clamp(min=0)
        return score + bias[link, h]

    block_mask = create_block_mask(mask_mod, B, None, padded, padded, device=query.device, _compile=compiled)
    compute_dtype = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) and not query.is_cuda else query.dtype

    def heads_first(tensor: torch.Tensor) -> torch.Tensor:
        return F.pad(tensor.to(compute_dtype), (0, 0, 0, 0, 0, padded - T)).transpose(1, 2)

    attend = _compiled_flex_attention() if compiled else flex_attention
    out = attend(
        heads_first(query),
        heads_first(key),
        heads_first(value),
        score_mod=score_mod if bias is not None else None,
        block_mask=block_mask,
        scale=scale,
    )
    return out.transpose(1, 2)[:, :T].to(query.dtype)


def flex_attention_backend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pattern: AttentionPattern,
    link_bias: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    return flex_attention_forward(query, key, value, pattern, link_bias, scale, compiled=True)


def _unavailable(device: torch.device) -> str | None:
    if device.type != "cuda" or not torch.cuda.is_available():
        return (
            "FlexAttention needs a CUDA device (PyTorch has no FlexAttention backward on CPU); "
            "use 'auto', 'csr', 'block_sdpa' or 'dense' on this machine"
        )
    if importlib.util.find_spec("torch.nn.attention.flex_attention") is None:  # pragma: no cover - torch < 2.5
        return "this PyTorch has no torch.nn.attention.flex_attention (needs torch >= 2.5)"
    return None


def _unsupported(pattern: AttentionPattern, head_dim: int) -> str | None:
    table_bytes = 2 * pattern.num_rows * _padded_length(pattern.row_length) ** 2
    if table_bytes > _MAX_TABLE_BYTES:
        return f"its link-type table would take {table_bytes / 2**20:.0f} MB (> 256 MB); use csr"
    return None


register_backend(
    AttentionBackend(
        name="flex",
        forward=flex_attention_backend,
        unavailable_reason=_unavailable,
        unsupported_reason=_unsupported,
        # fused GPU kernel that skips empty tiles: preferred whenever it is available
        estimated_cost=lambda pattern, head_dim: 0.0,
    )
)
