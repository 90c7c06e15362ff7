"""Heterophilous npz graphs: every file loads, 10 splits as [N, 10] masks, undirected variants
symmetrized, directed variants flagged, labels/features line up, Arrow round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gfm.data import registry
from gfm.data.arrow import datasets_equal, load_graph_dataset, save_graph_dataset

pytestmark = pytest.mark.data

# README: "actor, chameleon, squirrel (+ filtered/directed), cornell, texas, wisconsin,
# tolokers, minesweeper ... 183 to 11,758 nodes"; node and class counts of the files.
HETERO = {
    "actor": (7600, 5), "chameleon": (2277, 5), "squirrel": (5201, 5), "cornell": (183, 5),
    "texas": (183, 5), "wisconsin": (251, 5), "tolokers": (11758, 2), "minesweeper": (10000, 2),
    "chameleon_filtered": (890, 5), "squirrel_filtered_directed": (2223, 5),
}


@pytest.mark.parametrize("name", sorted(HETERO))
def test_heterophilous_counts_splits_and_alignment(data_dir, name):
    nodes, classes = HETERO[name]
    dataset = registry.load(f"hetero/{name}", data_dir)
    graph = dataset[0]
    raw = np.load(data_dir / "heterophilous" / f"{name}.npz")
    assert graph.num_nodes == nodes and dataset.task.num_classes == classes and dataset.task.num_splits == 10
    for key, raw_key in (("train_mask", "train_masks"), ("val_mask", "val_masks"), ("test_mask", "test_masks")):
        assert graph[key].shape == (nodes, 10) and torch.equal(graph[key], torch.from_numpy(raw[raw_key].T))
    assert torch.equal(graph.y, torch.from_numpy(raw["node_labels"])) and torch.equal(graph.x, torch.from_numpy(raw["node_features"]))
    file_edges = torch.from_numpy(raw["edges"]).t()
    keys = torch.sort(graph.edge_index[0] * nodes + graph.edge_index[1]).values
    if name.endswith("_directed"):
        expected = torch.sort(file_edges[0] * nodes + file_edges[1]).values
        assert graph.directed is True and torch.equal(keys, expected)
    else:
        both = torch.cat([file_edges, file_edges.flip(0)], dim=1)
        expected = torch.unique(both[0] * nodes + both[1])
        assert "directed" not in graph and torch.equal(keys, expected)  # symmetric, no duplicates


def test_every_heterophilous_file_is_available(data_dir):
    files = sorted(p.stem for p in (data_dir / "heterophilous").glob("*.npz"))
    assert [n.split("/", 1)[1] for n in registry.available(data_dir) if n.startswith("hetero/")] == files


def test_heterophilous_round_trip_is_exact(data_dir, tmp_path):
    dataset = registry.load("hetero/chameleon_filtered_directed", data_dir)
    save_graph_dataset(dataset, tmp_path / "cfd")
    assert datasets_equal(dataset, load_graph_dataset(tmp_path / "cfd"))
