"""Exact ``Data`` <-> Arrow rows, the on-disk graph cache, and a generic row store.

One Arrow schema serves every source format: each graph is a row with

- ``tensors``: a list of ``{key, dtype, shape, data}``, ``data`` being the tensor's raw bytes
  (so every dtype, NaN payload, empty shape and bool mask comes back bit for bit);
- ``attributes``: JSON of the non-tensor attributes (``domain``, ``name``, ``directed``,
  ``num_nodes``, lists of strings such as ``node_names``) plus the attribute order.

A cached dataset is a directory written atomically (``gfm.utils.io.atomic_directory``)::

    <cache_dir>/<name>-<key>/
        graphs/                      HF datasets ``save_to_disk`` output (memory-mapped on load)
        dataset_tensors.safetensors  splits and edge_splits
        gfm_dataset.json             name, domain, task, skipped, info, cache key, format version

This module is storage only: it knows nothing of dataset names. The registry
(:func:`gfm.data.registry.load` with ``cache_dir``) names the cache directory by
:func:`gfm.data.registry.cache_key` (input files' sizes and modification times + options) and
takes a file lock while writing; HF ``datasets``' own fingerprints are not used because
``from_generator`` can reuse a stale fingerprint cache when the generator's inputs change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_directory, atomic_write_json

from .dataset import GraphDataset, TaskSpec

__all__ = [
    "FORMAT_VERSION",
    "batched",
    "save_row_batches",
    "graph_to_row",
    "row_to_graph",
    "graphs_equal",
    "datasets_equal",
    "save_graph_dataset",
    "load_graph_dataset",
    "ArrowGraphDataset",
    "write_rows",
    "read_rows",
    "RowDataset",
    "ArrowFormatError",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_FILE = "gfm_dataset.json"
TENSORS_FILE = "dataset_tensors.safetensors"
GRAPHS_DIR = "graphs"


class ArrowFormatError(GFMError, ValueError):
    """A graph attribute cannot be stored exactly, or a cache directory is damaged."""


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged cache raises: truncated or garbled Arrow / safetensors / JSON files."""
    import pyarrow as pa
    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, TypeError, EOFError, pa.ArrowException, SafetensorError)


def _damaged(directory: Path, what: str, err: BaseException, rebuild: str) -> ArrowFormatError:
    return ArrowFormatError(
        f"the Arrow cache {directory} is damaged ({what}: {type(err).__name__}: {err}); it is derived data: "
        f"delete the folder {directory} and {rebuild}"
    )


def _read_meta(directory: Path, file_name: str, missing: str, rebuild: str) -> dict[str, Any]:
    """The JSON object ``directory / file_name``; a missing file says ``missing``, a damaged one ``rebuild``."""
    meta_path = directory / file_name
    if not meta_path.is_file():
        raise ArrowFormatError(f"{directory}: no {file_name}; {missing}")
    try:
        meta = json.loads(meta_path.read_text())
    except _read_errors() as err:
        raise _damaged(directory, file_name, err, rebuild) from err
    if not isinstance(meta, dict):
        raise _damaged(directory, file_name, TypeError(f"a JSON {type(meta).__name__}, not an object"), rebuild)
    return meta


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence HF datasets' per-call progress bars while gfm writes a cache, then restore them."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def save_row_batches(
    batches: Iterable[list[dict[str, Any]]],
    target: Path,
    scratch: Path,
    features: Any = None,
    fingerprint: str | None = None,
) -> int:
    """Stream row batches to Arrow files in ``scratch``, then ``save_to_disk`` them at ``target``.

    Why not ``datasets.Dataset.from_generator``: it dill-hashes the generator and everything it
    closes over (all graphs) to build a fingerprint - 24 s for 300 graphs here - and can reuse a
    stale fingerprint cache. Batches are written with pyarrow, read back memory-mapped, and
    concatenated with permissive type promotion (a column that is ``None`` in early batches and
    a list later is unified), so memory stays bounded by one batch.

    Returns:
        the number of rows written.
    """
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    schema = features.arrow_schema if features is not None else None
    paths: list[Path] = []
    rows = 0
    for index, batch in enumerate(batches):
        if not batch:
            continue
        table = pa.Table.from_pylist(batch, schema=schema)
        path = scratch / f"part-{index:06d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        paths.append(path)
        rows += table.num_rows
    if paths:
        tables = [pa.ipc.open_stream(pa.memory_map(str(p))).read_all() for p in paths]
        table = pa.concat_tables(tables, promote_options="permissive")
    else:
        table = (features.arrow_schema if features is not None else pa.schema([])).empty_table()
    info = datasets.DatasetInfo(features=features) if features is not None else None
    dataset = datasets.Dataset(InMemoryTable(table), info=info, fingerprint=fingerprint or os.urandom(8).hex())
    dataset.save_to_disk(str(target))
    return rows


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _graph_features():
    from datasets import Features, List, Value

    return Features(
        {
            "tensors": List(
                {
                    "key": Value("string"),
                    "dtype": Value("string"),
                    "shape": List(Value("int64")),
                    "data": Value("large_binary"),
                }
            ),
            "attributes": Value("string"),
        }
    )


_DTYPES = {str(dtype).removeprefix("torch."): dtype for dtype in (
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
)}


def _tensor_to_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def _bytes_to_tensor(payload: bytes, dtype_name: str, shape: Sequence[int]) -> torch.Tensor:
    dtype = _DTYPES.get(dtype_name)
    if dtype is None:
        raise ArrowFormatError(f"unknown tensor dtype {dtype_name!r} in a cached graph; rebuild the cache")
    if not payload:
        return torch.empty(tuple(shape), dtype=dtype)
    flat = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    return flat.view(dtype).reshape(tuple(shape))


def _check_jsonable(value: Any, path: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_jsonable(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise ArrowFormatError(f"{path}: dict keys must be strings to be stored exactly, got {k!r}")
            _check_jsonable(item, f"{path}[{k!r}]")
        return
    raise ArrowFormatError(
        f"{path} is a {type(value).__name__}; gfm stores tensors and JSON values (str, int, float, bool, None, "
        "list, dict) exactly: convert it (e.g. a numpy array with torch.as_tensor, a tuple with list)"
    )


def graph_to_row(data: Data, name: str = "graph") -> dict[str, Any]:
    """Encode one graph as a row of the graph Arrow schema (exact, see module docstring)."""
    tensors, values, order = [], {}, []
    for key, value in data.items():
        order.append(key)
        if isinstance(value, torch.Tensor):
            if value.is_sparse or value.layout != torch.strided:
                raise ArrowFormatError(f"{name}: {key} is a sparse tensor; store it dense or as index/value tensors")
            tensors.append(
                {"key": key, "dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape), "data": _tensor_to_bytes(value)}
            )
        else:
            _check_jsonable(value, f"{name}: attribute {key}")
            values[key] = value
    return {"tensors": tensors, "attributes": json.dumps({"order": order, "values": values}, allow_nan=True)}


def row_to_graph(row: Mapping[str, Any]) -> Data:
    """Decode a row written by :func:`graph_to_row` back into the identical ``Data``."""
    attributes = json.loads(row["attributes"])
    tensors = {t["key"]: _bytes_to_tensor(t["data"], t["dtype"], t["shape"]) for t in row["tensors"]}
    values = attributes["values"]
    data = Data()
    for key in attributes["order"]:
        data[key] = tensors[key] if key in tensors else values[key]
    return data


def _decode_arrow_batch(batch: Any) -> list[Data]:
    """Decode a pyarrow table of graph rows straight from its buffers (same result as
    :func:`row_to_graph` per row, without building Python dicts of the nested columns)."""
    import numpy as np

    tensors = batch.column("tensors").combine_chunks()
    row_offsets = tensors.offsets.to_numpy()
    key_array, dtype_array, shapes, data = tensors.values.flatten()  # children with the struct's offset applied
    keys, dtypes = key_array.to_pylist(), dtype_array.to_pylist()
    shape_offsets = shapes.offsets.to_numpy()
    shape_values = shapes.values.to_numpy().tolist()
    # large_binary buffers: [validity, int64 offsets, bytes]; element i spans offsets[offset + i : offset + i + 2]
    data_offsets = np.frombuffer(data.buffers()[1], dtype=np.int64)[data.offset : data.offset + len(data) + 1]
    data_values = np.frombuffer(data.buffers()[2], dtype=np.uint8) if data.buffers()[2] is not None else np.zeros(0, dtype=np.uint8)
    graphs = []
    for row, attributes in enumerate(batch.column("attributes").to_pylist()):
        decoded = json.loads(attributes)
        values = decoded["values"]
        found = {}
        for i in range(int(row_offsets[row]), int(row_offsets[row + 1])):
            shape = shape_values[shape_offsets[i] : shape_offsets[i + 1]]
            payload = data_values[data_offsets[i] : data_offsets[i + 1]]
            dtype = _DTYPES.get(dtypes[i])
            if dtype is None:
                raise ArrowFormatError(f"unknown tensor dtype {dtypes[i]!r} in a cached graph; rebuild the cache")
            if payload.size == 0:
                found[keys[i]] = torch.empty(tuple(shape), dtype=dtype)
            else:
                found[keys[i]] = torch.from_numpy(payload.copy()).view(dtype).reshape(tuple(shape))
        graph = Data()
        for key in decoded["order"]:
            graph[key] = found[key] if key in found else values[key]
        graphs.append(graph)
    return graphs


def _tensors_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (so NaN == NaN, and -0.0 != 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def graphs_equal(a: Data, b: Data) -> bool:
    """Bit-exact equality of two graphs: same keys, tensors of equal dtype/shape/bytes (NaN == NaN), equal values."""
    stored_a, stored_b = a.to_dict(), b.to_dict()
    if stored_a.keys() != stored_b.keys():
        return False
    for key, x in stored_a.items():
        y = stored_b[key]
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and _tensors_equal(x, y)):
                return False
        elif type(x) is not type(y):
            return False
        elif isinstance(x, (str, int, bool)) or x is None:
            if x != y:
                return False
        elif json.dumps(x, sort_keys=True) != json.dumps(y, sort_keys=True):
            return False
    return True


def datasets_equal(a: GraphDataset | ArrowGraphDataset, b: GraphDataset | ArrowGraphDataset) -> bool:
    """Exact equality of name, domain, task, splits, edge splits, skipped records and every graph."""
    if (a.name, a.domain, a.task.to_dict(), a.skipped) != (b.name, b.domain, b.task.to_dict(), b.skipped):
        return False
    flat_a, flat_b = _flatten_dataset_tensors(a), _flatten_dataset_tensors(b)
    if flat_a.keys() != flat_b.keys() or not all(_tensors_equal(t, flat_b[k]) for k, t in flat_a.items()):
        return False
    return len(a) == len(b) and all(graphs_equal(x, y) for x, y in zip(a, b))


def _flatten_dataset_tensors(dataset: GraphDataset | ArrowGraphDataset) -> dict[str, torch.Tensor]:
    flat = {f"splits/{k}": v for k, v in dataset.splits.items()}
    for split, parts in dataset.edge_splits.items():
        for key, tensor in parts.items():
            flat[f"edge_splits/{split}/{key}"] = tensor
    return flat


def _unflatten_dataset_tensors(flat: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    splits: dict[str, torch.Tensor] = {}
    edge_splits: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        parts = key.split("/")
        if parts[0] == "splits" and len(parts) == 2:
            splits[parts[1]] = tensor
        elif parts[0] == "edge_splits" and len(parts) == 3:
            edge_splits.setdefault(parts[1], {})[parts[2]] = tensor
        else:
            raise ArrowFormatError(f"unexpected tensor {key!r} in {TENSORS_FILE}; rebuild the cache")
    return splits, edge_splits


def _ordered(mapping: dict, order: Sequence[str]) -> dict:
    return {k: mapping[k] for k in order if k in mapping}


def save_graph_dataset(dataset: GraphDataset, directory: str | os.PathLike, cache_key: str | None = None, overwrite: bool = False) -> Path:
    """Write a dataset as an Arrow cache directory (atomically: readers never see a partial one).

    Args:
        dataset: the dataset.
        directory: target directory.
        cache_key: recorded in ``gfm_dataset.json`` (the key it was built under).
        overwrite: replace an existing directory.
    """
    from safetensors.torch import save_file

    directory = Path(directory)

    def rows() -> Iterator[dict[str, Any]]:
        for index, graph in enumerate(dataset.graphs):
            yield graph_to_row(graph, f"{dataset.name} graph {index}")

    flat = {k: v.detach().cpu().contiguous().clone() for k, v in _flatten_dataset_tensors(dataset).items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "name": dataset.name,
        "domain": dataset.domain,
        "task": dataset.task.to_dict(),
        "num_graphs": len(dataset.graphs),
        "skipped": dataset.skipped,
        "info": dataset.info,
        "cache_key": cache_key,
        "split_order": list(dataset.splits),
        "edge_split_order": {k: list(v) for k, v in dataset.edge_splits.items()},
        "summary": dataset.summary(),
    }
    _check_jsonable(meta, f"{dataset.name}: dataset metadata")
    with _quiet_progress_bars(), atomic_directory(directory, overwrite=overwrite) as tmp, tempfile.TemporaryDirectory(dir=tmp) as scratch:
        save_row_batches(batched(rows(), 512), tmp / GRAPHS_DIR, Path(scratch), _graph_features(), cache_key)
        save_file(flat, str(tmp / TENSORS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
        atomic_write_json(tmp / META_FILE, meta)
    return directory


class ArrowGraphDataset:
    """A cached dataset read back lazily: graphs are decoded from memory-mapped Arrow on access.

    Offers the :class:`GraphDataset` interface (``name``, ``domain``, ``task``, ``splits``,
    ``edge_splits``, ``skipped``, ``info``, ``len``, indexing, iteration) without holding every
    graph in memory; :meth:`to_graph_dataset` materializes them.
    """

    def __init__(self, directory: str | os.PathLike):
        import datasets
        from safetensors.torch import load_file

        self.directory = Path(directory)
        rebuild = "load again: gfm.data.load(name, cache_dir=...) rebuilds it from the source files"
        errors = _read_errors()
        meta = _read_meta(self.directory, META_FILE, "this is not a gfm graph cache (write one with save_graph_dataset)",
                          rebuild)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ArrowFormatError(
                f"{self.directory}: cache format {meta.get('format_version')} but this gfm writes {FORMAT_VERSION}; delete it to rebuild"
            )
        if isinstance(meta.get("name"), str):
            rebuild = f"load again: gfm.data.load({meta['name']!r}, cache_dir=...) rebuilds it from the source files"
        try:
            self.name: str = meta["name"]
            self.domain: str = meta["domain"]
            self.task = TaskSpec.from_dict(meta["task"])
            self.skipped: list[dict[str, Any]] = meta["skipped"]
            self.info: dict[str, Any] = meta["info"]
            self.cache_key: str | None = meta.get("cache_key")
            self._summary: dict[str, Any] = meta["summary"]
            num_graphs = int(meta["num_graphs"])
        except errors as err:
            raise _damaged(self.directory, META_FILE, err, rebuild) from err
        try:
            splits, edge_splits = _unflatten_dataset_tensors(load_file(str(self.directory / TENSORS_FILE)))
        except errors as err:
            raise _damaged(self.directory, TENSORS_FILE, err, rebuild) from err
        self.splits = _ordered(splits, meta.get("split_order", sorted(splits)))
        self.edge_splits = {
            split: _ordered(edge_splits.get(split, {}), keys) for split, keys in meta.get("edge_split_order", {}).items()
        }
        try:
            self._table = datasets.load_from_disk(str(self.directory / GRAPHS_DIR))
        except errors as err:
            raise _damaged(self.directory, f"{GRAPHS_DIR}/", err, rebuild) from err
        if len(self._table) != num_graphs:
            raise _damaged(
                self.directory, f"{GRAPHS_DIR}/", ValueError(f"{len(self._table)} graphs stored but {num_graphs} recorded"), rebuild
            )

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, index: int) -> Data:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: graph {index} out of range [0, {len(self)})")
        return row_to_graph(self._table[int(index)])

    def __iter__(self) -> Iterator[Data]:
        for batch in self._table.with_format("arrow").iter(batch_size=1024):
            yield from _decode_arrow_batch(batch)

    @property
    def graphs(self) -> list[Data]:
        """Every graph decoded (materializes the dataset)."""
        return list(iter(self))

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def summary(self) -> dict[str, Any]:
        """The counts recorded when the cache was written (no graph is decoded)."""
        return dict(self._summary)

    def to_graph_dataset(self) -> GraphDataset:
        return GraphDataset(
            name=self.name, domain=self.domain, task=self.task, graphs=self.graphs, splits=dict(self.splits),
            edge_splits={k: dict(v) for k, v in self.edge_splits.items()}, skipped=list(self.skipped), info=dict(self.info),
        )


def load_graph_dataset(directory: str | os.PathLike) -> ArrowGraphDataset:
    """Open a cache directory written by :func:`save_graph_dataset` (memory-mapped, lazy)."""
    return ArrowGraphDataset(directory)


# ------------------------------------------------------------------------------------------
# Generic rows (e.g. tokenized corpora): plain dicts <-> HF datasets Arrow directory.
# ------------------------------------------------------------------------------------------
ROWS_META_FILE = "gfm_rows.json"


def write_rows(
    rows: Iterable[Mapping[str, Any]],
    directory: str | os.PathLike,
    json_columns: Sequence[str] = (),
    features: Any = None,
    overwrite: bool = False,
    fingerprint: str | None = None,
) -> Path:
    """Store plain dict rows as an HF ``datasets`` Arrow directory (atomic write, no stale cache).

    Values are stored natively by Arrow (ints as int64, floats as float64 - so python floats
    from float32 tensors come back exactly - lists, nested lists, strings, None). Columns named
    in ``json_columns`` (free-form dicts such as ``metadata``) are stored as JSON strings and
    decoded by :func:`read_rows`.

    Args:
        rows: an iterable of dicts with the same keys (consumed once, streamed to disk).
        directory: target directory.
        json_columns: columns to store as JSON text.
        features: optional ``datasets.Features``; pass it when a column is ``None`` in early rows
            and a list later (Arrow infers column types from the first rows).
        overwrite: replace an existing directory.
        fingerprint: recorded as the dataset fingerprint (e.g. your own content hash).
    """

    json_columns = tuple(json_columns)
    directory = Path(directory)

    def encoded() -> Iterator[dict[str, Any]]:
        for row in rows:
            out = dict(row)
            for column in json_columns:
                _check_jsonable(out.get(column), f"row column {column!r}")
                out[column] = json.dumps(out.get(column), sort_keys=True, allow_nan=True)
            yield out

    with _quiet_progress_bars(), atomic_directory(directory, overwrite=overwrite) as tmp, tempfile.TemporaryDirectory(dir=tmp) as scratch:
        save_row_batches(batched(encoded(), 1024), tmp / "rows", Path(scratch), features, fingerprint)
        atomic_write_json(tmp / ROWS_META_FILE, {"format_version": FORMAT_VERSION, "json_columns": list(json_columns)})
    return directory


class RowDataset:
    """Rows written by :func:`write_rows`, memory-mapped; indexing/iteration yield dicts (JSON decoded).

    ``.table`` is the underlying ``datasets.Dataset`` for column access and ``set_format``.
    """

    def __init__(self, directory: str | os.PathLike):
        import datasets

        self.directory = Path(directory)
        rebuild = "write the rows again (gfm.data.write_rows, or the command that wrote them)"
        errors = _read_errors()
        meta = _read_meta(self.directory, ROWS_META_FILE, "write it with gfm.data.write_rows", rebuild)
        try:
            self.json_columns = tuple(meta["json_columns"])
        except errors as err:
            raise _damaged(self.directory, ROWS_META_FILE, err, rebuild) from err
        try:
            self.table = datasets.load_from_disk(str(self.directory / "rows"))
        except errors as err:
            raise _damaged(self.directory, "rows/", err, rebuild) from err

    def __len__(self) -> int:
        return len(self.table)

    def _decode(self, row: dict[str, Any]) -> dict[str, Any]:
        for column in self.json_columns:
            row[column] = json.loads(row[column])
        return row

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._decode(dict(self.table[int(index)]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.table.iter(batch_size=256):
            keys = list(batch)
            for values in zip(*(batch[k] for k in keys)):
                yield self._decode(dict(zip(keys, values)))


def read_rows(directory: str | os.PathLike) -> RowDataset:
    """Open rows written by :func:`write_rows`."""
    return RowDataset(directory)
