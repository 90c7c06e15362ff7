"""Universal node inputs: any graph to one width, roles against networkx, tokens carry whole-graph vectors."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import from_networkx, to_undirected

from gfm.data.sampling import EgoGraphSampler
from gfm.tokenization.node_inputs import (
    NodeInputConfig,
    NodeInputError,
    attach_node_inputs,
    evidence_channels,
    role_features,
    universal_node_inputs,
)


def karate(features: int | None = None) -> Data:
    data = from_networkx(nx.karate_club_graph())
    data = Data(edge_index=data.edge_index, num_nodes=34)
    if features:
        data.x = torch.rand(34, features, generator=torch.Generator().manual_seed(0))
    return data


@pytest.mark.parametrize("width", [None, 3, 700])
def test_any_feature_width_gives_the_same_fixed_width(width):
    config = NodeInputConfig()
    inputs = universal_node_inputs(karate(width), True, config)
    assert inputs.vectors.shape == (34, config.output_dim)
    assert torch.isfinite(inputs.vectors).all()
    assert inputs.has_features == (width is not None)


def test_structure_only_access_zeroes_the_feature_blocks_and_keeps_the_rest():
    config = NodeInputConfig()
    with_x = universal_node_inputs(karate(20), True, config)
    without = universal_node_inputs(karate(20), False, config)
    slices = config.slices()
    for block in ("categorical", "continuous", "A1_features", "A2_features", "has_continuous"):
        assert without.vectors[:, slices[block]].abs().sum() == 0
    assert with_x.vectors[:, slices["continuous"]].abs().sum() > 0
    for block in ("structure", "roles", "log_degree"):
        torch.testing.assert_close(with_x.vectors[:, slices[block]], without.vectors[:, slices[block]])


def test_partial_directed_and_edgeless_graphs_encode():
    config = NodeInputConfig()
    partial = karate(12)
    partial.x[10:] = 0.0  # PubMed-like: features known for some rows only
    assert torch.isfinite(universal_node_inputs(partial, True, config).vectors).all()
    directed = Data(edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), num_nodes=5, directed=True)
    assert universal_node_inputs(directed, True, config).vectors.shape == (5, config.output_dim)
    edgeless = Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=4, x=torch.rand(4, 3))
    vectors = universal_node_inputs(edgeless, True, config).vectors
    assert torch.isfinite(vectors).all() and vectors[:, config.slices()["structure"]].abs().sum() == 0
    channels = evidence_channels(edgeless, True, config)
    assert set(channels) >= {"feat:X", "struct:X", "roles"}


def test_bad_graph_is_a_named_error():
    bad = karate(4)
    bad.x[3, 1] = float("nan")
    with pytest.raises(NodeInputError, match=r"field 'x' holds a NaN value at node 3, column 1.*impute"):
        universal_node_inputs(bad, True)


def test_clustering_exact_and_sampled_against_networkx():
    graph = nx.karate_club_graph()
    edges = to_undirected(from_networkx(graph).edge_index)
    data = Data(edge_index=edges, num_nodes=34)
    clustering = torch.tensor([nx.clustering(graph, n) for n in range(34)], dtype=torch.float32)

    def unstandardized(config):
        roles = role_features(data, config)
        # the clustering column is standardized: undo with networkx's mean and std
        return roles[:, 1] * clustering.std(unbiased=False) + clustering.mean()

    torch.testing.assert_close(unstandardized(NodeInputConfig()), clustering, atol=1e-5, rtol=1e-5)
    sampled = unstandardized(NodeInputConfig(exact_triangle_budget=0, triangle_samples=4000))
    assert (sampled - clustering).abs().mean() < 0.03


def test_pagerank_column_against_networkx():
    graph = nx.karate_club_graph()
    data = Data(edge_index=to_undirected(from_networkx(graph).edge_index), num_nodes=34)
    rank = nx.pagerank(nx.Graph(graph.edges()), alpha=0.85, tol=1e-12)
    expected = torch.log(torch.tensor([rank[n] for n in range(34)], dtype=torch.float64) * 34).float()
    column = role_features(data, NodeInputConfig(pagerank_iterations=200))[:, 2]
    expected = (expected - expected.mean()) / expected.std(unbiased=False)
    torch.testing.assert_close(column, expected, atol=1e-4, rtol=1e-4)


def _ego_graphs(data: Data):
    sampler = EgoGraphSampler(data, method="khop", num_hops=2, max_neighbors=5, seed=0)
    return list(sampler.node_samples(torch.tensor([0, 5, 33])))


def test_ego_graph_tokens_carry_the_whole_graph_vectors_eulerian():
    from gfm.tokenization.eulerian import EulerianTokenizer

    data = karate(6)
    vectors = universal_node_inputs(data, True).vectors
    egos = _ego_graphs(data)
    tokenizer = EulerianTokenizer.train(egos, num_index_tokens=64)
    for ego in egos:
        tokens = attach_node_inputs(tokenizer.encode(ego), ego.n_id, vectors)
        has = tokens.node_index >= 0
        assert has.any() and tokens.node_features.shape == (len(tokens), vectors.shape[1])
        assert torch.equal(tokens.node_features[has], vectors[ego.n_id[tokens.node_index[has]]])
        assert tokens.node_features[~has].abs().sum() == 0
        # the centre's vector is the whole graph's, not the ego graph's own
        centre = tokens.node_features[(tokens.node_index == 0).nonzero()[0, 0]]
        assert torch.equal(centre, vectors[int(ego.n_id[0])])


def test_ego_graph_tokens_carry_the_whole_graph_vectors_quantized():
    from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig

    data = karate(6)
    vectors = universal_node_inputs(data, True).vectors
    config = QuantizedTokenizerConfig(structure_dim=8, categorical_width=8, continuous_width=8, hidden_dim=32,
                                      code_dim=16, num_layers=2, num_levels=2, codebook_size=16, epochs=2,
                                      steps_per_epoch=3, vq_warmup_epochs=1, nodes_per_dataset_per_step=16,
                                      kmeans_sample_per_dataset=16, ppr_top_k=6, max_whole_graph_nodes=200)
    tokenizer = QuantizedTokenizer.train([data], config, progress=False)
    for ego in _ego_graphs(data):
        tokens = attach_node_inputs(tokenizer.encode(ego), ego.n_id, vectors)
        has = tokens.node_index >= 0
        assert has.any()
        assert torch.equal(tokens.node_features[has], vectors[ego.n_id[tokens.node_index[has]]])


def test_attach_refuses_ids_that_do_not_match():
    from gfm.tokenization.tokenized_graph import TokenizedGraph

    tokens = TokenizedGraph(input_ids=[1, 2, 3], node_index=[0, 2, -1], edge_index=[[], []], num_nodes=3)
    with pytest.raises(NodeInputError, match="sampled node 2 but only 2 node ids"):
        attach_node_inputs(tokens, torch.tensor([4, 7]), torch.zeros(10, 3))
    with pytest.raises(NodeInputError, match="outside the whole graph's 5 vectors"):
        attach_node_inputs(tokens, torch.tensor([0, 1, 9]), torch.zeros(5, 3))
