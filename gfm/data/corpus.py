"""``Corpus``: named datasets from several domains, cached as Arrow, sampled with domain weights.

    corpus = Corpus(["packaged/nci5k", "packaged/karate", "tu/PROTEINS"],
                    domain_weights={"molecules": 0.5, "social": 0.25, "proteins": 0.25},
                    data_dir="../shared/data", cache_dir="~/.cache/gfm/corpus")
    for name, graph in corpus.iter_samples(1000, seed=0): ...

With a ``cache_dir`` every dataset is processed once into an HF ``datasets`` Arrow cache
(``gfm.data.arrow``) keyed by its input files and options, and read back memory-mapped;
without one, datasets are loaded into memory.

The held-out evaluation graphs of the few-shot / zero-shot protocol (:data:`EVALUATION_GRAPHS`)
are defined here, in the lowest layer that both pretraining (``gfm.training``) and evaluation
(``gfm.evaluation``) import: :func:`check_pretraining_datasets` refuses a pretraining corpus that
would read one of them, and every corpus-building path (this ``Corpus``,
``gfm.training.corpus``) runs it.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from gfm.utils.errors import GFMError
from gfm.utils.io import sha256_file
from gfm.utils.seed import torch_generator

from .arrow import ArrowGraphDataset
from .dataset import GraphDataset
from .registry import (
    _check_options,
    input_files,
    load,
    load_or_build_cached,
    resolve_data_dir,
    resolve_source,
)

__all__ = [
    "Corpus",
    "CACHE_DIR_ENV",
    "default_cache_dir",
    "EVALUATION_GRAPHS",
    "EVALUATION_GRAPH_ALIASES",
    "EvaluationGraphLeakError",
    "evaluation_graph_read_by",
    "check_pretraining_datasets",
]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "GFM_CACHE_DIR"


#: The held-out evaluation graphs: no pretraining run may read their structure, features or
#: labels. Few-shot / zero-shot transfer is measured on them (``gfm.evaluation.protocol``), so a
#: pretraining corpus that names one of them (or an alias, or a file of theirs) is refused by
#: :func:`check_pretraining_datasets`. Every other dataset of the data folder may be used for
#: pretraining. Exact registry names (``gfm.data.available(data_dir)``); fixed by issue 13.
EVALUATION_GRAPHS: tuple[str, ...] = (
    "planetoid/citeseer",
    "hetero/actor",
    "hetero/wisconsin",
    "hetero/texas",
    "hetero/cornell",
    "karateclub/lastfm",
)

#: Other registry names that serve the same graph as an evaluation graph. ``hetero/texas_4_classes``
#: ships the same nodes, edges, features and labels as ``hetero/texas`` (only its split masks
#: differ), so reading it reads texas.
EVALUATION_GRAPH_ALIASES: dict[str, str] = {"hetero/texas_4_classes": "hetero/texas"}


class EvaluationGraphLeakError(GFMError, ValueError):
    """A pretraining corpus names (or reads a file of) a held-out evaluation graph."""


def _normalized_name(name: str) -> str:
    return "/".join(part for part in str(name).strip().lower().split("/") if part)


def _evaluation_files(data_dir: Path | None) -> dict[Path, str]:
    """``{resolved input file: evaluation graph}`` of the evaluation graphs present in ``data_dir``."""
    from .dataset import DataNotFoundError
    from .registry import input_files

    files: dict[Path, str] = {}
    if data_dir is None or not data_dir.is_dir():
        return files
    for graph in (*EVALUATION_GRAPHS, *EVALUATION_GRAPH_ALIASES):
        try:
            paths = input_files(graph, data_dir)
        except (DataNotFoundError, OSError):
            continue  # not in this data folder: nothing of it can be read
        for path in paths:
            files[path.resolve()] = EVALUATION_GRAPH_ALIASES.get(graph, graph)
    return files


def evaluation_graph_read_by(
    name: str,
    data_dir: str | os.PathLike | None = None,
    options: Mapping[str, Any] | None = None,
    _files: dict[Path, str] | None = None,
) -> tuple[str, str] | None:
    """Which evaluation graph loading ``name`` would read, and why; ``None`` if none.

    Checks, in order: the registry name itself (case-insensitive), the aliases of
    :data:`EVALUATION_GRAPH_ALIASES`, and the input files the registry resolves for ``name``
    (with ``options``, e.g. a ``csv/`` path or its ``nodes_path``) against the evaluation graphs'
    files in the data folder: the same file (after resolving links) or a file with the same bytes
    (a copy).

    Returns:
        ``(evaluation graph, reason)`` or ``None``.
    """
    key = _normalized_name(name)
    for graph in EVALUATION_GRAPHS:
        if key == graph.lower():
            return graph, "it is a held-out evaluation graph"
    for alias, graph in EVALUATION_GRAPH_ALIASES.items():
        if key == alias.lower():
            return graph, f"it serves the same graph as the held-out evaluation graph {graph!r}"
    from .dataset import UnknownDatasetError

    folder = resolve_data_dir(data_dir)
    try:
        source = resolve_source(name, folder)
        if source.needs_data_dir and folder is None:
            return None  # loading it fails by name (no data folder); nothing of an evaluation graph is read
        # every file it names, present or not (a missing edge list must not hide a real nodes_path)
        paths = [Path(p).expanduser().resolve() for p in source.files(name, folder, dict(options or {}))]
    except (UnknownDatasetError, OSError, ValueError, TypeError, KeyError):
        return None  # loading it fails by name anyway; nothing of an evaluation graph is read
    evaluation = _evaluation_files(folder) if _files is None else _files
    if not evaluation:
        return None
    sizes: dict[int, list[Path]] = {}
    for path in evaluation:
        try:
            sizes.setdefault(path.stat().st_size, []).append(path)
        except OSError:
            continue
    for path in paths:
        if path in evaluation:
            return evaluation[path], f"it reads {str(path)!r}, a file of that evaluation graph"
        try:
            same_size = sizes.get(path.stat().st_size, []) if path.is_file() else []
        except OSError:
            continue
        if same_size:
            digest = sha256_file(path)
            for other in same_size:
                if sha256_file(other) == digest:
                    return evaluation[other], f"it reads {str(path)!r}, a copy of {str(other)!r}"
    return None


def check_pretraining_datasets(
    datasets: Sequence[str] | Mapping[str, Mapping[str, Any] | None],
    data_dir: str | os.PathLike | None = None,
    config_key: str = "datasets",
    where: str = "pretraining corpus",
    fix: str | None = None,
) -> None:
    """Refuse a pretraining corpus that would read a held-out evaluation graph.

    Args:
        datasets: registry names, or ``{name: options}``.
        data_dir: the data folder the names load from (default ``GFM_DATA_DIR``); file checks
            (``csv/`` paths, copies) need it, the name checks do not.
        config_key: the config key that lists ``datasets`` (named in the message).
        where: what is being built (a config file, a tokenized corpus folder), for the message.
        fix: the remedy to state (default: remove the offending names from ``config_key``).

    Raises:
        EvaluationGraphLeakError: naming every offending dataset, the evaluation graph it reads,
            the config key and the fix.
    """
    items = datasets.items() if isinstance(datasets, Mapping) else ((name, None) for name in datasets)
    folder = resolve_data_dir(data_dir)
    files = _evaluation_files(folder)
    offending = []
    for name, options in items:
        hit = evaluation_graph_read_by(name, folder, options, _files=files)
        if hit is not None:
            offending.append((name, *hit))
    if not offending:
        return
    lines = "; ".join(f"{name!r} reads {graph!r} ({reason})" for name, graph, reason in offending)
    names = ", ".join(repr(name) for name, _, _ in offending)
    raise EvaluationGraphLeakError(
        f"{where}: config key {config_key!r} lists held-out evaluation graph data: {lines}. No pretraining run may "
        f"read the structure, features or labels of an evaluation graph ({', '.join(EVALUATION_GRAPHS)}; "
        f"gfm.data.corpus.EVALUATION_GRAPHS), so transfer to them stays honest. Fix: "
        + (fix or f"remove {names} from {config_key!r}")
        + "; every other dataset of the data folder may be used for pretraining."
    )


def default_cache_dir() -> Path | None:
    """``GFM_CACHE_DIR`` when set, else ``None`` (no caching)."""
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value).expanduser() if value else None


class Corpus:
    """A mixture of named datasets with per-domain sampling weights.

    Args:
        datasets: registry names, or ``{name: options}`` (options as for :func:`gfm.data.load`).
        domain_weights: relative weight of each domain when sampling; domains of the corpus not
            listed get weight 0 (logged). Default: every domain equally. An unknown domain is an
            error naming the corpus' domains.
        data_dir: data folder (default ``GFM_DATA_DIR``).
        cache_dir: Arrow cache folder; ``None`` loads datasets in memory.
        allow_evaluation_graphs: a corpus is a pretraining mixture, so naming a held-out
            evaluation graph (:data:`EVALUATION_GRAPHS`) raises :class:`EvaluationGraphLeakError`;
            ``True`` only for inspecting data (summary tables), never for pretraining.

    Sampling picks a domain by weight, then a graph uniformly among the domain's graphs (so a
    dataset's share within its domain follows its size).
    """

    def __init__(
        self,
        datasets: Sequence[str] | Mapping[str, Mapping[str, Any]],
        domain_weights: Mapping[str, float] | None = None,
        data_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        allow_evaluation_graphs: bool = False,
    ):
        if isinstance(datasets, Mapping):
            self.options = {name: dict(opts or {}) for name, opts in datasets.items()}
        else:
            self.options = {name: {} for name in datasets}
        if not self.options:
            raise ValueError("Corpus: give at least one dataset name")
        self.data_dir = resolve_data_dir(data_dir)
        if not allow_evaluation_graphs:
            check_pretraining_datasets(self.options, self.data_dir, config_key="datasets", where="Corpus")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.requested_weights = dict(domain_weights) if domain_weights is not None else None
        self._datasets: dict[str, GraphDataset | ArrowGraphDataset] = {}

    # -- loading ----------------------------------------------------------------------------
    def build(self) -> Corpus:
        """Load (or process and cache) every dataset; idempotent."""
        for name, options in self.options.items():
            if name in self._datasets:
                continue
            if self.cache_dir is not None:
                _check_options(name, resolve_source(name, self.data_dir), options)
                input_files(name, self.data_dir, **options)  # unknown names / missing files fail first
                self._datasets[name] = load_or_build_cached(name, self.data_dir, self.cache_dir, options, lazy=True)
            else:
                self._datasets[name] = load(name, self.data_dir, **options)
        self._check_weights()
        return self

    @property
    def datasets(self) -> dict[str, GraphDataset | ArrowGraphDataset]:
        """``{name: dataset}`` (builds on first access)."""
        if len(self._datasets) != len(self.options):
            self.build()
        return self._datasets

    @property
    def domains(self) -> dict[str, list[str]]:
        """``{domain: [dataset names]}``."""
        out: dict[str, list[str]] = {}
        for name, dataset in self.datasets.items():
            out.setdefault(dataset.domain, []).append(name)
        return out

    def _check_weights(self) -> None:
        if self.requested_weights is None:
            return
        present = {dataset.domain for dataset in self._datasets.values()}
        unknown = sorted(set(self.requested_weights) - present)
        if unknown:
            hints = []
            for domain in unknown:
                close = difflib.get_close_matches(domain, sorted(present), n=1)
                hints.append(f"{domain!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(
                f"Corpus: domain_weights names {', '.join(hints)}, which no dataset of this corpus has; "
                f"its domains are {sorted(present)}"
            )
        for domain, weight in self.requested_weights.items():
            if not weight >= 0:
                raise ValueError(f"Corpus: weight of domain {domain!r} must be >= 0, got {weight}")
        missing = sorted(present - set(self.requested_weights))
        if missing:
            logger.warning("Corpus: domains %s have no weight and will not be sampled", missing)
        if sum(self.requested_weights.values()) <= 0:
            raise ValueError("Corpus: domain weights sum to 0; give at least one domain a positive weight")

    def domain_weights(self) -> dict[str, float]:
        """Normalized sampling probability of each domain of the corpus."""
        domains = self.domains
        raw = {d: (1.0 if self.requested_weights is None else float(self.requested_weights.get(d, 0.0))) for d in domains}
        total = sum(raw.values())
        return {d: w / total for d, w in raw.items()}

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets.values())

    def __iter__(self) -> Iterator[tuple[str, Data]]:
        """Every graph of every dataset, in order: ``(dataset name, graph)``."""
        for name, dataset in self.datasets.items():
            for graph in dataset:
                yield name, graph

    def sample_indices(self, num_samples: int, seed: int = 0) -> list[tuple[str, int]]:
        """``num_samples`` draws ``(dataset name, graph index)`` by domain weight (seeded, with replacement)."""
        generator = torch_generator(seed)
        weights = self.domain_weights()
        domains = [d for d in weights if weights[d] > 0]
        probabilities = torch.tensor([weights[d] for d in domains], dtype=torch.float64)
        picked = torch.multinomial(probabilities, num_samples, replacement=True, generator=generator)
        draws: list[tuple[str, int]] = [("", 0)] * num_samples
        for domain_index, domain in enumerate(domains):
            slots = (picked == domain_index).nonzero().view(-1)
            names = self.domains[domain]
            sizes = torch.tensor([len(self.datasets[n]) for n in names])
            offsets = torch.cumsum(sizes, 0)
            flat = torch.randint(int(sizes.sum()), (slots.numel(),), generator=generator)
            which = torch.searchsorted(offsets, flat, right=True)
            local = flat - (offsets - sizes)[which]
            for slot, w, index in zip(slots.tolist(), which.tolist(), local.tolist()):
                draws[slot] = (names[w], index)
        return draws

    def iter_samples(self, num_samples: int, seed: int = 0) -> Iterator[tuple[str, Data]]:
        """Stream ``num_samples`` graphs drawn by :meth:`sample_indices`."""
        for name, index in self.sample_indices(num_samples, seed):
            yield name, self.datasets[name][index]

    def summary(self) -> list[dict[str, Any]]:
        """One row per dataset: dataset, domain, graphs, nodes, edges, feature widths, task."""
        return [dataset.summary() for dataset in self.datasets.values()]
