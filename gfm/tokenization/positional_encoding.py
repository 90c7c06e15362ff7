"""Per-node encodings onto token sequences: each token carries its graph node's vector.

:func:`add_positional_encoding` appends to a ``TokenizedGraph``'s ``node_features`` the row of
``[num_nodes, P]`` that belongs to each token's node (``node_index``; zeros for tokens that stand
for no node), so every token of one node gets the same vector. The vectors are computed on the
whole graph beforehand, e.g. by :func:`gfm.data.positional_encoding.graph_positional_encoding`
(Laplacian eigenvectors, random-walk return probabilities). The collators carry
``node_features`` as ``[B, T, F]`` and the model projects them: set ``GFMConfig.node_feature_dim``
to the total width ``F``.
"""

from __future__ import annotations

import dataclasses

import torch

from .tokenized_graph import TokenizedGraph, TokenizedGraphError

__all__ = ["add_positional_encoding"]


def add_positional_encoding(tokenized: TokenizedGraph, node_encoding: torch.Tensor) -> TokenizedGraph:
    """A copy of ``tokenized`` whose ``node_features`` gain the encoding of each token's node.

    Args:
        tokenized: a ``TokenizedGraph`` of a graph with ``num_nodes`` nodes.
        node_encoding: ``[num_nodes, P]`` (e.g. from :func:`gfm.data.positional_encoding.graph_positional_encoding`).

    Returns:
        A new ``TokenizedGraph`` with ``node_features`` ``[L, F + P]`` (``F`` = previous width, 0 if none).
    """
    if node_encoding.dim() != 2 or node_encoding.shape[0] != tokenized.num_nodes:
        raise TokenizedGraphError(
            f"node_encoding has shape {tuple(node_encoding.shape)}, expected [num_nodes={tokenized.num_nodes}, P]"
        )
    node = tokenized.node_index
    per_token = torch.zeros(len(tokenized), node_encoding.shape[1], dtype=torch.float32)
    has_node = node >= 0
    per_token[has_node] = node_encoding[node[has_node]].float()
    if tokenized.node_features is None:
        features = per_token
    else:
        features = torch.cat([tokenized.node_features, per_token], dim=1)
    return dataclasses.replace(tokenized, node_features=features, metadata=dict(tokenized.metadata))
