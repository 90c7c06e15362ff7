"""Your own graph: an edge list plus an optional node table, CSV or Parquet.

``gfm.data.load_edge_list(edges_path, nodes_path=None, ...)`` or, through the registry,
``gfm.data.load("csv/<path to edges>", nodes_path=...)`` (``parquet/<path>`` works the same).

Edge list: one edge per row with columns ``source`` and ``target`` (node ids: integers or
strings); any other numeric columns become float32 ``edge_attr`` ``[E, F]``.

Node table (optional): column ``id`` (every node once, isolated nodes included), optional
``label`` (integers or strings -> node classification, floats -> node regression; empty =
unlabelled), optional ``split`` (``train`` / ``valid`` / ``test``; empty = none), other
numeric columns -> float32 ``x`` ``[N, F]``. Without a node table the nodes are the ids seen in
the edge list (sorted). Column names are options (``source_col``, ``target_col``, ``node_col``,
``label_col``, ``split_col``).

Undirected graphs (the default) get the reverse of every edge whose reverse is not listed;
``directed=True`` keeps the edges as given. Without labels the task is link prediction with a
seeded random link split (``seed``, ``fractions``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from .dataset import DataFormatError, GraphDataset, TaskSpec
from .registry import DatasetSource, register
from .splits import indices_to_masks, random_link_split, random_split, stratified_split

__all__ = ["load_edge_list"]

logger = logging.getLogger(__name__)

_SPLIT_VALUES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot read it as {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'} ({err})") from err


def _require(frame: pd.DataFrame, path: Path, column: str, option: str) -> None:
    if column not in frame.columns:
        raise DataFormatError(
            f"{path}: no column {column!r} (columns: {list(frame.columns)}); rename it or pass {option}=<column name>"
        )


def _line(path: Path, row: int) -> str:
    return f"line {row + 2}" if path.suffix.lower() not in (".parquet", ".pq") else f"row {row}"


def _numeric_columns(frame: pd.DataFrame, exclude: Sequence[str], path: Path) -> list[str]:
    numeric, ignored = [], []
    for column in frame.columns:
        if column in exclude:
            continue
        (numeric if pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]) else ignored).append(column)
    if ignored:
        logger.warning("%s: non-numeric columns %s are not used as features (encode them as numbers to use them)", path, ignored)
    return numeric


def load_edge_list(
    edges_path: str | Path,
    nodes_path: str | Path | None = None,
    *,
    dataset_name: str | None = None,
    source_col: str = "source",
    target_col: str = "target",
    node_col: str = "id",
    label_col: str = "label",
    split_col: str = "split",
    directed: bool = False,
    domain: str = "other",
    seed: int = 0,
    fractions: Sequence[float] | None = None,
) -> GraphDataset:
    """Load a user graph from an edge list (and node table); see the module docstring for the format.

    Returns:
        A node-classification / node-regression dataset when the node table has labels, else a
        link-prediction dataset. ``data.node_names`` keeps the original ids (as strings).

    Raises:
        DataFormatError: a missing column, a duplicate node id, or an edge endpoint that is not
            in the node table, naming the file and line.
    """
    edges_path = Path(edges_path)
    dataset_name = dataset_name or f"{'parquet' if edges_path.suffix.lower() in ('.parquet', '.pq') else 'csv'}/{edges_path}"
    edges = _read_table(edges_path)
    _require(edges, edges_path, source_col, "source_col")
    _require(edges, edges_path, target_col, "target_col")
    for column in (source_col, target_col):
        if edges[column].isna().any():
            row = int(np.nonzero(edges[column].isna().to_numpy())[0][0])
            raise DataFormatError(f"{edges_path}: {_line(edges_path, row)} has no {column!r} value")
    nodes = None
    if nodes_path is not None:
        nodes_path = Path(nodes_path)
        nodes = _read_table(nodes_path)
        _require(nodes, nodes_path, node_col, "node_col")
        duplicated = nodes[node_col].duplicated().to_numpy()
        if duplicated.any():
            row = int(np.nonzero(duplicated)[0][0])
            raise DataFormatError(f"{nodes_path}: {_line(nodes_path, row)} repeats node id {nodes[node_col].iloc[row]!r}; ids must be unique")
        ids = pd.Index(nodes[node_col].astype(str))
    else:
        seen = pd.unique(pd.concat([edges[source_col], edges[target_col]], ignore_index=True))
        try:
            ordered = sorted(seen)
        except TypeError:
            ordered = sorted(seen, key=str)
        ids = pd.Index([str(v) for v in ordered])
    num_nodes = len(ids)
    src = ids.get_indexer(edges[source_col].astype(str))
    dst = ids.get_indexer(edges[target_col].astype(str))
    unknown = (src < 0) | (dst < 0)
    if unknown.any():
        row = int(np.nonzero(unknown)[0][0])
        missing = edges[source_col].iloc[row] if src[row] < 0 else edges[target_col].iloc[row]
        raise DataFormatError(
            f"{edges_path}: {_line(edges_path, row)} refers to node {missing!r}, which is not in {nodes_path} "
            f"(column {node_col!r}); add it to the node table"
        )
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
    edge_feature_cols = _numeric_columns(edges, (source_col, target_col), edges_path)
    edge_attr = torch.tensor(edges[edge_feature_cols].to_numpy(np.float32)) if edge_feature_cols else None
    if not directed and edge_index.numel():
        keys = edge_index[0] * num_nodes + edge_index[1]
        reverse_keys = edge_index[1] * num_nodes + edge_index[0]
        lacking = ~torch.isin(reverse_keys, keys)
        if bool(lacking.any()):
            logger.info("%s: adding the reverse of %d edges (undirected graph)", dataset_name, int(lacking.sum()))
            edge_index = torch.cat([edge_index, edge_index[:, lacking].flip(0)], dim=1)
            if edge_attr is not None:
                edge_attr = torch.cat([edge_attr, edge_attr[lacking]])
        order = torch.argsort(edge_index[0] * num_nodes + edge_index[1], stable=True)
        edge_index = edge_index[:, order]
        edge_attr = edge_attr[order] if edge_attr is not None else None
    data = Data(edge_index=edge_index, num_nodes=num_nodes, domain=domain, name=edges_path.stem, node_names=list(ids))
    if directed:
        data.directed = True
    if edge_attr is not None:
        data.edge_attr = edge_attr

    labels = None
    if nodes is not None:
        exclude = [node_col, label_col, split_col]
        feature_cols = _numeric_columns(nodes, exclude, nodes_path)
        if feature_cols:
            data.x = torch.tensor(nodes[feature_cols].to_numpy(np.float32))
        if label_col in nodes.columns:
            labels = nodes[label_col]
    if labels is None:
        fractions = tuple(fractions or (0.85, 0.05, 0.10))
        train_mask, edge_splits = random_link_split(data.edge_index, num_nodes, fractions, seed, directed=directed)
        data.edge_index = data.edge_index[:, train_mask]
        if data.edge_attr is not None:
            data.edge_attr = data.edge_attr[train_mask]
        task = TaskSpec(
            level="edge", kind="link", num_classes=None, num_targets=1, target_names=["link"], metric="roc_auc",
            description=f"predict the edges of {edges_path.name}",
            split=f"seeded random link split {fractions} (seed={seed}), one sampled non-edge per held-out edge",
        )
        return GraphDataset(name=dataset_name, domain=domain, task=task, graphs=[data], edge_splits=edge_splits,
                            info={"edges_file": str(edges_path), "nodes_file": str(nodes_path) if nodes_path else None})

    present = labels.notna().to_numpy()
    fractions = tuple(fractions or (0.6, 0.2, 0.2))
    if pd.api.types.is_float_dtype(labels) and not np.array_equal(labels[present], np.round(labels[present])):
        y = torch.from_numpy(labels.to_numpy(np.float32).reshape(-1, 1).copy())
        task = TaskSpec(
            level="node", kind="regression", num_classes=None, num_targets=1, target_names=[label_col], metric="mae",
            description=f"predict {label_col!r} of each node of {edges_path.name} (NaN = unlabelled)", split="",
        )
        labelled_index = torch.from_numpy(np.nonzero(present)[0])
        split_indices = {k: labelled_index[v] for k, v in random_split(labelled_index.numel(), fractions, seed).items()}
    else:
        values = labels[present]
        if pd.api.types.is_numeric_dtype(values):
            values = values.astype(np.int64)
            classes = sorted(pd.unique(values).tolist())
        else:
            values = values.astype(str)
            classes = sorted(pd.unique(values).tolist())
        if len(classes) < 2:
            raise DataFormatError(
                f"{nodes_path}: column {label_col!r} holds a single class {classes}; a classification task needs two or "
                "more (pass label_col=... for another column)"
            )
        class_of = {value: index for index, value in enumerate(classes)}
        codes = np.full(num_nodes, -1, dtype=np.int64)
        codes[present] = [class_of[v] for v in values]
        y = torch.from_numpy(codes)
        task = TaskSpec(
            level="node", kind="classification", num_classes=len(classes), num_targets=1, target_names=[label_col],
            metric="accuracy", class_names=[str(c) for c in classes],
            description=f"predict {label_col!r} of each node of {edges_path.name}", split="",
        )
        split_indices = stratified_split(y, fractions, seed)
    data.y = y
    if split_col in nodes.columns:
        given = nodes[split_col]
        unknown_values = sorted({str(v) for v in given.dropna().unique()} - set(_SPLIT_VALUES))
        if unknown_values:
            raise DataFormatError(f"{nodes_path}: column {split_col!r} holds {unknown_values}; use train, valid or test (or leave empty)")
        mapped = given.map(lambda v: _SPLIT_VALUES.get(str(v)) if pd.notna(v) else None)
        split_indices = {k: torch.from_numpy(np.nonzero((mapped == k).to_numpy())[0]) for k in ("train", "valid", "test")}
        task.split = f"given by the {split_col!r} column of {nodes_path.name}"
    else:
        task.split = f"seeded {'stratified ' if task.kind == 'classification' else ''}{fractions} node split (seed={seed})"
    for key, mask in indices_to_masks(split_indices, num_nodes).items():
        data[key] = mask
    return GraphDataset(name=dataset_name, domain=domain, task=task, graphs=[data],
                        info={"edges_file": str(edges_path), "nodes_file": str(nodes_path)})


def _path_of(name: str) -> Path:
    return Path(name.split("/", 1)[1]).expanduser()


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    files = [_path_of(name)]
    if options.get("nodes_path") is not None:
        files.append(Path(options["nodes_path"]).expanduser())
    return files


def _load(name: str, data_dir: Path | None, **options) -> GraphDataset:
    return load_edge_list(_path_of(name), dataset_name=name, **options)


for _prefix in ("csv", "parquet"):
    register(
        DatasetSource(
            name=f"{_prefix}/", loader=_load, files=_files, needs_data_dir=False, list_in_available=False,
            description=f"{_prefix}/<path to edge list>: your own graph (columns source,target; node table via nodes_path=...).",
            examples=(f"{_prefix}/path/to/edges.{_prefix}",),
        )
    )
