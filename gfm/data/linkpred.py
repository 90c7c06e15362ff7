"""OGB-style link prediction from scipy COO matrices (``linkpred/ddi``).

``<data_dir>/opengraph/ddi/`` (HKUDS/OpenGraph's copy of ogbl-ddi) holds pickled
``scipy.sparse.coo_matrix`` objects: ``trn_mat.pkl.zip`` (the training matrix, zipped; both
directions of every drug-drug interaction), ``val_mat.pkl`` and ``tst_mat.pkl`` (each held-out
interaction once). The graph keeps the training interactions (undirected, both directions);
``edge_splits`` hold each split's positives as given. The source ships no negatives, so
``neg_edge_index`` is absent (OGB's evaluator samples its own).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from ._legacy_pickle import load_legacy_pickle
from .dataset import DataFormatError, GraphDataset, TaskSpec, first_asymmetric_edge
from .registry import DatasetSource, register

__all__ = ["load_coo_link_folder"]


def _read_matrix(path: Path) -> sp.coo_matrix:
    """Open one pickled COO matrix (zipped or not) through the allow-listed legacy unpickler."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".pkl")]
            if len(members) != 1:
                raise DataFormatError(f"{path}: expected one .pkl inside, found {archive.namelist()}")
            payload = archive.read(members[0])
        matrix = load_legacy_pickle(payload, description=f"{path}:{members[0]}", encoding="latin1")
    else:
        matrix = load_legacy_pickle(path, description=str(path), encoding="latin1")
    if not sp.issparse(matrix):
        raise DataFormatError(f"{path}: expected a scipy sparse matrix, found {type(matrix).__name__}")
    return matrix.tocoo()


def _edges(matrix: sp.coo_matrix) -> torch.Tensor:
    order = np.lexsort((matrix.col, matrix.row))
    return torch.from_numpy(np.stack([matrix.row[order], matrix.col[order]]).astype(np.int64))


def load_coo_link_folder(
    folder: str | Path, dataset_name: str, domain: str = "biomedical", description: str = "", metric: str = "hits@20"
) -> GraphDataset:
    """Read ``trn_mat.pkl(.zip)``, ``val_mat.pkl``, ``tst_mat.pkl`` into an undirected link-prediction dataset."""
    folder = Path(folder)
    train_path = folder / "trn_mat.pkl.zip" if (folder / "trn_mat.pkl.zip").exists() else folder / "trn_mat.pkl"
    train, valid, test = (_read_matrix(p) for p in (train_path, folder / "val_mat.pkl", folder / "tst_mat.pkl"))
    shapes = {train.shape, valid.shape, test.shape}
    if len(shapes) != 1 or train.shape[0] != train.shape[1]:
        raise DataFormatError(f"{folder}: the split matrices must be square and of one shape, found {sorted(shapes)}")
    num_nodes = int(train.shape[0])
    edge_index = _edges(train)
    asymmetric = first_asymmetric_edge(edge_index, num_nodes)
    if asymmetric is not None:
        u, v = asymmetric
        raise DataFormatError(
            f"{train_path}: the training matrix is not symmetric (entry ({u}, {v}) has no ({v}, {u})); "
            f"{dataset_name} is undirected: store both directions of every interaction"
        )
    data = Data(edge_index=edge_index, num_nodes=num_nodes, domain=domain, name=folder.name)
    upper = edge_index[:, edge_index[0] < edge_index[1]]
    edge_splits = {"train": {"edge_index": upper}, "valid": {"edge_index": _edges(valid)}, "test": {"edge_index": _edges(test)}}
    task = TaskSpec(
        level="edge", kind="link", num_classes=None, num_targets=1, target_names=["interaction"], metric=metric,
        description=description or "predict interactions between drugs", split="the source's train/valid/test interactions",
    )
    return GraphDataset(
        name=dataset_name, domain=domain, task=task, graphs=[data], edge_splits=edge_splits,
        info={"train_entries": int(train.nnz), "valid_edges": int(valid.nnz), "test_edges": int(test.nnz)},
    )


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    folder = data_dir / "opengraph" / "ddi"
    return [folder / "trn_mat.pkl.zip", folder / "val_mat.pkl", folder / "tst_mat.pkl"]


def _load(name: str, data_dir: Path | None) -> GraphDataset:
    return load_coo_link_folder(
        data_dir / "opengraph" / "ddi", name,
        description="predict which pairs of drugs interact (ogbl-ddi drug-drug interaction network)",
    )


register(
    DatasetSource(
        name="linkpred/ddi", loader=_load, files=_files,
        description="ogbl-ddi lives in <data_dir>/opengraph/ddi/{trn_mat.pkl.zip,val_mat.pkl,tst_mat.pkl}.",
    )
)
