"""``Corpus``: named datasets from several domains, cached as Arrow, sampled with domain weights.

    corpus = Corpus(["packaged/nci5k", "packaged/karate", "tu/PROTEINS"],
                    domain_weights={"molecules": 0.5, "social": 0.25, "proteins": 0.25},
                    data_dir="../shared/data", cache_dir="~/.cache/gfm/corpus")
    for name, graph in corpus.iter_samples(1000, seed=0): ...

With a ``cache_dir`` every dataset is processed once into an HF ``datasets`` Arrow cache
(``gfm.data.arrow``) keyed by its input files and options, and read back memory-mapped;
without one, datasets are loaded into memory.
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

__all__ = ["Corpus", "CACHE_DIR_ENV", "default_cache_dir"]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "GFM_CACHE_DIR"


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

    Sampling picks a domain by weight, then a graph uniformly among the domain's graphs (so a
    dataset's share within its domain follows its size).
    """

    def __init__(
        self,
        datasets: Sequence[str] | Mapping[str, Mapping[str, Any]],
        domain_weights: Mapping[str, float] | None = None,
        data_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        if isinstance(datasets, Mapping):
            self.options = {name: dict(opts or {}) for name, opts in datasets.items()}
        else:
            self.options = {name: {} for name in datasets}
        if not self.options:
            raise ValueError("Corpus: give at least one dataset name")
        self.data_dir = resolve_data_dir(data_dir)
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
