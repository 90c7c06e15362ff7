"""Block SDPA for window-shaped patterns (sliding window, global and self links).

Two implementations of the same function:

* on CPU (float32 / float64 compute; half precision is upcast first), :mod:`._banded_flash`:
  query blocks whose key range is free of sample boundaries, global tokens and padding run
  mask-free over the centre of their window and with one broadcast ``[b, b]`` mask on its two
  edge bands; the remaining blocks run with a per-block mask; global keys and global queries are
  parts of their own; all parts are merged exactly by log-sum-exp (custom autograd function over
  PyTorch's CPU flash-attention kernels);
* elsewhere (CUDA), :func:`gathered_block_attention`: each row is cut into query blocks of
  ``b`` positions; block ``i`` attends to the keys of blocks ``i - n .. i + n``
  (``n = ceil(radius / b)``), gathered with ``unfold`` into one ``[blocks, H, (2n + 1) b, D]``
  tensor, plus the row's global tokens appended as extra keys; a boolean mask (shared by all
  heads) keeps exactly the pattern's links, and one ``scaled_dot_product_attention`` call does
  the work. The global-key bias ``g_h`` enters exactly by appending one dimension to queries
  (1) and keys (``g_h / scale`` on global keys, 0 elsewhere) and a zero dimension to values.
  Global queries (at most ``k`` per sample) attend to their whole sample in a second, small SDPA
  call whose rows replace the block results (their bias is constant along the row and cancels).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..patterns import AttentionPattern
from ._banded_flash import banded_flash_attention, banded_flash_supported, global_token_columns
from .registry import AttentionBackend, register_backend

__all__ = ["block_sdpa_attention", "block_size_for_radius", "flash_block_size", "gathered_block_attention"]


def block_size_for_radius(radius: int) -> int:
    """Query block size of the gathered path for a window radius: ``radius / 2`` clipped to [16, 128]."""
    return int(min(128, max(16, radius // 2)))


def flash_block_size(radius: int) -> int:
    """Query block size of the CPU flash path (:mod:`._banded_flash`): ``radius / 4`` clipped to [16, 128].

    Each query then meets ``2 radius + b`` keys, of which only the two ``b x b`` edge bands are
    masked; smaller blocks waste fewer keys but pay the kernel's per-block overhead more often.
    Measured at radius 256, head size 16, one thread: b = 64 beat 32 and 128 by 5-15% (noisy machine).
    """
    return int(min(128, max(16, radius // 4)))


def block_sdpa_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pattern: AttentionPattern,
    link_bias: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """Window-shaped attention by blocks; shapes as in :mod:`.registry`.

    On CPU (float32/float64 compute) the merged flash-attention parts of :mod:`._banded_flash`;
    elsewhere gathered blocks with one boolean-masked SDPA call (:func:`gathered_block_attention`).
    """
    if not pattern.is_window_shaped:
        raise ValueError("block_sdpa runs only window-shaped patterns (window, global and self links)")
    compute_dtype = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
    global_bias = None
    if link_bias is not None and pattern.options.num_global_tokens:
        global_bias = link_bias[pattern.link_types.global_token].to(compute_dtype)  # [H]
    with torch.autocast(device_type=query.device.type, enabled=False):
        q, k, v = (t.to(compute_dtype) for t in (query, key, value))
        if banded_flash_supported(q):
            out = banded_flash_attention(q, k, v, pattern, global_bias, scale, flash_block_size(pattern.window_radius))
        else:
            out = gathered_block_attention(q, k, v, pattern, global_bias, scale)
            out = _with_global_query_rows(out, q, k, v, pattern, scale)
    if link_bias is not None and global_bias is None:
        # Keep the bias table in the autograd graph (its gradient is zero here) so that DDP /
        # DeepSpeed see every parameter used in every step.
        out = out + 0.0 * link_bias.sum().to(out.dtype)
    return out.to(query.dtype)


def _with_global_query_rows(
    out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: AttentionPattern, scale: float
) -> torch.Tensor:
    """Replace the rows of global queries: each attends to its whole sample (bias constant along the row)."""
    B, T, H, D = q.shape
    if not pattern.options.num_global_tokens:
        return out
    device = q.device
    global_columns, global_valid = global_token_columns(pattern)
    num_globals = global_columns.shape[1]
    if not num_globals:
        return out
    sample = pattern.sample_rank.view(B, T)
    flat_global = (torch.arange(B, device=device)[:, None] * T + global_columns).reshape(-1)
    global_sample = torch.where(global_valid, sample.gather(1, global_columns), -2)  # [B, G]
    g_queries = q.reshape(B * T, H, D).index_select(0, flat_global).view(B, num_globals, H, D)
    g_mask = global_sample[:, :, None] == sample[:, None, :]  # [B, G, T]
    if pattern.causal:
        g_mask = g_mask & (torch.arange(T, device=device)[None, None, :] <= global_columns[:, :, None])
    g_has_key = g_mask.any(-1, keepdim=True)
    g_mask = g_mask.clone()
    g_mask[..., :1] |= ~g_has_key
    g_out = F.scaled_dot_product_attention(
        g_queries.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=g_mask[:, None], scale=scale
    ).transpose(1, 2)  # [B, G, H, D]
    keep = global_valid.reshape(-1)
    out = out.reshape(B * T, H, D).index_copy(0, flat_global[keep], g_out.reshape(-1, H, D)[keep])
    return out.view(B, T, H, D)


def gathered_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: AttentionPattern,
    global_bias: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """Window + global-key attention of non-global queries by gathered blocks and one boolean-masked SDPA.

    Device-agnostic (the path for CUDA and for half precision without upcast); ``q, k, v``
    ``[B, T, H, D]`` already in the compute dtype, ``global_bias [H]`` or None. Rows of global
    queries are left for :func:`_with_global_query_rows`; padding rows are zeros.
    """
    B, T, H, D = q.shape
    device = q.device
    radius = pattern.window_radius
    block = block_size_for_radius(radius)
    reach = math.ceil(radius / block)  # neighbour blocks on each side
    span = (2 * reach + 1) * block
    num_blocks = math.ceil(T / block)
    padded = num_blocks * block
    tail = padded - T
    causal = pattern.causal
    sample = pattern.sample_rank.view(B, T)
    is_global = pattern.is_global.view(B, T)
    global_columns, global_valid = global_token_columns(pattern)
    num_globals = global_columns.shape[1]
    if not num_globals:
        global_bias = None
    extra = 1 if global_bias is not None else 0
    if extra:
        q = torch.cat([q, q.new_ones(B, T, H, 1)], dim=-1)
        k = torch.cat([k, k.new_zeros(B, T, H, 1)], dim=-1)
        v = torch.cat([v, v.new_zeros(B, T, H, 1)], dim=-1)
    width = D + extra

    # -- [B * blocks, H, block, width] queries against [.., span + G, width] keys
    q_blocks = F.pad(q, (0, 0, 0, 0, 0, tail)).view(B, num_blocks, block, H, width)
    q_blocks = q_blocks.permute(0, 1, 3, 2, 4).reshape(B * num_blocks, H, block, width)
    pad = (0, 0, 0, 0, reach * block, tail + reach * block)
    k_windows = F.pad(k, pad).unfold(1, span, block)  # [B, blocks, H, width, span]
    v_windows = F.pad(v, pad).unfold(1, span, block)
    k_windows = k_windows.permute(0, 1, 2, 4, 3).reshape(B * num_blocks, H, span, width)
    v_windows = v_windows.permute(0, 1, 2, 4, 3).reshape(B * num_blocks, H, span, width)

    query_sample = F.pad(sample, (0, tail), value=-1).view(B, num_blocks, block)
    # Keys that must never match a query in the band get sample ids no query has: padding
    # -2, global tokens -3 (they are attended through the appended copies below).
    key_sample = torch.where(sample < 0, -2, torch.where(is_global, -3, sample))
    key_sample = F.pad(key_sample, (reach * block, tail + reach * block), value=-2).unfold(1, span, block)
    offset = torch.arange(block, device=device)[:, None] + reach * block - torch.arange(span, device=device)
    band = (offset <= radius) & (offset >= (0 if causal else -radius))  # [block, span]; offset = q - k
    window_mask = band & (query_sample[..., :, None] == key_sample[..., None, :])  # [B, blocks, block, span]

    if num_globals:
        flat_global = (torch.arange(B, device=device)[:, None] * T + global_columns).reshape(-1)
        g_keys = k.reshape(B * T, H, width).index_select(0, flat_global).view(B, num_globals, H, width)
        g_values = v.reshape(B * T, H, width).index_select(0, flat_global).view(B, num_globals, H, width)
        if extra:
            bias_column = (global_bias / scale).view(1, 1, H, 1).expand(B, num_globals, H, 1)
            g_keys = torch.cat([g_keys[..., :D], bias_column], -1)
        global_sample = torch.where(global_valid, sample.gather(1, global_columns), -2)  # [B, G]
        g_mask = query_sample[..., :, None] == global_sample[:, None, None, :]  # [B, blocks, block, G]
        if causal:
            query_column = torch.arange(padded, device=device).view(num_blocks, block)
            g_mask = g_mask & (global_columns[:, None, None, :] <= query_column[None, :, :, None])
        g_keys = g_keys.permute(0, 2, 1, 3)[:, None].expand(B, num_blocks, H, num_globals, width)
        g_values = g_values.permute(0, 2, 1, 3)[:, None].expand(B, num_blocks, H, num_globals, width)
        k_windows = torch.cat([k_windows, g_keys.reshape(B * num_blocks, H, num_globals, width)], dim=2)
        v_windows = torch.cat([v_windows, g_values.reshape(B * num_blocks, H, num_globals, width)], dim=2)
        window_mask = torch.cat([window_mask, g_mask], dim=-1)

    # Every real non-global query has its own position in the band, so only padding rows
    # and global rows (whose results are replaced by the caller) can be empty: open one key
    # there to keep SDPA finite, and zero the padding rows afterwards.
    query_global = F.pad(is_global, (0, tail), value=False).view(B, num_blocks, block)
    window_mask[..., 0] |= (query_sample < 0) | query_global
    mask = window_mask.reshape(B * num_blocks, 1, block, -1)
    out = F.scaled_dot_product_attention(q_blocks, k_windows, v_windows, attn_mask=mask, scale=scale)
    out = out * (query_sample >= 0).reshape(B * num_blocks, 1, block, 1).to(out.dtype)
    out = out.view(B, num_blocks, H, block, width).permute(0, 1, 3, 2, 4).reshape(B, padded, H, width)
    return out[:, :T, :, :D]


def _unsupported(pattern: AttentionPattern, head_dim: int) -> str | None:
    if pattern.has_explicit_links:
        return "it has graph-edge, expander or same-node links; block_sdpa runs only window, global and self links"
    if pattern.window_radius <= 0:
        return "it has no sliding window (config.attention_window is 0)"
    return None


def _cost(pattern: AttentionPattern, head_dim: int) -> float:
    """Forward + backward estimate in microseconds of one CPU thread (see the registry).

    CPU flash path: ~0.038 us per (query, key) pair computed (``2 r + b`` window keys, ``r + b``
    causal, plus the global tokens) at head size 16, ~60 us per query block and ~2 ms fixed
    (fitted on ``benchmarks/attention_speed.py``'s sequence pattern, 1k-64k tokens). Gathered
    path (other devices): ~0.048 us per gathered pair plus ~290 us per query block.
    """
    radius, causal = pattern.window_radius, pattern.causal
    rows, length = pattern.num_rows, pattern.row_length
    globals_per_row = pattern.options.num_global_tokens * pattern.num_samples / max(rows, 1)
    head_factor = 0.5 + head_dim / 32.0
    if pattern.device.type == "cpu":
        block = flash_block_size(radius)
        num_blocks = rows * math.ceil(length / block)
        keys = radius + block + (0 if causal else radius) + globals_per_row
        return float(num_blocks * block) * keys * 0.038 * head_factor + 60.0 * num_blocks + 2000.0
    block = block_size_for_radius(radius)
    span = (2 * math.ceil(radius / block) + 1) * block
    num_blocks = rows * math.ceil(length / block)
    pairs = float(num_blocks * block) * (span + globals_per_row)
    return pairs * 0.048 * head_factor + 290.0 * num_blocks


register_backend(
    AttentionBackend(
        name="block_sdpa",
        forward=block_sdpa_attention,
        unavailable_reason=lambda device: None,
        unsupported_reason=_unsupported,
        estimated_cost=_cost,
    )
)
