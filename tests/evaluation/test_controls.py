"""Controls (label propagation, SVD probe, prototypes) against plain references."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gfm.data.registry import load
from gfm.evaluation.controls import (
    ControlError,
    SVDProbe,
    class_prototype_scores,
    label_propagation_link_scores,
    label_propagation_scores,
    normalized_adjacency,
    sample_k_labels_per_class,
)
from gfm.evaluation.metrics import accuracy


@pytest.fixture(scope="module")
def karate_graph(karate) -> Data:
    return karate.graphs[0]


def dense_normalized(edge_index: torch.Tensor, num_nodes: int, self_loops: bool) -> torch.Tensor:
    adjacency = torch.zeros(num_nodes, num_nodes)
    for u, v in edge_index.t().tolist():
        adjacency[u, v] = adjacency[v, u] = 1.0
    if self_loops:
        adjacency += torch.eye(num_nodes)
    degree = adjacency.sum(1).clamp(min=1)
    return adjacency / degree.sqrt()[:, None] / degree.sqrt()[None, :]


def test_normalized_adjacency_matches_dense(karate_graph):
    expected = dense_normalized(karate_graph.edge_index, karate_graph.num_nodes, self_loops=True)
    assert torch.allclose(normalized_adjacency(karate_graph.edge_index, karate_graph.num_nodes).to_dense(), expected, atol=1e-6)


def test_prototypes_match_a_loop(karate_graph):
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(karate_graph.num_nodes, 5, generator=generator)
    labelled = torch.tensor([0, 1, 2, 30, 31, 33])
    scores = class_prototype_scores(states, karate_graph.y, labelled)
    for node in range(karate_graph.num_nodes):
        for cls in range(2):
            members = [i for i in labelled.tolist() if int(karate_graph.y[i]) == cls]
            prototype = torch.stack([states[i] / states[i].norm() for i in members]).mean(0)
            expected = torch.dot(states[node] / states[node].norm(), prototype / prototype.norm())
            assert scores[node, cls] == pytest.approx(float(expected), abs=1e-5)
    with pytest.raises(ControlError, match=r"class\(es\) \[1\] have no labelled node"):
        class_prototype_scores(states, karate_graph.y, torch.tensor([0]), num_classes=2)


def test_label_propagation_matches_dense_iteration(karate_graph):
    labelled = torch.tensor([0, 33])
    scores = label_propagation_scores(karate_graph.edge_index, karate_graph.y, labelled, num_layers=30, alpha=0.9)
    matrix = dense_normalized(karate_graph.edge_index, karate_graph.num_nodes, self_loops=False)
    seeds = torch.zeros(karate_graph.num_nodes, 2)
    seeds[labelled, karate_graph.y[labelled]] = 1.0
    out = seeds.clone()
    for _ in range(30):
        out = (0.9 * matrix @ out + 0.1 * seeds).clamp(0, 1)
    assert torch.allclose(scores, out, atol=1e-5)
    # the two leaders' clubs are recovered for most members from two labels alone
    assert accuracy(karate_graph.y, scores) > 0.8

    pairs = torch.tensor([[0, 0, 5], [1, 33, 6]])
    indicator = torch.zeros(karate_graph.num_nodes, 3)
    indicator[pairs[0], torch.arange(3)] = 1.0
    out = indicator.clone()
    for _ in range(10):
        out = 0.9 * matrix @ out + 0.1 * indicator
    for dense in (None, True, False):  # automatic choice, dense operator, PyG sparse propagation
        link = label_propagation_link_scores(karate_graph.edge_index, karate_graph.num_nodes, pairs, num_layers=10, alpha=0.9,
                                             dense=dense)
        assert torch.allclose(link, out[pairs[1], torch.arange(3)], atol=1e-6)


def test_link_label_propagation_dense_and_sparse_paths_agree():
    """Random directed multigraph with isolated nodes, sources spread over several chunks."""
    generator = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 200, (2, 3000), generator=generator)
    pairs = torch.randint(0, 220, (2, 500), generator=generator)
    sparse = label_propagation_link_scores(edge_index, 220, pairs, chunk_size=64, dense=False)
    dense = label_propagation_link_scores(edge_index, 220, pairs, chunk_size=64, dense=True)
    assert torch.allclose(sparse, dense, atol=1e-6)
    assert float(sparse.max()) > 0.0


def test_svd_probe_is_deterministic_and_uses_features_only_when_given(karate_graph):
    probe = SVDProbe(rank=8, hops=2, seed=3)
    first = probe.embed(karate_graph.edge_index, karate_graph.num_nodes)
    assert torch.equal(first, probe.embed(karate_graph.edge_index, karate_graph.num_nodes))
    assert first.shape == (karate_graph.num_nodes, 8)
    features = torch.randn(karate_graph.num_nodes, 6, generator=torch.Generator().manual_seed(0))
    with_features = probe.embed(karate_graph.edge_index, karate_graph.num_nodes, features)
    assert with_features.shape == (karate_graph.num_nodes, 8 + 5)  # feature rank capped at F - 1
    assert torch.equal(with_features[:, :8], first)
    # rows are unit vectors per channel
    assert torch.allclose(first.norm(dim=1), torch.ones(karate_graph.num_nodes), atol=1e-5)


def test_sample_k_labels_per_class(karate_graph):
    candidates = karate_graph.train_mask
    chosen = sample_k_labels_per_class(karate_graph.y, candidates, k=3, seed=7)
    assert chosen.numel() == 6 and bool(candidates[chosen].all())
    assert torch.bincount(karate_graph.y[chosen]).tolist() == [3, 3]
    assert torch.equal(chosen, sample_k_labels_per_class(karate_graph.y, candidates, k=3, seed=7))
    with pytest.raises(ControlError, match="fewer than k=50"):
        sample_k_labels_per_class(karate_graph.y, candidates, k=50, seed=0)


@pytest.mark.data
@pytest.mark.slow
def test_svd_probe_on_cora_public_split(data_dir):
    """The parameter-free probe with the standard 20 labels per class (figure in docs/adaptation.md)."""
    cora = load("planetoid/cora", data_dir=data_dir).graphs[0]
    probe = SVDProbe(rank=256, hops=3)
    structure = probe.node_scores(cora.edge_index, cora.y, cora.train_mask)
    with_features = probe.node_scores(cora.edge_index, cora.y, cora.train_mask, features=cora.x)
    lp = label_propagation_scores(cora.edge_index, cora.y, cora.train_mask)
    test = cora.test_mask
    chance = float(torch.bincount(cora.y[test]).max()) / int(test.sum())
    acc = {name: accuracy(cora.y[test], s[test]) for name, s in
           (("structure", structure), ("features", with_features), ("lp", lp))}
    print(acc)
    assert acc["structure"] > chance + 0.3
    assert acc["features"] > acc["structure"]
