"""Tokenize a large SMILES file (MOSES: 1.58M molecules) into a sharded, memory-mapped pretraining corpus.

    python tokenizers/build_molecule_corpus.py --config configs/tokenizers/moses_corpus.yaml
    python tokenizers/build_molecule_corpus.py --config configs/tokenizers/moses_corpus.yaml --limit 50000 \\
        --output_dir runs/corpora/moses-50k

Trains an Eulerian tokenizer on a seeded sample of the source (or uses ``--tokenizer DIR``),
then parses, featurizes and tokenizes every molecule in worker processes into Arrow shards with
a manifest (:mod:`gfm.pipelines.molecule_corpus`). A re-run reuses finished shards, so a killed
build resumes. Point pretraining at the folder with ``tokenized_corpus: <output_dir>``. Every
option is a field of ``MoleculeCorpusArguments``; ``--help`` lists them.
"""

from __future__ import annotations

import sys

from gfm.pipelines.molecule_corpus import MoleculeCorpusArguments, format_corpus_report, run_molecule_corpus
from gfm.utils.config import ConfigArgumentParser
from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging


def parser() -> ConfigArgumentParser:
    return ConfigArgumentParser(MoleculeCorpusArguments, prog="python tokenizers/build_molecule_corpus.py",
                                description=__doc__, config_help="YAML config (configs/tokenizers/moses_corpus.yaml)")


def main(argv: list[str] | None = None) -> int:
    (args,), _ = parser().parse_config(argv)
    setup_logging()
    print(format_corpus_report(run_molecule_corpus(args)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
