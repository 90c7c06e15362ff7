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
from gfm.pipelines.zero_shot import ZeroShotConfig, load_zero_shot_config, run_zero_shot
from gfm.training.config import parse_overrides
from gfm.utils.config import config_argument_parser
from gfm.utils.logging import setup_logging


def main(argv: list[str] | None = None) -> list:
    parser = config_argument_parser(ZeroShotConfig, __doc__.splitlines()[0], "YAML config (configs/zero_shot/*.yaml)")
    args, rest = parser.parse_known_args(argv)
    setup_logging()
    config = load_zero_shot_config(args.config, parse_overrides(rest))
    results = run_zero_shot(config)
    paths = write_zero_shot_report(results, config.output_dir, name=Path(args.config).stem)
    print(Path(paths["markdown"]).read_text())
    print(f"report: {paths['markdown']}  plots: {', '.join(str(p) for p in paths['plots'])}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
