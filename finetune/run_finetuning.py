"""Fine-tune a pretrained gfm model on one task: LoRA / full / linear probe, baselines, controls.

::

    python finetune/run_finetuning.py --config configs/finetune/cora.yaml
    python finetune/run_finetuning.py --config configs/finetune/cora.yaml --seeds '[0]' --epochs 2
    python finetune/run_finetuning.py --config configs/finetune/user_graph.yaml --pretrained <checkpoint>
    python finetune/run_finetuning.py --pretrained <checkpoint> \
        --dataset csv:edges=my/edges.csv,nodes=my/nodes.csv,label=club

Your own graph: ``--dataset csv:edges=<path>,nodes=<path>,label=<column>`` or the keys ``edges_csv``,
``nodes_csv``, ``label_column`` (a config file is then optional).

Every config key can be overridden as ``--key value`` (YAML syntax). The run writes
``<output_dir>/<name>.md`` (summary table + every run), ``<name>.png`` (bar plot) and
``<name>.json`` (all results, with loss curves); LoRA adapters go to ``<output_dir>/adapters``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gfm.evaluation.reports import markdown_table, write_report
from gfm.pipelines.finetune import FinetuneConfig, ego_graph_section, run_finetuning
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser(FinetuneConfig, prog="python finetune/run_finetuning.py", description=__doc__,
                                config_help="YAML config (configs/finetune/*.yaml); optional when the keys are given "
                                            "on the command line", config_required=False)


def main(argv: list[str] | None = None) -> list:
    (config,), options = parser().parse_config(argv)
    setup_logging()
    results = run_finetuning(config)
    name = Path(options.config).stem if options.config else "finetune"
    title = f"fine-tuning: {config.dataset_name}"
    paths = write_report(results, config.output_dir, name=name, title=title)
    print(markdown_table(results, title=title))
    section = ego_graph_section(results)
    if section:
        with Path(paths["markdown"]).open("a") as report:
            report.write("\n" + section)
        print(section)
    for run in results:
        if run.method == "lora" and run.total_parameters:
            print(f"LoRA seed {run.seed}: {run.trainable_parameters:,} of {run.total_parameters:,} parameters trained "
                  f"({100 * run.trainable_parameters / run.total_parameters:.2f}%)")
    print(f"report: {paths['markdown']}  plot: {paths['plot']}")
    return results


if __name__ == "__main__":
    sys.exit(run_main(main))
