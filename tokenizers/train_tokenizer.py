"""Train an Eulerian tokenizer on registry datasets and tokenize them into a corpus cache.

    python tokenizers/train_tokenizer.py --config configs/tokenizers/eulerian_tiny.yaml
    python tokenizers/train_tokenizer.py --config configs/tokenizers/eulerian_tiny.yaml --num_merges 200

Trains one vocabulary (plus SentencePiece merges when ``merges`` is set) across every dataset
of ``datasets``, saves it to ``output_dir``, tokenizes the corpus once into ``cache_dir`` (the
cache pretraining reads) and prints a table of sequence lengths and positions per edge, without
and with merges (:mod:`gfm.pipelines.tokenizer_training`). Every option is a field of
``TokenizerTrainingArguments``; ``--help`` lists them and any can be overridden as ``--key value``.
"""

from __future__ import annotations

import sys

from gfm.pipelines.tokenizer_training import (
    TokenizerTrainingArguments,
    format_tokenizer_report,
    train_tokenizer,
)
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser(TokenizerTrainingArguments, prog="python tokenizers/train_tokenizer.py",
                                description=__doc__, config_help="YAML config (configs/tokenizers/eulerian_*.yaml)")


def main(argv: list[str] | None = None) -> int:
    (args,), _ = parser().parse_config(argv)
    setup_logging()
    print(format_tokenizer_report(train_tokenizer(args)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
