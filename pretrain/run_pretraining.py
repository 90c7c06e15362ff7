"""Pretrain a gfm model on a tokenized multi-domain corpus.

One process::

    python pretrain/run_pretraining.py --config configs/pretrain/tiny.yaml

Several processes (DDP, or DeepSpeed ZeRO 1/2/3; gloo on CPU, NCCL on GPU)::

    accelerate launch --config_file configs/accelerate/zero2_cpu.yaml \\
        pretrain/run_pretraining.py --config configs/pretrain/tiny.yaml --world_size 2

The ``deepspeed`` launcher::

    deepspeed --num_gpus 2 pretrain/run_pretraining.py --config configs/pretrain/small.yaml \\
        --deepspeed_config configs/deepspeed/zero2.json --world_size 2

Any config key can be overridden as ``--key value`` (YAML syntax). ``--help`` lists every key.
"""

from __future__ import annotations

import json
import sys

from gfm.training import format_summary, run_pretraining
from gfm.training.config import ARGUMENT_CLASSES, PretrainConfig
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    cli = ConfigArgumentParser(ARGUMENT_CLASSES, prog="python pretrain/run_pretraining.py", description=__doc__,
                               config_help="YAML run config (configs/pretrain/*.yaml)")
    cli.add_argument("--local_rank", type=int, default=None,
                     help="set by the deepspeed launcher; the process rank is read from the environment")
    return cli


def main(argv: list[str] | None = None) -> dict | None:
    (model, data, objective, training), options = parser().parse_config(argv)
    setup_logging()
    summary = run_pretraining(PretrainConfig(model, data, objective, training, source=options.config))
    if summary and summary.get("stopped_early"):
        print(f"stopped after step {summary['steps']} (stop_after_steps); checkpoint of step "
              f"{summary['checkpoint_step']}; continue with --resume_from_checkpoint latest")
    elif summary:  # main process only
        print(f"\nexported model + tokenizer: {summary['export_dir']}")
        print(f"steps {summary['steps']}, tokens {summary['tokens_seen']:,}, {summary['wall_seconds']:.0f} s, "
              f"{summary['world_size']} process(es), {summary['distributed_type']}")
        print(format_summary(summary["losses"]))
        print(json.dumps({"falling_in_every_domain": all(
            v["last"] < v["first"] for v in summary["losses"].get("eval", {}).values())}))
    return summary


if __name__ == "__main__":
    sys.exit(run_main(main))
