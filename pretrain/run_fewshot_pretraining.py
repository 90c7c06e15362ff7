"""Episodic multi-graph pretraining of the in-context few-shot model (one CPU process).

::

    GFM_DATA_DIR=/path/to/data python pretrain/run_fewshot_pretraining.py --config configs/fewshot/pretrain.yaml

Writes ``<output_dir>/metrics.csv`` (loss and accuracy per step and episode kind, validation
accuracy), an atomic ``<output_dir>/checkpoint`` (resumed from when present) and the model
``<output_dir>/model`` (``InContextModel.from_pretrained`` / ``AutoModel.from_pretrained``). A
corpus that names an evaluation graph is refused before anything is read. Any config key can be
overridden as ``--key value``; ``--help`` lists every key.
"""

from __future__ import annotations

import json
import sys

from gfm.training.episodes import FewshotPretrainConfig, run_fewshot_pretraining
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser(FewshotPretrainConfig, prog="python pretrain/run_fewshot_pretraining.py",
                                description=__doc__, config_help="YAML config (configs/fewshot/pretrain.yaml)")


def main(argv: list[str] | None = None) -> dict:
    (config,), _ = parser().parse_config(argv)
    setup_logging()
    summary = run_fewshot_pretraining(config)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    sys.exit(run_main(main))
