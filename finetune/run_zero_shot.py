"""Zero-shot transfer under a declared access, with label propagation, SVD probe and random-init controls.

::

    python finetune/run_zero_shot.py --config configs/zero_shot/planetoid.yaml
    python finetune/run_zero_shot.py --config configs/zero_shot/user_graph.yaml --pretrained <checkpoint>
    python finetune/run_zero_shot.py --pretrained <checkpoint> --labels_per_class '[3]' \
        --datasets '["csv:edges=my/edges.csv,nodes=my/nodes.csv,label=club"]'

Your own graph: a ``csv:edges=<path>,nodes=<path>,label=<column>`` entry in ``datasets``, or the keys
``edges_csv``, ``nodes_csv``, ``label_column`` (a config file is then optional).

Every config key can be overridden as ``--key value`` (YAML syntax). The run writes
``<output_dir>/<name>.md`` (one table per access level: runs with different access are never
compared), one PNG per access level, and ``<name>.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gfm.evaluation.zero_shot import write_zero_shot_report
from gfm.pipelines.finetune import ego_graph_section
from gfm.pipelines.zero_shot import ZeroShotConfig, run_zero_shot
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser(ZeroShotConfig, prog="python finetune/run_zero_shot.py", description=__doc__,
                                config_help="YAML config (configs/zero_shot/*.yaml); optional when the keys are given "
                                            "on the command line", config_required=False)


def main(argv: list[str] | None = None) -> list:
    (config,), options = parser().parse_config(argv)
    setup_logging()
    results = run_zero_shot(config)
    paths = write_zero_shot_report(results, config.output_dir,
                                   name=Path(options.config).stem if options.config else "zero_shot")
    section = ego_graph_section(results)
    if section:
        with Path(paths["markdown"]).open("a") as report:
            report.write("\n" + section)
    print(Path(paths["markdown"]).read_text())
    print(f"report: {paths['markdown']}  plots: {', '.join(str(p) for p in paths['plots'])}")
    return results


if __name__ == "__main__":
    sys.exit(run_main(main))
