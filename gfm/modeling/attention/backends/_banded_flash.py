"""Exact window (+ global) attention on CPU from PyTorch's flash-attention kernels, merged by log-sum-exp.

Why not one ``scaled_dot_product_attention`` call: a window pattern needs a mask, and a mask is
what makes PyTorch's CPU flash kernel slow (a boolean mask is converted to a float
``[blocks, b, span]`` tensor that every tile reads, once in forward and again in backward), and
global tokens appended to every block's keys cost a concatenated copy of all key windows.
Instead the links of every query are split into disjoint *parts*, each computed with its own
log-sum-exp, and merged exactly (``lse = log sum_p exp(lse_p)``,
``out = sum_p exp(lse_p - lse) out_p``). Query block ``[s, s + b)``, radius ``r``:

``clean`` blocks (the block's whole key range ``[s - r, s + b + r)``, causal ``[s - r, s + b)``,
lies in one sample and holds neither global tokens nor padding), when ``b <= r``:

* left band: keys ``[s - r, s - r + b)``; query ``j`` sees key ``m`` iff ``m >= j``
  (one ``[b, b]`` float mask broadcast over all blocks and heads);
* centre: keys ``[s - r + b, s + r)`` (causal ``[s - r + b, s)``): every key, **no mask**;
* right band: keys ``[s + r, s + r + b)`` (causal ``[s, s + b)``): ``m <= j`` (broadcast mask).

``dirty`` blocks (sample boundaries, global tokens or padding in the key range): keys
``[s - r, s + b + r)`` (causal ``[s - r, s + b)``) gathered per block with a per-block float mask
(window, same sample, key neither padding nor global).

``global`` part: every non-global query against its row's global tokens (at most ``G`` per row,
usually a handful), computed with plain matmuls in row chunks (the flash kernel's per-tile
overhead dominates with so few keys); the global link bias ``g_h`` is added to these scores.

``global query`` part: each global token attends to its whole sample (causal: keys at or before
it) in one flash call with a ``[B, 1, G, T']`` mask; its bias is the same on the whole row and
cancels, and no other part has links for these rows, so they take this part's result as is.

The three clean parts read the keys in place: their windows are ``as_strided`` views of the key
tensor (overlapping windows, one stride per block). Backward calls the kernel's backward once
per part with the **merged** output and log-sum-exp, which gives exactly that part's share of
the full softmax gradient (FlashAttention's backward needs only ``out``, ``lse`` and ``dout`` of
the whole row); key gradients of overlapping windows are added back one column chunk of width
``<= b`` at a time (within a chunk the windows of different blocks are disjoint). A row that a
part does not own gets ``dout = 0`` and ``lse = +inf`` there: zero probability, zero gradient.

Layout: rows are padded at the end to ``T' = ceil(T / b) b`` (no copy when ``b`` divides ``T``)
and flattened to ``[B T', H, D]``; *slot* ``j`` is flat rows ``[j b, (j + 1) b)``.

PyTorch's private ops ``_scaled_dot_product_flash_attention_for_cpu`` and its ``_backward``
are used because the public ``scaled_dot_product_attention`` does not return the log-sum-exp
that the exact merge needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..patterns import AttentionPattern

__all__ = ["banded_flash_attention", "banded_flash_supported", "global_token_columns"]

_flash_forward = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_flash_backward = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)

# Elements of one ``[B, rows, H, G]`` score chunk of the global part.
_GLOBAL_CHUNK_ELEMENTS = 1 << 22
# Bytes of one kernel call's key windows (and of a dirty call's mask): bounds the memory of a
# call and keeps the kernel's gradient buffers below glibc's 32 MB mmap threshold, so they are
# recycled from the heap instead of being page-faulted in afresh on every call.
_CALL_BYTES = 16 << 20

Selection = slice | torch.Tensor  # query slots: a contiguous range or an int64 index tensor


@dataclass
class _BlockPart:
    """One flash call: the query blocks of ``selection`` against ``key_length`` keys from ``start + key_offset``.

    Attributes:
        selection: the query slots (``slice`` when contiguous, else int64 ``[n]``).
        key_offset: first key relative to the block's first query (flat rows).
        key_length: ``L``, keys per block.
        mask: float additive mask ``[1, 1, b, L]`` (broadcast) or ``[n, 1, b, L]``, or None.
        row_valid: bool ``[n, b]``: the row has at least one link in this part (None: all rows).
        key_rows: int64 ``[n, L]`` flat key rows to gather (dirty blocks, clamped into range;
            masked keys only), or None for in-place ``as_strided`` windows (clean blocks).
    """

    selection: Selection
    key_offset: int
    key_length: int
    mask: torch.Tensor | None
    row_valid: torch.Tensor | None
    key_rows: torch.Tensor | None = None


@dataclass
class _GlobalPart:
    """Every query of a padded row against the row's global tokens.

    Attributes:
        key_rows: int64 ``[B, G]`` flat rows of the global tokens (unused slots point at row 0).
        allowed: bool ``[B, T', G]`` query ``t`` of row ``i`` links to global slot ``g``.
    """

    key_rows: torch.Tensor
    allowed: torch.Tensor


@dataclass
class _GlobalQueryPart:
    """The global tokens as queries: each attends to every key of its sample (causal: at or before it).

    Their link bias is the same for the whole row, so it cancels in the softmax.

    Attributes:
        query_rows: int64 ``[B, G]`` flat rows of the global tokens (unused slots point at row 0).
        valid: bool ``[B, G]`` the slot holds a global token.
        mask: float ``[B, 1, G, T']`` additive mask over the row's keys.
    """

    query_rows: torch.Tensor
    valid: torch.Tensor
    mask: torch.Tensor


@dataclass
class _Plan:
    block: int
    num_slots: int  # B * T' / b
    block_parts: list[_BlockPart]
    global_part: _GlobalPart | None
    global_query_part: _GlobalQueryPart | None
    scale: float


def banded_flash_supported(query: torch.Tensor) -> bool:
    """The flash path runs on CPU tensors of float32 / float64 (with PyTorch's CPU flash kernels present)."""
    return (
        _flash_forward is not None
        and _flash_backward is not None
        and query.device.type == "cpu"
        and query.dtype in (torch.float32, torch.float64)
    )


def global_token_columns(pattern: AttentionPattern) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns of each row's global tokens, padded: ``(columns [B, G], valid [B, G] bool)``."""
    B, T = pattern.num_rows, pattern.row_length
    is_global = pattern.is_global.view(B, T)
    counts = is_global.sum(1)
    width = int(counts.max()) if B else 0
    order = torch.argsort((~is_global).to(torch.int8), dim=1, stable=True)
    columns = order[:, :width]
    valid = torch.arange(width, device=columns.device)[None, :] < counts[:, None]
    return columns, valid


def _band_mask(block: int, keep_upper: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[1, 1, b, b]`` additive mask: 0 where key ``m >= j`` (``keep_upper``) or ``m <= j``, else -inf."""
    j = torch.arange(block, device=device)[:, None]
    m = torch.arange(block, device=device)[None, :]
    keep = m >= j if keep_upper else m <= j
    return torch.zeros(block, block, dtype=dtype, device=device).masked_fill(~keep, float("-inf"))[None, None]


def _window_view(flat: torch.Tensor, block: int, selection: Selection, key_offset: int, length: int):
    """``([count, H, length, D] view, index or None)``: the windows of slots ``first .. first + count``.

    ``flat`` must be contiguous ``[F, H, D]``.
    With a slice the view is exactly the selection; with an index tensor it spans from the
    lowest to the highest selected slot and ``index`` (relative to the lowest) picks the rows.
    """
    _, H, D = flat.shape
    if isinstance(selection, slice):
        first, count, index = selection.start, selection.stop - selection.start, None
    else:
        first = int(selection.min())
        count, index = int(selection.max()) + 1 - first, selection - first
    offset = flat.storage_offset() + (first * block + key_offset) * H * D
    view = flat.as_strided((count, H, length, D), (block * H * D, D, H * D, 1), offset)
    return view, index


def _part_keys(flat: torch.Tensor, plan: _Plan, part: _BlockPart) -> torch.Tensor:
    """``[n, H, L, D]`` keys (or values) of a part: a view for clean blocks, a gathered copy otherwise."""
    _, H, D = flat.shape
    if part.key_rows is not None:
        n, length = part.key_rows.shape
        return flat.index_select(0, part.key_rows.reshape(-1)).view(n, length, H, D).transpose(1, 2)
    view, index = _window_view(flat, plan.block, part.selection, part.key_offset, part.key_length)
    return view if index is None else view.index_select(0, index)


def _add_part_keys(target: torch.Tensor, grad: torch.Tensor, plan: _Plan, part: _BlockPart) -> None:
    """Inverse of :func:`_part_keys`: add ``grad [n, H, L, D]`` into ``target [F, H, D]``."""
    _, H, D = target.shape
    if part.key_rows is not None:
        target.index_add_(0, part.key_rows.reshape(-1), grad.transpose(1, 2).reshape(-1, H, D))
        return
    b = plan.block
    for column in range(0, part.key_length, b):
        width = min(b, part.key_length - column)
        view, index = _window_view(target, b, part.selection, part.key_offset + column, width)
        view = view.transpose(1, 2)  # [count, width, H, D], disjoint across slots since width <= b
        chunk = grad[:, :, column : column + width].transpose(1, 2)
        if index is None:
            view.add_(chunk)
        else:
            view.index_add_(0, index, chunk)


def _select(tensor: torch.Tensor, selection: Selection) -> torch.Tensor:
    return tensor[selection] if isinstance(selection, slice) else tensor.index_select(0, selection)


def _global_chunks(plan: _Plan, num_heads: int) -> list[tuple[int, int]]:
    """Column ranges ``[start, stop)`` of the padded rows for the global part's score chunks."""
    gp = plan.global_part
    B, length, G = gp.allowed.shape
    rows = max(1, _GLOBAL_CHUNK_ELEMENTS // max(1, B * num_heads * G))
    return [(start, min(length, start + rows)) for start in range(0, length, rows)]


def _head_block_diagonal(tensor: torch.Tensor) -> torch.Tensor:
    """``[B, G, H, D] -> [B, H G, H D]`` block-diagonal over heads: entry ``(h G + g, h D + d) = tensor[:, g, h, d]``.

    With it the few global keys of all heads meet the queries in one plain batched matmul over
    ``[B, t, H D]`` (no permuted copies); the off-diagonal zeros add exact zeros.
    """
    B, G, H, D = tensor.shape
    blocks = tensor.new_zeros(B, H, G, H, D)
    heads = torch.arange(H, device=tensor.device)
    blocks[:, heads, :, heads, :] = tensor.permute(2, 0, 1, 3)  # [H, B, G, D]
    return blocks.view(B, H * G, H * D)


def _head_diagonal(blocks: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Inverse of :func:`_head_block_diagonal`: ``[B, H G, H D] -> [B, G, H, D]`` (the diagonal blocks)."""
    B = blocks.shape[0]
    G, D = blocks.shape[1] // num_heads, blocks.shape[2] // num_heads
    heads = torch.arange(num_heads, device=blocks.device)
    return blocks.view(B, num_heads, G, num_heads, D)[:, heads, :, heads, :].permute(1, 2, 0, 3)


def _global_scores(
    q: torch.Tensor, key_blocks: torch.Tensor, allowed: torch.Tensor, bias: torch.Tensor, scale: float
) -> torch.Tensor:
    """``[B, t, H, G]`` biased scores of ``q [B, t, H D]`` against ``key_blocks [B, H G, H D]``, -inf off links."""
    B, t = q.shape[:2]
    H = bias.shape[0]
    scores = torch.bmm(q, key_blocks.transpose(1, 2)).view(B, t, H, -1)
    scores = scores.mul_(scale).add_(bias[:, None])
    return scores.masked_fill_(~allowed[:, :, None, :], float("-inf"))


class _BandedFlashAttention(torch.autograd.Function):
    """Merged parts; inputs and output are flat ``[F, H, D]`` (``F = B T'``), ``global_bias [H]``."""

    @staticmethod
    def forward(ctx, q_flat, k_flat, v_flat, global_bias, plan: _Plan):  # noqa: D102
        b, slots = plan.block, plan.num_slots
        _, H, D = q_flat.shape
        q_slots = q_flat.view(slots, b, H, D)
        pieces = []  # (selection, out_p [n, b, H, D], lse_p [n, b, H])
        for part in plan.block_parts:
            q = _select(q_slots, part.selection).transpose(1, 2)
            k, v = _part_keys(k_flat, plan, part), _part_keys(v_flat, plan, part)
            out, lse = _flash_forward(q, k, v, 0.0, False, attn_mask=part.mask, scale=plan.scale)
            out, lse = out.transpose(1, 2), lse.transpose(1, 2)
            if part.row_valid is not None:
                lse = lse.masked_fill(~part.row_valid[..., None], float("-inf"))
            pieces.append((part.selection, out, lse))
        global_keys = global_values = None
        if plan.global_part is not None:
            gp = plan.global_part
            B = gp.key_rows.shape[0]
            rows = gp.key_rows.reshape(-1)
            global_keys = k_flat.index_select(0, rows).view(B, -1, H, D)
            global_values = v_flat.index_select(0, rows).view(B, -1, H, D)
            key_blocks, value_blocks = _head_block_diagonal(global_keys), _head_block_diagonal(global_values)
            q_rows = q_flat.view(B, -1, H * D)
            out = torch.empty_like(q_rows)
            lse = q_flat.new_empty(B, q_rows.shape[1], H)
            for start, stop in _global_chunks(plan, H):
                scores = _global_scores(
                    q_rows[:, start:stop], key_blocks, gp.allowed[:, start:stop], global_bias, plan.scale
                )
                lse_chunk = torch.logsumexp(scores, -1)  # -inf for rows without a global link
                weights = scores.sub_(torch.where(torch.isfinite(lse_chunk), lse_chunk, 0.0)[..., None]).exp_()
                out[:, start:stop] = torch.bmm(weights.view(B, stop - start, -1), value_blocks)
                lse[:, start:stop] = lse_chunk
            pieces.append((slice(0, slots), out.view(slots, b, H, D), lse.view(slots, b, H)))

        lse_total = q_flat.new_full((slots, b, H), float("-inf"))
        for selection, _, lse in pieces:
            if isinstance(selection, slice):
                torch.logaddexp(lse_total[selection], lse, out=lse_total[selection])
            else:
                lse_total[selection] = torch.logaddexp(lse_total.index_select(0, selection), lse)
        global_rows = None
        if plan.global_query_part is not None:
            # global queries have no link in any other part: their rows are this part alone
            gq_part = plan.global_query_part
            B = gq_part.query_rows.shape[0]
            global_rows = gq_part.query_rows[gq_part.valid]
            q = q_flat.index_select(0, gq_part.query_rows.reshape(-1)).view(B, -1, H, D).transpose(1, 2)
            k, v = k_flat.view(B, -1, H, D).transpose(1, 2), v_flat.view(B, -1, H, D).transpose(1, 2)
            out, lse = _flash_forward(q, k, v, 0.0, False, attn_mask=gq_part.mask, scale=plan.scale)
            lse_total.view(-1, H)[global_rows] = lse.transpose(1, 2)[gq_part.valid]
        lse_safe = torch.where(torch.isfinite(lse_total), lse_total, 0.0)
        out_total = q_flat.new_zeros(slots, b, H, D)
        for selection, out_p, lse in pieces:
            share = torch.exp(lse - _select(lse_safe, selection))  # 0 where the part has no link
            if isinstance(selection, slice):
                out_total[selection].addcmul_(share[..., None], out_p)
            else:
                out_total.index_add_(0, selection, share[..., None] * out_p)
        if global_rows is not None:
            out_total.view(-1, H, D)[global_rows] = out.transpose(1, 2)[gq_part.valid]
        ctx.plan = plan
        ctx.save_for_backward(q_flat, k_flat, v_flat, global_bias, out_total, lse_total, global_keys, global_values)
        return out_total.view(-1, H, D)

    @staticmethod
    def backward(ctx, grad_flat):  # noqa: D102
        plan: _Plan = ctx.plan
        q_flat, k_flat, v_flat, global_bias, out_total, lse_total, global_keys, global_values = ctx.saved_tensors
        b, slots = plan.block, plan.num_slots
        _, H, D = q_flat.shape
        has_links = torch.isfinite(lse_total)
        grad_out = grad_flat.reshape(slots, b, H, D)
        if not bool(has_links.all()):
            grad_out = grad_out.masked_fill(~has_links[..., None], 0.0)
        lse_backward = torch.where(has_links, lse_total, float("inf"))  # zero probability on rows without links
        dq, dk, dv = torch.zeros_like(q_flat), torch.zeros_like(k_flat), torch.zeros_like(v_flat)
        dq_slots, q_slots = dq.view(slots, b, H, D), q_flat.view(slots, b, H, D)
        for part in plan.block_parts:
            selection = part.selection
            g, lse = _select(grad_out, selection), _select(lse_backward, selection)
            if part.row_valid is not None:
                g = g.masked_fill(~part.row_valid[..., None, None], 0.0)
                lse = lse.masked_fill(~part.row_valid[..., None], float("inf"))
            q = _select(q_slots, selection).transpose(1, 2)
            k, v = _part_keys(k_flat, plan, part), _part_keys(v_flat, plan, part)
            out = _select(out_total, selection).transpose(1, 2)
            gq, gk, gv = _flash_backward(
                g.transpose(1, 2), q, k, v, out, lse.transpose(1, 2).contiguous(), 0.0, False,
                attn_mask=part.mask, scale=plan.scale,
            )
            if isinstance(selection, slice):
                dq_slots[selection].add_(gq.transpose(1, 2))
            else:
                dq_slots.index_add_(0, selection, gq.transpose(1, 2))
            _add_part_keys(dk, gk, plan, part)
            _add_part_keys(dv, gv, plan, part)

        grad_bias = None
        if plan.global_part is not None:
            gp = plan.global_part
            B = gp.key_rows.shape[0]
            q_rows, dq_rows = q_flat.view(B, -1, H * D), dq.view(B, -1, H * D)
            g_rows = grad_out.reshape(B, -1, H * D)
            lse_rows, out_rows = lse_backward.view(B, -1, H), out_total.view(B, -1, H, D)
            key_blocks, value_blocks = _head_block_diagonal(global_keys), _head_block_diagonal(global_values)
            d_key_blocks, d_value_blocks = torch.zeros_like(key_blocks), torch.zeros_like(value_blocks)
            grad_bias = torch.zeros_like(global_bias)
            for start, stop in _global_chunks(plan, H):
                t = stop - start
                scores = _global_scores(
                    q_rows[:, start:stop], key_blocks, gp.allowed[:, start:stop], global_bias, plan.scale
                )
                probability = scores.sub_(lse_rows[:, start:stop, :, None]).exp_()  # share of the merged softmax
                g = g_rows[:, start:stop]
                row_dot = (g.view(B, t, H, D) * out_rows[:, start:stop]).sum(-1, keepdim=True)  # dout . out
                d_scores = torch.bmm(g, value_blocks.transpose(1, 2)).view(B, t, H, -1).sub_(row_dot).mul_(probability)
                grad_bias += d_scores.sum((0, 1, 3))
                d_flat, p_flat = d_scores.view(B, t, -1), probability.view(B, t, -1)
                dq_rows[:, start:stop].baddbmm_(d_flat, key_blocks, alpha=plan.scale)
                d_key_blocks.baddbmm_(d_flat.transpose(1, 2), q_rows[:, start:stop], alpha=plan.scale)
                d_value_blocks.baddbmm_(p_flat.transpose(1, 2), g)
            d_keys, d_values = _head_diagonal(d_key_blocks, H), _head_diagonal(d_value_blocks, H)
            rows = gp.key_rows.reshape(-1)
            dk.index_add_(0, rows, d_keys.reshape(-1, H, D))
            dv.index_add_(0, rows, d_values.reshape(-1, H, D))
        if plan.global_query_part is not None:
            gq_part = plan.global_query_part
            B = gq_part.query_rows.shape[0]
            rows = gq_part.query_rows.reshape(-1)
            valid = gq_part.valid.reshape(-1)
            g = grad_out.view(-1, H, D).index_select(0, rows).masked_fill(~valid[:, None, None], 0.0)
            lse = lse_backward.view(-1, H).index_select(0, rows).masked_fill(~valid[:, None], float("inf"))
            out = out_total.view(-1, H, D).index_select(0, rows)
            q = q_flat.index_select(0, rows).view(B, -1, H, D).transpose(1, 2)
            k, v = k_flat.view(B, -1, H, D).transpose(1, 2), v_flat.view(B, -1, H, D).transpose(1, 2)
            gq, gk, gv = _flash_backward(
                g.view(B, -1, H, D).transpose(1, 2), q, k, v, out.view(B, -1, H, D).transpose(1, 2),
                lse.view(B, -1, H).transpose(1, 2).contiguous(), 0.0, False, attn_mask=gq_part.mask, scale=plan.scale,
            )
            dq.index_add_(0, rows[valid], gq.transpose(1, 2).reshape(-1, H, D)[valid])
            dk.view(B, -1, H, D).add_(gk.transpose(1, 2))
            dv.view(B, -1, H, D).add_(gv.transpose(1, 2))
        return dq, dk, dv, grad_bias, None


def _slots_per_call(key_length: int, elements_per_key: int, itemsize: int) -> int:
    """Query blocks per kernel call so that one call's ``[n, L, elements]`` key-side tensors stay within budget."""
    return max(1, _CALL_BYTES // (key_length * elements_per_key * itemsize))


def _chunked(slots: torch.Tensor, per_call: int, as_index: bool = False) -> list[Selection]:
    """Split sorted slot ids into selections of at most ``per_call`` slots (slices where contiguous)."""
    selections: list[Selection] = []
    for start in range(0, slots.numel(), per_call):
        chunk = slots[start : start + per_call]
        first, last = int(chunk[0]), int(chunk[-1])
        contiguous = last - first + 1 == chunk.numel()
        selections.append(chunk if as_index or not contiguous else slice(first, last + 1))
    return selections


def _build_plan(
    pattern: AttentionPattern, block: int, dtype: torch.dtype, scale: float, head_elements: int
) -> tuple[_Plan, int]:
    """The parts of a window-shaped pattern; returns ``(plan, padded_row_length)``.

    ``head_elements`` is ``H * D`` of the inputs (it sizes the per-call chunks).
    """
    itemsize = torch.empty(0, dtype=dtype).element_size()
    B, T = pattern.num_rows, pattern.row_length
    radius, causal = pattern.window_radius, pattern.causal
    device = pattern.device
    blocks_per_row = math.ceil(T / block)
    padded_length = blocks_per_row * block
    tail = padded_length - T
    sample = pattern.sample_rank.view(B, T)
    is_global = pattern.is_global.view(B, T)
    sample_padded = torch.nn.functional.pad(sample, (0, tail), value=-1)  # [B, T']
    query_ok = torch.nn.functional.pad((sample >= 0) & ~is_global, (0, tail), value=False)  # [B, T']
    # key id: the sample of a plain key; padding -2 and global tokens -3 never match a query
    key_id = torch.where(sample < 0, -2, torch.where(is_global, -3, sample))
    key_id = torch.nn.functional.pad(key_id, (0, tail), value=-2)
    num_slots = B * blocks_per_row
    slot_row = torch.arange(num_slots, device=device) // blocks_per_row
    slot_column = (torch.arange(num_slots, device=device) % blocks_per_row) * block
    span = radius + block + (0 if causal else radius)  # keys [s - r, s - r + span)
    key_offsets = torch.arange(span, device=device) - radius
    key_column = slot_column[:, None] + key_offsets  # [slots, span] column inside the row
    in_row = (key_column >= 0) & (key_column < padded_length)
    window_ids = torch.where(in_row, key_id[slot_row[:, None], key_column.clamp(0, padded_length - 1)], -2)

    if block <= radius:
        lowest, highest = window_ids.min(1).values, window_ids.max(1).values
        clean = (lowest == highest) & (lowest >= 0)
    else:  # bands wider than the radius: no mask-free centre, every block takes the masked path
        clean = torch.zeros(num_slots, dtype=torch.bool, device=device)

    parts: list[_BlockPart] = []
    centre = (radius - block) if causal else (2 * radius - block)
    band_masks = (_band_mask(block, True, dtype, device), _band_mask(block, False, dtype, device))
    clean_slots = clean.nonzero().squeeze(1)
    for selection in _chunked(clean_slots, _slots_per_call(max(centre, block), head_elements, itemsize)):
        parts.append(_BlockPart(selection, -radius, block, band_masks[0], None))
        if centre > 0:
            parts.append(_BlockPart(selection, -radius + block, centre, None, None))
        parts.append(_BlockPart(selection, 0 if causal else radius, block, band_masks[1], None))

    dirty_slots = (~clean).nonzero().squeeze(1)
    query_columns = torch.arange(block, device=device)
    offset = query_columns[:, None] - key_offsets[None, :]  # query - key
    band = (offset <= radius) & (offset >= (0 if causal else -radius))
    for chunk in _chunked(dirty_slots, _slots_per_call(span, head_elements + block, itemsize), as_index=True):
        query_rows = chunk[:, None] * block + query_columns  # [n, b] flat
        query_sample = sample_padded.reshape(-1)[query_rows]
        allowed = band & (query_sample[:, :, None] == window_ids[chunk][:, None, :])
        allowed &= query_ok.reshape(-1)[query_rows][:, :, None]
        row_valid = allowed.any(-1)
        allowed[:, :, 0] |= ~row_valid  # keep the kernel finite; the row's share is dropped
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, float("-inf"))
        key_rows = (slot_row[chunk, None] * padded_length + key_column[chunk]).clamp(0, num_slots * block - 1)
        parts.append(_BlockPart(chunk, -radius, span, mask[:, None], row_valid, key_rows))

    global_part = global_query_part = None
    if pattern.options.num_global_tokens:
        columns, valid = global_token_columns(pattern)
        if columns.shape[1]:
            key_rows = torch.arange(B, device=device)[:, None] * padded_length + columns
            global_sample = torch.where(valid, sample.gather(1, columns), -2)  # [B, G]
            allowed = (sample_padded[:, :, None] == global_sample[:, None, :]) & query_ok[:, :, None]
            if causal:
                allowed &= torch.arange(padded_length, device=device)[None, :, None] >= columns[:, None, :]
            global_part = _GlobalPart(key_rows, allowed)
            # global queries: every key of their sample (causal: at or before them)
            allowed = global_sample[:, :, None] == sample_padded[:, None, :]  # [B, G, T']
            if causal:
                allowed &= torch.arange(padded_length, device=device)[None, None, :] <= columns[:, :, None]
            allowed[:, :, 0] |= ~valid  # unused slots: keep the kernel finite
            mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, float("-inf"))
            global_query_part = _GlobalQueryPart(key_rows, valid, mask[:, None])

    plan = _Plan(
        block=block,
        num_slots=num_slots,
        block_parts=parts,
        global_part=global_part,
        global_query_part=global_query_part,
        scale=scale,
    )
    return plan, padded_length


def banded_flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pattern: AttentionPattern,
    global_bias: torch.Tensor | None,
    scale: float,
    block: int,
) -> torch.Tensor:
    """Window-shaped attention with global tokens (see the module docstring); shapes as in :mod:`.registry`.

    Args:
        query, key, value: ``[B, T, H, D]`` float32/float64 CPU tensors (:func:`banded_flash_supported`).
        pattern: a window-shaped pattern.
        global_bias: ``[H]`` bias of a link to a global token, or None for no bias.
        scale: multiplier of ``q . k``.
        block: query block size ``b`` (the mask-free centre needs ``b <= radius``).

    Returns:
        ``[B, T, H, D]``; padding rows are zeros.
    """
    B, T, H, D = query.shape
    cache_key = ("banded_flash", block, query.dtype, scale, H * D)
    cached = pattern.backend_cache.get(cache_key)
    if cached is None:  # built once per batch, reused by every layer
        cached = pattern.backend_cache[cache_key] = _build_plan(pattern, block, query.dtype, scale, H * D)
    plan, padded_length = cached
    tail = padded_length - T
    flat = [
        (torch.nn.functional.pad(t, (0, 0, 0, 0, 0, tail)) if tail else t.contiguous()).reshape(B * padded_length, H, D)
        for t in (query, key, value)
    ]
    if global_bias is None:
        global_bias = query.new_zeros(H)
    out = _BandedFlashAttention.apply(*flat, global_bias.to(query.dtype), plan)
    out = out.view(B, padded_length, H, D)
    return out[:, :T] if tail else out
