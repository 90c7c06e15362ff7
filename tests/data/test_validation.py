"""Graph validation, TaskSpec checks and registry errors: each bad input gets a message check."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gfm.data import registry
from gfm.data.dataset import (
    DataNotFoundError,
    GraphDataset,
    GraphValidationError,
    TaskSpec,
    UnknownDatasetError,
    validate_dataset,
    validate_graph,
    validate_graphs,
)


def _triangle(**extra) -> Data:
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]])
    return Data(edge_index=edge_index, num_nodes=3, **extra)


def test_valid_graph_passes_unchanged():
    data = _triangle(x=torch.zeros(3, 2), edge_attr=torch.zeros(6, 1, dtype=torch.long))
    assert validate_graph(data, "triangle") is data


def test_edge_index_past_node_count_names_graph_column_and_fix():
    data = _triangle()
    data.edge_index = torch.tensor([[0, 1, 3], [1, 0, 0]])
    with pytest.raises(GraphValidationError, match=r"my graph 7: edge_index column 2 is \(3, 0\) but num_nodes is 3.*\[0, 3\)"):
        validate_graph(data, "my graph 7")


def test_nan_features_name_field_and_row():
    data = _triangle(x=torch.tensor([[0.0], [float("nan")], [1.0]]))
    with pytest.raises(GraphValidationError, match=r"g: x holds NaN or infinite values \(first in row 1\); impute"):
        validate_graph(data, "g")
    data = _triangle(x_cont=torch.tensor([[0.0], [1.0], [float("inf")]]))
    with pytest.raises(GraphValidationError, match=r"x_cont holds NaN or infinite values \(first in row 2\)"):
        validate_graph(data, "g")


def test_asymmetric_edge_index_needs_directed_flag():
    data = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3)
    with pytest.raises(GraphValidationError, match=r"not symmetric \(edge 0 -> 1 has no reverse 1 -> 0\).*directed = True"):
        validate_graph(data, "g")
    data.directed = True
    validate_graph(data, "g")


def test_multiset_asymmetry_is_caught():
    # (0, 1) twice but (1, 0) once: same edge set, different multiplicities
    data = Data(edge_index=torch.tensor([[0, 0, 1], [1, 1, 0]]), num_nodes=2)
    with pytest.raises(GraphValidationError, match="not symmetric"):
        validate_graph(data, "g")


def test_shape_dtype_and_row_count_errors():
    with pytest.raises(GraphValidationError, match="dtype torch.int32; convert it with edge_index.long"):
        validate_graph(Data(edge_index=torch.zeros(2, 0, dtype=torch.int32), num_nodes=1), "g")
    with pytest.raises(GraphValidationError, match=r"shape \(3, 2\), expected \[2, E\]"):
        validate_graph(Data(edge_index=torch.zeros(3, 2, dtype=torch.long), num_nodes=1), "g")
    with pytest.raises(GraphValidationError, match="num_nodes is not set"):
        validate_graph(Data(edge_index=torch.zeros(2, 0, dtype=torch.long), x=torch.zeros(2, 1)), "g")
    with pytest.raises(GraphValidationError, match=r"x has shape \(2, 1\) but num_nodes is 3"):
        validate_graph(_triangle(x=torch.zeros(2, 1)), "g")
    with pytest.raises(GraphValidationError, match=r"edge_attr has shape \(5, 1\) but the number of edges E is 6"):
        validate_graph(_triangle(edge_attr=torch.zeros(5, 1)), "g")
    with pytest.raises(GraphValidationError, match="row 1 holds a negative id"):
        validate_graph(_triangle(x=torch.tensor([[0], [-1], [2]])), "g")


def test_batch_validation_names_the_first_bad_graph():
    graphs = [_triangle(x=torch.zeros(3, 1)) for _ in range(100)]
    validate_graphs(graphs, "toy")
    graphs[57].x = torch.tensor([[0.0], [float("nan")], [0.0]])
    with pytest.raises(GraphValidationError, match=r"toy graph 57: x holds NaN"):
        validate_graphs(graphs, "toy")


def test_taskspec_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="classification needs num_classes >= 2"):
        TaskSpec("graph", "classification", 1, 1, ["y"], "accuracy")
    with pytest.raises(ValueError, match="level='weird'"):
        TaskSpec("weird", "regression", None, 1, ["y"], "mae")
    with pytest.raises(ValueError, match="2 target_names for num_targets=1"):
        TaskSpec("graph", "regression", None, 1, ["a", "b"], "mae")
    spec = TaskSpec("node", "classification", 3, 1, ["label"], "accuracy", class_names=["a", "b", "c"])
    assert TaskSpec.from_dict(spec.to_dict()) == spec


def test_dataset_validation_checks_targets_against_task():
    graph = _triangle(y=torch.tensor([[1.0]]), domain="toy")
    task = TaskSpec("graph", "classification", 2, 1, ["y"], "accuracy")
    with pytest.raises(GraphValidationError, match=r"y is torch.float32 \(1, 1\), expected torch.int64 \[1\]"):
        validate_dataset(GraphDataset("toy", "toy", task, [graph]))
    graph.y = torch.tensor([2])
    with pytest.raises(GraphValidationError, match=r"class id 2 outside \[0, 2\)"):
        validate_dataset(GraphDataset("toy", "toy", task, [graph]))
    graph.y = torch.tensor([1])
    graph.domain = "other"
    with pytest.raises(GraphValidationError, match="domain 'other' differs from the dataset's 'toy'"):
        validate_dataset(GraphDataset("toy", "toy", task, [graph]))


def test_unknown_dataset_name_lists_close_matches():
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'moleculenet/hvi'.*did you mean 'moleculenet/hiv'"):
        registry.load("moleculenet/hvi")
    with pytest.raises(UnknownDatasetError, match=r"'packaged/karte'.*did you mean 'packaged/karate'"):
        registry.load("packaged/karte")


def test_missing_data_folder_is_reported_without_download(monkeypatch, no_network, tmp_path):
    monkeypatch.delenv("GFM_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match=r"tu/PROTEINS reads the real data folder, but none is set.*GFM_DATA_DIR.*never downloads"):
        registry.load("tu/PROTEINS")
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError, match=r"planetoid/cora: the data folder .*nowhere' does not exist"):
        registry.load("planetoid/cora", data_dir=missing)
    with pytest.raises(DataNotFoundError, match=r"planetoid/cora: missing file .*ind\.cora\.x.*never downloads"):
        registry.load("planetoid/cora", data_dir=tmp_path)


def test_missing_family_member_suggests_present_folders(tmp_path):
    raw = tmp_path / "tudataset" / "PROTEINS" / "raw"
    raw.mkdir(parents=True)
    (raw / "PROTEINS_A.txt").write_text("1, 2\n2, 1\n")
    with pytest.raises(DataNotFoundError, match=r"tu/PROTEIN: missing file .*Did you mean 'tu/PROTEINS'"):
        registry.load("tu/PROTEIN", data_dir=tmp_path)


def test_available_without_data_folder_is_the_packaged_corpus(monkeypatch):
    monkeypatch.delenv("GFM_DATA_DIR", raising=False)
    assert registry.available() == sorted(
        ["packaged/nci5k", "packaged/karate", "packaged/les-miserables", "packaged/florentine", "packaged/davis"]
    )


@pytest.mark.data
def test_available_with_data_folder_lists_every_format(data_dir):
    names = set(registry.available(data_dir))
    expected = {
        "tu/PROTEINS", "tu/ENZYMES", "tu/AIDS", "tu/Mutagenicity",
        *(f"moleculenet/{k}" for k in ("hiv", "tox21", "toxcast", "muv", "qm8", "esol", "sider", "clintox")),
        "planetoid/cora", "planetoid/citeseer", "planetoid/pubmed",
        "hetero/chameleon", "hetero/squirrel_directed", "hetero/tolokers",
        "karateclub/github", "karateclub/reddit10k", "kg/codex-m", "linkpred/ddi", "packaged/karate",
    }
    assert expected <= names


def test_unknown_loader_option_names_the_accepted_ones():
    with pytest.raises(TypeError, match=r"packaged/karate: unknown option\(s\) \['sed'\]; this loader accepts \['seed', 'fractions'\]"):
        registry.load("packaged/karate", sed=3)
