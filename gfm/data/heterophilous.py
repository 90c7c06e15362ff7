"""Heterophilous node-classification graphs from ``.npz`` files (``hetero/<name>``).

Each ``<data_dir>/heterophilous/<name>.npz`` (yandex-research/heterophilous-graphs) holds
``node_features`` float ``[N, F]``, ``node_labels`` int ``[N]``, ``edges`` int ``[E, 2]`` and
``train_masks`` / ``val_masks`` / ``test_masks`` bool ``[10, N]`` (10 given splits).

``edges`` lists every undirected edge once, so undirected variants get both directions (as the
source's own code does); the ``*_directed`` variants keep the edges as given and are flagged
``directed=True``. Masks become ``[N, 10]`` (``TaskSpec.num_splits = 10``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from .dataset import DataFormatError, GraphDataset, TaskSpec
from .registry import DatasetSource, register

__all__ = ["load_heterophilous_npz", "HETEROPHILOUS_DOMAINS"]

#: What each graph is about (domain tag); unknown files default to "other".
HETEROPHILOUS_DOMAINS = {
    "actor": ("social", "the category of each actor's Wikipedia page (actors co-occurring on pages)"),
    "chameleon": ("web", "the average monthly traffic bucket of each Wikipedia page about chameleons"),
    "squirrel": ("web", "the average monthly traffic bucket of each Wikipedia page about squirrels"),
    "cornell": ("web", "the kind of each Cornell web page (student, faculty, course, project, staff)"),
    "texas": ("web", "the kind of each Texas web page (student, faculty, course, project, staff)"),
    "wisconsin": ("web", "the kind of each Wisconsin web page (student, faculty, course, project, staff)"),
    "tolokers": ("social", "whether each Toloka crowd worker has been banned"),
    "minesweeper": ("synthetic", "whether each cell of a 100x100 Minesweeper grid holds a mine"),
    "roman-empire": ("text", "the syntactic role of each word of the Roman Empire Wikipedia article"),
    "amazon-ratings": ("ecommerce", "the average rating bucket of each Amazon product"),
    "questions": ("social", "whether each Yandex Q user stayed active"),
}
_BINARY_METRIC = {"tolokers": "roc_auc", "minesweeper": "roc_auc", "questions": "roc_auc"}


def _base(name: str) -> str:
    for suffix in ("_filtered_directed", "_directed", "_filtered", "_4_classes"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_heterophilous_npz(path: str | Path, dataset_name: str | None = None, domain: str | None = None) -> GraphDataset:
    """Read one heterophilous ``.npz`` into a node-classification dataset with its 10 splits."""
    path = Path(path)
    stem = path.stem
    dataset_name = dataset_name or f"hetero/{stem}"
    with np.load(path, allow_pickle=False) as archive:
        missing = {"node_features", "node_labels", "edges", "train_masks", "val_masks", "test_masks"} - set(archive.files)
        if missing:
            raise DataFormatError(f"{path}: missing arrays {sorted(missing)} (found {archive.files})")
        features = archive["node_features"].astype(np.float32)
        labels = archive["node_labels"].astype(np.int64)
        edges = archive["edges"].astype(np.int64)
        masks = {key: archive[key].astype(bool) for key in ("train_masks", "val_masks", "test_masks")}
    num_nodes = labels.shape[0]
    if features.shape[0] != num_nodes:
        raise DataFormatError(f"{path}: node_features has {features.shape[0]} rows but node_labels has {num_nodes}")
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise DataFormatError(f"{path}: edges must be [E, 2], got {edges.shape}")
    for key, mask in masks.items():
        if mask.ndim != 2 or mask.shape[1] != num_nodes:
            raise DataFormatError(f"{path}: {key} must be [splits, {num_nodes}], got {mask.shape}")
    directed = stem.endswith("_directed")
    edge_index = torch.from_numpy(edges.T.copy())
    if not directed:
        edge_index = to_undirected(edge_index, num_nodes=num_nodes)
    base = _base(stem)
    default_domain, what = HETEROPHILOUS_DOMAINS.get(base, ("other", "the label of each node"))
    domain = domain or default_domain
    data = Data(
        x=torch.from_numpy(features),
        edge_index=edge_index,
        num_nodes=num_nodes,
        y=torch.from_numpy(labels),
        domain=domain,
        name=stem,
        train_mask=torch.from_numpy(masks["train_masks"].T.copy()),
        val_mask=torch.from_numpy(masks["val_masks"].T.copy()),
        test_mask=torch.from_numpy(masks["test_masks"].T.copy()),
    )
    if directed:
        data.directed = True
    num_splits = masks["train_masks"].shape[0]
    num_classes = int(labels.max()) + 1
    used = np.unique(labels[(masks["train_masks"] | masks["val_masks"] | masks["test_masks"]).any(0)])
    note = "" if used.size == num_classes else f" (only classes {used.tolist()} occur in the splits)"
    task = TaskSpec(
        level="node", kind="classification", num_classes=num_classes, num_targets=1, target_names=["label"],
        metric=_BINARY_METRIC.get(base, "accuracy"), description=f"predict {what}{note}",
        split=f"the source's {num_splits} given splits (masks are [N, {num_splits}])", num_splits=num_splits,
    )
    return GraphDataset(
        name=dataset_name, domain=domain, task=task, graphs=[data],
        info={"source_file": path.name, "directed": directed, "edges_in_file": int(edges.shape[0])},
    )


def _discover(data_dir: Path) -> list[str]:
    folder = data_dir / "heterophilous"
    return sorted(f"hetero/{p.stem}" for p in folder.glob("*.npz")) if folder.is_dir() else []


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    return [data_dir / "heterophilous" / f"{name.split('/', 1)[1]}.npz"]


def _load(name: str, data_dir: Path | None, domain: str | None = None) -> GraphDataset:
    return load_heterophilous_npz(_files(name, data_dir, {})[0], dataset_name=name, domain=domain)


register(
    DatasetSource(
        name="hetero/", loader=_load, files=_files, discover=_discover,
        description="Heterophilous graphs live in <data_dir>/heterophilous/<name>.npz.",
        examples=("hetero/chameleon", "hetero/squirrel", "hetero/actor", "hetero/tolokers", "hetero/minesweeper"),
    )
)
