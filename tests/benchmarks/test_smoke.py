"""The benchmarks the issues quote still run end to end and print their tables (tiny sizes; no timing claims)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from gfm.testing.paths import source_root

REPO = source_root()


def _run(script: str, *arguments: str) -> str:
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    finished = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *arguments],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


def test_model_throughput_prints_both_precisions_with_ratio_and_bound() -> None:
    out = _run("model_throughput.py", "--lengths", "48", "--steps", "1")
    assert "CPU: " in out and "bf16 matmul instructions" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+48\s+(fp32|bf16)\s", line)]
    assert [row[1] for row in rows] == ["fp32", "bf16"]
    for row in rows:
        gfm_rate, llama_rate, ratio = float(row[4]), float(row[5]), float(row[6].rstrip("x"))
        assert gfm_rate > 0 and llama_rate > 0
        assert abs(ratio - gfm_rate / llama_rate) < 0.02 * max(ratio, 1.0) + 0.01
        share, bound = float(row[7].rstrip("%")) / 100, float(row[8].rstrip("x"))
        assert 0 < share <= 1 and abs(bound - ratio / share) < 0.05 * bound + 0.01


def test_attention_speed_prints_every_method_for_both_patterns() -> None:
    out = _run("attention_speed.py", "--sizes", "128", "--repeats", "1")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if re.match(r"(graph|sequence)\s+128\s", line)}
    assert set(rows) == {"graph", "sequence"}
    assert {rows["graph"][3], rows["sequence"][3]} <= {"csr", "block_sdpa", "dense", "flex"}  # "auto"'s choice
    for row in rows.values():
        assert float(row[4]) >= 0 and float(row[5]) >= 0  # gfm ms, gfm MB
        assert row[-2].endswith("x") and row[-1].endswith("x")  # ratios against pyg and dense
