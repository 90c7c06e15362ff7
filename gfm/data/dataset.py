"""``TaskSpec``, ``GraphDataset`` and graph validation: the contract every loader returns.

See ``docs/CONTRACTS.md`` sections 1-2. Every loader builds ``torch_geometric.data.Data``
objects, wraps them in a :class:`GraphDataset` with its :class:`TaskSpec`, and passes the
result through :func:`validate_dataset`, which calls :func:`validate_graph` (one graph) or
:func:`validate_graphs` (many graphs at once, vectorized) so a malformed source fails at load
time with a message naming the graph, the field and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch_geometric.data import Data

from gfm.utils.errors import GFMError

from .splits import seeded_choice

__all__ = [
    "TaskSpec",
    "GraphDataset",
    "GraphValidationError",
    "DataFormatError",
    "DataNotFoundError",
    "UnknownDatasetError",
    "validate_graph",
    "validate_graphs",
    "validate_dataset",
    "graph_label",
    "graph_targets",
    "first_asymmetric_edge",
    "NODE_MASK_KEYS",
]

LEVELS = ("node", "edge", "graph")
KINDS = ("classification", "multilabel", "regression", "link")
NODE_MASK_KEYS = ("train_mask", "val_mask", "test_mask")
SPLIT_NAMES = ("train", "valid", "test")


class GraphValidationError(GFMError, ValueError):
    """A graph breaks the ``Data`` contract; the message names the graph, the field and the fix."""


class DataFormatError(GFMError, ValueError):
    """A source file is malformed; the message names the file, the line and the fix."""


class DataNotFoundError(GFMError, FileNotFoundError):
    """The data folder or one of its files is missing. gfm never downloads: the message says where to put it."""


class UnknownDatasetError(GFMError, ValueError):
    """A registry name that matches no dataset; the message lists the close matches."""


@dataclass
class TaskSpec:
    """What a dataset asks a model to predict.

    Attributes:
        level: ``"node"``, ``"edge"`` or ``"graph"``.
        kind: ``"classification"`` (one class id per item), ``"multilabel"`` (several binary
            targets, NaN = missing), ``"regression"`` (float targets) or ``"link"`` (does an
            edge exist; positives in ``GraphDataset.edge_splits``).
        num_classes: number of classes for ``classification``; ``None`` otherwise.
        num_targets: number of target columns (1 for single-label classification and links).
        target_names: one name per target column.
        metric: the metric the source's benchmark reports (``"accuracy"``, ``"roc_auc"``,
            ``"rmse"``, ``"mae"``, ``"mrr"``, ``"hits@20"``).
        class_names: optional names of the classes (``class_names[i]`` is class id ``i``).
        description: one sentence saying what is predicted, in words.
        split: how the train/valid/test splits were made (public split, scaffold, seeded random).
        num_splits: number of given splits (masks are ``[N, num_splits]`` when more than 1).
    """

    level: str
    kind: str
    num_classes: int | None
    num_targets: int
    target_names: list[str]
    metric: str
    class_names: list[str] | None = None
    description: str = ""
    split: str = ""
    num_splits: int = 1

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"TaskSpec.level={self.level!r}; expected one of {LEVELS}")
        if self.kind not in KINDS:
            raise ValueError(f"TaskSpec.kind={self.kind!r}; expected one of {KINDS}")
        if self.kind == "classification" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(f"TaskSpec: classification needs num_classes >= 2, got {self.num_classes}")
        if self.kind != "classification" and self.num_classes is not None:
            raise ValueError(f"TaskSpec: num_classes is only for classification, got {self.num_classes} for {self.kind}")
        if self.kind == "link" and self.level != "edge":
            raise ValueError("TaskSpec: kind='link' needs level='edge'")
        self.target_names = list(self.target_names)
        if len(self.target_names) != self.num_targets:
            raise ValueError(
                f"TaskSpec: {len(self.target_names)} target_names for num_targets={self.num_targets}"
            )
        if self.class_names is not None:
            self.class_names = [str(c) for c in self.class_names]
            if len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"TaskSpec: {len(self.class_names)} class_names for num_classes={self.num_classes}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> TaskSpec:
        return cls(**payload)

    def summary(self) -> str:
        """Short human form, e.g. ``"graph classification (2 classes)"``."""
        if self.kind == "classification":
            what = f"{self.num_classes} classes"
        elif self.kind == "link":
            what = "link prediction"
            return f"{self.level} {what}"
        else:
            what = f"{self.num_targets} target{'s' if self.num_targets != 1 else ''}"
        return f"{self.level} {self.kind} ({what})"


@dataclass
class GraphDataset:
    """A named list of graphs with its task and splits (``docs/CONTRACTS.md`` section 2).

    Attributes:
        name: registry name (``"tu/PROTEINS"``).
        domain: domain tag shared by every graph (``data.domain``).
        task: what to predict.
        graphs: the graphs; node- and edge-level datasets hold one graph.
        splits: graph level: ``{"train"|"valid"|"test": int64 [n] indices into graphs}``.
            Node-level splits are masks on the graph (``train_mask``, ``val_mask``, ``test_mask``).
        edge_splits: edge level: ``{"train"|"valid"|"test": {"edge_index": int64 [2, E],
            "edge_type": int64 [E] (optional), "neg_edge_index": int64 [2, E'] (optional),
            "neg_edge_type": int64 [E'] (optional)}}``; the graph's ``edge_index`` holds only
            training edges.
        skipped: records of source items that could not be converted (never silently):
            ``{"line": int, "item": str, "reason": str}``.
        info: free-form JSON-serializable facts about the source (files, notes, counts).
    """

    name: str
    domain: str
    task: TaskSpec
    graphs: list[Data]
    splits: dict[str, torch.Tensor] = field(default_factory=dict)
    edge_splits: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        return self.graphs[index]

    def __iter__(self) -> Iterator[Data]:
        return iter(self.graphs)

    @property
    def num_skipped(self) -> int:
        """How many source items (e.g. SMILES) could not be converted; see :attr:`skipped`."""
        return len(self.skipped)

    def split(self, name: str) -> list[Data]:
        """The graphs of a graph-level split (``"train"``, ``"valid"``, ``"test"``)."""
        if name not in self.splits:
            raise KeyError(f"{self.name}: no graph-level split {name!r}; available: {sorted(self.splits)}")
        return [self.graphs[i] for i in self.splits[name].tolist()]

    def subset(self, max_graphs: int | None, seed: int = 0) -> GraphDataset:
        """At most ``max_graphs`` of the graphs, chosen with ``seed`` (:func:`gfm.data.splits.seeded_choice`).

        The chosen graphs keep their order; each split keeps its chosen members, re-indexed.
        Returns ``self`` when nothing is cut; otherwise a new dataset (the graphs are shared, not
        copied) whose ``info["subset"]`` records ``{"of": len(self), "max_graphs", "seed"}``.
        """
        if max_graphs is not None and max_graphs < 1:
            raise ValueError(f"{self.name}: subset(max_graphs={max_graphs}); keep at least one graph (None keeps all)")
        if max_graphs is None or max_graphs >= len(self.graphs):
            return self
        chosen = seeded_choice(len(self.graphs), max_graphs, seed)
        new_index = torch.full((len(self.graphs),), -1, dtype=torch.long)
        new_index[chosen] = torch.arange(chosen.numel())
        splits = {name: new_index[index][new_index[index] >= 0] for name, index in self.splits.items()}
        info = {**self.info, "subset": {"of": len(self.graphs), "max_graphs": int(max_graphs), "seed": int(seed)}}
        return GraphDataset(self.name, self.domain, self.task, [self.graphs[i] for i in chosen.tolist()], splits=splits,
                            skipped=list(self.skipped), info=info)

    def summary(self) -> dict[str, Any]:
        """Counts for tables: graphs, nodes, edges (directed entries), feature widths, task."""
        num_nodes = sum(int(g.num_nodes) for g in self.graphs)
        num_edges = sum(int(g.edge_index.shape[1]) for g in self.graphs)
        first = self.graphs[0] if self.graphs else Data()
        return {
            "dataset": self.name,
            "domain": self.domain,
            "graphs": len(self.graphs),
            "nodes": num_nodes,
            "edges": num_edges,
            "x_cat": _width(first, "x", categorical=True) + _width(first, "x_cont", categorical=True),
            "x_cont": _width(first, "x", categorical=False) + _width(first, "x_cont", categorical=False),
            "task": self.task.summary(),
            "skipped": self.num_skipped,
        }


def _width(data: Data, key: str, categorical: bool) -> int:
    value = getattr(data, key, None)
    if not isinstance(value, torch.Tensor) or value.dim() != 2:
        return 0
    is_categorical = not value.is_floating_point()
    return int(value.shape[1]) if is_categorical == categorical else 0


def graph_label(dataset_name: str, index: int, data: Data | None = None) -> str:
    """How error messages name a graph: ``"tu/PROTEINS graph 17 ('17')"``."""
    label = f"{dataset_name} graph {index}"
    name = getattr(data, "name", None) if data is not None else None
    if isinstance(name, str) and name:
        label += f" ({name!r})"
    return label


def graph_targets(graphs: Sequence[Data], kind: str) -> torch.Tensor:
    """The targets of graph-level items stacked in order: what every graph task trains and scores on.

    Args:
        graphs: ``N`` graphs, each with ``y`` as the contract gives it (int64 ``[1]`` for
            classification, float ``[1, T]`` otherwise).
        kind: ``TaskSpec.kind`` (``"classification"``, ``"multilabel"`` or ``"regression"``).

    Returns:
        int64 ``[N]`` class ids (classification) or float32 ``[N, T]`` (NaN = missing label).
    """
    if kind == "classification":
        return torch.cat([g.y.view(-1)[:1] for g in graphs]).long()
    return torch.cat([g.y.view(1, -1) for g in graphs]).float()


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------
_EDGE_FIELDS = ("edge_attr", "edge_attr_cont", "edge_weight")
_NODE_FIELDS = ("x", "x_cont", "pos")


def validate_graph(data: Data, name: str) -> Data:
    """Check one graph against the ``Data`` contract; raise :class:`GraphValidationError` naming it.

    Checks: ``num_nodes`` set; ``edge_index`` int64 ``[2, E]`` with ids in ``[0, num_nodes)``;
    node fields (``x``, ``x_cont``, ``pos``) with ``num_nodes`` rows; edge fields (``edge_attr``,
    ``edge_attr_cont``, ``edge_weight``) with ``E`` rows; float fields finite (no NaN/inf);
    integer (categorical) features non-negative; a non-symmetric ``edge_index`` only with
    ``directed=True``; node masks bool with ``num_nodes`` rows.

    Args:
        data: the graph.
        name: how to call it in messages (dataset + index, SMILES, file).

    Returns:
        ``data`` unchanged.
    """
    if not isinstance(data, Data):
        raise GraphValidationError(f"{name}: expected a torch_geometric.data.Data, got {type(data).__name__}")
    if "num_nodes" not in data._store or data.num_nodes is None:
        raise GraphValidationError(
            f"{name}: num_nodes is not set; set data.num_nodes explicitly (isolated nodes count)"
        )
    num_nodes = int(data.num_nodes)
    edge_index = data.edge_index
    if edge_index is None:
        raise GraphValidationError(f"{name}: edge_index is missing; use torch.empty((2, 0), dtype=torch.long) for no edges")
    if not isinstance(edge_index, torch.Tensor) or edge_index.dtype != torch.long:
        dtype = getattr(edge_index, "dtype", type(edge_index).__name__)
        raise GraphValidationError(f"{name}: edge_index has dtype {dtype}; convert it with edge_index.long()")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise GraphValidationError(
            f"{name}: edge_index has shape {tuple(edge_index.shape)}, expected [2, E] (transpose an [E, 2] list with .t())"
        )
    num_edges = int(edge_index.shape[1])
    if num_edges:
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= num_nodes:
            bad = int(((edge_index < 0) | (edge_index >= num_nodes)).any(0).nonzero()[0, 0])
            src, dst = (int(v) for v in edge_index[:, bad])
            raise GraphValidationError(
                f"{name}: edge_index column {bad} is ({src}, {dst}) but num_nodes is {num_nodes}: node ids must lie in "
                f"[0, {num_nodes}); fix the edge list or set num_nodes to the true node count"
            )
    for key in _NODE_FIELDS:
        _check_rows(data, key, num_nodes, name, "num_nodes")
    for key in _EDGE_FIELDS:
        _check_rows(data, key, num_edges, name, "the number of edges E")
    for key in NODE_MASK_KEYS:
        mask = getattr(data, key, None)
        if mask is None:
            continue
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape[0] != num_nodes:
            shape = tuple(getattr(mask, "shape", ()))
            raise GraphValidationError(
                f"{name}: {key} must be bool [num_nodes] or [num_nodes, S] with num_nodes={num_nodes}, got "
                f"{getattr(mask, 'dtype', type(mask).__name__)} {shape}"
            )
    directed = getattr(data, "directed", None)
    if directed is not None and not isinstance(directed, bool):
        raise GraphValidationError(f"{name}: directed must be a bool, got {directed!r}")
    if num_edges and not directed:
        asymmetric = first_asymmetric_edge(edge_index, num_nodes)
        if asymmetric is not None:
            src, dst = asymmetric
            raise GraphValidationError(
                f"{name}: edge_index is not symmetric (edge {src} -> {dst} has no reverse {dst} -> {src}) but the "
                "graph is not marked directed: set data.directed = True for a directed graph, or list every "
                "undirected edge in both directions (torch_geometric.utils.to_undirected)"
            )
    return data


def _check_rows(data: Data, key: str, expected: int, name: str, what: str) -> None:
    value = getattr(data, key, None)
    if value is None:
        return
    if not isinstance(value, torch.Tensor):
        raise GraphValidationError(f"{name}: {key} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() == 0 or value.shape[0] != expected:
        raise GraphValidationError(
            f"{name}: {key} has shape {tuple(value.shape)} but {what} is {expected}: it needs one row per "
            f"{'node' if what == 'num_nodes' else 'edge'}; fix the source so rows and {'nodes' if what == 'num_nodes' else 'edges'} line up"
        )
    if value.is_floating_point():
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            row = int((~finite).reshape(value.shape[0], -1).any(1).nonzero()[0, 0])
            raise GraphValidationError(
                f"{name}: {key} holds NaN or infinite values (first in row {row}); impute or drop them "
                "before loading (gfm does not guess missing features)"
            )
    elif value.dtype != torch.bool and value.numel() and int(value.min()) < 0:
        row = int((value < 0).reshape(value.shape[0], -1).any(1).nonzero()[0, 0])
        raise GraphValidationError(
            f"{name}: {key} is integer (categorical) but row {row} holds a negative id; categorical ids must be "
            ">= 0 (shift the column, or store continuous values as float)"
        )


def first_asymmetric_edge(edge_index: torch.Tensor, num_nodes: int) -> tuple[int, int] | None:
    """``(src, dst)`` of an edge whose reverse is missing (multiset comparison), else ``None``.

    Stricter than ``torch_geometric.utils.is_undirected`` on purpose: an edge listed twice needs
    its reverse twice, and the answer names the edge for the error message.
    """
    src, dst = edge_index[0], edge_index[1]
    forward = torch.sort(src * num_nodes + dst).values
    backward = torch.sort(dst * num_nodes + src).values
    if torch.equal(forward, backward):
        return None
    present = torch.isin(forward, backward)
    if bool(present.all()):  # same set, different multiplicities
        differing = int((forward != backward).nonzero()[0, 0])
        key = int(forward[differing])
    else:
        key = int(forward[~present][0])
    return key // num_nodes, key % num_nodes


def validate_graphs(graphs: Sequence[Data], dataset_name: str) -> None:
    """Validate many graphs at once (vectorized); on a failure, name the first bad graph.

    The fast path concatenates the graphs' fields and checks them in a few tensor operations;
    when anything looks wrong (or the graphs are heterogeneous), every graph is checked with
    :func:`validate_graph` so the error names the exact graph, field and fix.
    """
    if not graphs:
        return
    if len(graphs) < 64 or not _validate_batch(graphs):
        for index, data in enumerate(graphs):
            validate_graph(data, graph_label(dataset_name, index, data))


def _validate_batch(graphs: Sequence[Data]) -> bool:
    """True when every graph certainly passes; False means 'check one by one'."""
    first = graphs[0]
    keys = set(first.keys())
    for data in graphs:
        if not isinstance(data, Data) or set(data.keys()) != keys or "num_nodes" not in data._store:
            return False
        if getattr(data, "directed", None):
            return False
    edge_indices = [g.edge_index for g in graphs]
    if any(not isinstance(e, torch.Tensor) or e.dtype != torch.long or e.dim() != 2 or e.shape[0] != 2 for e in edge_indices):
        return False
    num_nodes = torch.tensor([int(g.num_nodes) for g in graphs], dtype=torch.long)
    num_edges = torch.tensor([int(e.shape[1]) for e in edge_indices], dtype=torch.long)
    edges = torch.cat(edge_indices, dim=1)
    owner = torch.repeat_interleave(torch.arange(len(graphs)), num_edges)
    if edges.numel():
        if int(edges.min()) < 0 or bool((edges.max(0).values >= num_nodes[owner]).any()):
            return False
        # Symmetry of every graph at once: offset node ids so graphs do not mix.
        offsets = torch.cumsum(num_nodes, 0) - num_nodes
        shifted = edges + offsets[owner]
        total = int(num_nodes.sum())
        forward = torch.sort(shifted[0] * total + shifted[1]).values
        backward = torch.sort(shifted[1] * total + shifted[0]).values
        if not torch.equal(forward, backward):
            return False
    for key in _NODE_FIELDS + _EDGE_FIELDS:
        if key not in keys:
            continue
        values = [getattr(g, key) for g in graphs]
        if any(not isinstance(v, torch.Tensor) or v.dim() == 0 for v in values):
            return False
        rows = torch.tensor([v.shape[0] for v in values])
        if not torch.equal(rows, num_nodes if key in _NODE_FIELDS else num_edges):
            return False
        if len({(v.dtype, tuple(v.shape[1:])) for v in values}) != 1:
            return False
        stacked = torch.cat(values)
        if stacked.is_floating_point():
            if not bool(torch.isfinite(stacked).all()):
                return False
        elif stacked.dtype != torch.bool and stacked.numel() and int(stacked.min()) < 0:
            return False
    return True


def validate_dataset(dataset: GraphDataset) -> GraphDataset:
    """Check the graphs, the targets against the task, and the splits; return the dataset.

    Raises:
        GraphValidationError: naming the dataset, the graph or split and the fix.
    """
    name, task = dataset.name, dataset.task
    if not dataset.graphs:
        raise GraphValidationError(f"{name}: the dataset holds no graphs; check the source files")
    validate_graphs(dataset.graphs, name)
    for index, data in enumerate(dataset.graphs):
        if getattr(data, "domain", None) != dataset.domain:
            raise GraphValidationError(
                f"{graph_label(name, index, data)}: domain {getattr(data, 'domain', None)!r} differs from the "
                f"dataset's {dataset.domain!r}; set data.domain on every graph"
            )
        if task.level != "graph":
            break
    if task.level == "graph":
        _validate_graph_targets(dataset)
        n = len(dataset.graphs)
        for split, index in dataset.splits.items():
            if index.dtype != torch.long or index.dim() != 1 or (index.numel() and (int(index.min()) < 0 or int(index.max()) >= n)):
                raise GraphValidationError(
                    f"{name}: splits[{split!r}] must be int64 indices in [0, {n}), got {index.dtype} {tuple(index.shape)}"
                )
    else:
        if len(dataset.graphs) != 1:
            raise GraphValidationError(
                f"{name}: a {task.level}-level dataset holds exactly one graph, got {len(dataset.graphs)}"
            )
        data = dataset.graphs[0]
        if task.level == "node":
            _validate_node_targets(dataset, data)
        for split, parts in dataset.edge_splits.items():
            for key in ("edge_index", "neg_edge_index"):
                value = parts.get(key)
                if value is None:
                    continue
                if value.dtype != torch.long or value.dim() != 2 or value.shape[0] != 2:
                    raise GraphValidationError(f"{name}: edge_splits[{split!r}][{key!r}] must be int64 [2, E]")
                if value.numel() and (int(value.min()) < 0 or int(value.max()) >= int(data.num_nodes)):
                    raise GraphValidationError(
                        f"{name}: edge_splits[{split!r}][{key!r}] refers to node {int(value.max())} but the graph has "
                        f"{int(data.num_nodes)} nodes"
                    )
    return dataset


def _validate_graph_targets(dataset: GraphDataset) -> None:
    task, name = dataset.task, dataset.name
    ys = [g.y for g in dataset.graphs]
    for index, y in enumerate(ys):
        if y is None:
            raise GraphValidationError(f"{graph_label(name, index, dataset.graphs[index])}: y is missing")
    if task.kind == "classification":
        expected_shape, expected_dtype = (1,), torch.long
    else:
        expected_shape, expected_dtype = (1, task.num_targets), torch.float32
    for index, y in enumerate(ys):
        if tuple(y.shape) != expected_shape or y.dtype != expected_dtype:
            raise GraphValidationError(
                f"{graph_label(name, index, dataset.graphs[index])}: y is {y.dtype} {tuple(y.shape)}, expected "
                f"{expected_dtype} {list(expected_shape)} for graph {task.kind}"
            )
    stacked = torch.cat(ys)
    if task.kind == "classification":
        if int(stacked.min()) < 0 or int(stacked.max()) >= task.num_classes:
            bad = int(((stacked < 0) | (stacked >= task.num_classes)).nonzero()[0, 0])
            raise GraphValidationError(
                f"{graph_label(name, bad, dataset.graphs[bad])}: class id {int(stacked[bad])} outside "
                f"[0, {task.num_classes})"
            )
    elif task.kind == "regression" and not bool(torch.isfinite(stacked).all()):
        bad = int((~torch.isfinite(stacked)).any(1).nonzero()[0, 0])
        raise GraphValidationError(
            f"{graph_label(name, bad, dataset.graphs[bad])}: regression target is NaN/inf; drop the item or use "
            "kind='multilabel' semantics for missing labels"
        )


def _validate_node_targets(dataset: GraphDataset, data: Data) -> None:
    task, name = dataset.task, dataset.name
    y = data.y
    n = int(data.num_nodes)
    if y is None:
        raise GraphValidationError(f"{name}: node-level task but the graph has no y")
    if task.kind == "classification":
        if y.dtype != torch.long or tuple(y.shape) != (n,):
            raise GraphValidationError(f"{name}: node classification y must be int64 [{n}], got {y.dtype} {tuple(y.shape)}")
        if int(y.min()) < -1 or int(y.max()) >= task.num_classes:
            raise GraphValidationError(
                f"{name}: node labels must lie in [-1, {task.num_classes}) (-1 = unlabelled), got "
                f"[{int(y.min())}, {int(y.max())}]"
            )
    elif y.dtype != torch.float32 or tuple(y.shape) != (n, task.num_targets):
        raise GraphValidationError(
            f"{name}: node {task.kind} y must be float32 [{n}, {task.num_targets}], got {y.dtype} {tuple(y.shape)}"
        )
    for key in NODE_MASK_KEYS:
        mask = getattr(data, key, None)
        if mask is None:
            raise GraphValidationError(f"{name}: node-level dataset without {key}; every node task carries its split masks")
        if task.num_splits > 1 and tuple(mask.shape) != (n, task.num_splits):
            raise GraphValidationError(f"{name}: {key} must be [{n}, {task.num_splits}] for {task.num_splits} splits")
    if task.kind == "classification":
        labelled = y >= 0
        for key in NODE_MASK_KEYS:
            mask = getattr(data, key)
            used = mask if mask.dim() == 1 else mask.any(1)
            if bool((used & ~labelled).any()):
                node = int((used & ~labelled).nonzero()[0, 0])
                raise GraphValidationError(f"{name}: node {node} is in {key} but unlabelled (y = -1)")
