"""``python -m gfm.demo`` on the embedded default corpus: no data folder, no network."""

from __future__ import annotations

import io
import socket

import pytest

from gfm import demo


def test_demo_prints_the_packaged_summary_table(monkeypatch, capsys):
    monkeypatch.delenv("GFM_DATA_DIR", raising=False)
    monkeypatch.delenv("GFM_CACHE_DIR", raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the demo tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert demo.main(["--log-level", "WARNING"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["dataset", "domain", "graphs", "nodes", "edges", "x"]
    rows = {line.split()[0]: line for line in table[2:]}
    assert set(rows) == {"packaged/nci5k", "packaged/karate", "packaged/les-miserables", "packaged/florentine", "packaged/davis"}
    assert "molecules" in rows["packaged/nci5k"] and "graph regression" in rows["packaged/nci5k"]
    assert rows["packaged/karate"].split()[2:5] == ["1", "34", "156"]
    assert "node classification (2 classes)" in rows["packaged/karate"]


def test_summary_table_marks_skipped_datasets():
    stream = io.StringIO()
    demo.write_summary_table(
        [{"dataset": "a/b", "domain": "social", "graphs": 1, "nodes": 1200, "edges": 3, "x_cat": 0, "x_cont": 7, "task": "t"},
         {"dataset": "c/d", "domain": "-", "graphs": "-", "nodes": "-", "edges": "-", "task": "skipped: large"}],
        stream,
    )
    lines = stream.getvalue().splitlines()
    assert "1,200" in lines[2] and "0/7" in lines[2] and lines[3].endswith("skipped: large")


@pytest.mark.data
def test_demo_on_the_data_folder_skips_large_datasets(data_dir, capsys, monkeypatch):
    monkeypatch.delenv("GFM_CACHE_DIR", raising=False)
    names = ["planetoid/cora", "moleculenet/hiv", "packaged/karate"]
    monkeypatch.setattr(demo, "LARGE_DATASETS", ("moleculenet/hiv",))
    import gfm.data.registry as registry

    monkeypatch.setattr(registry, "available", lambda data_dir=None: names)
    assert demo.main(["--data-dir", str(data_dir), "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    assert "planetoid/cora" in out and "2,708" in out and "moleculenet/hiv" in out and "skipped: large" in out
