"""Markdown tables for reports, recipes and benchmarks: one formatter, so every table reads the same.

:func:`format_markdown_table` returns a GitHub-flavoured markdown table whose columns are padded
to their widest cell, so it reads as a table in a terminal too::

    | dataset | nodes | accuracy % |
    |---------|-------|------------|
    | cora    | 2708  | 81.3000    |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["format_markdown_table", "format_cell"]


def format_cell(value: object, float_format: str = ".4f") -> str:
    """One cell's text: floats with ``float_format``, anything else with ``str``; ``|`` escaped as ``\\|``.

    Newlines become spaces (a markdown row is one line); nothing else is changed or shortened.
    """
    text = format(value, float_format) if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def format_markdown_table(
    header: Sequence[object], rows: Iterable[Sequence[object]], float_format: str = ".4f"
) -> str:
    """A markdown table of ``rows`` under ``header``, columns padded to their widest cell.

    Args:
        header: the column titles (``C`` of them).
        rows: each a sequence of ``C`` cells (any objects; see :func:`format_cell`).
        float_format: format spec of float cells (``".4f"``: four decimals).

    Returns:
        The table as lines joined by ``"\\n"`` (no trailing newline): header, separator, rows.

    Raises:
        ValueError: a row has more or fewer cells than the header (the row and both counts are
            named), since silently dropping or padding cells would misplace the columns.
    """
    if not header:
        raise ValueError("format_markdown_table: the header is empty; give at least one column title")
    cells = [[format_cell(c, float_format) for c in header]]
    for index, row in enumerate(rows):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(
                f"format_markdown_table: row {index} has {len(row)} cells but the header has {len(header)} "
                f"columns ({[str(h) for h in header]}); give every row one cell per column"
            )
        cells.append([format_cell(c, float_format) for c in row])
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(row) for row in cells[1:])])
