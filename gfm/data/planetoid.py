"""Planetoid citation graphs from the raw ``ind.<name>.*`` files (``planetoid/{cora,citeseer,pubmed}``).

The raw files (Yang et al. 2016, tkipf/gcn) are Python-2 pickles: ``x``/``y`` (labelled training
nodes), ``allx``/``ally`` (every non-test node), ``tx``/``ty`` (test nodes, listed in
``test.index`` order), ``graph`` (adjacency lists). Nodes ``0..len(allx)-1`` come first, test
nodes sit at the ids in ``test.index``.

Handled as the files are:

- CiteSeer's test ids skip 15 isolated nodes that have no features and no label: they get
  zero features, ``y = -1`` and ``x_observed = False``.
- The PubMed copy here has no ``ind.pubmed.allx``: features are known only for the 60 ``x``
  rows and the 1,000 test rows. The others get zero rows and ``x_observed = False`` (bool ``[N]``),
  and a warning says so; labels come from ``ally``/``ty`` for every node.
- The adjacency lists are symmetric; repeated entries are merged and self-loops kept
  (``info`` records both counts). The graph is undirected (both directions listed).

Split: the standard public split (train = the ``x`` rows: 20 per class, valid = the next 500
nodes, test = the 1,000 ``test.index`` nodes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from ._legacy_pickle import load_legacy_pickle
from .dataset import DataFormatError, GraphDataset, TaskSpec
from .registry import DatasetSource, register

__all__ = ["load_planetoid_raw"]

logger = logging.getLogger(__name__)

_NAMES = {"cora": "cora", "citeseer": "citeseer", "pubmed": "pubmed"}
_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph")


def _path(folder: Path, raw_name: str, part: str) -> Path:
    return folder / f"ind.{raw_name}.{part}"


def _read_part(folder: Path, raw_name: str, part: str):
    """The one place the Planetoid pickles are opened (allow-listed unpickler, see ``_legacy_pickle``)."""
    path = _path(folder, raw_name, part)
    return load_legacy_pickle(path, description=str(path), encoding="latin1")


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.todense() if sp.issparse(matrix) else matrix, dtype=np.float32)


def load_planetoid_raw(folder: str | Path, raw_name: str, dataset_name: str | None = None) -> GraphDataset:
    """Read ``ind.<raw_name>.*`` from ``folder`` into a node-classification dataset (public split)."""
    folder = Path(folder)
    dataset_name = dataset_name or f"planetoid/{raw_name}"
    x, y, tx, ty, ally, graph = (_read_part(folder, raw_name, p) for p in ("x", "y", "tx", "ty", "ally", "graph"))
    allx_path = _path(folder, raw_name, "allx")
    allx = _read_part(folder, raw_name, "allx") if allx_path.exists() else None
    test_index = np.loadtxt(_path(folder, raw_name, "test.index"), dtype=np.int64).reshape(-1)
    num_known = ally.shape[0]
    if tx.shape[0] != test_index.size or ty.shape[0] != test_index.size:
        raise DataFormatError(
            f"{_path(folder, raw_name, 'tx')}: {tx.shape[0]} test rows but test.index lists {test_index.size} nodes"
        )
    num_nodes = max(int(test_index.max()) + 1, num_known, len(graph))
    num_features, num_classes = x.shape[1], y.shape[1]

    features = np.zeros((num_nodes, num_features), dtype=np.float32)
    observed = np.zeros(num_nodes, dtype=bool)
    if allx is not None:
        if allx.shape[0] != num_known:
            raise DataFormatError(f"{allx_path}: {allx.shape[0]} rows but ally has {num_known}")
        features[:num_known] = _dense(allx)
        observed[:num_known] = True
    else:
        features[: x.shape[0]] = _dense(x)
        observed[: x.shape[0]] = True
        logger.warning(
            "%s: %s is missing, so features are known only for the %d training rows and the %d test rows; the other "
            "%d nodes get zero features and x_observed=False",
            dataset_name, allx_path.name, x.shape[0], test_index.size, num_nodes - x.shape[0] - test_index.size,
        )
    features[test_index] = _dense(tx)
    observed[test_index] = True

    labels = np.full(num_nodes, -1, dtype=np.int64)
    labelled = np.asarray(ally).sum(1) > 0
    labels[:num_known][labelled] = np.asarray(ally).argmax(1)[labelled]
    test_labelled = np.asarray(ty).sum(1) > 0
    labels[test_index[test_labelled]] = np.asarray(ty).argmax(1)[test_labelled]
    if (np.asarray(y).argmax(1) != labels[: y.shape[0]]).any():
        raise DataFormatError(f"{_path(folder, raw_name, 'y')}: training labels disagree with ally")

    src = np.fromiter((u for u, vs in graph.items() for _ in vs), dtype=np.int64)
    dst = np.fromiter((v for vs in graph.values() for v in vs), dtype=np.int64)
    raw_entries = src.size
    duplicates = raw_entries - np.unique(src * num_nodes + dst).size
    edge_index = to_undirected(torch.from_numpy(np.stack([src, dst])), num_nodes=num_nodes)
    self_loops = int((edge_index[0] == edge_index[1]).sum())

    data = Data(
        x=torch.from_numpy(features),
        edge_index=edge_index,
        num_nodes=num_nodes,
        y=torch.from_numpy(labels),
        domain="citation",
        name=raw_name,
    )
    if not observed.all():
        data.x_observed = torch.from_numpy(observed)
    train = torch.zeros(num_nodes, dtype=torch.bool)
    train[: y.shape[0]] = True
    val = torch.zeros(num_nodes, dtype=torch.bool)
    val[y.shape[0] : y.shape[0] + 500] = True
    test = torch.zeros(num_nodes, dtype=torch.bool)
    test[torch.from_numpy(test_index[test_labelled])] = True
    data.train_mask, data.val_mask, data.test_mask = train, val, test
    task = TaskSpec(
        level="node", kind="classification", num_classes=int(num_classes), num_targets=1, target_names=["topic"],
        metric="accuracy", description=f"classify each {raw_name} paper into one of {num_classes} topics",
        split=f"public Planetoid split: {int(train.sum())} train (20 per class), 500 valid, {int(test.sum())} test",
    )
    return GraphDataset(
        name=dataset_name, domain="citation", task=task, graphs=[data],
        info={
            "raw_adjacency_entries": int(raw_entries),
            "merged_duplicate_entries": int(duplicates),
            "self_loops": self_loops,
            "nodes_without_features": int((~observed).sum()),
            "unlabelled_nodes": int((labels < 0).sum()),
        },
    )


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    raw = _NAMES[name.split("/", 1)[1]]
    folder = data_dir / "planetoid"
    files = [_path(folder, raw, p) for p in _PARTS if p != "allx"] + [_path(folder, raw, "test.index")]
    if _path(folder, raw, "allx").exists():
        files.append(_path(folder, raw, "allx"))
    return files


def _load(name: str, data_dir: Path | None) -> GraphDataset:
    return load_planetoid_raw(data_dir / "planetoid", _NAMES[name.split("/", 1)[1]], dataset_name=name)


for _key in _NAMES:
    register(
        DatasetSource(
            name=f"planetoid/{_key}", loader=_load, files=_files,
            description="Planetoid raw files live in <data_dir>/planetoid/ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}.",
        )
    )
