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

Undirected graphs (the default) list every edge in both directions (a self-loop once), whichever
direction the file gave; ``directed=True`` keeps the edges as given. Repeated rows
(``duplicate_edges="merge"``, the default) are one edge: in an undirected list ``0,1`` twice and
``1,0`` once are the edge {0, 1}; repeated rows whose attributes differ are an error. With
``duplicate_edges="keep"`` every row is its own edge (a multigraph). Without labels the task is
link prediction with a seeded random link split (``seed``, ``fractions``).

Nothing is guessed: an empty id, an empty / NaN / infinite feature cell, a text cell in a numeric
column are errors naming the file, the line (header = line 1; Parquet: the row) and the column.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from ._text import is_parquet, row_location
from .dataset import DataFormatError, GraphDataset, TaskSpec, validate_dataset
from .registry import DatasetSource, register
from .splits import indices_to_masks, random_link_split, random_split, stratified_split

__all__ = ["load_edge_list", "load_user_graph", "is_user_graph_spec", "parse_user_graph_spec", "user_graph_spec",
           "user_graph_name", "example_graph_files", "USER_GRAPH_KEYS"]

logger = logging.getLogger(__name__)

DUPLICATE_EDGES = ("merge", "keep")
_SPLIT_VALUES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}


def _read_table(path: Path, what: str) -> pd.DataFrame:
    parquet = is_parquet(path)
    if not parquet and path.stat().st_size == 0:
        raise DataFormatError(
            f"{path}: the file is empty; {what} starts with a header line naming its columns, then one row per line"
        )
    try:
        if parquet:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise DataFormatError(
            f"{path}: the file holds no header line ({err}); {what} starts with a header line naming its columns"
        ) from err
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot read it as {'Parquet' if parquet else 'CSV'} ({err})") from err


def _require(frame: pd.DataFrame, path: Path, column: str, option: str) -> None:
    if column not in frame.columns:
        raise DataFormatError(
            f"{path}: no column {column!r} (columns: {list(frame.columns)}); rename it or pass {option}=<column name>"
        )


def _shown(value: object) -> str:
    """A cell as the user wrote it: strings quoted, numbers plain (``7``, not ``np.int64(7)``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _two_rows(path: Path, first: int, second: int) -> str:
    """``"lines 2 and 4"`` (CSV) or ``"rows 0 and 2 (counting from 0)"`` (Parquet)."""
    if is_parquet(path):
        return f"rows {first} and {second} (counting from 0)"
    one, two = (row_location(path, r).removeprefix("line ") for r in (first, second))
    return f"lines {one} and {two}"


def _check_no_empty_cells(frame: pd.DataFrame, path: Path, column: str, what: str) -> None:
    missing = frame[column].isna().to_numpy()
    if missing.any():
        row = int(np.nonzero(missing)[0][0])
        raise DataFormatError(f"{path}: {row_location(path, row)}, column {column!r} is empty; {what}")


def _feature_columns(frame: pd.DataFrame, exclude: Sequence[str], ignore: set[str], path: Path) -> list[str]:
    """The numeric columns that become float32 features, checked cell by cell.

    A column whose cells are all text is not a feature (logged). A column mixing numbers and
    text, an empty cell, NaN or an infinite value is an error naming the line and the column:
    gfm never drops a feature column or guesses a missing value silently.
    """
    numeric, text = [], []
    for column in frame.columns:
        if column in exclude or column in ignore:
            continue
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            numeric.append(column)
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        is_number = parsed.notna().to_numpy()
        if is_number.any():
            written = values.notna().to_numpy()
            row = int(np.nonzero(written & ~is_number)[0][0]) if (written & ~is_number).any() else int(np.nonzero(~written)[0][0])
            cell = values.iloc[row]
            held = f"holds {_shown(str(cell))}, not a number," if pd.notna(cell) else "is empty"
            raise DataFormatError(
                f"{path}: {row_location(path, row)}, column {column!r} {held} but {int(is_number.sum())} other "
                f"cell(s) of the column are numbers: fix the cell, or pass ignore_columns=[{column!r}] to leave the "
                "column out of the features"
            )
        text.append(column)
    if text:
        logger.warning(
            "%s: text columns %s are not used as features (encode them as numbers to use them, or pass "
            "ignore_columns=%s to silence this)", path, text, text,
        )
    for column in numeric:
        cells = frame[column].to_numpy(np.float64)
        bad = ~np.isfinite(cells)
        if bad.any():
            row = int(np.nonzero(bad)[0][0])
            held = "the cell is empty or NaN" if np.isnan(cells[row]) else f"the cell holds {cells[row]}"
            raise DataFormatError(
                f"{path}: {row_location(path, row)}, column {column!r}: {held}; fill it in (gfm does not guess "
                f"missing values) or pass ignore_columns=[{column!r}] to leave the column out of the features"
            )
    return numeric


def _edges_of_rows(
    src: np.ndarray,
    dst: np.ndarray,
    attr: np.ndarray | None,
    num_nodes: int,
    directed: bool,
    duplicate_edges: str,
    edges: pd.DataFrame,
    attr_cols: list[str],
    ids: pd.Index,
    path: Path,
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """``edge_index`` ``[2, E]`` (+ ``edge_attr`` ``[E, F]``) from the rows, and how many rows were merged.

    ``merge``: rows naming the same edge (an undirected list: the same pair in either direction)
    become one edge; their attributes must agree. ``keep``: every row is its own edge. An
    undirected graph then lists each edge in both directions (a self-loop once), sorted by
    ``(src, dst)``.
    """
    rows = np.arange(src.shape[0])
    merged = 0
    if duplicate_edges == "merge" and rows.size:
        low, high = (src, dst) if directed else (np.minimum(src, dst), np.maximum(src, dst))
        _, first, group = np.unique(low * num_nodes + high, return_index=True, return_inverse=True)
        if attr is not None:
            differs = (attr != attr[first[group]]).any(1)
            if differs.any():
                row = int(np.nonzero(differs)[0][0])
                other = int(first[group[row]])
                column = attr_cols[int(np.nonzero(attr[row] != attr[other])[0][0])]
                arrow = "->" if directed else "-"
                edge = f"{_shown(ids[src[other]])} {arrow} {_shown(ids[dst[other]])}"
                raise DataFormatError(
                    f"{path}: {_two_rows(path, other, row)} both give the edge {edge}"
                    f"{'' if directed else ' (either direction)'} but with different {column!r} "
                    f"({_shown(edges[column].iloc[other])} vs {_shown(edges[column].iloc[row])}); "
                    f"{'a directed' if directed else 'an undirected'} edge list names each edge once: remove or fix "
                    f"one of the rows, {'' if directed else 'pass directed=True if the two directions differ on purpose, '}"
                    "or pass duplicate_edges='keep' to keep every row as its own (parallel) edge"
                )
        rows = np.sort(first)
        merged = int(src.shape[0] - rows.size)
    src, dst = src[rows], dst[rows]
    attr = attr[rows] if attr is not None else None
    if not directed:
        loop = src == dst
        src, dst = np.concatenate([src, dst[~loop]]), np.concatenate([dst, src[~loop]])
        if attr is not None:
            attr = np.concatenate([attr, attr[~loop]])
        order = np.argsort(src * num_nodes + dst, kind="stable")
        src, dst = src[order], dst[order]
        attr = attr[order] if attr is not None else None
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64).reshape(2, -1))
    return edge_index, (torch.from_numpy(attr.astype(np.float32)) if attr is not None else None), merged


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
    duplicate_edges: str = "merge",
    ignore_columns: Sequence[str] = (),
    domain: str = "other",
    seed: int = 0,
    fractions: Sequence[float] | None = None,
) -> GraphDataset:
    """Load a user graph from an edge list (and node table); see the module docstring for the format.

    Args:
        duplicate_edges: ``"merge"`` (default): rows naming the same edge (in an undirected list,
            the same pair in either direction: ``0,1`` twice and ``1,0`` are one edge) become one
            edge; rows that repeat an edge with different attribute values are an error.
            ``"keep"``: every row is its own edge (a multigraph: parallel edges stay).
        ignore_columns: columns of either table not to use as features (``edge_attr`` / ``x``).

    Returns:
        A node-classification / node-regression dataset when the node table has labels, else a
        link-prediction dataset, validated (:func:`gfm.data.validate_dataset`) as
        ``gfm.data.load`` does. ``data.node_names`` keeps the original ids (as strings);
        ``info["merged_duplicate_rows"]`` counts the rows merged into an earlier one.

    Raises:
        DataFormatError: a missing column, an empty id, a duplicate node id, an edge endpoint
            that is not in the node table, an empty / NaN / infinite / non-numeric feature cell,
            repeated edges that disagree, naming the file, the line (header = line 1) and column.
    """
    edges_path = Path(edges_path)
    dataset_name = dataset_name or f"{'parquet' if is_parquet(edges_path) else 'csv'}/{edges_path}"
    if duplicate_edges not in DUPLICATE_EDGES:
        raise DataFormatError(
            f"{dataset_name}: duplicate_edges={duplicate_edges!r} is not an option; use 'merge' (repeated rows become "
            "one edge) or 'keep' (every row is its own edge: a multigraph)"
        )
    edges = _read_table(edges_path, "an edge list")
    _require(edges, edges_path, source_col, "source_col")
    _require(edges, edges_path, target_col, "target_col")
    for column in (source_col, target_col):
        _check_no_empty_cells(edges, edges_path, column, "every edge needs a source and a target node id")
    nodes = None
    if nodes_path is not None:
        nodes_path = Path(nodes_path)
        nodes = _read_table(nodes_path, "a node table")
        _require(nodes, nodes_path, node_col, "node_col")
        _check_no_empty_cells(nodes, nodes_path, node_col, "every node needs an id (isolated nodes included)")
        duplicated = nodes[node_col].duplicated().to_numpy()
        if duplicated.any():
            row = int(np.nonzero(duplicated)[0][0])
            raise DataFormatError(
                f"{nodes_path}: {row_location(nodes_path, row)} repeats node id {_shown(nodes[node_col].iloc[row])}; "
                "ids must be unique"
            )
        ids = pd.Index(nodes[node_col].astype(str))
    else:
        seen = pd.unique(pd.concat([edges[source_col], edges[target_col]], ignore_index=True))
        try:
            ordered = sorted(seen)
        except TypeError:
            ordered = sorted(seen, key=str)
        ids = pd.Index([str(v) for v in ordered])
    ignore = set(ignore_columns)
    unknown_columns = sorted(ignore - set(edges.columns) - (set(nodes.columns) if nodes is not None else set()))
    if unknown_columns:
        raise DataFormatError(
            f"ignore_columns names {', '.join(repr(c) for c in unknown_columns)}, which is in neither {edges_path} "
            f"(columns: {list(edges.columns)})"
            + (f" nor {nodes_path} (columns: {list(nodes.columns)})" if nodes is not None else "")
        )
    num_nodes = len(ids)
    src = ids.get_indexer(edges[source_col].astype(str))
    dst = ids.get_indexer(edges[target_col].astype(str))
    unknown = (src < 0) | (dst < 0)
    if unknown.any():
        row = int(np.nonzero(unknown)[0][0])
        missing = edges[source_col].iloc[row] if src[row] < 0 else edges[target_col].iloc[row]
        raise DataFormatError(
            f"{edges_path}: {row_location(edges_path, row)} refers to node {_shown(missing)}, which is not in "
            f"{nodes_path} (column {node_col!r}); add it to the node table"
        )
    edge_feature_cols = _feature_columns(edges, (source_col, target_col), ignore, edges_path)
    attr = edges[edge_feature_cols].to_numpy(np.float64) if edge_feature_cols else None
    edge_index, edge_attr, merged = _edges_of_rows(
        src.astype(np.int64), dst.astype(np.int64), attr, num_nodes, directed, duplicate_edges, edges,
        edge_feature_cols, ids, edges_path,
    )
    if merged:
        logger.info("%s: merged %d repeated edge rows into the edges they repeat (duplicate_edges='merge')", dataset_name, merged)
    data = Data(edge_index=edge_index, num_nodes=num_nodes, domain=domain, name=edges_path.stem, node_names=list(ids))
    if directed:
        data.directed = True
    if edge_attr is not None:
        data.edge_attr = edge_attr
    info = {
        "edges_file": str(edges_path),
        "nodes_file": str(nodes_path) if nodes_path else None,
        "edge_rows": int(len(edges)),
        "duplicate_edges": duplicate_edges,
        "merged_duplicate_rows": merged,
    }

    labels = None
    if nodes is not None:
        exclude = [node_col, label_col, split_col]
        feature_cols = _feature_columns(nodes, exclude, ignore, nodes_path)
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
        return validate_dataset(
            GraphDataset(name=dataset_name, domain=domain, task=task, graphs=[data], edge_splits=edge_splits, info=info)
        )

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
            row = int(np.nonzero(given.map(lambda v: pd.notna(v) and str(v) not in _SPLIT_VALUES).to_numpy(bool))[0][0])
            raise DataFormatError(
                f"{nodes_path}: column {split_col!r} holds {unknown_values} (first on {row_location(nodes_path, row)}); "
                "use train, valid or test (or leave the cell empty)"
            )
        mapped = given.map(lambda v: _SPLIT_VALUES.get(str(v)) if pd.notna(v) else None)
        unlabelled_in_split = (mapped.notna() & labels.isna()).to_numpy()
        if unlabelled_in_split.any():
            row = int(np.nonzero(unlabelled_in_split)[0][0])
            raise DataFormatError(
                f"{nodes_path}: {row_location(nodes_path, row)}: node {_shown(nodes[node_col].iloc[row])} is in split "
                f"{given.iloc[row]!r} but its {label_col!r} cell is empty; give it a label or leave its {split_col!r} "
                "cell empty"
            )
        split_indices = {k: torch.from_numpy(np.nonzero((mapped == k).to_numpy())[0]) for k in ("train", "valid", "test")}
        task.split = f"given by the {split_col!r} column of {nodes_path.name}"
    else:
        task.split = f"seeded {'stratified ' if task.kind == 'classification' else ''}{fractions} node split (seed={seed})"
    for key, mask in indices_to_masks(split_indices, num_nodes).items():
        data[key] = mask
    return validate_dataset(GraphDataset(name=dataset_name, domain=domain, task=task, graphs=[data], info=info))


# ---------------------------------------------------------------------------------------------
# a user's graph as one string: what the fine-tuning and zero-shot recipes take as a dataset
# ---------------------------------------------------------------------------------------------
#: keys of a ``csv:key=value,...`` graph spec and the ``load_edge_list`` keyword each sets
USER_GRAPH_KEYS = {
    "edges": "edges_path", "nodes": "nodes_path", "label": "label_col", "id": "node_col", "source": "source_col",
    "target": "target_col", "split": "split_col", "domain": "domain", "directed": "directed", "name": "dataset_name",
    "seed": "seed",
}
_SPEC_PREFIXES = ("csv:", "parquet:")


def is_user_graph_spec(name: str) -> bool:
    """Whether ``name`` is a ``csv:edges=...,nodes=...,label=...`` spec rather than a registry name."""
    return isinstance(name, str) and name.startswith(_SPEC_PREFIXES)


def user_graph_spec(edges: str | Path, nodes: str | Path | None = None, label: str | None = None, **more: object) -> str:
    """The spec string of a user graph (the inverse of :func:`parse_user_graph_spec`)."""
    parts = [f"edges={edges}"] + ([f"nodes={nodes}"] if nodes is not None else [])
    parts += [f"label={label}"] if label is not None else []
    parts += [f"{key}={value}" for key, value in more.items() if value is not None]
    return "csv:" + ",".join(parts)


def parse_user_graph_spec(spec: str) -> dict[str, object]:
    """``"csv:edges=e.csv,nodes=n.csv,label=club"`` -> ``load_user_graph`` keywords.

    Keys: ``edges`` (required), ``nodes``, ``label``, ``id``, ``source``, ``target``, ``split``,
    ``domain``, ``directed`` (true / false), ``name``, ``seed``. Paths may not contain commas.

    Raises:
        DataFormatError: not a spec, an entry without ``=``, an unknown or repeated key, no ``edges``.
    """
    if not is_user_graph_spec(spec):
        raise DataFormatError(f"{spec!r} is not a graph spec; write csv:edges=<path>,nodes=<path>,label=<column>")
    body = spec.split(":", 1)[1]
    options: dict[str, object] = {}
    for entry in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = entry.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise DataFormatError(f"{spec!r}: entry {entry!r} is not key=value; write csv:edges=<path>,nodes=<path>,"
                                  "label=<column>")
        if key not in USER_GRAPH_KEYS:
            raise DataFormatError(f"{spec!r}: unknown key {key!r}; the keys are {sorted(USER_GRAPH_KEYS)}")
        if key in options:
            raise DataFormatError(f"{spec!r}: key {key!r} is given twice; give it once")
        value = value.strip()
        if key == "directed":
            if value.lower() not in ("true", "false"):
                raise DataFormatError(f"{spec!r}: directed={value!r}; write directed=true or directed=false")
            options[key] = value.lower() == "true"
        elif key == "seed":
            options[key] = int(value)
        else:
            options[key] = value
    if "edges" not in options:
        raise DataFormatError(f"{spec!r}: no edges=<path>; the edge list (columns source,target) is required")
    return options


def user_graph_name(edges: str | Path) -> str:
    """The name a user graph gets in reports unless one is given: ``csv:<folder>/<edge file>``."""
    path = Path(edges)
    return f"csv:{path.parent.name}/{path.name}" if path.parent.name else f"csv:{path.name}"


def load_user_graph(
    edges: str | Path,
    nodes: str | Path | None = None,
    label: str | None = "label",
    *,
    id: str = "id",  # noqa: A002 - the spec key
    source: str = "source",
    target: str = "target",
    split: str = "split",
    domain: str = "other",
    directed: bool = False,
    name: str | None = None,
    seed: int = 0,
    config_keys: tuple[str, str, str] = ("nodes", "label", "id"),
) -> GraphDataset:
    """A user's graph with node labels: an edge list plus a node table (CSV or Parquet).

    The node task of the fine-tuning and zero-shot recipes: unlike :func:`load_edge_list` (which
    turns a node table without labels into a link-prediction task), a missing node table or
    label column is an error here. The graph's ``domain`` (default ``"other"``) need not be one
    the tokenizer was trained on: the tokenizers encode it through their generic path.

    Args:
        edges / nodes: the two files (node table: ``id`` column, the label column, optional
            ``split`` column and numeric feature columns).
        label: the label column.
        config_keys: how the caller names the nodes / label / id options in error messages
            (the recipes: ``nodes_csv``, ``label_column``, ``id_column``).

    Raises:
        DataFormatError: no node table, no label column, an edge naming a node the table lacks,
            an empty / NaN feature cell, a label column with one class, ... (file, line, column, fix).
    """
    nodes_key, label_key, id_key = config_keys
    edges_path = Path(edges).expanduser()
    name = name or user_graph_name(edges_path)
    if nodes is None:
        raise DataFormatError(
            f"{name}: a node task needs a node table beside {edges_path} (columns {id!r}, {label!r} and optional "
            f"feature columns); pass {nodes_key}=<path>"
        )
    nodes_path = Path(nodes).expanduser()
    for path, what in ((edges_path, "edge list"), (nodes_path, "node table")):
        if not path.is_file():
            raise DataFormatError(f"{name}: the {what} {path} does not exist; check the path")
    table = _read_table(nodes_path, "a node table")
    if label is None or label not in table.columns:
        raise DataFormatError(
            f"{nodes_path}: no label column {label!r} (columns: {list(table.columns)}); name the column that holds "
            f"each node's class with {label_key}=<column>"
        )
    classes = sorted({_shown(v) for v in table[label].dropna().tolist()})
    if len(classes) < 2:
        held = f"a single class {', '.join(classes)}" if classes else "no label at all (every cell is empty)"
        raise DataFormatError(
            f"{nodes_path}: label column {label!r} holds {held}; a node classification task needs two or more classes: "
            f"label nodes of another class, or name another column with {label_key}=<column>"
        )
    if id not in table.columns:
        raise DataFormatError(
            f"{nodes_path}: no node id column {id!r} (columns: {list(table.columns)}); name it with {id_key}=<column>"
        )
    return load_edge_list(
        edges_path, nodes_path, dataset_name=name, source_col=source, target_col=target, node_col=id, label_col=label,
        split_col=split, directed=directed, domain=domain, seed=seed,
    )


def example_graph_files() -> dict[str, Path]:
    """The example user graph shipped with gfm: ``{"edges": ..., "nodes": ...}``.

    Zachary's karate club (34 members, 78 friendships; Zachary 1977, as networkx ships it) as a
    user would export it: ``edges.csv`` (``source,target``, member ids ``m0`` .. ``m33``) and
    ``nodes.csv`` (``id,club``: the club each member joined after the split, the label).
    """
    folder = Path(__file__).parent / "examples" / "karate_csv"
    return {"edges": folder / "edges.csv", "nodes": folder / "nodes.csv"}


def _path_of(name: str) -> Path:
    return Path(name.split("/", 1)[1]).expanduser()


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    files = [_path_of(name)]
    if options.get("nodes_path") is not None:
        files.append(Path(options["nodes_path"]).expanduser())
    return files


def _load(name: str, data_dir: Path | None, **options) -> GraphDataset:
    return load_edge_list(_path_of(name), dataset_name=name, **options)


# The registry checks options against the loader's signature: show it load_edge_list's keywords,
# so `load("csv/...", nodes_pth=...)` is an error listing the accepted ones, not a bare TypeError.
_load.__signature__ = inspect.Signature(
    [inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter("data_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [p for key, p in inspect.signature(load_edge_list).parameters.items() if key not in ("edges_path", "dataset_name")]
)


for _prefix in ("csv", "parquet"):
    register(
        DatasetSource(
            name=f"{_prefix}/", loader=_load, files=_files, needs_data_dir=False, list_in_available=False,
            description=f"{_prefix}/<path to edge list>: your own graph (columns source,target; node table via nodes_path=...).",
            examples=(f"{_prefix}/path/to/edges.{_prefix}",),
        )
    )
