"""Molecules from SMILES through RDKit: the featurizer, skip accounting and Bemis-Murcko scaffolds.

Features are exactly those of :func:`torch_geometric.utils.from_rdmol` (atoms: int64 ``x``
``[N, 9]`` = atomic number, chirality, degree, formal charge, hydrogens, radical electrons,
hybridization, aromatic, in ring; bonds: int64 ``edge_attr`` ``[E, 3]`` = bond type, stereo,
conjugated; both directions of every bond, sorted by ``src * N + dst``).

Why a featurizer of our own: ``from_rdmol`` looks every value up with ``list.index`` and
``str(enum)`` and sorts with one torch call per molecule, which made HIV (41k SMILES) take
minutes here; this version precomputes the lookup tables and sorts a whole chunk of
molecules at once. ``tests/data/test_molecules.py`` checks it equals ``from_rdmol`` exactly.
Also, ``torch_geometric.utils.from_smiles`` silently turns an unparsable SMILES into an empty
molecule; here such SMILES are skipped and *counted* (``GraphDataset.skipped``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

__all__ = [
    "MoleculeBatch",
    "featurize_smiles",
    "molecules_to_graphs",
    "molecule_feature_values",
    "ATOM_FEATURES",
    "BOND_FEATURES",
]

logger = logging.getLogger(__name__)

ATOM_FEATURES = (
    "atomic_num",
    "chirality",
    "degree",
    "formal_charge",
    "num_hs",
    "num_radical_electrons",
    "hybridization",
    "is_aromatic",
    "is_in_ring",
)
BOND_FEATURES = ("bond_type", "stereo", "is_conjugated")


def _lookup_tables() -> dict[str, Any]:
    """Map RDKit enum values to the column ids of PyG's ``x_map`` / ``e_map``."""
    from rdkit import Chem
    from torch_geometric.utils.smiles import e_map, x_map

    def enum_table(enum: Any, names: list[str]) -> dict[Any, int]:
        return {getattr(enum, name): index for index, name in enumerate(names) if hasattr(enum, name)}

    return {
        "atomic_num": {value: index for index, value in enumerate(x_map["atomic_num"])},
        "chirality": enum_table(Chem.ChiralType, x_map["chirality"]),
        "max_degree": max(x_map["degree"]),
        "formal_charge_min": min(x_map["formal_charge"]),
        "formal_charge_max": max(x_map["formal_charge"]),
        "max_hs": max(x_map["num_hs"]),
        "max_radicals": max(x_map["num_radical_electrons"]),
        "hybridization": enum_table(Chem.HybridizationType, x_map["hybridization"]),
        "bond_type": enum_table(Chem.BondType, e_map["bond_type"]),
        "stereo": enum_table(Chem.BondStereo, e_map["stereo"]),
    }


def molecule_feature_values(domain: str = "molecules") -> dict[tuple[str, str], list[list[int]]]:
    """Every value each column of :func:`featurize_smiles`'s ``x`` / ``edge_attr`` can take.

    Returns ``{(domain, "x"): [[values of column 0], ..., [column 8]], (domain, "edge_attr"):
    [...3 columns]}`` (column order :data:`ATOM_FEATURES` / :data:`BOND_FEATURES`): the RDKit
    enum values PyG's ``x_map`` / ``e_map`` name, degree ``0..10``, formal charge shifted to
    ``0..11``, and so on. A tokenizer trained with them
    (``EulerianTokenizer.train(declared_values=molecule_feature_values())``) writes any molecule
    this featurizer accepts without ``<unk>``, whatever molecules its training set held.
    """
    tables = _lookup_tables()
    charges = tables["formal_charge_max"] - tables["formal_charge_min"] + 1
    atom_columns = [
        sorted(set(tables["atomic_num"].values())),
        sorted(set(tables["chirality"].values())),
        list(range(tables["max_degree"] + 1)),
        list(range(charges)),
        list(range(tables["max_hs"] + 1)),
        list(range(tables["max_radicals"] + 1)),
        sorted(set(tables["hybridization"].values())),
        [0, 1],
        [0, 1],
    ]
    bond_columns = [sorted(set(tables["bond_type"].values())), sorted(set(tables["stereo"].values())), [0, 1]]
    return {(domain, "x"): atom_columns, (domain, "edge_attr"): bond_columns}


@dataclass
class MoleculeBatch:
    """Featurized molecules of one chunk, as flat arrays (cheap to pass between processes).

    Attributes:
        kept: positions (in the input list) of the molecules that converted, ``[M]``.
        atom_counts / bond_counts: atoms and directed bond entries per kept molecule, ``[M]``.
        x: int64 ``[sum atoms, 9]``; edge_index: int64 ``[2, sum entries]`` (local ids);
        edge_attr: int64 ``[sum entries, 3]``.
        scaffolds: Bemis-Murcko scaffold SMILES per kept molecule (when asked).
        skipped: ``(position, smiles, reason)`` of the molecules that did not convert.
    """

    kept: np.ndarray
    atom_counts: np.ndarray
    bond_counts: np.ndarray
    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    scaffolds: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)


def _atom_rows(mol: Any, tables: dict[str, Any]) -> list[tuple[int, ...]]:
    rows = []
    atomic, chirality, hybrid = tables["atomic_num"], tables["chirality"], tables["hybridization"]
    charge_min, charge_max = tables["formal_charge_min"], tables["formal_charge_max"]
    # GetAtomWithIdx: RDKit's GetAtoms() iterator is a Python wrapper, twice as slow here.
    get_atom = mol.GetAtomWithIdx
    for index in range(mol.GetNumAtoms()):
        atom = get_atom(index)
        degree, charge = atom.GetTotalDegree(), atom.GetFormalCharge()
        hs, radicals = atom.GetTotalNumHs(), atom.GetNumRadicalElectrons()
        if degree > tables["max_degree"]:
            raise ValueError(f"atom {index} has degree {degree} > {tables['max_degree']}")
        if not charge_min <= charge <= charge_max:
            raise ValueError(f"atom {index} has formal charge {charge} outside [{charge_min}, {charge_max}]")
        if hs > tables["max_hs"] or radicals > tables["max_radicals"]:
            raise ValueError(f"atom {index} has {hs} hydrogens / {radicals} radicals, beyond the feature range")
        rows.append(
            (
                atomic[atom.GetAtomicNum()],
                chirality[atom.GetChiralTag()],
                degree,
                charge - charge_min,
                hs,
                radicals,
                hybrid[atom.GetHybridization()],
                int(atom.GetIsAromatic()),
                int(atom.IsInRing()),
            )
        )
    return rows


def _bond_rows(mol: Any, tables: dict[str, Any]) -> list[tuple[int, int, int, int, int]]:
    bond_type, stereo = tables["bond_type"], tables["stereo"]
    rows = []
    get_bond = mol.GetBondWithIdx
    for index in range(mol.GetNumBonds()):
        bond = get_bond(index)
        rows.append(
            (
                bond.GetBeginAtomIdx(),
                bond.GetEndAtomIdx(),
                bond_type[bond.GetBondType()],
                stereo[bond.GetStereo()],
                int(bond.GetIsConjugated()),
            )
        )
    return rows


def featurize_smiles(smiles: Sequence[str], offset: int = 0, scaffolds: bool = False) -> MoleculeBatch:
    """Parse and featurize a chunk of SMILES (RDKit); unparsable ones are recorded, not dropped silently.

    Args:
        smiles: the SMILES strings.
        offset: position of ``smiles[0]`` in the whole input (for ``kept`` / ``skipped``).
        scaffolds: also compute Bemis-Murcko scaffold SMILES (for the scaffold split).
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Scaffolds import MurckoScaffold

    RDLogger.DisableLog("rdApp.*")
    tables = _lookup_tables()
    kept: list[int] = []
    atom_counts: list[int] = []
    bond_counts: list[int] = []
    atom_rows: list[tuple[int, ...]] = []
    bond_src: list[int] = []
    bond_dst: list[int] = []
    bond_features: list[tuple[int, int, int]] = []
    scaffold_list: list[str] = []
    skipped: list[tuple[int, str, str]] = []
    for position, text in enumerate(smiles, start=offset):
        if not isinstance(text, str) or not text.strip():
            skipped.append((position, str(text), "empty SMILES"))
            continue
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            skipped.append((position, text, "RDKit cannot parse this SMILES"))
            continue
        if mol.GetNumAtoms() == 0:
            skipped.append((position, text, "the molecule has no atoms"))
            continue
        try:
            rows = _atom_rows(mol, tables)
            bonds = _bond_rows(mol, tables)
            scaffold = MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False) if scaffolds else ""
        except (ValueError, KeyError, RuntimeError) as err:
            skipped.append((position, text, f"cannot featurize: {err}"))
            continue
        kept.append(position)
        atom_counts.append(len(rows))
        bond_counts.append(2 * len(bonds))
        atom_rows.extend(rows)
        for begin, end, *features in bonds:
            bond_src.extend((begin, end))
            bond_dst.extend((end, begin))
            bond_features.extend((tuple(features), tuple(features)))
        scaffold_list.append(scaffold)
    counts = np.asarray(bond_counts, dtype=np.int64)
    src = np.asarray(bond_src, dtype=np.int64)
    dst = np.asarray(bond_dst, dtype=np.int64)
    attr = np.asarray(bond_features, dtype=np.int64).reshape(-1, 3)
    if src.size:
        # Sort every molecule's entries by src * N + dst in one pass (PyG's order).
        molecule = np.repeat(np.arange(counts.size), counts)
        sizes = np.asarray(atom_counts, dtype=np.int64)[molecule]
        order = np.lexsort((src * sizes + dst, molecule))
        src, dst, attr = src[order], dst[order], attr[order]
    return MoleculeBatch(
        kept=np.asarray(kept, dtype=np.int64),
        atom_counts=np.asarray(atom_counts, dtype=np.int64),
        bond_counts=counts,
        x=np.asarray(atom_rows, dtype=np.int64).reshape(-1, len(ATOM_FEATURES)),
        edge_index=np.stack([src, dst]) if src.size else np.zeros((2, 0), dtype=np.int64),
        edge_attr=attr,
        scaffolds=scaffold_list,
        skipped=skipped,
    )


def _featurize_task(args: tuple[list[str], int, bool]) -> MoleculeBatch:
    return featurize_smiles(*args)


def molecules_to_graphs(
    smiles: Sequence[str],
    domain: str = "molecules",
    scaffolds: bool = False,
    num_workers: int | None = None,
    chunk_size: int = 2048,
) -> tuple[list[Data], np.ndarray, list[str], list[tuple[int, str, str]]]:
    """Featurize SMILES into ``Data`` (one per parsable molecule).

    Args:
        smiles: ``[n]`` SMILES.
        domain: ``data.domain`` of every graph.
        scaffolds: compute scaffold SMILES too.
        num_workers: processes for RDKit work (default: up to 4 for >= 8k SMILES, else 1).
        chunk_size: SMILES per work unit.

    Returns:
        ``(graphs, kept positions [m], scaffolds [m], skipped [(position, smiles, reason)])``;
        each graph has ``x``, ``edge_index``, ``edge_attr``, ``num_nodes``, ``domain`` and
        ``name`` (its SMILES).
    """
    smiles = list(smiles)
    chunks = [(smiles[i : i + chunk_size], i, scaffolds) for i in range(0, len(smiles), chunk_size)]
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if len(smiles) >= 8192 else 1
    if num_workers > 1 and len(chunks) > 1:
        # fork: workers run only RDKit/numpy code and return flat arrays.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        with ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context(method)) as pool:
            batches = list(pool.map(_featurize_task, chunks))
    else:
        batches = [featurize_smiles(*chunk) for chunk in chunks]
    graphs: list[Data] = []
    kept: list[np.ndarray] = []
    scaffold_list: list[str] = []
    skipped: list[tuple[int, str, str]] = []
    for batch in batches:
        x = torch.from_numpy(batch.x)
        edge_index = torch.from_numpy(batch.edge_index)
        edge_attr = torch.from_numpy(batch.edge_attr)
        atom_counts = batch.atom_counts.tolist()
        bond_counts = batch.bond_counts.tolist()
        xs = torch.split(x, atom_counts)
        edges = torch.split(edge_index, bond_counts, dim=1)
        attrs = torch.split(edge_attr, bond_counts)
        for k, position in enumerate(batch.kept.tolist()):
            graphs.append(
                Data(
                    x=xs[k].clone(),
                    edge_index=edges[k].clone(),
                    edge_attr=attrs[k].clone(),
                    num_nodes=atom_counts[k],
                    domain=domain,
                    name=smiles[position],
                )
            )
        kept.append(batch.kept)
        scaffold_list.extend(batch.scaffolds)
        skipped.extend(batch.skipped)
    kept_positions = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return graphs, kept_positions, scaffold_list, skipped
