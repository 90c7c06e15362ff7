"""Train the quantized graph tokenizer on registry datasets and measure what it learned.

The library side of ``tokenizers/train_quantizer.py``:

1. loads every dataset of ``datasets`` by registry name (``gfm.data``; the data folder from
   ``data_dir`` or ``GFM_DATA_DIR``), multi-graph datasets cut to a seeded subset of
   ``max_graphs_per_dataset`` graphs (:meth:`gfm.data.dataset.GraphDataset.subset`);
2. trains one :class:`~gfm.tokenization.quantized.QuantizedTokenizer` across all of them and
   writes it with ``save_pretrained`` to ``output_dir``;
3. measures, per quantizer level, codebook utilization, perplexity and codes shared across
   domains (computed by ``train`` over every node of the corpus);
4. runs the linear probes of :mod:`gfm.tokenization.quantized.evaluation` (one-hot codes per
   level vs raw features vs random codes) on the node and graph probe datasets;
5. encodes a dataset left out of training (a feature width never seen) without retraining;
6. reloads the saved tokenizer and re-encodes: the codes must be identical;

and times every stage. :func:`format_quantizer_report` prints all of it as markdown tables.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from gfm.data.dataset import GraphDataset
from gfm.data.registry import load
from gfm.tokenization.input_space import feature_schema_key
from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig
from gfm.tokenization.quantized.evaluation import PROBE_TABLE_HEADER, graph_probe, node_probe
from gfm.utils.config import ConfigError
from gfm.utils.tables import format_markdown_table

__all__ = [
    "QuantizerTrainingReport",
    "TrainQuantizerArguments",
    "format_quantizer_report",
    "train_quantizer",
]

logger = logging.getLogger(__name__)

_LOSS_TERMS = ("reconstruction", "latent", "dgi", "link", "commitment", "total")


@dataclass
class TrainQuantizerArguments:
    """Recipe settings of ``tokenizers/train_quantizer.py`` (the tokenizer's own are ``QuantizedTokenizerConfig``)."""

    datasets: list[str] = field(
        default_factory=lambda: [
            "moleculenet/tox21",
            "planetoid/cora",
            "karateclub/github",
            "tu/PROTEINS",
            "kg/codex-m",
        ],
        metadata={"help": "registry names of the training corpus (gfm.data.available())"},
    )
    data_dir: Optional[str] = field(default=None, metadata={"help": "data folder (default: GFM_DATA_DIR)"})
    data_cache_dir: Optional[str] = field(
        default=None, metadata={"help": "gfm.data Arrow cache (fast reloads)"}
    )
    output_dir: str = field(
        default="outputs/tokenizers/quantized", metadata={"help": "where to save the tokenizer"}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace a tokenizer already saved there"}
    )
    max_graphs_per_dataset: int = field(
        default=0, metadata={"help": "seeded subset of multi-graph datasets (0: all)"}
    )
    probe_node_dataset: Optional[str] = field(default="planetoid/cora", metadata={"help": "node-level probe"})
    probe_graph_dataset: Optional[str] = field(default="tu/PROTEINS", metadata={"help": "graph-level probe"})
    probe_random_split_seed: int = field(default=0, metadata={"help": "seed of the 60/20/20 node split"})
    unseen_dataset: Optional[str] = field(
        default="hetero/chameleon", metadata={"help": "left out of training"}
    )
    reload_check_graphs: int = field(
        default=100, metadata={"help": "graphs per dataset re-encoded after reload"}
    )
    reload_check_max_nodes: int = field(
        default=20_000, metadata={"help": "larger graphs skip the reload check"}
    )
    progress: bool = field(default=True, metadata={"help": "tqdm progress bars"})


@dataclass
class QuantizerTrainingReport:
    """What :func:`train_quantizer` made and measured (the rows of every table it prints).

    Attributes:
        tokenizer: the trained tokenizer (also saved in ``directory``).
        directory: where ``save_pretrained`` wrote it.
        corpus: the training datasets by registry name (subsets when ``max_graphs_per_dataset`` cut them).
        probes: rows under ``PROBE_TABLE_HEADER`` (node probes, then the graph probe).
        unseen: the left-out dataset's row (name, schema, schema seen, nodes, sequences, codes
            used per level), or ``None`` when no ``unseen_dataset`` was given.
        reload: directory, graphs re-encoded, content hash, hash after reload, identical codes.
        identical: whether the reloaded tokenizer gave the same codes on every re-encoded graph.
        timings: ``[stage, seconds]`` rows, the last one the total.
    """

    tokenizer: QuantizedTokenizer
    directory: Path
    corpus: dict[str, GraphDataset]
    probes: list[list[object]]
    unseen: list[object] | None
    reload: list[object]
    identical: bool
    timings: list[list[object]]


def _check_arguments(args: TrainQuantizerArguments) -> Path:
    output_dir = Path(args.output_dir)
    if (output_dir / "tokenizer_config.json").exists() and not args.overwrite_output_dir:
        raise ConfigError(
            f"output_dir {output_dir} already holds a tokenizer; set overwrite_output_dir: true or pick another output_dir"
        )
    if args.unseen_dataset and args.unseen_dataset in args.datasets:
        raise ConfigError(f"unseen_dataset {args.unseen_dataset!r} is in the training datasets; it must be left out")
    return output_dir


def _probe_rows(tokenizer: QuantizedTokenizer, corpus: dict[str, GraphDataset], args: TrainQuantizerArguments):
    """Probe rows on the probe datasets: the corpus copy when it is whole, else the dataset loaded again."""

    def whole(name: str) -> GraphDataset:
        dataset = corpus.get(name)
        if dataset is None or "subset" in dataset.info:
            dataset = load(name, args.data_dir, cache_dir=args.data_cache_dir)
        return dataset

    rows = []
    if args.probe_node_dataset:
        rows += [r.as_row() for r in node_probe(tokenizer, whole(args.probe_node_dataset), args.probe_random_split_seed)]
    if args.probe_graph_dataset:
        rows.append(graph_probe(tokenizer, whole(args.probe_graph_dataset), args.probe_random_split_seed).as_row())
    return rows


def _unseen_row(tokenizer: QuantizedTokenizer, name: str, args: TrainQuantizerArguments) -> list[object]:
    """Encode a dataset left out of training: its codes and the context sequences of its first 100 nodes."""
    unseen = load(name, args.data_dir, cache_dir=args.data_cache_dir)
    graph = unseen.graphs[0]
    schema = feature_schema_key(graph)
    codes = torch.cat(tokenizer.node_codes_many(unseen.graphs))
    contexts = tokenizer.encode_nodes(graph, list(range(min(100, int(graph.num_nodes)))))
    for sequence in contexts:
        sequence.validate(vocab_size=tokenizer.vocab_size)
    levels = codes.shape[1]
    return [unseen.name, schema, "yes" if schema in tokenizer.projector.continuous_stats else "no", codes.shape[0],
            len(contexts), *[int(codes[:, level].unique().numel()) for level in range(levels)]]


def train_quantizer(config: QuantizedTokenizerConfig, args: TrainQuantizerArguments) -> QuantizerTrainingReport:
    """Train, save and measure a quantized tokenizer (see the module docstring).

    Raises:
        ConfigError: ``output_dir`` already holds a tokenizer (without ``overwrite_output_dir``),
            or ``unseen_dataset`` is one of the training datasets.
    """
    output_dir = _check_arguments(args)
    started = time.perf_counter()
    timings: list[list[object]] = []

    def lap(stage: str, since: float) -> None:
        timings.append([stage, time.perf_counter() - since])

    since = time.perf_counter()
    corpus = {
        name: load(name, args.data_dir, cache_dir=args.data_cache_dir).subset(args.max_graphs_per_dataset or None, config.seed)
        for name in args.datasets
    }
    lap("load corpus", since)

    since = time.perf_counter()
    tokenizer = QuantizedTokenizer.train(corpus, config, progress=args.progress)
    lap("train (input space + epochs)", since)
    tokenizer.save_pretrained(output_dir)

    since = time.perf_counter()
    probes = _probe_rows(tokenizer, corpus, args)
    if probes:
        lap("linear probes", since)

    unseen = None
    if args.unseen_dataset:
        since = time.perf_counter()
        unseen = _unseen_row(tokenizer, args.unseen_dataset, args)
        lap("encode unseen dataset", since)

    since = time.perf_counter()
    reloaded = QuantizedTokenizer.from_pretrained(output_dir)
    checked = [
        graph
        for dataset in corpus.values()
        for graph in dataset.graphs[: args.reload_check_graphs]
        if int(graph.num_nodes) <= args.reload_check_max_nodes
    ]
    identical = all(
        torch.equal(a, b) for a, b in zip(reloaded.node_codes_many(checked), tokenizer.node_codes_many(checked))
    )
    lap("reload + re-encode", since)
    reload = [str(output_dir), len(checked), tokenizer.content_hash[:16], reloaded.content_hash[:16],
              "yes" if identical else "NO"]
    lap("total", started)
    if not identical:
        logger.error("%s: the reloaded tokenizer gives other codes than the trained one", output_dir)
    return QuantizerTrainingReport(tokenizer, output_dir, corpus, probes, unseen, reload, identical, timings)


def format_quantizer_report(report: QuantizerTrainingReport) -> str:
    """Every table of the recipe, each under its title: corpus, training log, codebook usage, codes per
    dataset, linear probes, the unseen dataset, save / reload, wall time."""
    tokenizer = report.tokenizer
    statistics = tokenizer.corpus_statistics
    num_levels = len(statistics["levels"])
    sections = [
        ("Training corpus",
         ["dataset", "domain", "graphs", "nodes", "feature schema of graph 0"],
         [[name, d.domain, len(d.graphs), sum(int(g.num_nodes) for g in d.graphs), feature_schema_key(d.graphs[0])]
          for name, d in report.corpus.items()]),
        ("Training log (mean per epoch)",
         ["epoch", "quantized", "seconds", *_LOSS_TERMS],
         [[r["epoch"], r["quantized"], r["seconds"], *[r.get(t, "-") for t in _LOSS_TERMS]]
          for r in tokenizer.training_log]),
        # codebook usage over every node of the corpus, computed by ``train`` (the same codes as encode)
        (f"Codebook usage on the training corpus ({statistics['nodes']} nodes, "
         f"{statistics['levels'][0]['num_domains']} domains)",
         ["level", "codes", "used", "utilization %", "perplexity", "shared by >=2 domains", "shared by all domains"],
         [[s["level"], s["codebook_size"], s["used"], 100 * s["utilization"], s["perplexity"], s["shared_by_two"],
           s["shared_by_all"]] for s in statistics["levels"]]),
        ("Distinct codes per dataset",
         ["dataset", "domain", "nodes", *[f"level {level}" for level in range(num_levels)]],
         [[d["dataset"], d["domain"], d["nodes"], *d["distinct_codes"]] for d in statistics["datasets"]]),
    ]
    if report.probes:
        sections.append(("Linear probes: test accuracy % (logistic regression, L2 picked on the validation split)",
                         list(PROBE_TABLE_HEADER), report.probes))
    if report.unseen is not None:
        sections.append(("Unseen feature width (no retraining)",
                         ["dataset", "feature schema", "schema seen in training", "nodes encoded", "context sequences",
                          *[f"codes used L{level}" for level in range(num_levels)]],
                         [report.unseen]))
    sections += [
        ("Save / reload / re-encode",
         ["directory", "graphs re-encoded", "content hash", "hash after reload", "identical codes"], [report.reload]),
        ("Wall time (s)", ["stage", "seconds"], report.timings),
    ]
    return "\n".join(f"\n{title}\n{format_markdown_table(header, rows)}" for title, header, rows in sections)
