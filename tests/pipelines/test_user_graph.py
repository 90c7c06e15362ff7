"""A user's own graph through the zero-shot and fine-tuning pipelines (issue 13, item 6).

The checkpoint's tokenizer is trained on the packaged karate club (domain ``social``) only; the
user's CSV graph has domain ``other`` and, in one test, a feature column no training graph had:
both run without retraining the tokenizer, and the model's short context (64 positions) makes
some ego graphs too long, so they are fitted and the fit is reported.
"""

from __future__ import annotations

import pandas as pd
import pytest

from gfm.data.edge_list import example_graph_files, user_graph_spec
from gfm.pipelines.finetune import FinetuneConfig, FinetuneConfigError, ego_graph_section, run_finetuning
from gfm.pipelines.zero_shot import ZeroShotConfig, ZeroShotConfigError, run_zero_shot
from gfm.testing.checkpoints import save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, karate):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("user") / "ckpt", karate.graphs, num_hidden_layers=1,
                                hidden_size=32, num_attention_heads=2, max_position_embeddings=64)


def test_zero_shot_on_a_csv_graph_of_an_unseen_domain(checkpoint, caplog):
    files = example_graph_files()
    config = ZeroShotConfig(
        edges_csv=str(files["edges"]), nodes_csv=str(files["nodes"]), label_column="club", pretrained=str(checkpoint),
        seeds=[0, 1], labels_per_class=[3], node_accesses=["structure+k_labels"], link_accesses=[], num_hops=2,
        max_neighbors=8, batch_size=16,
    )
    with caplog.at_level("WARNING", logger="gfm.tokenization.eulerian"):
        results = run_zero_shot(config)
    assert "encoded through the generic path (<graph:other> -> <graph:generic>)" in caplog.text
    assert {r.method for r in results} == {"gfm", "random_init", "label_propagation", "svd_probe"}
    assert {r.task for r in results} == {"csv:karate_csv/edges.csv"} and len(results) == 8
    gfm = next(r for r in results if r.method == "gfm")
    assert gfm.extra["ego_graph_setting"] == "2 hops x 8 neighbours"
    assert sum(gfm.extra["ego_graphs"].values()) == 34 and len(gfm.extra["ego_graphs"]) > 1  # some were fitted
    section = ego_graph_section(results)
    assert "| gfm | csv:karate_csv/edges.csv | 0 | 2 hops x 8 neighbours: " in section


def test_fine_tuning_a_csv_graph_with_an_unseen_feature_column(checkpoint, tmp_path, caplog):
    files = example_graph_files()
    nodes = pd.read_csv(files["nodes"])
    nodes["age"] = [float(20 + i % 30) for i in range(len(nodes))]  # a column no tokenizer training graph had
    nodes.to_csv(tmp_path / "nodes.csv", index=False)
    config = FinetuneConfig(
        dataset=user_graph_spec(files["edges"], tmp_path / "nodes.csv", "club", name="my_club"),
        pretrained=str(checkpoint), output_dir=str(tmp_path / "out"), methods=["lora", "controls"], seeds=[0],
        epochs=1, batch_size=8, max_trainable_fraction=0.5,
    )
    assert config.dataset_name == "my_club"
    with caplog.at_level("WARNING", logger="gfm.tokenization.eulerian"):
        results = run_finetuning(config)
    assert "<graph:other|x=float32[1]> -> <graph:generic>" in caplog.text
    lora = next(r for r in results if r.method == "lora")
    assert lora.task == "my_club" and 0.0 <= lora.test <= 1.0
    assert sum(lora.extra["ego_graphs"].values()) == 34
    # one feature column: the SVD probe with features needs two (it says so and is left out)
    assert {r.method for r in results} == {"lora", "label_propagation", "svd_probe"}
    assert "svd_probe+features is left out: the graph has 1 feature column(s)" in caplog.text


def test_error_mode_still_names_the_long_ego_graph(checkpoint, tmp_path):
    files = example_graph_files()
    config = FinetuneConfig(edges_csv=str(files["edges"]), nodes_csv=str(files["nodes"]), label_column="club",
                            pretrained=str(checkpoint), methods=["lora"], seeds=[0], epochs=1,
                            long_sequences="error", output_dir=str(tmp_path))
    with pytest.raises(Exception, match=r"more than max_length=64; set long_sequences='fit'"):
        run_finetuning(config)


def test_config_names_a_graph_given_twice_or_half():
    with pytest.raises(FinetuneConfigError, match=r"give the task's graph once: dataset .* or edges_csv"):
        FinetuneConfig(dataset="packaged/karate", edges_csv="edges.csv", methods=["controls"])
    with pytest.raises(FinetuneConfigError, match=r"give the task's graph once"):
        FinetuneConfig(methods=["controls"])
    with pytest.raises(FinetuneConfigError, match=r"long_sequences='shrink'; use 'fit', 'error' or 'drop'"):
        FinetuneConfig(dataset="packaged/karate", methods=["controls"], long_sequences="shrink")
    with pytest.raises(ZeroShotConfigError, match=r"no graph: give datasets"):
        ZeroShotConfig()
    with pytest.raises(ZeroShotConfigError, match=r"nodes_csv is set without edges_csv"):
        ZeroShotConfig(datasets=["packaged/karate"], nodes_csv="nodes.csv")
