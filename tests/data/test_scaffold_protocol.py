"""Hu et al.'s scaffold split: scaffold groups never straddle splits, largest groups train, ties go the way
their code sends them (the larger first index first), and it differs from the registry's tie order."""

from __future__ import annotations

import pytest
import torch

from gfm.data.packaged import rdkit_nci_files
from gfm.data.scaffold_protocol import hu_scaffold_split, murcko_scaffolds
from gfm.data.splits import scaffold_split


def nci(count: int) -> list[str]:
    smi_path, _ = rdkit_nci_files()
    return [line.split("\t")[0] for line in smi_path.read_text().splitlines()[:count]]


def test_groups_stay_together_and_the_largest_train() -> None:
    smiles = nci(400)
    split = hu_scaffold_split(smiles)
    assert sorted(torch.cat(list(split.values())).tolist()) == list(range(400))
    assert [len(split[s]) for s in ("train", "valid", "test")] == [len(split["train"]), 40, 400 - 40 - len(split["train"])]
    scaffolds = murcko_scaffolds(smiles)
    owner = {}
    for name, indices in split.items():
        for i in indices.tolist():
            assert owner.setdefault(scaffolds[i], name) == name  # one split per scaffold
    sizes = {s: scaffolds.count(s) for s in set(scaffolds)}
    largest = max(sizes, key=sizes.get)
    assert owner[largest] == "train"
    again = hu_scaffold_split(smiles)  # deterministic
    assert all(torch.equal(again[k], split[k]) for k in split)


def test_ties_are_broken_by_the_larger_first_index_unlike_the_registry_split() -> None:
    # ten singleton scaffolds (rings of 3..12 atoms): 8 train, 1 valid, 1 test
    smiles = ["C1" + "C" * (size - 1) + "1" for size in range(3, 13)]
    hu = hu_scaffold_split(smiles)
    assert hu["train"].tolist() == list(range(2, 10)) and hu["valid"].tolist() == [1] and hu["test"].tolist() == [0]
    registry = scaffold_split(murcko_scaffolds(smiles, include_chirality=False))
    assert registry["test"].tolist() == [9]  # the registry's order: the last singleton reaches test


def test_chirality_separates_scaffolds_and_bad_input_is_named() -> None:
    cis, trans = "F[C@H]1CCC[C@@H]2CCCC[C@H]12", "F[C@H]1CCC[C@H]2CCCC[C@H]12"  # decalins, ring fusion differs
    assert murcko_scaffolds([cis, trans]) == ["C1CC[C@H]2CCCC[C@H]2C1", "C1CC[C@H]2CCCC[C@@H]2C1"]
    assert murcko_scaffolds([cis, trans], include_chirality=False) == ["C1CCC2CCCCC2C1"] * 2
    with pytest.raises(ValueError, match=r"molecule 1 \('C1CC\('\) cannot be parsed by RDKit"):
        murcko_scaffolds(["CCO", "C1CC("])
    with pytest.raises(ValueError, match="split fractions must be three non-negative numbers summing to 1"):
        hu_scaffold_split(["CCO"], fractions=(0.5, 0.5, 0.5))
