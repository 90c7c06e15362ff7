"""``python -m gfm.pipelines.demo`` on the embedded default corpus: no data folder, no network.

The corpus table (``--summary-only``) and the whole pipeline in ``--quick`` sizes: tokenizer,
pretraining, LoRA vs scratch, zero-shot with its controls, hub save + reload, one summary table.
"""

from __future__ import annotations

import io

import pytest

from gfm.pipelines import demo


def _cells(line: str) -> list[str]:
    """The cells of one markdown table row."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_demo_prints_the_packaged_summary_table(monkeypatch, no_network, capsys):
    monkeypatch.delenv("GFM_DATA_DIR", raising=False)
    monkeypatch.delenv("GFM_CACHE_DIR", raising=False)
    assert demo.main(["--summary-only", "--log-level", "WARNING"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert _cells(table[0]) == ["dataset", "domain", "graphs", "nodes", "edges", "x cat/cont", "task"]
    rows = {_cells(line)[0]: _cells(line) for line in table[2:]}
    assert set(rows) == {"packaged/nci5k", "packaged/karate", "packaged/les-miserables", "packaged/florentine", "packaged/davis"}
    assert rows["packaged/nci5k"][1] == "molecules" and "graph regression" in rows["packaged/nci5k"][6]
    assert rows["packaged/karate"][2:5] == ["1", "34", "156"]
    assert rows["packaged/karate"][6].startswith("node classification (2 classes)")


def test_summary_table_marks_skipped_datasets():
    stream = io.StringIO()
    demo.write_summary_table(
        [{"dataset": "a/b", "domain": "social", "graphs": 1, "nodes": 1200, "edges": 3, "x_cat": 0, "x_cont": 7, "task": "t"},
         {"dataset": "c/d", "domain": "-", "graphs": "-", "nodes": "-", "edges": "-", "task": "skipped: large"}],
        stream,
    )
    lines = stream.getvalue().splitlines()
    assert _cells(lines[2])[3:6] == ["1,200", "3", "0/7"] and _cells(lines[3])[6] == "skipped: large"


@pytest.mark.data
def test_demo_on_the_data_folder_skips_large_datasets(data_dir, capsys, monkeypatch):
    monkeypatch.delenv("GFM_CACHE_DIR", raising=False)
    names = ["planetoid/cora", "moleculenet/hiv", "packaged/karate"]
    monkeypatch.setattr(demo, "LARGE_DATASETS", ("moleculenet/hiv",))
    import gfm.data.registry as registry

    monkeypatch.setattr(registry, "available", lambda data_dir=None: names)
    assert demo.main(["--data-dir", str(data_dir), "--summary-only", "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    assert "planetoid/cora" in out and "2,708" in out and "moleculenet/hiv" in out and "skipped: large" in out


def test_quick_pipeline_runs_every_stage_offline(monkeypatch, no_network, capsys, tmp_path):
    monkeypatch.delenv("GFM_DATA_DIR", raising=False)
    monkeypatch.delenv("GFM_CACHE_DIR", raising=False)
    assert demo.main(["--quick", "--output-dir", str(tmp_path), "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("gfm demo: summary"):]
    lines = summary.splitlines()

    def rows(task: str) -> dict[str, list[str]]:  # method -> cells (task, method, role, metric, mean ± std, seeds)
        table = [_cells(line) for line in lines if line.startswith("|")]
        return {cells[1]: cells for cells in table if cells[0].startswith(task)}

    finetune = rows("packaged/nci5k")
    assert {"lora", "scratch", "prior"} <= set(finetune) and all(cells[3] == "mae" for cells in finetune.values())
    zero_shot = rows("packaged/karate")
    assert {"gfm", "random_init", "label_propagation", "svd_probe"} <= set(zero_shot)
    assert all(cells[0] == "packaged/karate [structure+2_labels]" for cells in zero_shot.values())
    share = next(line for line in lines if "LoRA trains" in line)
    assert float(share.split("(")[1].rstrip("%)")) < 5.0
    assert "max |diff| 0.0e+00" in summary
    pretraining = next(line for line in lines if line.startswith("pretraining"))
    steps = int(pretraining.split(" steps")[0].split()[-1])
    assert steps == demo.DemoPlan.quick().pretraining_steps

    hub = tmp_path / "hub" / "gfm-demo-tiny"
    card = (hub / "README.md").read_text()
    evaluation = card[card.index("## Evaluation"):]
    assert "packaged/nci5k: lora fine-tuning" in evaluation and "scratch:" in evaluation
    assert "packaged/karate: zero-shot (structure+2_labels)" in evaluation
    assert "svd_probe:" in evaluation or "label_propagation:" in evaluation
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "training_summary.json"):
        assert (hub / name).is_file()
    assert list((tmp_path / "pretraining" / "plots").glob("*.png"))
    assert (tmp_path / "finetune" / "finetune.md").is_file() and list((tmp_path / "zero_shot").glob("*.png"))
