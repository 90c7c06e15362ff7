"""The pretraining loop on the stand-in model: errors before training, accumulation, resume, export."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from gfm.testing.training import (
    PYTHON,
    TinyGraphTokenizer,
    base_config,
    metric_by_step,
    reset_accelerate_state,
    subprocess_env,
    write_config,
    write_run_inputs,
)
from gfm.training import (
    CheckpointConfigMismatchError,
    ConfigError,
    MixtureWeightError,
    UnknownConfigKeyError,
    VocabularyMismatchError,
    WorldSizeError,
    load_config,
    run_pretraining,
)
from gfm.training.checkpointing import find_latest_checkpoint, list_checkpoints, verify_checkpoint
from gfm.training.errors import CorruptCheckpointError
from gfm.training.tracking import read_metrics


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_run_inputs(tmp_path_factory.mktemp("inputs"))


def train(root: Path, inputs: tuple[Path, Path], **overrides: Any) -> dict[str, Any]:
    reset_accelerate_state()
    summary = run_pretraining(load_config(None, base_config(root, *inputs, **overrides)))
    reset_accelerate_state()
    return summary


# ---------------------------------------------------------------------------------------------
# bad inputs: named errors before any training step
# ---------------------------------------------------------------------------------------------
def test_unknown_config_key_names_the_close_match(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    path = write_config(tmp_path / "c.yaml", {**base_config(tmp_path, *inputs), "learnig_rate": 0.1})
    with pytest.raises(UnknownConfigKeyError, match=r"c\.yaml: unknown config key 'learnig_rate'; did you mean 'learning_rate'\?"):
        load_config(path)
    with pytest.raises(UnknownConfigKeyError, match="unknown config key 'max_step'; did you mean 'max_steps'"):
        load_config(None, {"max_step": 3})
    with pytest.raises(ConfigError, match="'max_steps' must be an integer, got 'ten'"):
        load_config(None, {"max_steps": "ten"})
    with pytest.raises(ConfigError, match="not a multiple of micro_batch_rows"):
        load_config(None, {"global_batch_rows": 6, "micro_batch_rows": 4})
    with pytest.raises(ConfigError, match="unknown objective 'next_tokens'; did you mean 'next_token'"):
        load_config(None, {"objectives": {"next_tokens": 1.0}})


def test_unknown_model_config_key_names_the_close_match(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    with pytest.raises(UnknownConfigKeyError, match="model_config: unknown key 'hiden_size'.*did you mean 'hidden_size'"):
        train(tmp_path, inputs, model_config={"hiden_size": 8})
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_mixture_weight_for_unknown_domain_fails_before_training(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    with pytest.raises(MixtureWeightError, match=r"\['molecules'\] that the corpus does not have; known domains: \['alpha', 'beta', 'gamma'\]"):
        train(tmp_path, inputs, mixture_weights={"alpha": 1, "beta": 1, "gamma": 1, "molecules": 2})
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_tokenizer_model_vocabulary_mismatch_fails_before_training(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    with pytest.raises(VocabularyMismatchError, match="model_config.vocab_size=99 but the tokenizer has 32 ids"):
        train(tmp_path, inputs, model_config={"hidden_size": 8, "vocab_size": 99})
    small = TinyGraphTokenizer(num_symbols=10).save_pretrained(tmp_path / "small_tokenizer")
    with pytest.raises(VocabularyMismatchError, match="tokenized by tokenizer .* but the run uses tokenizer"):
        train(tmp_path, inputs, tokenizer_name_or_path=str(small))

    def wrong_model(config, tokenizer, settings):  # a model built for another vocabulary
        from gfm.testing.training import TinyConfig, TinyModelForPretraining

        return TinyModelForPretraining(TinyConfig(vocab_size=tokenizer.vocab_size + 5))

    reset_accelerate_state()
    with pytest.raises(VocabularyMismatchError, match=r"model's vocabulary \(37 ids, 37 embeddings\) does not match the tokenizer's \(32 ids"):
        run_pretraining(load_config(None, base_config(tmp_path, *inputs)), model_factory=wrong_model)
    reset_accelerate_state()
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_world_size_promise_is_checked(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    with pytest.raises(WorldSizeError, match="promises world_size=2 processes but 1 are running"):
        train(tmp_path, inputs, world_size=2)


def test_resume_from_checkpoint_of_another_config_is_a_named_error(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    train(tmp_path, inputs, max_steps=2, save_steps=2)
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000002"
    assert checkpoint.is_dir()
    with pytest.raises(CheckpointConfigMismatchError, match=r"another configuration \(learning_rate: checkpoint 0\.01, this run 0\.02\)"):
        train(tmp_path, inputs, max_steps=2, resume_from_checkpoint="latest", learning_rate=0.02)
    with pytest.raises(CheckpointConfigMismatchError, match="max_length: checkpoint 48, this run 64; max_steps: checkpoint 2, this run 4"):
        train(tmp_path, inputs, max_steps=4, resume_from_checkpoint=str(checkpoint), max_length=64)
    # an existing run folder is never silently overwritten
    with pytest.raises(Exception, match="already holds checkpoints"):
        train(tmp_path, inputs, max_steps=2)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def test_gradient_accumulation_equals_one_big_micro_batch(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    """Losses are normalized by the global target count, so the split into micro-batches does not matter."""
    common = {"model_config": {"hidden_size": 16, "dropout": 0.0}, "objectives": {"next_token": 1.0, "masked_token": 0.5},
              "max_steps": 5, "global_batch_rows": 4}
    train(tmp_path / "a", inputs, micro_batch_rows=4, **common)
    train(tmp_path / "b", inputs, micro_batch_rows=1, **common)
    a, b = metric_by_step(tmp_path / "a" / "run"), metric_by_step(tmp_path / "b" / "run")
    assert list(a) == [1, 2, 3, 4, 5]
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-6)
    assert a[5] < a[1]


def test_resume_gives_the_same_losses_step_for_step(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    """Dropout on: model, optimizer, schedule, RNG and data position must all be restored."""
    common = {"max_steps": 8, "save_steps": 3, "save_total_limit": 5, "objectives": {"next_token": 1.0, "masked_token": 1.0}}
    train(tmp_path / "full", inputs, **common)
    partial = tmp_path / "partial"
    stopped = train(partial, inputs, **common, stop_after_steps=3)
    assert stopped == {"steps": 3, "stopped_early": True, "checkpoint_step": 3}
    # a second segment resumes at step 3 and must replay steps 4..8 exactly
    train(partial, inputs, **common, resume_from_checkpoint="latest")
    full, resumed = metric_by_step(tmp_path / "full" / "run"), metric_by_step(partial / "run")
    assert sorted(resumed) == list(range(1, 9))
    assert resumed == full  # bitwise: same floats step for step
    lr_full, lr_resumed = metric_by_step(tmp_path / "full" / "run", "lr"), metric_by_step(partial / "run", "lr")
    assert lr_full == lr_resumed
    state = verify_checkpoint(partial / "run" / "checkpoints" / "step-00000006")
    assert (state["next_epoch"], state["step"]) == (0, 6)
    assert len(list_checkpoints(partial / "run" / "checkpoints")) == 2  # steps 3 and 6


def test_half_written_or_corrupted_checkpoints_are_never_loaded(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    common = {"max_steps": 6, "save_steps": 2, "save_total_limit": 5}
    train(tmp_path / "full", inputs, **common)
    run = tmp_path / "run"
    train(tmp_path, inputs, **common, stop_after_steps=4)
    root = run / "checkpoints"
    # a checkpoint being written when the process died: a .tmp- directory with partial content
    partial = root / ".tmp-step-00000006"
    shutil.copytree(root / "step-00000004", partial)
    (partial / "trainer_state.json").unlink()
    # and the newest complete one damaged afterwards (truncated weights)
    weights = root / "step-00000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CorruptCheckpointError, match="model.safetensors has 100 bytes"):
        verify_checkpoint(root / "step-00000004")
    assert find_latest_checkpoint(root) == root / "step-00000002"
    train(tmp_path, inputs, **common, resume_from_checkpoint="latest")
    assert metric_by_step(run) == metric_by_step(tmp_path / "full" / "run")
    assert not partial.exists(), "the stale partial checkpoint is cleared by the next save of that step"
    with pytest.raises(CorruptCheckpointError, match="no trainer_state.json"):
        (root / "bad").mkdir()
        verify_checkpoint(root / "bad")


def test_training_writes_metrics_plots_summary_and_export(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    summary = train(tmp_path, inputs, max_steps=12, report_to=["csv", "tensorboard"], plot=True, eval_steps=6,
                    objectives={"next_token": 1.0, "masked_token": 0.5})
    run = tmp_path / "run"
    assert (run / "plots" / "eval_next_token_loss.png").stat().st_size > 1000
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    eval_steps = sorted({r["step"] for r in read_metrics(run / "metrics.csv") if r["split"] == "eval"})
    assert eval_steps == [0, 6, 12]
    for domain in ("alpha", "beta", "gamma"):
        values = summary["losses"]["eval"][f"loss/next_token/{domain}"]
        assert values["last"] < values["first"], domain
    final = Path(summary["export_dir"])
    config = json.loads((final / "config.json").read_text())
    tokenizer_config = json.loads((final / "tokenizer_config.json").read_text())
    assert config["tokenizer_hash"] == tokenizer_config["content_hash"]
    assert config["tokenizer_class"] == "TinyGraphTokenizer"
    assert json.loads((final / "training_summary.json").read_text())["steps"] == 12
    assert (final / "model.safetensors").is_file()


def test_export_loads_without_deepspeed(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    """The real GFMForPretraining export loads with AutoModel / AutoModelForPreTraining, deepspeed blocked."""
    summary = train(tmp_path, inputs, max_steps=2, model_type="gfm",
                    model_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                  "max_position_embeddings": 64})
    final = Path(summary["export_dir"])
    from gfm.modeling import GFMForPretraining
    from gfm.testing.training import make_graph
    from gfm.tokenization.tokenized_graph import pack_tokenized_graphs

    batch = pack_tokenized_graphs([make_graph(torch.Generator().manual_seed(0), "alpha", 1)], token_budget=48)
    torch.save(batch, tmp_path / "batch.pt")
    model = GFMForPretraining.from_pretrained(final).eval()
    with torch.no_grad():
        torch.save({"logits": model(**batch, causal=True).logits,
                    "hidden": model.model(**{k: v for k, v in batch.items() if k != "num_nodes"}).last_hidden_state},
                   tmp_path / "expected.pt")
    code = f"""
import sys
sys.modules['deepspeed'] = None  # any import of deepspeed now raises ImportError
import torch
import gfm  # registers the gfm model classes with the Auto classes
import gfm.testing.training  # noqa: F401  (registers the stand-in tokenizer class of this corpus)
from transformers import AutoModel, AutoModelForPreTraining
from gfm.tokenization.base import AutoGraphTokenizer
batch = torch.load({str(tmp_path / 'batch.pt')!r}, weights_only=True)
expected = torch.load({str(tmp_path / 'expected.pt')!r}, weights_only=True)
tokenizer = AutoGraphTokenizer.from_pretrained({str(final)!r})
pretraining = AutoModelForPreTraining.from_pretrained({str(final)!r}).eval()
backbone = AutoModel.from_pretrained({str(final)!r}).eval()
assert tokenizer.content_hash == pretraining.config.tokenizer_hash
assert type(pretraining).__name__ == 'GFMForPretraining' and type(backbone).__name__ == 'GFMModel'
with torch.no_grad():
    assert torch.equal(pretraining(**batch, causal=True).logits, expected['logits'])
    hidden = backbone(**{{k: v for k, v in batch.items() if k != 'num_nodes'}}).last_hidden_state
    assert torch.equal(hidden, expected['hidden'])
assert not [m for m in sys.modules if m.startswith('deepspeed') and sys.modules[m] is not None]
print('loaded-without-deepspeed')
"""
    result = subprocess.run([PYTHON, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded-without-deepspeed" in result.stdout


def test_masked_code_objective_on_quantized_tokens_reports_per_level_losses(tmp_path: Path) -> None:
    inputs = write_run_inputs(tmp_path, quantized=True)
    summary = train(tmp_path, inputs, max_steps=20, learning_rate=0.03, objectives={"masked_code": 1.0, "next_token": 0.5})
    eval_rows = [r for r in read_metrics(tmp_path / "run" / "metrics.csv") if r["split"] == "eval"]
    overall = {r["step"]: r["value"] for r in eval_rows if r["metric"] == "loss/masked_code"}
    assert overall[20] < overall[0]
    assert {f"loss/masked_code/{d}" for d in ("alpha", "beta", "gamma")} <= set(summary["losses"]["eval"])
    levels = {r["metric"] for r in read_metrics(tmp_path / "run" / "metrics.csv") if "level" in r["metric"]}
    assert levels == {"loss/masked_code/level0", "loss/masked_code/level1"}
    # an Eulerian (level-free) corpus cannot train masked_code: named error before training
    plain = write_run_inputs(tmp_path / "plain")
    with pytest.raises(ConfigError, match="masked_code needs quantized tokens but .* has no level_ids"):
        train(tmp_path / "plain", plain, objectives={"masked_code": 1.0})


def test_gradient_checkpointing_gives_the_same_losses(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    common = {"model_type": "gfm", "max_steps": 3, "objectives": {"next_token": 1.0, "masked_token": 1.0},
              "model_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                               "max_position_embeddings": 64, "hidden_dropout": 0.0}}
    train(tmp_path / "plain", inputs, **common)
    train(tmp_path / "checkpointed", inputs, **common, gradient_checkpointing=True)
    plain, checkpointed = metric_by_step(tmp_path / "plain" / "run"), metric_by_step(tmp_path / "checkpointed" / "run")
    assert plain.keys() == checkpointed.keys() == {1, 2, 3}
    for step in plain:
        assert checkpointed[step] == pytest.approx(plain[step], rel=1e-6)


def test_special_token_ids_of_a_quantized_tokenizer_are_its_special_ids_only() -> None:
    """``code_token_id`` is a method of the quantized tokenizer, not a special id: it used to crash here."""
    from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig
    from gfm.tokenization.special_tokens import SPECIAL_TOKENS
    from gfm.training.trainer import special_token_ids

    tokenizer = QuantizedTokenizer(QuantizedTokenizerConfig())
    ids = special_token_ids(tokenizer)
    assert ids == sorted({tokenizer.special_id(token) for token in SPECIAL_TOKENS})
    assert tokenizer.mask_token_id in ids and tokenizer.pad_token_id in ids


# ---------------------------------------------------------------------------------------------
# a held-out corpus (graphs the run never trains on), evaluated beside the held-back rows
# ---------------------------------------------------------------------------------------------
def test_held_out_corpus_is_evaluated_and_logged_as_its_own_split(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    # A copy of the training corpus under another path, restricted to the 6 graphs per domain that
    # are the training corpus's own held-back rows (same seeded order, 10% of 60): its held-out
    # losses must then equal the eval losses exactly, which checks rows, packing and reduction.
    copy = tmp_path / "held_out_copy"
    shutil.copytree(inputs[1], copy)
    summary = train(tmp_path, inputs, max_steps=8, eval_steps=4, held_out_corpus=str(copy), held_out_max_graphs=6,
                    objectives={"next_token": 1.0, "masked_token": 0.5})
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    held_out = {(r["step"], r["metric"]): r["value"] for r in rows if r["split"] == "held_out"}
    evaluated = {(r["step"], r["metric"]): r["value"] for r in rows if r["split"] == "eval"}
    assert sorted({step for step, _ in held_out}) == [0, 4, 8]
    assert set(held_out) == set(evaluated)
    for key, value in held_out.items():
        assert value == pytest.approx(evaluated[key], rel=1e-12), key
    assert summary["losses"]["held_out"]["loss/next_token/alpha"]["last"] < summary["losses"]["held_out"][
        "loss/next_token/alpha"]["first"]


def test_held_out_corpus_must_not_be_the_training_corpus(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="'held_out_corpus' .* is the training corpus; a held-out loss needs graphs"):
        train(tmp_path, inputs, held_out_corpus=str(inputs[1]))


def test_held_out_corpus_of_another_tokenizer_is_refused(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    from gfm.testing.training import write_corpus

    other = write_corpus(tmp_path / "other_corpus", graphs_per_domain=8, tokenizer_hash="f" * 64)
    with pytest.raises(VocabularyMismatchError, match="other_corpus was tokenized by tokenizer ffffffffffff, but the run"):
        train(tmp_path, inputs, held_out_corpus=str(other))
