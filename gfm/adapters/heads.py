"""Task heads on a gfm backbone: which head a task needs, loading, and label checks.

A dataset's ``TaskSpec`` (``gfm.data``) decides the head:

=================  ======================================  ==============================  ===========
task level / kind  head class                              problem_type                    num_labels
=================  ======================================  ==============================  ===========
graph classif.     ``GFMForGraphClassification``           ``single_label_classification``  C
graph multilabel   ``GFMForGraphClassification``           ``multi_label_classification``   T
graph regression   ``GFMForGraphClassification``           ``regression``                   T
node classif.      ``GFMForNodeClassification``            ``single_label_classification``  C
node regression    ``GFMForNodeClassification``            ``regression``                   T
edge link          ``GFMForEdgePrediction``                ``multi_label_classification``   1
=================  ======================================  ==============================  ===========

The pretrained backbone comes from a local directory or a hub id through
:func:`gfm.hub.load_checkpoint`, which refuses a checkpoint whose tokenizer is missing or
has another content hash; the task head (``score``) is new and initialized by transformers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from gfm.modeling import (
    GFMConfig,
    GFMForEdgePrediction,
    GFMForGraphClassification,
    GFMForNodeClassification,
    GFMModel,
)
from gfm.modeling.modeling_gfm import PROBLEM_TYPE_OF_KIND
from gfm.utils.errors import GFMError

__all__ = [
    "TaskHeadMismatchError",
    "HeadSpec",
    "head_spec_for_task",
    "backbone_of",
    "load_pretrained_for_task",
    "scratch_model_for_task",
    "check_labels_for_head",
]

logger = logging.getLogger(__name__)


class TaskHeadMismatchError(GFMError, ValueError):
    """The labels or the task do not fit the model's head (kind, width or dtype)."""


@dataclass(frozen=True)
class HeadSpec:
    """The head a task needs: model class, ``problem_type`` and ``num_labels``."""

    model_class: type
    problem_type: str
    num_labels: int


_HEADS = {"graph": GFMForGraphClassification, "node": GFMForNodeClassification, "edge": GFMForEdgePrediction}


def head_spec_for_task(task) -> HeadSpec:
    """:class:`HeadSpec` of a ``TaskSpec`` (see the module table)."""
    if task.level not in _HEADS:
        raise TaskHeadMismatchError(f"task level {task.level!r} has no gfm head; expected one of {sorted(_HEADS)}")
    model_class = _HEADS[task.level]
    if task.kind in PROBLEM_TYPE_OF_KIND:
        num_labels = task.num_classes if task.kind == "classification" else task.num_targets
        return HeadSpec(model_class, PROBLEM_TYPE_OF_KIND[task.kind], int(num_labels))
    if task.kind == "link":
        if task.level != "edge":
            raise TaskHeadMismatchError(f"link tasks are edge-level; got level {task.level!r}")
        return HeadSpec(model_class, "multi_label_classification", 1)
    raise TaskHeadMismatchError(f"task kind {task.kind!r} has no gfm head")


def backbone_of(model: nn.Module) -> GFMModel:
    """The ``GFMModel`` inside a gfm head, a peft wrapper of one, or the model itself."""
    current = model
    for _ in range(6):
        if isinstance(current, GFMModel):
            return current
        if hasattr(current, "get_base_model") and current is not current.get_base_model():
            current = current.get_base_model()
            continue
        inner = getattr(current, "model", None)
        if isinstance(inner, nn.Module):
            current = inner
            continue
        break
    raise TaskHeadMismatchError(f"{type(model).__name__} holds no GFMModel backbone")


def _apply_head_spec(config: GFMConfig, spec: HeadSpec) -> GFMConfig:
    config.num_labels = spec.num_labels
    config.problem_type = spec.problem_type
    return config


def _register_tokenizer_classes() -> None:
    """Import the concrete tokenizers so ``AutoGraphTokenizer`` can find them by class name.

    (``gfm.tokenization``'s package import does not import them; a class registers itself when
    its module is imported.)
    """
    import importlib

    for module in ("gfm.tokenization.eulerian", "gfm.tokenization.quantized"):
        importlib.import_module(module)


def load_pretrained_for_task(name_or_path: str | os.PathLike, task, **model_kwargs):
    """``(model, tokenizer)``: the pretrained backbone with a new head for ``task``.

    Args:
        name_or_path: checkpoint directory or hub id (``gfm.hub.resolve_checkpoint``).
        task: the dataset's ``TaskSpec``.

    Raises:
        gfm.hub.TokenizerMismatchError: no tokenizer beside the model, or one with another hash.
    """
    from gfm.hub import load_checkpoint

    _register_tokenizer_classes()
    spec = head_spec_for_task(task)
    model, tokenizer = load_checkpoint(
        name_or_path, model_class=spec.model_class, num_labels=spec.num_labels, problem_type=spec.problem_type,
        **model_kwargs,
    )
    # the model card / auto classes may ignore problem_type for a new head: make it explicit
    model.config.problem_type = spec.problem_type
    return model, tokenizer


def scratch_model_for_task(config: GFMConfig, task, seed: int):
    """The same architecture as ``config`` with fresh weights and the head ``task`` needs."""
    spec = head_spec_for_task(task)
    fresh = GFMConfig.from_dict(config.to_dict())
    _apply_head_spec(fresh, spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.model_class(fresh)


def check_labels_for_head(model: nn.Module, labels: torch.Tensor, what: str = "labels") -> None:
    """Raise :class:`TaskHeadMismatchError` when ``labels`` cannot train the model's head.

    Checks the dtype against ``problem_type`` (float targets for a classification head, class
    ids for a regression head), the width against ``num_labels`` and class ids against range.
    """
    config = model.config
    problem, width = config.problem_type, config.num_labels
    if problem == "single_label_classification":
        if labels.is_floating_point():
            finite = labels[~torch.isnan(labels)]
            if finite.numel() and not torch.equal(finite, finite.round()):
                raise TaskHeadMismatchError(
                    f"{what}: regression targets (non-integer floats such as {float(finite[finite != finite.round()][0]):.4g}) "
                    f"given to a classification head with {width} classes; build the head for a regression task "
                    "(problem_type='regression') or pass class ids"
                )
        flat = labels.reshape(-1)
        flat = flat[~torch.isnan(flat)] if flat.is_floating_point() else flat
        if labels.dim() > 1 and labels.shape[-1] != 1:
            raise TaskHeadMismatchError(
                f"{what}: shape {tuple(labels.shape)} (several targets) given to a single-label classification head; "
                "use problem_type='multi_label_classification' with num_labels = targets"
            )
        if flat.numel() and int(flat.max()) >= width:
            raise TaskHeadMismatchError(
                f"{what}: class id {int(flat.max())} but the head has num_labels={width}; rebuild the head for this task"
            )
        return
    if not labels.is_floating_point():
        raise TaskHeadMismatchError(
            f"{what}: integer class ids given to a {problem} head; use a classification head "
            "(problem_type='single_label_classification') or float targets"
        )
    columns = labels.shape[-1] if labels.dim() > 1 else 1
    if columns != width:
        raise TaskHeadMismatchError(
            f"{what}: {columns} target column(s) but the {problem} head predicts num_labels={width}"
        )
    if problem == "multi_label_classification":
        observed = labels[~torch.isnan(labels)]
        if observed.numel() and not bool(((observed == 0) | (observed == 1)).all()):
            raise TaskHeadMismatchError(
                f"{what}: multi-label targets must be 0, 1 or NaN; got values such as "
                f"{float(observed[(observed != 0) & (observed != 1)][0]):.4g} (regression targets for a "
                "multi-label head?)"
            )
