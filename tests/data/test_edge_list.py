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


# --- a user's graph with node labels, as the fine-tuning and zero-shot recipes take it (issue 13, item 6) ---
def _write(folder, edges: dict, nodes: dict):
    pd.DataFrame(edges).to_csv(folder / "edges.csv", index=False)
    pd.DataFrame(nodes).to_csv(folder / "nodes.csv", index=False)
    return folder / "edges.csv", folder / "nodes.csv"


def test_the_packaged_example_graph_loads_as_a_node_task():
    from gfm.data.edge_list import example_graph_files, load_user_graph

    files = example_graph_files()
    dataset = load_user_graph(files["edges"], files["nodes"], "club")
    graph = dataset.graphs[0]
    assert graph.num_nodes == 34 and graph.edge_index.shape[1] == 2 * 78
    assert dataset.task.level == "node" and dataset.task.class_names == ["Mr. Hi", "Officer"]
    assert dataset.name == "csv:karate_csv/edges.csv" and dataset.domain == "other"
    assert int(graph.train_mask.sum()) + int(graph.val_mask.sum()) + int(graph.test_mask.sum()) == 34


def test_graph_spec_round_trips_and_bad_specs_are_named(tmp_path):
    from gfm.data.edge_list import is_user_graph_spec, load_user_graph, parse_user_graph_spec, user_graph_spec

    edges, nodes = _write(tmp_path, {"src": [1, 2, 3], "dst": [2, 3, 1]},
                          {"node": [1, 2, 3, 4], "kind": ["a", "b", "a", "b"], "w": [0.5, 1.0, 2.0, 0.0]})
    spec = user_graph_spec(edges, nodes, "kind", id="node", source="src", target="dst", directed="true")
    assert is_user_graph_spec(spec) and not is_user_graph_spec("csv/edges.csv")
    options = parse_user_graph_spec(spec)
    assert options == {"edges": str(edges), "nodes": str(nodes), "label": "kind", "id": "node", "source": "src",
                       "target": "dst", "directed": True}
    dataset = load_user_graph(**options)
    assert dataset.graphs[0].x.tolist() == [[0.5], [1.0], [2.0], [0.0]] and dataset.graphs[0].directed
    with pytest.raises(DataFormatError, match=r"unknown key 'lable'; the keys are \['directed', 'domain', 'edges'"):
        parse_user_graph_spec(f"csv:edges={edges},lable=kind")
    with pytest.raises(DataFormatError, match=r"entry 'nodes' is not key=value"):
        parse_user_graph_spec(f"csv:edges={edges},nodes")
    with pytest.raises(DataFormatError, match=r"no edges=<path>"):
        parse_user_graph_spec(f"csv:nodes={nodes}")
    with pytest.raises(DataFormatError, match=r"directed='yes'; write directed=true or directed=false"):
        parse_user_graph_spec(f"csv:edges={edges},directed=yes")


def test_user_graph_errors_name_file_column_and_fix(tmp_path):
    from gfm.data.edge_list import load_user_graph

    keys = ("nodes_csv", "label_column", "id_column")  # how the recipes name the options
    edges, nodes = _write(tmp_path, {"source": [1, 2, 3], "target": [2, 3, 1]},
                          {"id": [1, 2, 3], "club": ["a", "b", "a"], "f": [1.0, 2.0, 3.0]})
    # missing label column
    with pytest.raises(DataFormatError) as error:
        load_user_graph(edges, nodes, "label", config_keys=keys)
    assert str(error.value) == (f"{nodes}: no label column 'label' (columns: ['id', 'club', 'f']); name the column "
                                "that holds each node's class with label_column=<column>")
    # no node table at all
    with pytest.raises(DataFormatError, match=r"a node task needs a node table beside .*edges.csv .*pass "
                                              r"nodes_csv=<path>"):
        load_user_graph(edges, None, "club", config_keys=keys)
    with pytest.raises(DataFormatError, match=r"the node table .*missing.csv does not exist; check the path"):
        load_user_graph(edges, tmp_path / "missing.csv", "club", config_keys=keys)
    # node ids in the edges that the node table lacks
    bad_edges, _ = _write(tmp_path, {"source": [1, 2, 7], "target": [2, 3, 1]},
                          {"id": [1, 2, 3], "club": ["a", "b", "a"]})
    with pytest.raises(DataFormatError) as error:
        load_user_graph(bad_edges, nodes, "club", config_keys=keys)
    assert str(error.value) == (f"{bad_edges}: line 4 refers to node 7, which is not in {nodes} (column 'id'); add it "
                                "to the node table")
    # a NaN feature cell
    _, nan_nodes = _write(tmp_path, {"source": [1, 2, 3], "target": [2, 3, 1]},
                          {"id": [1, 2, 3], "club": ["a", "b", "a"], "f": [1.0, None, 3.0]})
    with pytest.raises(DataFormatError) as error:
        load_user_graph(bad_edges.with_name("edges.csv"), nan_nodes, "club", config_keys=keys)
    assert str(error.value) == (f"{nan_nodes}: line 3, column 'f': the cell is empty or NaN; fill it in (gfm does not "
                                "guess missing values) or pass ignore_columns=['f'] to leave the column out of the "
                                "features")
    # a label column with one class
    _, one_class = _write(tmp_path, {"source": [1, 2, 3], "target": [2, 3, 1]},
                          {"id": [1, 2, 3], "club": ["a", "a", "a"]})
    with pytest.raises(DataFormatError) as error:
        load_user_graph(edges, one_class, "club", config_keys=keys)
    assert str(error.value) == (f"{one_class}: label column 'club' holds a single class 'a'; a node classification "
                                "task needs two or more classes: label nodes of another class, or name another column "
                                "with label_column=<column>")
