"""Ego subgraphs of large graphs: k-hop with a neighbour cap, and personalized-PageRank top-k.

Both work on chunks of seed nodes at once with plain torch operations (CSR arrays, sorting,
gathers, ``index_add_``): no Python loop per node on the hot path, memory bounded by the chunk
size. The induced edges of many ego graphs are found with a degree-ordered orientation of the
edges (each edge stored once, at its lower-degree endpoint) and a dense ``[block of egos, N]``
lookup table of local ids. (PyG's ``NeighborLoader`` needs pyg-lib or torch-sparse, which are not
available here; ``torch_geometric.utils.k_hop_subgraph`` has no neighbour cap and works one
seed at a time.) ``gfm.testing.sampling_reference`` holds the slow, obviously correct versions
that the tests compare against.

Determinism. The neighbours kept when a node has more than ``max_neighbors`` are chosen by
Floyd's algorithm (an exact uniform sample without replacement) driven by a counter-based hash
of ``(seed, centre, node, step)``. The sample of a centre therefore depends only on the seed and
the graph - not on the chunk size, the other centres of the chunk, or the process - and the
pure-Python reference reproduces it exactly.

Node order inside an ego graph: the centre first (local index 0), then the other nodes by hop
distance, then by node id. Edges: every edge of the original graph between kept nodes (the
induced subgraph), sorted by local ``(src, dst)`` then original edge id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

__all__ = [
    "CSRGraph",
    "build_csr",
    "EgoBatch",
    "khop_ego_batch",
    "PushBuffers",
    "ppr_push",
    "ppr_scores",
    "ppr_topk",
    "ppr_ego_batch",
    "EgoGraphSampler",
    "hash_keys",
]

logger = logging.getLogger(__name__)

_MASK32 = (1 << 32) - 1


# ------------------------------------------------------------------------------------------
# Counter-based hash (lowbias32), vectorized on int64 tensors without int64 overflow.
# ------------------------------------------------------------------------------------------
def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``(x * constant) mod 2**32`` for ``0 <= x < 2**32`` using 48-bit partial products."""
    high, low = constant >> 16, constant & 0xFFFF
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash_keys(seed: int, *parts: torch.Tensor) -> torch.Tensor:
    """32-bit hash of ``(seed, *parts)`` elementwise; parts are int64 tensors of values < 2**32."""
    h = _mix32(torch.tensor((int(seed) & _MASK32) ^ 0x9E3779B9, dtype=torch.long))
    for part in parts:
        h = _mix32(h ^ (part & _MASK32))
    return h


# ------------------------------------------------------------------------------------------
# CSR
# ------------------------------------------------------------------------------------------
@dataclass
class CSRGraph:
    """Compressed sparse rows: the neighbours of ``v`` are ``col[rowptr[v]:rowptr[v+1]]`` (sorted).

    Attributes:
        rowptr: int64 ``[N + 1]``.
        col: int64 ``[E']`` neighbour ids.
        edge_id: int64 ``[E']`` index of the entry in the original ``edge_index`` (``-1`` for
            reverse entries added by ``direction="both"``).
        num_nodes: ``N``.
    """

    rowptr: torch.Tensor
    col: torch.Tensor
    edge_id: torch.Tensor
    num_nodes: int

    @property
    def degree(self) -> torch.Tensor:
        return self.rowptr[1:] - self.rowptr[:-1]


def build_csr(edge_index: torch.Tensor, num_nodes: int, direction: str = "out") -> CSRGraph:
    """CSR of ``edge_index`` ``[2, E]``.

    Args:
        direction: ``"out"`` (neighbours of ``u`` are the ``v`` of edges ``u -> v``), ``"in"``
            (the ``u`` of edges ``u -> v``), or ``"both"`` (their union, repeated pairs merged;
            for directed graphs).
    """
    src, dst = edge_index[0].long(), edge_index[1].long()
    ids = torch.arange(src.numel(), dtype=torch.long)
    if direction == "in":
        src, dst = dst, src
    elif direction == "both":
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
        ids = torch.cat([ids, torch.full_like(ids, -1)])
        keys = src * num_nodes + dst
        keys, first = _unique_first(keys)
        src, dst, ids = keys // num_nodes, keys % num_nodes, ids[first]
    elif direction != "out":
        raise ValueError(f"direction={direction!r}; use 'out', 'in' or 'both'")
    order = torch.argsort(src * num_nodes + dst, stable=True)
    src, dst, ids = src[order], dst[order], ids[order]
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(src, minlength=num_nodes), 0)
    return CSRGraph(rowptr=rowptr, col=dst, edge_id=ids, num_nodes=num_nodes)


def _unique_first(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique keys and the position of each one's first occurrence."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((unique.numel(),), keys.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(keys.numel()), reduce="amin")
    return unique, first


def _lexsort(*keys: torch.Tensor) -> torch.Tensor:
    """Permutation sorting by ``keys[0]``, then ``keys[1]``, ... (stable; no packed-key overflow)."""
    order = torch.argsort(keys[-1], stable=True)
    for key in reversed(keys[:-1]):
        order = order[torch.argsort(key[order], stable=True)]
    return order


def _expand(rowptr: torch.Tensor, nodes: torch.Tensor, counts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each ``nodes[i]``, the CSR positions ``rowptr[v] .. rowptr[v] + counts[i] - 1``.

    Returns ``(owner [T], position [T])`` where ``owner`` indexes ``nodes``.
    """
    starts = rowptr[nodes]
    if counts is None:
        counts = rowptr[nodes + 1] - starts
    owner = torch.repeat_interleave(torch.arange(nodes.numel()), counts)
    offsets = torch.cumsum(counts, 0) - counts
    position = starts[owner] + torch.arange(owner.numel()) - offsets[owner]
    return owner, position


# ------------------------------------------------------------------------------------------
# k-hop ego graphs with a neighbour cap
# ------------------------------------------------------------------------------------------
@dataclass
class EgoBatch:
    """Ego graphs of a chunk of centres, as flat tensors.

    Attributes:
        centers: int64 ``[S]`` global id of each centre.
        node_ptr: int64 ``[S + 1]``; ego ``i`` owns ``nodes[node_ptr[i]:node_ptr[i+1]]``.
        nodes: int64 ``[sum n_i]`` global node ids (centre first, then by hop, then id).
        hops: int64 ``[sum n_i]`` hop distance of each node from its centre (PPR: 0 for the
            centre, 1 for the others).
        edge_ptr: int64 ``[S + 1]``; ego ``i`` owns ``edge_index[:, edge_ptr[i]:edge_ptr[i+1]]``.
        edge_index: int64 ``[2, sum e_i]`` local node ids within each ego.
        edge_ids: int64 ``[sum e_i]`` column of each edge in the original ``edge_index``.
        weights: optional float32 ``[sum n_i]`` PPR score of each node w.r.t. its centre.
    """

    centers: torch.Tensor
    node_ptr: torch.Tensor
    nodes: torch.Tensor
    hops: torch.Tensor
    edge_ptr: torch.Tensor
    edge_index: torch.Tensor
    edge_ids: torch.Tensor
    weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.centers.numel())

    def ego(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(nodes [n], edge_index [2, e] local, edge_ids [e])`` of ego ``i``."""
        a, b = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        c, d = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return self.nodes[a:b], self.edge_index[:, c:d], self.edge_ids[c:d]


def _floyd_offsets(degree: torch.Tensor, cap: int, seed: int, centre: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
    """Uniform sample of ``cap`` distinct offsets in ``[0, degree)`` per row (Floyd's algorithm).

    Rows are independent; step ``t`` draws ``r = hash(seed, centre, node, j) mod (j + 1)`` for
    ``j = degree - cap + t`` and keeps ``r`` unless already chosen, in which case it keeps ``j``.

    Args:
        degree: int64 ``[B]`` with every value ``> cap``.
    Returns:
        int64 ``[B, cap]`` offsets.
    """
    chosen = torch.empty((degree.numel(), cap), dtype=torch.long)
    for step in range(cap):  # cap iterations, each vectorized over all rows
        j = degree - cap + step
        r = hash_keys(seed, centre, node, j) % (j + 1)
        taken = (chosen[:, :step] == r.unsqueeze(1)).any(1) if step else torch.zeros_like(r, dtype=torch.bool)
        chosen[:, step] = torch.where(taken, j, r)
    return chosen


def _sample_neighbors(
    csr: CSRGraph, owner_centre: torch.Tensor, node: torch.Tensor, cap: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbours of each ``node[i]`` (at most ``cap``), returned as ``(row index into node, neighbour)``."""
    degree = csr.rowptr[node + 1] - csr.rowptr[node]
    if cap is None:
        owner, position = _expand(csr.rowptr, node)
        return owner, csr.col[position]
    small = degree <= cap
    small_idx = small.nonzero().view(-1)
    owner, position = _expand(csr.rowptr, node[small_idx])
    rows = [small_idx[owner]]
    neighbours = [csr.col[position]]
    big_idx = (~small).nonzero().view(-1)
    if big_idx.numel():
        offsets = _floyd_offsets(degree[big_idx], cap, seed, owner_centre[big_idx], node[big_idx])
        rows.append(big_idx.repeat_interleave(cap))
        neighbours.append(csr.col[(csr.rowptr[node[big_idx]].unsqueeze(1) + offsets).view(-1)])
    return torch.cat(rows), torch.cat(neighbours)


#: Entries of the dense (ego, node) -> local-index table used per block of egos.
_LOOKUP_BUDGET = 4_000_000


@dataclass
class OrientedEdges:
    """Every edge stored once, in the row of its lower-ranked endpoint (rank = (degree, id)).

    Finding the edges among a set of nodes then only scans each node's edges to *higher*
    ranked nodes: hubs rank high, so their rows are short (the degree-ordering trick of
    triangle counting). Each row lists ``(other endpoint, edge id, forward)`` where
    ``forward`` says the edge goes from the row's node to ``other``. Self-loops are kept apart.

    Attributes:
        rowptr: int64 ``[N + 1]``; other: int64 ``[E - L]``; edge_id: int64 ``[E - L]``;
        forward: bool ``[E - L]``; loop_ptr: int64 ``[N + 1]``; loop_edge_id: int64 ``[L]``.
    """

    rowptr: torch.Tensor
    other: torch.Tensor
    edge_id: torch.Tensor
    forward: torch.Tensor
    loop_ptr: torch.Tensor
    loop_edge_id: torch.Tensor


def _oriented(out_csr: CSRGraph) -> OrientedEdges:
    cached = out_csr.__dict__.get("_oriented")
    if cached is not None:
        return cached
    n = out_csr.num_nodes
    src = torch.repeat_interleave(torch.arange(n), out_csr.degree)
    dst, ids = out_csr.col, out_csr.edge_id
    total_degree = out_csr.degree + torch.bincount(dst, minlength=n)
    rank = torch.empty(n, dtype=torch.long)
    rank[_lexsort(total_degree, torch.arange(n))] = torch.arange(n)
    loop = src == dst
    s, d, e = src[~loop], dst[~loop], ids[~loop]
    forward = rank[s] < rank[d]
    lower = torch.where(forward, s, d)
    other = torch.where(forward, d, s)
    order = _lexsort(lower, other, e)
    rowptr = torch.zeros(n + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(lower, minlength=n), 0)
    loop_ptr = torch.zeros(n + 1, dtype=torch.long)
    loop_ptr[1:] = torch.cumsum(torch.bincount(src[loop], minlength=n), 0)
    loop_order = _lexsort(src[loop], ids[loop])
    oriented = OrientedEdges(
        rowptr=rowptr, other=other[order], edge_id=e[order], forward=forward[order],
        loop_ptr=loop_ptr, loop_edge_id=ids[loop][loop_order],
    )
    out_csr.__dict__["_oriented"] = oriented
    return oriented


def _induced_edges(
    out_csr: CSRGraph, sample: torch.Tensor, node: torch.Tensor, sizes: torch.Tensor, node_ptr: torch.Tensor, num_nodes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every original edge (and self-loop) between nodes of the same ego, each exactly once.

    ``sample`` / ``node`` are sample-major (``node_ptr`` delimits each ego); the local id of an
    entry is its position within its ego. Each member scans its oriented row (edges to higher
    ranked nodes, see :class:`OrientedEdges`) and looks the other endpoint up in a dense
    ``[block of egos, N]`` table of local ids.

    Returns:
        ``(sample [T], local_src [T], local_dst [T], edge_id [T])``.
    """
    oriented = _oriented(out_csr)
    num_samples = sizes.numel()
    block = max(1, min(num_samples, _LOOKUP_BUDGET // max(num_nodes, 1)))
    lookup = torch.full((block * num_nodes,), -1, dtype=torch.int32)
    local = torch.arange(node.numel()) - node_ptr[sample]
    samples, sources, targets, ids = [], [], [], []
    for first in range(0, num_samples, block):
        lo, hi = int(node_ptr[first]), int(node_ptr[min(first + block, num_samples)])
        b_sample, b_node, b_local = sample[lo:hi], node[lo:hi], local[lo:hi]
        slot = (b_sample - first) * num_nodes + b_node
        lookup[slot] = b_local.to(torch.int32)
        owner, position = _expand(oriented.rowptr, b_node)
        s = b_sample[owner]
        found = lookup[(s - first) * num_nodes + oriented.other[position]]
        hit = (found >= 0).nonzero().view(-1)
        owner, position, found, s = owner[hit], position[hit], found[hit].long(), s[hit]
        forward = oriented.forward[position]
        mine = b_local[owner]
        samples.append(s)
        sources.append(torch.where(forward, mine, found))
        targets.append(torch.where(forward, found, mine))
        ids.append(oriented.edge_id[position])
        owner, position = _expand(oriented.loop_ptr, b_node)
        samples.append(b_sample[owner])
        sources.append(b_local[owner])
        targets.append(b_local[owner])
        ids.append(oriented.loop_edge_id[position])
        lookup[slot] = -1
    if not samples:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty, empty, empty
    return torch.cat(samples), torch.cat(sources), torch.cat(targets), torch.cat(ids)


def _assemble(
    centers: torch.Tensor, sample: torch.Tensor, node: torch.Tensor, hop: torch.Tensor, out_csr: CSRGraph,
    num_nodes: int, weights: torch.Tensor | None = None,
) -> EgoBatch:
    """Order nodes per ego (centre, hop, id), build local ids and the induced edges."""
    num_samples = centers.numel()
    order = _lexsort(sample, hop, node)
    sample, node, hop = sample[order], node[order], hop[order]
    if weights is not None:
        weights = weights[order]
    sizes = torch.bincount(sample, minlength=num_samples)
    node_ptr = torch.zeros(num_samples + 1, dtype=torch.long)
    node_ptr[1:] = torch.cumsum(sizes, 0)
    e_sample, e_src, e_dst, e_id = _induced_edges(out_csr, sample, node, sizes, node_ptr, num_nodes)
    # (sample, src) is the flat index of the source node; then (dst, edge id)
    num_edge_ids = int(out_csr.edge_id.max()) + 1 if out_csr.edge_id.numel() else 1
    if num_nodes * num_edge_ids < 2**62:
        edge_order = _lexsort(node_ptr[e_sample] + e_src, e_dst * num_edge_ids + e_id)
    else:
        edge_order = _lexsort(node_ptr[e_sample] + e_src, e_dst, e_id)
    e_sample, e_src, e_dst, e_id = e_sample[edge_order], e_src[edge_order], e_dst[edge_order], e_id[edge_order]
    edge_ptr = torch.zeros(num_samples + 1, dtype=torch.long)
    edge_ptr[1:] = torch.cumsum(torch.bincount(e_sample, minlength=num_samples), 0)
    return EgoBatch(
        centers=centers, node_ptr=node_ptr, nodes=node, hops=hop, edge_ptr=edge_ptr,
        edge_index=torch.stack([e_src, e_dst]), edge_ids=e_id, weights=weights,
    )


def khop_ego_batch(
    edge_index: torch.Tensor,
    num_nodes: int,
    centers: torch.Tensor | Sequence[int],
    num_hops: int = 2,
    max_neighbors: int | None = 10,
    seed: int = 0,
    direction: str = "out",
    csr: CSRGraph | None = None,
    out_csr: CSRGraph | None = None,
) -> EgoBatch:
    """k-hop ego graphs of ``centers`` with at most ``max_neighbors`` sampled neighbours per node.

    Hop ``h`` expands every node first reached at hop ``h - 1``: a node with more than
    ``max_neighbors`` neighbours keeps a uniform sample of them (see module docstring); nodes
    already in the ego graph are not added again. The ego graph holds at most
    ``1 + cap + ... + cap**num_hops`` nodes and every original edge between them.

    Args:
        edge_index: int64 ``[2, E]``.
        num_nodes: ``N``.
        centers: ``[S]`` centre node ids (one chunk; see :class:`EgoGraphSampler` for many).
        num_hops: ``k``.
        max_neighbors: cap per expanded node, ``None`` for no cap.
        seed: sampling seed.
        direction: traversal direction (``"out"``, ``"in"``, ``"both"``; undirected graphs: ``"out"``).
        csr / out_csr: prebuilt traversal CSR and out-edge CSR (reused across chunks).

    Returns:
        :class:`EgoBatch`.
    """
    centers = torch.as_tensor(centers, dtype=torch.long).view(-1)
    if centers.numel() and (int(centers.min()) < 0 or int(centers.max()) >= num_nodes):
        raise ValueError(f"khop_ego_batch: centre ids must lie in [0, {num_nodes}), got {centers.min()}..{centers.max()}")
    csr = csr or build_csr(edge_index, num_nodes, direction)
    out_csr = out_csr or (csr if direction == "out" else build_csr(edge_index, num_nodes, "out"))
    num_samples = centers.numel()
    sample = torch.arange(num_samples)
    node = centers.clone()
    hop = torch.zeros(num_samples, dtype=torch.long)
    visited = torch.sort(sample * num_nodes + node).values
    frontier_sample, frontier_node = sample, node
    all_sample, all_node, all_hop = [sample], [node], [hop]
    for h in range(1, num_hops + 1):
        if not frontier_node.numel():
            break
        rows, neighbours = _sample_neighbors(csr, centers[frontier_sample], frontier_node, max_neighbors, seed)
        keys = torch.unique(frontier_sample[rows] * num_nodes + neighbours)
        keys = keys[~torch.isin(keys, visited)]
        visited = torch.sort(torch.cat([visited, keys])).values
        frontier_sample, frontier_node = keys // num_nodes, keys % num_nodes
        all_sample.append(frontier_sample)
        all_node.append(frontier_node)
        all_hop.append(torch.full_like(frontier_node, h))
    return _assemble(centers, torch.cat(all_sample), torch.cat(all_node), torch.cat(all_hop), out_csr, num_nodes)


# ------------------------------------------------------------------------------------------
# Personalized PageRank (synchronous push, Andersen-Chung-Lang style)
# ------------------------------------------------------------------------------------------
class PushBuffers:
    """Dense float64 score/residual scratch of ``[chunk * N]`` entries, reused across chunks.

    Rounds touch only the entries that receive residual; after a chunk one scan of its region
    collects and resets them (no re-allocation per chunk).
    """

    def __init__(self) -> None:
        self.score = torch.zeros(0, dtype=torch.float64)
        self.residual = torch.zeros(0, dtype=torch.float64)
        self.stamp = torch.zeros(0, dtype=torch.long)

    def reserve(self, size: int) -> None:
        if self.score.numel() < size:
            self.score = torch.zeros(size, dtype=torch.float64)
            self.residual = torch.zeros(size, dtype=torch.float64)
            self.stamp = torch.zeros(size, dtype=torch.long)

    def distinct(self, keys: torch.Tensor) -> torch.Tensor:
        """The distinct values of ``keys`` without sorting (one survivor per value, any order)."""
        position = torch.arange(keys.numel())
        self.stamp[keys] = position
        return keys[self.stamp[keys] == position]


def ppr_push(
    csr: CSRGraph,
    seeds: torch.Tensor,
    alpha: float = 0.15,
    eps: float = 1e-4,
    max_rounds: int = 10_000,
    buffers: PushBuffers | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate personalized PageRank of a chunk of seeds by synchronous push (sparse result).

    Every round, each node ``v`` whose residual ``r[v] >= eps * max(deg(v), 1)`` moves
    ``alpha * r[v]`` into its score and spreads ``(1 - alpha) * r[v]`` evenly over its
    neighbours (a node without neighbours returns it to the seed: teleport). At the end every
    residual is below ``eps * deg``, so for an undirected graph each score is within
    ``eps * deg(v)`` below the exact PPR (``p = alpha * e_s + (1 - alpha) * p P``).
    Only nodes that received residual in the last round are re-examined: the work per round
    follows the pushes, not ``N``.

    Args:
        csr: traversal CSR.
        seeds: int64 ``[S]``.
        buffers: reusable scratch (``S * N`` float64 entries each for score and residual).

    Returns:
        ``(keys, scores)``: sorted int64 keys ``row * N + node`` of the nodes with a positive
        score (``row`` indexes ``seeds``) and their float64 scores.
    """
    n = csr.num_nodes
    num_seeds = seeds.numel()
    buffers = buffers or PushBuffers()
    buffers.reserve(num_seeds * n)
    score, residual = buffers.score, buffers.residual
    degree = csr.degree
    threshold = eps * degree.clamp_min(1).to(torch.float64)
    start = torch.arange(num_seeds) * n + seeds
    residual[start] = 1.0
    candidates = start
    for _ in range(max_rounds):
        active = candidates[residual[candidates] >= threshold[candidates % n]]
        if not active.numel():
            break
        # distinct without sorting the (large) candidate list, then sorted: the order of the
        # pushes below, hence every floating-point sum, is deterministic
        active = torch.sort(buffers.distinct(active)).values
        mass = residual[active]
        residual[active] = 0.0
        score[active] += alpha * mass
        push = (1.0 - alpha) * mass
        node = active % n
        sample = active // n
        deg = degree[node]
        has = deg > 0
        owner, position = _expand(csr.rowptr, node[has])
        targets = sample[has][owner] * n + csr.col[position]
        residual.index_add_(0, targets, (push[has] / deg[has])[owner])
        dangling = sample[~has] * n + seeds[sample[~has]]
        residual.index_add_(0, dangling, push[~has])
        candidates = torch.cat([targets, dangling]) if dangling.numel() else targets
    else:
        logger.warning("ppr_push: push did not converge in %d rounds (eps=%g); scores are approximate", max_rounds, eps)
    # every touched entry holds a positive score or residual: one scan of the chunk's region
    # finds them (sorted) and resets the scratch for the next chunk
    region = num_seeds * n
    keys = ((score[:region] != 0) | (residual[:region] != 0)).nonzero().view(-1)
    values = score[keys].clone()
    score[keys] = 0.0
    residual[keys] = 0.0
    positive = values > 0
    return keys[positive], values[positive]


def ppr_scores(csr: CSRGraph, seeds: torch.Tensor, alpha: float = 0.15, eps: float = 1e-4) -> torch.Tensor:
    """Dense float64 ``[S, N]`` scores of :func:`ppr_push` (for tests and small graphs)."""
    keys, values = ppr_push(csr, seeds, alpha, eps)
    dense = torch.zeros(seeds.numel() * csr.num_nodes, dtype=torch.float64)
    dense[keys] = values
    return dense.view(seeds.numel(), csr.num_nodes)


def _topk_sparse(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, num_rows: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the ``k`` largest values ordered by (value desc, column asc); pad -1 / 0."""
    neighbors = torch.full((num_rows, k), -1, dtype=torch.long)
    weights = torch.zeros((num_rows, k), dtype=torch.float32)
    if k == 0 or not rows.numel():
        return neighbors, weights
    order = _lexsort(rows, -values, cols)
    rows, cols, values = rows[order], cols[order], values[order]
    counts = torch.bincount(rows, minlength=num_rows)
    rank = torch.arange(rows.numel()) - (torch.cumsum(counts, 0) - counts)[rows]
    keep = rank < k
    neighbors[rows[keep], rank[keep]] = cols[keep]
    weights[rows[keep], rank[keep]] = values[keep].to(torch.float32)
    return neighbors, weights


def _default_chunk(num_nodes: int, budget: int = 4_000_000) -> int:
    return max(1, budget // max(num_nodes, 1))


def ppr_topk(
    edge_index: torch.Tensor,
    num_nodes: int,
    seeds: torch.Tensor | Sequence[int],
    k: int,
    alpha: float = 0.15,
    *,
    eps: float = 1e-4,
    exclude_self: bool = True,
    direction: str = "out",
    chunk_size: int | None = None,
    csr: CSRGraph | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` personalized-PageRank neighbours of each seed.

    Args:
        edge_index: int64 ``[2, E]`` (undirected graphs list both directions).
        num_nodes: ``N``.
        seeds: ``[S]`` seed node ids.
        k: neighbours per seed.
        alpha: teleport (restart) probability.
        eps: push tolerance (see :func:`ppr_push`); smaller is more exact and slower.
        exclude_self: leave the seed itself out of its neighbours (its score is the largest).
        direction: traversal direction (``"both"`` for directed graphs treated as undirected).
        chunk_size: seeds per chunk (scratch of ``2 * chunk * N`` float64); default keeps
            ``chunk * N`` under 4M.
        csr: prebuilt traversal CSR.

    Returns:
        ``(neighbors, weights)``: int64 ``[S, k]`` node ids ordered by score (ties by node
        id), padded with ``-1`` when fewer than ``k`` nodes have a positive score; float32
        ``[S, k]`` their PPR scores (0 at padding).
    """
    seeds = torch.as_tensor(seeds, dtype=torch.long).view(-1)
    if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= num_nodes):
        raise ValueError(f"ppr_topk: seed ids must lie in [0, {num_nodes}), got {int(seeds.min())}..{int(seeds.max())}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"ppr_topk: alpha must lie in (0, 1), got {alpha}")
    csr = csr or build_csr(edge_index, num_nodes, direction)
    chunk_size = chunk_size or _default_chunk(num_nodes)
    buffers = PushBuffers()
    all_neighbors, all_weights = [], []
    for start in range(0, seeds.numel(), chunk_size):
        chunk = seeds[start : start + chunk_size]
        keys, values = ppr_push(csr, chunk, alpha, eps, buffers=buffers)
        rows, cols = keys // num_nodes, keys % num_nodes
        if exclude_self:
            other = cols != chunk[rows]
            rows, cols, values = rows[other], cols[other], values[other]
        neighbors, weights = _topk_sparse(rows, cols, values, chunk.numel(), k)
        all_neighbors.append(neighbors)
        all_weights.append(weights)
    if not all_neighbors:
        return torch.empty((0, k), dtype=torch.long), torch.empty((0, k), dtype=torch.float32)
    return torch.cat(all_neighbors), torch.cat(all_weights)


def ppr_ego_batch(
    edge_index: torch.Tensor,
    num_nodes: int,
    centers: torch.Tensor | Sequence[int],
    k: int = 32,
    alpha: float = 0.15,
    eps: float = 1e-4,
    direction: str = "out",
    csr: CSRGraph | None = None,
    out_csr: CSRGraph | None = None,
    buffers: PushBuffers | None = None,
) -> EgoBatch:
    """Ego graphs made of each centre and its top-``k`` PPR neighbours (induced edges).

    ``EgoBatch.weights`` holds each node's PPR score w.r.t. its centre (the centre's own too);
    ``hops`` is 0 for the centre and 1 for the others (order: centre, then node id).
    """
    centers = torch.as_tensor(centers, dtype=torch.long).view(-1)
    csr = csr or build_csr(edge_index, num_nodes, direction)
    out_csr = out_csr or (csr if direction == "out" else build_csr(edge_index, num_nodes, "out"))
    keys, values = ppr_push(csr, centers, alpha, eps, buffers=buffers)
    rows, cols = keys // num_nodes, keys % num_nodes
    is_centre = cols == centers[rows]
    own = torch.zeros(centers.numel(), dtype=torch.float32)
    own[rows[is_centre]] = values[is_centre].to(torch.float32)
    neighbors, weights = _topk_sparse(rows[~is_centre], cols[~is_centre], values[~is_centre], centers.numel(), k)
    valid = neighbors >= 0
    sample = torch.cat([torch.arange(centers.numel()), torch.arange(centers.numel()).unsqueeze(1).expand_as(neighbors)[valid]])
    node = torch.cat([centers, neighbors[valid]])
    hop = torch.cat([torch.zeros(centers.numel(), dtype=torch.long), torch.ones(int(valid.sum()), dtype=torch.long)])
    node_weights = torch.cat([own, weights[valid]])
    return _assemble(centers, sample, node, hop, out_csr, num_nodes, weights=node_weights)


# ------------------------------------------------------------------------------------------
# From a big graph to many small Data
# ------------------------------------------------------------------------------------------
_NODE_KEYS = ("x", "x_cont", "pos", "x_observed")
_EDGE_KEYS = ("edge_attr", "edge_attr_cont", "edge_weight")


class EgoGraphSampler:
    """Turn node and edge tasks on a large graph into many small ``Data`` (one per target).

    Node sample (``node_samples``): the ego graph of the target node; ``target_node`` = int64
    ``[1]`` local index of the centre (always 0); ``y`` = the centre's label (``[1]`` or
    ``[1, T]``); ``n_id`` / ``e_id`` = global node / edge ids; ``hop`` per node; ``ppr_weight``
    per node for ``method="ppr"``.

    Edge sample (``edge_samples``): the union of the two endpoints' ego graphs;
    ``target_edge`` = int64 ``[1, 2]`` local indices of ``(u, v)``; ``y`` = the given label;
    by default the target edge itself (both directions) is removed from the sample so a model
    cannot read the answer off the input.

    Node and edge features (``x``, ``x_cont``, ``edge_attr``, ...) are sliced from the big
    graph; ``domain`` and ``directed`` are copied.

    Args:
        data: the big graph.
        method: ``"khop"`` or ``"ppr"``.
        num_hops / max_neighbors: k-hop parameters.
        ppr_k / alpha / eps: PPR parameters (the ego graph is the centre + top ``ppr_k``).
        seed: sampling seed (k-hop).
        chunk_size: centres processed at once (bounds memory).
        direction: traversal direction; default ``"both"`` for directed graphs, else ``"out"``.
    """

    def __init__(
        self,
        data: Data,
        method: str = "khop",
        num_hops: int = 2,
        max_neighbors: int | None = 10,
        ppr_k: int = 32,
        alpha: float = 0.15,
        eps: float = 1e-4,
        seed: int = 0,
        chunk_size: int | None = None,
        direction: str | None = None,
    ):
        if method not in ("khop", "ppr"):
            raise ValueError(f"EgoGraphSampler: method={method!r}; use 'khop' or 'ppr'")
        self.data = data
        self.num_nodes = int(data.num_nodes)
        self.method = method
        self.num_hops, self.max_neighbors = num_hops, max_neighbors
        self.ppr_k, self.alpha, self.eps = ppr_k, alpha, eps
        self.seed = seed
        self.direction = direction or ("both" if getattr(data, "directed", False) else "out")
        self.csr = build_csr(data.edge_index, self.num_nodes, self.direction)
        self.out_csr = self.csr if self.direction == "out" else build_csr(data.edge_index, self.num_nodes, "out")
        self.chunk_size = chunk_size or (_default_chunk(self.num_nodes) if method == "ppr" else 1024)
        self.buffers = PushBuffers()

    def ego_batches(self, centers: torch.Tensor | Sequence[int]) -> Iterator[EgoBatch]:
        """Flat ego graphs of ``centers``, one :class:`EgoBatch` per chunk."""
        centers = torch.as_tensor(centers, dtype=torch.long).view(-1)
        for start in range(0, centers.numel(), self.chunk_size):
            yield self._batch(centers[start : start + self.chunk_size])

    def _batch(self, chunk: torch.Tensor) -> EgoBatch:
        if self.method == "khop":
            return khop_ego_batch(
                self.data.edge_index, self.num_nodes, chunk, self.num_hops, self.max_neighbors, self.seed,
                self.direction, csr=self.csr, out_csr=self.out_csr,
            )
        return ppr_ego_batch(
            self.data.edge_index, self.num_nodes, chunk, self.ppr_k, self.alpha, self.eps, self.direction,
            csr=self.csr, out_csr=self.out_csr, buffers=self.buffers,
        )

    def _to_data(self, batch: EgoBatch, i: int) -> Data:
        nodes, edge_index, edge_ids = batch.ego(i)
        a, b = int(batch.node_ptr[i]), int(batch.node_ptr[i + 1])
        sample = Data(edge_index=edge_index.clone(), num_nodes=int(nodes.numel()))
        for key in _NODE_KEYS:
            value = getattr(self.data, key, None)
            if isinstance(value, torch.Tensor):
                sample[key] = value[nodes]
        for key in _EDGE_KEYS:
            value = getattr(self.data, key, None)
            if isinstance(value, torch.Tensor):
                sample[key] = value[edge_ids]
        sample.n_id = nodes.clone()
        sample.e_id = edge_ids.clone()
        sample.hop = batch.hops[a:b].clone()
        if batch.weights is not None:
            sample.ppr_weight = batch.weights[a:b].clone()
        sample.domain = getattr(self.data, "domain", None)
        if getattr(self.data, "directed", None):
            sample.directed = True
        return sample

    def node_samples(self, nodes: torch.Tensor | Sequence[int] | None = None, labels: torch.Tensor | None = None) -> Iterator[Data]:
        """One ``Data`` per node (all nodes by default), centre at local index 0.

        Args:
            nodes: ``[S]`` target nodes.
            labels: per-node targets ``[N]`` / ``[N, T]``; default ``data.y`` when it has ``N`` rows.
        """
        nodes = torch.arange(self.num_nodes) if nodes is None else torch.as_tensor(nodes, dtype=torch.long).view(-1)
        if labels is None:
            y = getattr(self.data, "y", None)
            labels = y if isinstance(y, torch.Tensor) and y.dim() >= 1 and y.shape[0] == self.num_nodes else None
        for batch in self.ego_batches(nodes):
            for i in range(len(batch)):
                sample = self._to_data(batch, i)
                sample.target_node = torch.zeros(1, dtype=torch.long)
                if labels is not None:
                    sample.y = labels[int(batch.centers[i])].unsqueeze(0).clone()
                yield sample

    def edge_samples(
        self, pairs: torch.Tensor, labels: torch.Tensor | None = None, remove_target_edge: bool = True
    ) -> Iterator[Data]:
        """One ``Data`` per node pair: the union of both endpoints' ego graphs.

        Args:
            pairs: int64 ``[2, P]`` node pairs (positives and negatives alike).
            labels: optional ``[P]`` targets (e.g. 1 for an edge, 0 for a non-edge).
            remove_target_edge: drop the edges between the two endpoints from the sample.
        """
        pairs = torch.as_tensor(pairs, dtype=torch.long)
        if pairs.dim() != 2 or pairs.shape[0] != 2:
            raise ValueError(f"edge_samples: pairs must be [2, P], got {tuple(pairs.shape)}")
        half = max(1, self.chunk_size // 2)
        for start in range(0, pairs.shape[1], half):
            chunk = pairs[:, start : start + half]
            count = chunk.shape[1]
            if self.method == "khop":
                ends = khop_ego_batch(
                    self.data.edge_index, self.num_nodes, chunk.reshape(-1), self.num_hops, self.max_neighbors,
                    self.seed, self.direction, csr=self.csr, out_csr=self.out_csr,
                )
            else:
                ends = ppr_ego_batch(
                    self.data.edge_index, self.num_nodes, chunk.reshape(-1), self.ppr_k, self.alpha, self.eps,
                    self.direction, csr=self.csr, out_csr=self.out_csr, buffers=self.buffers,
                )
            # ego i of chunk.reshape(-1): i < count -> source of pair i, else target of pair i - count
            sizes = ends.node_ptr[1:] - ends.node_ptr[:-1]
            owner = torch.repeat_interleave(torch.arange(2 * count), sizes) % count
            end_hop = ends.hops
            keys = owner * self.num_nodes + ends.nodes
            # keep each node once per pair with its smallest hop
            order = _lexsort(keys, end_hop)
            keys, end_hop = keys[order], end_hop[order]
            weights = ends.weights[order] if ends.weights is not None else None
            unique, first = _unique_first(keys)
            sample, node, hop = unique // self.num_nodes, unique % self.num_nodes, end_hop[first]
            # the two endpoints come first: hop -1 for u, 0 for v (then hop, id)
            is_u = node == chunk[0][sample]
            is_v = (node == chunk[1][sample]) & ~is_u
            hop = torch.where(is_u, torch.full_like(hop, -1), torch.where(is_v, torch.zeros_like(hop), hop.clamp_min(1)))
            batch = _assemble(
                torch.arange(count), sample, node, hop + 1, self.out_csr, self.num_nodes,
                weights=None if weights is None else weights[first],
            )
            for i in range(count):
                data = self._to_data(batch, i)
                data.hop = (data.hop - 1).clamp_min(0)
                u_local = 0
                v_local = 1 if int(chunk[0, i]) != int(chunk[1, i]) else 0
                if remove_target_edge:
                    ei = data.edge_index
                    target = ((ei[0] == u_local) & (ei[1] == v_local)) | ((ei[0] == v_local) & (ei[1] == u_local))
                    if bool(target.any()):
                        keep = ~target
                        data.edge_index = ei[:, keep]
                        data.e_id = data.e_id[keep]
                        for key in _EDGE_KEYS:
                            if key in data:
                                data[key] = data[key][keep]
                data.target_edge = torch.tensor([[u_local, v_local]], dtype=torch.long)
                if labels is not None:
                    data.y = torch.as_tensor(labels)[start + i].view(1).clone()
                yield data
