"""The shared input space: any feature width, label-free, deterministic, saved exactly."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import erdos_renyi_graph, stochastic_blockmodel_graph, to_undirected

from gfm.tokenization.input_space import (
    GraphInputProjector,
    InputSpaceConfig,
    InputSpaceError,
    _column_signs,
    feature_schema_key,
)

SMALL = InputSpaceConfig(structure_dim=8, categorical_width=16, continuous_width=12, smoothing_hops=2)


def _random_graph(num_nodes: int, p: float, seed: int, **fields) -> Data:
    torch.manual_seed(seed)
    edge_index = erdos_renyi_graph(num_nodes, p)
    return Data(edge_index=edge_index, num_nodes=num_nodes, **fields)


def _molecule_like(seed: int, num_nodes: int = 12) -> Data:
    generator = torch.Generator().manual_seed(seed)
    ring = torch.stack([torch.arange(num_nodes), (torch.arange(num_nodes) + 1) % num_nodes])
    x = torch.randint(0, 5, (num_nodes, 9), generator=generator)
    return Data(x=x, edge_index=to_undirected(ring), num_nodes=num_nodes, domain="molecules")


@pytest.mark.parametrize("width", [0, 7, 3703])
def test_any_continuous_width_maps_to_one_width(width):
    fields = {} if width == 0 else {"x": torch.randn(60, width)}
    graph = _random_graph(60, 0.1, 0, **fields)
    projector = GraphInputProjector(SMALL)
    out = projector.transform(graph)
    assert out.shape == (60, SMALL.output_dim)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    slices = SMALL.slices()
    assert float(out[0, slices["has_continuous"]]) == (1.0 if width else 0.0)
    if width == 0:
        assert torch.count_nonzero(out[:, slices["continuous"]]) == 0
    else:
        assert torch.count_nonzero(out[:, slices["continuous"]]) > 0


def test_categorical_columns_are_hashed_consistently_across_graphs():
    projector = GraphInputProjector(SMALL)
    first, second = _molecule_like(0), _molecule_like(1)
    second.x[3] = first.x[5]
    block = SMALL.slices()["categorical"]
    a = projector.transform(first)[:, block]
    b = projector.transform(second)[:, block]
    assert torch.equal(a[5], b[3])  # same atom columns -> same hashed vector in any graph
    assert torch.allclose(a.norm(dim=1), torch.ones(12), atol=0.5)  # ~unit norm (collisions aside)
    swapped = first.clone()
    swapped.x = first.x[:, [1, 0, 2, 3, 4, 5, 6, 7, 8]]
    # a value in another column hashes elsewhere (column identity is part of the key)
    assert not torch.equal(projector.transform(swapped)[:, block], a)


def test_categorical_and_continuous_together():
    graph = _random_graph(30, 0.2, 1, x=torch.randint(0, 3, (30, 1)), x_cont=torch.rand(30, 2))
    out = GraphInputProjector(SMALL).transform(graph)
    slices = SMALL.slices()
    assert float(out[0, slices["has_categorical"]]) == 1.0
    assert float(out[0, slices["has_continuous"]]) == 1.0


def test_deterministic_and_independent_of_global_rng():
    graph = _random_graph(700, 0.02, 2, x=torch.randn(700, 100))  # randomized-SVD and PCA paths
    projector = GraphInputProjector(SMALL)
    torch.manual_seed(123)
    first = projector.transform(graph)
    torch.manual_seed(999)
    torch.rand(10)
    second = projector.transform(graph)
    assert torch.equal(first, second)


def test_small_graph_rank_is_at_most_num_nodes():
    graph = Data(edge_index=to_undirected(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])), num_nodes=5)
    out = GraphInputProjector(SMALL).transform(graph)
    structure = out[:, SMALL.slices()["structure"]]
    assert torch.count_nonzero(structure[:, 5:]) == 0  # rank <= N = 5: remaining columns are zeros
    assert torch.allclose(structure.norm(dim=1), torch.ones(5), atol=1e-5)


def test_randomized_svd_agrees_with_exact_eigh():
    torch.manual_seed(0)
    edge_index = stochastic_blockmodel_graph(
        [300, 200, 100], [[0.20, 0.01, 0.01], [0.01, 0.25, 0.01], [0.01, 0.01, 0.4]]
    )
    graph = Data(edge_index=edge_index, num_nodes=600)
    config = InputSpaceConfig(structure_dim=3, smoothing_hops=0, svd_niter=6)
    randomized = GraphInputProjector(config).structure_channel(graph)[0]
    exact_config = InputSpaceConfig(structure_dim=3, smoothing_hops=0, exact_eigen_max_nodes=1000)
    exact = GraphInputProjector(exact_config).structure_channel(graph)[0]
    # Both are row-normalized embeddings of the same top-3 spectral subspace with fixed signs.
    assert torch.allclose(randomized, exact, atol=2e-2), (randomized - exact).abs().max()


def test_column_signs_make_third_moment_positive():
    vectors = torch.randn(50, 4, dtype=torch.float64)
    fixed = vectors * _column_signs(vectors)
    assert ((fixed**3).sum(dim=0) > 0).all()
    flipped = vectors * torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    assert torch.equal(flipped * _column_signs(flipped), fixed)


def test_graph_without_edges_has_zero_structure_and_valid_features():
    graph = Data(x=torch.randint(0, 4, (6, 9)), edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=6)
    out = GraphInputProjector(SMALL).transform(graph)
    slices = SMALL.slices()
    assert torch.count_nonzero(out[:, slices["structure"]]) == 0
    assert torch.count_nonzero(out[:, slices["log_degree"]]) == 0
    assert torch.count_nonzero(out[:, slices["categorical"]]) > 0
    single_atom = Data(
        x=torch.tensor([[6, 0, 4, 5, 3, 0, 4, 0, 0]]), edge_index=torch.zeros(2, 0, dtype=torch.long)
    )
    single_atom.num_nodes = 1
    assert GraphInputProjector(SMALL).transform(single_atom).shape == (1, SMALL.output_dim)


@pytest.mark.parametrize(("bad", "kind"), [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_non_finite_features_are_rejected_with_their_location(bad, kind):
    x = torch.randn(10, 3)
    x[4, 2] = bad
    graph = _random_graph(10, 0.3, 3, x=x)
    graph.name = "g7"
    with pytest.raises(
        InputSpaceError, match=rf"graph 'g7': field 'x' holds an? {kind} value at node 4, column 2"
    ):
        GraphInputProjector(SMALL).transform(graph)
    x_cont = torch.rand(10, 2)
    x_cont[1, 0] = bad
    graph = _random_graph(10, 0.3, 3, x=torch.zeros(10, 1, dtype=torch.long), x_cont=x_cont)
    with pytest.raises(InputSpaceError, match=rf"field 'x_cont' holds an? {kind} value at node 1, column 0"):
        GraphInputProjector(SMALL).transform(graph)


def test_asymmetric_edges_need_directed_flag():
    graph = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3)
    with pytest.raises(InputSpaceError, match="not symmetric.*set data.directed = True"):
        GraphInputProjector(SMALL).transform(graph)
    graph.directed = True
    symmetric = Data(edge_index=to_undirected(torch.tensor([[0, 1], [1, 2]])), num_nodes=3)
    assert torch.equal(
        GraphInputProjector(SMALL).transform(graph), GraphInputProjector(SMALL).transform(symmetric)
    )


def test_bad_graphs_are_named():
    with pytest.raises(InputSpaceError, match="has no nodes"):
        GraphInputProjector(SMALL).transform(
            Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=0)
        )
    with pytest.raises(InputSpaceError, match="refers to node 5.*num_nodes is 3"):
        GraphInputProjector(SMALL).transform(Data(edge_index=torch.tensor([[0, 5], [5, 0]]), num_nodes=3))
    with pytest.raises(InputSpaceError, match="field 'x' has 4 rows but the graph has 3 nodes"):
        GraphInputProjector(SMALL).transform(
            Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=3, x=torch.ones(4, 2))
        )


def test_fit_stores_multi_graph_schemas_and_unseen_widths_self_fit():
    corpus = [_random_graph(20, 0.2, s, x_cont=torch.rand(20, 3) * 10, domain="proteins") for s in range(5)]
    projector = GraphInputProjector(SMALL).fit(corpus)
    key = feature_schema_key(corpus[0])
    assert key == "proteins|cat0|cont3"
    assert set(projector.continuous_stats) == {key}
    stats = projector.continuous_stats[key]
    assert stats.num_graphs == 5 and stats.num_nodes == 100
    # A stored schema projects a graph with corpus statistics, not its own.
    alone = GraphInputProjector(SMALL).transform(corpus[0])
    assert not torch.allclose(projector.transform(corpus[0]), alone)
    # A width never seen is projected with the graph's own statistics, no refit needed.
    unseen = _random_graph(40, 0.1, 9, x=torch.randn(40, 2325), domain="wiki")
    assert projector.transform(unseen).shape == (40, SMALL.output_dim)
    with pytest.raises(InputSpaceError, match="already fitted"):
        projector.fit(corpus)


def test_schema_width_mismatch_is_named():
    corpus = [
        _random_graph(20, 0.2, s, x=torch.rand(20, 3), domain="d", feature_schema="mine") for s in range(3)
    ]
    projector = GraphInputProjector(SMALL).fit(corpus)
    other = _random_graph(20, 0.2, 7, x=torch.rand(20, 4), domain="d", feature_schema="mine")
    with pytest.raises(InputSpaceError, match="schema 'mine' was fitted on width 3 but the graph has 4"):
        projector.transform(other)


def test_save_load_round_trip(tmp_path):
    corpus = [_random_graph(30, 0.2, s, x=torch.randn(30, 40), domain="bio") for s in range(4)]
    projector = GraphInputProjector(SMALL).fit(corpus)
    path = projector.save(tmp_path / "input_space.safetensors")
    loaded = GraphInputProjector.load(path)
    assert loaded.content_hash == projector.content_hash
    assert loaded.config == projector.config
    for graph in corpus:
        assert torch.equal(loaded.transform(graph), projector.transform(graph))
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputSpaceError, match="not a readable safetensors file"):
        GraphInputProjector.load(tmp_path / "broken.safetensors")
    with pytest.raises(InputSpaceError, match="no such file"):
        GraphInputProjector.load(tmp_path / "missing.safetensors")


def test_bag_of_words_is_projected_to_its_principal_directions():
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 500, generator=generator) < 0.02).float()
    graph = _random_graph(300, 0.02, 5, x=x)
    projector = GraphInputProjector(SMALL)
    stats = projector.statistics_for(graph)
    assert stats.basis is not None and stats.basis.shape == (500, SMALL.continuous_width)
    gram = stats.basis.T @ stats.basis
    assert torch.allclose(gram, torch.eye(SMALL.continuous_width), atol=1e-4)  # orthonormal directions


def test_simple_edges_match_pyg_reference():
    from torch_geometric.utils import coalesce, remove_self_loops

    from gfm.tokenization.input_space import _undirected_simple_edges

    generator = torch.Generator().manual_seed(3)
    raw = torch.randint(0, 40, (2, 300), generator=generator)  # duplicates and self-loops included
    directed = Data(edge_index=raw, num_nodes=40, directed=True)
    reference, _ = remove_self_loops(to_undirected(raw, num_nodes=40))
    assert torch.equal(_undirected_simple_edges(directed), coalesce(reference, num_nodes=40))
    undirected = Data(edge_index=to_undirected(raw, num_nodes=40), num_nodes=40)
    assert torch.equal(_undirected_simple_edges(undirected), coalesce(reference, num_nodes=40))
