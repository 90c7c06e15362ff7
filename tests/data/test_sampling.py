"""Samplers: vectorized k-hop / PPR equal the plain-loop references exactly, the uncapped k-hop
equals networkx's ego_graph, PPR is within its error bound of the exact solve, results are
deterministic and independent of chunking, and EgoGraphSampler builds aligned samples."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric.utils import to_undirected

from gfm.data import registry
from gfm.data.sampling import (
    EgoGraphSampler,
    build_csr,
    hash_keys,
    khop_ego_batch,
    ppr_ego_batch,
    ppr_scores,
    ppr_topk,
)
from gfm.testing.sampling_reference import (
    adjacency_lists,
    hash_reference,
    khop_ego_reference,
    out_edge_lists,
    ppr_exact,
    ppr_push_reference,
)


def _random_graph(num_nodes: int, num_edges: int, seed: int, undirected: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(num_nodes, (2, num_edges), generator=generator)
    # a few hubs, self-loops and repeated edges on purpose
    hubs = torch.stack([torch.zeros(num_nodes // 2, dtype=torch.long), torch.arange(num_nodes // 2)])
    edge_index = torch.cat([edge_index, hubs, edge_index[:, :5]], dim=1)
    return to_undirected(edge_index, num_nodes=num_nodes, reduce="add") if undirected else edge_index


def _assert_khop_matches_reference(edge_index, num_nodes, centers, hops, cap, seed, direction):
    batch = khop_ego_batch(edge_index, num_nodes, centers, hops, cap, seed, direction)
    adjacency = adjacency_lists(edge_index, num_nodes, direction)
    out_edges = out_edge_lists(edge_index, num_nodes)
    for i, centre in enumerate(centers.tolist()):
        nodes, hop, edges = khop_ego_reference(edge_index, num_nodes, centre, hops, cap, seed, direction, adjacency, out_edges)
        got_nodes, got_edges, got_ids = batch.ego(i)
        assert got_nodes.tolist() == nodes and batch.hops[batch.node_ptr[i] : batch.node_ptr[i + 1]].tolist() == hop
        assert list(zip(got_edges[0].tolist(), got_edges[1].tolist(), got_ids.tolist())) == edges


def test_hash_matches_the_python_reference():
    values = torch.randint(0, 2**32, (500,), generator=torch.Generator().manual_seed(0))
    hashed = hash_keys(123, values, values + 7)
    assert hashed.tolist() == [hash_reference(123, v, v + 7) for v in values.tolist()]
    assert hashed.min() >= 0 and hashed.max() < 2**32


@pytest.mark.parametrize("direction,undirected", [("out", True), ("out", False), ("in", False), ("both", False)])
@pytest.mark.parametrize("cap", [None, 1, 4])
def test_khop_equals_reference_on_random_graphs(direction, undirected, cap):
    edge_index = _random_graph(80, 300, seed=3, undirected=undirected)
    _assert_khop_matches_reference(edge_index, 80, torch.arange(80), 2, cap, 11, direction)


def test_khop_three_hops_and_isolated_centres():
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    batch = khop_ego_batch(edge_index, 6, torch.tensor([0, 5, 3]), num_hops=3, max_neighbors=None)
    assert batch.ego(0)[0].tolist() == [0, 1, 2, 3] and batch.ego(1)[0].tolist() == [5]
    assert batch.ego(1)[1].shape == (2, 0) and batch.ego(2)[0].tolist() == [3, 2, 1, 0]


@pytest.mark.parametrize("name", ["packaged/karate", "packaged/les-miserables"])
def test_uncapped_khop_equals_networkx_ego_graph(name):
    graph = registry.load(name)[0]
    n = graph.num_nodes
    reference = nx.Graph()
    reference.add_nodes_from(range(n))
    reference.add_edges_from(graph.edge_index.t().tolist())
    batch = khop_ego_batch(graph.edge_index, n, torch.arange(n), num_hops=2, max_neighbors=None)
    for centre in range(n):
        ego = nx.ego_graph(reference, centre, radius=2)
        nodes, edges, _ = batch.ego(centre)
        assert set(nodes.tolist()) == set(ego.nodes) and nodes[0] == centre
        got = {frozenset((int(nodes[a]), int(nodes[b]))) for a, b in edges.t().tolist()}
        assert got == {frozenset(e) for e in ego.edges}
        assert edges.shape[1] == 2 * ego.number_of_edges()


def test_khop_is_deterministic_and_independent_of_chunking():
    edge_index = _random_graph(300, 3000, seed=5, undirected=True)
    whole = khop_ego_batch(edge_index, 300, torch.arange(300), 2, 3, seed=7)
    again = khop_ego_batch(edge_index, 300, torch.arange(300), 2, 3, seed=7)
    other_seed = khop_ego_batch(edge_index, 300, torch.arange(300), 2, 3, seed=8)
    reversed_order = khop_ego_batch(edge_index, 300, torch.arange(299, -1, -1), 2, 3, seed=7)
    assert torch.equal(whole.nodes, again.nodes) and torch.equal(whole.edge_index, again.edge_index)
    assert not torch.equal(whole.nodes, other_seed.nodes)
    for centre in (0, 17, 299):
        a, b = whole.ego(centre), reversed_order.ego(299 - centre)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    sampler = EgoGraphSampler(_data(edge_index, 300), max_neighbors=3, seed=7, chunk_size=37)
    for sample, centre in zip(sampler.node_samples(torch.arange(300)), range(300)):
        nodes, edges, _ = whole.ego(centre)
        assert torch.equal(sample.n_id, nodes) and torch.equal(sample.edge_index, edges)


def test_capped_khop_respects_the_cap_and_samples_uniformly():
    # 400 disjoint stars of 50 leaves, cap 5: each centre keeps 5 distinct leaves, and each leaf
    # position is kept ~10% of the time across centres (the hash makes centres independent)
    stars, leaves = 400, 50
    centres = torch.arange(stars) * (leaves + 1)
    leaf_ids = centres.unsqueeze(1) + torch.arange(1, leaves + 1)
    edge_index = to_undirected(torch.stack([centres.repeat_interleave(leaves), leaf_ids.reshape(-1)]))
    batch = khop_ego_batch(edge_index, stars * (leaves + 1), centres, 1, 5, seed=0)
    counts = torch.zeros(leaves)
    for i in range(stars):
        nodes = batch.ego(i)[0]
        assert nodes.numel() == 6 and nodes.unique().numel() == 6 and nodes[0] == centres[i]
        counts[nodes[1:] - centres[i] - 1] += 1
    frequencies = counts / stars
    assert frequencies.mean() == pytest.approx(0.1) and frequencies.min() > 0.04 and frequencies.max() < 0.18


def test_ppr_push_equals_reference_and_is_within_bound_of_exact():
    edge_index = _random_graph(150, 600, seed=2, undirected=True)
    edge_index = torch.cat([edge_index, torch.tensor([[149], [149]])], dim=1)  # self-loop stays symmetric
    n, eps = 150, 1e-4
    csr = build_csr(edge_index, n)
    seeds = torch.tensor([0, 1, 7, 64, 149])
    scores = ppr_scores(csr, seeds, alpha=0.15, eps=eps)
    adjacency = adjacency_lists(edge_index, n)
    degree = torch.tensor([max(len(a), 1) for a in adjacency], dtype=torch.float64)
    for row, seed in enumerate(seeds.tolist()):
        reference = torch.zeros(n, dtype=torch.float64)
        for node, value in ppr_push_reference(edge_index, n, seed, 0.15, eps, adjacency=adjacency).items():
            reference[node] = value
        assert torch.allclose(scores[row], reference, rtol=0, atol=1e-12)
        error = ppr_exact(edge_index, n, seed, 0.15) - scores[row]
        assert (error >= -1e-12).all() and (error <= eps * degree + 1e-12).all()


def test_ppr_handles_isolated_and_dangling_nodes():
    edge_index = torch.tensor([[0, 1], [1, 2]])  # directed chain 0 -> 1 -> 2, node 3 isolated
    neighbors, weights = ppr_topk(edge_index, 4, torch.tensor([0, 3]), k=3, eps=1e-9)
    assert neighbors[1].tolist() == [-1, -1, -1] and weights[1].tolist() == [0.0, 0.0, 0.0]
    assert neighbors[0].tolist() == [1, 2, -1]
    exact = ppr_exact(edge_index, 4, 0)
    assert weights[0, :2].double().tolist() == pytest.approx([exact[1].item(), exact[2].item()], abs=1e-7)


def test_ppr_topk_order_padding_and_chunking():
    edge_index = _random_graph(200, 900, seed=4, undirected=True)
    seeds = torch.arange(0, 200, 5)
    neighbors, weights = ppr_topk(edge_index, 200, seeds, k=16, eps=1e-3)
    chunked, chunked_weights = ppr_topk(edge_index, 200, seeds, k=16, eps=1e-3, chunk_size=7)
    assert torch.equal(neighbors, chunked) and torch.equal(weights, chunked_weights)
    assert neighbors.dtype == torch.long and weights.dtype == torch.float32 and neighbors.shape == (40, 16)
    assert (neighbors != seeds.unsqueeze(1)).all()  # the seed itself is excluded
    valid = neighbors >= 0
    assert (weights[valid] > 0).all() and (weights[~valid] == 0).all()
    assert (weights[:, :-1] >= weights[:, 1:]).all()
    scores = ppr_scores(build_csr(edge_index, 200), seeds, eps=1e-3)
    scores[torch.arange(40), seeds] = 0
    top = torch.sort(scores, dim=1, descending=True, stable=True)
    assert torch.equal(neighbors[:, :5], top.indices[:, :5]) or (top.values[:, 4] == top.values[:, 5]).any()
    with_self, _ = ppr_topk(edge_index, 200, torch.arange(5), k=4, eps=1e-3, exclude_self=False)
    assert with_self[:, 0].tolist() == list(range(5))


def test_ppr_ego_batch_weights_and_nodes():
    edge_index = _random_graph(100, 400, seed=6, undirected=True)
    neighbors, weights = ppr_topk(edge_index, 100, torch.arange(10), k=8)
    batch = ppr_ego_batch(edge_index, 100, torch.arange(10), k=8)
    for i in range(10):
        nodes, _, _ = batch.ego(i)
        expected = neighbors[i][neighbors[i] >= 0]
        assert nodes[0] == i and nodes[1:].tolist() == sorted(expected.tolist())
        node_weights = batch.weights[batch.node_ptr[i] : batch.node_ptr[i + 1]]
        assert node_weights[0] == node_weights.max()
        order = torch.argsort(expected)
        assert torch.equal(node_weights[1:], weights[i][neighbors[i] >= 0][order])


def _data(edge_index, n, **extra):
    from torch_geometric.data import Data

    return Data(edge_index=edge_index, num_nodes=n, domain="toy", **extra)


def test_node_samples_carry_aligned_features_labels_and_target():
    edge_index = _random_graph(80, 300, seed=8, undirected=True)
    x = torch.randn(80, 4)
    edge_attr = torch.arange(edge_index.shape[1]).view(-1, 1)
    y = torch.arange(80) % 3
    sampler = EgoGraphSampler(_data(edge_index, 80, x=x, edge_attr=edge_attr, y=y), num_hops=2, max_neighbors=4, seed=1)
    samples = list(sampler.node_samples(torch.tensor([5, 9, 70])))
    for sample, centre in zip(samples, (5, 9, 70)):
        assert sample.target_node.tolist() == [0] and sample.n_id[0] == centre and int(sample.y) == int(y[centre])
        assert torch.equal(sample.x, x[sample.n_id]) and torch.equal(sample.edge_attr, edge_attr[sample.e_id])
        global_edges = sample.n_id[sample.edge_index]
        assert torch.equal(global_edges, edge_index[:, sample.e_id])
        assert sample.domain == "toy" and sample.hop[0] == 0


def test_edge_samples_remove_the_target_edge():
    edge_index = _random_graph(60, 200, seed=9, undirected=True)
    pairs = edge_index[:, :6]
    sampler = EgoGraphSampler(_data(edge_index, 60), num_hops=1, max_neighbors=None)
    for i, sample in enumerate(sampler.edge_samples(pairs, labels=torch.ones(6))):
        u, v = pairs[:, i].tolist()
        assert sample.target_edge.tolist() == [[0, 1 if u != v else 0]]
        assert sample.n_id[0] == u and sample.n_id[int(sample.target_edge[0, 1])] == v
        between = ((sample.edge_index[0] == 0) & (sample.edge_index[1] == sample.target_edge[0, 1]))
        assert not between.any() and float(sample.y) == 1.0
        neighbours = set(edge_index[1][edge_index[0] == u].tolist()) | set(edge_index[1][edge_index[0] == v].tolist())
        assert set(sample.n_id.tolist()) == neighbours | {u, v}
    kept = next(iter(sampler.edge_samples(pairs[:, :1], remove_target_edge=False)))
    assert ((kept.edge_index[0] == 0) & (kept.edge_index[1] == 1)).any()


def _check_real_graph_against_references(graph, centers):
    n = graph.num_nodes
    _assert_khop_matches_reference(graph.edge_index, n, centers, 2, 10, 0, "out")
    sampler = EgoGraphSampler(graph, method="ppr", ppr_k=16, eps=1e-4)
    adjacency = adjacency_lists(graph.edge_index, n)
    for sample, centre in zip(sampler.node_samples(centers[:3]), centers[:3].tolist()):
        reference = ppr_push_reference(graph.edge_index, n, centre, 0.15, 1e-4, adjacency=adjacency)
        ranked = sorted((node for node in reference if node != centre), key=lambda v: (-reference[v], v))[:16]
        assert sorted(sample.n_id[1:].tolist()) == sorted(ranked)
        assert int(sample.y) == int(graph.y[centre])


@pytest.mark.data
def test_sampling_on_a_real_social_graph_matches_references(data_dir):
    graph = registry.load("karateclub/lastfm", data_dir)[0]
    _check_real_graph_against_references(graph, torch.tensor([0, 1, 2, 3000, 7623]))


@pytest.mark.data
@pytest.mark.slow
def test_sampling_on_github_matches_references(data_dir):
    graph = registry.load("karateclub/github", data_dir)[0]
    assert graph.num_nodes == 37700
    _check_real_graph_against_references(graph, torch.tensor([0, 1, 2, 31890, 27803, 37699]))
