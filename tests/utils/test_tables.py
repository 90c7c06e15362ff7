"""The shared markdown-table formatter (gfm.utils.tables)."""

from __future__ import annotations

import pytest

from gfm.utils.tables import format_cell, format_markdown_table


def test_columns_are_padded_floats_formatted_and_every_row_kept() -> None:
    table = format_markdown_table(["dataset", "nodes", "accuracy %"], [["cora", 2708, 81.3], ["karate", 34, 100.0]])
    assert table.splitlines() == [
        "| dataset | nodes | accuracy % |",
        "|---------|-------|------------|",
        "| cora    | 2708  | 81.3000    |",
        "| karate  | 34    | 100.0000   |",
    ]
    assert format_markdown_table(["a"], [[0.5]], float_format=".1f").splitlines()[-1] == "| 0.5 |"
    assert format_markdown_table(["only header"], []).count("\n") == 1


def test_cells_never_break_the_table() -> None:
    assert format_cell("molecules|cat9|cont0") == "molecules\\|cat9\\|cont0"
    assert format_cell("two\nlines") == "two lines"
    assert format_cell(True) == "True" and format_cell(3) == "3"  # only floats get the float format
    row = format_markdown_table(["schema"], [["a|b"]]).splitlines()[-1]
    assert row == "| a\\|b   |"


def test_a_row_of_the_wrong_width_is_named() -> None:
    with pytest.raises(ValueError, match=r"row 1 has 2 cells but the header has 3 columns \(\['a', 'b', 'c'\]\)"):
        format_markdown_table(["a", "b", "c"], [[1, 2, 3], [1, 2]])
    with pytest.raises(ValueError, match="the header is empty"):
        format_markdown_table([], [])
