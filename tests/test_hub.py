"""Hub-ready checkpoints: hub-cache resolution offline, model cards from real figures, named errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

import gfm  # noqa: F401  (Auto registration)
from gfm.data import load
from gfm.hub import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    ModelCardInfo,
    TokenizerMismatchError,
    load_checkpoint,
    push_checkpoint_to_hub,
    push_to_hub,
    resolve_checkpoint,
    save_checkpoint,
    verify_safetensors,
)
from gfm.modeling import GFMModel
from gfm.testing.checkpoints import as_hub_cache, tiny_config_for
from gfm.tokenization import AutoGraphTokenizer
from gfm.tokenization.eulerian import EulerianTokenizer


@pytest.fixture(scope="module")
def molecules():
    return load("packaged/nci5k").graphs[:64]


@pytest.fixture(scope="module")
def tokenizer(molecules):
    return EulerianTokenizer.train(molecules)


def _model(tokenizer, seed: int = 0) -> GFMModel:
    torch.manual_seed(seed)
    config = tiny_config_for(tokenizer, hidden_size=32, intermediate_size=64, max_position_embeddings=1024)
    return GFMModel(config).eval()


def _card(name: str) -> ModelCardInfo:
    return ModelCardInfo(
        model_name=name,
        corpus={"packaged/nci5k": {"domain": "molecules", "graphs": 64, "tokens": 12345, "weight": 1.0}},
        objectives={"next_token": 1.0, "masked_token": 0.5},
        training={"steps": 17, "first_loss": 6.4321, "last_loss": 1.2345, "world_size": 1},
        evaluation=[
            {"task": "graph-regression", "dataset": "packaged/nci5k", "metric": "mae", "value": 12.75, "std": 0.5,
             "baseline": "scratch", "baseline_value": 20.25, "control": "mean predictor", "control_value": 31.5,
             "split": "test"}
        ],
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    directory = tmp_path_factory.mktemp("ckpt") / "gfm-tiny"
    model = _model(tokenizer)
    save_checkpoint(model, tokenizer, directory, card_info=_card("org/gfm-tiny"))
    return directory, model


def _batch(tokenizer, molecules):
    return tokenizer(molecules[:4], padding=True, return_tensors="pt")


def test_load_by_hub_id_offline_gives_identical_outputs(checkpoint, tokenizer, molecules, tmp_path, monkeypatch):
    directory, source = checkpoint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    as_hub_cache(directory, cache, "org/gfm-tiny")
    model, loaded_tokenizer = load_checkpoint("org/gfm-tiny", cache_dir=cache)
    assert loaded_tokenizer.content_hash == tokenizer.content_hash
    batch = _batch(loaded_tokenizer, molecules)
    assert torch.equal(batch["input_ids"], _batch(tokenizer, molecules)["input_ids"])
    with torch.no_grad():
        expected = source(**batch).last_hidden_state
        assert torch.equal(model.eval()(**batch).last_hidden_state, expected)
        # transformers' own Auto class resolves the same id through the same cache
        auto = AutoModel.from_pretrained("org/gfm-tiny", cache_dir=cache, local_files_only=True).eval()
        assert torch.equal(auto(**batch).last_hidden_state, expected)
    assert AutoGraphTokenizer.from_pretrained(resolve_checkpoint("org/gfm-tiny", cache_dir=cache)).content_hash == (
        tokenizer.content_hash
    )


def test_model_card_renders_the_run_figures(checkpoint, tokenizer):
    directory, model = checkpoint
    card = (directory / "README.md").read_text()
    for figure in ("6.432", "1.234", "12.75 ± 0.5", "scratch: 20.25", "mean predictor: 31.5", "12,345", "next_token"):
        assert figure in card, figure
    assert tokenizer.content_hash in card
    assert f"{sum(p.numel() for p in model.parameters()):,}" in card
    header = card.split("---")[1]
    assert "model-index" in header and "value: 12.75" in header and "library_name: gfm" in header
    assert json.loads((directory / "training_summary.json").read_text())["last_loss"] == 1.2345
    for placeholder in ("TODO", "{{", "[More Information Needed]", "None |"):
        assert placeholder not in card


def test_id_missing_from_cache_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError, match=r"'org/absent'.*not in the hub cache.*hf download org/absent"):
        resolve_checkpoint("org/absent", cache_dir=tmp_path)


def test_mismatched_tokenizer_is_refused(checkpoint, molecules, tmp_path):
    directory, _ = checkpoint
    broken = tmp_path / "mixed"
    shutil.copytree(directory, broken)
    other = EulerianTokenizer.train(molecules[:32], num_index_tokens=64)
    assert other.content_hash != AutoGraphTokenizer.from_pretrained(directory).content_hash
    other.save_pretrained(broken)  # overwrite the tokenizer files with another tokenizer's
    with pytest.raises(TokenizerMismatchError, match="does not match the model's tokenizer_hash"):
        load_checkpoint(broken)


def test_truncated_weights_are_a_named_error(checkpoint, tmp_path):
    directory, _ = checkpoint
    broken = tmp_path / "truncated"
    shutil.copytree(directory, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match=r"truncated: \d+ bytes on disk, header needs \d+"):
        load_checkpoint(broken)
    weights.write_bytes(b"\x00" * 4)
    with pytest.raises(CorruptCheckpointError, match="too short for a safetensors file"):
        verify_safetensors(weights)


def test_checkpoint_without_tokenizer_is_refused(checkpoint, tmp_path):
    directory, _ = checkpoint
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(directory / name, bare / name)
    with pytest.raises(TokenizerMismatchError, match="has no tokenizer_config.json"):
        load_checkpoint(bare)


def test_push_uploads_model_tokenizer_and_card_in_one_commit(checkpoint):
    directory, _ = checkpoint

    class RecordingApi:
        def __init__(self):
            self.calls = []

        def create_repo(self, **kwargs):
            self.calls.append(("create_repo", kwargs))

        def upload_folder(self, **kwargs):
            self.calls.append(("upload_folder", kwargs, sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())))
            return "commit-info"

    api = RecordingApi()
    assert push_to_hub(directory, "org/gfm-tiny", api=api) == "commit-info"
    (_, create), (_, upload, files) = api.calls
    assert create["repo_id"] == "org/gfm-tiny" and upload["repo_id"] == "org/gfm-tiny"
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md"} <= set(files)


def test_push_checkpoint_saves_the_pair_together(tokenizer):
    model = _model(tokenizer, seed=1)

    class RecordingApi:
        files: list[str] = []

        def create_repo(self, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            folder = Path(kwargs["folder_path"])
            RecordingApi.files = sorted(p.name for p in folder.iterdir())
            config = json.loads((folder / "config.json").read_text())
            RecordingApi.hash = config["tokenizer_hash"]

    push_checkpoint_to_hub(model, tokenizer, "org/pair", card_info=_card("org/pair"), api=RecordingApi())
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md"} <= set(RecordingApi.files)
    assert RecordingApi.hash == tokenizer.content_hash
