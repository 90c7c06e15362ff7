"""Adaptation methods of one recipe: peft LoRA, full fine-tuning, linear probe.

- ``lora``: ``peft.get_peft_model`` with a ``LoraConfig`` whose ``target_modules`` come from
  the run config (default: the attention projections ``q_proj k_proj v_proj o_proj``); the new
  task head (``score``) trains fully through ``modules_to_save``. The adapter is saved in peft's
  format (``adapter_config.json`` + ``adapter_model.safetensors``) plus ``gfm_adapter.json``,
  which records the task head and a fingerprint of the base model the adapter was trained on;
  loading it onto another base raises :class:`AdapterMismatchError`. On export the adapter is
  merged (``merge_and_unload``) into a plain gfm checkpoint.
- ``full``: every parameter trains.
- ``linear_probe``: the backbone is frozen; only the task head trains.

``AutoPeftModel.from_pretrained`` also works on a saved adapter directory, given
``import_allowlist=["gfm"]`` (peft refuses to import a custom model class otherwise) and the
head's ``num_labels`` / ``problem_type``; :func:`load_adapter` does this for you.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_write_json

from .heads import backbone_of

__all__ = [
    "ADAPTATION_METHODS",
    "AdaptationConfig",
    "AdapterMismatchError",
    "prepare_for_adaptation",
    "parameter_counts",
    "base_model_fingerprint",
    "save_adapter",
    "load_adapter",
    "export_merged",
    "GFM_ADAPTER_FILE",
]

logger = logging.getLogger(__name__)

ADAPTATION_METHODS = ("lora", "full", "linear_probe")
GFM_ADAPTER_FILE = "gfm_adapter.json"


class AdapterMismatchError(GFMError, ValueError):
    """A saved adapter does not belong to the base model it is being loaded onto."""


@dataclass
class AdaptationConfig:
    """How the pretrained model is adapted.

    Attributes:
        method: ``"lora"``, ``"full"`` or ``"linear_probe"``.
        lora_r / lora_alpha / lora_dropout: LoRA rank, scaling numerator and dropout.
        target_modules: module names (suffixes) LoRA wraps, e.g. ``["q_proj", "v_proj"]``.
        modules_to_save: modules trained fully beside LoRA (the new task head).
        max_trainable_fraction: LoRA only: raise if more than this share of parameters trains
            (adapters exist to keep per-task copies small).
    """

    method: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    modules_to_save: list[str] = field(default_factory=lambda: ["score"])
    max_trainable_fraction: float | None = 0.05

    def __post_init__(self) -> None:
        if self.method not in ADAPTATION_METHODS:
            raise ValueError(f"AdaptationConfig.method={self.method!r}; expected one of {ADAPTATION_METHODS}")


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (a peft wrapper counts base + adapter)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def prepare_for_adaptation(model: nn.Module, config: AdaptationConfig) -> nn.Module:
    """Return the model ready to train with ``config.method`` (a ``PeftModel`` for LoRA)."""
    if config.method == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    if config.method == "linear_probe":
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(any(name == m or name.startswith(f"{m}.") for m in config.modules_to_save))
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(f"linear probe: no parameter matches modules_to_save={config.modules_to_save}")
        return model
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in config.target_modules if m not in names]
    if missing:
        raise ValueError(
            f"LoRA target_modules {missing} name no module of {type(model).__name__}; "
            f"linear layers available: {sorted(n for n, m in model.named_modules() if isinstance(m, nn.Linear))[:12]}..."
        )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        modules_to_save=list(config.modules_to_save),
    )
    wrapped = get_peft_model(model, lora)
    trainable, total = parameter_counts(wrapped)
    fraction = trainable / total
    logger.info("LoRA: %d trainable of %d parameters (%.3f%%)", trainable, total, 100 * fraction)
    if config.max_trainable_fraction is not None and fraction > config.max_trainable_fraction:
        raise ValueError(
            f"LoRA would train {fraction:.2%} of the parameters, above max_trainable_fraction="
            f"{config.max_trainable_fraction:.2%}; lower lora_r or target fewer modules"
        )
    return wrapped


def base_model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the backbone's architecture and pretrained weights (task head excluded).

    For a LoRA-wrapped model the base weights are read without the LoRA deltas, so the
    fingerprint of the base before and after adaptation is the same.
    """
    backbone = backbone_of(model)
    digest = hashlib.sha256()
    architecture = {
        key: getattr(backbone.config, key, None)
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "tokenizer_hash", "node_feature_dim", "num_code_levels")
    }
    digest.update(json.dumps(architecture, sort_keys=True).encode())
    for name, tensor in sorted(backbone.state_dict().items()):
        if "lora_" in name:
            continue
        name = name.replace(".base_layer.", ".")
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def save_adapter(
    peft_model: nn.Module, directory: str | os.PathLike, base_name_or_path: str | None, base_fingerprint: str
) -> Path:
    """Save a LoRA adapter in peft's format plus ``gfm_adapter.json`` (head, base fingerprint).

    Args:
        peft_model: the trained ``PeftModel``.
        directory: output folder (no tokenizer is written here: the adapter loads onto the base
            checkpoint, which holds the tokenizer).
        base_name_or_path: where the base model comes from (directory or hub id).
        base_fingerprint: :func:`base_model_fingerprint` of the base before adaptation.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if base_name_or_path is not None:
        peft_model.peft_config["default"].base_model_name_or_path = str(base_name_or_path)
    peft_model.save_pretrained(directory, safe_serialization=True)
    base = peft_model.get_base_model()
    atomic_write_json(
        directory / GFM_ADAPTER_FILE,
        {
            "base_model_name_or_path": None if base_name_or_path is None else str(base_name_or_path),
            "base_model_fingerprint": base_fingerprint,
            "model_class": type(base).__name__,
            "num_labels": int(base.config.num_labels),
            "problem_type": base.config.problem_type,
            "tokenizer_hash": getattr(base.config, "tokenizer_hash", None),
            # standardized regression: the head's outputs are rescaled by these training statistics
            "regression_target_mean": getattr(base.config, "regression_target_mean", None),
            "regression_target_std": getattr(base.config, "regression_target_std", None),
        },
    )
    return directory


def read_adapter_record(directory: str | os.PathLike) -> dict:
    path = Path(directory) / GFM_ADAPTER_FILE
    if not path.is_file():
        raise AdapterMismatchError(
            f"{directory}: no {GFM_ADAPTER_FILE}; this is not a gfm adapter directory (save it with gfm.adapters.save_adapter)"
        )
    return json.loads(path.read_text())


def load_adapter(directory: str | os.PathLike, base_model: nn.Module | None = None) -> nn.Module:
    """Load a saved adapter onto ``base_model`` (or onto the base it records) for inference.

    Raises:
        AdapterMismatchError: the base model's fingerprint, head class or head width differs
            from the one the adapter was trained on.
    """
    from peft import PeftModel

    record = read_adapter_record(directory)
    if base_model is None:
        import gfm.modeling as modeling
        from gfm.hub import load_checkpoint

        from .heads import _register_tokenizer_classes

        _register_tokenizer_classes()
        if record.get("base_model_name_or_path") is None:
            raise AdapterMismatchError(f"{directory}: the adapter records no base model; pass base_model=")
        model_class = getattr(modeling, record["model_class"])
        base_model, _ = load_checkpoint(
            record["base_model_name_or_path"], model_class=model_class,
            num_labels=record["num_labels"], problem_type=record["problem_type"],
        )
    found = base_model_fingerprint(base_model)
    if found != record["base_model_fingerprint"]:
        raise AdapterMismatchError(
            f"{directory}: this adapter was trained on another base model (fingerprint "
            f"{record['base_model_fingerprint'][:12]}…, this base {found[:12]}…; recorded base "
            f"{record.get('base_model_name_or_path')!r}); load it onto the checkpoint it was trained from"
        )
    if type(base_model).__name__ != record["model_class"] or int(base_model.config.num_labels) != record["num_labels"]:
        raise AdapterMismatchError(
            f"{directory}: the adapter's head is {record['model_class']} with {record['num_labels']} labels, the base "
            f"model is {type(base_model).__name__} with {base_model.config.num_labels}; build the base for the same task"
        )
    base_model.config.problem_type = record["problem_type"]
    base_model.config.regression_target_mean = record.get("regression_target_mean")
    base_model.config.regression_target_std = record.get("regression_target_std")
    model = PeftModel.from_pretrained(base_model, str(directory))
    model.eval()
    return model


def export_merged(peft_model: nn.Module, tokenizer, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Merge LoRA into the base weights and save a plain gfm checkpoint (safetensors + tokenizer)."""
    from gfm.hub import save_checkpoint

    merged = peft_model.merge_and_unload()
    with torch.no_grad():
        return save_checkpoint(merged, tokenizer, directory, overwrite=overwrite)
