"""bf16 fine-tuning (``TrainingConfig.mixed_precision="bf16"``) against the float32 reference.

The forward passes run under ``torch.autocast(dtype=torch.bfloat16)``: matmuls in bfloat16 (8-bit
mantissa, relative rounding ~4e-3), attention, task head, loss, weights and optimizer in float32.
Measured here on real molecules (RDKit's NCI set, at most 30 atoms, standardized TPSA regression,
the tiny checkpoint of ``save_tiny_checkpoint``), which the tolerances below are set from:

* predictions: relative error (L2 over all outputs) 0.5%, tolerance 2%;
* gradients: cosine similarity >= 0.99998 for every parameter tensor with a gradient, bound 0.99;
* 2 epochs of training (16 steps): per-step losses within 3% of float32 (a second float32 seed
  differs by 100%+), tolerance 6%; selected step equal, test RMSE within 1.5%, tolerance 5%;
  the same tolerances for one epoch of LoRA (the molecule benchmark's ``lora`` method).
"""

from __future__ import annotations

import importlib

import pytest
import torch

from gfm.adapters.encoding import TaskSampleEncoder
from gfm.adapters.heads import load_pretrained_for_task
from gfm.adapters.task_data import build_task_items
from gfm.adapters.training import (
    MixedPrecisionError,
    TrainingConfig,
    autocast_context,
    predict,
    train_task_model,
)
from gfm.data.dataset import GraphDataset
from gfm.testing.checkpoints import save_tiny_checkpoint
from gfm.utils.config import ConfigError


@pytest.fixture(scope="module")
def molecules():
    """The first 160 molecules of at most 30 atoms in RDKit's NCI set (TPSA regression), split 120 / 20 / 20."""
    from gfm.data.registry import load

    full = load("packaged/nci5k")
    graphs = [graph for graph in full.graphs if graph.num_nodes <= 30][:160]
    splits = {"train": torch.arange(0, 120), "valid": torch.arange(120, 140), "test": torch.arange(140, 160)}
    return GraphDataset("test/nci160", "molecules", full.task, graphs, splits=splits)


@pytest.fixture(scope="module")
def molecule_checkpoint(tmp_path_factory, molecules):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("mol") / "tiny", molecules.graphs, max_position_embeddings=512)


def _standardize(model, targets: torch.Tensor) -> None:
    """Standardized regression head, as the fine-tuning pipeline sets it (targets of order 1 for the loss)."""
    model.config.regression_target_mean = targets.double().mean(0).tolist()
    model.config.regression_target_std = targets.double().std(0).tolist()


def _targets(graphs) -> torch.Tensor:
    return torch.stack([g.y.reshape(-1)[:1].float() for g in graphs])


def test_bf16_predictions_match_fp32_on_real_molecules(molecule_checkpoint, molecules):
    torch.manual_seed(0)
    model, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
    with torch.no_grad():
        model.score.weight.normal_()  # a head of unit scale: outputs that depend on every hidden feature
    encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
    samples = encoder.graph_samples(molecules.graphs)
    reference = predict(model, encoder, samples, batch_size=32)
    mixed = predict(model, encoder, samples, batch_size=32, mixed_precision="bf16")
    assert mixed.dtype == reference.dtype == torch.float32
    assert mixed.shape == reference.shape == (len(samples), 1)
    assert not torch.equal(mixed, reference)  # the bf16 path really ran
    relative = ((mixed - reference).norm() / reference.norm()).item()
    assert relative < 0.02, relative
    assert (mixed - reference).abs().max() < 0.1 * reference.std()
    # padded batches give the same bf16 outputs up to the same tolerance
    padded = predict(model, encoder, samples, batch_size=32, pack=False, mixed_precision="bf16")
    assert ((padded - reference).norm() / reference.norm()).item() < 0.02


def test_bf16_gradients_point_where_fp32_gradients_point(molecule_checkpoint, molecules):
    torch.manual_seed(0)
    model, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
    graphs = molecules.graphs[:40]
    _standardize(model, _targets(graphs))
    encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
    _, batch = next(encoder.batches(encoder.graph_samples(graphs), 40, pack=True))
    gradients, losses = [], []
    for precision in ("no", "bf16"):
        model.zero_grad(set_to_none=True)
        with autocast_context(model, precision):
            loss = model(**batch, labels=_targets(graphs)).loss
        assert loss.dtype == torch.float32
        loss.backward()
        losses.append(loss.item())
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert losses[1] == pytest.approx(losses[0], rel=1e-2)
    reference, mixed = gradients
    assert reference.keys() == mixed.keys() and len(reference) > 20
    checked = 0
    for name, grad in reference.items():
        assert mixed[name].dtype == torch.float32, name  # float32 master weights, float32 gradients
        if grad.norm() == 0:  # gates this batch does not use (no PPR weights): zero in both
            assert mixed[name].norm() == 0, name
            continue
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), mixed[name].flatten(), dim=0).item()
        assert cosine > 0.99, (name, cosine)
        checked += 1
    assert checked > 20


def test_two_epochs_in_bf16_follow_the_fp32_losses(molecule_checkpoint, molecules):
    """Same seed, same batches: per-step losses within 6% (measured: 3%), same selected step, test RMSE within 5%."""
    outcomes = []
    for precision in ("no", "bf16"):
        torch.manual_seed(0)  # the new head's initialization
        model, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
        encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
        items = build_task_items(molecules, encoder)
        _standardize(model, items.targets["train"].reshape(len(items.samples["train"]), -1))
        config = TrainingConfig(epochs=2, batch_size=16, learning_rate=3e-3, mixed_precision=precision)
        outcomes.append(train_task_model(model, encoder, items, config, seed=0))
        assert all(p.dtype == torch.float32 for p in model.parameters())
    reference, mixed = outcomes
    assert len(reference.train_losses) == len(mixed.train_losses) == 2 * 8
    torch.testing.assert_close(torch.tensor(mixed.train_losses), torch.tensor(reference.train_losses), rtol=0.06, atol=1e-3)
    assert mixed.best_step == reference.best_step
    assert mixed.test == pytest.approx(reference.test, rel=0.05)
    assert mixed.test_outputs.dtype == torch.float32


def test_an_unknown_precision_is_refused_naming_the_field_and_the_choices():
    with pytest.raises(MixedPrecisionError, match=r"TrainingConfig\.mixed_precision='fp16' is not a fine-tuning "
                                                   r"precision; choose one of \['no', 'bf16'\]"):
        TrainingConfig(mixed_precision="fp16")
    from gfm.pipelines.finetune import FinetuneConfig
    from gfm.pipelines.molecule_benchmark import MoleculeBenchmarkConfig

    with pytest.raises(ConfigError, match=r"mixed_precision='bfloat16' is unknown; choose one of \['no', 'bf16'\]"):
        FinetuneConfig(dataset="packaged/nci5k", methods=["controls"], mixed_precision="bfloat16")
    with pytest.raises(ConfigError, match=r"mixed_precision='fp16' is unknown; choose one of \['no', 'bf16'\]"):
        MoleculeBenchmarkConfig(methods=["gin"], mixed_precision="fp16")


def test_the_field_reaches_the_training_config_through_both_recipes():
    from gfm.pipelines.finetune import FinetuneConfig
    from gfm.pipelines.molecule_benchmark import MoleculeBenchmarkConfig, _finetune_config

    assert FinetuneConfig(dataset="packaged/nci5k", methods=["controls"]).training().mixed_precision == "no"
    assert FinetuneConfig(dataset="packaged/nci5k", methods=["controls"], mixed_precision="bf16").training(
        scratch=True).mixed_precision == "bf16"
    benchmark = MoleculeBenchmarkConfig(methods=["full"], pretrained="ckpt", mixed_precision="bf16")
    finetune = _finetune_config(benchmark, "moleculenet/clintox", ["full"], [0])
    assert finetune.mixed_precision == "bf16" and finetune.training().mixed_precision == "bf16"


def test_fp32_resume_keys_are_unchanged_by_the_field():
    """runs.jsonl files written before ``mixed_precision`` existed keep matching their fp32 runs; bf16 gets its own key."""
    benchmark = importlib.import_module("gfm.pipelines.molecule_benchmark")
    settings = dict(pretrained="runs/pretrain/molecules_small/final", datasets=["moleculenet/clintox"],
                    max_train_molecules={})
    # computed with the module at commit 2133325, before the field existed
    before = {"full": "3183280e8b371637", "lora": "3183280e8b371637", "gin": "a5748446aeee3d77",
              "fingerprint_lr": "94b0ed2e966c4a62"}
    for method, key in before.items():
        fp32 = benchmark.MoleculeBenchmarkConfig(methods=[method], **settings)
        assert "mixed_precision" not in fp32.method_settings(method)
        assert benchmark._settings_key(fp32, method) == key, method
        bf16 = benchmark.MoleculeBenchmarkConfig(methods=[method], mixed_precision="bf16", **settings)
        if method in ("full", "lora"):
            assert bf16.method_settings(method)["mixed_precision"] == "bf16"
            assert benchmark._settings_key(bf16, method) != key
        else:  # fingerprints and GIN do not depend on it
            assert benchmark._settings_key(bf16, method) == key


def test_lora_in_bf16_trains_only_the_adapter_in_float32_and_follows_fp32(molecule_checkpoint, molecules):
    """The molecule benchmark's ``lora`` method in bf16: peft's LoRA layers under autocast, same tolerances."""
    from gfm.adapters.adaptation import AdaptationConfig, prepare_for_adaptation

    outcomes, frozen = [], []
    for precision in ("no", "bf16"):
        torch.manual_seed(0)
        model, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
        encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
        items = build_task_items(molecules, encoder)
        _standardize(model, items.targets["train"].reshape(len(items.samples["train"]), -1))
        lora = prepare_for_adaptation(model, AdaptationConfig(method="lora", lora_r=4))
        base = {name: p.detach().clone() for name, p in lora.named_parameters() if not p.requires_grad}
        config = TrainingConfig(epochs=1, batch_size=16, learning_rate=5e-3, mixed_precision=precision)
        outcomes.append(train_task_model(lora, encoder, items, config, seed=0))
        assert all(p.dtype == torch.float32 for p in lora.parameters())
        frozen.append(all(torch.equal(p, base[name]) for name, p in lora.named_parameters() if not p.requires_grad))
    assert frozen == [True, True]
    reference, mixed = outcomes
    assert len(mixed.train_losses) == 8 and mixed.train_losses != reference.train_losses  # bf16 really ran
    torch.testing.assert_close(torch.tensor(mixed.train_losses), torch.tensor(reference.train_losses), rtol=0.06, atol=1e-3)
    assert mixed.test == pytest.approx(reference.test, rel=0.05)
