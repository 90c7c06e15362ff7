"""TU raw text format: counts against the shared README, feature/label alignment with the raw
lines, Arrow round trip, and every malformed-folder error (written in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gfm.data import registry
from gfm.data.arrow import datasets_equal, load_graph_dataset, save_graph_dataset
from gfm.data.dataset import DataFormatError
from gfm.data.tu import load_tu_folder

# README: "AIDS, ENZYMES, PROTEINS, Mutagenicity ... 600 to 4,337 graphs"; the rest are the
# standard TU Dortmund figures of these folders (nodes, directed edge entries, classes).
TU_FIGURES = {
    "PROTEINS": (1113, 43471, 162088, 2, 1, 1),
    "ENZYMES": (600, 19580, 74564, 6, 1, 18),
    "AIDS": (2000, 31385, 64780, 2, 1, 4),
    "Mutagenicity": (4337, 131488, 266894, 2, 1, 0),
}


@pytest.fixture(scope="module")
def tu_datasets(data_dir):
    return {name: registry.load(f"tu/{name}", data_dir) for name in TU_FIGURES}


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(TU_FIGURES))
def test_tu_counts_match_the_source(tu_datasets, name):
    graphs, nodes, edges, classes, cat_width, cont_width = TU_FIGURES[name]
    dataset = tu_datasets[name]
    summary = dataset.summary()
    assert (summary["graphs"], summary["nodes"], summary["edges"]) == (graphs, nodes, edges)
    assert dataset.task.num_classes == classes and dataset.task.level == "graph"
    assert summary["x_cat"] == cat_width and summary["x_cont"] == cont_width
    assert dataset.domain == ("proteins" if name in ("PROTEINS", "ENZYMES") else "molecules")
    sizes = {k: v.numel() for k, v in dataset.splits.items()}
    assert sum(sizes.values()) == graphs and sizes["train"] == pytest.approx(0.8 * graphs, abs=classes)
    assert not set(dataset.splits["train"].tolist()) & set(dataset.splits["test"].tolist())


# AIDS_label_readme.txt: label ids 0.. are C O N Cl F S Se P Na I ...; gfm stores atomic numbers
AIDS_ATOMIC_NUMBERS = np.array([6, 8, 7, 17, 9, 16, 34, 15, 11, 53, 27, 35, 3, 14, 12, 29, 33, 5, 78, 44, 19, 46, 79,
                                52, 74, 45, 30, 83, 82, 32, 51, 50, 31, 80, 67, 81, 28, 65])


def _raw(data_dir: Path, name: str, suffix: str) -> list[str]:
    return (data_dir / "tudataset" / name / "raw" / f"{name}_{suffix}.txt").read_text().splitlines()


@pytest.mark.data
@pytest.mark.parametrize("name", ["ENZYMES", "AIDS"])
def test_tu_features_and_labels_line_up_with_raw_lines(tu_datasets, data_dir, name):
    dataset = tu_datasets[name]
    indicator = np.array(_raw(data_dir, name, "graph_indicator"), dtype=np.int64)
    node_labels = np.array(_raw(data_dir, name, "node_labels"), dtype=np.int64)
    attributes = np.array([[float(v) for v in line.split(",")] for line in _raw(data_dir, name, "node_attributes")])
    graph_labels = np.array(_raw(data_dir, name, "graph_labels"), dtype=np.int64)
    raw_values = sorted(set(graph_labels.tolist()))
    for g in (0, 17, len(dataset) - 1):
        rows = np.nonzero(indicator == g + 1)[0]
        graph = dataset[g]
        assert graph.num_nodes == rows.size and graph.name == str(g + 1)
        expected = node_labels[rows] if name == "ENZYMES" else AIDS_ATOMIC_NUMBERS[node_labels[rows]]
        assert torch.equal(graph.x[:, 0], torch.from_numpy(expected))
        assert torch.allclose(graph.x_cont, torch.from_numpy(attributes[rows]).float())
        assert dataset.task.class_names[int(graph.y)] == str(graph_labels[g])
        assert int(graph.y) == raw_values.index(graph_labels[g])
    # edges: the first lines of A belong to graph 1, 1-based global ids
    first = [tuple(int(v) - 1 for v in line.split(",")) for line in _raw(data_dir, name, "A")[:5]]
    assert [tuple(e) for e in dataset[0].edge_index.t()[:5].tolist()] == first


@pytest.mark.data
def test_tu_edge_labels_line_up(tu_datasets, data_dir):
    dataset = tu_datasets["Mutagenicity"]
    edge_labels = np.array(_raw(data_dir, "Mutagenicity", "edge_labels"), dtype=np.int64)
    offset = sum(g.edge_index.shape[1] for g in dataset.graphs[:10])
    graph = dataset[10]
    # valence labels 0/1/2 (single/double/triple) become from_smiles bond-type indices 1/2/3
    assert torch.equal(graph.edge_attr[:, 0], torch.from_numpy(edge_labels[offset : offset + graph.edge_index.shape[1]] + 1))


@pytest.mark.data
def test_tu_chemistry_matches_molecules_from_smiles(tu_datasets, data_dir):
    """Mutagenicity's atoms and bonds use the same ids as molecules parsed from SMILES."""
    from gfm.data.molecules import molecules_to_graphs

    dataset = tu_datasets["Mutagenicity"]
    raw = load_tu_folder(data_dir / "tudataset" / "Mutagenicity" / "raw", chemistry="raw")
    # Mutagenicity_label_readme.txt: 0 C, 1 O, 2 Cl, 3 H, 4 N
    assert torch.equal(dataset[0].x[:, 0], torch.tensor([6, 8, 17, 1, 7, 9, 35, 16, 15, 53, 11, 19, 3, 20])[raw[0].x[:, 0]])
    reference, *_ = molecules_to_graphs(["C=O", "C#N"])
    assert set(reference[0].x[:, 0].tolist()) == {6, 8} and reference[0].edge_attr[0, 0] == 2
    assert set(reference[1].edge_attr[:, 0].tolist()) == {3}
    assert set(dataset[0].edge_attr[:, 0].tolist()) <= {1, 2, 3}


@pytest.mark.data
def test_tu_arrow_round_trip_is_exact(tu_datasets, tmp_path):
    dataset = tu_datasets["ENZYMES"]  # int x, float x_cont, six classes
    save_graph_dataset(dataset, tmp_path / "enzymes")
    assert datasets_equal(dataset, load_graph_dataset(tmp_path / "enzymes"))


def _write_tu(folder: Path, name: str = "TOY", **overrides: str) -> Path:
    """Two triangles-with-tail graphs in TU format; ``overrides`` replace whole files."""
    files = {
        "A": "1, 2\n2, 1\n2, 3\n3, 2\n4, 5\n5, 4\n",
        "graph_indicator": "1\n1\n1\n2\n2\n",
        "graph_labels": "1\n-1\n",
        "node_labels": "0\n1\n0\n2\n2\n",
        "node_attributes": "0.5, 1.0\n1.5, 2.0\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0\n",
        "edge_labels": "0\n0\n1\n1\n0\n0\n",
    }
    files.update(overrides)
    raw = folder / "tudataset" / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for suffix, text in files.items():
        if text is not None:
            (raw / f"{name}_{suffix}.txt").write_text(text)
    return folder


def test_small_tu_folder_loads_with_every_field(tmp_path):
    dataset = registry.load("tu/TOY", data_dir=_write_tu(tmp_path))
    assert len(dataset) == 2 and dataset.domain == "other"
    first, second = dataset[0], dataset[1]
    assert first.x.dtype == torch.long and first.x_cont.dtype == torch.float32 and first.edge_attr.dtype == torch.long
    assert first.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert second.edge_index.tolist() == [[0, 1], [1, 0]] and second.x_cont.tolist() == [[3.5, 4.0], [4.5, 5.0]]
    assert dataset.task.class_names == ["-1", "1"] and first.y.tolist() == [1] and second.y.tolist() == [0]


def test_tu_mismatched_line_counts_name_file_and_line(tmp_path):
    folder = _write_tu(tmp_path, node_labels="0\n1\n0\n2\n")
    with pytest.raises(DataFormatError, match=r"TOY_node_labels.txt: 4 lines but TOY_graph_indicator.txt implies 5 \(one line per node\); the files disagree from line 5"):
        registry.load("tu/TOY", data_dir=folder)
    folder = _write_tu(tmp_path / "b", edge_labels="0\n0\n1\n1\n0\n0\n1\n")
    with pytest.raises(DataFormatError, match=r"TOY_edge_labels.txt: 7 lines but TOY_A.txt implies 6"):
        registry.load("tu/TOY", data_dir=folder)


def test_tu_edge_past_node_count_names_line(tmp_path):
    folder = _write_tu(tmp_path, A="1, 2\n2, 1\n2, 6\n6, 2\n")
    with pytest.raises(DataFormatError, match=r"TOY_A.txt: line 3 refers to node \[2, 6\] but TOY_graph_indicator.txt has 5 lines"):
        registry.load("tu/TOY", data_dir=folder, )


def test_tu_edge_across_graphs_and_bad_values(tmp_path):
    folder = _write_tu(tmp_path, A="1, 2\n2, 1\n3, 4\n4, 3\n")
    with pytest.raises(DataFormatError, match=r"TOY_A.txt: line 3 joins nodes of different graphs \(1 and 2\)"):
        registry.load("tu/TOY", data_dir=folder)
    folder = _write_tu(tmp_path / "b", node_attributes="0.5, 1.0\n1.5, x\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0\n")
    with pytest.raises(DataFormatError, match=r"TOY_node_attributes.txt: line 2 holds 'x', not a number"):
        registry.load("tu/TOY", data_dir=folder)
    folder = _write_tu(tmp_path / "c", node_attributes="0.5, 1.0\n1.5, nan\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0\n")
    with pytest.raises(DataFormatError, match=r"line 2 holds a missing/NaN value"):
        registry.load("tu/TOY", data_dir=folder)
    folder = _write_tu(tmp_path / "d", graph_indicator="1\n1\n2\n1\n2\n")
    with pytest.raises(DataFormatError, match=r"TOY_graph_indicator.txt: line 4 holds graph id 1.*non-decreasing"):
        registry.load("tu/TOY", data_dir=folder)


def test_tu_folder_loader_accepts_any_path(tmp_path):
    _write_tu(tmp_path, name="MINE")
    dataset = load_tu_folder(tmp_path / "tudataset" / "MINE" / "raw", domain="social", seed=3)
    assert dataset.name == "tu/MINE" and dataset.domain == "social" and all(g.domain == "social" for g in dataset)
