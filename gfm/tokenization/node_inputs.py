"""Universal node inputs: one fixed-width vector per node of any graph, computed before sampling.

:func:`universal_node_inputs` maps every node of any ``Data`` (0 to thousands of feature
columns, PubMed's partial features, directed edges, no edges at all) to a vector of one width
``D`` (:attr:`NodeInputConfig.output_dim`), computed on the **whole** graph under an access
level (``use_features``: with or without node attributes). :func:`attach_node_inputs` then sets
:attr:`~gfm.tokenization.tokenized_graph.TokenizedGraph.node_features` of the tokens of an ego
graph from those whole-graph vectors, so global position and features survive ego-graph
sampling, whichever tokenizer wrote the tokens (both fill ``node_index``).

Layout of a node's vector (defaults: ``S = 32``, ``Wc = 8``, ``Wn = 32``, ``F = Wc + Wn``)::

    [ GraphInputProjector block: structure (S) | log-degree | categorical (Wc) | continuous (Wn) | has_cat | has_cont ]
    [ Â F (F) | Â² F (F) ]                     propagated feature block
    [ roles (7) ]                              structural role

- **Structure channel**: :class:`~gfm.tokenization.input_space.GraphInputProjector`'s
  spectral coordinates of ``D^-1/2 A D^-1/2`` (direction ignored), top ``S`` singular directions
  scaled by their singular values, **sign of each column fixed by its third moment** (so the
  same graph gives the same sign whatever the solver returned), smoothed over two hops and
  row-normalized. The **basis is not aligned across graphs** (column j of two graphs are
  unrelated directions, and inside a repeated singular value the basis is arbitrary): the
  in-context model (:mod:`gfm.modeling.in_context`) therefore reads spectral information
  mainly through rotation-invariant evidence (ridge fits and prototype cosines computed inside
  the target graph, which depend only on inner products) and through basis-free
  channels (degree propagated over ``Â``, PageRank, clustering).
- **Feature channel**: the projector's hashed categorical block and standardized, PCA-reduced
  continuous block (``F`` columns whatever the input width; zeros and ``has_* = 0`` without
  features or under a structure-only access), then propagated: ``Â F`` and ``Â² F`` with
  ``Â = (D + I)^-1/2 (A + I) (D + I)^-1/2``.
- **Structural-role channel** (:data:`ROLE_COLUMNS`): mean neighbour log-degree, clustering
  coefficient, ``log(N PageRank)``, and the random-walk / propagated encodings ``Â^k log(1 +
  degree)`` for ``k = 1, 2, 3``; standardized over the graph's nodes. Clustering is exact up to
  ``exact_triangle_budget`` two-paths (``sum_i d_i^2``) and estimated from ``triangle_samples``
  seeded neighbour pairs per node beyond that (hub-heavy social graphs).

The **evidence channels** of the in-context model (:func:`evidence_channels`) come from the
same whole-graph pass: a feature base (unit-norm feature rows, reduced to at most
``evidence_feature_rank`` columns by a seeded randomized SVD, which keeps the row inner products
a ridge fit reads), a structure base (``U S`` of rank ``evidence_structure_rank`` of the
self-looped normalized adjacency), each propagated as ``B, ÂB, Â²B, (I-Â)B, (I-Â)²B``, and the
role block. Everything is label-free, so it applies unchanged to graphs never seen in training.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gfm.utils.errors import GFMError

from .input_space import (
    GraphInputProjector,
    InputSpaceConfig,
    _undirected_simple_edges,
    validate_graph_for_projection,
)
from .tokenized_graph import TokenizedGraph

__all__ = [
    "NodeInputError",
    "NodeInputConfig",
    "ROLE_COLUMNS",
    "EVIDENCE_CHANNELS",
    "NodeInputs",
    "universal_node_inputs",
    "normalized_adjacency_csr",
    "role_features",
    "evidence_channels",
    "attach_node_inputs",
]

logger = logging.getLogger(__name__)

#: Columns of the structural-role block, in order.
ROLE_COLUMNS = ("mean_neighbor_log_degree", "clustering", "log_pagerank", "A1_log_degree", "A2_log_degree",
                "A3_log_degree", "log_degree")

#: Evidence channels of :func:`evidence_channels`, in order (``feat:*`` absent without features).
EVIDENCE_CHANNELS = tuple(f"{base}:{op}" for base in ("feat", "struct") for op in ("X", "AX", "A2X", "(I-A)X", "(I-A)2X")) \
    + ("roles",)


class NodeInputError(GFMError, ValueError):
    """A graph cannot be turned into node inputs, or token ids and node ids disagree."""


@dataclass
class NodeInputConfig:
    """Hyper-parameters of the universal node inputs (all label-free, fixed before any evaluation).

    Attributes:
        structure_dim / categorical_width / continuous_width / smoothing_hops: the
            :class:`~gfm.tokenization.input_space.InputSpaceConfig` block.
        evidence_feature_rank: feature base width of the evidence channels (randomized SVD above it).
        evidence_structure_rank: rank of the spectral base of the evidence channels.
        exact_triangle_budget: exact clustering while ``sum(degree^2)`` is at most this.
        triangle_samples: neighbour pairs sampled per node beyond it.
        pagerank_iterations: power iterations of PageRank (damping 0.85).
        seed: seeds every randomized step (SVDs, triangle sampling).
    """

    structure_dim: int = 32
    categorical_width: int = 8
    continuous_width: int = 32
    smoothing_hops: int = 2
    evidence_feature_rank: int = 256
    evidence_structure_rank: int = 128
    exact_triangle_budget: int = 20_000_000
    triangle_samples: int = 32
    pagerank_iterations: int = 30
    seed: int = 0

    def input_space(self) -> InputSpaceConfig:
        return InputSpaceConfig(structure_dim=self.structure_dim, categorical_width=self.categorical_width,
                                continuous_width=self.continuous_width, smoothing_hops=self.smoothing_hops,
                                seed=self.seed)

    @property
    def feature_width(self) -> int:
        return self.categorical_width + self.continuous_width

    @property
    def output_dim(self) -> int:
        """``D``: projector block + two propagated feature blocks + roles."""
        return self.input_space().output_dim + 2 * self.feature_width + len(ROLE_COLUMNS)

    def slices(self) -> dict[str, slice]:
        """Column ranges of each block inside the ``D``-wide vector."""
        base = self.input_space()
        out = dict(base.slices())
        start = base.output_dim
        for name in ("A1_features", "A2_features"):
            out[name] = slice(start, start + self.feature_width)
            start += self.feature_width
        out["roles"] = slice(start, start + len(ROLE_COLUMNS))
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NodeInputs:
    """The whole graph's node vectors and what produced them.

    Attributes:
        vectors: float32 ``[N, D]``.
        has_features: the access showed node features and the graph has some.
        slices: block name -> column range (:meth:`NodeInputConfig.slices`).
    """

    vectors: torch.Tensor
    has_features: bool
    slices: dict[str, slice] = field(default_factory=dict)


def _self_looped_weights(edges: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edges with self-loops [2, E + N], weights)`` of ``(D + I)^-1/2 (A + I) (D + I)^-1/2``."""
    loops = torch.arange(num_nodes).repeat(2, 1)
    full = torch.cat([edges, loops], dim=1)
    deg = torch.zeros(num_nodes).index_add_(0, full[0], torch.ones(full.shape[1]))
    inv = deg.rsqrt()
    return full, inv[full[0]] * inv[full[1]]


def normalized_adjacency_csr(graph: Data) -> torch.Tensor:
    """``Â = (D + I)^-1/2 (A + I) (D + I)^-1/2`` of the undirected simple graph, sparse CSR ``[N, N]``.

    Directed graphs are symmetrized; duplicate edges and self-loops of the input are merged.
    """
    num_nodes = int(graph.num_nodes)
    edges, weights = _self_looped_weights(_undirected_simple_edges(graph), num_nodes)
    return torch.sparse_coo_tensor(edges, weights, (num_nodes, num_nodes), check_invariants=False).coalesce().to_sparse_csr()


def _edge_keys(edges: torch.Tensor, num_nodes: int) -> torch.Tensor:
    return torch.sort(edges[0] * num_nodes + edges[1]).values


def _triangles(edges: torch.Tensor, degree: torch.Tensor, num_nodes: int, config: NodeInputConfig) -> torch.Tensor:
    """Triangles through each node ``[N]``: exact (sparse ``A ∘ A²``) or a seeded pair-sampling estimate."""
    if float((degree.double() ** 2).sum()) <= config.exact_triangle_budget:
        adjacency = torch.sparse_coo_tensor(edges, torch.ones(edges.shape[1]), (num_nodes, num_nodes),
                                            check_invariants=False).coalesce()
        closed = (adjacency * torch.sparse.mm(adjacency, adjacency)).coalesce()
        return torch.zeros(num_nodes).index_add_(0, closed.indices()[0], closed.values()) / 2
    # estimate: for each node draw m neighbour pairs (with replacement) and test whether they are linked
    generator = torch.Generator().manual_seed(config.seed)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(degree.long(), 0)
    m = config.triangle_samples
    nodes = torch.arange(num_nodes).repeat_interleave(m)
    deg = degree.long()[nodes].clamp(min=1)
    first = (torch.rand(nodes.numel(), generator=generator) * deg).long()
    second = (torch.rand(nodes.numel(), generator=generator) * deg).long()
    a = edges[1][(rowptr[nodes] + first).clamp(max=max(edges.shape[1] - 1, 0))]
    b = edges[1][(rowptr[nodes] + second).clamp(max=max(edges.shape[1] - 1, 0))]
    keys = _edge_keys(edges, num_nodes)
    query = a * num_nodes + b
    position = torch.searchsorted(keys, query).clamp(max=max(keys.numel() - 1, 0))
    linked = (keys[position] == query) & (a != b) & (degree[nodes] >= 2)
    fraction = torch.zeros(num_nodes).index_add_(0, nodes, linked.float()) / m
    # a pair of distinct neighbours is drawn with probability (d - 1) / d; rescale to the clustering coefficient
    d = degree.clamp(min=2)
    clustering = fraction * d / (d - 1)
    return clustering * degree * (degree - 1) / 2


def role_features(graph: Data, config: NodeInputConfig | None = None) -> torch.Tensor:
    """Standardized structural-role block ``[N, len(ROLE_COLUMNS)]`` (see the module docstring)."""
    config = config or NodeInputConfig()
    num_nodes = int(graph.num_nodes)
    edges = _undirected_simple_edges(graph)
    src, dst = edges
    degree = torch.zeros(num_nodes).index_add_(0, src, torch.ones(src.numel()))
    log_deg = torch.log1p(degree)
    mean_nb = torch.zeros(num_nodes).index_add_(0, src, log_deg[dst]) / degree.clamp(min=1)
    triangles = _triangles(edges, degree, num_nodes, config)
    possible = degree * (degree - 1)
    clustering = torch.where(possible > 0, 2 * triangles / possible.clamp(min=1), torch.zeros(num_nodes)).clamp(0, 1)
    rank = torch.full((num_nodes,), 1.0 / num_nodes, dtype=torch.float64)
    out_weight = (1.0 / degree.double().clamp(min=1))[src]
    dangling = degree == 0
    for _ in range(config.pagerank_iterations):
        spread = torch.zeros(num_nodes, dtype=torch.float64).index_add_(0, dst, rank[src] * out_weight)
        rank = 0.85 * (spread + rank[dangling].sum() / num_nodes) + 0.15 / num_nodes
    full, weights = _self_looped_weights(edges, num_nodes)
    propagated, current = [], log_deg
    for _ in range(3):
        current = torch.zeros(num_nodes).index_add_(0, full[1], current[full[0]] * weights)
        propagated.append(current)
    columns = torch.stack([mean_nb, clustering, torch.log(rank * num_nodes).float(), *propagated, log_deg], dim=1)
    centre, scale = columns.mean(dim=0), columns.std(dim=0, unbiased=False)
    return torch.where(scale > 1e-9, (columns - centre) / scale.clamp(min=1e-9), torch.zeros_like(columns))


def _visible(graph: Data, use_features: bool) -> Data:
    out = Data(edge_index=graph.edge_index if graph.edge_index is not None else torch.zeros(2, 0, dtype=torch.long),
               num_nodes=int(graph.num_nodes))
    for key in ("directed", "domain", "name", "feature_schema"):
        if getattr(graph, key, None) is not None:
            out[key] = getattr(graph, key)
    if use_features:
        for key in ("x", "x_cont"):
            if isinstance(getattr(graph, key, None), torch.Tensor):
                out[key] = getattr(graph, key)
    return out


def universal_node_inputs(
    graph: Data, use_features: bool = True, config: NodeInputConfig | None = None, name: str | None = None
) -> NodeInputs:
    """The whole graph's node vectors ``[N, D]`` (``D = config.output_dim``), see the module docstring.

    Args:
        graph: any ``Data`` (``x`` / ``x_cont`` of any width or none, directed or not, edgeless allowed).
        use_features: the access shows node attributes; ``False`` zeroes the feature blocks.
        config: the hyper-parameters (defaults: :class:`NodeInputConfig`).
        name: the graph named in errors.

    Raises:
        NodeInputError: the graph fails :func:`~gfm.tokenization.input_space.validate_graph_for_projection`
            (no nodes, bad ``edge_index``, NaN features, ...), message naming graph, field and fix.
    """
    config = config or NodeInputConfig()
    visible = _visible(graph, use_features)
    try:
        validate_graph_for_projection(visible, name)
        projected = GraphInputProjector(config.input_space()).transform(visible, name)
    except GFMError as error:
        raise NodeInputError(f"universal_node_inputs: {error}") from error
    slices = config.slices()
    feature_block = torch.cat([projected[:, slices["categorical"]], projected[:, slices["continuous"]]], dim=1)
    adjacency = normalized_adjacency_csr(visible)
    a1 = adjacency @ feature_block
    a2 = adjacency @ a1
    roles = role_features(visible, config)
    vectors = torch.cat([projected, a1, a2, roles], dim=1).float().contiguous()
    has_features = bool(projected[:, slices["has_categorical"]].any() or projected[:, slices["has_continuous"]].any())
    return NodeInputs(vectors=vectors, has_features=has_features, slices=slices)


def _feature_base(graph: Data, rank: int, seed: int) -> torch.Tensor | None:
    """Unit-norm feature rows ``[N, min(F, rank)]`` (randomized SVD ``U S`` above ``rank``), or ``None``."""
    parts = []
    x = getattr(graph, "x", None)
    if isinstance(x, torch.Tensor) and x.numel():
        if x.is_floating_point():
            parts.append(x.float().view(int(graph.num_nodes), -1))
        else:  # integer (categorical) columns: the projector's hashed block
            parts.append(GraphInputProjector().categorical_channel(graph)[0])
    if isinstance(getattr(graph, "x_cont", None), torch.Tensor):
        parts.append(graph.x_cont.float().view(int(graph.num_nodes), -1))
    if not parts:
        return None
    base = F.normalize(torch.cat(parts, dim=1), dim=1)
    if base.shape[1] > rank:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            left, singular, _ = torch.svd_lowrank(base, q=rank, niter=4)
        base = left * singular
    return base


def _structure_base(adjacency: torch.Tensor, num_nodes: int, rank: int, seed: int) -> torch.Tensor:
    rank = min(rank, num_nodes - 1)
    if rank < 1:
        return torch.zeros(num_nodes, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        left, singular, _ = torch.svd_lowrank(adjacency, q=rank, niter=4)
    return left * singular


def evidence_channels(
    graph: Data, use_features: bool = True, config: NodeInputConfig | None = None,
    adjacency: torch.Tensor | None = None, roles: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Label-free channel matrices the in-context model fits its per-episode evidence on.

    Returns:
        ``{channel: float32 [N, F_channel]}`` for the channels of :data:`EVIDENCE_CHANNELS` that
        exist (the ``feat:*`` ones only when ``use_features`` and the graph has features).
    """
    config = config or NodeInputConfig()
    visible = _visible(graph, use_features)
    num_nodes = int(visible.num_nodes)
    adjacency = normalized_adjacency_csr(visible) if adjacency is None else adjacency
    bases = {}
    feature = _feature_base(visible, config.evidence_feature_rank, config.seed) if use_features else None
    if feature is not None and bool(feature.abs().sum() > 0):
        bases["feat"] = feature
    bases["struct"] = _structure_base(adjacency, num_nodes, config.evidence_structure_rank, config.seed)
    out = {}
    for name, base in bases.items():
        ax = adjacency @ base
        a2x = adjacency @ ax
        out.update({f"{name}:X": base, f"{name}:AX": ax, f"{name}:A2X": a2x, f"{name}:(I-A)X": base - ax,
                    f"{name}:(I-A)2X": base - 2 * ax + a2x})
    out["roles"] = role_features(visible, config) if roles is None else roles
    return {key: value.float().contiguous() for key, value in out.items()}


def attach_node_inputs(tokenized: TokenizedGraph, node_ids: torch.Tensor, vectors: torch.Tensor,
                       name: str = "ego graph") -> TokenizedGraph:
    """Set ``tokenized.node_features`` from the whole graph's vectors (in place; returns it).

    Token ``t`` with ``node_index[t] = j >= 0`` stands for node ``j`` of the sampled graph, which
    is node ``node_ids[j]`` of the whole graph (an ego graph's ``n_id``); it gets
    ``vectors[node_ids[j]]``. Tokens of no node get zeros. Works for both tokenizers (both fill
    ``node_index``).

    Args:
        tokenized: the tokens of one sampled graph.
        node_ids: int64 ``[n]`` whole-graph id of each sampled node.
        vectors: float ``[N, D]`` whole-graph vectors (:func:`universal_node_inputs`).

    Raises:
        NodeInputError: a token names a node outside ``node_ids``, or ``node_ids`` outside ``vectors``.
    """
    node_ids = torch.as_tensor(node_ids, dtype=torch.long).view(-1)
    index = tokenized.node_index
    if index.numel() and int(index.max()) >= node_ids.numel():
        raise NodeInputError(
            f"{name}: a token stands for sampled node {int(index.max())} but only {node_ids.numel()} node ids were "
            "given; pass the sampled graph's n_id (one whole-graph id per sampled node)")
    if node_ids.numel() and (int(node_ids.min()) < 0 or int(node_ids.max()) >= vectors.shape[0]):
        raise NodeInputError(
            f"{name}: node id {int(node_ids.max())} is outside the whole graph's {vectors.shape[0]} vectors; pass the "
            "vectors of the graph the ego graph was sampled from")
    features = torch.zeros(index.numel(), vectors.shape[1], dtype=torch.float32)
    has = index >= 0
    features[has] = vectors[node_ids[index[has]]].float()
    tokenized.node_features = features
    return tokenized
