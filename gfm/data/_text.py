"""Reading numeric text tables with exact line accounting (TU files, edge lists).

pandas parses the bulk quickly; when it fails, or a value is missing, a line-by-line scan finds
the first bad line so the error names the file, the line number and what is wrong.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import DataFormatError

__all__ = ["read_numeric_lines", "count_lines"]


def _lines(path: Path) -> list[bytes]:
    lines = path.read_bytes().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


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
