"""Reading and validating PyG graphs for the Eulerian tokenizer (per graph cheap, per batch vectorized).

:func:`read_graph` turns one ``torch_geometric.data.Data`` into numpy arrays and its
:class:`~gfm.tokenization.eulerian.vocab.GraphSchema`, with the checks that cost nothing per
graph (types, shapes, row counts). :func:`prepare_batch` then checks a whole batch at once
(node ids in range, NaN / infinite / too large continuous values, symmetry of undirected
graphs) and builds the multigraph edge list the walk runs on.

Conventions (docs/CONTRACTS.md): an undirected graph lists each edge in both directions (with
equal attributes); each entry ``(u, u)`` is one self-loop; parallel edges are kept with their
multiplicity. A graph without ``directed=True`` whose ``edge_index`` is not symmetric is an
error naming the first unmatched edge, never silently symmetrized or dropped.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch_geometric.data import Data

from gfm.utils.errors import GFMError

from .vocab import EDGE_FIELDS, NODE_FIELDS, FieldSpec, GraphSchema

__all__ = ["GraphInputError", "GraphArrays", "PreparedBatch", "read_graph", "prepare_batch", "graph_label"]

logger = logging.getLogger(__name__)

#: fields that are metadata or targets, not graph content: never tokenized, never warned about.
NON_CONTENT_FIELDS = frozenset(
    {"y", "name", "smiles", "idx", "id", "train_mask", "val_mask", "test_mask", "batch", "ptr", "n_id", "e_id",
     "target_node", "target_edge"}
)


_KNOWN_FIELDS = NON_CONTENT_FIELDS | {"edge_index", "num_nodes", "domain", "directed"} | set(NODE_FIELDS) | set(EDGE_FIELDS)


class GraphInputError(GFMError, ValueError):
    """A graph breaks the input conventions; the message names the graph, the field and the fix."""


def graph_label(index: int, name: object | None) -> str:
    return f"graph {index}" + (f" ({name!r})" if name is not None else "")


@dataclass(slots=True)
class GraphArrays:
    """One graph as numpy arrays (node and edge fields are 2-D ``[rows, width]``).

    Attributes:
        index, name: position in the batch and source id, for error messages (see :attr:`label`).
        num_nodes: ``n``.
        edge_index: int64 ``[2, E]`` as given (both directions for undirected graphs).
        node_fields / edge_fields: field name -> int64 (categorical) or float (continuous) array.
        schema: the graph's layout (matched against the vocabulary).
    """

    index: int
    name: object | None
    num_nodes: int
    edge_index: np.ndarray
    node_fields: dict[str, np.ndarray]
    edge_fields: dict[str, np.ndarray]
    schema: GraphSchema

    @property
    def label(self) -> str:
        return graph_label(self.index, self.name)


# dtype -> (kind, dtype name, cast needed before .numpy())
_DTYPES: dict[torch.dtype, tuple[str, str, torch.dtype | None]] = {}


def _dtype_info(dtype: torch.dtype) -> tuple[str, str, torch.dtype | None] | None:
    info = _DTYPES.get(dtype)
    if info is None:
        if dtype.is_complex:
            return None
        name = str(dtype).removeprefix("torch.")
        if dtype.is_floating_point:
            info = ("continuous", name, None if dtype in (torch.float32, torch.float64) else torch.float32)
        else:
            info = ("categorical", name, None if dtype == torch.int64 else torch.int64)
        _DTYPES[dtype] = info
    return info


@functools.lru_cache(maxsize=4096)
def schema_from_signature(signature: tuple) -> GraphSchema:
    """The :class:`GraphSchema` of a ``(domain, directed, node fields, edge fields)`` tuple (memoized)."""
    domain, directed, node_fields, edge_fields = signature
    return GraphSchema(domain, directed, tuple(FieldSpec(*f) for f in node_fields),
                       tuple(FieldSpec(*f) for f in edge_fields))


def _field(graph: tuple[int, object], name: str, value: object, rows: int, what: str) -> tuple[tuple, np.ndarray]:
    if not isinstance(value, torch.Tensor):
        raise GraphInputError(f"{graph_label(*graph)}: field '{name}' is a {type(value).__name__}, expected a torch.Tensor")
    shape = value.shape
    if len(shape) not in (1, 2) or shape[0] != rows:
        if len(shape) not in (1, 2):
            raise GraphInputError(
                f"{graph_label(*graph)}: field '{name}' has shape {tuple(shape)}; expected [{what}] or [{what}, width]"
            )
        raise GraphInputError(
            f"{graph_label(*graph)}: field '{name}' has {shape[0]} rows but the graph has {rows} {what}s; "
            f"give one row per {what}"
        )
    info = _dtype_info(value.dtype)
    if info is None:
        raise GraphInputError(
            f"{graph_label(*graph)}: field '{name}' has complex dtype {value.dtype}; split it into real columns"
        )
    kind, dtype_name, cast = info
    if value.device.type != "cpu":
        value = value.cpu()
    array = (value if cast is None else value.to(cast)).numpy()
    if len(shape) == 1:
        return (name, kind, dtype_name, 1, True), array.reshape(-1, 1)
    return (name, kind, dtype_name, shape[1], False), array


_EMPTY_EDGES = np.zeros((2, 0), dtype=np.int64)


def read_graph(graph: Data, index: int, default_domain: str, warned_fields: set[str]) -> GraphArrays:
    """Read one graph's fields (cheap checks only; :func:`prepare_batch` does the rest).

    Args:
        graph: the PyG graph.
        index: its position in the batch, for messages.
        default_domain: domain of graphs without a ``domain`` attribute.
        warned_fields: names of unknown fields already warned about (each is logged once).
    """
    if not isinstance(graph, Data):
        raise GraphInputError(
            f"graph {index}: got a {type(graph).__name__}; the Eulerian tokenizer takes torch_geometric.data.Data"
        )
    mapping = graph.to_dict()
    get = mapping.get
    name = get("name", get("smiles"))
    where = (index, name)

    edge_index = get("edge_index")
    if edge_index is None:
        edge_array = _EMPTY_EDGES
    else:
        if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, torch.Tensor) else type(edge_index).__name__
            raise GraphInputError(f"{graph_label(*where)}: edge_index has shape {shape}; expected int64 [2, num_edges]")
        dtype = edge_index.dtype
        if dtype != torch.int64:
            if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
                raise GraphInputError(
                    f"{graph_label(*where)}: edge_index has dtype {dtype}; expected int64 node ids"
                )
            edge_index = edge_index.to(torch.int64)
        if edge_index.device.type != "cpu":
            edge_index = edge_index.cpu()
        edge_array = edge_index.numpy()

    num_nodes = get("num_nodes")
    if num_nodes is None:
        for key in NODE_FIELDS:
            value = get(key)
            if isinstance(value, torch.Tensor):
                num_nodes = value.shape[0]
                break
        else:
            raise GraphInputError(
                f"{graph_label(*where)}: num_nodes is not set and the graph has no node features to count; set "
                "data.num_nodes explicitly (isolated nodes count)"
            )
    num_nodes = int(num_nodes)
    if num_nodes < 0:
        raise GraphInputError(f"{graph_label(*where)}: num_nodes is {num_nodes}; it must be non-negative")

    directed = get("directed")
    if directed is None:
        directed = False
    else:
        if isinstance(directed, torch.Tensor):
            if directed.numel() != 1:
                raise GraphInputError(f"{graph_label(*where)}: 'directed' must be a single bool")
            directed = bool(directed.reshape(-1)[0])
        directed = bool(directed)

    domain = get("domain", default_domain)
    if domain.__class__ is not str or not domain:
        raise GraphInputError(f"{graph_label(*where)}: domain must be a non-empty string, got {domain!r}")

    num_edges = edge_array.shape[1]
    node_specs, node_arrays, edge_specs, edge_arrays = [], {}, [], {}
    for key in NODE_FIELDS:
        value = get(key)
        if value is not None:
            spec, array = _field(where, key, value, num_nodes, "node")
            node_specs.append(spec)
            node_arrays[key] = array
    for key in EDGE_FIELDS:
        value = get(key)
        if value is not None:
            spec, array = _field(where, key, value, num_edges, "edge")
            edge_specs.append(spec)
            edge_arrays[key] = array
    unknown = mapping.keys() - _KNOWN_FIELDS
    if unknown and not unknown <= warned_fields:
        for key in sorted(unknown - warned_fields):
            warned_fields.add(key)
            logger.warning(
                "%s: field '%s' is not part of the token stream (the Eulerian tokenizer writes edge_index, "
                "x, x_cont, edge_attr, edge_attr_cont); it is ignored here and in every later graph",
                graph_label(*where),
                key,
            )
    schema = schema_from_signature((domain, directed, tuple(node_specs), tuple(edge_specs)))
    return GraphArrays(index, name, num_nodes, edge_array, node_arrays, edge_arrays, schema)


@dataclass
class PreparedBatch:
    """A validated batch: offsets, the multigraph edges the walk uses, and grouped field arrays.

    Attributes:
        node_ptr: int64 ``[G+1]`` node offsets.
        raw_ptr: int64 ``[G+1]`` offsets of the given ``edge_index`` entries.
        edge_ptr: int64 ``[G+1]`` offsets of the multigraph edges (one per undirected pair).
        eu, ev: int64 ``[M]`` local endpoints of the multigraph edges.
        edge_entry: int64 ``[M]`` global index of the ``edge_index`` entry each edge comes from
            (its attributes are that entry's row).
        groups: schema -> graph indices of the batch that have it.
    """

    node_ptr: np.ndarray
    raw_ptr: np.ndarray
    edge_ptr: np.ndarray
    eu: np.ndarray
    ev: np.ndarray
    edge_entry: np.ndarray
    groups: dict[GraphSchema, list[int]] = field(default_factory=dict)


def _offsets(counts: np.ndarray) -> np.ndarray:
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _locate(ptr: np.ndarray, position: int) -> tuple[int, int]:
    """(graph, local index) of a global row ``position`` given offsets ``ptr``."""
    graph = int(np.searchsorted(ptr, position, side="right") - 1)
    return graph, int(position - ptr[graph])


def _describe_asymmetry(arrays: GraphArrays) -> str:
    """Slow, exact diagnosis of an asymmetric undirected graph (runs only on the error path)."""
    src, dst = arrays.edge_index
    columns = [arrays.edge_fields[k] for k in sorted(arrays.edge_fields)]
    entries = Counter()
    for e in range(len(src)):
        attrs = tuple(float(c) for col in columns for c in col[e]) if columns else ()
        entries[(int(src[e]), int(dst[e]), attrs)] += 1
    for (u, v, attrs), count in sorted(entries.items(), key=lambda item: (item[0][0], item[0][1])):
        if u == v:
            continue
        reverse = entries.get((v, u, attrs), 0)
        if reverse != count:
            with_attrs = f" with edge attributes {list(attrs)}" if attrs else ""
            return (
                f"edge ({u}, {v}){with_attrs} appears {count} time(s) but its reverse ({v}, {u}){with_attrs} "
                f"{reverse} time(s)"
            )
    return "the edge lists in the two directions differ"


def _check_continuous(name: str, values: np.ndarray, ptr: np.ndarray, graphs: list[GraphArrays], what: str,
                      limit: float, decimals: int) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        graph, local = _locate(ptr, int(row))
        raise GraphInputError(
            f"{graphs[graph].label}: {name}[{local}, {column}] is {values[row, column]} ({what} {local}); continuous "
            "attributes must be finite: impute or drop the missing values before tokenizing"
        )
    too_large = np.abs(values) >= limit
    if too_large.any():
        row, column = np.argwhere(too_large)[0]
        graph, local = _locate(ptr, int(row))
        raise GraphInputError(
            f"{graphs[graph].label}: {name}[{local}, {column}] = {values[row, column]} is too large to encode with "
            f"continuous_decimals={decimals} (|value| must stay below {limit:.3g}); rescale the field or train "
            "the tokenizer with fewer continuous_decimals"
        )


def prepare_batch(graphs: list[GraphArrays], max_magnitude: float, decimals: int) -> PreparedBatch:
    """Vectorized checks over a batch and the multigraph edge list for the walk.

    Graphs are grouped by the identity of their ``schema`` object (the tokenizer gives equal
    schemas one object).

    Raises:
        GraphInputError: an ``edge_index`` id out of range, a non-finite or too large continuous
            value, or an undirected graph whose ``edge_index`` is not symmetric.
    """
    count = len(graphs)
    num_nodes = np.fromiter((g.num_nodes for g in graphs), dtype=np.int64, count=count)
    num_entries = np.fromiter((g.edge_index.shape[1] for g in graphs), dtype=np.int64, count=count)
    node_ptr, raw_ptr = _offsets(num_nodes), _offsets(num_entries)
    edge_index = np.concatenate([g.edge_index for g in graphs], axis=1) if graphs else np.zeros((2, 0), np.int64)
    entry_graph = np.repeat(np.arange(count), num_entries)
    limits = num_nodes[entry_graph]
    bad = (edge_index < 0) | (edge_index >= limits)
    if bad.any():
        row, entry = np.argwhere(bad)[0]
        graph, local = _locate(raw_ptr, int(entry))
        value = int(edge_index[row, entry])
        raise GraphInputError(
            f"{graphs[graph].label}: edge_index[{row}, {local}] = {value} is not a node id: the graph has "
            f"num_nodes={int(num_nodes[graph])}, so ids must lie in [0, {int(num_nodes[graph])}); fix edge_index "
            "or num_nodes"
        )

    by_identity: dict[int, tuple[GraphSchema, list[int]]] = {}
    for i, g in enumerate(graphs):
        entry = by_identity.get(id(g.schema))
        if entry is None:
            by_identity[id(g.schema)] = (g.schema, [i])
        else:
            entry[1].append(i)
    groups = dict(by_identity.values())

    src, dst = edge_index
    directed_graph = np.zeros(count, dtype=bool)
    for schema, members in groups.items():
        if schema.directed:
            directed_graph[members] = True
        for spec in schema.node_fields + schema.edge_fields:
            if spec.kind != "continuous":
                continue
            is_node = spec.name in NODE_FIELDS
            parts = [(graphs[i].node_fields if is_node else graphs[i].edge_fields)[spec.name] for i in members]
            values = np.concatenate(parts) if len(parts) > 1 else parts[0]
            counts = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
            _check_continuous(spec.name, values, _offsets(counts), [graphs[i] for i in members],
                              "node" if is_node else "edge", max_magnitude, decimals)
        if not schema.directed:
            _check_symmetric(graphs, members, schema)

    keep = directed_graph[entry_graph] | (src <= dst)
    kept = np.nonzero(keep)[0]
    edge_counts = np.bincount(entry_graph[kept], minlength=count).astype(np.int64)
    return PreparedBatch(
        node_ptr=node_ptr,
        raw_ptr=raw_ptr,
        edge_ptr=_offsets(edge_counts),
        eu=src[kept],
        ev=dst[kept],
        edge_entry=kept,
        groups=groups,
    )


def _check_symmetric(graphs: list[GraphArrays], members: list[int], schema: GraphSchema) -> None:
    """Each non-loop entry ``(u, v, attrs)`` of an undirected graph must be matched by ``(v, u, attrs)``.

    Fast path: sort both directions by one packed structural key and compare attributes row by
    row; only when that fails (parallel edges listed in different orders, or a real mismatch)
    run the exact lexicographic comparison over all columns.
    """
    parts = [graphs[i].edge_index for i in members]
    counts = np.fromiter((p.shape[1] for p in parts), dtype=np.int64, count=len(parts))
    if counts.sum() == 0:
        return
    edge_index = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    owner = np.repeat(np.arange(len(members)), counts)
    src, dst = edge_index
    forward, backward = src < dst, src > dst
    n_forward = np.bincount(owner[forward], minlength=len(members))
    n_backward = np.bincount(owner[backward], minlength=len(members))
    mismatch = np.nonzero(n_forward != n_backward)[0]
    if len(mismatch) == 0:
        columns = []
        for spec in schema.edge_fields:
            pieces = [graphs[i].edge_fields[spec.name] for i in members]
            values = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
            if spec.kind == "continuous":
                values = (values.astype(np.float64) + 0.0).view(np.int64)  # -0.0 == 0.0, exact bits
            columns.append(values)
        attributes = np.concatenate(columns, axis=1) if columns else None
        low, high = np.minimum(src, dst), np.maximum(src, dst)
        if int(high.max(initial=0)) < (1 << 20) and len(members) < (1 << 22):
            key = (owner << 40) | (low << 20) | high
            fwd_order = np.argsort(key[forward], kind="stable")
            bwd_order = np.argsort(key[backward], kind="stable")
            if np.array_equal(key[forward][fwd_order], key[backward][bwd_order]) and (
                attributes is None
                or np.array_equal(attributes[forward][fwd_order], attributes[backward][bwd_order])
            ):
                return
        keys = [owner, low, high] + ([attributes[:, c] for c in range(attributes.shape[1])] if columns else [])
        stacked = np.stack(keys)  # [K, E]
        fwd, bwd = stacked[:, forward], stacked[:, backward]
        fwd = fwd[:, np.lexsort(fwd[::-1])]
        bwd = bwd[:, np.lexsort(bwd[::-1])]
        differs = np.nonzero((fwd != bwd).any(axis=0))[0]
        if len(differs) == 0:
            return
        mismatch = [int(min(fwd[0, differs[0]], bwd[0, differs[0]]))]
    member = members[int(mismatch[0])]
    raise GraphInputError(
        f"{graphs[member].label}: edge_index is not symmetric but the graph is not marked directed: "
        f"{_describe_asymmetry(graphs[member])}. An undirected graph lists every edge in both directions with "
        "equal attributes (torch_geometric.utils.to_undirected makes it so); a directed graph needs "
        "data.directed = True"
    )
