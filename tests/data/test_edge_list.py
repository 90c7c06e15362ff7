"""A user's own edge list / node table (CSV and Parquet) and its error messages."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from gfm.data import load_edge_list, registry
from gfm.data.arrow import datasets_equal, graphs_equal, load_graph_dataset, save_graph_dataset
from gfm.data.dataset import DataFormatError


@pytest.fixture
def small_graph(tmp_path):
    edges = pd.DataFrame({"source": ["a", "b", "c", "d"], "target": ["b", "c", "a", "a"], "weight": [1.5, 2.0, 1.0, 0.5]})
    nodes = pd.DataFrame(
        {"id": ["a", "b", "c", "d", "e"], "label": ["x", "y", "x", "y", None], "f1": [1, 3, 5, 0, 1],
         "f2": [2.0, 4.0, 6.0, 0.0, 1.0], "split": ["train", "test", None, "valid", None]}
    )
    edges.to_csv(tmp_path / "edges.csv", index=False)
    nodes.to_csv(tmp_path / "nodes.csv", index=False)
    edges.to_parquet(tmp_path / "edges.parquet")
    nodes.to_parquet(tmp_path / "nodes.parquet")
    return tmp_path


def test_csv_edge_list_with_node_table(small_graph):
    dataset = registry.load(f"csv/{small_graph / 'edges.csv'}", nodes_path=small_graph / "nodes.csv", domain="social")
    graph = dataset[0]
    assert graph.num_nodes == 5 and graph.node_names == ["a", "b", "c", "d", "e"]  # isolated 'e' kept
    assert graph.edge_index.shape[1] == 8 and "directed" not in graph  # reverse edges added
    weights = {tuple(e): w for e, w in zip(graph.edge_index.t().tolist(), graph.edge_attr[:, 0].tolist())}
    assert weights[(0, 1)] == weights[(1, 0)] == 1.5 and weights[(3, 0)] == 0.5
    assert graph.x.tolist() == [[1, 2], [3, 4], [5, 6], [0, 0], [1, 1]]
    assert graph.y.tolist() == [0, 1, 0, 1, -1] and dataset.task.class_names == ["x", "y"]
    assert graph.train_mask.tolist() == [True, False, False, False, False]
    assert graph.val_mask.tolist() == [False, False, False, True, False] and graph.test_mask.tolist() == [False, True, False, False, False]
    assert dataset.domain == "social" and "split' column" in dataset.task.split


def test_parquet_equals_csv(small_graph):
    from_csv = load_edge_list(small_graph / "edges.csv", small_graph / "nodes.csv", dataset_name="mine")
    from_parquet = load_edge_list(small_graph / "edges.parquet", small_graph / "nodes.parquet", dataset_name="mine")
    assert graphs_equal(from_csv[0], from_parquet[0])
    assert from_csv.task.class_names == from_parquet.task.class_names and from_csv.task.kind == from_parquet.task.kind


def test_edge_list_without_labels_is_link_prediction(small_graph, tmp_path):
    dataset = load_edge_list(small_graph / "edges.csv", directed=True, seed=1)
    graph = dataset[0]
    assert dataset.task.kind == "link" and graph.directed is True and graph.node_names == ["a", "b", "c", "d"]
    total = graph.edge_index.shape[1] + sum(dataset.edge_splits[s]["edge_index"].shape[1] for s in ("valid", "test"))
    assert total == 4
    save_graph_dataset(dataset, tmp_path / "cached")
    assert datasets_equal(dataset, load_graph_dataset(tmp_path / "cached"))


def test_edge_list_errors_name_file_line_and_fix(small_graph, tmp_path):
    (tmp_path / "bad.csv").write_text("src,dst\na,b\n")
    with pytest.raises(DataFormatError, match=r"bad.csv: no column 'source' \(columns: \['src', 'dst'\]\); rename it or pass source_col="):
        load_edge_list(tmp_path / "bad.csv")
    dataset = load_edge_list(tmp_path / "bad.csv", source_col="src", target_col="dst")
    assert dataset[0].num_nodes == 2
    (tmp_path / "unknown.csv").write_text("source,target\na,b\nb,zz\n")
    with pytest.raises(DataFormatError, match=r"unknown.csv: line 3 refers to node 'zz', which is not in .*nodes.csv.*add it to the node table"):
        load_edge_list(tmp_path / "unknown.csv", small_graph / "nodes.csv")
    (tmp_path / "dup.csv").write_text("id,label\na,1\nb,2\na,1\n")
    with pytest.raises(DataFormatError, match=r"dup.csv: line 4 repeats node id 'a'"):
        load_edge_list(small_graph / "edges.csv", tmp_path / "dup.csv")
    (tmp_path / "nan.csv").write_text("id,f\na,1.0\nb,\nc,2\nd,3\n")
    with pytest.raises(DataFormatError, match=r"nan.csv: line 3, column 'f': the cell is empty or NaN; fill it in"):
        registry.load(f"csv/{small_graph / 'edges.csv'}", nodes_path=tmp_path / "nan.csv")


def test_integer_ids_keep_numeric_order(tmp_path):
    pd.DataFrame({"source": [10, 2, 33], "target": [2, 33, 10]}).to_csv(tmp_path / "e.csv", index=False)
    graph = load_edge_list(tmp_path / "e.csv")[0]
    assert graph.node_names == ["2", "10", "33"] and torch.equal(graph.edge_index.sort(dim=1).values, graph.edge_index.sort(dim=1).values)
