"""The dataset registry: one name per dataset, ``load(name)`` and ``available()``.

A *source* is either one fixed name (``"moleculenet/hiv"``) or a family prefix whose members
are discovered in the data folder (``"tu/"`` lists every TU-format folder under
``<data_dir>/tudataset``). Each source knows which files it reads, so a missing file is
reported by name before any parsing, and the corpus cache can key processed results on the
files' sizes and modification times. Nothing is ever downloaded.

``load(name, cache_dir=...)`` keeps the processed dataset in an Arrow cache directory named by
:func:`cache_key` (:func:`cache_path`, :func:`load_or_build_cached`); the storage format itself is
:mod:`gfm.data.arrow`, which knows nothing of names (the registry imports it, never the reverse).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gfm.utils.io import sha256_file

from .arrow import META_FILE, ArrowGraphDataset, load_graph_dataset, save_graph_dataset
from .dataset import DataNotFoundError, GraphDataset, UnknownDatasetError, validate_dataset

__all__ = [
    "DatasetSource",
    "register",
    "load",
    "available",
    "known_names",
    "resolve_data_dir",
    "resolve_source",
    "input_files",
    "cache_key",
    "cache_path",
    "load_or_build_cached",
    "DATA_DIR_ENV",
]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "GFM_DATA_DIR"
#: Bump when a loader's output changes for the same input files (invalidates caches).
LOADER_VERSION = 1
#: Options that change how fast a dataset loads, not what it contains (left out of cache keys).
NON_SEMANTIC_OPTIONS = ("num_workers",)

LoaderFn = Callable[..., GraphDataset]
FilesFn = Callable[[str, "Path | None", dict], list[Path]]
DiscoverFn = Callable[[Path], list[str]]


@dataclass
class DatasetSource:
    """How to load one registry name or one family of names.

    Attributes:
        name: the registry name, or a family prefix ending in ``/`` (``"tu/"``).
        loader: ``loader(name, data_dir, **options) -> GraphDataset``.
        files: ``files(name, data_dir, options) -> [Path]`` the input files read (checked to
            exist before loading; hashed for the cache key).
        needs_data_dir: False for packaged data shipped inside installed packages.
        discover: for a family, ``discover(data_dir) -> [names]`` present in the folder.
        description: one line for ``docs/data.md`` and error messages.
        examples: names to suggest when a family member is misspelled and no folder is known.
        list_in_available: False for path-style families (``csv/<path>``) that cannot be listed.
    """

    name: str
    loader: LoaderFn
    files: FilesFn
    needs_data_dir: bool = True
    discover: DiscoverFn | None = None
    description: str = ""
    examples: tuple[str, ...] = ()
    list_in_available: bool = True

    @property
    def is_family(self) -> bool:
        return self.name.endswith("/")


_SOURCES: dict[str, DatasetSource] = {}
#: Loader modules of gfm.data; each registers its sources when imported.
_BUILTIN_LOADER_MODULES = (
    "packaged",
    "tu",
    "moleculenet",
    "planetoid",
    "heterophilous",
    "karateclub",
    "kg",
    "linkpred",
    "edge_list",
)
_BUILTINS_LOADED = False


def register(source: DatasetSource) -> DatasetSource:
    """Add a source to the registry (an existing name is an error, never overwritten)."""
    if source.name in _SOURCES:
        raise ValueError(f"dataset source {source.name!r} is already registered")
    _SOURCES[source.name] = source
    return source


def _load_builtins() -> None:
    """Import the loader modules once; each registers its sources at import."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for module in _BUILTIN_LOADER_MODULES:
        importlib.import_module(f"{__package__}.{module}")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The data folder: the argument, else ``GFM_DATA_DIR``, else ``None``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def _sources() -> dict[str, DatasetSource]:
    _load_builtins()
    return _SOURCES


def known_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Every fixed name plus the family members found in the data folder (if any)."""
    names: list[str] = []
    folder = resolve_data_dir(data_dir)
    for source in _sources().values():
        if not source.is_family:
            names.append(source.name)
        elif source.discover is not None and folder is not None and folder.is_dir():
            names.extend(source.discover(folder))
        else:
            names.extend(source.examples)
    return sorted(set(names))


def resolve_source(name: str, data_dir: str | os.PathLike | None = None) -> DatasetSource:
    """The source serving ``name``; :class:`UnknownDatasetError` with close matches otherwise."""
    sources = _sources()
    if name in sources and not sources[name].is_family:
        return sources[name]
    prefix, slash, rest = name.partition("/")
    family = sources.get(prefix + "/") if slash and rest else None
    if family is not None:
        return family
    candidates = known_names(data_dir)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=5, cutoff=0.5)
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[c] for c in close]
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise UnknownDatasetError(
        f"unknown dataset {name!r}: {hint}gfm.data.available() lists what loads now; families: "
        f"{', '.join(sorted(s.name + '<name>' for s in sources.values() if s.is_family))}"
    )


def input_files(name: str, data_dir: str | os.PathLike | None = None, **options: Any) -> list[Path]:
    """The files ``load(name)`` would read, checked to exist (:class:`DataNotFoundError` otherwise)."""
    source = resolve_source(name, data_dir)
    folder = _require_data_dir(name, source, data_dir)
    files = source.files(name, folder, options)
    for path in files:
        if not path.exists():
            _raise_missing(name, source, folder, path)
    return files


def _require_data_dir(name: str, source: DatasetSource, data_dir: str | os.PathLike | None) -> Path | None:
    folder = resolve_data_dir(data_dir)
    if not source.needs_data_dir:
        return folder
    if folder is None:
        raise DataNotFoundError(
            f"{name} reads the real data folder, but none is set: pass data_dir=... or set "
            f"{DATA_DIR_ENV}=../shared/data (gfm never downloads). The packaged datasets "
            f"(packaged/*) need no data folder."
        )
    if not folder.is_dir():
        raise DataNotFoundError(
            f"{name}: the data folder {str(folder)!r} does not exist (from "
            f"{'data_dir' if data_dir is not None else DATA_DIR_ENV}); point it at the folder holding "
            "planetoid/, moleculenet/, tudataset/, ... (gfm never downloads)"
        )
    return folder


def _raise_missing(name: str, source: DatasetSource, folder: Path | None, path: Path) -> None:
    hint = ""
    if source.is_family and source.discover is not None and folder is not None and folder.is_dir():
        members = source.discover(folder)
        close = difflib.get_close_matches(name, members, n=5, cutoff=0.5)
        if close:
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?"
        elif members:
            hint = f" Present: {', '.join(members[:12])}{' ...' if len(members) > 12 else ''}."
    raise DataNotFoundError(
        f"{name}: missing file {str(path)!r}.{hint} {source.description} Put the source files there "
        "(gfm never downloads)."
    )


def available(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Registry names that load now: packaged data, plus what the data folder holds."""
    folder = resolve_data_dir(data_dir)
    names: list[str] = []
    for source in _sources().values():
        if not source.list_in_available:
            continue
        if source.is_family:
            if folder is not None and folder.is_dir() and source.discover is not None:
                names.extend(source.discover(folder))
            continue
        try:
            input_files(source.name, folder)
        except (DataNotFoundError, OSError):
            continue
        names.append(source.name)
    return sorted(set(names))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"option value {value!r} ({type(value).__name__}) cannot be part of a cache key; use JSON types")


def cache_key(
    name: str, data_dir: str | os.PathLike | None = None, hash_contents: bool = False, **options: Any
) -> str:
    """Content key of ``load(name, data_dir, **options)``: SHA-256 over the name, the options,
    the loader version and each input file's size and modification time (or its bytes with
    ``hash_contents=True``). Changing a file or an option gives a new key.
    """
    files = input_files(name, data_dir, **options)
    folder = resolve_data_dir(data_dir)
    described = []
    for path in files:
        stat = path.stat()
        try:
            shown = str(path.resolve().relative_to(folder.resolve())) if folder is not None else str(path)
        except ValueError:
            shown = str(path.resolve())
        entry: dict[str, Any] = {"path": shown, "size": stat.st_size}
        if hash_contents:
            entry["sha256"] = sha256_file(path)
        else:
            entry["mtime_ns"] = stat.st_mtime_ns
        described.append(entry)
    payload = {"name": name, "options": _jsonable(options), "files": described, "loader_version": LOADER_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _check_options(name: str, source: DatasetSource, options: dict[str, Any]) -> None:
    """Unknown loader options are an error naming the accepted ones (never silently ignored)."""
    parameters = inspect.signature(source.loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [p for p in list(parameters)[2:]]  # after (name, data_dir)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {unknown}; this loader accepts {accepted or 'no options'}")


def load(
    name: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    **options: Any,
) -> GraphDataset:
    """Load a dataset by registry name.

    Args:
        name: e.g. ``"tu/PROTEINS"``, ``"moleculenet/hiv"``, ``"packaged/karate"``; see
            :func:`available` and ``docs/data.md``.
        data_dir: the data folder; default ``GFM_DATA_DIR``. ``packaged/*`` needs none.
        cache_dir: when given, the processed dataset is stored there as an HF ``datasets``
            Arrow cache keyed by :func:`cache_key`, and reused on the next call (no caching
            otherwise).
        **options: loader options (``seed``, ``limit``, ``domain``, ...; see ``docs/data.md``).

    Returns:
        The validated :class:`GraphDataset`.

    Raises:
        UnknownDatasetError: the name is unknown (the message lists close matches).
        DataNotFoundError: the data folder or a file is missing (nothing is downloaded).
        DataFormatError / GraphValidationError: a malformed source, naming file/line/graph.
    """
    source = resolve_source(name, data_dir)
    _check_options(name, source, options)
    folder = _require_data_dir(name, source, data_dir)
    input_files(name, folder, **options)
    if cache_dir is not None:
        return load_or_build_cached(name, folder, cache_dir, options)
    start = time.perf_counter()
    dataset = source.loader(name, folder, **options)
    validate_dataset(dataset)
    logger.info(
        "loaded %s: %d graphs, %s in %.1f s",
        name,
        len(dataset),
        dataset.task.summary(),
        time.perf_counter() - start,
    )
    return dataset


# ------------------------------------------------------------------------------------------
# The Arrow cache of processed datasets, keyed by registry name (storage itself: gfm.data.arrow)
# ------------------------------------------------------------------------------------------


def _cache_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "dataset"


def cache_path(name: str, data_dir: str | os.PathLike | None, cache_dir: str | os.PathLike, options: Mapping[str, Any]) -> Path:
    """Where ``load(name, data_dir, cache_dir=cache_dir, **options)`` keeps its Arrow cache."""
    semantic = {k: v for k, v in options.items() if k not in NON_SEMANTIC_OPTIONS}
    key = cache_key(name, data_dir, **semantic)
    return Path(cache_dir).expanduser() / f"{_cache_slug(name)}-{key[:24]}"


def load_or_build_cached(
    name: str, data_dir: str | os.PathLike | None, cache_dir: str | os.PathLike, options: Mapping[str, Any], lazy: bool = False
) -> GraphDataset | ArrowGraphDataset:
    """Return the cached dataset when its key matches, else load, validate, cache and return it.

    Args:
        lazy: return the memory-mapped :class:`ArrowGraphDataset` instead of a materialized
            :class:`GraphDataset`.
    """
    from filelock import FileLock

    path = cache_path(name, data_dir, cache_dir, options)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if (path / META_FILE).is_file():
            logger.info("%s: reusing the Arrow cache %s", name, path)
            cached = load_graph_dataset(path)
            return cached if lazy else cached.to_graph_dataset()
        start = time.perf_counter()
        dataset = resolve_source(name, data_dir).loader(name, None if data_dir is None else Path(data_dir), **dict(options))
        validate_dataset(dataset)
        if path.exists():  # a damaged leftover without metadata
            shutil.rmtree(path)
        save_graph_dataset(dataset, path, cache_key=path.name.rsplit("-", 1)[-1])
        logger.info("%s: processed in %.1f s and cached at %s", name, time.perf_counter() - start, path)
    return load_graph_dataset(path) if lazy else dataset
