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


def _markdown_rows(out: str) -> list[dict[str, str]]:
    """The rows of the markdown table in ``out``, keyed by the header's column titles."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def test_model_throughput_prints_rates_ratio_peak_and_mfu_for_every_combination() -> None:
    out = _run("model_throughput.py", "--config", "tiny,small", "--threads", "1,2", "--lengths", "32",
               "--steps", "1", "--quick")
    assert "CPU: " in out and "bf16 matmul instructions" in out
    assert "tiny = hidden 256, 4 layers, 4 heads" in out and "small = hidden 512, 8 layers, 8 heads" in out
    rows = _markdown_rows(out)
    combinations = [(r["config"], r["threads"], r["clock"], r["tokens"], r["precision"]) for r in rows]
    assert combinations == [
        (config, threads, clock, "32", precision)
        for config in ("tiny", "small") for threads, clock in (("1", "cpu"), ("2", "wall")) for precision in ("fp32", "bf16")
    ]
    for row in rows:
        gfm_rate, llama_rate, ratio = float(row["gfm tok/s"]), float(row["llama tok/s"]), float(row["ratio"].rstrip("x"))
        assert gfm_rate > 0 and llama_rate > 0
        # every check allows for the rounding of the printed values (tok/s to 1, ratio and bound to
        # 0.01, shares to 1%): a loaded machine can make the rates small enough for it to matter
        ratio_low, ratio_high = (gfm_rate - 0.5) / (llama_rate + 0.5), (gfm_rate + 0.5) / max(llama_rate - 0.5, 1e-9)
        assert ratio_low - 0.005 <= ratio <= ratio_high + 0.005, row
        share, bound = float(row["gfm mm"].rstrip("%")) / 100, float(row["bound"].rstrip("x"))
        assert 0 < share <= 1
        assert ratio_low / (share + 0.005) - 0.005 <= bound <= ratio_high / max(share - 0.005, 1e-9) + 0.005, row
        peak, best = float(row["peak GFLOP/s"]) * 1e9, float(row["best GFLOP/s"]) * 1e9
        assert 0 < peak <= best * 1.001
        # the same linear layers; Llama's causal square (32 * 33 / 2 links) outweighs gfm's sparse pattern here
        assert float(row["gfm MFLOP/tok"]) < float(row["llama MFLOP/tok"])
        for model, rate in (("gfm", gfm_rate), ("llama", llama_rate)):
            mfu = float(row[f"{model} MFU"].rstrip("%")) / 100
            flops = float(row[f"{model} MFLOP/tok"]) * 1e6
            # MFU = MFLOP/tok x tok/s / peak (MFLOP/tok printed to 0.01, peak to 0.1 GFLOP/s, MFU to 0.1%)
            low = (rate - 0.5) * (flops - 5e3) / (peak + 0.05e9)
            high = (rate + 0.5) * (flops + 5e3) / max(peak - 0.05e9, 1e-9)
            assert low - 0.0005 <= mfu <= high + 0.0005, (row, model)


def test_attention_speed_prints_every_method_for_both_patterns() -> None:
    out = _run("attention_speed.py", "--sizes", "128", "--repeats", "1")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if re.match(r"(graph|sequence)\s+128\s", line)}
    assert set(rows) == {"graph", "sequence"}
    assert {rows["graph"][3], rows["sequence"][3]} <= {"csr", "block_sdpa", "dense", "flex"}  # "auto"'s choice
    for row in rows.values():
        assert float(row[4]) >= 0 and float(row[5]) >= 0  # gfm ms, gfm MB
        assert row[-2].endswith("x") and row[-1].endswith("x")  # ratios against pyg and dense


def test_finetune_throughput_prints_padded_packed_and_bf16_rows() -> None:
    out = _run("finetune_throughput.py", "--quick", "--dataset", "packaged/nci5k")
    assert "CPU: " in out and "bf16 matmul instructions" in out and "data: packaged/nci5k" in out
    rows = _markdown_rows(out)
    assert [(r["threads"], r["clock"], r["batches"], r["precision"]) for r in rows] == [
        ("1", "cpu", "padded", "fp32"), ("1", "cpu", "packed", "fp32"), ("1", "cpu", "packed", "bf16")]
    reference = float(rows[0]["mol/s"])
    assert rows[0]["ratio"] == "1.00x"
    for row in rows:
        rate, ratio = float(row["mol/s"]), float(row["ratio"].rstrip("x"))
        assert rate > 0
        # mol/s printed to 0.1, the ratio to 0.01
        assert (rate - 0.05) / (reference + 0.05) - 0.005 <= ratio <= (rate + 0.05) / (reference - 0.05) + 0.005, row
    # the same seed and batches: packing changes no loss beyond float rounding, bf16 stays close
    losses = [float(row["loss"]) for row in rows]
    assert abs(losses[1] - losses[0]) <= 1e-3 * abs(losses[0]) + 1e-4
    assert abs(losses[2] - losses[0]) <= 0.05 * abs(losses[0]) + 1e-3
