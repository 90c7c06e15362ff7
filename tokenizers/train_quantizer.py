"""Train the quantized graph tokenizer on a multi-domain corpus and report what it learned.

    python tokenizers/train_quantizer.py --config configs/tokenizers/quantized_multidomain.yaml

The YAML holds the fields of ``QuantizedTokenizerConfig`` (tokenizer) and of
``TrainQuantizerArguments`` below (recipe), read by gfm's one config path
(``gfm.utils.config.ConfigArgumentParser``: ``--help`` lists every key; any key can be overridden
as ``--key value``, e.g. ``--output_dir runs/q``). Data comes from ``data_dir`` or ``GFM_DATA_DIR``.
The script prints:

1. per quantizer level: codebook utilization, perplexity, codes shared across domains;
2. linear probes (one-hot codes per level vs raw features vs random codes) on the node and
   graph probe datasets;
3. a dataset left out of training (a feature width never seen) encoded without retraining;
4. save -> reload -> re-encode: identical codes;
5. the wall time of every stage.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

import gfm.data
from gfm.tokenization.input_space import feature_schema_key
from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig
from gfm.tokenization.quantized.evaluation import PROBE_TABLE_HEADER, graph_probe, node_probe
from gfm.utils.config import ConfigArgumentParser, ConfigError
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging
from gfm.utils.tables import format_markdown_table


@dataclass
class TrainQuantizerArguments:
    """Recipe settings (the tokenizer's own settings are ``QuantizedTokenizerConfig``)."""

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


def _table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}")
    print(format_markdown_table(header, rows))


def _load(name: str, data_dir: str | None, max_graphs: int, seed: int, cache_dir: str | None = None):
    dataset = gfm.data.load(name, data_dir, cache_dir=cache_dir)
    if max_graphs and len(dataset.graphs) > max_graphs:
        generator = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(dataset.graphs), generator=generator)[:max_graphs].sort().values.tolist()
        dataset.graphs = [dataset.graphs[i] for i in keep]
        dataset.splits = {}
    return dataset


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser((QuantizedTokenizerConfig, TrainQuantizerArguments),
                                prog="python tokenizers/train_quantizer.py", description=__doc__,
                                config_help="YAML config (configs/tokenizers/quantized_*.yaml)")


def main(argv: list[str] | None = None) -> int:
    (config, args), _ = parser().parse_config(argv)
    setup_logging()
    started = time.perf_counter()
    timings: list[list[object]] = []

    output_dir = Path(args.output_dir)
    if (output_dir / "tokenizer_config.json").exists() and not args.overwrite_output_dir:
        raise ConfigError(
            f"output_dir {output_dir} already holds a tokenizer; set overwrite_output_dir: true or pick another output_dir"
        )
    if args.unseen_dataset and args.unseen_dataset in args.datasets:
        raise ConfigError(f"unseen_dataset {args.unseen_dataset!r} is in the training datasets; it must be left out")

    stage = time.perf_counter()
    corpus = {
        name: _load(name, args.data_dir, args.max_graphs_per_dataset, config.seed, args.data_cache_dir)
        for name in args.datasets
    }
    timings.append(["load corpus", time.perf_counter() - stage])
    _table(
        "Training corpus",
        ["dataset", "domain", "graphs", "nodes", "feature schema of graph 0"],
        [
            [
                n,
                d.domain,
                len(d.graphs),
                sum(int(g.num_nodes) for g in d.graphs),
                feature_schema_key(d.graphs[0]),
            ]
            for n, d in corpus.items()
        ],
    )

    stage = time.perf_counter()
    tokenizer = QuantizedTokenizer.train(corpus, config, progress=args.progress)
    train_seconds = time.perf_counter() - stage
    timings.append(["train (input space + epochs)", train_seconds])
    tokenizer.save_pretrained(output_dir)
    _table(
        "Training log (mean per epoch)",
        [
            "epoch",
            "quantized",
            "seconds",
            *[t for t in ("reconstruction", "latent", "dgi", "link", "commitment", "total")],
        ],
        [
            [
                r["epoch"],
                r["quantized"],
                r["seconds"],
                *[r.get(t, "-") for t in ("reconstruction", "latent", "dgi", "link", "commitment", "total")],
            ]
            for r in tokenizer.training_log
        ],
    )

    # Codebook usage over every node of the corpus, computed by ``train`` (same codes as encode).
    statistics = tokenizer.corpus_statistics
    _table(
        f"Codebook usage on the training corpus ({statistics['nodes']} nodes, "
        f"{statistics['levels'][0]['num_domains']} domains)",
        [
            "level",
            "codes",
            "used",
            "utilization %",
            "perplexity",
            "shared by >=2 domains",
            "shared by all domains",
        ],
        [
            [
                s["level"],
                s["codebook_size"],
                s["used"],
                100 * s["utilization"],
                s["perplexity"],
                s["shared_by_two"],
                s["shared_by_all"],
            ]
            for s in statistics["levels"]
        ],
    )
    _table(
        "Distinct codes per dataset",
        ["dataset", "domain", "nodes", *[f"level {lv}" for lv in range(config.num_levels)]],
        [[d["dataset"], d["domain"], d["nodes"], *d["distinct_codes"]] for d in statistics["datasets"]],
    )

    stage = time.perf_counter()
    rows = []
    if args.probe_node_dataset:
        dataset = corpus.get(args.probe_node_dataset) or gfm.data.load(
            args.probe_node_dataset, args.data_dir, cache_dir=args.data_cache_dir
        )
        rows += [r.as_row() for r in node_probe(tokenizer, dataset, args.probe_random_split_seed)]
    if args.probe_graph_dataset:
        dataset = corpus.get(args.probe_graph_dataset)
        if dataset is None or not dataset.splits:
            dataset = gfm.data.load(args.probe_graph_dataset, args.data_dir, cache_dir=args.data_cache_dir)
        rows += [graph_probe(tokenizer, dataset, args.probe_random_split_seed).as_row()]
    if rows:
        timings.append(["linear probes", time.perf_counter() - stage])
        _table(
            "Linear probes: test accuracy % (logistic regression, L2 picked on the validation split)",
            list(PROBE_TABLE_HEADER),
            rows,
        )

    if args.unseen_dataset:
        stage = time.perf_counter()
        unseen = gfm.data.load(args.unseen_dataset, args.data_dir, cache_dir=args.data_cache_dir)
        graph = unseen.graphs[0]
        schema = feature_schema_key(graph)
        fitted = schema in tokenizer.projector.continuous_stats
        unseen_codes = torch.cat(tokenizer.node_codes_many(unseen.graphs))
        contexts = tokenizer.encode_nodes(graph, list(range(min(100, int(graph.num_nodes)))))
        for sequence in contexts:
            sequence.validate(vocab_size=tokenizer.vocab_size)
        seconds = time.perf_counter() - stage
        timings.append(["encode unseen dataset", seconds])
        _table(
            "Unseen feature width (no retraining)",
            [
                "dataset",
                "feature schema",
                "schema seen in training",
                "nodes encoded",
                "context sequences",
                *[f"codes used L{lv}" for lv in range(config.num_levels)],
            ],
            [
                [
                    unseen.name,
                    schema,
                    "yes" if fitted else "no",
                    unseen_codes.shape[0],
                    len(contexts),
                    *[int(unseen_codes[:, lv].unique().numel()) for lv in range(config.num_levels)],
                ]
            ],
        )

    stage = time.perf_counter()
    reloaded = QuantizedTokenizer.from_pretrained(output_dir)
    checked = [
        g
        for dataset in corpus.values()
        for g in dataset.graphs[: args.reload_check_graphs]
        if int(g.num_nodes) <= args.reload_check_max_nodes
    ]
    identical = all(
        torch.equal(a, b)
        for a, b in zip(reloaded.node_codes_many(checked), tokenizer.node_codes_many(checked))
    )
    timings.append(["reload + re-encode", time.perf_counter() - stage])
    _table(
        "Save / reload / re-encode",
        ["directory", "graphs re-encoded", "content hash", "hash after reload", "identical codes"],
        [
            [
                str(output_dir),
                len(checked),
                tokenizer.content_hash[:16],
                reloaded.content_hash[:16],
                "yes" if identical else "NO",
            ]
        ],
    )
    timings.append(["total", time.perf_counter() - started])
    _table("Wall time (s)", ["stage", "seconds"], timings)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
