"""Pretraining objectives: labels (and corrupted inputs) for a packed batch.

Each objective turns a batch of ``pack_tokenized_graphs`` (several graphs per row, told apart
by ``sequence_ids``) into the model inputs and the position-aligned ``labels`` [B, T] that
``GFMForPretraining`` expects (``-100`` = ignored):

* **next-token** (causal): position ``t`` predicts the token at ``t + 1`` of the *same* graph;
  the last token of each graph predicts nothing, so no label ever crosses a packing boundary.
* **masked-token** (bidirectional): per graph a mask ratio is drawn from a schedule, and that
  fraction of the graph's *units* is replaced by ``<mask>``; a unit is a node (every position
  with the same ``(sample, node_index)``: all its occurrences in the walk, its index and
  attribute tokens) or a single token that stands for no node (an edge attribute, a direction
  token). Special tokens are never masked.
* **masked-code** (quantized tokens): the same, but the units are nodes and only their code
  tokens (``level_ids >= 0``) are masked; losses are reported per quantizer level.

Random draws are keyed per *graph* (one ``torch.Generator`` seeded from the graph's key), never
per batch or per process, so the same graph gets the same mask whether it is packed with others,
on one process or on two: that is what makes a two-process run equal to a one-process run.

Tensor names: ``B`` rows, ``T`` positions per row, ``N`` graphs in the batch, ``U`` mask units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE_INDEX",
    "ObjectiveBatch",
    "next_token_labels",
    "position_in_sample",
    "per_sample_uniforms",
    "mask_ratios",
    "select_masked_units",
    "masked_token_batch",
    "masked_code_batch",
    "next_token_batch",
    "build_objective_batches",
    "token_cross_entropy",
    "code_cross_entropy",
    "level_token_ranges",
    "sample_key",
]

IGNORE_INDEX = -100

#: salts that keep the random streams of different objectives independent for one graph.
_SALTS = {"masked_token": 0x6D61736B, "masked_code": 0x636F6465}
_MASK64 = (1 << 63) - 1


def sample_key(seed: int, epoch: int, row: int) -> int:
    """Stable 63-bit key of one graph draw (seed, epoch, corpus row); SplitMix64 finalizer."""
    value = (seed * 0x9E3779B97F4A7C15 + (epoch + 1) * 0xBF58476D1CE4E5B9 + row * 0x94D049BB133111EB) & ((1 << 64) - 1)
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (value ^ (value >> 31)) & _MASK64


@dataclass
class ObjectiveBatch:
    """One objective's view of a packed batch.

    Attributes:
        name: objective name (``next_token``, ``masked_token``, ``masked_code``).
        inputs: the model's keyword arguments (the batch, ``input_ids`` corrupted if masking).
        labels: int64 [B, T] target ids, ``-100`` where nothing is predicted.
        causal: whether the model must attend only to earlier positions of the same graph.
    """

    name: str
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    causal: bool

    @property
    def num_targets(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


# ---------------------------------------------------------------------------------------------
# next-token prediction
# ---------------------------------------------------------------------------------------------
def next_token_labels(input_ids: torch.Tensor, sequence_ids: torch.Tensor) -> torch.Tensor:
    """Labels for causal prediction of the next token inside each packed graph.

    Args:
        input_ids: int64 [B, T].
        sequence_ids: int64 [B, T] sample index per position, ``-1`` at padding.

    Returns:
        int64 [B, T]: ``labels[b, t] = input_ids[b, t + 1]`` when positions ``t`` and ``t + 1``
        belong to the same graph, else ``-100``.
    """
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    same_sample = (sequence_ids[:, 1:] == sequence_ids[:, :-1]) & (sequence_ids[:, :-1] >= 0)
    labels[:, :-1] = torch.where(same_sample, input_ids[:, 1:], IGNORE_INDEX)
    return labels


# ---------------------------------------------------------------------------------------------
# per-graph random draws, independent of packing and of the process
# ---------------------------------------------------------------------------------------------
def position_in_sample(sequence_ids: torch.Tensor) -> torch.Tensor:
    """Offset of each position inside its own graph (graphs are contiguous within a row).

    Args:
        sequence_ids: int64 [B, T], ``-1`` at padding.

    Returns:
        int64 [B, T]: ``t - (first column of that graph in its row)``, ``-1`` at padding.
    """
    num_rows, row_length = sequence_ids.shape
    flat_ids = sequence_ids.reshape(-1)
    valid = flat_ids >= 0
    if not bool(valid.any()):
        return torch.full_like(sequence_ids, -1)
    columns = torch.arange(row_length).repeat(num_rows)
    num_samples = int(flat_ids.max()) + 1
    start = torch.full((num_samples,), row_length, dtype=torch.long)
    start.scatter_reduce_(0, flat_ids[valid], columns[valid], reduce="amin")
    offset = torch.full_like(flat_ids, -1)
    offset[valid] = columns[valid] - start[flat_ids[valid]]
    return offset.view(num_rows, row_length)


def per_sample_uniforms(
    sequence_ids: torch.Tensor, sample_keys: Sequence[int], salt: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """U(0, 1) draws per graph from a generator seeded by the graph's key.

    Graph ``i`` draws ``1 + L_i`` float64 numbers: the first is its sample-level draw, the rest
    belong to its positions in order. A graph gets the same numbers wherever it is packed.

    Args:
        sequence_ids: int64 [B, T].
        sample_keys: ``N`` integer keys (see :func:`sample_key`).
        salt: separates the streams of different objectives.

    Returns:
        ``(position_noise [B, T] float64 (0 at padding), sample_noise [N] float64)``.
    """
    flat_ids = sequence_ids.reshape(-1)
    valid = flat_ids >= 0
    num_samples = len(sample_keys)
    lengths = torch.bincount(flat_ids[valid], minlength=num_samples)
    generator = torch.Generator()
    sample_noise = torch.empty(num_samples, dtype=torch.float64)
    chunks = []
    # One generator per graph: a Python loop over N graphs (not positions), ~3 us each.
    for i, key in enumerate(sample_keys):
        generator.manual_seed((int(key) ^ (salt * 0x9E3779B97F4A7C15)) & _MASK64)
        draws = torch.rand(1 + int(lengths[i]), generator=generator, dtype=torch.float64)
        sample_noise[i] = draws[0]
        chunks.append(draws[1:])
    flat_noise = torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.float64)
    offsets = torch.cumsum(lengths, 0) - lengths
    position_noise = torch.zeros(flat_ids.shape, dtype=torch.float64)
    within = position_in_sample(sequence_ids).reshape(-1)
    position_noise[valid] = flat_noise[offsets[flat_ids[valid]] + within[valid]]
    return position_noise.view(sequence_ids.shape), sample_noise


def mask_ratios(sample_noise: torch.Tensor, schedule: str, ratio_min: float, ratio_max: float) -> torch.Tensor:
    """Mask ratio per graph from its draw ``u`` ~ U(0, 1).

    ``constant``: ``ratio_max``; ``uniform``: ``min + (max - min) * u``; ``cosine``:
    ``min + (max - min) * cos(pi * u / 2)`` (MaskGIT's schedule, favouring high ratios).

    Args:
        sample_noise: float64 [N].

    Returns:
        float64 [N] in ``[ratio_min, ratio_max]``.
    """
    if schedule == "constant":
        return torch.full_like(sample_noise, ratio_max)
    if schedule == "uniform":
        shape = sample_noise
    elif schedule == "cosine":
        shape = torch.cos(sample_noise * (math.pi / 2))
    else:
        raise ValueError(f"unknown mask schedule {schedule!r}; use constant, uniform or cosine")
    return ratio_min + (ratio_max - ratio_min) * shape


def select_masked_units(
    sequence_ids: torch.Tensor,
    node_index: torch.Tensor,
    maskable: torch.Tensor,
    position_noise: torch.Tensor,
    ratios: torch.Tensor,
) -> torch.Tensor:
    """Choose which positions to mask, whole nodes at a time.

    Units: every ``(sample, node_index >= 0)`` pair among maskable positions (all its
    positions together), and every maskable position with ``node_index == -1`` on its own. A
    unit's score is the noise at its first position. In graph ``i`` with ``n_i`` units, the
    ``k_i = min(n_i, max(1, ceil(ratios[i] * n_i)))`` units with the lowest scores are masked
    (ties broken by unit key: node units by node index, then single positions by position).

    Args:
        sequence_ids: int64 [B, T].
        node_index: int64 [B, T], ``-1`` for tokens without a node.
        maskable: bool [B, T] positions that may be masked.
        position_noise: float64 [B, T] from :func:`per_sample_uniforms`.
        ratios: float64 [N] mask ratio per graph.

    Returns:
        bool [B, T]: positions to mask.
    """
    num_positions = sequence_ids.numel()
    flat_sid = sequence_ids.reshape(-1)
    flat_node = node_index.reshape(-1)
    flat_maskable = maskable.reshape(-1) & (flat_sid >= 0)
    mask = torch.zeros(num_positions, dtype=torch.bool)
    if not bool(flat_maskable.any()):
        return mask.view(sequence_ids.shape)
    num_samples = ratios.numel()
    positions = torch.arange(num_positions)[flat_maskable]
    sid = flat_sid[flat_maskable]
    node = flat_node[flat_maskable]
    stride = int(node.max().clamp(min=-1)) + 2
    # Node units get keys inside their sample's block; single tokens come after every block.
    unit_key = torch.where(node >= 0, sid * stride + node + 1, num_samples * stride + positions)
    unit_keys, inverse = torch.unique(unit_key, sorted=True, return_inverse=True)
    num_units = unit_keys.numel()
    first_position = torch.full((num_units,), num_positions, dtype=torch.long)
    first_position.scatter_reduce_(0, inverse, positions, reduce="amin")
    unit_score = position_noise.reshape(-1)[first_position]
    unit_sample = flat_sid[first_position]
    units_per_sample = torch.bincount(unit_sample, minlength=num_samples)
    quota = torch.ceil(ratios * units_per_sample).long().clamp(min=1)
    quota = torch.minimum(quota, units_per_sample)
    # Rank units inside their sample by (score, key): stable sorts keep key order on ties.
    order = torch.argsort(unit_score, stable=True)
    order = order[torch.argsort(unit_sample[order], stable=True)]
    sorted_sample = unit_sample[order]
    block_start = torch.cumsum(units_per_sample, 0) - units_per_sample
    rank = torch.arange(num_units) - block_start[sorted_sample]
    unit_masked = torch.zeros(num_units, dtype=torch.bool)
    unit_masked[order] = rank < quota[sorted_sample]
    mask[positions] = unit_masked[inverse]
    return mask.view(sequence_ids.shape)


# ---------------------------------------------------------------------------------------------
# objective batches
# ---------------------------------------------------------------------------------------------
def next_token_batch(batch: Mapping[str, torch.Tensor]) -> ObjectiveBatch:
    """Causal next-token prediction on the unmodified batch."""
    labels = next_token_labels(batch["input_ids"], batch["sequence_ids"])
    return ObjectiveBatch("next_token", dict(batch), labels, causal=True)


def _masked_batch(
    name: str,
    batch: Mapping[str, torch.Tensor],
    maskable: torch.Tensor,
    sample_keys: Sequence[int],
    mask_token_id: int,
    schedule: str,
    ratio_min: float,
    ratio_max: float,
) -> ObjectiveBatch:
    position_noise, sample_noise = per_sample_uniforms(batch["sequence_ids"], sample_keys, salt=_SALTS[name])
    ratios = mask_ratios(sample_noise, schedule, ratio_min, ratio_max)
    mask = select_masked_units(batch["sequence_ids"], batch["node_index"], maskable, position_noise, ratios)
    input_ids = batch["input_ids"]
    inputs = dict(batch)
    inputs["input_ids"] = torch.where(mask, torch.full_like(input_ids, mask_token_id), input_ids)
    labels = torch.where(mask, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return ObjectiveBatch(name, inputs, labels, causal=False)


def masked_token_batch(
    batch: Mapping[str, torch.Tensor],
    sample_keys: Sequence[int],
    mask_token_id: int,
    special_token_ids: Sequence[int],
    schedule: str = "cosine",
    ratio_min: float = 0.15,
    ratio_max: float = 0.5,
) -> ObjectiveBatch:
    """Scheduled masked-token prediction; every occurrence of a masked node masked together.

    Args:
        batch: packed batch (``input_ids``, ``sequence_ids``, ``node_index``, ``attention_mask``...).
        sample_keys: one key per graph of the batch (``N``).
        mask_token_id: the tokenizer's ``<mask>`` id.
        special_token_ids: ids never masked (``<pad> <bos> <eos> <sep> <jump>``...).
    """
    input_ids = batch["input_ids"]
    maskable = (batch["attention_mask"] > 0) & ~torch.isin(input_ids, torch.as_tensor(list(special_token_ids)))
    return _masked_batch("masked_token", batch, maskable, sample_keys, mask_token_id, schedule, ratio_min, ratio_max)


def masked_code_batch(
    batch: Mapping[str, torch.Tensor],
    sample_keys: Sequence[int],
    mask_token_id: int,
    schedule: str = "cosine",
    ratio_min: float = 0.15,
    ratio_max: float = 0.5,
) -> ObjectiveBatch:
    """Masked-code prediction for quantized tokens: a chosen node loses all its code tokens.

    Needs ``level_ids`` [B, T] (``-1`` for tokens that are not codes).
    """
    if "level_ids" not in batch:
        raise ValueError(
            "masked_code needs quantized tokens: the batch has no level_ids (use a QuantizedTokenizer corpus, "
            "or the masked_token objective for Eulerian tokens)"
        )
    maskable = (batch["attention_mask"] > 0) & (batch["level_ids"] >= 0)
    return _masked_batch("masked_code", batch, maskable, sample_keys, mask_token_id, schedule, ratio_min, ratio_max)


def build_objective_batches(
    batch: Mapping[str, torch.Tensor],
    sample_keys: Sequence[int],
    objectives: Mapping[str, float],
    mask_token_id: int | None,
    special_token_ids: Sequence[int],
    schedule: str,
    ratio_min: float,
    ratio_max: float,
) -> list[ObjectiveBatch]:
    """One :class:`ObjectiveBatch` per configured objective, in the configured order."""
    out = []
    for name in objectives:
        if name == "next_token":
            out.append(next_token_batch(batch))
            continue
        if mask_token_id is None:
            raise ValueError(f"objective {name} needs a tokenizer with a <mask> token (mask_token_id is None)")
        if name == "masked_token":
            out.append(
                masked_token_batch(batch, sample_keys, mask_token_id, special_token_ids, schedule, ratio_min, ratio_max)
            )
        elif name == "masked_code":
            out.append(masked_code_batch(batch, sample_keys, mask_token_id, schedule, ratio_min, ratio_max))
        else:
            raise ValueError(f"unknown objective {name!r}")
    return out


def level_token_ranges(tokenizer: object, num_levels: int) -> list[tuple[int, int]] | None:
    """Token-id range ``[start, end)`` of each quantizer level's codes, if the tokenizer defines them.

    A tokenizer with ``code_token_id(level, code)`` and ``config.codebook_size`` (the
    ``QuantizedTokenizer``) lays level ``l``'s codes out contiguously; ``None`` otherwise.
    """
    code_token_id = getattr(tokenizer, "code_token_id", None)
    codebook_size = getattr(getattr(tokenizer, "config", None), "codebook_size", None)
    if code_token_id is None or codebook_size is None or num_levels <= 0:
        return None
    return [(int(code_token_id(level, 0)), int(code_token_id(level, 0)) + int(codebook_size)) for level in range(num_levels)]


def code_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, level_ids: torch.Tensor, ranges: Sequence[tuple[int, int]]
) -> torch.Tensor:
    """Per-position cross-entropy of masked codes, each over its own level's codes only.

    A code of level ``l`` is predicted among the ids ``ranges[l]`` (the other levels' codes and
    the special tokens are not candidates), which is what "predicting the codes per level" means.

    Args:
        logits: float [B, T, V].
        labels: int64 [B, T], ``-100`` where nothing is predicted.
        level_ids: int64 [B, T] level of each code token.
        ranges: ``[start, end)`` token ids of each level's codes.

    Returns:
        float32 [B, T], 0 where ``labels == -100``.
    """
    losses = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
    targets = labels != IGNORE_INDEX
    for level, (start, end) in enumerate(ranges):
        chosen = targets & (level_ids == level)
        if not bool(chosen.any()):
            continue
        level_labels = labels[chosen] - start
        if bool((level_labels < 0).any()) or bool((level_labels >= end - start).any()):
            raise ValueError(f"masked_code: a level-{level} label is not a level-{level} code id in [{start}, {end})")
        losses[chosen] = F.cross_entropy(logits[chosen][:, start:end].float(), level_labels, reduction="none")
    unexpected = targets & ((level_ids < 0) | (level_ids >= len(ranges)))
    if bool(unexpected.any()):
        raise ValueError(f"masked_code: targets at positions whose level is outside 0..{len(ranges) - 1}")
    return losses


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy, 0 where ``labels == -100``.

    Args:
        logits: float [B, T, V].
        labels: int64 [B, T].

    Returns:
        float32 [B, T].
    """
    vocab = logits.shape[-1]
    losses = F.cross_entropy(
        logits.float().reshape(-1, vocab), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    )
    return losses.view(labels.shape)
