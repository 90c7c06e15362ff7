"""The scaffold split of the molecule pretraining literature (Hu et al. 2020; GraphMAE, OGB copy it).

Hu et al. ("Strategies for Pre-training Graph Neural Networks", ICLR 2020) split MoleculeNet by
Bemis-Murcko scaffold, 80/10/10, deterministically:

1. the scaffold of each molecule is RDKit's ``MurckoScaffoldSmiles`` *with* chirality;
2. scaffold groups are sorted by ``(group size, first index)`` in *descending* order: largest
   groups first and, among groups of one size, the one whose first molecule comes *last* first;
3. groups fill train up to 80% of the molecules, then valid up to 90%, the rest is test.

gfm's registry split (:func:`gfm.data.splits.scaffold_split`, used by ``moleculenet/*``) also
puts the largest groups first, but computes scaffolds without chirality and breaks ties by the
*smaller* first index. Most scaffolds are singletons, so the tie order decides which singletons
reach test: on the six MoleculeNet classification sets the two test sets share no molecule
(measured in ``docs/molecules.md``). Numbers compared with the literature must use this split.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["hu_scaffold_split", "murcko_scaffolds"]


def murcko_scaffolds(smiles: Sequence[str], include_chirality: bool = True) -> list[str]:
    """Bemis-Murcko scaffold SMILES of each molecule (``""`` for an acyclic one).

    Raises:
        ValueError: a SMILES RDKit cannot parse (named with its position).
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Scaffolds import MurckoScaffold

    RDLogger.DisableLog("rdApp.*")
    out = []
    for index, text in enumerate(smiles):
        mol = Chem.MolFromSmiles(text) if isinstance(text, str) else None
        if mol is None:
            raise ValueError(f"molecule {index} ({text!r}) cannot be parsed by RDKit; scaffolds need parsable SMILES")
        out.append(MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=include_chirality))
    return out


def hu_scaffold_split(
    smiles: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), include_chirality: bool = True
) -> dict[str, torch.Tensor]:
    """Hu et al.'s deterministic scaffold split (see the module docstring).

    Args:
        smiles: ``[n]`` SMILES in dataset order (the order breaks ties, so it must be the file's).
        fractions: train / valid / test fractions.
        include_chirality: chirality in the scaffolds (Hu et al.: yes).

    Returns:
        ``{"train"|"valid"|"test": int64 sorted indices}``.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    groups: dict[str, list[int]] = {}
    for index, scaffold in enumerate(murcko_scaffolds(smiles, include_chirality)):
        groups.setdefault(scaffold, []).append(index)
    ordered = sorted(groups.values(), key=lambda members: (len(members), members[0]), reverse=True)
    n = len(smiles)
    train_cut, valid_cut = fractions[0] * n, (fractions[0] + fractions[1]) * n
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for members in ordered:
        if len(parts["train"]) + len(members) > train_cut:
            if len(parts["train"]) + len(parts["valid"]) + len(members) > valid_cut:
                parts["test"].extend(members)
            else:
                parts["valid"].extend(members)
        else:
            parts["train"].extend(members)
    return {name: torch.tensor(sorted(idx), dtype=torch.long) for name, idx in parts.items()}
