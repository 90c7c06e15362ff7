"""Knowledge-graph triples (``kg/codex-m``, and any CoDEx-format folder ``kg/<name>``).

``<data_dir>/codex/<name>/{train,valid,test}.txt`` hold tab-separated ``head relation tail``
Wikidata ids; ``{valid,test}_negatives.txt`` (when present) hold the CoDEx *hard negatives*:
plausible but false triples, one per line.

Entities and relations get contiguous ids in sorted order of their Wikidata ids over every file
(``node_names`` / ``relation_names`` keep the ids). The graph is directed: ``edge_index``
``[2, E_train]`` holds the training triples (head -> tail) and ``edge_attr`` int64 ``[E, 1]``
their relation ids. ``edge_splits`` hold each split's positives (``edge_index``,
``edge_type``) and, for valid/test, the given hard negatives (``neg_edge_index``,
``neg_edge_type``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from .dataset import DataFormatError, GraphDataset, TaskSpec
from .registry import DatasetSource, register

__all__ = ["load_triples_folder"]

_SPLITS = ("train", "valid", "test")


def _read_triples(path: Path) -> np.ndarray:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}: line {line} is not UTF-8 text ({err.reason}); save the file as UTF-8") from err
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if number == len(lines):
                continue
            raise DataFormatError(f"{path}: line {number} is blank; every line must be 'head<TAB>relation<TAB>tail'")
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise DataFormatError(f"{path}: line {number} is {line!r}; expected 'head<TAB>relation<TAB>tail'")
        rows.append(parts)
    return np.asarray(rows, dtype=object).reshape(-1, 3)


def load_triples_folder(folder: str | Path, dataset_name: str | None = None, domain: str = "knowledge_graph") -> GraphDataset:
    """Read a CoDEx-style triples folder into a directed link-prediction dataset."""
    folder = Path(folder)
    dataset_name = dataset_name or f"kg/{folder.name}"
    triples = {split: _read_triples(folder / f"{split}.txt") for split in _SPLITS}
    negatives = {
        split: _read_triples(folder / f"{split}_negatives.txt")
        for split in ("valid", "test")
        if (folder / f"{split}_negatives.txt").exists()
    }
    every = np.concatenate(list(triples.values()) + list(negatives.values()))
    entity_names = sorted(set(every[:, 0]) | set(every[:, 2]))
    relation_names = sorted(set(every[:, 1]))
    entity_index = pd.Index(entity_names)
    relation_index = pd.Index(relation_names)

    def encode(table: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        heads = entity_index.get_indexer(table[:, 0])
        tails = entity_index.get_indexer(table[:, 2])
        relations = relation_index.get_indexer(table[:, 1])
        return torch.from_numpy(np.stack([heads, tails]).astype(np.int64)), torch.from_numpy(relations.astype(np.int64))

    edge_splits: dict[str, dict[str, torch.Tensor]] = {}
    for split in _SPLITS:
        edge_index, edge_type = encode(triples[split])
        edge_splits[split] = {"edge_index": edge_index, "edge_type": edge_type}
        if split in negatives:
            neg_index, neg_type = encode(negatives[split])
            edge_splits[split]["neg_edge_index"] = neg_index
            edge_splits[split]["neg_edge_type"] = neg_type
    train = edge_splits["train"]
    data = Data(
        edge_index=train["edge_index"].clone(),
        edge_attr=train["edge_type"].view(-1, 1).clone(),
        num_nodes=len(entity_names),
        directed=True,
        domain=domain,
        name=folder.name,
        node_names=list(entity_names),
        relation_names=list(relation_names),
    )
    task = TaskSpec(
        level="edge", kind="link", num_classes=None, num_targets=1, target_names=["triple"], metric="mrr",
        description=f"complete (head, relation, ?) Wikidata triples over {len(relation_names)} relations; "
        "valid/test carry the source's hard negatives",
        split="the source's train/valid/test triples",
    )
    return GraphDataset(
        name=dataset_name, domain=domain, task=task, graphs=[data], edge_splits=edge_splits,
        info={
            "num_entities": len(entity_names),
            "num_relations": len(relation_names),
            "triples": {split: int(len(t)) for split, t in triples.items()},
            "hard_negatives": {split: int(len(t)) for split, t in negatives.items()},
        },
    )


def _folder(data_dir: Path, name: str) -> Path:
    return data_dir / "codex" / name.split("/", 1)[1]


def _discover(data_dir: Path) -> list[str]:
    root = data_dir / "codex"
    return sorted(f"kg/{p.name}" for p in root.iterdir() if (p / "train.txt").is_file()) if root.is_dir() else []


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    folder = _folder(data_dir, name)
    files = [folder / f"{split}.txt" for split in _SPLITS]
    files += [folder / f"{s}_negatives.txt" for s in ("valid", "test") if (folder / f"{s}_negatives.txt").exists()]
    return files


def _load(name: str, data_dir: Path | None) -> GraphDataset:
    return load_triples_folder(_folder(data_dir, name), dataset_name=name)


register(
    DatasetSource(
        name="kg/", loader=_load, files=_files, discover=_discover,
        description="CoDEx triples live in <data_dir>/codex/<name>/{train,valid,test}.txt (+ *_negatives.txt).",
        examples=("kg/codex-m",),
    )
)
