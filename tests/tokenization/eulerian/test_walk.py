"""The Eulerian walk: C kernel == Python definition, every walk is a valid trail, eulerization is minimal."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from gfm.testing.eulerian_reference import networkx_walk
from gfm.tokenization.eulerian.kernel import kernel_available, walk_batch_c
from gfm.tokenization.eulerian.walk import (
    FLAG_COMPONENT_START,
    FLAG_DUPLICATE,
    FLAG_REVERSED,
    Walk,
    walk_batch_python,
    walk_graph_python,
)

needs_kernel = pytest.mark.skipif(not kernel_available(), reason="no C compiler: the kernel cannot be built")


def _random_multigraphs(count: int, seed: int, max_nodes: int = 12):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(0, max_nodes + 1))
        m = int(rng.integers(0, 3 * n + 1)) if n else 0
        out.append((n, rng.integers(0, max(n, 1), m), rng.integers(0, max(n, 1), m)))
    return out


def _check_trail(n: int, eu: np.ndarray, ev: np.ndarray, walk: Walk) -> int:
    """Assert ``walk`` is a valid trail set; return its number of duplicated steps."""
    real = walk.edge[(walk.flags & (FLAG_DUPLICATE | FLAG_COMPONENT_START)) == 0]
    assert sorted(real.tolist()) == list(range(len(eu))), "every edge exactly once as a real step"
    assert sorted(set(walk.node.tolist())) == list(range(n)), "every node visited"
    for i in range(len(walk.node)):
        if walk.flags[i] & FLAG_COMPONENT_START:
            assert walk.edge[i] == -1
            continue
        e, previous, current = walk.edge[i], walk.node[i - 1], walk.node[i]
        expected = (ev[e], eu[e]) if walk.flags[i] & FLAG_REVERSED else (eu[e], ev[e])
        assert (previous, current) == expected, "each step follows its stated edge and direction"
    components = nx.number_connected_components(_multigraph(n, eu, ev)) if n else 0
    assert int((walk.flags & FLAG_COMPONENT_START != 0).sum()) == components
    order = np.argsort(walk.rank)
    first_visits = list(dict.fromkeys(walk.node.tolist()))
    assert order.tolist() == first_visits, "ranks are the order of first visit"
    return int(((walk.flags & FLAG_DUPLICATE) != 0).sum())


def _multigraph(n, eu, ev) -> nx.MultiGraph:
    graph = nx.MultiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(eu.tolist(), ev.tolist()))
    return graph


@needs_kernel
@pytest.mark.parametrize("seeded", [False, True])
def test_c_kernel_equals_python_definition(seeded: bool) -> None:
    graphs = _random_multigraphs(1500, seed=3)
    node_ptr = np.concatenate([[0], np.cumsum([n for n, _, _ in graphs])])
    edge_ptr = np.concatenate([[0], np.cumsum([len(u) for _, u, _ in graphs])])
    eu = np.concatenate([u for _, u, _ in graphs]).astype(np.int64)
    ev = np.concatenate([v for _, _, v in graphs]).astype(np.int64)
    seeds = [(17 * i + 5 if seeded else None) for i in range(len(graphs))]
    python = walk_batch_python(node_ptr, edge_ptr, eu, ev, seeds)
    c = walk_batch_c(node_ptr, edge_ptr, eu, ev, np.array([s or 0 for s in seeds], dtype=np.uint64),
                     np.array([s is not None for s in seeds], dtype=np.uint8))
    for name, a, b in zip(("visit_ptr", "node", "edge", "flags", "rank"), python, c):
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("seed", [None, 7])
def test_every_walk_is_a_valid_trail(seed) -> None:
    for n, eu, ev in _random_multigraphs(400, seed=11):
        _check_trail(n, eu, ev, walk_graph_python(n, eu, ev, seed))


def test_walks_on_special_shapes() -> None:
    cases = {
        "empty": (0, [], []),
        "single node": (1, [], []),
        "isolated nodes": (4, [1], [2]),
        "self-loops only": (2, [0, 0, 1], [0, 0, 1]),
        "parallel edges": (2, [0, 0, 0], [1, 1, 1]),
        "star (4 odd leaves)": (5, [0, 0, 0, 0], [1, 2, 3, 4]),
        "two triangles": (6, [0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3]),
    }
    for name, (n, eu, ev) in cases.items():
        eu, ev = np.asarray(eu, dtype=np.int64), np.asarray(ev, dtype=np.int64)
        walk = walk_graph_python(n, eu, ev)
        duplicates = _check_trail(n, eu, ev, walk)
        assert len(walk.node) == len(eu) + duplicates + (nx.number_connected_components(_multigraph(n, eu, ev)) if n else 0), name
    star = walk_graph_python(5, np.zeros(4, dtype=np.int64), np.arange(1, 5))
    assert int(((star.flags & FLAG_DUPLICATE) != 0).sum()) == 2  # 4 odd leaves: one pair kept open, one pair joined


def _tree_join_size(n, eu, ev, keep: set[int]) -> int:
    graph = _multigraph(n, eu, ev)
    odd = {v for v in range(n) if graph.degree(v) % 2 == 1} - keep
    # on a tree the T-join is unique: edge (v, parent) iff the subtree below holds an odd number of T nodes
    tree = nx.Graph(list(zip(eu.tolist(), ev.tolist())))
    root = 0
    count = 0
    for child, _parent in nx.bfs_predecessors(tree, root):
        below = set(nx.descendants(nx.bfs_tree(tree, root), child)) | {child}
        count += len(below & odd) % 2
    return count


def test_endpoint_choice_minimises_duplicates_on_trees() -> None:
    """On a tree the walk must keep open the pair of odd nodes that saves the most duplicates."""
    rng = np.random.default_rng(5)
    for _ in range(60):
        n = int(rng.integers(2, 12))
        parents = [int(rng.integers(0, v)) for v in range(1, n)]
        eu, ev = np.asarray(parents, dtype=np.int64), np.arange(1, n, dtype=np.int64)
        walk = walk_graph_python(n, eu, ev)
        duplicates = int(((walk.flags & FLAG_DUPLICATE) != 0).sum())
        graph = _multigraph(n, eu, ev)
        odd = [v for v in range(n) if graph.degree(v) % 2 == 1]
        best = min(_tree_join_size(n, eu, ev, {a, b}) for a, b in itertools.combinations(odd, 2))
        assert duplicates == best


def test_networkx_oracle_walks_are_valid_and_ours_are_not_longer_on_molecule_like_graphs() -> None:
    from gfm.testing.eulerian_synthetic import molecule_like_graphs

    ours_total = theirs_total = 0
    for graph in molecule_like_graphs(40, seed=2):
        src, dst = graph.edge_index.numpy()
        keep = src < dst
        eu, ev, n = src[keep], dst[keep], graph.num_nodes
        ours = _check_trail(n, eu, ev, walk_graph_python(n, eu, ev))
        theirs = _check_trail(n, eu, ev, networkx_walk(n, eu, ev))
        ours_total += ours
        theirs_total += theirs
    # networkx closes a circuit (pairs every odd node); the open trail saves at least one pair per graph
    assert ours_total < theirs_total


def test_seeds_change_walks_deterministically() -> None:
    n, eu, ev = 6, np.array([0, 1, 2, 3, 4, 5, 0, 1]), np.array([1, 2, 3, 4, 5, 0, 3, 4])
    walks = {seed: walk_graph_python(n, eu, ev, seed) for seed in range(12)}
    assert np.array_equal(walks[3].node, walk_graph_python(n, eu, ev, 3).node)
    assert len({tuple(w.node.tolist()) for w in walks.values()}) > 3
    for walk in walks.values():
        _check_trail(n, eu, ev, walk)
