"""One shared input space for every graph: any feature width, with or without features.

:class:`GraphInputProjector` maps the nodes of any ``torch_geometric.data.Data`` to vectors of
one fixed width ``D`` so that a single encoder serves molecules (9 categorical atom columns),
citation graphs (thousands of bag-of-words columns), social networks and knowledge graphs
(no features at all). Everything is label-free, so it applies unchanged to graphs never seen
in training.

Layout of a node's vector (``S = structure_dim``, ``Wc = categorical_width``,
``Wn = continuous_width``; ``D = S + 1 + Wc + Wn + 2``)::

    [ structure (S) | log-degree (1) | categorical (Wc) | continuous (Wn) | has_cat | has_cont ]

Structure channel
    The symmetric normalized adjacency ``D^-1/2 A D^-1/2`` (edge direction and self-loops
    ignored, duplicate edges merged) is factorized: exactly with ``torch.linalg.eigh`` for
    graphs of at most ``exact_eigen_max_nodes`` nodes, otherwise with the randomized
    ``torch.svd_lowrank`` (seeded through a forked RNG, so the result never depends on the
    global random state). The top ``r = min(structure_dim, N)`` singular directions are kept
    and scaled by their singular values; **a graph with fewer nodes than ``structure_dim``
    (molecules: 5-50 nodes) has rank at most N, and the remaining columns are zeros**. Each
    column's sign is fixed by the sign of its third moment (``sum(u**3) > 0``; the first
    largest-magnitude entry breaks exact ties), then the embedding is smoothed without
    parameters over ``smoothing_hops`` hops (the mean of ``Â^k Z`` for ``k = 0..K`` with the
    self-looped GCN normalization ``Â``) and each row is L2-normalized. Singular values that
    repeat (symmetric molecules) leave the basis of their subspace arbitrary: the output is
    deterministic but not invariant to node relabelling inside such a subspace.

Degree
    ``log2(1 + degree) / 10`` (distinct undirected neighbours).

Feature channel
    * Categorical columns (an integer ``x``, as ``from_smiles`` gives) are encoded by signed
      feature hashing: each ``(column, value)`` pair goes to one of ``Wc`` buckets with a sign
      taken from a fixed 64-bit mix (SplitMix64) of the pair, so the encoding is parameter-free,
      fixed-width and identical for every graph that uses the same columns; the block is
      divided by ``sqrt(k)`` (unit norm without collisions).
    * Continuous columns (a floating ``x`` and/or ``x_cont``) are standardized per column and,
      when wider than ``Wn``, projected on their top ``Wn`` principal directions (signs fixed
      like the structure channel); narrower inputs are zero-padded. The block is divided by its
      root-mean-square row norm and clipped to ``±clip_value``. The statistics (mean, scale,
      basis, row scale) come from:

        - the corpus, for a *feature schema* fitted by :meth:`GraphInputProjector.fit` on at
          least two graphs (datasets of many small graphs: molecules, proteins); these are the
          saved "fitted statistics";
        - the graph itself otherwise (single large graphs such as Cora, and any graph whose
          schema was never fitted: a feature width never seen in training). This is how an
          unseen width encodes without retraining. Pass the whole graph, not a subgraph: the
          statistics of a subgraph differ.

      The schema key is ``graph.feature_schema`` when set, else
      ``"<domain>|cat<k>|cont<F>"`` (for example ``"molecules|cat9|cont0"``).
    * A graph without features gets zeros in both blocks and ``has_cat = has_cont = 0``.

A graph without edges (a single atom, an edgeless point cloud) is valid: its structure channel
and degree are zeros, its feature channel is computed as usual (documented, tested).
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch_geometric.data import Data

from gfm.utils.errors import GFMError

from .base import content_hash

__all__ = [
    "GraphInputProjector",
    "InputSpaceConfig",
    "InputSpaceError",
    "ContinuousStatistics",
    "INPUT_SPACE_FILE",
    "feature_schema_key",
    "graph_display_name",
]

logger = logging.getLogger(__name__)

#: file name of a saved projector inside a tokenizer directory
INPUT_SPACE_FILE = "input_space.safetensors"
_FORMAT_VERSION = 1


class InputSpaceError(GFMError, ValueError):
    """A graph cannot be projected into the shared input space, or a saved projector is bad."""


@dataclass
class InputSpaceConfig:
    """Hyper-parameters of the shared input space (all label-free).

    Attributes:
        structure_dim: columns of the structure channel (top singular directions kept).
        smoothing_hops: hops of parameter-free smoothing applied to the structure channel.
        categorical_width: buckets of the hashed categorical block.
        continuous_width: width of the continuous block (principal directions kept).
        exact_eigen_max_nodes: graphs up to this size use an exact dense ``eigh``; larger
            ones use the randomized ``torch.svd_lowrank``.
        svd_niter: subspace iterations of ``torch.svd_lowrank``.
        svd_oversample: extra columns of the randomized range finder.
        std_floor: lower bound of a column's scale when standardizing continuous features.
        clip_value: continuous block entries are clipped to ``[-clip_value, clip_value]``.
        max_fit_nodes: at most this many nodes (sampled with ``seed``) fit one schema.
        seed: seed of the randomized SVD and of node sampling during fitting.
    """

    structure_dim: int = 32
    smoothing_hops: int = 2
    categorical_width: int = 32
    continuous_width: int = 64
    exact_eigen_max_nodes: int = 512
    svd_niter: int = 4
    svd_oversample: int = 8
    std_floor: float = 1e-3
    clip_value: float = 5.0
    max_fit_nodes: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "structure_dim",
            "categorical_width",
            "continuous_width",
            "exact_eigen_max_nodes",
            "max_fit_nodes",
        ):
            if int(getattr(self, name)) < 1:
                raise InputSpaceError(f"InputSpaceConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.smoothing_hops < 0 or self.svd_niter < 0 or self.svd_oversample < 0:
            raise InputSpaceError(
                "InputSpaceConfig: smoothing_hops, svd_niter and svd_oversample must be >= 0"
            )
        if not self.std_floor > 0 or not self.clip_value > 0:
            raise InputSpaceError("InputSpaceConfig: std_floor and clip_value must be > 0")

    @property
    def output_dim(self) -> int:
        """Width ``D`` of a node's vector."""
        return self.structure_dim + 1 + self.categorical_width + self.continuous_width + 2

    def slices(self) -> dict[str, slice]:
        """Column ranges of each block inside the ``D``-wide vector."""
        s, wc, wn = self.structure_dim, self.categorical_width, self.continuous_width
        return {
            "structure": slice(0, s),
            "log_degree": slice(s, s + 1),
            "categorical": slice(s + 1, s + 1 + wc),
            "continuous": slice(s + 1 + wc, s + 1 + wc + wn),
            "has_categorical": slice(s + 1 + wc + wn, s + 2 + wc + wn),
            "has_continuous": slice(s + 2 + wc + wn, s + 3 + wc + wn),
        }


@dataclass
class ContinuousStatistics:
    """Fitted statistics of one feature schema's continuous columns.

    Attributes:
        mean: float32 ``[F]`` column means.
        scale: float32 ``[F]`` column scales (standard deviation, floored).
        basis: float32 ``[F, W]`` principal directions when ``F > W``, else ``None`` (zero-pad).
        row_scale: root-mean-square row norm of the projected block on the fitting nodes.
        num_graphs: graphs the statistics were fitted on.
        num_nodes: nodes used for fitting.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    basis: torch.Tensor | None
    row_scale: float
    num_graphs: int
    num_nodes: int

    @property
    def input_width(self) -> int:
        return int(self.mean.numel())


def graph_display_name(graph: Data, name: str | None = None) -> str:
    """How error messages call a graph: ``name``, else ``graph.name``, else ``"graph"``."""
    if name:
        return name
    value = getattr(graph, "name", None)
    return f"graph {value!r}" if value is not None else "graph"


def _categorical_matrix(graph: Data) -> torch.Tensor | None:
    x = getattr(graph, "x", None)
    if x is None or x.is_floating_point() or x.dtype == torch.bool:
        if x is not None and x.dtype == torch.bool:
            return x.long().reshape(x.shape[0], -1)
        return None
    return x.reshape(x.shape[0], -1).long()


def _continuous_matrix(graph: Data) -> torch.Tensor | None:
    parts = []
    x = getattr(graph, "x", None)
    if x is not None and x.is_floating_point():
        parts.append(x.reshape(x.shape[0], -1).float())
    x_cont = getattr(graph, "x_cont", None)
    if x_cont is not None:
        parts.append(x_cont.reshape(x_cont.shape[0], -1).float())
    if not parts:
        return None
    return torch.cat(parts, dim=1)


def feature_schema_key(graph: Data) -> str:
    """The key under which a graph's continuous-feature statistics are fitted and looked up."""
    explicit = getattr(graph, "feature_schema", None)
    if explicit:
        return str(explicit)
    categorical = _categorical_matrix(graph)
    continuous = _continuous_matrix(graph)
    k = 0 if categorical is None else categorical.shape[1]
    f = 0 if continuous is None else continuous.shape[1]
    return f"{getattr(graph, 'domain', None) or 'unknown'}|cat{k}|cont{f}"


def validate_graph_for_projection(graph: Data, name: str | None = None) -> str:
    """Check the fields the projector reads; raise :class:`InputSpaceError` naming graph and field.

    Returns:
        the display name used in messages.
    """
    label = graph_display_name(graph, name)
    if not isinstance(graph, Data):
        raise InputSpaceError(f"{label}: expected a torch_geometric.data.Data, got {type(graph).__name__}")
    num_nodes = graph.num_nodes
    if num_nodes is None or int(num_nodes) <= 0:
        raise InputSpaceError(
            f"{label}: the graph has no nodes (num_nodes={num_nodes}); drop it from the input"
        )
    num_nodes = int(num_nodes)
    edge_index = getattr(graph, "edge_index", None)
    if edge_index is not None and edge_index.numel():
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise InputSpaceError(
                f"{label}: edge_index must have shape [2, E], got {tuple(edge_index.shape)}"
            )
        if edge_index.is_floating_point():
            raise InputSpaceError(f"{label}: edge_index must be int64, got {edge_index.dtype}")
        if int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes:
            raise InputSpaceError(
                f"{label}: edge_index refers to node {int(edge_index.max())} (or a negative one) but num_nodes is "
                f"{num_nodes}; set num_nodes to the node count or fix edge_index"
            )
        if not bool(getattr(graph, "directed", False)) and not _is_symmetric(edge_index, num_nodes):
            raise InputSpaceError(
                f"{label}: edge_index is not symmetric and the graph is not marked directed; add the reverse "
                "edges (torch_geometric.utils.to_undirected) or set data.directed = True"
            )
    for field_name in ("x", "x_cont"):
        value = getattr(graph, field_name, None)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise InputSpaceError(
                f"{label}: field '{field_name}' must be a tensor, got {type(value).__name__}"
            )
        if value.shape[0] != num_nodes:
            raise InputSpaceError(
                f"{label}: field '{field_name}' has {value.shape[0]} rows but the graph has {num_nodes} nodes"
            )
        if value.is_floating_point():
            finite = torch.isfinite(value.reshape(num_nodes, -1))
            if not bool(finite.all()):
                row, col = (~finite).nonzero()[0].tolist()
                kind = "NaN" if math.isnan(float(value.reshape(num_nodes, -1)[row, col])) else "infinite"
                article = "a" if kind == "NaN" else "an"
                raise InputSpaceError(
                    f"{label}: field '{field_name}' holds {article} {kind} value at node {row}, column {col} "
                    f"({int((~finite).sum())} non-finite entries); impute or drop them before tokenizing"
                )
    return label


def _undirected_simple_edges(graph: Data) -> torch.Tensor:
    """Edges without self-loops or duplicates, both directions, sorted by (source, target): ``[2, E']``.

    A directed graph (``graph.directed``) is symmetrized: the input space ignores direction.
    """
    num_nodes = int(graph.num_nodes)
    edge_index = getattr(graph, "edge_index", None)
    if edge_index is None or edge_index.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long)
    source, target = edge_index[0].long(), edge_index[1].long()
    if bool(getattr(graph, "directed", False)):
        source, target = torch.cat([source, target]), torch.cat([target, source])
    keep = source != target
    keys = torch.unique(source[keep] * num_nodes + target[keep])
    return torch.stack([keys // num_nodes, keys % num_nodes])


def _is_symmetric(edge_index: torch.Tensor, num_nodes: int) -> bool:
    """Whether every edge ``(u, v)`` has its reverse ``(v, u)`` (duplicates ignored)."""
    source, target = edge_index[0].long(), edge_index[1].long()
    return torch.equal(torch.unique(source * num_nodes + target), torch.unique(target * num_nodes + source))


def _column_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Sign per column that makes its third moment positive (largest-magnitude entry breaks ties).

    Args:
        vectors: float ``[N, r]``.

    Returns:
        float ``[r]`` of ``+1`` / ``-1``.
    """
    if vectors.numel() == 0:
        return torch.ones(vectors.shape[1], dtype=vectors.dtype)
    third = (vectors.double() ** 3).sum(dim=0)
    norm3 = vectors.double().abs().pow(3).sum(dim=0).clamp_min(1e-300)
    largest = vectors.abs().argmax(dim=0)
    tie_sign = torch.sign(vectors[largest, torch.arange(vectors.shape[1])]).double()
    sign = torch.where((third.abs() / norm3) > 1e-6, torch.sign(third), tie_sign)
    return torch.where(sign == 0, torch.ones_like(sign), sign).to(vectors.dtype)


def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """``vectors`` ``[N, r]`` with each column flipped by :func:`_column_signs`."""
    return vectors * _column_signs(vectors)


def _hash_pairs(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """SplitMix64 of ``(column, value)`` pairs: uint64 array of the broadcast shape."""
    with np.errstate(over="ignore"):
        z = (columns.astype(np.uint64) << np.uint64(40)) ^ values.astype(np.int64).view(np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class GraphInputProjector:
    """Project any graph's nodes into one fixed-width, label-free input space.

    Example::

        projector = GraphInputProjector(InputSpaceConfig()).fit(molecule_graphs)
        inputs = projector.transform(graph)        # float32 [N, projector.output_dim]
        projector.save("tok/input_space.safetensors")
        same = GraphInputProjector.load("tok/input_space.safetensors")
    """

    def __init__(self, config: InputSpaceConfig | None = None) -> None:
        self.config = config or InputSpaceConfig()
        #: fitted continuous statistics per feature schema key (multi-graph schemas only)
        self.continuous_stats: dict[str, ContinuousStatistics] = {}

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    # ------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------
    def fit(
        self, graphs: Iterable[Data], min_graphs: int = 2, names: Iterable[str] | None = None
    ) -> GraphInputProjector:
        """Fit continuous-feature statistics per feature schema on a corpus (label-free).

        Schemas seen in fewer than ``min_graphs`` graphs are not stored: such graphs (a single
        large graph) are always projected with statistics fitted on themselves, which gives the
        same result. Refitting a schema that is already fitted raises (no silent overwrite).

        Args:
            graphs: the corpus (any iterable of ``Data``).
            min_graphs: least number of graphs for a schema to be stored.
            names: optional name of each graph for error messages.
        """
        groups: dict[str, list[torch.Tensor]] = defaultdict(list)
        name_iter = iter(names) if names is not None else None
        for index, graph in enumerate(graphs):
            label = (
                next(name_iter)
                if name_iter is not None
                else f"{graph_display_name(graph)} (corpus item {index})"
            )
            validate_graph_for_projection(graph, label)
            continuous = _continuous_matrix(graph)
            if continuous is not None and continuous.shape[1] > 0:
                groups[feature_schema_key(graph)].append(continuous)
        for key in sorted(groups):
            matrices = groups[key]
            if len(matrices) < min_graphs:
                continue
            if key in self.continuous_stats:
                raise InputSpaceError(
                    f"feature schema {key!r} is already fitted; build a new GraphInputProjector to refit it, or "
                    "set graph.feature_schema to a new key for a different feature layout"
                )
            widths = {m.shape[1] for m in matrices}
            if len(widths) > 1:
                raise InputSpaceError(
                    f"feature schema {key!r}: graphs have different continuous widths {sorted(widths)}; "
                    "set graph.feature_schema to tell the layouts apart"
                )
            self.continuous_stats[key] = self._fit_continuous(
                torch.cat(matrices, dim=0), num_graphs=len(matrices)
            )
            logger.info(
                "input space: fitted schema %r on %d graphs (%d nodes, width %d)",
                key,
                len(matrices),
                self.continuous_stats[key].num_nodes,
                next(iter(widths)),
            )
        return self

    def _fit_continuous(self, matrix: torch.Tensor, num_graphs: int) -> ContinuousStatistics:
        """Statistics of a continuous matrix ``[n, F]`` (rows sampled down to ``max_fit_nodes``)."""
        cfg = self.config
        if matrix.shape[0] > cfg.max_fit_nodes:
            generator = torch.Generator().manual_seed(cfg.seed)
            rows = torch.randperm(matrix.shape[0], generator=generator)[: cfg.max_fit_nodes].sort().values
            matrix = matrix[rows]
        matrix = matrix.double()
        mean = matrix.mean(dim=0)
        scale = matrix.std(dim=0, unbiased=False).clamp_min(cfg.std_floor)
        standardized = (matrix - mean) / scale
        basis = None
        width = matrix.shape[1]
        if width > cfg.continuous_width:
            basis = self._principal_directions(standardized, cfg.continuous_width)
            projected = standardized @ basis
        else:
            projected = standardized
        row_scale = float(projected.pow(2).sum(dim=1).mean().sqrt())
        if not row_scale > 1e-12:
            row_scale = 1.0
        return ContinuousStatistics(
            mean=mean.float(),
            scale=scale.float(),
            basis=None if basis is None else basis.float(),
            row_scale=row_scale,
            num_graphs=num_graphs,
            num_nodes=int(matrix.shape[0]),
        )

    def _principal_directions(self, standardized: torch.Tensor, width: int) -> torch.Tensor:
        """Top ``width`` right singular vectors of a centred matrix, signs fixed: ``[F, width]``.

        A matrix of rank below ``width`` (fewer rows than ``width``) gives zero columns.
        """
        cfg = self.config
        n, f = standardized.shape
        rank = min(width, n, f)
        if min(n, f) <= max(4 * width, 1024):
            _, _, vh = torch.linalg.svd(standardized, full_matrices=False)
            directions = vh[:rank].T
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                _, _, v = torch.svd_lowrank(
                    standardized, q=min(width + cfg.svd_oversample, n, f), niter=cfg.svd_niter
                )
            directions = v[:, :rank]
        # The sign of each direction is fixed on the projected scores (third moment positive).
        directions = directions * _column_signs(standardized @ directions)
        if rank < width:
            directions = torch.cat([directions, directions.new_zeros(f, width - rank)], dim=1)
        return directions

    # ------------------------------------------------------------------------------------
    # transform
    # ------------------------------------------------------------------------------------
    def transform(self, graph: Data, name: str | None = None) -> torch.Tensor:
        """The shared input-space vectors of every node.

        Args:
            graph: a ``Data`` (see ``docs/CONTRACTS.md`` section 1).
            name: how to call the graph in error messages.

        Returns:
            float32 ``[N, output_dim]``.
        """
        return self.transform_with_edges(graph, name)[0]

    def transform_with_edges(self, graph: Data, name: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`transform` plus the simple undirected edges it used: ``([N, D], int64 [2, E'])``."""
        label = validate_graph_for_projection(graph, name)
        edges = _undirected_simple_edges(graph)
        structure, log_degree = self.structure_channel(graph, edges)
        categorical, has_categorical = self.categorical_channel(graph)
        continuous, has_continuous = self.continuous_channel(graph, label)
        num_nodes = int(graph.num_nodes)
        flags = torch.tensor([float(has_categorical), float(has_continuous)]).expand(num_nodes, 2)
        inputs = (
            torch.cat([structure, log_degree, categorical, continuous, flags], dim=1).float().contiguous()
        )
        return inputs, edges

    @staticmethod
    def _normalized_adjacency(edges: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(degree [N], weights [E])`` of ``D^-1/2 A D^-1/2`` (float64) for simple undirected edges."""
        degree = torch.zeros(num_nodes, dtype=torch.float64)
        degree.index_add_(0, edges[0], torch.ones(edges.shape[1], dtype=torch.float64))
        inv_sqrt = torch.where(degree > 0, degree.clamp_min(1).rsqrt(), torch.zeros_like(degree))
        return degree, inv_sqrt[edges[0]] * inv_sqrt[edges[1]]

    def _exact_embedding(self, values: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Top ``min(S, N)`` eigenvectors by ``|eigenvalue|`` (larger eigenvalue first on ties), scaled."""
        rank = min(self.config.structure_dim, values.numel())
        by_value = torch.sort(values, descending=True, stable=True).indices
        by_magnitude = torch.sort(
            values[by_value].abs().round(decimals=10), descending=True, stable=True
        ).indices
        order = by_value[by_magnitude][:rank]
        return vectors[:, order] * values[order].abs()

    def structure_channel(
        self, graph: Data, edges: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Structure block ``[N, S]`` and log-degree ``[N, 1]`` (float32); zeros without edges.

        Args:
            edges: the graph's simple undirected edges when already computed.
        """
        cfg = self.config
        num_nodes = int(graph.num_nodes)
        if edges is None:
            edges = _undirected_simple_edges(graph)
        degree, weights = self._normalized_adjacency(edges, num_nodes)
        structure = torch.zeros(num_nodes, cfg.structure_dim, dtype=torch.float64)
        if edges.shape[1] == 0:
            return structure.float(), degree.unsqueeze(1).float()
        rank = min(cfg.structure_dim, num_nodes)
        if num_nodes <= cfg.exact_eigen_max_nodes:
            dense = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
            dense[edges[0], edges[1]] = weights
            embedding = self._exact_embedding(*torch.linalg.eigh(dense))
        else:
            adjacency = torch.sparse_coo_tensor(
                edges, weights, (num_nodes, num_nodes), check_invariants=False
            ).coalesce()
            q = min(rank + cfg.svd_oversample, num_nodes)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                u, s, _ = torch.svd_lowrank(adjacency, q=q, niter=cfg.svd_niter)
            embedding = u[:, :rank] * s[:rank]
        embedding = _fix_signs(embedding)
        embedding = self._smooth(embedding, edges, degree)
        norms = embedding.norm(dim=1, keepdim=True)
        embedding = torch.where(
            norms > 1e-12, embedding / norms.clamp_min(1e-12), torch.zeros_like(embedding)
        )
        structure[:, :rank] = embedding
        log_degree = torch.log2(1.0 + degree) / 10.0
        return structure.float(), log_degree.unsqueeze(1).float()

    def _smooth(self, embedding: torch.Tensor, edges: torch.Tensor, degree: torch.Tensor) -> torch.Tensor:
        """Mean of ``Â^k Z`` for ``k = 0..smoothing_hops`` with ``Â = (D+I)^-1/2 (A+I) (D+I)^-1/2``."""
        hops = self.config.smoothing_hops
        if hops == 0:
            return embedding
        inv_sqrt = (degree + 1.0).rsqrt()
        weights = inv_sqrt[edges[0]] * inv_sqrt[edges[1]]
        self_weight = (inv_sqrt * inv_sqrt).unsqueeze(1)
        current, total = embedding, embedding.clone()
        for _ in range(hops):
            propagated = torch.zeros_like(current).index_add_(
                0, edges[1], current[edges[0]] * weights.unsqueeze(1)
            )
            current = propagated + self_weight * current
            total = total + current
        return total / (hops + 1)

    def categorical_channel(self, graph: Data) -> tuple[torch.Tensor, bool]:
        """Signed-hash block ``[N, Wc]`` of the integer columns of ``x`` and whether any exist."""
        width = self.config.categorical_width
        num_nodes = int(graph.num_nodes)
        categorical = _categorical_matrix(graph)
        if categorical is None or categorical.shape[1] == 0:
            return torch.zeros(num_nodes, width), False
        k = categorical.shape[1]
        values = categorical.numpy()
        columns = np.broadcast_to(np.arange(k, dtype=np.int64), values.shape)
        hashed = _hash_pairs(columns, values)
        buckets = torch.from_numpy((hashed % np.uint64(width)).astype(np.int64))
        signs = torch.from_numpy(((hashed >> np.uint64(63)).astype(np.int64) * 2 - 1).astype(np.float32))
        block = torch.zeros(num_nodes, width)
        block.scatter_add_(1, buckets, signs)
        return block / math.sqrt(k), True

    def continuous_channel(self, graph: Data, label: str = "graph") -> tuple[torch.Tensor, bool]:
        """Projected continuous block ``[N, Wn]`` and whether the graph has continuous columns."""
        cfg = self.config
        num_nodes = int(graph.num_nodes)
        continuous = _continuous_matrix(graph)
        if continuous is None or continuous.shape[1] == 0:
            return torch.zeros(num_nodes, cfg.continuous_width), False
        stats = self.statistics_for(graph, label)
        return self._apply_continuous(continuous, stats), True

    def statistics_for(self, graph: Data, label: str = "graph") -> ContinuousStatistics:
        """The continuous statistics a graph is projected with (fitted schema, else its own)."""
        continuous = _continuous_matrix(graph)
        if continuous is None:
            raise InputSpaceError(f"{label}: has no continuous features")
        key = feature_schema_key(graph)
        stats = self.continuous_stats.get(key)
        if stats is not None:
            if stats.input_width != continuous.shape[1]:
                raise InputSpaceError(
                    f"{label}: feature schema {key!r} was fitted on width {stats.input_width} but the graph has "
                    f"{continuous.shape[1]} continuous columns; set graph.feature_schema to a new key"
                )
            return stats
        logger.debug("input space: %s: schema %r not fitted, using the graph's own statistics", label, key)
        return self._fit_continuous(continuous, num_graphs=1)

    def _apply_continuous(self, continuous: torch.Tensor, stats: ContinuousStatistics) -> torch.Tensor:
        cfg = self.config
        standardized = (continuous.double() - stats.mean.double()) / stats.scale.double()
        if stats.basis is not None:
            projected = standardized @ stats.basis.double()
        else:
            projected = torch.zeros(standardized.shape[0], cfg.continuous_width, dtype=torch.float64)
            projected[:, : standardized.shape[1]] = standardized
        projected = projected / stats.row_scale
        return projected.clamp(-cfg.clip_value, cfg.clip_value).float()

    # ------------------------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------------------------
    def _tensors_and_metadata(self) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
        tensors: dict[str, torch.Tensor] = {}
        schemas = []
        for index, key in enumerate(sorted(self.continuous_stats)):
            stats = self.continuous_stats[key]
            tensors[f"continuous.{index}.mean"] = stats.mean.contiguous()
            tensors[f"continuous.{index}.scale"] = stats.scale.contiguous()
            if stats.basis is not None:
                tensors[f"continuous.{index}.basis"] = stats.basis.contiguous()
            schemas.append(
                {
                    "key": key,
                    "index": index,
                    "row_scale": stats.row_scale,
                    "num_graphs": stats.num_graphs,
                    "num_nodes": stats.num_nodes,
                    "has_basis": stats.basis is not None,
                }
            )
        meta = {"format_version": _FORMAT_VERSION, "config": asdict(self.config), "schemas": schemas}
        return tensors, meta

    @property
    def content_hash(self) -> str:
        """SHA-256 of the configuration and every fitted statistic."""
        tensors, meta = self._tensors_and_metadata()
        blobs = [name.encode() + tensors[name].numpy().tobytes() for name in sorted(tensors)]
        return content_hash(meta, *blobs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the configuration and fitted statistics to one safetensors file (no pickle)."""
        path = Path(path)
        tensors, meta = self._tensors_and_metadata()
        if not tensors:
            # safetensors needs at least a valid header; an empty dict is allowed but keep a marker.
            tensors = {"empty": torch.zeros(0)}
        save_file(
            tensors,
            str(path),
            metadata={"gfm_input_space": json.dumps(meta, sort_keys=True), "content_hash": self.content_hash},
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> GraphInputProjector:
        """Read a projector written by :meth:`save`; raise :class:`InputSpaceError` if it is damaged."""
        path = Path(path)
        if not path.is_file():
            raise InputSpaceError(
                f"{path}: no such file; save the projector with GraphInputProjector.save(path)"
            )
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except Exception as err:  # safetensors raises its own error types
            raise InputSpaceError(
                f"{path}: not a readable safetensors file ({err}); save the projector again"
            ) from err
        if "gfm_input_space" not in metadata:
            raise InputSpaceError(f"{path}: not a gfm input-space file (no 'gfm_input_space' metadata)")
        meta = json.loads(metadata["gfm_input_space"])
        if meta.get("format_version") != _FORMAT_VERSION:
            raise InputSpaceError(
                f"{path}: 'format_version' is {meta.get('format_version')!r}; this gfm reads format_version "
                f"{_FORMAT_VERSION} of this file. A newer gfm wrote it (upgrade gfm: pip install -U gfm) or it was "
                "edited (save the projector or tokenizer again with this gfm)"
            )
        known = sorted(f.name for f in fields(InputSpaceConfig))
        unknown = sorted(set(meta["config"]) - set(known))
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputSpaceError(
                f"{path}: unknown input-space setting {unknown[0]!r}{hint} (all unknown: {unknown}); this gfm reads "
                f"only {known}: save the projector or tokenizer again"
            )
        projector = cls(InputSpaceConfig(**meta["config"]))
        for schema in meta["schemas"]:
            index = schema["index"]
            basis = tensors.get(f"continuous.{index}.basis") if schema["has_basis"] else None
            projector.continuous_stats[schema["key"]] = ContinuousStatistics(
                mean=tensors[f"continuous.{index}.mean"],
                scale=tensors[f"continuous.{index}.scale"],
                basis=basis,
                row_scale=float(schema["row_scale"]),
                num_graphs=int(schema["num_graphs"]),
                num_nodes=int(schema["num_nodes"]),
            )
        stored_hash = metadata.get("content_hash")
        if stored_hash is not None and stored_hash != projector.content_hash:
            raise InputSpaceError(
                f"{path}: content hash mismatch (file says {stored_hash[:12]}..., contents give "
                f"{projector.content_hash[:12]}...); the file is damaged, save the projector again"
            )
        return projector

    def describe(self) -> dict[str, object]:
        """JSON-friendly summary (config and fitted schemas) for tokenizer configs and logs."""
        _, meta = self._tensors_and_metadata()
        return meta
