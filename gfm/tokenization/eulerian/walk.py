"""Eulerian walks over undirected multigraphs: eulerization by tree parity, then Hierholzer.

This module holds the walk algorithm of :class:`~gfm.tokenization.eulerian.EulerianTokenizer`
twice, with identical results: :func:`walk_graph_python` is the plain, readable definition;
:mod:`gfm.tokenization.eulerian.kernel` runs the same steps as a small C kernel over a whole
batch (the tokenizer's fast path). ``tests/tokenization/eulerian/test_walk.py`` checks that both agree
exactly, and that every walk is a valid (semi-)Eulerian trail of the eulerized graph.

The algorithm, per graph with ``n`` nodes and ``m`` undirected edges ``(eu[e], ev[e])``
(self-loops and parallel edges allowed; a directed graph passes its arcs here and the tokenizer
writes the traversal direction):

1. Adjacency lists in edge order (half-edges; a self-loop gives its node two). When a seed is
   given, every list is shuffled (walk randomization for augmentation).
2. Connected components and a BFS spanning tree of each, scanning roots in node order.
3. Per component with odd-degree nodes: the set ``T`` of odd nodes must be paired by
   duplicated edges. On a spanning tree, the smallest edge set that fixes all parities of ``T``
   (a *T-join*) is unique: a tree edge is duplicated iff the subtree below it holds an odd
   number of ``T`` nodes; linear time, no blossom matching. A semi-Eulerian trail may keep two
   odd endpoints ``a, b``: removing them from ``T`` flips the T-join along the tree path a–b, so
   the best pair is the tree path maximising (#T-join edges - #other edges) on it, found by one
   bottom-up pass (the weighted tree-diameter recurrence).
4. Hierholzer's algorithm (iterative, over the CSR adjacency of the augmented multigraph) from
   ``a`` (or any node when every degree is even) produces the trail; components are visited
   in order of their smallest node (shuffled when seeded).
5. Nodes are ranked by first visit.

Each visit is reported as ``(node, edge, flags)``: the original edge id it arrived by (``-1``
for the first visit of a component) and flag bits :data:`FLAG_DUPLICATE` (the step re-traverses
an eulerization duplicate of ``edge``), :data:`FLAG_REVERSED` (the step went ``ev -> eu``) and
:data:`FLAG_COMPONENT_START`.

The seeded random choices come from SplitMix64 so that Python and C draw the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FLAG_DUPLICATE",
    "FLAG_REVERSED",
    "FLAG_COMPONENT_START",
    "Walk",
    "walk_graph_python",
    "walk_batch_python",
    "walk_capacity",
]

FLAG_DUPLICATE = 1
FLAG_REVERSED = 2
FLAG_COMPONENT_START = 4

_MASK64 = 0xFFFFFFFFFFFFFFFF
_NEGATIVE = -(1 << 60)


class SplitMix64:
    """The 64-bit SplitMix generator (Steele et al. 2014), bit-identical to the C kernel's."""

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & _MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        """A draw in ``[0, bound)`` (modulo reduction, as in the kernel)."""
        return self.next() % bound


@dataclass
class Walk:
    """The trail of one graph.

    Attributes:
        node: int64 ``[K]`` node of each visit (``K = m + duplicates + components``).
        edge: int64 ``[K]`` original edge id each visit arrived by, ``-1`` at component starts.
        flags: int8 ``[K]`` bit set of ``FLAG_*``.
        rank: int64 ``[n]`` first-visit rank of every node (a permutation of ``0..n-1``).
    """

    node: np.ndarray
    edge: np.ndarray
    flags: np.ndarray
    rank: np.ndarray


def walk_capacity(num_nodes: int, num_edges: int) -> int:
    """Upper bound on the visits of a walk: ``m + n`` (duplicates are tree edges, ``<= n - c``)."""
    return int(num_nodes) + int(num_edges)


def _adjacency(num_nodes: int, eu: list[int], ev: list[int], rng: SplitMix64 | None) -> tuple[list[int], list[int]]:
    """CSR half-edge lists in edge order (shuffled per node with ``rng``): ``(ptr [n+1], adj [2m])``."""
    degree = [0] * num_nodes
    for u, v in zip(eu, ev):
        degree[u] += 1
        degree[v] += 1
    ptr = [0] * (num_nodes + 1)
    for v in range(num_nodes):
        ptr[v + 1] = ptr[v] + degree[v]
    fill = ptr[:-1].copy()
    adj = [0] * ptr[num_nodes]
    for e, (u, v) in enumerate(zip(eu, ev)):
        adj[fill[u]] = e
        fill[u] += 1
        adj[fill[v]] = e
        fill[v] += 1
    if rng is not None:
        for v in range(num_nodes):
            start = ptr[v]
            for i in range(ptr[v + 1] - start - 1, 0, -1):
                j = rng.below(i + 1)
                adj[start + i], adj[start + j] = adj[start + j], adj[start + i]
    return ptr, adj


def walk_graph_python(num_nodes: int, eu: np.ndarray, ev: np.ndarray, seed: int | None = None) -> Walk:
    """The reference definition of the walk (see the module docstring for the steps).

    Args:
        num_nodes: ``n``.
        eu, ev: int64 ``[m]`` endpoints of each edge (local ids in ``[0, n)``).
        seed: ``None`` for the canonical walk; an integer for a seeded random walk.

    Returns:
        The :class:`Walk`.
    """
    n = int(num_nodes)
    eu_list = [int(u) for u in eu]
    ev_list = [int(v) for v in ev]
    m = len(eu_list)
    rng = SplitMix64(seed) if seed is not None else None
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return Walk(empty, empty.copy(), np.zeros(0, dtype=np.int8), empty.copy())

    # 1. adjacency of the input multigraph
    degree = [0] * n
    for u, v in zip(eu_list, ev_list):
        degree[u] += 1
        degree[v] += 1
    ptr, adj = _adjacency(n, eu_list, ev_list, rng)

    # 2. components and BFS spanning trees
    component = [-1] * n
    parent = [-1] * n
    parent_edge = [-1] * n
    order: list[int] = []
    component_begin: list[int] = []
    for root in range(n):
        if component[root] >= 0:
            continue
        index = len(component_begin)
        component_begin.append(len(order))
        component[root] = index
        order.append(root)
        head = component_begin[-1]
        while head < len(order):
            u = order[head]
            head += 1
            for k in range(ptr[u], ptr[u + 1]):
                e = adj[k]
                w = ev_list[e] if eu_list[e] == u else eu_list[e]
                if component[w] < 0:
                    component[w] = index
                    parent[w] = u
                    parent_edge[w] = e
                    order.append(w)
    num_components = len(component_begin)
    component_begin.append(n)

    # 3. endpoints and T-join duplicates per component
    start = [0] * num_components
    duplicates: list[int] = []
    parity = [0] * n
    in_join = [0] * n
    best = [0] * n
    best_node = [0] * n
    for c in range(num_components):
        begin, end = component_begin[c], component_begin[c + 1]
        odd = sum(degree[order[i]] & 1 for i in range(begin, end))
        if odd == 0:
            start[c] = order[begin + rng.below(end - begin)] if rng is not None else order[begin]
            continue
        for i in range(begin, end):
            v = order[i]
            parity[v] = degree[v] & 1
        for i in range(end - 1, begin, -1):
            v = order[i]
            in_join[v] = parity[v]
            if parity[v]:
                parity[parent[v]] ^= 1
        for i in range(begin, end):
            v = order[i]
            if degree[v] & 1:
                best[v], best_node[v] = 0, v
            else:
                best[v], best_node[v] = _NEGATIVE, -1
        best_value, end_a, end_b = _NEGATIVE, -1, -1
        for i in range(end - 1, begin, -1):
            v = order[i]
            if best[v] == _NEGATIVE:
                continue
            p = parent[v]
            candidate = best[v] + (1 if in_join[v] else -1)
            if best[p] != _NEGATIVE and best[p] + candidate > best_value:
                best_value, end_a, end_b = best[p] + candidate, best_node[p], best_node[v]
            if candidate > best[p]:
                best[p], best_node[p] = candidate, best_node[v]
        for i in range(begin, end):
            v = order[i]
            parity[v] = 1 if (degree[v] & 1) and v != end_a and v != end_b else 0
        for i in range(end - 1, begin, -1):
            v = order[i]
            if parity[v]:
                duplicates.append(parent_edge[v])
                parity[parent[v]] ^= 1
        start[c] = end_b if (rng is not None and rng.below(2)) else end_a

    # 4. augmented multigraph: original edges, then duplicates (edge id m + k copies duplicates[k])
    eu_aug = eu_list + [eu_list[e] for e in duplicates]
    ev_aug = ev_list + [ev_list[e] for e in duplicates]
    ptr_aug, adj_aug = _adjacency(n, eu_aug, ev_aug, rng)
    component_order = list(range(num_components))
    if rng is not None:
        for i in range(num_components - 1, 0, -1):
            j = rng.below(i + 1)
            component_order[i], component_order[j] = component_order[j], component_order[i]

    # 5. Hierholzer per component
    used = [False] * len(eu_aug)
    cursor = ptr_aug[:-1].copy()
    out_node: list[int] = []
    out_edge: list[int] = []
    out_flags: list[int] = []
    for c in component_order:
        segment = len(out_node)
        stack_node, stack_edge = [start[c]], [-1]
        popped_node: list[int] = []
        popped_edge: list[int] = []
        while stack_node:
            v = stack_node[-1]
            k, stop = cursor[v], ptr_aug[v + 1]
            while k < stop and used[adj_aug[k]]:
                k += 1
            if k < stop:
                e = adj_aug[k]
                cursor[v] = k + 1
                used[e] = True
                stack_node.append(ev_aug[e] if eu_aug[e] == v else eu_aug[e])
                stack_edge.append(e)
            else:
                cursor[v] = k
                popped_node.append(stack_node.pop())
                popped_edge.append(stack_edge.pop())
        popped_node.reverse()
        popped_edge.reverse()
        for i, (v, e) in enumerate(zip(popped_node, popped_edge)):
            if i == 0:
                out_node.append(v)
                out_edge.append(-1)
                out_flags.append(FLAG_COMPONENT_START)
                continue
            flags = 0
            if e >= m:
                flags |= FLAG_DUPLICATE
            if eu_aug[e] != out_node[segment + i - 1]:
                flags |= FLAG_REVERSED
            out_node.append(v)
            out_edge.append(duplicates[e - m] if e >= m else e)
            out_flags.append(flags)

    # 6. first-visit ranks
    rank = [-1] * n
    next_rank = 0
    for v in out_node:
        if rank[v] < 0:
            rank[v] = next_rank
            next_rank += 1
    return Walk(
        node=np.asarray(out_node, dtype=np.int64),
        edge=np.asarray(out_edge, dtype=np.int64),
        flags=np.asarray(out_flags, dtype=np.int8),
        rank=np.asarray(rank, dtype=np.int64),
    )


def walk_batch_python(
    node_ptr: np.ndarray,
    edge_ptr: np.ndarray,
    eu: np.ndarray,
    ev: np.ndarray,
    seeds: list[int | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batch form of :func:`walk_graph_python`, with the C kernel's output layout.

    Args:
        node_ptr: int64 ``[G+1]`` node offsets of the graphs.
        edge_ptr: int64 ``[G+1]`` edge offsets; ``eu``/``ev`` hold local node ids.
        seeds: per graph ``None`` (canonical) or an integer seed.

    Returns:
        ``(visit_ptr [G+1], node [K], edge [K], flags [K], rank [N])`` with visits of graph ``g``
        at ``visit_ptr[g]:visit_ptr[g+1]``; ``edge`` local to the graph (``-1`` at starts).
    """
    nodes, edges, flags, ranks = [], [], [], []
    visit_ptr = np.zeros(len(node_ptr), dtype=np.int64)
    for g in range(len(node_ptr) - 1):
        walk = walk_graph_python(
            int(node_ptr[g + 1] - node_ptr[g]),
            eu[edge_ptr[g] : edge_ptr[g + 1]],
            ev[edge_ptr[g] : edge_ptr[g + 1]],
            seeds[g],
        )
        nodes.append(walk.node)
        edges.append(walk.edge)
        flags.append(walk.flags)
        ranks.append(walk.rank)
        visit_ptr[g + 1] = visit_ptr[g] + len(walk.node)

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

    return visit_ptr, cat(nodes, np.int64), cat(edges, np.int64), cat(flags, np.int8), cat(ranks, np.int64)
