"""Large SMILES files, read as a stream: named corpora, column checks, line numbers, canonical forms.

A pretraining corpus of molecules is a file of SMILES, often millions of lines (MOSES:
1,584,663 drug-like molecules from ZINC). This module never holds such a file in memory: it
yields rows in chunks, each row with the line it came from as a user counts lines in the file
(header = line 1), so an unparsable row can be named and recorded. Parsing, featurization and
tokenization happen elsewhere, in worker processes (:mod:`gfm.training.molecule_corpus`).

Sources:

- a named corpus of the data folder (:data:`SMILES_CORPORA`: ``moses/train``, ``moses/test``,
  ``moses/test_scaffolds``), resolved against ``data_dir`` / ``GFM_DATA_DIR``;
- any CSV / TSV (optionally gzip / bz2 / xz compressed) with a header and a SMILES column;
- any ``.smi`` file (whitespace-separated ``SMILES [name ...]``, no header; RDKit's
  ``Data/NCI/first_5K.smi``).

Why not the dataset registry: a registry dataset is a :class:`~gfm.data.dataset.GraphDataset`
with a task and splits, materialized as ``Data`` objects in memory; an unlabelled corpus of
1.6M molecules has neither a task nor room in memory, so the named SMILES corpora live in their
own small table here.

Canonical SMILES (:func:`canonical_smiles`) compare molecules across files: the leakage check
between a pretraining corpus and the test molecules of MoleculeNet (:func:`split_smiles`) and
the exclusion list that removes them.
"""

from __future__ import annotations

import bz2
import csv
import difflib
import gzip
import io
import lzma
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gfm.utils.io import sha256_file

from .dataset import DataFormatError, DataNotFoundError, UnknownDatasetError

__all__ = [
    "SMILES_CORPORA",
    "SmilesCorpusSpec",
    "SmilesSource",
    "SmilesChunk",
    "SmilesColumnError",
    "resolve_smiles_source",
    "iter_smiles",
    "iter_smiles_chunks",
    "sample_smiles",
    "source_identity",
    "canonical_smiles",
    "stereo_free_canonical",
    "split_smiles",
    "unique_canonical",
]


class SmilesColumnError(DataFormatError):
    """The SMILES column asked for is not in the file; the message lists the columns found."""


@dataclass(frozen=True)
class SmilesCorpusSpec:
    """A named SMILES corpus of the data folder: its file (relative to the folder) and column."""

    file: str
    column: str
    description: str


#: Named SMILES corpora (files of ``$GFM_DATA_DIR``; see ``../shared/data/README.md``).
SMILES_CORPORA: dict[str, SmilesCorpusSpec] = {
    "moses/train": SmilesCorpusSpec(
        "moses/train.csv.gz", "SMILES", "MOSES training set: 1,584,663 drug-like molecules from ZINC Clean Leads"),
    "moses/test": SmilesCorpusSpec("moses/test.csv.gz", "SMILES", "MOSES random test set: 176,075 molecules"),
    "moses/test_scaffolds": SmilesCorpusSpec(
        "moses/test_scaffolds.csv.gz", "SMILES", "MOSES scaffold test set: 176,226 molecules whose scaffolds train lacks"),
}

_SMI_SUFFIXES = (".smi", ".smiles", ".txt")
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass(frozen=True)
class SmilesSource:
    """A resolved SMILES file.

    Attributes:
        path: the file.
        column: CSV: the header name of the SMILES column; ``.smi``: the 0-based field index.
        kind: ``"csv"`` (header line, comma- or tab-separated) or ``"smi"`` (no header,
            whitespace-separated fields).
        name: how messages and manifests call it (the corpus name, or the path).
        delimiter: CSV field separator (``","`` or ``"\\t"``).
    """

    path: Path
    column: str | int
    kind: str
    name: str
    delimiter: str = ","

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "column": self.column, "kind": self.kind,
                "delimiter": self.delimiter}


@dataclass
class SmilesChunk:
    """Consecutive data rows of a SMILES file.

    Attributes:
        first_row: 0-based index of the first row among the file's data rows.
        lines: the file line of each row (1-based; the header is line 1 of a CSV), ``[n]``.
        smiles: the SMILES text of each row (``""`` for an empty cell or blank line), ``[n]``.
    """

    first_row: int
    lines: list[int]
    smiles: list[str]

    def __len__(self) -> int:
        return len(self.smiles)


def _open_text(path: Path) -> io.TextIOBase:
    opener = _COMPRESSED.get(path.suffix.lower())
    if opener is not None:
        return opener(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def resolve_smiles_source(
    source: str | os.PathLike | SmilesSource,
    data_dir: str | os.PathLike | None = None,
    column: str | int | None = None,
) -> SmilesSource:
    """Resolve a corpus name or a file path to a :class:`SmilesSource` and check its SMILES column.

    Args:
        source: a name of :data:`SMILES_CORPORA` (``"moses/train"``) or a path to a CSV / TSV /
            ``.smi`` file (optionally ``.gz``, ``.bz2``, ``.xz``).
        data_dir: the data folder for named corpora (default ``GFM_DATA_DIR``).
        column: the SMILES column: a header name for CSV files (default: the corpus's column, or
            ``"smiles"`` matched case-insensitively), a field index for ``.smi`` files (default 0).

    Raises:
        DataNotFoundError: the file (or the data folder of a named corpus) is missing.
        UnknownDatasetError: a name that is neither a named corpus nor an existing file.
        SmilesColumnError: the column is not in the file's header (columns found are listed).
        DataFormatError: the file is empty or not text.
    """
    if isinstance(source, SmilesSource):
        return source
    text = os.fspath(source)
    if text in SMILES_CORPORA:
        from .registry import DATA_DIR_ENV, resolve_data_dir

        spec = SMILES_CORPORA[text]
        folder = resolve_data_dir(data_dir)
        if folder is None:
            raise DataNotFoundError(
                f"{text} is a file of the real data folder, but none is set: pass data_dir=... or set "
                f"{DATA_DIR_ENV}=../shared/data (gfm never downloads)"
            )
        path = folder / spec.file
        if not path.is_file():
            raise DataNotFoundError(f"{text}: missing file {str(path)!r}; {spec.description}. Put it there (gfm never downloads)")
        return _checked(SmilesSource(path, spec.column if column is None else column, "csv", text))
    path = Path(text).expanduser()
    if not path.is_file():
        if "/" in text and not path.suffix:
            close = difflib.get_close_matches(text, list(SMILES_CORPORA), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
            raise UnknownDatasetError(
                f"unknown SMILES corpus {text!r}: {hint}named corpora are {sorted(SMILES_CORPORA)}; "
                "or pass the path of a CSV / .smi file"
            )
        raise DataNotFoundError(f"SMILES file {str(path)!r} does not exist")
    if _base_suffix(path) in _SMI_SUFFIXES:
        return _checked(SmilesSource(path, 0 if column is None else column, "smi", str(path)))
    delimiter = "\t" if _base_suffix(path) == ".tsv" else ","
    return _checked(SmilesSource(path, column, "csv", str(path), delimiter))


def _read_header(source: SmilesSource) -> list[str]:
    try:
        with _open_text(source.path) as handle:
            for row in csv.reader(handle, delimiter=source.delimiter):
                if row and any(cell.strip() for cell in row):
                    return [cell.strip() for cell in row]
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
        raise DataFormatError(
            f"{source.path}: not a readable text file ({type(err).__name__}: {err}); a SMILES CSV holds a header "
            "line naming its columns, then one molecule per line (gzip-compressed when the name ends in .gz)"
        ) from err
    raise DataFormatError(
        f"{source.path}: the file is empty; a SMILES CSV holds a header line naming its columns, then one molecule per line"
    )


def _checked(source: SmilesSource) -> SmilesSource:
    """Check the column against the file (header of a CSV; field index of a .smi) and normalize it."""
    if source.kind == "smi":
        if not isinstance(source.column, int) or source.column < 0:
            raise SmilesColumnError(
                f"{source.path}: a .smi file has no header, so its SMILES column is a field index (0 = first field), "
                f"got {source.column!r}; pass column=0"
            )
        return source
    header = _read_header(source)
    wanted = source.column
    if wanted is None:
        matches = [c for c in header if c.lower() == "smiles"]
        if not matches:
            raise SmilesColumnError(
                f"{source.path}: no SMILES column: expected a column named 'smiles' (any case), the header has "
                f"{len(header)} columns: {_shown(header)}; pass column=<the column holding the SMILES>"
            )
        wanted = matches[0]
    if isinstance(wanted, int):
        if not 0 <= wanted < len(header):
            raise SmilesColumnError(
                f"{source.path}: column index {wanted} is out of range: the header has {len(header)} columns: "
                f"{_shown(header)}"
            )
        wanted = header[wanted]
    if wanted not in header:
        same_but_case = [c for c in header if c.lower() == str(wanted).lower()]
        close = difflib.get_close_matches(str(wanted), header, n=3, cutoff=0.6)
        if same_but_case:
            hint = f"{same_but_case[0]!r} differs only in case: pass column={same_but_case[0]!r}"
        elif close:
            hint = f"did you mean {', '.join(repr(c) for c in close)}? pass column=<the column holding the SMILES>"
        else:
            hint = "pass column=<the column holding the SMILES>"
        raise SmilesColumnError(
            f"{source.path}: no column {wanted!r} (the SMILES column expected); the header has {len(header)} "
            f"columns: {_shown(header)}; {hint}"
        )
    return SmilesSource(source.path, wanted, source.kind, source.name, source.delimiter)


def _shown(columns: list[str]) -> list[str]:
    return columns if len(columns) <= 20 else columns[:20] + [f"... {len(columns) - 20} more"]


def iter_smiles(source: SmilesSource) -> Iterator[tuple[int, str]]:
    """Yield ``(line, smiles)`` for every data row of the file, streaming (constant memory).

    ``line`` is the 1-based line where the row starts, as a user counts lines in the file. A
    blank line or an empty cell yields ``""`` (the caller records it as skipped, never drops it
    silently). Trailing blank lines at the end of the file are not rows.
    """
    source = resolve_smiles_source(source)
    try:
        with _open_text(source.path) as handle:
            if source.kind == "smi":
                yield from _smi_rows(handle, int(source.column))
            else:
                yield from _csv_rows(handle, source)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
        raise DataFormatError(f"{source.path}: cannot be read to the end ({type(err).__name__}: {err}); restore the file") from err


def _smi_rows(handle: io.TextIOBase, column: int) -> Iterator[tuple[int, str]]:
    blank: list[int] = []
    for line_number, line in enumerate(handle, start=1):
        fields = line.split()
        if not fields:
            blank.append(line_number)
            continue
        for pending in blank:  # blank lines inside the file are rows without a SMILES
            yield pending, ""
        blank.clear()
        yield line_number, fields[column] if column < len(fields) else ""


def _csv_rows(handle: io.TextIOBase, source: SmilesSource) -> Iterator[tuple[int, str]]:
    reader = csv.reader(handle, delimiter=source.delimiter)
    index = None
    previous_end = 0
    blank: list[int] = []
    for record in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if not record or not any(cell.strip() for cell in record):
            if index is not None:
                blank.append(start)
            continue
        if index is None:
            index = [cell.strip() for cell in record].index(str(source.column))
            continue
        for pending in blank:
            yield pending, ""
        blank.clear()
        yield start, record[index].strip() if index < len(record) else ""


def iter_smiles_chunks(source: SmilesSource, chunk_size: int, limit: int | None = None) -> Iterator[SmilesChunk]:
    """The file's rows in chunks of ``chunk_size`` (the last may be shorter); at most ``limit`` rows."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    lines: list[int] = []
    smiles: list[str] = []
    first = 0
    for count, (line, text) in enumerate(iter_smiles(source)):
        if limit is not None and count >= limit:
            break
        lines.append(line)
        smiles.append(text)
        if len(smiles) == chunk_size:
            yield SmilesChunk(first, lines, smiles)
            first += len(smiles)
            lines, smiles = [], []
    if smiles:
        yield SmilesChunk(first, lines, smiles)


def sample_smiles(source: SmilesSource, size: int, seed: int = 0) -> SmilesChunk:
    """A seeded uniform sample of ``size`` rows (reservoir sampling over one pass; rows in file order).

    Used to train a tokenizer's merges on part of a corpus without reading all of it into memory.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    reservoir: list[tuple[int, int, str]] = []
    for count, (line, text) in enumerate(iter_smiles(source)):
        if count < size:
            reservoir.append((count, line, text))
        else:
            slot = int(rng.integers(0, count + 1))
            if slot < size:
                reservoir[slot] = (count, line, text)
    reservoir.sort()
    return SmilesChunk(0, [line for _, line, _ in reservoir], [text for _, _, text in reservoir])


def source_identity(path: str | os.PathLike, hash_contents: bool = True) -> dict[str, Any]:
    """What identifies a source file's content: resolved path, size, modification time, SHA-256."""
    path = Path(path)
    stat = path.stat()
    identity: dict[str, Any] = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if hash_contents:
        identity["sha256"] = sha256_file(path)
    return identity


_STEREO_OR_ISOTOPE = ("@", "/", "\\")


def canonical_smiles(smiles: str, isomeric: bool = True) -> str | None:
    """RDKit's canonical SMILES of ``smiles`` (``None`` when RDKit cannot parse it).

    Args:
        isomeric: keep stereochemistry and isotopes (``False``: the stereo-free form, so the
            stereoisomers of a molecule compare equal).
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol, isomericSmiles=isomeric)


def _has_isomeric_marks(smiles: str) -> bool:
    if any(mark in smiles for mark in _STEREO_OR_ISOTOPE):
        return True
    # an isotope is written as digits right after '[' ([13C], [2H])
    return any(smiles[i + 1 : i + 2].isdigit() for i in range(len(smiles) - 1) if smiles[i] == "[")


def stereo_free_canonical(canonical: str) -> str:
    """The stereo-free canonical form of an (isomeric) canonical SMILES.

    A canonical SMILES without stereo or isotope marks is already its own stereo-free form
    (no RDKit call); others are parsed and written again without them.
    """
    if not _has_isomeric_marks(canonical):
        return canonical
    return canonical_smiles(canonical, isomeric=False) or canonical


def split_smiles(
    name: str, split: str = "test", data_dir: str | os.PathLike | None = None, **options: Any
) -> list[str]:
    """The SMILES of one split of a registry molecule dataset (``"moleculenet/hiv"``), in split order.

    The split is the dataset's own (MoleculeNet: the deterministic scaffold split 80/10/10), so
    these are exactly the molecules that fine-tuning scores.
    """
    from .registry import load

    dataset = load(name, data_dir=data_dir, **options)
    if split not in dataset.splits:
        raise DataFormatError(f"{name}: no split {split!r}; it has {sorted(dataset.splits)}")
    out = []
    for index in dataset.splits[split].tolist():
        text = getattr(dataset.graphs[index], "name", None)
        if not isinstance(text, str):
            raise DataFormatError(f"{name}: graph {index} carries no SMILES in `name`; split_smiles needs a SMILES dataset")
        out.append(text)
    return out


def unique_canonical(smiles: Iterable[str], isomeric: bool = False) -> tuple[set[str], list[str]]:
    """Canonical forms of ``smiles`` as a set, and the SMILES RDKit could not parse (listed, not dropped)."""
    found: set[str] = set()
    unparsable: list[str] = []
    for text in smiles:
        canonical = canonical_smiles(text, isomeric=isomeric)
        if canonical is None:
            unparsable.append(text)
        else:
            found.add(canonical)
    return found, unparsable
