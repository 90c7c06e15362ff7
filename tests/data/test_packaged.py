"""The embedded default corpus (no data folder): counts, task descriptions, TPSA alignment,
seeded link splits, and the exact Arrow round trip of every packaged dataset."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from gfm.data import registry
from gfm.data.arrow import datasets_equal, load_graph_dataset, save_graph_dataset
from gfm.data.packaged import PACKAGED_NAMES, rdkit_nci_files


@pytest.fixture(scope="module")
def packaged():
    return {name: registry.load(name) for name in PACKAGED_NAMES}


def test_nci5k_counts_and_tpsa_alignment(packaged):
    dataset = packaged["packaged/nci5k"]
    smi_path, tpsa_path = rdkit_nci_files()
    lines = smi_path.read_text().splitlines()
    assert len(lines) == 4999 and len(dataset) + dataset.num_skipped == 4999  # README: 4,999 molecules
    assert dataset.num_skipped == len(dataset.skipped) and all(s["reason"] for s in dataset.skipped)
    tpsa = dict(line.rsplit(",", 1) for line in tpsa_path.read_text().splitlines() if not line.startswith("#"))
    for graph in dataset.graphs[::250]:
        assert graph.y.shape == (1, 1) and float(graph.y) == pytest.approx(float(tpsa[graph.name]), abs=1e-4)
    assert dataset.task.kind == "regression" and dataset.task.target_names == ["tpsa"] and "polar surface" in dataset.task.description


def test_karate_is_node_classification_by_club(packaged):
    dataset = packaged["packaged/karate"]
    graph = dataset[0]
    reference = nx.karate_club_graph()
    assert graph.num_nodes == 34 and graph.edge_index.shape[1] == 2 * reference.number_of_edges() == 156
    assert dataset.task.class_names == ["Mr. Hi", "Officer"] and "club" in dataset.task.description
    clubs = [reference.nodes[n]["club"] for n in reference.nodes()]
    assert [dataset.task.class_names[int(c)] for c in graph.y] == clubs
    weight = {frozenset((u, v)): d["weight"] for u, v, d in reference.edges(data=True)}
    for (u, v), w in zip(graph.edge_index.t().tolist(), graph.edge_attr[:, 0].tolist()):
        assert weight[frozenset((u, v))] == w


@pytest.mark.parametrize("name,nodes,edges", [("les-miserables", 77, 254), ("florentine", 15, 20), ("davis", 32, 89)])
def test_link_prediction_datasets_split_every_edge_once(packaged, name, nodes, edges):
    dataset = packaged[f"packaged/{name}"]
    graph = dataset[0]
    assert graph.num_nodes == nodes and dataset.task.kind == "link" and dataset.task.level == "edge"
    splits = dataset.edge_splits
    held = [splits[s]["edge_index"] for s in ("valid", "test")]
    train_pairs = {tuple(sorted(e)) for e in graph.edge_index.t().tolist()}
    assert len(train_pairs) + sum(h.shape[1] for h in held) == edges
    held_pairs = {tuple(e) for h in held for e in h.t().tolist()}
    assert not train_pairs & held_pairs
    all_pairs = train_pairs | held_pairs
    for split in ("valid", "test"):
        negatives = splits[split]["neg_edge_index"]
        assert negatives.shape == splits[split]["edge_index"].shape
        assert not {tuple(sorted(e)) for e in negatives.t().tolist()} & all_pairs


def test_seeded_link_split_is_deterministic():
    a = registry.load("packaged/les-miserables", seed=3)
    b = registry.load("packaged/les-miserables", seed=3)
    c = registry.load("packaged/les-miserables", seed=4)
    assert datasets_equal(a, b) and not datasets_equal(a, c)


def test_every_packaged_dataset_round_trips_exactly(packaged, tmp_path):
    for name, dataset in packaged.items():
        directory = tmp_path / name.replace("/", "_")
        save_graph_dataset(dataset, directory)
        back = load_graph_dataset(directory)
        assert datasets_equal(dataset, back), name
        assert back.summary() == dataset.summary()


def test_packaged_davis_carries_the_bipartite_side(packaged):
    graph = packaged["packaged/davis"][0]
    assert graph.x.dtype == torch.long and graph.x.shape == (32, 1) and int(graph.x.sum()) == 14
