"""The standard molecule transfer protocol: six MoleculeNet sets, scaffold split, ROC-AUC, several seeds.

::

    python finetune/run_molecule_benchmark.py --config configs/finetune/protocols/moleculenet_scaffold.yaml
    python finetune/run_molecule_benchmark.py --config configs/finetune/protocols/moleculenet_scaffold.yaml \\
        --methods '[full, lora, scratch]' --pretrained runs/pretrain/molecules/export

Runs every method (fingerprint + logistic regression / random forest, GIN from scratch, and the gfm
methods full / lora / linear_probe / scratch from a checkpoint) for every seed on every dataset
(:mod:`gfm.pipelines.molecule_benchmark`), appending each finished run to
``<output_dir>/runs.jsonl`` (a re-run continues where it stopped), and prints the table of test
ROC-AUC. Every option is a field of ``MoleculeBenchmarkConfig``; ``--help`` lists them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gfm.pipelines.molecule_benchmark import (
    MoleculeBenchmarkConfig,
    format_benchmark_tables,
    run_molecule_benchmark,
    write_benchmark_report,
)
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser(MoleculeBenchmarkConfig, prog="python finetune/run_molecule_benchmark.py",
                                description=__doc__, config_help="YAML config (configs/finetune/protocols/*.yaml)")


def main(argv: list[str] | None = None) -> list:
    (config,), options = parser().parse_config(argv)
    setup_logging()
    started = time.perf_counter()
    runs, facts = run_molecule_benchmark(config)
    paths = write_benchmark_report(runs, facts, config, name=Path(options.config).stem,
                                   seconds=time.perf_counter() - started)
    print(format_benchmark_tables(runs, facts))
    print(f"report: {paths['markdown']}  runs: {Path(config.output_dir) / 'runs.jsonl'}")
    return runs


if __name__ == "__main__":
    sys.exit(run_main(main))
