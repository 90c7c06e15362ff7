"""The fine-tuning recipe end to end on tiny configs: node and link tasks, config errors."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
import yaml

from gfm.data.dataset import GraphDataset, TaskSpec
from gfm.data.link_splits import holdout_link_split
from gfm.data.registry import load
from gfm.pipelines.finetune import FinetuneConfig, FinetuneConfigError, load_finetune_config, run_finetuning
from gfm.testing.checkpoints import save_tiny_checkpoint
from gfm.testing.paths import source_root

RECIPE = source_root() / "finetune" / "run_finetuning.py"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, karate):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ft") / "ckpt", karate.graphs, num_hidden_layers=1,
                                max_position_embeddings=1024)


def run_recipe(argv):
    spec = importlib.util.spec_from_file_location("run_finetuning", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_recipe_runs_every_method_on_a_node_task(checkpoint, tmp_path, capsys):
    config = {
        "dataset": "packaged/karate", "pretrained": str(checkpoint), "output_dir": str(tmp_path / "out"),
        "methods": ["lora", "linear_probe", "full", "scratch", "gnn", "controls"], "seeds": [0],
        "epochs": 1, "batch_size": 10, "gnn_epochs": 10, "max_trainable_fraction": 0.1, "num_hops": 1,
        "export_merged": True,
    }
    path = tmp_path / "karate.yaml"
    path.write_text(yaml.safe_dump(config))
    results = run_recipe(["--config", str(path), "--learning_rate", "0.002"])
    methods = {r.method: r for r in results}
    assert set(methods) == {"lora", "linear_probe", "full", "scratch", "gcn", "label_propagation", "svd_probe"}
    assert methods["lora"].role == "method" and methods["scratch"].role == "baseline"
    assert methods["label_propagation"].role == "control"
    lora = methods["lora"]
    assert lora.trainable_parameters / lora.total_parameters < 0.1
    assert Path(lora.extra["adapter_dir"], "adapter_model.safetensors").is_file()
    assert Path(lora.extra["merged_dir"], "model.safetensors").is_file()
    assert methods["linear_probe"].trainable_parameters == 64 * 2 + 2
    test_nodes = torch.nonzero(load("packaged/karate").graphs[0].test_mask).reshape(-1)
    for method in ("lora", "linear_probe", "full", "scratch"):  # the saved test outputs re-score to the reported test
        saved = torch.load(methods[method].extra["test_outputs"])
        assert saved["outputs"].shape == (len(test_nodes), 2) and torch.equal(saved["ids"], test_nodes)
        accuracy = (saved["outputs"].argmax(-1) == saved["targets"]).float().mean().item()
        assert accuracy == pytest.approx(methods[method].test)
    printed = capsys.readouterr().out
    assert re.search(r"\| lora +\| packaged/karate +\| accuracy +\|", printed) and "LoRA seed 0:" in printed
    assert (tmp_path / "out" / "karate.md").is_file() and (tmp_path / "out" / "karate.png").is_file()


def test_link_task_with_sampled_negatives(checkpoint, karate, tmp_path):
    data = karate.graphs[0]
    split = holdout_link_split(data, "karate", 0.1, 0.2, seed=0)
    graph = split.readable_graph(data)  # the training edges, with their weights
    for key in ("train_mask", "val_mask", "test_mask", "y"):
        del graph[key]
    assert graph.edge_attr.shape[0] == graph.edge_index.shape[1]
    edge_splits = {"train": {"edge_index": split.train_pos}, "valid": {"edge_index": split.valid_pos},
                   "test": {"edge_index": split.test_pos}}
    dataset = GraphDataset("test/karate-links", "social", TaskSpec("edge", "link", None, 1, ["edge"], "mrr"),
                           [graph], edge_splits=edge_splits)
    config = FinetuneConfig(dataset="test/karate-links", pretrained=str(checkpoint), output_dir=str(tmp_path),
                            methods=["lora", "gnn", "controls"], seeds=[0], epochs=1, batch_size=16, num_hops=1,
                            gnn_epochs=5, max_trainable_fraction=0.1, num_eval_negatives=40, save_adapter=False)
    results = run_finetuning(config, dataset=dataset)
    assert {r.method for r in results} == {"lora", "gcn", "label_propagation", "svd_probe"}
    assert all(r.metric == "mrr" and 0.0 < r.test <= 1.0 for r in results)


def test_config_errors_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"dataset": "packaged/karate", "learnig_rate": 0.1}))
    with pytest.raises(FinetuneConfigError, match="unknown config key 'learnig_rate'; did you mean 'learning_rate'"):
        load_finetune_config(path)
    with pytest.raises(FinetuneConfigError, match="need `pretrained`"):
        FinetuneConfig(dataset="packaged/karate", methods=["lora"])
    with pytest.raises(FinetuneConfigError, match="methods \\['adapterz'\\] are unknown"):
        FinetuneConfig(dataset="packaged/karate", methods=["adapterz"])


def test_caps_apply_to_baselines_and_controls(checkpoint, karate):
    """With max_*_items, the GCN and the controls read the same capped node sets as the gfm models."""
    from gfm.adapters.encoding import SamplingConfig, TaskSampleEncoder
    from gfm.adapters.heads import load_pretrained_for_task
    from gfm.adapters.task_data import build_task_items
    from gfm.pipelines.finetune import _restricted_to_items

    _, tokenizer = load_pretrained_for_task(checkpoint, karate.task)
    encoder = TaskSampleEncoder(tokenizer, SamplingConfig(num_hops=1))
    config = FinetuneConfig(dataset="packaged/karate", pretrained=str(checkpoint), max_train_items=6, max_eval_items=4)
    items = build_task_items(karate, encoder, seed=0, max_train_items=6, max_eval_items=4)
    view = _restricted_to_items(karate, items, config)
    for split, key in (("train", "train_mask"), ("valid", "val_mask"), ("test", "test_mask")):
        assert torch.equal(view.graphs[0][key].nonzero().view(-1), items.ids[split])
    assert [items.ids[s].numel() for s in ("train", "valid", "test")] == [6, 4, 4]
    assert int(karate.graphs[0].train_mask.sum()) > 6  # the loaded dataset is left alone
    uncapped = FinetuneConfig(dataset="packaged/karate", pretrained=str(checkpoint))
    assert _restricted_to_items(karate, build_task_items(karate, encoder, seed=0), uncapped) is karate
