"""Slow, obviously correct reference versions of ``gfm.data.sampling`` (plain Python loops).

Used by the tests (exact agreement on real and random graphs) and by
``benchmarks/sampling_speed.py`` (the speed ratio). Not for production use: one Python loop
per node and per edge.
"""

from __future__ import annotations

import torch

__all__ = [
    "hash_reference",
    "khop_ego_reference",
    "ppr_push_reference",
    "ppr_exact",
    "adjacency_lists",
    "out_edge_lists",
]

_MASK32 = (1 << 32) - 1


def _mix32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def hash_reference(seed: int, *parts: int) -> int:
    """Pure-Python twin of ``gfm.data.sampling.hash_keys`` (lowbias32 chained over the parts)."""
    h = _mix32((seed & _MASK32) ^ 0x9E3779B9)
    for part in parts:
        h = _mix32(h ^ (part & _MASK32))
    return h


def adjacency_lists(edge_index: torch.Tensor, num_nodes: int, direction: str = "out") -> list[list[int]]:
    """Sorted neighbour lists; ``"both"`` merges repeated pairs, like ``build_csr``."""
    pairs = list(zip(edge_index[0].tolist(), edge_index[1].tolist()))
    if direction == "in":
        pairs = [(b, a) for a, b in pairs]
    elif direction == "both":
        pairs = sorted(set(pairs) | {(b, a) for a, b in pairs})
    neighbours: list[list[int]] = [[] for _ in range(num_nodes)]
    for a, b in pairs:
        neighbours[a].append(b)
    return [sorted(n) for n in neighbours]


def out_edge_lists(edge_index: torch.Tensor, num_nodes: int) -> list[list[tuple[int, int]]]:
    """``(target, edge id)`` of every out-edge of each node."""
    out: list[list[tuple[int, int]]] = [[] for _ in range(num_nodes)]
    for edge_id, (a, b) in enumerate(zip(edge_index[0].tolist(), edge_index[1].tolist())):
        out[a].append((b, edge_id))
    return out


def _floyd(degree: int, cap: int, seed: int, centre: int, node: int) -> list[int]:
    chosen: list[int] = []
    for step in range(cap):
        j = degree - cap + step
        r = hash_reference(seed, centre, node, j) % (j + 1)
        chosen.append(j if r in chosen else r)
    return chosen


def khop_ego_reference(
    edge_index: torch.Tensor,
    num_nodes: int,
    centre: int,
    num_hops: int,
    max_neighbors: int | None,
    seed: int = 0,
    direction: str = "out",
    adjacency: list[list[int]] | None = None,
    out_edges: list[list[tuple[int, int]]] | None = None,
) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
    """One ego graph by breadth-first search.

    Returns:
        ``(nodes, hops, edges)``: global ids (centre, then by hop, then id), their hops, and
        ``(local_src, local_dst, edge_id)`` of every original edge between kept nodes, sorted.
    """
    adjacency = adjacency if adjacency is not None else adjacency_lists(edge_index, num_nodes, direction)
    hop_of = {centre: 0}
    frontier = [centre]
    for hop in range(1, num_hops + 1):
        reached = set()
        for node in frontier:
            neighbours = adjacency[node]
            if max_neighbors is not None and len(neighbours) > max_neighbors:
                neighbours = [neighbours[o] for o in _floyd(len(neighbours), max_neighbors, seed, centre, node)]
            for other in neighbours:
                if other not in hop_of:
                    reached.add(other)
        for other in reached:
            hop_of[other] = hop
        frontier = sorted(reached)
    nodes = sorted(hop_of, key=lambda v: (hop_of[v], v))
    local = {v: i for i, v in enumerate(nodes)}
    out_edges = out_edges if out_edges is not None else out_edge_lists(edge_index, num_nodes)
    edges = []
    for a in nodes:
        for b, edge_id in out_edges[a]:
            if b in local:
                edges.append((local[a], local[b], edge_id))
    return nodes, [hop_of[v] for v in nodes], sorted(edges)


def ppr_push_reference(
    edge_index: torch.Tensor, num_nodes: int, seed_node: int, alpha: float = 0.15, eps: float = 1e-4,
    direction: str = "out", adjacency: list[list[int]] | None = None,
) -> dict[int, float]:
    """Synchronous push for one seed with dicts (same rounds as ``gfm.data.sampling.ppr_scores``)."""
    adjacency = adjacency if adjacency is not None else adjacency_lists(edge_index, num_nodes, direction)
    score: dict[int, float] = {}
    residual: dict[int, float] = {seed_node: 1.0}
    candidates = {seed_node}
    while True:
        active = sorted(v for v in candidates if residual.get(v, 0.0) >= eps * max(len(adjacency[v]), 1))
        if not active:
            break
        masses = {v: residual[v] for v in active}
        for v in active:
            residual[v] = 0.0
            score[v] = score.get(v, 0.0) + alpha * masses[v]
        candidates = set()
        for v in active:
            push = (1.0 - alpha) * masses[v]
            if adjacency[v]:
                share = push / len(adjacency[v])
                for other in adjacency[v]:
                    residual[other] = residual.get(other, 0.0) + share
                    candidates.add(other)
            else:
                residual[seed_node] = residual.get(seed_node, 0.0) + push
                candidates.add(seed_node)
    return score


def ppr_exact(edge_index: torch.Tensor, num_nodes: int, seed_node: int, alpha: float = 0.15, direction: str = "out") -> torch.Tensor:
    """Exact PPR by a dense linear solve: ``p = alpha e_s (I - (1 - alpha) P)^-1``, dangling rows -> seed."""
    adjacency = adjacency_lists(edge_index, num_nodes, direction)
    transition = torch.zeros((num_nodes, num_nodes), dtype=torch.float64)
    for v, neighbours in enumerate(adjacency):
        if neighbours:
            for other in neighbours:
                transition[v, other] += 1.0 / len(neighbours)
        else:
            transition[v, seed_node] = 1.0
    restart = torch.zeros(num_nodes, dtype=torch.float64)
    restart[seed_node] = alpha
    system = torch.eye(num_nodes, dtype=torch.float64) - (1.0 - alpha) * transition.T
    return torch.linalg.solve(system, restart)
