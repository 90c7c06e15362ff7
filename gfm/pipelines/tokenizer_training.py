"""Train an Eulerian tokenizer on registry datasets and tokenize them into a corpus cache.

The library side of ``tokenizers/train_tokenizer.py``:

1. loads every dataset of ``datasets`` by registry name (``gfm.data``; the data folder from
   ``data_dir`` or ``GFM_DATA_DIR``) in its pretraining view: graph-level datasets give their
   graphs, single-graph datasets give seeded k-hop ego graphs (:func:`gfm.training.corpus.corpus_graphs`);
2. trains one vocabulary across all of them (``EulerianTokenizer.train``), plus SentencePiece
   merges when ``merges`` is set, and writes it with ``save_pretrained`` to ``output_dir``; every
   categorical value of each *whole* dataset gets a token, not only the sample's (every relation
   of a knowledge graph: :func:`gfm.tokenization.eulerian.dataset_categorical_values`), so a
   corpus sampled with another seed encodes with the same tokenizer;
3. tokenizes the corpus once into ``cache_dir`` as an Arrow table of ``TokenizedGraph.to_dict()``
   rows (:func:`gfm.training.corpus.build_tokenized_corpus`: the cache the pretraining recipe
   reads, keyed by datasets, options and tokenizer hash, so pretraining with the same options
   reuses it);
4. measures, per dataset, graphs, sequence lengths and positions per edge without and with
   merges (:func:`format_tokenizer_report` prints them as one table).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from transformers import set_seed

from gfm.data import load
from gfm.data.molecules import molecule_feature_values
from gfm.tokenization.eulerian import EulerianTokenizer, dataset_categorical_values, merge_categorical_values
from gfm.training.corpus import build_tokenized_corpus, corpus_graphs
from gfm.utils.config import ConfigError
from gfm.utils.tables import format_markdown_table

__all__ = [
    "DatasetLengths",
    "TokenizerTrainingArguments",
    "TokenizerTrainingReport",
    "edge_count",
    "format_tokenizer_report",
    "train_tokenizer",
]

logger = logging.getLogger(__name__)


@dataclass
class TokenizerTrainingArguments:
    """Every option of ``tokenizers/train_tokenizer.py`` (one flat YAML mapping)."""

    datasets: list[str] = field(
        default_factory=list, metadata={"help": "gfm.data registry names, e.g. ['moleculenet/hiv', 'tu/PROTEINS']."}
    )
    output_dir: str = field(default="runs/tokenizers/eulerian", metadata={"help": "Where save_pretrained writes."})
    cache_dir: Optional[str] = field(
        default="runs/tokenized_cache", metadata={"help": "Where the tokenized corpus goes; unset: no corpus."}
    )
    data_dir: Optional[str] = field(default=None, metadata={"help": "Real data folder (default: GFM_DATA_DIR)."})
    max_graphs_per_dataset: Optional[int] = field(
        default=None, metadata={"help": "At most this many graphs / ego graphs per dataset (seeded choice)."}
    )
    ego_num_hops: int = field(default=2, metadata={"help": "k of the k-hop ego graphs of single-graph datasets."})
    ego_max_neighbors: int = field(default=8, metadata={"help": "Neighbour cap per node and hop of ego graphs."})
    max_feature_width: int = field(
        default=32, metadata={"help": "Continuous attribute tables wider than this are left out (reported)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the graph choice and ego sampling (use the pretraining seed)."})
    num_index_tokens: int = field(default=512, metadata={"help": "Single-token node labels; larger ones use several."})
    continuous_decimals: int = field(default=4, metadata={"help": "Declared precision of continuous attributes."})
    continuous_base: int = field(default=1000, metadata={"help": "Base of the digit tokens of continuous values."})
    merges: Optional[str] = field(
        default=None, metadata={"help": "None, 'bpe' or 'unigram' (SentencePiece).", "choices": ("bpe", "unigram")}
    )
    all_molecule_values: bool = field(
        default=True,
        metadata={"help": "Give every value of the RDKit atom / bond features a token (molecules domain), so "
                          "molecules of any dataset encode without <unk>, not only values the corpus holds."},
    )
    num_merges: int = field(default=8000, metadata={"help": "Merged tokens to learn (a soft limit)."})
    max_piece_length: int = field(default=64, metadata={"help": "Longest merged token, in base tokens."})
    merges_max_graphs: Optional[int] = field(
        default=None, metadata={"help": "Train merges on at most this many graphs (the first of the corpus)."}
    )

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ConfigError("config key 'datasets' is empty; list gfm.data registry names to train on")


@dataclass
class DatasetLengths:
    """Sequence lengths of one dataset's graphs: ``base`` without merges, ``merged`` with them (int64 [G] each)."""

    name: str
    edges: int
    base: np.ndarray
    merged: np.ndarray


@dataclass
class TokenizerTrainingReport:
    """What :func:`train_tokenizer` made: the tokenizer, where it and the corpus went, lengths per dataset."""

    tokenizer: EulerianTokenizer
    directory: Path
    corpus_dir: Path | None
    datasets: list[DatasetLengths]


def edge_count(graph) -> int:
    """Edges of a graph: arcs of a directed graph; undirected pairs (self-loops listed once) otherwise."""
    if graph.edge_index is None:
        return 0
    entries = int(graph.edge_index.shape[1])
    if getattr(graph, "directed", False):
        return entries
    loops = int((graph.edge_index[0] == graph.edge_index[1]).sum())
    return (entries + loops) // 2


def train_tokenizer(args: TokenizerTrainingArguments) -> TokenizerTrainingReport:
    """Train, save and measure the tokenizer, and write the tokenized corpus (see the module docstring)."""
    set_seed(args.seed)
    corpus: dict[str, list] = {}
    # every categorical value of each whole dataset (every relation of a knowledge graph) gets a token,
    # not only those of this seed's sample: a corpus sampled with another seed encodes too
    declared = [molecule_feature_values()] if args.all_molecule_values else []
    for name in args.datasets:
        graphs, record = corpus_graphs(name, args.data_dir, args.max_graphs_per_dataset, args.seed,
                                       args.ego_num_hops, args.ego_max_neighbors, args.max_feature_width)
        corpus[name] = graphs
        dataset = load(name, data_dir=args.data_dir)  # after corpus_graphs, which checks the name first
        declared.append(dataset_categorical_values(dataset.graphs, domain=dataset.domain))
        logger.info("%s: %d graphs (%s, domain %s)", name, len(graphs), record["kind"], record["domain"])
    everything = [graph for graphs in corpus.values() for graph in graphs]
    tokenizer = EulerianTokenizer.train(
        everything,
        num_index_tokens=args.num_index_tokens,
        continuous_decimals=args.continuous_decimals,
        continuous_base=args.continuous_base,
        merges=args.merges,
        num_merges=args.num_merges,
        max_piece_length=args.max_piece_length,
        merges_max_graphs=args.merges_max_graphs,
        declared_values=merge_categorical_values(*declared),
    )
    directory = Path(tokenizer.save_pretrained(args.output_dir))

    lengths = []
    for name, graphs in corpus.items():
        base = np.asarray([len(t) for t in tokenizer.encode_batch(graphs, use_merges=False)], dtype=np.int64)
        merged = (np.asarray([len(t) for t in tokenizer.encode_batch(graphs)], dtype=np.int64)
                  if tokenizer.merges is not None else base)
        lengths.append(DatasetLengths(name, sum(edge_count(g) for g in graphs), base, merged))

    corpus_dir = None
    if args.cache_dir:
        corpus_dir = Path(build_tokenized_corpus(
            args.datasets, tokenizer, cache_dir=args.cache_dir, data_dir=args.data_dir,
            max_graphs_per_dataset=args.max_graphs_per_dataset, seed=args.seed, ego_num_hops=args.ego_num_hops,
            ego_max_neighbors=args.ego_max_neighbors, max_feature_width=args.max_feature_width,
        ))
    return TokenizerTrainingReport(tokenizer, directory, corpus_dir, lengths)


def _length_summary(lengths: np.ndarray) -> str:
    if len(lengths) == 0:
        return "no graphs"
    return (f"mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, p95 {np.percentile(lengths, 95):.0f}, "
            f"max {lengths.max()}")


def format_tokenizer_report(report: TokenizerTrainingReport) -> str:
    """Where the tokenizer and the corpus went, then one table: graphs, lengths, positions per edge, compression."""
    tokenizer = report.tokenizer
    merges = f"{tokenizer.merges.model_type}, {tokenizer.merges.num_merged} merged tokens" if tokenizer.merges else "none"
    lines = [
        f"tokenizer: {report.directory}  (vocab {tokenizer.vocab_size}: {tokenizer.base_vocab_size} base; "
        f"merges: {merges}; hash {tokenizer.content_hash[:12]})",
        f"corpus cache: {report.corpus_dir if report.corpus_dir else 'not written (cache_dir unset)'}",
    ]
    header = ["dataset", "graphs", "sequence length" + (" (merged)" if tokenizer.merges else ""),
              "positions/edge", "with merges", "compression"]
    rows = []
    totals = np.zeros(3)
    for d in report.datasets:
        base, merged = d.base.sum(), d.merged.sum()
        totals += (base, merged, d.edges)
        rows.append([d.name, f"{len(d.base):,}", _length_summary(d.merged), f"{base / max(d.edges, 1):.2f}",
                     f"{merged / max(d.edges, 1):.2f}", f"{base / max(merged, 1):.2f}x"])
    rows.append(["all", f"{sum(len(d.base) for d in report.datasets):,}", "", f"{totals[0] / max(totals[2], 1):.2f}",
                 f"{totals[1] / max(totals[2], 1):.2f}", f"{totals[0] / max(totals[1], 1):.2f}x"])
    return "\n".join([*lines, format_markdown_table(header, rows)])
