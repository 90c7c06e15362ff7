"""A pretraining corpus of molecules in one call: tokenizer, sharded corpus, leakage check.

The library side of ``tokenizers/build_molecule_corpus.py``:

1. the tokenizer: the one named by ``tokenizer``, or an Eulerian tokenizer trained on a seeded
   sample of the source (``tokenizer_sample_size`` molecules; every RDKit feature value gets a
   token, merges learned on the sample), saved to ``tokenizer_output_dir`` and reused by later
   runs with the same sample options;
2. the exclusion list (optional): the test molecules of the fine-tuning datasets named in
   ``exclude_test_sets`` (stereo-free canonical SMILES of their scaffold-split test parts), so a
   corpus can be built without them;
3. the corpus: :func:`gfm.training.molecule_corpus.build_molecule_corpus` (streamed, parallel,
   sharded, resumable);
4. the leakage check (:func:`count_leakage`): how many test molecules of each fine-tuning
   dataset are in the corpus, by canonical SMILES, exactly and ignoring stereochemistry.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from gfm.data.smiles_corpus import (
    canonical_smiles,
    resolve_smiles_source,
    source_identity,
    split_smiles,
    stereo_free_canonical,
)
from gfm.training.molecule_corpus import (
    MoleculeCorpusBuild,
    build_molecule_corpus,
    corpus_column,
    sequence_lengths,
    train_molecule_tokenizer,
)
from gfm.utils.config import ConfigError
from gfm.utils.io import atomic_write_json
from gfm.utils.tables import format_markdown_table

__all__ = [
    "MoleculeCorpusArguments",
    "MoleculeCorpusReport",
    "LeakageCount",
    "MOLECULENET_CLASSIFICATION",
    "run_molecule_corpus",
    "prepare_molecule_tokenizer",
    "leakage_exclusion_list",
    "protocol_test_smiles",
    "count_leakage",
    "format_leakage_table",
    "format_corpus_report",
]

logger = logging.getLogger(__name__)

#: the six MoleculeNet classification sets of the transfer protocol (Hu et al. 2020; GraphMAE)
MOLECULENET_CLASSIFICATION = (
    "moleculenet/hiv", "moleculenet/tox21", "moleculenet/toxcast", "moleculenet/muv", "moleculenet/sider",
    "moleculenet/clintox",
)
_SAMPLE_RECORD = "gfm_tokenizer_sample.json"


@dataclass
class MoleculeCorpusArguments:
    """Every option of ``tokenizers/build_molecule_corpus.py`` (one flat YAML mapping)."""

    source: str = field(default="moses/train", metadata={"help": "A named SMILES corpus (moses/train, moses/test, "
                                                                  "moses/test_scaffolds) or a CSV / .smi file."})
    column: Optional[str] = field(default=None, metadata={"help": "SMILES column of a CSV (default: the corpus's, or "
                                                                   "'smiles' in any case)."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Real data folder (default: GFM_DATA_DIR)."})
    output_dir: str = field(default="runs/corpora/moses-train", metadata={"help": "The corpus folder (Arrow shards + "
                                                                                  "manifest)."})
    tokenizer: Optional[str] = field(default=None, metadata={"help": "A trained tokenizer directory; unset: train one on "
                                                                      "a sample of the source."})
    tokenizer_output_dir: str = field(default="runs/tokenizers/moses-eulerian", metadata={
        "help": "Where a tokenizer trained here is saved (and reused from, when its sample options match)."})
    tokenizer_sample_size: int = field(default=50_000, metadata={"help": "Molecules (seeded sample) the tokenizer and its "
                                                                          "merges are trained on."})
    seed: int = field(default=0, metadata={"help": "Seed of the tokenizer's sample."})
    merges: Optional[str] = field(default="bpe", metadata={"help": "None, 'bpe' or 'unigram' (SentencePiece).",
                                                            "choices": ("bpe", "unigram")})
    num_merges: int = field(default=8000, metadata={"help": "Merged tokens to learn (a soft limit)."})
    max_piece_length: int = field(default=64, metadata={"help": "Longest merged token, in base tokens."})
    shard_size: int = field(default=50_000, metadata={"help": "Source rows per Arrow shard (and per worker task)."})
    chunk_size: int = field(default=1_000, metadata={"help": "Molecules per Arrow record batch (bounds worker memory)."})
    num_workers: int = field(default=2, metadata={"help": "Worker processes (0: all in this process)."})
    limit: Optional[int] = field(default=None, metadata={"help": "Read only the first `limit` rows of the source."})
    canonical: bool = field(default=True, metadata={"help": "Store RDKit canonical SMILES (the leakage check reads them)."})
    exclude_test_sets: list[str] = field(default_factory=list, metadata={
        "help": "Registry names (moleculenet/hiv, ...) whose scaffold-split test molecules are left out of the corpus."})
    leakage_check: list[str] = field(default_factory=list, metadata={
        "help": "Registry names whose test molecules are counted in the corpus after the build (e.g. the six "
                "MoleculeNet classification sets)."})
    test_split: str = field(default="hu2020", metadata={
        "help": "Which test molecules exclude_test_sets and leakage_check mean: 'hu2020' (Hu et al.'s scaffold "
                "split, the protocol's) or 'registry' (the loader's split).", "choices": ("hu2020", "registry")})
    max_skipped_fraction: float = field(default=0.01, metadata={"help": "A shard with a larger share of unparsable rows "
                                                                         "is an error."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an output_dir written by another tokenizer or with "
                                                             "other options."})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm bar with molecules/s."})
    length_sample: int = field(default=10_000, metadata={"help": "Molecules of the tokenizer sample whose tokens per "
                                                                  "molecule (with and without merges) are reported."})

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.chunk_size < 1:
            raise ConfigError(f"shard_size and chunk_size must be >= 1, got {self.shard_size} and {self.chunk_size}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass
class LeakageCount:
    """Test molecules of one fine-tuning dataset found in a pretraining corpus.

    Attributes:
        dataset: registry name.
        test_molecules: rows of its test split.
        unparsable: test SMILES RDKit cannot canonicalize (not counted as found).
        exact: test rows whose canonical (isomeric) SMILES is a corpus molecule's.
        stereo_free: test rows whose stereo-free canonical SMILES is a corpus molecule's (>= exact).
    """

    dataset: str
    test_molecules: int
    unparsable: int
    exact: int
    stereo_free: int


@dataclass
class MoleculeCorpusReport:
    """What :func:`run_molecule_corpus` made."""

    tokenizer_dir: Path
    tokenizer_trained: bool
    build: MoleculeCorpusBuild
    lengths: dict[str, np.ndarray] = field(default_factory=dict)
    excluded_test_molecules: int | None = None
    leakage: list[LeakageCount] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------
def prepare_molecule_tokenizer(args: MoleculeCorpusArguments) -> tuple[Any, Path, bool, list]:
    """The tokenizer of the corpus: given, reused from ``tokenizer_output_dir``, or trained now.

    Returns:
        ``(tokenizer, directory, trained_now, sample graphs or [])``.
    """
    from gfm.tokenization.eulerian import EulerianTokenizer

    if args.tokenizer is not None:
        return EulerianTokenizer.from_pretrained(args.tokenizer), Path(args.tokenizer), False, []
    source = resolve_smiles_source(args.source, data_dir=args.data_dir, column=args.column)
    identity = source_identity(source.path)
    wanted = {"source": {"name": source.name, "column": source.column, "size": identity["size"],
                         "sha256": identity["sha256"]},
              "sample_size": args.tokenizer_sample_size, "seed": args.seed, "merges": args.merges,
              "num_merges": args.num_merges, "max_piece_length": args.max_piece_length}
    directory = Path(args.tokenizer_output_dir)
    record = directory / _SAMPLE_RECORD
    if (directory / "tokenizer_config.json").is_file() and record.is_file():
        try:
            same = json.loads(record.read_text()) == wanted
        except (OSError, ValueError):
            same = False
        if same:
            logger.info("reusing the tokenizer in %s (same source, sample and merge options)", directory)
            return EulerianTokenizer.from_pretrained(directory), directory, False, []
    tokenizer, graphs = train_molecule_tokenizer(
        source, sample_size=args.tokenizer_sample_size, seed=args.seed, merges=args.merges, num_merges=args.num_merges,
        max_piece_length=args.max_piece_length, num_workers=max(args.num_workers, 1),
    )
    tokenizer.save_pretrained(directory)
    atomic_write_json(record, wanted)
    logger.info("trained a tokenizer on %d molecules of %s: vocab %d, saved to %s", len(graphs), source.name,
                tokenizer.vocab_size, directory)
    return tokenizer, directory, True, graphs


# ---------------------------------------------------------------------------------------------
# leakage
# ---------------------------------------------------------------------------------------------
def protocol_test_smiles(name: str, data_dir: str | os.PathLike | None = None, split: str = "hu2020") -> list[str]:
    """The test molecules of a fine-tuning dataset under the protocol's split.

    Args:
        split: ``"hu2020"``: Hu et al.'s scaffold split (what the molecule protocol scores);
            ``"registry"``: the dataset loader's own split.
    """
    if split == "registry":
        return split_smiles(name, "test", data_dir=data_dir)
    if split != "hu2020":
        raise ConfigError(f"split={split!r}; use 'hu2020' or 'registry'")
    from gfm.data.registry import load
    from gfm.data.scaffold_protocol import hu_scaffold_split

    dataset = load(name, data_dir=data_dir)
    names = [graph.name for graph in dataset.graphs]
    return [names[i] for i in hu_scaffold_split(names)["test"].tolist()]


def _test_forms(names: Sequence[str], data_dir: str | os.PathLike | None,
                split: str = "hu2020") -> dict[str, list[tuple[str | None, str | None]]]:
    """Per dataset: ``(isomeric canonical, stereo-free canonical)`` of each test row (``None``: unparsable)."""
    forms = {}
    for name in names:
        rows = []
        for text in protocol_test_smiles(name, data_dir, split):
            isomeric = canonical_smiles(text)
            rows.append((isomeric, None if isomeric is None else stereo_free_canonical(isomeric)))
        forms[name] = rows
    return forms


def leakage_exclusion_list(names: Sequence[str], data_dir: str | os.PathLike | None = None,
                           split: str = "hu2020") -> list[str]:
    """Stereo-free canonical SMILES of the test molecules of ``names`` (sorted, unique): the filter list
    that :func:`~gfm.training.molecule_corpus.build_molecule_corpus` (``exclude=``) leaves out."""
    forms = _test_forms(names, data_dir, split)
    return sorted({free for rows in forms.values() for _, free in rows if free is not None})


def count_leakage(corpus_dir: str | os.PathLike, names: Sequence[str],
                  data_dir: str | os.PathLike | None = None, split: str = "hu2020") -> list[LeakageCount]:
    """Count the test molecules (of the ``split``, see :func:`protocol_test_smiles`) of each dataset of
    ``names`` that a molecule corpus holds.

    The corpus's ``canonical_smiles`` column is streamed shard by shard (only the test molecules,
    a few thousand per dataset, are held in sets), so the check costs one pass over the column.
    """
    forms = _test_forms(names, data_dir, split)
    isomeric_wanted = {iso for rows in forms.values() for iso, _ in rows if iso is not None}
    free_wanted = {free for rows in forms.values() for _, free in rows if free is not None}
    found_isomeric: set[str] = set()
    found_free: set[str] = set()
    for batch in corpus_column(corpus_dir, "canonical_smiles"):
        for form in batch:
            if form in isomeric_wanted:
                found_isomeric.add(form)
            free = stereo_free_canonical(form)
            if free in free_wanted:
                found_free.add(free)
    counts = []
    for name, rows in forms.items():
        counts.append(LeakageCount(
            dataset=name,
            test_molecules=len(rows),
            unparsable=sum(iso is None for iso, _ in rows),
            exact=sum(iso is not None and iso in found_isomeric for iso, _ in rows),
            stereo_free=sum(free is not None and free in found_free for _, free in rows),
        ))
    return counts


def format_leakage_table(counts: Sequence[LeakageCount]) -> str:
    header = ["dataset", "test molecules", "in corpus (canonical SMILES)", "in corpus (stereo-free)", "share",
              "unparsable"]
    rows = [[c.dataset, f"{c.test_molecules:,}", f"{c.exact:,}", f"{c.stereo_free:,}",
             f"{100 * c.stereo_free / max(c.test_molecules, 1):.2f}%", c.unparsable] for c in counts]
    return format_markdown_table(header, rows)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def run_molecule_corpus(args: MoleculeCorpusArguments) -> MoleculeCorpusReport:
    """Tokenizer, optional exclusion list, corpus build, optional leakage count (module docstring)."""
    tokenizer, tokenizer_dir, trained, graphs = prepare_molecule_tokenizer(args)
    lengths = sequence_lengths(tokenizer, graphs[: args.length_sample]) if graphs and args.length_sample else {}
    del graphs  # the sample is not needed any more; forked workers would inherit it
    gc.collect()
    exclude = None
    if args.exclude_test_sets:
        exclude = leakage_exclusion_list(args.exclude_test_sets, args.data_dir, args.test_split)
        logger.info("leaving out %d test molecules of %s", len(exclude), ", ".join(args.exclude_test_sets))
    build = build_molecule_corpus(
        args.source, tokenizer, args.output_dir, data_dir=args.data_dir, column=args.column, shard_size=args.shard_size,
        chunk_size=args.chunk_size, num_workers=args.num_workers, limit=args.limit, canonical=args.canonical,
        exclude=exclude, max_skipped_fraction=args.max_skipped_fraction, overwrite=args.overwrite,
        progress=args.progress,
    )
    leakage = (count_leakage(build.directory, args.leakage_check, args.data_dir, args.test_split)
               if args.leakage_check else [])
    if leakage:
        atomic_write_json(build.directory / "leakage.json", [asdict(c) for c in leakage])
    return MoleculeCorpusReport(tokenizer_dir, trained, build, lengths, None if exclude is None else len(exclude), leakage)


def _length_cells(values: np.ndarray) -> list[str]:
    return [f"{values.mean():.1f}", f"{np.median(values):.0f}", f"{np.percentile(values, 95):.0f}", f"{values.max()}"]


def format_corpus_report(report: MoleculeCorpusReport) -> str:
    """Where everything went, the corpus figures (rows, tokens, time, memory) and the leakage table."""
    manifest = report.build.manifest
    totals, build = manifest["totals"], manifest["build"]
    lines = [
        f"tokenizer: {report.tokenizer_dir} ({'trained now' if report.tokenizer_trained else 'reused'}; vocab "
        f"{manifest['tokenizer']['vocab_size']}, hash {manifest['tokenizer']['hash'][:12]})",
        f"corpus: {report.build.directory}",
        format_markdown_table(
            ["source rows", "molecules", "skipped", "excluded", "shards (built / reused)", "tokens / molecule",
             "seconds", "molecules/s", "peak RSS (sum)", "peak PSS (sum)", "workers", "CPU"],
            [[f"{totals['source_rows']:,}", f"{totals['rows']:,}", totals["skipped"], totals["excluded"],
              f"{totals['shards']} ({build['built_shards']} / {build['reused_shards']})",
              f"{totals['tokens'] / max(totals['rows'], 1):.1f}", f"{build['seconds']:.1f}",
              f"{build['molecules_per_second']:,.0f}", f"{build['peak_rss_bytes'] / 2**20:,.0f} MiB",
              f"{build['peak_pss_bytes'] / 2**20:,.0f} MiB", build["num_workers"], f"{build['cpu']} x{build['cpu_count']}"]],
        ),
    ]
    if report.lengths:
        base, merged = report.lengths["base"], report.lengths["merged"]
        lines.append(format_markdown_table(
            ["tokens per molecule", "mean", "median", "p95", "max"],
            [["without merges", *_length_cells(base)], ["with merges", *_length_cells(merged)]],
        ) + f"\n(on {len(base):,} molecules of the tokenizer's sample)")
    if report.excluded_test_molecules is not None:
        lines.append(f"exclusion list: {report.excluded_test_molecules:,} test molecules; {totals['excluded']:,} corpus "
                     "rows left out (listed by line in the manifest)")
    if report.leakage:
        lines.append(format_leakage_table(report.leakage))
    return "\n".join(lines)
