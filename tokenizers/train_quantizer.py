"""Train the quantized graph tokenizer on a multi-domain corpus and report what it learned.

    python tokenizers/train_quantizer.py --config configs/tokenizers/quantized_multidomain.yaml

The YAML holds the fields of ``QuantizedTokenizerConfig`` (tokenizer) and of
``TrainQuantizerArguments`` (recipe, :mod:`gfm.pipelines.quantizer_training`), read by gfm's one
config path (``gfm.utils.config.ConfigArgumentParser``: ``--help`` lists every key; any key can be
overridden as ``--key value``, e.g. ``--output_dir runs/q``). Data comes from ``data_dir`` or
``GFM_DATA_DIR``. The script prints:

1. per quantizer level: codebook utilization, perplexity, codes shared across domains;
2. linear probes (one-hot codes per level vs raw features vs random codes) on the node and
   graph probe datasets;
3. a dataset left out of training (a feature width never seen) encoded without retraining;
4. save -> reload -> re-encode: identical codes (exit status 1 otherwise);
5. the wall time of every stage.
"""

from __future__ import annotations

import sys

from gfm.pipelines.quantizer_training import TrainQuantizerArguments, format_quantizer_report, train_quantizer
from gfm.tokenization.quantized import QuantizedTokenizerConfig
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser((QuantizedTokenizerConfig, TrainQuantizerArguments),
                                prog="python tokenizers/train_quantizer.py", description=__doc__,
                                config_help="YAML config (configs/tokenizers/quantized_*.yaml)")


def main(argv: list[str] | None = None) -> int:
    (config, args), _ = parser().parse_config(argv)
    setup_logging()
    report = train_quantizer(config, args)
    print(format_quantizer_report(report))
    return 0 if report.identical else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
