"""MoleculeNet CSVs through RDKit (``moleculenet/{hiv,tox21,toxcast,muv,qm8,esol,sider,clintox}``).

Each CSV holds a ``smiles`` column and one column per target. Graph targets follow the contract:
single-task binary (HIV) -> int64 ``y`` ``[1]``; multi-task binary -> float32 ``[1, T]`` with NaN
for a missing label; regression -> float32 ``[1, T]``. Splits: the deterministic Bemis-Murcko
scaffold split 80/10/10 (MoleculeNet/OGB convention). Unparsable SMILES are skipped, logged with
their line numbers, and kept in ``GraphDataset.skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ._text import csv_row_lines, row_location
from .dataset import DataFormatError, GraphDataset, TaskSpec
from .molecules import molecules_to_graphs
from .registry import DatasetSource, register
from .splits import scaffold_split

__all__ = ["MOLECULENET", "load_smiles_csv"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Spec:
    file: str
    kind: str
    metric: str
    description: str


MOLECULENET: dict[str, _Spec] = {
    "hiv": _Spec("HIV.csv.gz", "classification", "roc_auc", "does the molecule inhibit HIV replication (active/inactive)"),
    "tox21": _Spec("tox21.csv", "multilabel", "roc_auc", "toxicity in 12 Tox21 assays (NaN = not measured)"),
    "toxcast": _Spec("toxcast.csv.gz", "multilabel", "roc_auc", "activity in ToxCast high-throughput assays (NaN = not measured)"),
    "muv": _Spec("muv.csv.gz", "multilabel", "prc_auc", "activity in 17 MUV virtual-screening targets (NaN = not measured)"),
    "qm8": _Spec("qm8.csv.gz", "regression", "mae", "electronic spectra: excitation energies and oscillator strengths (16 targets)"),
    "esol": _Spec("delaney.csv", "regression", "rmse", "water solubility (log mol/L) of the molecule"),
    "sider": _Spec("sider.csv", "multilabel", "roc_auc", "side effects of marketed drugs in 27 organ classes"),
    "clintox": _Spec("clintox.csv", "multilabel", "roc_auc", "FDA approval and clinical-trial toxicity"),
}


def load_smiles_csv(
    path: str | Path,
    dataset_name: str,
    kind: str,
    metric: str,
    description: str = "",
    smiles_column: str = "smiles",
    domain: str = "molecules",
    limit: int | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    num_workers: int | None = None,
) -> GraphDataset:
    """Load a CSV of SMILES + target columns as a graph-level dataset with a scaffold split.

    Args:
        path: CSV (optionally ``.gz``).
        dataset_name: name for messages.
        kind: ``"classification"`` (one binary/integer column), ``"multilabel"`` or ``"regression"``.
        metric: benchmark metric.
        description: what is predicted.
        smiles_column: column holding SMILES.
        domain: domain tag.
        limit: read only the first ``limit`` rows (quick checks).
        fractions: scaffold split fractions.
        num_workers: RDKit processes (see :func:`gfm.data.molecules.molecules_to_graphs`).
    """
    path = Path(path)
    layout = f"a header line '{smiles_column},<target>,...', then one molecule per line"
    try:
        frame = pd.read_csv(path, nrows=limit)
    except pd.errors.EmptyDataError as err:
        raise DataFormatError(
            f"{path}: the file is empty ({err}); a MoleculeNet CSV holds {layout}. Restore the file from its source"
        ) from err
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as err:
        raise DataFormatError(
            f"{path}: not a readable CSV ({type(err).__name__}: {err}); a MoleculeNet CSV holds {layout} "
            "(gzip-compressed when the name ends in .gz). Restore the file from its source"
        ) from err
    if smiles_column not in frame.columns:
        columns = [str(c) for c in frame.columns]
        same_but_case = [c for c in columns if c.lower() == smiles_column.lower()]
        hint = (
            f"{same_but_case[0]!r} differs only in case: pass smiles_column={same_but_case[0]!r}"
            if same_but_case
            else "pass smiles_column=<the column holding the SMILES>"
        )
        shown = columns if len(columns) <= 20 else columns[:20] + [f"... {len(columns) - 20} more"]
        raise DataFormatError(
            f"{path}: no column {smiles_column!r} (the SMILES column expected); the file has {len(columns)} "
            f"columns: {shown}; {hint}"
        )
    if len(frame) == 0:
        raise DataFormatError(f"{path}: a header but no rows; a MoleculeNet CSV holds {layout}")
    target_names = [c for c in frame.columns if c != smiles_column]
    if not target_names:
        raise DataFormatError(f"{path}: no target columns beside {smiles_column!r}; the file holds {layout}")
    for column in target_names:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        not_number = (values.notna() & pd.to_numeric(values, errors="coerce").isna()).to_numpy()
        row = int(np.nonzero(not_number)[0][0])
        raise DataFormatError(
            f"{path}: {row_location(path, row)}, column {column!r} holds {str(values.iloc[row])!r}, not a number; "
            "target cells are numbers, or empty for a label that was not measured"
        )
    targets = frame[target_names].to_numpy(dtype=np.float64)

    graphs, kept, scaffolds, skipped = molecules_to_graphs(
        frame[smiles_column].tolist(), domain=domain, scaffolds=True, num_workers=num_workers
    )
    line_of_row = _row_lines(path) if skipped else []
    if skipped:
        lines = ", ".join(str(_line(line_of_row, position)) for position, _, _ in skipped[:10])
        logger.warning(
            "%s: skipped %d of %d SMILES that RDKit cannot parse or featurize (CSV lines %s%s); "
            "they are listed in dataset.skipped",
            dataset_name, len(skipped), len(frame), lines, " ..." if len(skipped) > 10 else "",
        )
    targets = targets[kept]
    class_names = None
    if kind == "classification":
        if len(target_names) != 1:
            raise DataFormatError(f"{path}: classification expects one target column, found {target_names}")
        column = targets[:, 0]
        if np.isnan(column).any():
            row = int(kept[np.nonzero(np.isnan(column))[0][0]])
            raise DataFormatError(f"{path}: {row_location(path, row)} has no label in {target_names[0]!r}; drop the row or treat the task as multilabel")
        values = np.unique(column)
        if not np.array_equal(values, np.round(values)) or values.min() < 0:
            raise DataFormatError(f"{path}: classification labels must be non-negative integers, found {values[:10].tolist()}")
        num_classes = max(int(values.max()) + 1, 2)
        ys = torch.as_tensor(column.astype(np.int64)).view(-1, 1)
        class_names = [str(i) for i in range(num_classes)]
    else:
        num_classes = None
        if kind == "regression" and np.isnan(targets).any():
            index = int(np.nonzero(np.isnan(targets).any(1))[0][0])
            row = int(kept[index])
            column = target_names[int(np.nonzero(np.isnan(targets[index]))[0][0])]
            raise DataFormatError(
                f"{path}: {row_location(path, row)}, column {column!r}: the regression target is empty; fill it in or drop the row"
            )
        if kind == "multilabel":
            present = targets[~np.isnan(targets)]
            if present.size and not np.isin(present, (0.0, 1.0)).all():
                raise DataFormatError(f"{path}: multilabel targets must be 0, 1 or empty, found {np.unique(present)[:10].tolist()}")
        ys = torch.as_tensor(targets, dtype=torch.float32).unsqueeze(1)
    for graph, y in zip(graphs, ys):
        graph.y = y.clone()
    splits = scaffold_split(scaffolds, fractions)
    task = TaskSpec(
        level="graph",
        kind=kind,
        num_classes=num_classes,
        num_targets=len(target_names),
        target_names=[str(t) for t in target_names],
        metric=metric,
        class_names=class_names,
        description=description,
        split=f"deterministic Bemis-Murcko scaffold split {tuple(fractions)} (largest scaffold groups to train)",
    )
    return GraphDataset(
        name=dataset_name,
        domain=domain,
        task=task,
        graphs=graphs,
        splits=splits,
        skipped=[{"line": _line(line_of_row, position), "item": text, "reason": reason} for position, text, reason in skipped],
        info={"source_file": path.name, "rows": int(len(frame)), "limit": limit},
    )


def _row_lines(path: Path) -> list[int]:
    """The file line of every data row (header = line 1), as a user counts them."""
    try:
        return csv_row_lines(path)
    except (OSError, EOFError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot read it line by line ({err})") from err


def _line(line_of_row: list[int], position: int) -> int:
    return line_of_row[position] if position < len(line_of_row) else position + 2


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    return [data_dir / "moleculenet" / MOLECULENET[name.split("/", 1)[1]].file]


def _load(
    name: str,
    data_dir: Path | None,
    limit: int | None = None,
    num_workers: int | None = None,
    smiles_column: str = "smiles",
) -> GraphDataset:
    key = name.split("/", 1)[1]
    spec = MOLECULENET[key]
    return load_smiles_csv(
        data_dir / "moleculenet" / spec.file,
        dataset_name=name,
        kind=spec.kind,
        metric=spec.metric,
        description=spec.description,
        smiles_column=smiles_column,
        limit=limit,
        num_workers=num_workers,
    )


for _key in MOLECULENET:
    register(
        DatasetSource(
            name=f"moleculenet/{_key}",
            loader=_load,
            files=_files,
            description=f"MoleculeNet CSVs live in <data_dir>/moleculenet/ ({MOLECULENET[_key].file}).",
        )
    )
