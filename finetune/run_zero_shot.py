"""Zero-shot transfer under a declared access, with label propagation, SVD probe and random-init controls.

::

    python finetune/run_zero_shot.py --config configs/zero_shot/planetoid.yaml

Every config key can be overridden as ``--key value`` (YAML syntax). The run writes
``<output_dir>/<name>.md`` (one table per access level: runs with different access are never
compared), one PNG per access level, and ``<name>.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gfm.evaluation.zero_shot import write_zero_shot_report
from gfm.pipelines.zero_shot import ZeroShotConfig, run_zero_shot
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser(ZeroShotConfig, prog="python finetune/run_zero_shot.py", description=__doc__,
                                config_help="YAML config (configs/zero_shot/*.yaml)")


def main(argv: list[str] | None = None) -> list:
    (config,), options = parser().parse_config(argv)
    setup_logging()
    results = run_zero_shot(config)
    paths = write_zero_shot_report(results, config.output_dir, name=Path(options.config).stem)
    print(Path(paths["markdown"]).read_text())
    print(f"report: {paths['markdown']}  plots: {', '.join(str(p) for p in paths['plots'])}")
    return results


if __name__ == "__main__":
    sys.exit(run_main(main))
