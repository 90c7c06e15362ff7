"""The seam between tokenizers and everything downstream: ``TokenizedGraph`` and its batching.

Both tokenizers (Eulerian and quantized) return one :class:`TokenizedGraph` per input graph;
the model, the collators and the objectives consume only this contract, never asking which
tokenizer made a sequence.

A batch is a plain ``dict`` of tensors (the keyword arguments of every gfm model's
``forward``), built by :func:`collate_tokenized_graphs` (one sequence per row, padded) or
:func:`pack_tokenized_graphs` (several sequences per row up to a token budget). In both layouts
``sequence_ids`` says which sample of the batch each position belongs to, so attention never
crosses from one sample into another and per-sample pooling needs no Python loop.

Batch keys (``B`` rows, ``T`` positions per row, ``N`` samples, ``P`` token-level edges):

=====================  =================  =====================================================
key                    shape / dtype      meaning
=====================  =================  =====================================================
``input_ids``          [B, T] int64       token ids; ``pad_token_id`` at padding
``attention_mask``     [B, T] int64       1 for real tokens, 0 for padding
``position_ids``       [B, T] int64       position inside its own sample (restarts per sample)
``sequence_ids``       [B, T] int64       sample index in ``0..N-1``; -1 at padding
``node_index``         [B, T] int64       graph node the token stands for (local to its
                                          sample), -1 for none
``graph_edge_index``   [2, P] int64       token-position pairs (src, dst) joined by a graph edge,
                                          as flat positions ``row * T + column``
``graph_edge_type``    [P] int64          small integer type of each such link (0 by default)
``level_ids``          [B, T] int64       quantizer level of a code token, -1 otherwise
                                          (present only if any sample has it)
``ppr_weight``         [B, T] float32     personalized-PageRank weight of the token's node
                                          (present only if any sample has it; 0 at padding)
``node_features``      [B, T, F] float32  continuous per-token inputs from the shared input
                                          space (present only if any sample has them)
``num_nodes``          [N] int64          node count of each sample's graph
=====================  =================  =====================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from gfm.utils.errors import GFMError

__all__ = [
    "TokenizedGraph",
    "TokenizedGraphError",
    "collate_tokenized_graphs",
    "pack_tokenized_graphs",
]


class TokenizedGraphError(GFMError, ValueError):
    """A ``TokenizedGraph`` (or a batch of them) breaks the contract; the message says where."""


_OPTIONAL_TENSOR_FIELDS = ("level_ids", "ppr_weight", "node_features", "position_ids")


@dataclass
class TokenizedGraph:
    """One graph as a token sequence plus the structure graph-aware attention needs.

    Attributes:
        input_ids: int64 ``[L]`` token ids.
        node_index: int64 ``[L]`` index of the graph node each token stands for, ``-1`` for
            tokens that stand for no node (special, edge-attribute or direction tokens).
            Several positions may carry the same node (a node revisited by a walk, a node
            written with a multi-token index, a node's several quantizer levels).
        edge_index: int64 ``[2, P]`` pairs of token positions ``(src, dst)`` joined by a
            graph edge. An undirected graph edge contributes both directions.
        edge_type: int64 ``[P]`` small non-negative type id of each position link; the model
            learns one attention bias per type. Defaults to zeros.
        num_nodes: number of nodes of the source graph (isolated nodes included).
        level_ids: optional int64 ``[L]`` quantizer level of each code token, ``-1`` for
            other tokens.
        ppr_weight: optional float32 ``[L]`` personalized-PageRank weight of each token's node
            relative to the sequence's centre node (quantized context sequences).
        node_features: optional float32 ``[L, F]`` continuous inputs per token (shared input
            space), zeros for tokens without a node.
        position_ids: optional int64 ``[L]``; ``arange(L)`` when absent.
        domain: the source graph's domain tag (``"molecules"``, ``"citation"``, ...).
        metadata: free-form JSON-serializable extras (e.g. ``{"target_node": 3}``); the
            collators carry ``target_node`` / ``target_edge`` through, nothing else reads it.
    """

    input_ids: torch.Tensor
    node_index: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor | None = None
    num_nodes: int = 0
    level_ids: torch.Tensor | None = None
    ppr_weight: torch.Tensor | None = None
    node_features: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None
    domain: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_ids = torch.as_tensor(self.input_ids, dtype=torch.long)
        self.node_index = torch.as_tensor(self.node_index, dtype=torch.long)
        self.edge_index = torch.as_tensor(self.edge_index, dtype=torch.long).reshape(2, -1)
        if self.edge_type is None:
            self.edge_type = torch.zeros(self.edge_index.shape[1], dtype=torch.long)
        else:
            self.edge_type = torch.as_tensor(self.edge_type, dtype=torch.long)
        if self.level_ids is not None:
            self.level_ids = torch.as_tensor(self.level_ids, dtype=torch.long)
        if self.ppr_weight is not None:
            self.ppr_weight = torch.as_tensor(self.ppr_weight, dtype=torch.float32)
        if self.node_features is not None:
            self.node_features = torch.as_tensor(self.node_features, dtype=torch.float32)
        if self.position_ids is not None:
            self.position_ids = torch.as_tensor(self.position_ids, dtype=torch.long)
        self.num_nodes = int(self.num_nodes)

    def __len__(self) -> int:
        return int(self.input_ids.numel())

    @property
    def num_positions(self) -> int:
        return len(self)

    def validate(self, name: str = "tokenized graph", vocab_size: int | None = None) -> TokenizedGraph:
        """Check every field against the contract; raise :class:`TokenizedGraphError` naming it.

        Args:
            name: how to call this sequence in error messages (e.g. ``"graph 17 of tu/PROTEINS"``).
            vocab_size: when given, every id must lie in ``[0, vocab_size)``.
        """
        length = len(self)
        if self.input_ids.dim() != 1:
            raise TokenizedGraphError(f"{name}: input_ids must be 1-D [L], got shape {tuple(self.input_ids.shape)}")
        if vocab_size is not None and length and (
            int(self.input_ids.min()) < 0 or int(self.input_ids.max()) >= vocab_size
        ):
            bad = int(((self.input_ids < 0) | (self.input_ids >= vocab_size)).nonzero()[0, 0])
            raise TokenizedGraphError(
                f"{name}: input_ids[{bad}] = {int(self.input_ids[bad])} is outside the vocabulary "
                f"[0, {vocab_size}); use the tokenizer the model was trained with"
            )
        if self.node_index.shape != (length,):
            raise TokenizedGraphError(
                f"{name}: node_index has shape {tuple(self.node_index.shape)}, expected [{length}] like input_ids"
            )
        if length and (int(self.node_index.min()) < -1 or int(self.node_index.max()) >= max(self.num_nodes, 0)):
            if int(self.node_index.max()) >= self.num_nodes:
                raise TokenizedGraphError(
                    f"{name}: node_index holds {int(self.node_index.max())} but num_nodes is {self.num_nodes}; "
                    "set num_nodes to the source graph's node count"
                )
            raise TokenizedGraphError(f"{name}: node_index holds values below -1 (-1 means 'no node')")
        if self.edge_index.numel():
            if int(self.edge_index.min()) < 0 or int(self.edge_index.max()) >= length:
                raise TokenizedGraphError(
                    f"{name}: edge_index refers to position {int(self.edge_index.max())} "
                    f"(or a negative one) but the sequence has {length} positions"
                )
        if self.edge_type.shape != (self.edge_index.shape[1],):
            raise TokenizedGraphError(
                f"{name}: edge_type has shape {tuple(self.edge_type.shape)}, expected [{self.edge_index.shape[1]}]"
            )
        if self.edge_type.numel() and int(self.edge_type.min()) < 0:
            raise TokenizedGraphError(f"{name}: edge_type must be non-negative")
        for key in ("level_ids", "ppr_weight", "position_ids"):
            value = getattr(self, key)
            if value is not None and value.shape != (length,):
                raise TokenizedGraphError(f"{name}: {key} has shape {tuple(value.shape)}, expected [{length}]")
        if self.node_features is not None:
            if self.node_features.dim() != 2 or self.node_features.shape[0] != length:
                raise TokenizedGraphError(
                    f"{name}: node_features has shape {tuple(self.node_features.shape)}, expected [{length}, F]"
                )
            if not torch.isfinite(self.node_features).all():
                raise TokenizedGraphError(f"{name}: node_features holds NaN or infinite values")
        if self.ppr_weight is not None and not torch.isfinite(self.ppr_weight).all():
            raise TokenizedGraphError(f"{name}: ppr_weight holds NaN or infinite values")
        return self

    # ----------------------------------------------------------------------------------------
    # Arrow / JSON round trip: plain python containers, exact for every field.
    # ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-python form for HF ``datasets`` (Arrow) storage; exact inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {
            "input_ids": self.input_ids.tolist(),
            "node_index": self.node_index.tolist(),
            "edge_index": self.edge_index.tolist(),
            "edge_type": self.edge_type.tolist(),
            "num_nodes": self.num_nodes,
            "domain": self.domain,
        }
        for key in _OPTIONAL_TENSOR_FIELDS:
            value = getattr(self, key)
            out[key] = None if value is None else value.tolist()
        out["metadata"] = dict(self.metadata)
        return out

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> TokenizedGraph:
        known = {f.name for f in fields(cls)}
        unknown = set(row) - known
        if unknown:
            raise TokenizedGraphError(f"from_dict: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        kwargs = {k: v for k, v in row.items() if v is not None}
        if "node_features" in kwargs:
            kwargs["node_features"] = np.asarray(kwargs["node_features"], dtype=np.float32).reshape(
                len(kwargs["input_ids"]), -1
            )
        if "edge_index" in kwargs:
            kwargs["edge_index"] = np.asarray(kwargs["edge_index"], dtype=np.int64).reshape(2, -1)
        kwargs["metadata"] = dict(kwargs.get("metadata") or {})
        return cls(**kwargs)

    def equals(self, other: TokenizedGraph) -> bool:
        """Exact equality of every field (tensors compared elementwise)."""
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
                if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b):
                    return False
            elif a != b:
                return False
        return True


def _stack_targets(values: list[Any], key: str) -> torch.Tensor:
    tensors = [torch.as_tensor(v) for v in values]
    try:
        return torch.stack(tensors)
    except RuntimeError as err:
        shapes = sorted({tuple(t.shape) for t in tensors})
        raise TokenizedGraphError(f"collate: field '{key}' has differing shapes across samples: {shapes}") from err


def _fill_rows(
    samples: Sequence[TokenizedGraph],
    placements: Sequence[tuple[int, int]],
    num_rows: int,
    row_length: int,
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """Write ``samples[i]`` at ``(row, start) = placements[i]`` of a ``[num_rows, row_length]`` batch."""
    input_ids = torch.full((num_rows, row_length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((num_rows, row_length), dtype=torch.long)
    position_ids = torch.zeros((num_rows, row_length), dtype=torch.long)
    sequence_ids = torch.full((num_rows, row_length), -1, dtype=torch.long)
    node_index = torch.full((num_rows, row_length), -1, dtype=torch.long)
    any_levels = any(s.level_ids is not None for s in samples)
    any_ppr = any(s.ppr_weight is not None for s in samples)
    feature_widths = {s.node_features.shape[1] for s in samples if s.node_features is not None}
    if len(feature_widths) > 1:
        raise TokenizedGraphError(
            f"collate: node_features widths differ across samples {sorted(feature_widths)}; "
            "project every graph into the shared input space first"
        )
    level_ids = torch.full((num_rows, row_length), -1, dtype=torch.long) if any_levels else None
    ppr_weight = torch.zeros((num_rows, row_length), dtype=torch.float32) if any_ppr else None
    node_features = (
        torch.zeros((num_rows, row_length, feature_widths.pop()), dtype=torch.float32) if feature_widths else None
    )
    edge_chunks, type_chunks = [], []
    for sample_id, (sample, (row, start)) in enumerate(zip(samples, placements)):
        length = len(sample)
        span = slice(start, start + length)
        input_ids[row, span] = sample.input_ids
        attention_mask[row, span] = 1
        position_ids[row, span] = sample.position_ids if sample.position_ids is not None else torch.arange(length)
        sequence_ids[row, span] = sample_id
        node_index[row, span] = sample.node_index
        if level_ids is not None and sample.level_ids is not None:
            level_ids[row, span] = sample.level_ids
        if ppr_weight is not None and sample.ppr_weight is not None:
            ppr_weight[row, span] = sample.ppr_weight
        if node_features is not None and sample.node_features is not None:
            node_features[row, span] = sample.node_features
        if sample.edge_index.numel():
            edge_chunks.append(sample.edge_index + row * row_length + start)
            type_chunks.append(sample.edge_type)
    batch: dict[str, torch.Tensor] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "sequence_ids": sequence_ids,
        "node_index": node_index,
        "graph_edge_index": torch.cat(edge_chunks, dim=1) if edge_chunks else torch.zeros(2, 0, dtype=torch.long),
        "graph_edge_type": torch.cat(type_chunks) if type_chunks else torch.zeros(0, dtype=torch.long),
        "num_nodes": torch.tensor([s.num_nodes for s in samples], dtype=torch.long),
    }
    if level_ids is not None:
        batch["level_ids"] = level_ids
    if ppr_weight is not None:
        batch["ppr_weight"] = ppr_weight
    if node_features is not None:
        batch["node_features"] = node_features
    # Task targets carried in metadata (node / edge tasks on sampled subgraphs).
    for key in ("target_node", "target_edge"):
        present = [key in s.metadata for s in samples]
        if any(present):
            if not all(present):
                raise TokenizedGraphError(f"collate: some samples carry metadata['{key}'] and others do not")
            batch[key] = _stack_targets([s.metadata[key] for s in samples], key)
    return batch


def _check_lengths(samples: Sequence[TokenizedGraph], max_length: int | None, what: str) -> None:
    if not samples:
        raise TokenizedGraphError(f"{what}: got an empty list of samples")
    for i, s in enumerate(samples):
        if not isinstance(s, TokenizedGraph):
            raise TokenizedGraphError(f"{what}: sample {i} is a {type(s).__name__}, expected TokenizedGraph")
        if len(s) == 0:
            raise TokenizedGraphError(f"{what}: sample {i} has no tokens")
        if max_length is not None and len(s) > max_length:
            raise TokenizedGraphError(
                f"{what}: sample {i} has {len(s)} tokens, more than max_length={max_length}; "
                "raise max_length (and the model's max_position_embeddings) or sample smaller subgraphs; "
                "gfm never truncates a graph silently"
            )


def collate_tokenized_graphs(
    samples: Sequence[TokenizedGraph],
    pad_token_id: int = 0,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a list of sequences into a batch with one sample per row.

    Args:
        samples: ``N`` tokenized graphs.
        pad_token_id: id written at padding positions.
        max_length: raise (never truncate) when a sample is longer.
        pad_to_multiple_of: round ``T`` up to a multiple of this.

    Returns:
        The batch dict described in the module docstring, with ``B = N``.
    """
    _check_lengths(samples, max_length, "collate_tokenized_graphs")
    row_length = max(len(s) for s in samples)
    if pad_to_multiple_of:
        row_length = int(math.ceil(row_length / pad_to_multiple_of) * pad_to_multiple_of)
    placements = [(i, 0) for i in range(len(samples))]
    return _fill_rows(samples, placements, len(samples), row_length, pad_token_id)


def pack_tokenized_graphs(
    samples: Sequence[TokenizedGraph],
    token_budget: int,
    pad_token_id: int = 0,
) -> dict[str, torch.Tensor]:
    """Pack sequences into rows of exactly ``token_budget`` positions (first-fit decreasing).

    Samples keep their order in ``sequence_ids`` (sample ``i`` of ``samples`` has id ``i``), so
    per-sample labels line up with the input list. Attention must not cross samples: every
    attention pattern in gfm is restricted to equal ``sequence_ids``.

    Args:
        samples: ``N`` tokenized graphs, each at most ``token_budget`` long.
        token_budget: positions per row ``T``.

    Returns:
        The batch dict described in the module docstring, ``B`` = number of rows used.
    """
    _check_lengths(samples, token_budget, "pack_tokenized_graphs")
    order = sorted(range(len(samples)), key=lambda i: -len(samples[i]))
    free: list[int] = []  # remaining capacity of each row
    placements: list[tuple[int, int]] = [(0, 0)] * len(samples)
    for i in order:
        length = len(samples[i])
        for row, capacity in enumerate(free):
            if capacity >= length:
                placements[i] = (row, token_budget - capacity)
                free[row] = capacity - length
                break
        else:
            placements[i] = (len(free), 0)
            free.append(token_budget - length)
    return _fill_rows(samples, placements, len(free), token_budget, pad_token_id)
