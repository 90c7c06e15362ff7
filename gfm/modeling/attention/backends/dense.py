"""Dense masked SDPA: the reference every other backend is tested against.

Builds a ``[B, H, T, T]`` additive mask (link bias on links, ``-inf`` elsewhere) from the
pattern's materialized links and calls ``torch.nn.functional.scaled_dot_product_attention``.
Memory is quadratic in ``T``; ``"auto"`` picks it only for short rows, where it is fastest.

A query without any key would make SDPA return NaN; its mask row is opened (all zeros) and its
output multiplied by zero instead, so forward and backward stay finite and the row is zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..patterns import AttentionPattern
from .registry import AttentionBackend, register_backend

__all__ = ["dense_attention", "dense_attention_mask"]

#: "auto" never picks dense when the mask would exceed this many elements (B * T * T * 8 heads)
_AUTO_MAX_MASK_ELEMENTS = 64 * 1024 * 1024


def dense_attention_mask(
    pattern: AttentionPattern, link_bias: torch.Tensor | None, num_heads: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The additive mask and the has-a-key indicator of every query.

    Returns:
        ``(mask [B, H, T, T], has_key [B, T] bool)``; ``mask`` is differentiable w.r.t. ``link_bias``.
    """
    B, T = pattern.num_rows, pattern.row_length
    query, key, link_type = pattern.links()
    row, query_column, key_column = query // T, query % T, key % T
    if link_bias is None:
        values = torch.zeros(query.numel(), num_heads, dtype=dtype, device=query.device)
    else:
        values = link_bias.to(dtype)[link_type]
    mask = torch.full((B, T, T, num_heads), float("-inf"), dtype=dtype, device=query.device)
    mask = mask.index_put((row, query_column, key_column), values)
    has_key = torch.zeros(B * T, dtype=torch.bool, device=query.device)
    has_key[query] = True
    has_key = has_key.view(B, T)
    mask = torch.where(has_key[:, :, None, None], mask, torch.zeros((), dtype=dtype, device=query.device))
    return mask.permute(0, 3, 1, 2), has_key


def dense_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pattern: AttentionPattern,
    link_bias: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """Dense masked attention; shapes as in :mod:`.registry` (``[B, T, H, D]`` in and out)."""
    compute_dtype = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
    num_heads = query.shape[2]
    with torch.autocast(device_type=query.device.type, enabled=False):
        mask, has_key = dense_attention_mask(pattern, link_bias, num_heads, compute_dtype)
        out = F.scaled_dot_product_attention(
            query.to(compute_dtype).transpose(1, 2),
            key.to(compute_dtype).transpose(1, 2),
            value.to(compute_dtype).transpose(1, 2),
            attn_mask=mask,
            scale=scale,
        ).transpose(1, 2)
        out = out * has_key[:, :, None, None].to(compute_dtype)
    return out.to(query.dtype)


def _cost(pattern: AttentionPattern, head_dim: int) -> float:
    """~0.045 us per (query, key) pair at head size 16 (forward + backward); refuses large masks."""
    B, T = pattern.num_rows, pattern.row_length
    if B * T * T * 8 > _AUTO_MAX_MASK_ELEMENTS:
        return float("inf")
    return float(B * T * T) * 0.045 * (0.5 + head_dim / 32.0)


register_backend(
    AttentionBackend(
        name="dense",
        forward=dense_attention,
        unavailable_reason=lambda device: None,
        unsupported_reason=lambda pattern, head_dim: None,
        estimated_cost=_cost,
    )
)
