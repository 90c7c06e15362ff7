"""Nothing silently wrong when a model folder is damaged or a batch is malformed (issue 14, models half).

Each test is a case a user hit: before the fix the load succeeded with wrong weights (corrupted
bytes, a config with fewer layers, a planted pickle file) or failed with a raw error
(SafetensorError, a "model_type" ValueError, torch's reshape / embedding errors). Every test
checks the message names the file or field and the fix.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

import gfm.modeling  # noqa: F401  (Auto registration)
from gfm.hub import CorruptCheckpointError, load_checkpoint, push_to_hub, save_checkpoint
from gfm.modeling import (
    GFMCheckpointFileError,
    GFMCheckpointMismatchError,
    GFMConfig,
    GFMCorruptWeightsError,
    GFMForGraphClassification,
    GFMForNodeClassification,
    GFMForPretraining,
    GFMInputError,
    GFMModel,
    GFMNonFiniteWeightsError,
)
from gfm.modeling.checkpoint_files import WEIGHTS_MANIFEST_NAME
from gfm.testing.checkpoints import as_hub_cache
from gfm.testing.modeling import tiny_gfm_config
from gfm.testing.training import TinyGraphTokenizer
from gfm.utils.errors import GFMError
from gfm.utils.io import sha256_file

VOCAB = 32  # TinyGraphTokenizer's vocabulary


def batch(rows: int = 2, length: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(7, VOCAB, (rows, length), generator=generator)}


def data_start(path: Path) -> int:
    """Offset of the first tensor byte in a safetensors file."""
    (header_size,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + header_size


def tensor_range(path: Path, name: str) -> tuple[int, int]:
    raw = path.read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    begin, end = json.loads(raw[8 : 8 + header_size])[name]["data_offsets"]
    return 8 + header_size + begin, 8 + header_size + end


def overwrite(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    size = len(raw)
    raw[offset : offset + len(data)] = data
    assert len(raw) == size
    path.write_bytes(bytes(raw))


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, GFMForPretraining]:
    """A checkpoint written by gfm.hub.save_checkpoint (with its weights manifest)."""
    torch.manual_seed(0)
    model = GFMForPretraining(tiny_gfm_config(vocab_size=VOCAB)).eval()
    directory = save_checkpoint(model, TinyGraphTokenizer(), tmp_path / "gfm-pair")
    return directory, model


# ---------------------------------------------------------------------------------------------
# 4. corrupted weights: manifest at save time, verified at load; non-finite weights refused always
# ---------------------------------------------------------------------------------------------
def test_save_records_the_sha256_of_the_weights(pair) -> None:
    directory, _ = pair
    manifest = json.loads((directory / WEIGHTS_MANIFEST_NAME).read_text())
    weights = directory / "model.safetensors"
    assert manifest["files"] == {"model.safetensors": {"size": weights.stat().st_size, "sha256": sha256_file(weights)}}


def test_same_size_byte_corruption_is_refused_by_every_loader(pair, tmp_path: Path, monkeypatch) -> None:
    directory, model = pair
    weights = directory / "model.safetensors"
    begin, _ = tensor_range(weights, "model.embeddings.embed_tokens.weight")
    # flip the lowest mantissa bit of one weight: still a finite number, so only the manifest can tell
    overwrite(weights, begin, bytes([weights.read_bytes()[begin] ^ 0x01]))
    expected = r"model\.safetensors: SHA-256 [0-9a-f]{16}… does not match [0-9a-f]{16}… recorded in weights_manifest\.json"
    with pytest.raises(CorruptCheckpointError, match=expected + ".*copy or save the checkpoint again"):
        load_checkpoint(directory)
    for loader in (AutoModel, AutoModelForPreTraining, GFMForPretraining, GFMModel):
        with pytest.raises(GFMCorruptWeightsError, match=expected):
            loader.from_pretrained(directory)
    with pytest.raises(CorruptCheckpointError, match=expected):
        push_to_hub(directory, "org/x", api=object())  # never published (the api is not even reached)

    # through the hub cache (a hub id, offline): the manifest travels with the snapshot
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    as_hub_cache(directory, cache, "org/corrupt")
    with pytest.raises(GFMCorruptWeightsError, match=expected):
        AutoModel.from_pretrained("org/corrupt", cache_dir=cache, local_files_only=True)


def test_nan_weights_are_refused_even_without_a_manifest(tmp_path: Path) -> None:
    """A folder from plain save_pretrained (or from before the manifest): the corruption makes NaN embeddings."""
    torch.manual_seed(0)
    GFMModel(tiny_gfm_config(vocab_size=VOCAB)).save_pretrained(tmp_path / "old")
    weights = tmp_path / "old" / "model.safetensors"
    assert not (tmp_path / "old" / WEIGHTS_MANIFEST_NAME).exists()
    begin, _ = tensor_range(weights, "embeddings.embed_tokens.weight")
    overwrite(weights, begin, b"\xff" * 64)  # 16 float32 NaNs, same file size
    with pytest.raises(GFMNonFiniteWeightsError,
                       match=r"weights hold NaN or infinite values: embeddings\.embed_tokens\.weight \(16 of 1024\)"):
        AutoModel.from_pretrained(tmp_path / "old")


def test_saving_a_model_with_nan_weights_is_refused(tmp_path: Path) -> None:
    model = GFMModel(tiny_gfm_config(vocab_size=VOCAB))
    with torch.no_grad():
        model.norm.weight[3] = float("inf")
    with pytest.raises(GFMNonFiniteWeightsError, match=r"GFMModel \(not saved to .*\): weights hold NaN or infinite "
                                                          r"values: norm\.weight \(1 of 32\)"):
        save_checkpoint(model, TinyGraphTokenizer(), tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_a_clean_checkpoint_still_loads_bit_identical(pair) -> None:
    directory, model = pair
    loaded, tokenizer = load_checkpoint(directory, model_class=AutoModelForPreTraining)
    assert isinstance(tokenizer, TinyGraphTokenizer)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**batch()).logits, model(**batch()).logits)


# ---------------------------------------------------------------------------------------------
# 5. the config and the weights must agree in both directions (task heads excepted)
# ---------------------------------------------------------------------------------------------
def edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_config_with_fewer_layers_than_the_weights_is_refused(tmp_path: Path) -> None:
    GFMModel(tiny_gfm_config(vocab_size=VOCAB)).save_pretrained(tmp_path / "ckpt")
    edit_config(tmp_path / "ckpt", num_hidden_layers=1)
    with pytest.raises(GFMCheckpointMismatchError,
                       match=r"holds backbone weights the model does not have: \['layers\.1\.input_layernorm\.weight'.*"
                             r"and \d+ more; loading would silently drop them.*num_hidden_layers=1.*restore the "
                             r"checkpoint's own config\.json"):
        AutoModel.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(GFMCheckpointMismatchError, match="layers.1"):
        GFMForPretraining.from_pretrained(tmp_path / "ckpt")
    # on purpose: ignore_mismatched_sizes drops them
    assert len(AutoModel.from_pretrained(tmp_path / "ckpt", ignore_mismatched_sizes=True).layers) == 1


def test_config_with_more_layers_than_the_weights_is_refused(tmp_path: Path) -> None:
    GFMModel(tiny_gfm_config(vocab_size=VOCAB)).save_pretrained(tmp_path / "ckpt")
    edit_config(tmp_path / "ckpt", num_hidden_layers=3)
    with pytest.raises(GFMCheckpointMismatchError, match=r"lacks backbone weights \['layers\.2\..*num_hidden_layers"):
        AutoModel.from_pretrained(tmp_path / "ckpt")


def test_task_heads_new_or_left_over_stay_allowed(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pretraining = GFMForPretraining(tiny_gfm_config(vocab_size=VOCAB, tie_word_embeddings=False)).eval()
    pretraining.save_pretrained(tmp_path / "pretraining")  # lm_head.weight saved (untied)
    head = GFMForNodeClassification.from_pretrained(tmp_path / "pretraining", num_labels=3)  # new score head
    backbone = AutoModel.from_pretrained(tmp_path / "pretraining")  # left-over lm_head
    classifier = GFMForGraphClassification(tiny_gfm_config(vocab_size=VOCAB, num_labels=2)).eval()
    classifier.save_pretrained(tmp_path / "classifier")
    backbone_of_classifier = AutoModel.from_pretrained(tmp_path / "classifier")  # left-over score head
    with torch.no_grad():
        expected = pretraining.model(**batch()).last_hidden_state
        assert torch.equal(backbone.eval()(**batch()).last_hidden_state, expected)
        assert torch.equal(head.model.eval()(**batch()).last_hidden_state, expected)
        assert torch.equal(backbone_of_classifier.eval()(**batch()).last_hidden_state,
                           classifier.model(**batch()).last_hidden_state)


# ---------------------------------------------------------------------------------------------
# 6. pickle through the back door
# ---------------------------------------------------------------------------------------------
def test_planted_pytorch_model_bin_is_refused_and_never_unpickled(tmp_path: Path, monkeypatch) -> None:
    model = GFMModel(tiny_gfm_config(vocab_size=VOCAB))
    model.save_pretrained(tmp_path / "gfm-planted")
    folder = tmp_path / "gfm-planted"
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    TinyGraphTokenizer().save_pretrained(folder)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called on a gfm load path")

    monkeypatch.setattr(torch, "load", no_unpickling)
    expected = (r"no model\.safetensors, only \['pytorch_model\.bin'\]: gfm loads safetensors only and never reads "
                r"pickle-based weights")
    for loader in (GFMModel, AutoModel, AutoModelForPreTraining):
        with pytest.raises(GFMCheckpointFileError, match=expected):
            loader.from_pretrained(folder)
    with pytest.raises(GFMCheckpointFileError, match=expected):
        load_checkpoint(folder)
    with pytest.raises(GFMCheckpointFileError, match="use_safetensors=False is not supported"):
        GFMModel.from_pretrained(folder, use_safetensors=False)


# ---------------------------------------------------------------------------------------------
# 7. raw tracebacks turned into named errors
# ---------------------------------------------------------------------------------------------
def test_deleted_config_json_is_named(pair) -> None:
    directory, _ = pair
    (directory / "config.json").unlink()
    expected = r"gfm-pair: config\.json is missing in this directory.*copy it back"
    # before: GFMModel built a default config and failed on weight shapes; GFMConfig returned defaults
    for loader in (GFMModel, GFMForPretraining, GFMConfig):
        with pytest.raises(GFMCheckpointFileError, match=expected):
            loader.from_pretrained(directory)
    with pytest.raises(GFMCheckpointFileError, match=expected):  # the recipes' path (before: "model_type" ValueError)
        load_checkpoint(directory)
    # transformers' own Auto classes fail before any gfm code runs; their message is transformers'
    with pytest.raises(ValueError, match="config.json"):
        AutoConfig.from_pretrained(directory)


def test_truncated_safetensors_is_named_for_every_loader(pair, tmp_path: Path, monkeypatch) -> None:
    directory, _ = pair
    weights = directory / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:-100])
    expected = rf"model\.safetensors: truncated: {size - 100} bytes on disk, header needs {size}; the file was cut short"
    for loader in (AutoModel, GFMForPretraining):
        with pytest.raises(GFMCorruptWeightsError, match=expected):
            loader.from_pretrained(directory)
    with pytest.raises(CorruptCheckpointError, match=expected):
        load_checkpoint(directory)
    # through the hub cache nothing is checked before transformers reads the file: its SafetensorError is named
    (directory / WEIGHTS_MANIFEST_NAME).unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    as_hub_cache(directory, tmp_path / "hub", "org/truncated")
    with pytest.raises(GFMCorruptWeightsError, match=r"org/truncated: the safetensors weights cannot be read .*cut short"):
        AutoModel.from_pretrained("org/truncated", cache_dir=tmp_path / "hub", local_files_only=True)


def test_empty_batch_and_float_ids_are_named_input_errors() -> None:
    torch.manual_seed(0)
    for model in (GFMModel(tiny_gfm_config(vocab_size=VOCAB)), GFMForPretraining(tiny_gfm_config(vocab_size=VOCAB)), GFMForGraphClassification(tiny_gfm_config(vocab_size=VOCAB))):
        with pytest.raises(GFMInputError, match=r"the batch is empty: input_ids has shape \(0, 6\) \(0 rows of 6 "
                                                r"positions\).*drop empty batches"):
            model(input_ids=torch.zeros(0, 6, dtype=torch.long))
        with pytest.raises(GFMInputError, match=r"the batch is empty: input_ids has shape \(2, 0\)"):
            model(input_ids=torch.zeros(2, 0, dtype=torch.long))
        with pytest.raises(GFMInputError, match=r"input_ids has dtype torch\.float32; token ids must be an integer "
                                                r"tensor \(torch\.long\).*input_ids\.long\(\)"):
            model(input_ids=batch()["input_ids"].float())


def test_new_errors_are_gfm_errors_with_their_builtin_bases() -> None:
    assert issubclass(GFMCheckpointFileError, GFMError) and issubclass(GFMCheckpointFileError, FileNotFoundError)
    assert issubclass(GFMCorruptWeightsError, GFMError) and issubclass(GFMCorruptWeightsError, ValueError)
    assert issubclass(GFMNonFiniteWeightsError, GFMCorruptWeightsError)
