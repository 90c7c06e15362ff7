"""Knowledge-graph triples (CoDEx-M) and the OGB-style ddi link split: counts, triples and
hard negatives aligned with the files, relation ids as int64 edge_attr, Arrow round trip."""

from __future__ import annotations

import pickle
import zipfile

import pytest
import torch

from gfm.data import registry
from gfm.data.arrow import datasets_equal, load_graph_dataset, save_graph_dataset

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def codex(data_dir):
    return registry.load("kg/codex-m", data_dir)


def test_codex_counts(codex):
    graph = codex[0]
    # README: 17,050 entities, 51 relations, 206k triples
    assert graph.num_nodes == 17050 and len(graph.relation_names) == 51 and len(graph.node_names) == 17050
    sizes = {k: v["edge_index"].shape[1] for k, v in codex.edge_splits.items()}
    assert sizes == {"train": 185584, "valid": 10310, "test": 10311} and sum(sizes.values()) == 206205
    assert codex.edge_splits["valid"]["neg_edge_index"].shape == (2, 10310)
    assert codex.edge_splits["test"]["neg_edge_type"].shape == (10311,)
    assert graph.directed is True and graph.edge_attr.shape == (185584, 1) and graph.edge_attr.dtype == torch.long
    assert codex.task.kind == "link" and codex.domain == "knowledge_graph"


def test_codex_triples_line_up_with_files(codex, data_dir):
    graph = codex[0]
    folder = data_dir / "codex" / "codex-m"

    def decode(edge_index, edge_type, i):
        return (graph.node_names[int(edge_index[0, i])], graph.relation_names[int(edge_type[i])], graph.node_names[int(edge_index[1, i])])

    train = (folder / "train.txt").read_text().splitlines()
    for i in (0, 1234, len(train) - 1):
        assert decode(graph.edge_index, graph.edge_attr[:, 0], i) == tuple(train[i].split("\t"))
    negatives = (folder / "test_negatives.txt").read_text().splitlines()
    test = codex.edge_splits["test"]
    for i in (0, 500, len(negatives) - 1):
        assert decode(test["neg_edge_index"], test["neg_edge_type"], i) == tuple(negatives[i].split("\t"))


def test_codex_round_trip_is_exact(codex, tmp_path):
    save_graph_dataset(codex, tmp_path / "codex")
    assert datasets_equal(codex, load_graph_dataset(tmp_path / "codex"))


@pytest.fixture(scope="module")
def ddi(data_dir):
    return registry.load("linkpred/ddi", data_dir)


def test_ddi_counts_and_split(ddi):
    graph = ddi[0]
    # README: 4,267 nodes, 2.1M train entries; ogbl-ddi: 1,067,911 / 133,489 / 133,489 edges
    assert graph.num_nodes == 4267 and graph.edge_index.shape[1] == 2 * 1067911
    assert {k: v["edge_index"].shape[1] for k, v in ddi.edge_splits.items()} == {"train": 1067911, "valid": 133489, "test": 133489}
    n = graph.num_nodes
    train = set((graph.edge_index[0] * n + graph.edge_index[1]).tolist())
    held_out = ddi.edge_splits["test"]["edge_index"]
    assert not train & set((held_out[0] * n + held_out[1]).tolist()) and not train & set((held_out[1] * n + held_out[0]).tolist())
    assert ddi.domain == "biomedical" and ddi.task.metric == "hits@20"


def test_ddi_edges_line_up_with_the_pickles(ddi, data_dir):
    # the test reads the source the way its publisher wrote it (a scipy pickle) to compare
    with zipfile.ZipFile(data_dir / "opengraph" / "ddi" / "trn_mat.pkl.zip") as archive:
        train = pickle.loads(archive.read("trn_mat.pkl"))
    graph = ddi[0]
    n = graph.num_nodes
    expected = torch.sort(torch.from_numpy(train.row.astype("int64")) * n + torch.from_numpy(train.col.astype("int64"))).values
    assert torch.equal(graph.edge_index[0] * n + graph.edge_index[1], expected)


def test_ddi_round_trip_is_exact(ddi, tmp_path):
    save_graph_dataset(ddi, tmp_path / "ddi")
    assert datasets_equal(ddi, load_graph_dataset(tmp_path / "ddi"))
