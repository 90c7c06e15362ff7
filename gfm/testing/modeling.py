"""Tiny model configurations and random token sequences for the model, pattern and collator tests.

* :func:`tiny_gfm_config`: a ``GFMConfig`` small enough to run forward and backward in milliseconds
  (hidden 32, 2 layers, 4 heads, 3 edge types), any field overridable.
* :func:`random_tokenized_graph`: one valid random ``TokenizedGraph`` of a given length: random
  token ids, node positions (``-1`` for node-less tokens), token-level edges and edge types,
  optionally the quantized / feature auxiliaries.
* :func:`random_tokenized_graphs`: seeded samples of given lengths whose metadata names a target
  node and a target edge that have tokens (the inputs of the node and edge heads).
* :func:`apply_rotary_reference`: the textbook rotary rotation, the reference of
  :func:`gfm.modeling.fused_ops.apply_rotary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from gfm.modeling import GFMConfig
from gfm.tokenization.tokenized_graph import TokenizedGraph

__all__ = ["TINY_VOCAB", "TINY_EDGE_TYPES", "TINY_FEATURE_DIM", "tiny_gfm_config", "random_tokenized_graph",
           "random_tokenized_graphs", "apply_rotary_reference"]

TINY_VOCAB = 40
TINY_EDGE_TYPES = 3
TINY_FEATURE_DIM = 5  # width of ``node_features`` in samples drawn with ``extras=True``


def tiny_gfm_config(**overrides: Any) -> GFMConfig:
    """A tiny ``GFMConfig`` (vocabulary :data:`TINY_VOCAB`, :data:`TINY_EDGE_TYPES` edge types); ``overrides`` win."""
    settings: dict[str, Any] = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_edge_types=TINY_EDGE_TYPES,
        attention_expander_degree=2,
        attention_num_global_tokens=1,
    )
    settings.update(overrides)
    return GFMConfig(**settings)


def random_tokenized_graph(
    generator: torch.Generator,
    length: int,
    num_nodes: int,
    *,
    vocab_size: int = TINY_VOCAB,
    num_edges: int | None = None,
    edge_positions: int | None = None,
    num_edge_types: int = TINY_EDGE_TYPES,
    extras: bool = False,
    metadata: dict[str, Any] | None = None,
    domain: str | None = None,
) -> TokenizedGraph:
    """One valid random sequence of ``length`` tokens over ``num_nodes`` graph nodes.

    ``input_ids`` [L] in ``[1, vocab_size)``; ``node_index`` [L] in ``[-1, num_nodes)``, with the first
    two positions standing for nodes 0 and 1 (when both exist) so metadata may name them;
    ``edge_index`` [2, num_edges] between token positions (default ``2 * length`` edges, self-loops and
    repeats allowed; only the first ``edge_positions`` positions, default all, so the rest have no graph
    edges) with ``edge_type`` [num_edges] in ``[0, num_edge_types)``. With ``extras``:
    ``level_ids`` [L] in ``[-1, 1]``, ``ppr_weight`` [L] in ``[0, 1)`` and ``node_features``
    [L, :data:`TINY_FEATURE_DIM`]. Every draw comes from ``generator``.
    """
    node_index = torch.randint(-1, num_nodes, (length,), generator=generator)
    first = min(2, length, num_nodes)
    node_index[:first] = torch.arange(first)
    num_edges = 2 * length if num_edges is None else num_edges
    optional: dict[str, Any] = {}
    if extras:
        optional = dict(
            level_ids=torch.randint(-1, 2, (length,), generator=generator),
            ppr_weight=torch.rand(length, generator=generator),
            node_features=torch.randn(length, TINY_FEATURE_DIM, generator=generator),
        )
    return TokenizedGraph(
        input_ids=torch.randint(1, vocab_size, (length,), generator=generator),
        node_index=node_index,
        edge_index=torch.randint(0, max(length if edge_positions is None else edge_positions, 1), (2, num_edges),
                                 generator=generator),
        edge_type=torch.randint(0, num_edge_types, (num_edges,), generator=generator),
        num_nodes=num_nodes,
        domain=domain,
        metadata=metadata or {},
        **optional,
    ).validate()


def random_tokenized_graphs(lengths: Sequence[int], seed: int, *, extras: bool = False,
                            vocab_size: int = TINY_VOCAB) -> list[TokenizedGraph]:
    """Seeded samples, one per length, over ``max(length // 2, 2)`` nodes each.

    Sample ``i``'s metadata names target node ``i % 2`` and target edge ``(0, 1)``.
    """
    generator = torch.Generator().manual_seed(seed)
    return [
        random_tokenized_graph(generator, length, max(length // 2, 2), vocab_size=vocab_size, extras=extras,
                               metadata={"target_node": i % 2, "target_edge": [0, 1]})
        for i, length in enumerate(lengths)
    ]


def apply_rotary_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The textbook rotation (autograd through ``cat``), the reference of :func:`gfm.modeling.fused_ops.apply_rotary`."""
    half = x.shape[-1] // 2
    cos, sin = torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin
