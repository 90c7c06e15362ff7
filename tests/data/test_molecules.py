"""Molecules: the fast featurizer equals PyG's from_rdmol, unparsable SMILES are counted, the
scaffold split is deterministic, MoleculeNet counts/targets line up with the CSVs, round trips."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem
from torch_geometric.utils import from_rdmol

from gfm.data import registry
from gfm.data.arrow import datasets_equal, load_graph_dataset, save_graph_dataset
from gfm.data.moleculenet import MOLECULENET, load_smiles_csv
from gfm.data.molecules import molecules_to_graphs
from gfm.data.packaged import rdkit_nci_files
from gfm.data.splits import scaffold_split

# README: "HIV, Tox21, ToxCast, MUV, QM8, ESOL, SIDER, ClinTox ... 642 to 93,087 molecules";
# rows of each CSV (molecules) and its target columns:
MOLECULENET_ROWS = {
    "hiv": (41127, 1), "tox21": (7831, 12), "toxcast": (8576, 617), "muv": (93087, 17),
    "qm8": (21786, 16), "esol": (1128, 1), "sider": (1427, 27), "clintox": (1478, 2),
}


def test_fast_featurizer_equals_from_rdmol():
    smi_path, _ = rdkit_nci_files()
    smiles = [line.split("\t")[0] for line in smi_path.read_text().splitlines()[:600]]
    smiles += ["C[C@H](N)C(=O)O", "F/C=C/F", "[NH4+]", "c1ccccc1", "[2H]C", "O=[N+]([O-])c1ccccc1"]
    graphs, kept, _, skipped = molecules_to_graphs(smiles, num_workers=1)
    assert len(graphs) + len(skipped) == len(smiles)
    for graph, position in zip(graphs, kept.tolist()):
        reference = from_rdmol(Chem.MolFromSmiles(smiles[position]))
        assert graph.name == smiles[position]
        assert torch.equal(graph.x, reference.x) and graph.x.dtype == torch.long
        assert torch.equal(graph.edge_index, reference.edge_index)
        assert torch.equal(graph.edge_attr, reference.edge_attr)
        assert graph.num_nodes == reference.x.shape[0]


def test_worker_processes_give_the_same_graphs():
    smi_path, _ = rdkit_nci_files()
    smiles = [line.split("\t")[0] for line in smi_path.read_text().splitlines()[:300]]
    one, kept_one, scaffolds_one, _ = molecules_to_graphs(smiles, scaffolds=True, num_workers=1, chunk_size=64)
    two, kept_two, scaffolds_two, _ = molecules_to_graphs(smiles, scaffolds=True, num_workers=2, chunk_size=64)
    assert kept_one.tolist() == kept_two.tolist() and scaffolds_one == scaffolds_two
    assert all(torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index) for a, b in zip(one, two))


def test_unparsable_smiles_are_skipped_with_a_count(tmp_path, caplog):
    csv = tmp_path / "mols.csv"
    csv.write_text("smiles,active\nCCO,1\nC1CC,0\nnot_a_smiles,1\nc1ccccc1,0\n,1\nCC(=O)O,0\n")
    with caplog.at_level(logging.WARNING):
        dataset = load_smiles_csv(csv, "mine", kind="classification", metric="roc_auc")
    assert len(dataset) == 3 and dataset.num_skipped == 3
    assert [s["line"] for s in dataset.skipped] == [3, 4, 6]
    assert dataset.skipped[0] == {"line": 3, "item": "C1CC", "reason": "RDKit cannot parse this SMILES"}
    assert dataset.skipped[2]["reason"] == "empty SMILES"
    assert "mine: skipped 3 of 6 SMILES that RDKit cannot parse or featurize (CSV lines 3, 4, 6)" in caplog.text
    assert [g.name for g in dataset] == ["CCO", "c1ccccc1", "CC(=O)O"]
    assert [int(g.y) for g in dataset] == [1, 0, 0]  # targets follow the kept rows


def test_scaffold_split_is_deterministic_and_keeps_scaffolds_together():
    scaffolds = ["a"] * 50 + ["b"] * 20 + ["c"] * 15 + ["d"] * 10 + ["e"] * 5
    splits = scaffold_split(scaffolds)
    assert sum(v.numel() for v in splits.values()) == 100
    groups = {name: {scaffolds[i] for i in idx.tolist()} for name, idx in splits.items()}
    assert not (groups["train"] & groups["valid"]) and not (groups["train"] & groups["test"]) and not (groups["valid"] & groups["test"])
    # largest groups first, each into the first split it still fits (MoleculeNet/DeepChem rule):
    # a, b -> train (70); c (15) no longer fits train (80) -> valid; d (10) fits train; e -> test
    assert groups == {"train": {"a", "b", "d"}, "valid": {"c"}, "test": {"e"}}
    assert all(torch.equal(splits[k], scaffold_split(scaffolds)[k]) for k in splits)


@pytest.fixture(scope="module")
def small_moleculenet(data_dir):
    return {name: registry.load(f"moleculenet/{name}", data_dir) for name in ("esol", "clintox")}


@pytest.mark.data
@pytest.mark.parametrize("name", ["esol", "clintox"])
def test_moleculenet_counts_and_targets_line_up(small_moleculenet, data_dir, name):
    dataset = small_moleculenet[name]
    rows, targets = MOLECULENET_ROWS[name]
    assert len(dataset) + dataset.num_skipped == rows and dataset.task.num_targets == targets
    assert dataset.task.level == "graph" and dataset.domain == "molecules"
    frame = pd.read_csv(data_dir / "moleculenet" / MOLECULENET[name].file)
    by_smiles = frame.drop_duplicates("smiles", keep=False).set_index("smiles")
    for graph in dataset.graphs[:: max(1, len(dataset) // 40)]:
        if graph.name not in by_smiles.index:
            continue
        expected = by_smiles.loc[graph.name].to_numpy(dtype=np.float64)
        np.testing.assert_array_equal(graph.y.view(-1).double().numpy(), expected.astype(np.float32))
        assert graph.x.shape == (Chem.MolFromSmiles(graph.name).GetNumAtoms(), 9)
    sizes = {k: v.numel() for k, v in dataset.splits.items()}
    assert sum(sizes.values()) == len(dataset) and sizes["train"] <= 0.8 * len(dataset) + 1


@pytest.mark.data
def test_moleculenet_round_trip_keeps_nan_labels(data_dir, tmp_path):
    dataset = registry.load("moleculenet/tox21", data_dir, limit=400)
    assert any(torch.isnan(g.y).any() for g in dataset)
    assert all(g.y.shape == (1, 12) and g.y.dtype == torch.float32 for g in dataset)
    save_graph_dataset(dataset, tmp_path / "tox21")
    assert datasets_equal(dataset, load_graph_dataset(tmp_path / "tox21"))


@pytest.mark.data
@pytest.mark.parametrize("name", ["hiv", "toxcast", "muv", "qm8"])
def test_large_moleculenet_heads_load(data_dir, name):
    dataset = registry.load(f"moleculenet/{name}", data_dir, limit=300)
    assert len(dataset) + dataset.num_skipped == 300
    assert dataset.task.num_targets == MOLECULENET_ROWS[name][1]
    if name == "hiv":
        assert dataset.task.kind == "classification" and all(g.y.dtype == torch.long for g in dataset)
    else:
        assert all(g.y.shape == (1, dataset.task.num_targets) for g in dataset)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MOLECULENET_ROWS))
def test_full_moleculenet_counts(data_dir, name):
    dataset = registry.load(f"moleculenet/{name}", data_dir)
    rows, targets = MOLECULENET_ROWS[name]
    assert len(dataset) + dataset.num_skipped == rows and dataset.task.num_targets == targets
    assert dataset.num_skipped < 0.01 * rows


@pytest.mark.data
def test_csv_row_counts_are_what_the_tests_claim(data_dir):
    for name, (rows, targets) in MOLECULENET_ROWS.items():
        path = data_dir / "moleculenet" / MOLECULENET[name].file
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            header = handle.readline()
            assert sum(1 for _ in handle) == rows
        assert len(pd.read_csv(path, nrows=1).columns) == targets + 1, header[:80]
