"""Graph positional encodings (Laplacian eigenvectors, random-walk return probabilities).

They are **per-node** vectors of one whole graph: :func:`graph_positional_encoding` computes
``[num_nodes, P]`` from a PyG ``Data`` with PyG's ``AddLaplacianEigenvectorPE`` /
``AddRandomWalkPE``, before any sampling or tokenization, so a node keeps its global position when
it is later cut into ego graphs. The result is a plain tensor any layer can use (a GNN baseline's
inputs, a tokenizer's per-token features): this module reads only the graph.

How they enter the model: :func:`gfm.tokenization.positional_encoding.add_positional_encoding`
copies each token's node row onto a ``TokenizedGraph``'s ``node_features``; the collators carry
``node_features`` as ``[B, T, F]`` and ``GFMEmbeddings`` projects them, so no new batch key and no
model change is needed; set ``GFMConfig.node_feature_dim`` to the total width ``F``.

Laplacian eigenvectors have arbitrary signs; PyG flips them at random, which is the standard
training augmentation. Here the flips are drawn from ``seed`` (deterministic); pass a new seed
per epoch to augment, a fixed one to evaluate.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

__all__ = ["graph_positional_encoding"]


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
