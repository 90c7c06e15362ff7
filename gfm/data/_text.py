"""Reading numeric text tables with exact line accounting (TU files, edge lists, CSV tables).

pandas parses the bulk quickly; when it fails, or a value is missing, a line-by-line scan finds
the first bad line so the error names the file, the line number and what is wrong.
:func:`row_location` turns a pandas row number back into the line a user sees in the file.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import DataFormatError

__all__ = ["read_numeric_lines", "count_lines", "csv_row_lines", "row_location", "is_parquet"]


def _lines(path: Path) -> list[bytes]:
    lines = path.read_bytes().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _open_text(path: Path) -> io.TextIOBase:
    """The file as text, decompressed by its suffix as ``pandas.read_csv`` does (gz, bz2, xz)."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower())
    if opener is not None:
        return opener(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def csv_row_lines(path: Path) -> list[int]:
    """The file line (1-based, header = line 1 when it opens the file) where each data row of
    a CSV starts, as ``pandas.read_csv`` numbers the rows: blank lines are skipped, a quoted
    field may span lines. Reads the whole file: call it only to word an error."""
    starts: list[int] = []
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        previous_end = 0
        header_seen = False
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line: pandas skips it
            if not header_seen:
                header_seen = True
                continue
            starts.append(start)
    return starts


def row_location(path: Path, row: int) -> str:
    """How an error names data row ``row`` (0-based, as pandas counts) of a CSV or Parquet
    table: ``"line 7"`` (the line in the file, header = line 1) or ``"row 5 (counting from 0)"``."""
    if is_parquet(path):
        return f"row {row} (counting from 0)"
    try:
        lines = csv_row_lines(path)
    except (OSError, csv.Error, EOFError):
        lines = []
    return f"line {lines[row]}" if row < len(lines) else f"line {row + 2}"


def count_lines(path: Path) -> int:
    """Number of lines, ignoring trailing blank lines."""
    return len(_lines(path))


def read_numeric_lines(path: Path, dtype: type, what: str, fix: str = "") -> np.ndarray:
    """Read a comma-separated numeric file: one row per line, the same number of values per line.

    Args:
        path: the file.
        dtype: ``np.int64`` or ``np.float64``.
        what: how to describe one line in errors (``"one line per node"``).
        fix: extra advice appended to errors.

    Returns:
        ``[lines, columns]`` array of ``dtype``.

    Raises:
        DataFormatError: naming the file and the first bad line (blank line inside the file,
            non-numeric or missing value, differing number of values).
    """
    lines = _lines(path)
    if not lines:
        return np.zeros((0, 1), dtype=dtype)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataFormatError(
                f"{path}: line {number} is blank inside the file ({what}); remove it so lines and items line up. {fix}"
            )
    try:
        frame = pd.read_csv(
            io.BytesIO(b"\n".join(lines)),
            header=None,
            sep=",",
            skipinitialspace=True,
            dtype=np.float64,
            skip_blank_lines=False,
            engine="c",
        )
        values = frame.to_numpy()
    except (ValueError, pd.errors.ParserError):
        _raise_first_bad_line(path, lines, dtype, what, fix)
        raise  # unreachable: the scan always finds the line pandas refused
    if values.shape[0] != len(lines) or np.isnan(values).any():
        _raise_first_bad_line(path, lines, dtype, what, fix)
    if dtype is np.int64 or dtype == np.int64:
        as_int = values.astype(np.int64)
        if not np.array_equal(as_int, values):
            row = int(np.nonzero((as_int != values).any(1))[0][0])
            raise DataFormatError(
                f"{path}: line {row + 1} holds a non-integer value {lines[row].decode(errors='replace')!r} where "
                f"integer ids are expected ({what}). {fix}"
            )
        return as_int
    return values.astype(dtype)


def _raise_first_bad_line(path: Path, lines: list[bytes], dtype: type, what: str, fix: str) -> None:
    width = None
    for number, raw in enumerate(lines, start=1):
        fields = [f.strip() for f in raw.decode(errors="replace").split(",")]
        if width is None:
            width = len(fields)
        if len(fields) != width:
            raise DataFormatError(
                f"{path}: line {number} has {len(fields)} values but line 1 has {width} ({what}): "
                f"{raw.decode(errors='replace')!r}. {fix}"
            )
        for value in fields:
            try:
                parsed = float(value)
            except ValueError:
                raise DataFormatError(
                    f"{path}: line {number} holds {value!r}, not a number ({what}). {fix}"
                ) from None
            if parsed != parsed:  # NaN
                raise DataFormatError(
                    f"{path}: line {number} holds a missing/NaN value ({what}); fill it in the source. {fix}"
                )
    raise DataFormatError(f"{path}: could not be parsed as numbers ({what}). {fix}")
