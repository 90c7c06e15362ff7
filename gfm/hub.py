"""Hub-ready checkpoints: save, verify, describe (model card), resolve and push.

A gfm checkpoint directory holds, side by side:

- ``config.json`` + ``model.safetensors`` — the model (transformers ``save_pretrained``);
- ``tokenizer_config.json`` + the tokenizer's own files — the tokenizer (``GraphTokenizer``);
- ``README.md`` — a model card with model-index metadata rendered from the real run;
- optionally ``training_summary.json`` and ``evaluation.json`` — the figures the card shows.

Everything that talks to the Hub goes through ``huggingface_hub`` (``snapshot_download`` to
resolve ids through the local cache, ``HfApi.upload_folder`` to push); there is no
hand-written transfer code and no pickle on any load path (safetensors and JSON only).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

from gfm.modeling.checkpoint_files import GFMCorruptWeightsError
from gfm.tokenization.base import (
    TOKENIZER_CONFIG_NAME,
    AutoGraphTokenizer,
    GraphTokenizer,
    read_tokenizer_config,
)
from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_directory, atomic_write_json, atomic_write_text
from gfm.utils.tables import format_markdown_table

logger = logging.getLogger(__name__)

__all__ = [
    "HubError",
    "CheckpointNotFoundError",
    "TokenizerMismatchError",
    "CorruptCheckpointError",
    "ModelCardInfo",
    "resolve_checkpoint",
    "verify_safetensors",
    "verify_weight_files",
    "check_tokenizer_matches",
    "save_checkpoint",
    "load_checkpoint",
    "render_model_card",
    "push_to_hub",
    "push_checkpoint_to_hub",
]

TRAINING_SUMMARY_NAME = "training_summary.json"
EVALUATION_NAME = "evaluation.json"


class HubError(GFMError, RuntimeError):
    """Base class of checkpoint resolution / verification errors."""


class CheckpointNotFoundError(HubError):
    """A hub id is neither a local directory nor in the hub cache (and downloading is off)."""


class TokenizerMismatchError(HubError):
    """The tokenizer beside a model is not the one the model was trained with."""


class CorruptCheckpointError(HubError, GFMCorruptWeightsError):
    """A saved checkpoint's files are damaged or incomplete, so it must not be loaded.

    A :class:`gfm.modeling.GFMCorruptWeightsError` (what ``from_pretrained`` raises for the same
    fault), so ``except GFMCorruptWeightsError`` catches damaged weights from every load path.

    One meaning for both kinds of checkpoint: a weights file that is truncated or whose header
    is damaged (:func:`verify_safetensors`), and a training-state checkpoint whose files do not
    match its manifest (``gfm.training.checkpointing.verify_checkpoint``, which imports this class).
    """


# ------------------------------------------------------------------------------------------
# Resolution
# ------------------------------------------------------------------------------------------
def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def resolve_checkpoint(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Turn a local directory or a hub id (``"org/name"``) into a local directory.

    Hub ids resolve through the hub cache (``models--org--name/snapshots/<rev>`` with
    ``refs/<revision>``) with ``huggingface_hub.snapshot_download``. With ``HF_HUB_OFFLINE=1``
    (or ``local_files_only=True``) nothing is downloaded; an id missing from the cache raises
    :class:`CheckpointNotFoundError` saying how to get it.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if local_files_only is None:
        local_files_only = _offline()
    try:
        snapshot = snapshot_download(
            repo_id=name,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            local_files_only=local_files_only,
        )
    except HFValidationError as err:
        raise CheckpointNotFoundError(
            f"'{name}' is neither an existing local directory nor a valid hub id ('org/name'): {err}"
        ) from err
    except LocalEntryNotFoundError as err:
        from huggingface_hub import constants

        where = cache_dir or constants.HF_HUB_CACHE
        raise CheckpointNotFoundError(
            f"'{name}' (revision {revision or 'main'}) is not in the hub cache at {where}, and downloading "
            "is off (HF_HUB_OFFLINE=1 or local_files_only). To get it: on a machine with network run "
            f"`hf download {name}` (or huggingface_hub.snapshot_download('{name}')) and copy the cache folder "
            f"'models--{name.replace('/', '--')}' into {where}; or unset HF_HUB_OFFLINE here; or pass the path of "
            "a local checkpoint directory instead of the id."
        ) from err
    return Path(snapshot)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Verification
# ------------------------------------------------------------------------------------------
def verify_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """Check a safetensors file is whole: header parses and every tensor's bytes are present.

    Returns the parsed header. Raises :class:`CorruptCheckpointError` naming the file, what is
    wrong, and the fix (the checks are :func:`gfm.modeling.checkpoint_files.verify_safetensors_file`).
    """
    from gfm.modeling.checkpoint_files import (
        GFMCheckpointFileError,
        GFMCorruptWeightsError,
        verify_safetensors_file,
    )

    try:
        return verify_safetensors_file(path)
    except (GFMCorruptWeightsError, GFMCheckpointFileError) as err:
        raise CorruptCheckpointError(str(err)) from err


def verify_weight_files(directory: str | os.PathLike) -> None:
    """Checks of a checkpoint folder before anything is loaded (see :mod:`gfm.modeling.checkpoint_files`).

    ``config.json`` present, safetensors weights only (pickle files refused), every weights file
    whole and equal to its SHA-256 in ``weights_manifest.json`` when the folder has one.

    Raises:
        GFMCheckpointFileError: ``config.json`` or the safetensors weights are missing.
        CorruptCheckpointError: a weights file is cut short or differs from its manifest.
    """
    from gfm.modeling.checkpoint_files import GFMCorruptWeightsError, check_model_folder

    try:
        check_model_folder(directory)
    except GFMCorruptWeightsError as err:
        raise CorruptCheckpointError(str(err)) from err


def check_tokenizer_matches(model_config: Any, tokenizer_dir: str | os.PathLike) -> dict[str, Any]:
    """Raise :class:`TokenizerMismatchError` unless the tokenizer in ``tokenizer_dir`` is the model's.

    Compares the tokenizer's ``content_hash`` with ``model_config.tokenizer_hash`` and its
    vocabulary size with ``model_config.vocab_size``.
    """
    tokenizer_config = read_tokenizer_config(tokenizer_dir)
    expected_hash = getattr(model_config, "tokenizer_hash", None)
    found_hash = tokenizer_config.get("content_hash")
    if expected_hash and found_hash != expected_hash:
        raise TokenizerMismatchError(
            f"{tokenizer_dir}: tokenizer content hash {str(found_hash)[:12]}… does not match the model's "
            f"tokenizer_hash {str(expected_hash)[:12]}…: this tokenizer is not the one the model was trained with. "
            "Save the model and the tokenizer of the same run together (gfm.hub.save_checkpoint)."
        )
    vocab_size = tokenizer_config.get("vocab_size")
    if vocab_size is not None and vocab_size > getattr(model_config, "vocab_size", vocab_size):
        raise TokenizerMismatchError(
            f"{tokenizer_dir}: tokenizer has {vocab_size} ids but the model's vocab_size is "
            f"{model_config.vocab_size}; use the tokenizer saved with the model"
        )
    return tokenizer_config


# ------------------------------------------------------------------------------------------
# Model card
# ------------------------------------------------------------------------------------------
@dataclass
class ModelCardInfo:
    """Facts of a run for the model card. Every field comes from the run; nothing is a placeholder.

    Attributes:
        model_name: short name of the checkpoint.
        corpus: ``{dataset name: {"domain": str, "graphs": int, "tokens": int, "weight": float}}``.
        objectives: ``{objective name: weight}``.
        training: figures of the run (steps, tokens, first/last loss, wall time, world size ...).
        evaluation: rows ``{"task", "dataset", "metric", "value", "std", "baseline", "baseline_value",
            "control", "control_value", "split"}``.
        tags: extra hub tags.
    """

    model_name: str
    corpus: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    objectives: Mapping[str, float] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Sequence[Mapping[str, Any]] = field(default_factory=list)
    tags: Sequence[str] = field(default_factory=list)
    license: str = "apache-2.0"


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_model_card(info: ModelCardInfo, model_config: Any, tokenizer_config: Mapping[str, Any]) -> ModelCard:
    """Build a ``huggingface_hub.ModelCard`` with model-index metadata from the run's figures."""
    num_parameters = getattr(model_config, "num_parameters", None)
    eval_results = [
        EvalResult(
            task_type=str(row["task"]),
            dataset_type=str(row["dataset"]),
            dataset_name=str(row["dataset"]),
            dataset_split=row.get("split"),
            metric_type=str(row["metric"]),
            metric_value=float(row["value"]),
        )
        for row in info.evaluation
    ]
    card_data = ModelCardData(
        model_name=info.model_name,
        library_name="gfm",
        license=info.license,
        tags=["graph-foundation-model", "graphs", "gfm", str(tokenizer_config.get("tokenizer_class", "")), *info.tags],
        datasets=sorted(info.corpus),
        eval_results=eval_results or None,
        gfm_tokenizer={
            "class": tokenizer_config.get("tokenizer_class"),
            "content_hash": tokenizer_config.get("content_hash"),
            "vocab_size": tokenizer_config.get("vocab_size"),
        },
        gfm_objectives=dict(info.objectives),
        gfm_corpus_mixture={k: v.get("weight") for k, v in info.corpus.items()},
    )
    lines = [
        f"# {info.model_name}",
        "",
        "A graph foundation model trained with gfm "
        f"(`{getattr(model_config, 'model_type', 'gfm')}` architecture, sparse graph attention).",
        "",
        "## Architecture",
        "",
    ]
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
            "max_position_embeddings", "attention_backend")
    architecture = [[key, str(getattr(model_config, key))] for key in keys if hasattr(model_config, key)]
    if num_parameters is not None:
        architecture.append(["parameters", f"{num_parameters:,}"])
    lines += [
        format_markdown_table(["field", "value"], architecture),
        "",
        "## Tokenizer",
        "",
        f"- class: `{tokenizer_config.get('tokenizer_class')}`",
        f"- content hash: `{tokenizer_config.get('content_hash')}`",
        f"- vocabulary size: {tokenizer_config.get('vocab_size')}",
        "",
    ]
    if info.corpus:
        corpus = [
            [name, str(row.get("domain", "")), *(_format_value(row.get(k, "")) for k in ("graphs", "tokens", "weight"))]
            for name, row in sorted(info.corpus.items())
        ]
        header = ["dataset", "domain", "graphs", "tokens", "mixture weight"]
        lines += ["## Training corpus", "", format_markdown_table(header, corpus), ""]
    if info.objectives:
        lines += ["## Objectives", ""]
        lines += [f"- {name}: weight {_format_value(weight)}" for name, weight in info.objectives.items()]
        lines.append("")
    if info.training:
        training = [[k, _format_value(v)] for k, v in info.training.items()]
        lines += ["## Training run", "", format_markdown_table(["figure", "value"], training), ""]
    if info.evaluation:
        evaluation = []
        for row in info.evaluation:
            value = _format_value(row["value"]) + (f" ± {_format_value(row['std'])}" if row.get("std") is not None else "")
            baseline = (
                f"{row['baseline']}: {_format_value(row['baseline_value'])}" if row.get("baseline") is not None else ""
            )
            control = f"{row['control']}: {_format_value(row['control_value'])}" if row.get("control") is not None else ""
            evaluation.append([str(row["task"]), str(row["dataset"]), str(row["metric"]), value, baseline, control])
        header = ["task", "dataset", "metric", "gfm", "baseline", "control"]
        lines += ["## Evaluation", "", format_markdown_table(header, evaluation), ""]
    lines += [
        "## Use",
        "",
        "```python",
        "import gfm  # registers gfm with the transformers Auto classes",
        "from transformers import AutoModel",
        "from gfm.hub import load_checkpoint",
        "",
        f'model, tokenizer = load_checkpoint("{info.model_name}")  # checks the pair belongs together',
        f'backbone = AutoModel.from_pretrained("{info.model_name}")',
        'batch = tokenizer(graphs, padding=True, return_tensors="pt")  # graphs: torch_geometric Data',
        "states = model(**batch).last_hidden_state",
        "```",
        "",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)


# ------------------------------------------------------------------------------------------
# Save / load / push
# ------------------------------------------------------------------------------------------
def save_checkpoint(
    model: Any,
    tokenizer: GraphTokenizer,
    directory: str | os.PathLike,
    card_info: ModelCardInfo | None = None,
    overwrite: bool = False,
) -> Path:
    """Write model + tokenizer (+ model card) into ``directory`` atomically.

    The model config's ``tokenizer_class`` / ``tokenizer_hash`` are set from ``tokenizer``
    before saving, so loaders can check the pair; ``weights_manifest.json`` records the size and
    SHA-256 of the weights, so loaders detect corrupted bytes.

    Raises:
        GFMNonFiniteWeightsError: the model holds NaN or infinite weights (nothing is written).
    """
    from gfm.modeling.checkpoint_files import check_finite_weights, write_weights_manifest

    check_finite_weights(model.state_dict().items(), f"{type(model).__name__} (not saved to {directory})")
    model.config.tokenizer_class = type(tokenizer).__name__
    model.config.tokenizer_hash = tokenizer.content_hash
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        write_weights_manifest(tmp)
        tokenizer.save_pretrained(tmp)
        if card_info is not None:
            model.config.num_parameters = sum(p.numel() for p in model.parameters())
            card = render_model_card(card_info, model.config, read_tokenizer_config(tmp))
            del model.config.num_parameters
            atomic_write_text(tmp / "README.md", str(card))
            if card_info.training:
                atomic_write_json(tmp / TRAINING_SUMMARY_NAME, dict(card_info.training))
            if card_info.evaluation:
                atomic_write_json(tmp / EVALUATION_NAME, [dict(r) for r in card_info.evaluation])
    logger.info("saved checkpoint (model, tokenizer%s) to %s", ", card" if card_info else "", directory)
    return Path(directory)


def load_checkpoint(
    name_or_path: str | os.PathLike,
    model_class: Any = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **model_kwargs: Any,
) -> tuple[Any, GraphTokenizer]:
    """Load ``(model, tokenizer)`` from a directory or a hub id, checking they belong together.

    Before anything is read: ``config.json`` present, safetensors weights only (pickle files are
    refused), each weights file whole and equal to its SHA-256 in ``weights_manifest.json`` (when
    the folder has one); after loading, every floating-point weight finite.

    Args:
        name_or_path: local checkpoint directory or ``"org/name"`` (resolved through the cache).
        model_class: a gfm model class or transformers Auto class (default ``AutoModel``).
        model_kwargs: passed to ``from_pretrained`` (e.g. ``num_labels``).
    """
    from transformers import AutoConfig, AutoModel

    import gfm.modeling  # noqa: F401  (registers the Auto classes)
    from gfm.modeling.checkpoint_files import check_finite_weights

    directory = resolve_checkpoint(name_or_path, revision=revision, cache_dir=cache_dir)
    verify_weight_files(directory)
    if not (directory / TOKENIZER_CONFIG_NAME).is_file():
        raise TokenizerMismatchError(
            f"{directory}: checkpoint has no {TOKENIZER_CONFIG_NAME}: a gfm model needs the tokenizer it was "
            "trained with beside it (save both with gfm.hub.save_checkpoint)"
        )
    config = AutoConfig.from_pretrained(directory)
    check_tokenizer_matches(config, directory)
    model = (model_class or AutoModel).from_pretrained(directory, **model_kwargs)
    check_finite_weights(model.state_dict().items(), str(directory))  # also for a non-gfm model_class
    tokenizer = AutoGraphTokenizer.from_pretrained(directory)
    return model, tokenizer


def push_checkpoint_to_hub(
    model: Any,
    tokenizer: GraphTokenizer,
    repo_id: str,
    card_info: ModelCardInfo | None = None,
    **push_kwargs: Any,
) -> Any:
    """Save model + tokenizer (+ card) together and push them to ``repo_id`` in one commit."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        directory = save_checkpoint(model, tokenizer, Path(scratch) / "checkpoint", card_info=card_info)
        return push_to_hub(directory, repo_id, **push_kwargs)


def push_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload gfm checkpoint",
    api: HfApi | None = None,
) -> Any:
    """Push a checkpoint directory (model, tokenizer, card) to the Hub in one commit.

    The directory is verified first (weights whole, tokenizer matching the model), so a broken
    pair is never published.
    """
    from transformers import AutoConfig

    import gfm.modeling  # noqa: F401  (registers the Auto classes)

    directory = Path(directory)
    verify_weight_files(directory)
    check_tokenizer_matches(AutoConfig.from_pretrained(directory), directory)
    api = api or HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
    return api.upload_folder(repo_id=repo_id, folder_path=str(directory), commit_message=commit_message)
