"""Parameter-free controls that every transfer number is reported beside.

- :func:`label_propagation_scores`: PyG's ``LabelPropagation`` from the labelled nodes.
- :class:`SVDProbe`: randomized SVD of the symmetric-normalized adjacency (and, when the run
  may see features, of the row-normalized feature matrix), k-hop smoothing with the same
  adjacency, and class prototypes from the labelled nodes. No parameter is trained; its
  hyper-parameters (rank, hops) are fixed in advance, never tuned on a test split.
- :func:`class_prototype_scores`: nearest class prototype by cosine similarity in any state
  space (the SVD probe's, or a gfm model's hidden states in the zero-shot protocol).
- link-prediction counterparts: :func:`label_propagation_link_scores` (propagate each source
  node's indicator; a personalized-PageRank proximity) and :meth:`SVDProbe.link_scores`
  (cosine of smoothed SVD embeddings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch_geometric.nn.models import LabelPropagation
from torch_geometric.utils import add_self_loops, coalesce, degree, to_undirected

from gfm.utils.errors import GFMError

__all__ = [
    "ControlError",
    "normalized_adjacency",
    "class_prototype_scores",
    "label_propagation_scores",
    "label_propagation_link_scores",
    "SVDProbe",
    "sample_k_labels_per_class",
]

logger = logging.getLogger(__name__)


class ControlError(GFMError, ValueError):
    """A control was given inputs it cannot use (no labelled node of a class, bad shapes...)."""


def _undirected_edges(edge_index: torch.Tensor, num_nodes: int, what: str) -> torch.Tensor:
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ControlError(f"{what}: edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ControlError(
            f"{what}: edge_index refers to node {int(edge_index.max())} but the graph has {num_nodes} nodes"
        )
    return to_undirected(edge_index, num_nodes=num_nodes)


def normalized_adjacency(edge_index: torch.Tensor, num_nodes: int, self_loops: bool = True) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` of the undirected graph as a sparse COO tensor ``[N, N]``.

    Directed graphs are symmetrized (the controls see structure only as proximity).
    """
    edges = _undirected_edges(edge_index, num_nodes, "normalized_adjacency")
    if self_loops:
        edges, _ = add_self_loops(edges, num_nodes=num_nodes)
    edges = coalesce(edges, num_nodes=num_nodes)
    deg = degree(edges[0], num_nodes).clamp(min=1)
    inv_sqrt = deg.pow(-0.5)
    weight = inv_sqrt[edges[0]] * inv_sqrt[edges[1]]
    return torch.sparse_coo_tensor(edges, weight, (num_nodes, num_nodes), check_invariants=True).coalesce()


def _labelled_index(labelled, num_nodes: int) -> torch.Tensor:
    labelled = torch.as_tensor(labelled)
    if labelled.dtype == torch.bool:
        if labelled.shape != (num_nodes,):
            raise ControlError(f"labelled mask has shape {tuple(labelled.shape)}, expected [{num_nodes}]")
        return labelled.nonzero().view(-1)
    return labelled.view(-1).long()


def class_prototype_scores(
    states: torch.Tensor, labels: torch.Tensor, labelled, num_classes: int | None = None
) -> torch.Tensor:
    """Cosine similarity of every node's state to the mean state of each class.

    Args:
        states: float ``[N, H]`` node states (any space).
        labels: int64 ``[N]`` class ids (only entries at ``labelled`` are read).
        labelled: bool ``[N]`` mask or int64 ``[L]`` index of the nodes whose label may be seen.
        num_classes: ``C``; defaults to ``max(labels[labelled]) + 1``.

    Returns:
        float ``[N, C]`` scores (argmax = predicted class).

    Raises:
        ControlError: a class has no labelled node (its prototype is undefined).
    """
    if states.dim() != 2 or states.shape[0] != labels.shape[0]:
        raise ControlError(
            f"class_prototype_scores: states {tuple(states.shape)} and labels {tuple(labels.shape)} disagree"
        )
    index = _labelled_index(labelled, states.shape[0])
    seen = labels[index].long()
    if (seen < 0).any():
        raise ControlError("class_prototype_scores: a labelled node has label -1 (unlabelled)")
    num_classes = int(seen.max()) + 1 if num_classes is None else int(num_classes)
    normalized = F.normalize(states.float(), dim=1)
    counts = torch.bincount(seen, minlength=num_classes)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().view(-1).tolist()
        raise ControlError(
            f"class_prototype_scores: class(es) {missing} have no labelled node, so no prototype; "
            "give at least one label per class"
        )
    sums = torch.zeros(num_classes, states.shape[1]).index_add_(0, seen, normalized[index])
    prototypes = F.normalize(sums / counts[:, None], dim=1)
    return normalized @ prototypes.T


def label_propagation_scores(
    edge_index: torch.Tensor,
    labels: torch.Tensor,
    labelled,
    num_classes: int | None = None,
    num_layers: int = 50,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Class scores from PyG's ``LabelPropagation`` (Zhou et al., 2004).

    Args:
        edge_index: int64 ``[2, E]`` (symmetrized here).
        labels: int64 ``[N]``; only entries at ``labelled`` are read.
        labelled: bool ``[N]`` mask or int64 index of the seed nodes.

    Returns:
        float ``[N, C]`` propagated label mass.
    """
    num_nodes = labels.shape[0]
    index = _labelled_index(labelled, num_nodes)
    seen = labels[index].long()
    if seen.numel() == 0 or (seen < 0).any():
        raise ControlError("label_propagation_scores: needs at least one labelled node, none with label -1")
    num_classes = int(seen.max()) + 1 if num_classes is None else int(num_classes)
    one_hot = torch.zeros(num_nodes, num_classes)
    one_hot[index, seen] = 1.0
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[index] = True
    edges = _undirected_edges(edge_index, num_nodes, "label_propagation_scores")
    return LabelPropagation(num_layers=num_layers, alpha=alpha)(one_hot, edges, mask=mask)


_DENSE_MAX_NODES = 8192
_DENSE_MIN_DENSITY = 0.02


def _dense_propagation_operator(edges: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Dense ``[N, N]`` operator of PyG ``LabelPropagation``: ``gcn_norm`` without self-loops,
    ``operator[target, source] = deg(source)^-1/2 deg(target)^-1/2`` (messages flow source -> target)."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    normalized, weight = gcn_norm(edges, num_nodes=num_nodes, add_self_loops=False)
    operator = torch.zeros(num_nodes, num_nodes)
    operator.index_put_((normalized[1], normalized[0]), weight.float(), accumulate=True)
    return operator


def label_propagation_link_scores(
    edge_index: torch.Tensor,
    num_nodes: int,
    pairs: torch.Tensor,
    num_layers: int = 10,
    alpha: float = 0.9,
    chunk_size: int = 1024,
    dense: bool | None = None,
) -> torch.Tensor:
    """Link control: propagate each source node's indicator and read the mass at the target.

    This is label propagation with the source as the only labelled node (a personalized-
    PageRank proximity), the natural link counterpart of the node-classification control.

    Args:
        edge_index: int64 ``[2, E]`` training edges only (never test edges).
        pairs: int64 ``[2, P]`` candidate (source, target) pairs.
        chunk_size: sources propagated together (memory ``N * chunk_size`` floats).
        dense: propagate with a dense ``[N, N]`` operator instead of PyG's sparse
            ``LabelPropagation`` (same operator, ``D^-1/2 A D^-1/2`` without self-loops, same
            iteration). ``None`` picks dense for graphs of at most 8,192 nodes with at least 2%
            of the possible edges (ddi: 4,267 nodes, 12%), where a dense product is several
            times faster than the sparse one on CPU.

    Returns:
        float ``[P]`` scores.
    """
    edges = _undirected_edges(edge_index, num_nodes, "label_propagation_link_scores")
    if dense is None:
        dense = num_nodes <= _DENSE_MAX_NODES and edges.shape[1] >= _DENSE_MIN_DENSITY * num_nodes * num_nodes
    if dense:
        operator = _dense_propagation_operator(edges, num_nodes)

        def propagate_block(seeds: torch.Tensor) -> torch.Tensor:
            out, res = seeds, (1 - alpha) * seeds
            for _ in range(num_layers):
                out = alpha * (operator @ out) + res
            return out
    else:
        propagation = LabelPropagation(num_layers=num_layers, alpha=alpha)

        def propagate_block(seeds: torch.Tensor) -> torch.Tensor:
            return propagation(seeds, edges, post_step=lambda out: out)

    sources, inverse = torch.unique(pairs[0], return_inverse=True)
    scores = torch.empty(pairs.shape[1])
    for start in range(0, sources.numel(), chunk_size):
        block = sources[start : start + chunk_size]
        seeds = torch.zeros(num_nodes, block.numel())
        seeds[block, torch.arange(block.numel())] = 1.0
        mass = propagate_block(seeds)  # [N, B]
        in_block = (inverse >= start) & (inverse < start + block.numel())
        scores[in_block] = mass[pairs[1, in_block], inverse[in_block] - start]
    return scores


@dataclass
class SVDProbe:
    """Parameter-free node states: randomized SVD + k-hop smoothing (+ prototypes).

    Attributes:
        rank: SVD rank per channel (capped at ``N - 1`` / the feature width).
        hops: smoothing steps with ``D^-1/2 (A + I) D^-1/2``.
        niter: subspace iterations of ``torch.svd_lowrank``.
        seed: seed of the randomized SVD's test matrix.
    """

    rank: int = 256
    hops: int = 3
    niter: int = 6
    seed: int = 0

    def _channel(self, matrix: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        rank = min(self.rank, min(matrix.shape) - 1)
        if rank < 1:
            raise ControlError(f"SVDProbe: matrix of shape {tuple(matrix.shape)} is too small for an SVD")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            # CSR: torch.svd_lowrank's products with a COO matrix are several times slower
            source = matrix.to_sparse_csr() if matrix.layout == torch.sparse_coo else matrix
            left, singular, _ = torch.svd_lowrank(source, q=rank, niter=self.niter)
        states = left * singular
        adjacency = adjacency.to_sparse_csr()
        for _ in range(self.hops):
            states = adjacency @ states
        return F.normalize(states, dim=1)

    def embed(self, edge_index: torch.Tensor, num_nodes: int, features: torch.Tensor | None = None) -> torch.Tensor:
        """Node states ``[N, D]``: the structure channel, plus the feature channel when given.

        Args:
            edge_index: int64 ``[2, E]``.
            num_nodes: ``N``.
            features: optional float ``[N, F]`` node features (only under an access level that
                includes features).
        """
        adjacency = normalized_adjacency(edge_index, num_nodes)
        channels = [self._channel(adjacency, adjacency)]
        if features is not None:
            features = torch.as_tensor(features, dtype=torch.float32)
            if features.shape[0] != num_nodes or not torch.isfinite(features).all():
                raise ControlError(
                    f"SVDProbe: features must be finite with one row per node ({num_nodes}), "
                    f"got shape {tuple(features.shape)}"
                )
            channels.append(self._channel(F.normalize(features, dim=1), adjacency))
        return torch.cat(channels, dim=1)

    def node_scores(
        self,
        edge_index: torch.Tensor,
        labels: torch.Tensor,
        labelled,
        features: torch.Tensor | None = None,
        num_classes: int | None = None,
    ) -> torch.Tensor:
        """Class scores ``[N, C]`` from prototypes of the labelled nodes' smoothed SVD states."""
        states = self.embed(edge_index, labels.shape[0], features)
        return class_prototype_scores(states, labels, labelled, num_classes)

    def link_scores(
        self,
        edge_index: torch.Tensor,
        num_nodes: int,
        pairs: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cosine similarity ``[P]`` of the two endpoints' states (``pairs`` int64 ``[2, P]``)."""
        states = self.embed(edge_index, num_nodes, features)
        return (states[pairs[0]] * states[pairs[1]]).sum(dim=1)


def sample_k_labels_per_class(
    labels: torch.Tensor, candidates, k: int, seed: int, num_classes: int | None = None
) -> torch.Tensor:
    """Pick ``k`` labelled nodes per class among ``candidates`` (deterministic given ``seed``).

    Args:
        labels: int64 ``[N]``, -1 for unlabelled.
        candidates: bool ``[N]`` mask or index of nodes allowed to reveal their label (the
            training split: never validation or test nodes).
        k: labels per class.

    Returns:
        int64 ``[C * k]`` sorted node ids.

    Raises:
        ControlError: a class has fewer than ``k`` candidates.
    """
    index = _labelled_index(candidates, labels.shape[0])
    index = index[labels[index] >= 0]
    num_classes = int(labels[index].max()) + 1 if num_classes is None else int(num_classes)
    generator = torch.Generator().manual_seed(int(seed))
    chosen = []
    for cls in range(num_classes):
        pool = index[labels[index] == cls]
        if pool.numel() < k:
            raise ControlError(
                f"sample_k_labels_per_class: class {cls} has {pool.numel()} candidate node(s), fewer than k={k}; "
                "lower k or widen the candidate split"
            )
        chosen.append(pool[torch.randperm(pool.numel(), generator=generator)[:k]])
    return torch.sort(torch.cat(chosen)).values
