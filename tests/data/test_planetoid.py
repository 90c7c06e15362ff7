"""Planetoid raw files: counts (README + standard figures), public split, label/feature alignment
with the raw pickles, the PubMed file that lacks ``allx``, and the Arrow round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gfm.data import registry
from gfm.data._legacy_pickle import load_legacy_pickle
from gfm.data.arrow import datasets_equal, load_graph_dataset, save_graph_dataset

pytestmark = pytest.mark.data

# README: 2,708 / 3,327 / 19,717 nodes. Standard figures: classes, features, and undirected
# edge entries without self-loops as PyG reports them (10,556 / 9,104 / 88,648); gfm keeps the
# self-loops of the raw adjacency lists (0 / 124 / 3).
PLANETOID = {
    "cora": (2708, 7, 1433, 10556, 0, 140),
    "citeseer": (3327, 6, 3703, 9104, 124, 120),
    "pubmed": (19717, 3, 500, 88648, 3, 60),
}


@pytest.fixture(scope="module")
def planetoid(data_dir):
    return {name: registry.load(f"planetoid/{name}", data_dir) for name in PLANETOID}


@pytest.mark.parametrize("name", sorted(PLANETOID))
def test_planetoid_counts_and_public_split(planetoid, name):
    nodes, classes, features, edges_without_loops, loops, train = PLANETOID[name]
    dataset = planetoid[name]
    graph = dataset[0]
    assert graph.num_nodes == nodes and dataset.task.num_classes == classes and graph.x.shape == (nodes, features)
    self_loops = int((graph.edge_index[0] == graph.edge_index[1]).sum())
    assert self_loops == loops and graph.edge_index.shape[1] - self_loops == edges_without_loops
    assert (int(graph.train_mask.sum()), int(graph.val_mask.sum()), int(graph.test_mask.sum())) == (train, 500, 1000)
    assert torch.equal(graph.train_mask.nonzero().view(-1), torch.arange(train))
    assert torch.bincount(graph.y[graph.train_mask], minlength=classes).tolist() == [20] * classes
    assert not (graph.train_mask & graph.test_mask).any() and not (graph.val_mask & graph.test_mask).any()
    assert dataset.domain == "citation" and graph.domain == "citation"


@pytest.mark.parametrize("name", sorted(PLANETOID))
def test_planetoid_labels_and_features_line_up_with_raw_files(planetoid, data_dir, name):
    graph = planetoid[name][0]
    folder = data_dir / "planetoid"
    test_index = np.loadtxt(folder / f"ind.{name}.test.index", dtype=np.int64)
    tx = load_legacy_pickle(folder / f"ind.{name}.tx", "tx")
    ty = load_legacy_pickle(folder / f"ind.{name}.ty", "ty")
    ally = load_legacy_pickle(folder / f"ind.{name}.ally", "ally")
    assert torch.equal(graph.y[torch.from_numpy(test_index)], torch.from_numpy(ty.argmax(1)))
    assert torch.equal(graph.y[: ally.shape[0]], torch.from_numpy(ally.argmax(1)))
    assert torch.equal(graph.x[torch.from_numpy(test_index)], torch.from_numpy(np.asarray(tx.todense(), dtype=np.float32)))
    adjacency = load_legacy_pickle(folder / f"ind.{name}.graph", "graph")
    node = 7
    neighbours = graph.edge_index[1][graph.edge_index[0] == node].tolist()
    assert neighbours == sorted(set(adjacency[node]))


def test_citeseer_isolated_test_nodes_are_unlabelled(planetoid):
    graph = planetoid["citeseer"][0]
    missing = (~graph.x_observed).nonzero().view(-1)
    assert missing.numel() == 15 and (graph.y[missing] == -1).all() and (graph.x[missing] == 0).all()


def test_pubmed_without_allx_marks_unobserved_features(planetoid):
    graph = planetoid["pubmed"][0]
    assert int(graph.x_observed.sum()) == 60 + 1000
    assert graph.x_observed[graph.train_mask].all() and graph.x_observed[graph.test_mask].all()
    assert (graph.x[~graph.x_observed] == 0).all() and (graph.y >= 0).all()


def test_planetoid_round_trip_is_exact(planetoid, tmp_path):
    save_graph_dataset(planetoid["citeseer"], tmp_path / "citeseer")
    assert datasets_equal(planetoid["citeseer"], load_graph_dataset(tmp_path / "citeseer"))
