"""The tokenized corpus and the deterministic, resumable batch plan of pretraining.

Data path of one optimizer step::

    Arrow cache (TokenizedGraph.to_dict() rows, memory-mapped)
      -> epoch plan: mixture-weighted draw of rows, cut into windows, each window packed
         first-fit-decreasing (longest first) into rows of ``max_length`` positions, the rows
         dealt at random into global batches of ``global_batch_rows``
      -> global batch ``(epoch, index)``: ``world_size * accumulation`` shards of
         ``micro_batch_rows`` rows; process ``r`` takes shards ``m * world_size + r``
      -> ``pack_tokenized_graphs`` of each shard (reproduces the planned rows exactly).

Everything is a pure function of the config, the corpus and ``(epoch, index)``: resuming
at a batch offset replays exactly the batches an uninterrupted run would have seen, and the
same global batch is formed whatever the number of processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gfm.tokenization.tokenized_graph import TokenizedGraph, pack_tokenized_graphs

from .errors import CorpusError, MixtureWeightError, VocabularyMismatchError

__all__ = [
    "TokenizedCorpus",
    "BatchPlan",
    "GlobalBatch",
    "pack_rows_first_fit",
    "mixture_draw",
    "build_micro_batch",
]

logger = logging.getLogger(__name__)

_GRAPH_FIELDS = tuple(f.name for f in fields(TokenizedGraph))
CORPUS_METADATA_NAME = "gfm_corpus.json"


# ---------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------
class TokenizedCorpus:
    """A memory-mapped Arrow table of ``TokenizedGraph.to_dict()`` rows, split train / eval.

    Args:
        dataset: an HF ``datasets.Dataset`` whose columns include the ``TokenizedGraph`` fields
            (``input_ids``, ``node_index``, ``edge_index``, ``domain``, ...); other columns are
            ignored.
        eval_fraction: fraction of each domain's rows held back for evaluation.
        eval_max_per_domain: cap on held-back rows per domain.
        name: how to call the corpus in messages (its directory).
        metadata: the cache's ``gfm_corpus.json`` (tokenizer hash, sources), when present.

    The held-back rows are chosen by a permutation seeded with the domain's name, so they do
    not change with the training seed.
    """

    def __init__(
        self,
        dataset: Any,
        eval_fraction: float = 0.05,
        eval_max_per_domain: int = 128,
        name: str = "tokenized corpus",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.dataset = dataset
        self.name = name
        self.metadata = dict(metadata or {})
        missing = [key for key in ("input_ids", "node_index", "edge_index", "domain") if key not in dataset.column_names]
        if missing:
            raise CorpusError(
                f"{name}: columns {missing} are missing; a tokenized corpus holds TokenizedGraph.to_dict() rows "
                f"(has {dataset.column_names}). Rebuild it with tokenizers/train_tokenizer.py"
            )
        if len(dataset) == 0:
            raise CorpusError(f"{name}: the tokenized corpus is empty")
        import pyarrow.compute as pc

        table = dataset.data.table if hasattr(dataset.data, "table") else dataset.data
        self.lengths = np.asarray(pc.list_value_length(table.column("input_ids")).to_numpy(zero_copy_only=False), dtype=np.int64)
        domain_column = table.column("domain").to_pylist()
        if any(d is None for d in domain_column):
            bad = domain_column.index(None)
            raise CorpusError(f"{name}: row {bad} has no domain; every graph of a pretraining corpus needs one")
        self.domain_names = sorted(set(domain_column))
        lookup = {d: i for i, d in enumerate(self.domain_names)}
        self.domains = np.asarray([lookup[d] for d in domain_column], dtype=np.int64)
        self.has_level_ids = "level_ids" in dataset.column_names and table.column("level_ids").null_count < len(dataset)
        self.node_feature_width = 0
        if "node_features" in dataset.column_names and table.column("node_features").null_count < len(dataset):
            first = int(pc.index(pc.is_valid(table.column("node_features")), True).as_py())
            row = dataset[first]
            features = row["node_features"]  # [L][F] nested lists (or flat L * F)
            if features and isinstance(features[0], list):
                self.node_feature_width = len(features[0])
            else:
                self.node_feature_width = len(features) // max(len(row["input_ids"]), 1)
        flat_ids = pc.list_flatten(table.column("input_ids"))
        self.max_token_id = int(pc.max(flat_ids).as_py()) if len(flat_ids) else -1
        self.train_rows, self.eval_rows = self._split(eval_fraction, eval_max_per_domain)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> TokenizedCorpus:
        """Open a corpus written with ``datasets.Dataset.save_to_disk`` (memory-mapped, no copy)."""
        import datasets

        path = Path(path)
        if not path.exists():
            raise CorpusError(
                f"tokenized corpus {path} does not exist; write it with tokenizers/train_tokenizer.py "
                "or set `datasets` so gfm tokenizes them into cache_dir"
            )
        from .corpus import read_corpus_table

        loaded = read_corpus_table(path)  # named errors for a damaged or incomplete folder
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise CorpusError(f"{path}: a DatasetDict corpus needs a 'train' split, has {list(loaded)}")
            loaded = datasets.concatenate_datasets([loaded[s] for s in loaded])
        metadata_path = path / CORPUS_METADATA_NAME
        metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
        return cls(loaded, name=str(path), metadata=metadata, **kwargs)

    def _split(self, eval_fraction: float, eval_max_per_domain: int) -> tuple[np.ndarray, np.ndarray]:
        train, held_back = [], []
        for domain_id, domain in enumerate(self.domain_names):
            rows = np.flatnonzero(self.domains == domain_id)
            seed = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:8], "little")
            rows = rows[np.random.default_rng(seed).permutation(len(rows))]
            num_eval = 0
            if eval_fraction > 0 and len(rows) >= 2:
                num_eval = min(eval_max_per_domain, max(1, round(eval_fraction * len(rows))), len(rows) - 1)
            held_back.append(np.sort(rows[:num_eval]))
            train.append(np.sort(rows[num_eval:]))
        return np.concatenate(train), np.concatenate(held_back)

    def __len__(self) -> int:
        return len(self.dataset)

    def fingerprint(self) -> str:
        """Identity of the corpus content as training sees it (row count, lengths, domains, split)."""
        digest = hashlib.sha256()
        for array in (self.lengths, self.domains, self.train_rows, self.eval_rows):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(json.dumps(self.domain_names).encode())
        return digest.hexdigest()

    def domain_summary(self) -> dict[str, dict[str, int]]:
        """Per domain: graphs and tokens in the train and eval parts."""
        out = {}
        for domain_id, domain in enumerate(self.domain_names):
            train = self.train_rows[self.domains[self.train_rows] == domain_id]
            held = self.eval_rows[self.domains[self.eval_rows] == domain_id]
            out[domain] = {
                "train_graphs": int(len(train)),
                "train_tokens": int(self.lengths[train].sum()),
                "eval_graphs": int(len(held)),
            }
        return out

    def check_vocabulary(self, vocab_size: int, tokenizer_hash: str | None = None) -> None:
        """Every token id must fit the tokenizer's vocabulary (and the cache's tokenizer must match)."""
        recorded = self.metadata.get("tokenizer_hash")
        if tokenizer_hash is not None and recorded is not None and recorded != tokenizer_hash:
            raise VocabularyMismatchError(
                f"{self.name} was tokenized by tokenizer {recorded[:12]}, but the run uses tokenizer "
                f"{tokenizer_hash[:12]}; re-tokenize the corpus with this tokenizer or point "
                "tokenizer_name_or_path at the one that made it"
            )
        if self.max_token_id >= vocab_size:
            raise VocabularyMismatchError(
                f"{self.name} holds token id {self.max_token_id} but the tokenizer's vocabulary has {vocab_size} "
                "ids; the corpus was made by another tokenizer: re-tokenize it with this one"
            )

    def graphs(self, rows: Sequence[int]) -> list[TokenizedGraph]:
        """Decode rows into ``TokenizedGraph``s (in the order given)."""
        if len(rows) == 0:
            return []
        columns = self.dataset[[int(r) for r in rows]]
        present = [key for key in _GRAPH_FIELDS if key in columns]
        out = []
        for i in range(len(rows)):
            out.append(TokenizedGraph.from_dict({key: columns[key][i] for key in present}))
        return out


# ---------------------------------------------------------------------------------------------
# mixture sampling and packing (pure numpy functions of their inputs)
# ---------------------------------------------------------------------------------------------
def mixture_draw(
    rows: np.ndarray,
    domains: np.ndarray,
    domain_names: Sequence[str],
    weights: Mapping[str, float],
    num_samples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``num_samples`` corpus rows with per-domain shares given by ``weights``.

    Domain ``d`` contributes ``round(w_d / sum(w) * num_samples)`` rows (largest remainders, so
    the counts add up), taken from successive seeded permutations of its rows (a domain drawn
    more often than it has rows cycles through all of them before repeating one). The result
    is shuffled.

    Raises:
        MixtureWeightError: a weight names a domain that is not in the corpus, or a domain of
            the corpus has no weight.
    """
    unknown = sorted(set(weights) - set(domain_names))
    if unknown:
        raise MixtureWeightError(
            f"mixture_weights names domain(s) {unknown} that the corpus does not have; "
            f"known domains: {list(domain_names)}"
        )
    missing = [d for d in domain_names if d not in weights]
    if missing:
        raise MixtureWeightError(
            f"mixture_weights gives no weight for domain(s) {missing} of the corpus; list every domain "
            f"(weight 0 leaves one out). Known domains: {list(domain_names)}"
        )
    rows_by_domain = [rows[domains[rows] == i] for i in range(len(domain_names))]
    raw = np.asarray([weights[d] if len(rows_by_domain[i]) else 0.0 for i, d in enumerate(domain_names)], dtype=np.float64)
    if raw.sum() <= 0:
        raise MixtureWeightError("mixture_weights: every domain with training graphs has weight 0")
    exact = raw / raw.sum() * num_samples
    counts = np.floor(exact).astype(np.int64)
    remainder = num_samples - int(counts.sum())
    if remainder:
        counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    drawn = []
    for domain_rows, count in zip(rows_by_domain, counts):
        if count == 0:
            continue
        cycles = -(-int(count) // len(domain_rows))
        drawn.append(np.concatenate([domain_rows[rng.permutation(len(domain_rows))] for _ in range(cycles)])[:count])
    out = np.concatenate(drawn)
    return out[rng.permutation(len(out))]


def pack_rows_first_fit(lengths: np.ndarray, row_length: int) -> list[list[int]]:
    """First-fit-decreasing packing of items into rows of ``row_length`` positions.

    Items are taken longest first (stable for equal lengths, so the input order breaks ties);
    each goes to the first row with room. This is the placement ``pack_tokenized_graphs`` uses,
    so packing any set of planned rows' graphs (rows in creation order) reproduces those rows.
    Written here because ``pack_tokenized_graphs`` needs the decoded graphs and returns only the
    filled batch, while the plan must place a whole epoch from the lengths column alone.

    Args:
        lengths: int [M] item lengths, each ``<= row_length``.

    Returns:
        Rows as lists of item positions (indices into ``lengths``), in placement order.
    """
    order = np.argsort(-lengths, kind="stable")
    free = np.empty(len(lengths), dtype=np.int64)  # room left per row (at most one row per item)
    num_rows = 0
    rows: list[list[int]] = []
    for item in order:
        length = lengths[item]
        fits = np.flatnonzero(free[:num_rows] >= length)
        if len(fits):
            row = int(fits[0])
            free[row] -= length
            rows[row].append(int(item))
        else:
            free[num_rows] = row_length - length
            rows.append([int(item)])
            num_rows += 1
    return rows


@dataclass(frozen=True)
class GlobalBatch:
    """One optimizer step's graphs: ``rows[j]`` lists the corpus rows packed into row ``j``."""

    epoch: int
    index: int
    rows: tuple[tuple[int, ...], ...]

    def shard(self, micro_step: int, rank: int, world_size: int, micro_batch_rows: int) -> list[int]:
        """Corpus rows of the micro-batch ``micro_step`` of process ``rank`` (planned row order)."""
        shard_index = micro_step * world_size + rank
        chosen = self.rows[shard_index * micro_batch_rows : (shard_index + 1) * micro_batch_rows]
        return [r for row in chosen for r in row]

    @property
    def num_graphs(self) -> int:
        return sum(len(row) for row in self.rows)


class BatchPlan:
    """Deterministic epochs of global batches (mixture-weighted, length-bucketed, packed).

    Args:
        corpus: the tokenized corpus (its ``train_rows`` are used).
        row_length: positions per packed row (``max_length``).
        global_batch_rows: rows per optimizer step over all processes.
        seed: run seed.
        mixture_weights: per-domain weights (empty: each training graph once per epoch).
        samples_per_epoch: graphs per epoch under a mixture (default: training set size).
        bucket_window: global batches' worth of graphs per packing window.
        drop_long_sequences: leave graphs longer than ``row_length`` out instead of raising.
    """

    def __init__(
        self,
        corpus: TokenizedCorpus,
        row_length: int,
        global_batch_rows: int,
        seed: int,
        mixture_weights: Mapping[str, float] | None = None,
        samples_per_epoch: int | None = None,
        bucket_window: int = 32,
        drop_long_sequences: bool = False,
    ) -> None:
        self.corpus = corpus
        self.row_length = row_length
        self.global_batch_rows = global_batch_rows
        self.seed = seed
        self.mixture_weights = dict(mixture_weights or {})
        self.bucket_window = bucket_window
        rows = corpus.train_rows
        too_long = rows[corpus.lengths[rows] > row_length]
        if len(too_long):
            by_domain = {corpus.domain_names[d]: int(n) for d, n in zip(*np.unique(corpus.domains[too_long], return_counts=True))}
            message = (
                f"{corpus.name}: {len(too_long)} training graphs are longer than max_length={row_length} "
                f"(longest {int(corpus.lengths[too_long].max())} tokens; per domain {by_domain})"
            )
            if not drop_long_sequences:
                raise CorpusError(
                    message + "; raise max_length, sample smaller subgraphs, or set drop_long_sequences: true "
                    "(gfm never truncates a graph)"
                )
            logger.warning("%s: left out of training (drop_long_sequences)", message)
            rows = rows[corpus.lengths[rows] <= row_length]
        if len(rows) == 0:
            raise CorpusError(f"{corpus.name}: no training graphs left")
        self.rows = rows
        if self.mixture_weights:
            # validates the weights against the corpus domains before any training
            mixture_draw(rows, corpus.domains, corpus.domain_names, self.mixture_weights, 1, np.random.default_rng(0))
        self.samples_per_epoch = int(samples_per_epoch or len(rows))
        mean_length = float(corpus.lengths[rows].mean())
        per_batch = max(1, int(global_batch_rows * row_length / mean_length))
        self.window_samples = max(per_batch, bucket_window * per_batch)
        self._cache: dict[int, list[GlobalBatch]] = {}

    def epoch(self, epoch: int) -> list[GlobalBatch]:
        """The global batches of ``epoch`` (computed once, then cached)."""
        if epoch not in self._cache:
            self._cache = {epoch: self._plan(epoch)}
            if not self._cache[epoch]:
                raise CorpusError(
                    f"{self.corpus.name}: an epoch holds fewer graphs than one global batch of "
                    f"{self.global_batch_rows} rows x {self.row_length} positions; lower global_batch_rows "
                    "or max_length, or raise samples_per_epoch"
                )
        return self._cache[epoch]

    def _plan(self, epoch: int) -> list[GlobalBatch]:
        rng = np.random.default_rng([self.seed, epoch])
        corpus = self.corpus
        if self.mixture_weights:
            order = mixture_draw(
                self.rows, corpus.domains, corpus.domain_names, self.mixture_weights, self.samples_per_epoch, rng
            )
        else:
            order = self.rows[rng.permutation(len(self.rows))]
            if self.samples_per_epoch != len(order):
                order = np.resize(order, self.samples_per_epoch)
        batches: list[tuple[tuple[int, ...], ...]] = []
        carry = np.zeros(0, dtype=np.int64)
        for start in range(0, len(order), self.window_samples):
            window = np.concatenate([carry, order[start : start + self.window_samples]])
            packed = pack_rows_first_fit(corpus.lengths[window], self.row_length)
            rows = [tuple(int(window[i]) for i in row) for row in packed]
            # Rows go to global batches in random order, so the rows left over for the next
            # window are a random few (not always the last-created rows of the shortest graphs);
            # inside a batch they stay in creation order, which makes packing a shard reproduce them.
            shuffled = rng.permutation(len(rows))
            full = len(rows) // self.global_batch_rows * self.global_batch_rows
            for start_row in range(0, full, self.global_batch_rows):
                chosen = sorted(shuffled[start_row : start_row + self.global_batch_rows].tolist())
                batches.append(tuple(rows[i] for i in chosen))
            carry = np.asarray([r for i in shuffled[full:] for r in rows[i]], dtype=np.int64)
        if len(carry):
            logger.info(
                "epoch %d: %d graphs did not fill a last global batch and wait for the next epoch's draw",
                epoch,
                len(carry),
            )
        return [GlobalBatch(epoch=epoch, index=i, rows=rows) for i, rows in enumerate(batches)]

    def batch_at(self, epoch: int, index: int) -> GlobalBatch:
        return self.epoch(epoch)[index]

    def positions(self, epoch: int = 0, index: int = 0):
        """Yield ``(epoch, index)`` forever, starting at the given position (the resume point)."""
        while True:
            num_batches = len(self.epoch(epoch))
            while index < num_batches:
                yield epoch, index
                index += 1
            epoch, index = epoch + 1, 0


def eval_micro_batches(corpus: TokenizedCorpus, row_length: int, micro_batch_rows: int) -> list[list[int]]:
    """Held-back graphs packed into micro-batches (lists of corpus rows in planned order)."""
    rows = corpus.eval_rows[corpus.lengths[corpus.eval_rows] <= row_length]
    skipped = len(corpus.eval_rows) - len(rows)
    if skipped:
        logger.warning("%d held-back graphs are longer than max_length=%d and are not evaluated", skipped, row_length)
    if len(rows) == 0:
        return []
    packed = pack_rows_first_fit(corpus.lengths[rows], row_length)
    flat_rows = [[int(rows[i]) for i in row] for row in packed]
    return [
        [r for row in flat_rows[i : i + micro_batch_rows] for r in row] for i in range(0, len(flat_rows), micro_batch_rows)
    ]


def build_micro_batch(
    corpus: TokenizedCorpus, rows: Sequence[int], row_length: int, pad_token_id: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Pack the graphs of ``rows`` into a batch dict; also return each graph's domain id.

    Returns:
        ``(batch, sample_domains [N] int64)`` where ``batch`` is the dict of
        ``pack_tokenized_graphs`` (sample ``i`` is corpus row ``rows[i]``).
    """
    graphs = corpus.graphs(rows)
    batch = pack_tokenized_graphs(graphs, token_budget=row_length, pad_token_id=pad_token_id)
    sample_domains = torch.as_tensor(corpus.domains[np.asarray(rows, dtype=np.int64)], dtype=torch.long)
    return batch, sample_domains
