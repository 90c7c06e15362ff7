"""Reports: mean ± std over seeds, markdown tables, PNG plots, access separation."""

from __future__ import annotations

import re
import statistics

import pytest

from gfm.evaluation.reports import (
    AccessMismatchError,
    RunResult,
    bar_plot,
    load_results,
    markdown_table,
    summarize,
    write_report,
)


def runs() -> list[RunResult]:
    out = []
    for seed, (lora, scratch, gcn, lp) in enumerate([(0.81, 0.70, 0.79, 0.71), (0.83, 0.72, 0.80, 0.71), (0.80, 0.69, 0.81, 0.71)]):
        out += [
            RunResult("lora", "planetoid/cora", "accuracy", seed, lora, valid=lora - 0.01, train_losses=[1.0, 0.5],
                      trainable_parameters=10, total_parameters=1000),
            RunResult("scratch", "planetoid/cora", "accuracy", seed, scratch, valid=scratch, role="baseline"),
            RunResult("gcn", "planetoid/cora", "accuracy", seed, gcn, valid=gcn, role="baseline"),
            RunResult("label_propagation", "planetoid/cora", "accuracy", seed, lp, role="control"),
        ]
    return out


def test_summary_is_mean_and_sample_std_over_seeds():
    summaries = {s.method: s for s in summarize(runs())}
    lora = summaries["lora"]
    assert lora.mean == pytest.approx(statistics.mean([0.81, 0.83, 0.80]))
    assert lora.std == pytest.approx(statistics.stdev([0.81, 0.83, 0.80]))
    assert lora.seeds == [0, 1, 2] and lora.final_train_loss == 0.5
    assert summaries["label_propagation"].std == 0.0
    with pytest.raises(ValueError, match="seeds .* repeat"):
        summarize(runs() + [RunResult("lora", "planetoid/cora", "accuracy", 0, 0.5)])


def test_markdown_table_puts_baselines_and_controls_beside_the_method():
    table = markdown_table(runs())
    rows = [line for line in table.splitlines() if line.startswith("| lora")]
    assert len(rows) == 1
    row = rows[0]
    assert "0.8133 ± 0.0153 (0,1,2)" in row
    assert "gcn 0.8000 ± 0.0100" in row and "scratch 0.7033 ± 0.0153" in row
    assert "label_propagation 0.7100 ± 0.0000" in row


def test_mixed_access_is_refused_in_tables_and_plots(tmp_path):
    mixed = [
        RunResult("gfm", "cora", "accuracy", 0, 0.7, access="structure+20_labels"),
        RunResult("svd_probe", "cora", "accuracy", 0, 0.8, role="control", access="structure+features+20_labels"),
    ]
    with pytest.raises(AccessMismatchError, match="different access"):
        markdown_table(mixed)
    with pytest.raises(AccessMismatchError, match="different access"):
        bar_plot(mixed, tmp_path / "mixed.png")


def test_write_report_round_trip(tmp_path):
    paths = write_report(runs(), tmp_path, name="cora", title="cora")
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths["markdown"].read_text()
    assert "#### Every run" in text and len(re.findall(r"^\| planetoid/cora +\| lora +\|", text, re.M)) == 3
    assert [r.to_dict() for r in load_results(paths["json"])] == [r.to_dict() for r in runs()]
