"""The fuzz command runs, checks every graph and reports its failure count (full run: `make fuzz`)."""

from __future__ import annotations

import logging

from gfm.testing import fuzz


def test_fuzz_command_reports_zero_failures(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="gfm.testing.fuzz"):
        status = fuzz.main(["--num-graphs", "300", "--seed", "1"])
    assert status == 0
    assert "fuzz: 300 graphs, 0 failures" in caplog.text
