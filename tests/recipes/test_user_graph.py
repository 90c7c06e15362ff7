"""A user's CSV graph with labels through both recipes, one command each, no config file (issue 13, item 6).

The graph is gfm's packaged example (``gfm/data/examples/karate_csv``), not a registry dataset; the
checkpoint's tokenizer never saw its domain (``other``). The model has 64 positions, so some ego
graphs are fitted to the context and the report says how.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gfm.data.edge_list import example_graph_files
from gfm.testing.checkpoints import save_tiny_checkpoint
from gfm.testing.paths import source_root

REPO = source_root()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, karate):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("recipe") / "ckpt", karate.graphs, num_hidden_layers=1,
                                hidden_size=32, num_attention_heads=2, max_position_embeddings=64)


def _run(script: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("GFM_DATA_DIR", None)  # the example needs no data folder
    return subprocess.run([sys.executable, str(REPO / script), *argv], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def test_zero_shot_recipe_on_a_csv_graph(checkpoint, tmp_path):
    files = example_graph_files()
    spec = f"csv:edges={files['edges']},nodes={files['nodes']},label=club"
    done = _run("finetune/run_zero_shot.py", "--pretrained", str(checkpoint), "--datasets", f'["{spec}"]',
                "--labels_per_class", "[3]", "--seeds", "[0]", "--link_accesses", "[]",
                "--node_accesses", "[structure+k_labels]", "--num_threads", "1", "--output_dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    for method in ("gfm", "random_init", "label_propagation", "svd_probe"):
        assert f"| {method} " in done.stdout
    assert "csv:karate_csv/edges.csv" in done.stdout
    assert "### ego graphs fitted to the model's context" in done.stdout
    assert "| gfm | csv:karate_csv/edges.csv | 0 | 2 hops x 8 neighbours: " in done.stdout
    assert (tmp_path / "zero_shot.md").read_text().count("ego graphs fitted") == 1
    assert "encoded through the generic path (<graph:other> -> <graph:generic>)" in done.stderr


def test_fine_tuning_recipe_on_a_csv_graph(checkpoint, tmp_path):
    files = example_graph_files()
    done = _run("finetune/run_finetuning.py", "--pretrained", str(checkpoint), "--edges_csv", str(files["edges"]),
                "--nodes_csv", str(files["nodes"]), "--label_column", "club", "--methods", "[lora, gnn, controls]",
                "--seeds", "[0]", "--epochs", "1", "--batch_size", "8", "--gnn_epochs", "10",
                "--max_trainable_fraction", "0.5", "--num_threads", "1", "--output_dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fine-tuning: csv:karate_csv/edges.csv" in done.stdout
    assert "| lora   | csv:karate_csv/edges.csv | accuracy |" in done.stdout  # the row, its baseline and controls
    for method in ("gcn", "label_propagation", "svd_probe"):
        assert f"{method} " in done.stdout
    assert "| lora | csv:karate_csv/edges.csv | 0 | 2 hops x 8 neighbours: " in done.stdout
    assert (tmp_path / "finetune.md").is_file()


def test_a_missing_label_column_is_one_named_message(checkpoint, tmp_path):
    files = example_graph_files()
    done = _run("finetune/run_finetuning.py", "--pretrained", str(checkpoint), "--edges_csv", str(files["edges"]),
                "--nodes_csv", str(files["nodes"]), "--methods", "[controls]", "--output_dir", str(tmp_path))
    assert done.returncode == 2
    assert (f"{files['nodes']}: no label column 'label' (columns: ['id', 'club']); name the column that holds each "
            "node's class with label_column=<column>") in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unquoted_spec_in_a_list_is_named(tmp_path):
    files = example_graph_files()
    done = _run("finetune/run_zero_shot.py", "--datasets", f"[csv:edges={files['edges']},nodes={files['nodes']}]",
                "--output_dir", str(tmp_path))
    assert done.returncode == 2
    assert "is a piece of a csv: graph spec that YAML split at its commas; quote the spec" in done.stderr
