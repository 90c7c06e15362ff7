"""karateclub social graphs (``karateclub/<name>``, ``karateclub/reddit10k``).

Node level (``<data_dir>/karateclub/node_level/<name>/``): ``edges.csv`` (``id_1,id_2``, each
undirected edge once -> both directions, repeats merged), ``target.csv`` (``id,target``, one row
per node, ids ``0..N-1``), and for twitch ``features.csv`` (``node_id,feature_id,value``, a sparse
binary table -> dense float32 ``x``; repeated (node, feature) rows are counted and logged, the
feature is set once). Graph level (``graph_level/reddit10k/``): ``graphs.json`` (``{"<id>": [[u,
v], ...]}``, node count = largest id + 1) and ``target.csv``.

The sources ship no splits: gfm uses seeded stratified splits (node level 60/20/20, graph level
80/10/10; ``seed`` / ``fractions`` options).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from ._text import row_location
from .dataset import DataFormatError, GraphDataset, TaskSpec
from .registry import DatasetSource, register
from .splits import indices_to_masks, stratified_split

__all__ = ["load_karateclub_node", "load_reddit10k", "KARATECLUB_TASKS"]

logger = logging.getLogger(__name__)

#: name -> (domain, what the target is)
KARATECLUB_TASKS = {
    "facebook": ("social", "the category of each Facebook page (politician, government, TV show, company)"),
    "github": ("social", "whether each GitHub developer works on web or machine-learning projects"),
    "deezer": ("social", "the gender of each Deezer user"),
    "lastfm": ("social", "the country of each LastFM Asia user"),
    "twitch": ("social", "whether each Twitch streamer uses explicit language"),
    "wikipedia": ("web", "the binary target of each Wikipedia page in the karateclub wikipedia graph"),
}


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataFormatError(f"{path}: not a readable CSV ({err})") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: missing columns {missing} (found {list(frame.columns)})")
    for column in columns[:2]:  # id columns must be integers
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) | (values != np.round(values))
        if bad.any():
            row = int(np.nonzero(bad)[0][0])
            raise DataFormatError(
                f"{path}: {row_location(path, row)} holds {frame[column].iloc[row]!r} in column {column!r}, expected an integer id"
            )
    return frame


def _undirected(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> torch.Tensor:
    """Both directions of every edge, sorted, duplicates merged: ``edge_index`` int64 ``[2, E']``."""
    return to_undirected(torch.from_numpy(np.stack([src, dst]).astype(np.int64)), num_nodes=num_nodes)


def load_karateclub_node(
    folder: str | Path,
    dataset_name: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    domain: str | None = None,
) -> GraphDataset:
    """Read a karateclub node-level folder (``edges.csv``, ``target.csv``, optional ``features.csv``)."""
    folder = Path(folder)
    key = folder.name
    dataset_name = dataset_name or f"karateclub/{key}"
    edges = _read_csv(folder / "edges.csv", ("id_1", "id_2"))
    target = _read_csv(folder / "target.csv", ("id", "target"))
    num_nodes = len(target)
    ids = target["id"].to_numpy()
    if not np.array_equal(ids, np.arange(num_nodes)):
        row = int(np.nonzero(ids != np.arange(num_nodes))[0][0])
        raise DataFormatError(f"{folder / 'target.csv'}: {row_location(folder / 'target.csv', row)} has id {ids[row]}, expected {row} (ids 0..N-1 in order)")
    src, dst = edges["id_1"].to_numpy(np.int64), edges["id_2"].to_numpy(np.int64)
    bad = (src < 0) | (src >= num_nodes) | (dst < 0) | (dst >= num_nodes)
    if bad.any():
        row = int(np.nonzero(bad)[0][0])
        raise DataFormatError(
            f"{folder / 'edges.csv'}: {row_location(folder / 'edges.csv', row)} joins nodes {src[row]} and {dst[row]} but target.csv has {num_nodes} nodes"
        )
    labels = torch.from_numpy(target["target"].to_numpy(np.int64).copy())
    default_domain, what = KARATECLUB_TASKS.get(key, ("social", "the target of each node"))
    domain = domain or default_domain
    data = Data(edge_index=_undirected(src, dst, num_nodes), num_nodes=num_nodes, y=labels, domain=domain, name=key)
    info = {"edges_in_file": int(len(edges)), "self_loops_in_file": int((src == dst).sum())}
    features_path = folder / "features.csv"
    if features_path.exists():
        table = _read_csv(features_path, ("node_id", "feature_id", "value"))
        nodes, feats = table["node_id"].to_numpy(np.int64).copy(), table["feature_id"].to_numpy(np.int64).copy()
        if (nodes < 0).any() or (nodes >= num_nodes).any():
            row = int(np.nonzero((nodes < 0) | (nodes >= num_nodes))[0][0])
            raise DataFormatError(f"{features_path}: {row_location(features_path, row)} refers to node {nodes[row]} but there are {num_nodes} nodes")
        values = pd.to_numeric(table["value"], errors="coerce").to_numpy(np.float64)
        if not np.isfinite(values).all():
            row = int(np.nonzero(~np.isfinite(values))[0][0])
            cell = table["value"].iloc[row]
            held = "is empty" if pd.isna(cell) else f"holds {str(cell)!r}, not a finite number"
            raise DataFormatError(
                f"{features_path}: {row_location(features_path, row)}, column 'value' {held}; every feature row needs "
                "its value (gfm does not guess missing values)"
            )
        values = values.astype(np.float32)
        repeated = int(pd.Series(nodes * (feats.max() + 1) + feats).duplicated().sum())
        if repeated:
            logger.info("%s: %d repeated (node, feature) rows in %s; each feature is set once", dataset_name, repeated, features_path.name)
        x = torch.zeros((num_nodes, int(feats.max()) + 1), dtype=torch.float32)
        x[torch.from_numpy(nodes), torch.from_numpy(feats)] = torch.from_numpy(values)
        data.x = x
        info["repeated_feature_rows"] = repeated
    num_classes = int(labels.max()) + 1
    for mask_key, mask in indices_to_masks(stratified_split(labels, fractions, seed), num_nodes).items():
        data[mask_key] = mask
    task = TaskSpec(
        level="node", kind="classification", num_classes=num_classes, num_targets=1, target_names=["target"],
        metric="accuracy" if num_classes > 2 else "roc_auc", description=f"predict {what}",
        split=f"seeded stratified {tuple(fractions)} node split (seed={seed}); the source ships none",
    )
    return GraphDataset(name=dataset_name, domain=domain, task=task, graphs=[data], info=info)


def load_reddit10k(
    folder: str | Path, dataset_name: str = "karateclub/reddit10k", seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> GraphDataset:
    """Read karateclub's reddit10k: 10,000 Reddit thread graphs, binary graph classification."""
    folder = Path(folder)
    graphs_path, target_path = folder / "graphs.json", folder / "target.csv"
    try:
        raw = json.loads(graphs_path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{graphs_path}: not valid JSON ({err})") from err
    target = _read_csv(target_path, ("id", "target"))
    labels = dict(zip(target["id"].tolist(), target["target"].tolist()))
    graphs = []
    if not isinstance(raw, dict) or not all(str(k).isdigit() for k in raw):
        raise DataFormatError(f"{graphs_path}: expected a JSON object {{\"<graph id>\": [[u, v], ...]}} with integer ids")
    for key in sorted(raw, key=int):
        try:
            edges = np.asarray(raw[key], dtype=np.int64).reshape(-1, 2)
        except (ValueError, TypeError) as err:
            raise DataFormatError(
                f"{graphs_path}: graph {key} is not a list of [u, v] integer pairs ({err}); fix that entry"
            ) from err
        if int(key) not in labels:
            raise DataFormatError(f"{target_path}: no target for graph {key} of {graphs_path.name}")
        if edges.size and edges.min() < 0:
            raise DataFormatError(f"{graphs_path}: graph {key} has a negative node id")
        num_nodes = int(edges.max()) + 1 if edges.size else 1
        data = Data(
            edge_index=_undirected(edges[:, 0], edges[:, 1], num_nodes),
            num_nodes=num_nodes,
            y=torch.tensor([labels[int(key)]], dtype=torch.long),
            domain="social",
            name=key,
        )
        graphs.append(data)
    if len(graphs) != len(labels):
        raise DataFormatError(f"{target_path}: {len(labels)} targets but {graphs_path.name} holds {len(graphs)} graphs")
    ys = torch.cat([g.y for g in graphs])
    task = TaskSpec(
        level="graph", kind="classification", num_classes=int(ys.max()) + 1, num_targets=1, target_names=["target"],
        metric="roc_auc", description="classify each Reddit thread graph (discussion vs non-discussion thread)",
        split=f"seeded stratified {tuple(fractions)} split (seed={seed}); the source ships none",
    )
    return GraphDataset(
        name=dataset_name, domain="social", task=task, graphs=graphs, splits=stratified_split(ys, fractions, seed),
        info={"source_files": [graphs_path.name, target_path.name]},
    )


def _node_folder(data_dir: Path, key: str) -> Path:
    return data_dir / "karateclub" / "node_level" / key


def _discover(data_dir: Path) -> list[str]:
    root = data_dir / "karateclub"
    names = []
    if (root / "node_level").is_dir():
        names += [f"karateclub/{p.name}" for p in sorted((root / "node_level").iterdir()) if (p / "edges.csv").is_file()]
    if (root / "graph_level" / "reddit10k" / "graphs.json").is_file():
        names.append("karateclub/reddit10k")
    return names


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    key = name.split("/", 1)[1]
    if key == "reddit10k":
        folder = data_dir / "karateclub" / "graph_level" / "reddit10k"
        return [folder / "graphs.json", folder / "target.csv"]
    folder = _node_folder(data_dir, key)
    files = [folder / "edges.csv", folder / "target.csv"]
    if (folder / "features.csv").exists():
        files.append(folder / "features.csv")
    return files


def _load(name: str, data_dir: Path | None, seed: int = 0, fractions: Sequence[float] | None = None, domain: str | None = None) -> GraphDataset:
    key = name.split("/", 1)[1]
    if key == "reddit10k":
        return load_reddit10k(data_dir / "karateclub" / "graph_level" / "reddit10k", name, seed, tuple(fractions or (0.8, 0.1, 0.1)))
    return load_karateclub_node(_node_folder(data_dir, key), name, seed, tuple(fractions or (0.6, 0.2, 0.2)), domain)


register(
    DatasetSource(
        name="karateclub/", loader=_load, files=_files, discover=_discover,
        description="karateclub graphs live in <data_dir>/karateclub/node_level/<name>/{edges,target}.csv and "
        "<data_dir>/karateclub/graph_level/reddit10k/{graphs.json,target.csv}.",
        examples=tuple(f"karateclub/{k}" for k in KARATECLUB_TASKS) + ("karateclub/reddit10k",),
    )
)
