"""Adapters on a tiny gfm checkpoint: LoRA size, save/reload/merge, heads, bad inputs."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.data import Data

from gfm.adapters.adaptation import (
    AdaptationConfig,
    AdapterMismatchError,
    base_model_fingerprint,
    export_merged,
    load_adapter,
    parameter_counts,
    prepare_for_adaptation,
    save_adapter,
)
from gfm.adapters.encoding import SamplingConfig, TaskSampleEncoder
from gfm.adapters.heads import (
    TaskHeadMismatchError,
    check_labels_for_head,
    head_spec_for_task,
    load_pretrained_for_task,
    scratch_model_for_task,
)
from gfm.adapters.task_data import TaskDataError, build_task_items
from gfm.adapters.training import TrainingConfig, predict, train_task_model
from gfm.data.dataset import GraphDataset, TaskSpec
from gfm.hub import TokenizerMismatchError
from gfm.modeling import GFMForNodeClassification
from gfm.testing.checkpoints import save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, karate):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", karate.graphs)


@pytest.fixture(scope="module")
def node_items(checkpoint, karate):
    model, tokenizer = load_pretrained_for_task(checkpoint, karate.task)
    encoder = TaskSampleEncoder(tokenizer, SamplingConfig(num_hops=2, max_neighbors=6))
    return encoder, build_task_items(karate, encoder, seed=0)


def test_node_samples_mark_the_target_node(node_items, karate):
    encoder, items = node_items
    assert [len(items.samples[s]) for s in ("train", "valid", "test")] == [
        int(karate.graphs[0].train_mask.sum()), int(karate.graphs[0].val_mask.sum()), int(karate.graphs[0].test_mask.sum())
    ]
    for sample in items.samples["train"]:
        target = sample.metadata["target_node"]
        assert (sample.node_index == target).any()  # the target's tokens are in the sequence
    _, batch = next(encoder.batches(items.samples["train"], 4))
    assert batch["target_node"].shape == (4,)
    assert torch.equal(items.targets["train"], karate.graphs[0].y[items.ids["train"]])


def test_batched_encoding_matches_one_encode_per_graph(checkpoint, karate):
    """The vectorized ``encode_batch`` path (per-graph targets) and the one-``encode``-per-graph
    reference give the same node and pair sequences on a real graph."""
    _, tokenizer = load_pretrained_for_task(checkpoint, karate.task)
    data = karate.graphs[0]
    nodes = torch.arange(int(data.num_nodes))
    pairs = torch.cat([data.edge_index[:, ::7], torch.tensor([[0, 5, 16], [33, 24, 9]])], dim=1)
    fast = TaskSampleEncoder(tokenizer, SamplingConfig(num_hops=2, max_neighbors=6))
    reference = TaskSampleEncoder(tokenizer, SamplingConfig(num_hops=2, max_neighbors=6))
    assert fast._batched_targets
    reference._batched_targets = False  # force the per-graph loop
    for build in ("node_samples", "edge_samples"):
        arguments = (data, nodes) if build == "node_samples" else (data, pairs)
        got, expected = getattr(fast, build)(*arguments), getattr(reference, build)(*arguments)
        assert len(got) == len(expected) > 0
        for a, b in zip(got, expected):
            assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.node_index, b.node_index)
            assert a.metadata.get("target_node") == b.metadata.get("target_node")
            assert a.metadata.get("target_edge") == b.metadata.get("target_edge")


def test_lora_trains_under_five_percent_and_reloads_to_the_same_predictions(checkpoint, karate, node_items, tmp_path):
    encoder, items = node_items
    model, tokenizer = load_pretrained_for_task(checkpoint, karate.task)
    fingerprint = base_model_fingerprint(model)
    lora = prepare_for_adaptation(model, AdaptationConfig(method="lora", lora_r=4))
    trainable, total = parameter_counts(lora)
    print(f"LoRA trains {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)")
    assert trainable / total < 0.05
    outcome = train_task_model(lora, encoder, items, TrainingConfig(epochs=2, batch_size=8, learning_rate=5e-3), seed=0)
    assert outcome.best_valid is not None and len(outcome.train_losses) == 2 * 3  # 20 train nodes / 8 -> 3 steps
    assert base_model_fingerprint(lora) == fingerprint  # LoRA leaves the base weights alone
    expected = predict(lora, encoder, items.samples["test"])

    save_adapter(lora, tmp_path / "adapter", str(checkpoint), fingerprint)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    fresh, _ = load_pretrained_for_task(checkpoint, karate.task)
    reloaded = load_adapter(tmp_path / "adapter", fresh)
    assert torch.allclose(predict(reloaded, encoder, items.samples["test"]), expected, atol=1e-6)
    # the recorded base is found on its own too
    assert torch.allclose(predict(load_adapter(tmp_path / "adapter"), encoder, items.samples["test"]), expected, atol=1e-6)

    # merge on export: a plain checkpoint with the same predictions
    export_merged(reloaded, tokenizer, tmp_path / "merged")
    merged = GFMForNodeClassification.from_pretrained(tmp_path / "merged")
    assert torch.allclose(predict(merged, encoder, items.samples["test"]), expected, atol=1e-5)


def test_auto_peft_model_loads_with_import_allowlist(checkpoint, karate, node_items, tmp_path):
    from peft import AutoPeftModel

    encoder, items = node_items
    model, _ = load_pretrained_for_task(checkpoint, karate.task)
    fingerprint = base_model_fingerprint(model)
    lora = prepare_for_adaptation(model, AdaptationConfig(method="lora", lora_r=2))
    save_adapter(lora, tmp_path / "adapter", str(checkpoint), fingerprint)
    with pytest.raises(ValueError, match="import allowlist"):
        AutoPeftModel.from_pretrained(tmp_path / "adapter")
    auto = AutoPeftModel.from_pretrained(tmp_path / "adapter", import_allowlist=["gfm"], num_labels=2)
    assert torch.allclose(predict(auto, encoder, items.samples["test"]), predict(lora, encoder, items.samples["test"]), atol=1e-6)


def test_full_and_linear_probe_options(checkpoint, karate):
    model, _ = load_pretrained_for_task(checkpoint, karate.task)
    probe = prepare_for_adaptation(model, AdaptationConfig(method="linear_probe"))
    trainable = {n for n, p in probe.named_parameters() if p.requires_grad}
    assert trainable == {"score.weight", "score.bias"}
    full = prepare_for_adaptation(probe, AdaptationConfig(method="full"))
    assert all(p.requires_grad for p in full.parameters())


def test_adapter_for_another_base_model_is_refused(checkpoint, karate, tmp_path):
    model, _ = load_pretrained_for_task(checkpoint, karate.task)
    lora = prepare_for_adaptation(model, AdaptationConfig(method="lora", lora_r=2))
    save_adapter(lora, tmp_path / "adapter", str(checkpoint), base_model_fingerprint(model))
    other = save_tiny_checkpoint(tmp_path / "other", karate.graphs, seed=1)
    other_model, _ = load_pretrained_for_task(other, karate.task)
    with pytest.raises(AdapterMismatchError, match="trained on another base model"):
        load_adapter(tmp_path / "adapter", other_model)


def test_checkpoint_without_compatible_tokenizer_is_refused(checkpoint, karate, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    config = json.loads((broken / "config.json").read_text())
    config["tokenizer_hash"] = "0" * 64
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerMismatchError, match="does not match the model's tokenizer_hash"):
        load_pretrained_for_task(broken, karate.task)
    (broken / "tokenizer_config.json").unlink()
    with pytest.raises(TokenizerMismatchError, match="no tokenizer_config.json"):
        load_pretrained_for_task(broken, karate.task)


def test_task_head_mismatch_is_named(checkpoint, karate):
    model, _ = load_pretrained_for_task(checkpoint, karate.task)  # classification head, 2 classes
    with pytest.raises(TaskHeadMismatchError, match="regression targets .* classification head"):
        check_labels_for_head(model, torch.tensor([0.25, 1.5, 3.75]))
    with pytest.raises(TaskHeadMismatchError, match="class id 5 but the head has num_labels=2"):
        check_labels_for_head(model, torch.tensor([0, 5]))
    regression = TaskSpec("graph", "regression", None, 2, ["a", "b"], "mae")
    head = scratch_model_for_task(model.config, regression, seed=0)
    assert head.config.problem_type == "regression" and head.config.num_labels == 2
    with pytest.raises(TaskHeadMismatchError, match="integer class ids given to a regression head"):
        check_labels_for_head(head, torch.tensor([[1, 2]]))
    multilabel = scratch_model_for_task(model.config, TaskSpec("graph", "multilabel", None, 2, ["a", "b"], "roc_auc"), 0)
    with pytest.raises(TaskHeadMismatchError, match="multi-label targets must be 0, 1 or NaN"):
        check_labels_for_head(multilabel, torch.tensor([[0.0, 3.2]]))
    assert head_spec_for_task(TaskSpec("edge", "link", None, 1, ["e"], "hits@20")).num_labels == 1


def _molecule_dataset(num_positive_task1: int | None = None) -> GraphDataset:
    """Real molecules (RDKit) with two derived binary tasks (has N, has a ring), some labels missing."""
    from torch_geometric.utils import from_smiles

    smiles = [
        "CCO", "CCN", "c1ccccc1", "c1ccncc1", "CC(=O)O", "CCCN", "C1CCCCC1", "CC(N)C(=O)O", "OCCO", "c1ccc2ccccc2c1",
        "CN1CCCC1", "CCOC(=O)C", "NCCN", "C1CCOC1", "CC(C)O", "c1ccoc1", "CCCCCC", "NC(=O)N", "CC#N", "C1CC1",
    ]
    graphs = []
    for i, text in enumerate(smiles):
        graph = from_smiles(text)
        has_nitrogen = float("N" in text or "n" in text)
        has_ring = float(any(ch.isdigit() for ch in text))
        y = torch.tensor([[has_nitrogen, has_ring]])
        if i % 5 == 3:
            y[0, 1] = float("nan")
        if num_positive_task1 is not None:
            y[0, 0] = 0.0
        graphs.append(Data(x=graph.x, edge_index=graph.edge_index, edge_attr=graph.edge_attr,
                           num_nodes=graph.num_nodes, y=y, domain="molecules", name=text))
    task = TaskSpec("graph", "multilabel", None, 2, ["has_N", "has_ring"], "roc_auc")
    splits = {"train": torch.arange(0, 12), "valid": torch.arange(12, 16), "test": torch.arange(16, 20)}
    return GraphDataset("test/molecules", "molecules", task, graphs, splits=splits)


def test_multitask_with_missing_labels_trains(tmp_path):
    dataset = _molecule_dataset()
    directory = save_tiny_checkpoint(tmp_path / "mol", dataset.graphs)
    model, tokenizer = load_pretrained_for_task(directory, dataset.task)
    assert model.config.problem_type == "multi_label_classification"
    encoder = TaskSampleEncoder(tokenizer)
    items = build_task_items(dataset, encoder)
    assert torch.isnan(items.targets["train"]).any()
    outcome = train_task_model(model, encoder, items, TrainingConfig(epochs=3, batch_size=6, learning_rate=3e-3), 0)
    assert all(torch.isfinite(torch.tensor(outcome.train_losses)))
    assert 0.0 <= outcome.test <= 1.0


def test_split_with_no_positives_is_named():
    dataset = _molecule_dataset()
    for graph in dataset.graphs:
        graph.y[0, :] = torch.where(torch.isnan(graph.y[0]), graph.y[0], torch.zeros(2))
    from gfm.tokenization.eulerian import EulerianTokenizer as Tok

    encoder = TaskSampleEncoder(Tok.train(dataset.graphs, num_index_tokens=32))
    with pytest.raises(TaskDataError, match="train split has no positive label"):
        build_task_items(dataset, encoder)


def test_selection_never_prefers_an_undefined_validation_score():
    from gfm.evaluation.metrics import get_metric

    nan = float("nan")
    accuracy, mae = get_metric("accuracy"), get_metric("mae")
    assert accuracy.improves(0.5, None)
    assert accuracy.improves(0.1, nan)  # a number replaces an undefined best
    assert not accuracy.improves(nan, 0.3)
    assert not accuracy.improves(0.3, 0.3)  # a tie keeps the earlier selection
    assert mae.improves(0.2, 0.3) and not mae.improves(0.4, 0.3)
