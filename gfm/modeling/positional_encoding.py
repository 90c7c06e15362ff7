"""Graph positional encodings (Laplacian eigenvectors, random-walk return probabilities).

How they enter the model: they are **per-node** features, so they travel with the continuous
inputs. :func:`graph_positional_encoding` computes ``[num_nodes, P]`` for one graph with PyG's
``AddLaplacianEigenvectorPE`` / ``AddRandomWalkPE``; :func:`add_positional_encoding` copies each
token's node row (zeros for tokens without a node) onto the ``TokenizedGraph``'s
``node_features`` (appending columns to any shared-input-space features already there). The
collators carry ``node_features`` as ``[B, T, F]`` and ``GFMEmbeddings`` projects them, so no
new batch key and no model change is needed; set ``GFMConfig.node_feature_dim`` to the total
width ``F``. Every token of one node gets the same encoding.

Laplacian eigenvectors have arbitrary signs; PyG flips them at random, which is the standard
training augmentation. Here the flips are drawn from ``seed`` (deterministic); pass a new seed
per epoch to augment, a fixed one to evaluate.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

from gfm.tokenization.tokenized_graph import TokenizedGraph, TokenizedGraphError

__all__ = ["add_positional_encoding", "graph_positional_encoding"]


def graph_positional_encoding(
    graph: Data, laplacian_k: int = 8, random_walk_steps: int = 16, seed: int = 0
) -> torch.Tensor:
    """Positional encodings of one graph's nodes.

    Args:
        graph: a PyG ``Data`` with ``edge_index`` and ``num_nodes``.
        laplacian_k: number of non-trivial Laplacian eigenvectors (columns beyond
            ``num_nodes - 1`` are zeros: a small graph has fewer eigenvectors).
        random_walk_steps: number of random-walk return probabilities (steps ``1..s``).
        seed: seed of the eigenvector sign flips.

    Returns:
        float32 ``[num_nodes, laplacian_k + random_walk_steps]``.
    """
    num_nodes = int(graph.num_nodes)
    if num_nodes == 0:
        raise ValueError(f"graph {getattr(graph, 'name', '')!r} has no nodes; nothing to encode")
    skeleton = Data(edge_index=graph.edge_index, num_nodes=num_nodes)
    blocks = []
    if laplacian_k:
        usable = min(laplacian_k, num_nodes - 1 if num_nodes < AddLaplacianEigenvectorPE.SPARSE_THRESHOLD else num_nodes - 2)
        lap = torch.zeros(num_nodes, laplacian_k)
        if usable > 0:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                transform = AddLaplacianEigenvectorPE(
                    usable, attr_name="lap_pe", is_undirected=True, v0=np.random.default_rng(seed).standard_normal(num_nodes)
                )
                lap[:, :usable] = transform(skeleton.clone()).lap_pe.float()
        blocks.append(lap)
    if random_walk_steps:
        blocks.append(AddRandomWalkPE(random_walk_steps, attr_name="rw_pe")(skeleton.clone()).rw_pe.float())
    if not blocks:
        return torch.zeros(num_nodes, 0)
    return torch.cat(blocks, dim=1)


def add_positional_encoding(tokenized: TokenizedGraph, node_encoding: torch.Tensor) -> TokenizedGraph:
    """A copy of ``tokenized`` whose ``node_features`` gain the encoding of each token's node.

    Args:
        tokenized: a ``TokenizedGraph`` of a graph with ``num_nodes`` nodes.
        node_encoding: ``[num_nodes, P]`` (e.g. from :func:`graph_positional_encoding`).

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
