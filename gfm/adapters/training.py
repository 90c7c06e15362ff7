"""Train a gfm task model on :class:`~gfm.adapters.task_data.TaskItems`; select on validation.

A loop a reader can hold in their head: AdamW over the trainable parameters, transformers'
linear warmup + decay schedule, gradient clipping, an evaluation on the validation split every
``eval_every_steps``, and a copy of the trainable parameters at the best validation metric,
restored at the end. The test split is scored once, after selection.

``mixed_precision="bf16"`` runs every forward pass (training and evaluation) under
``torch.autocast(device, dtype=torch.bfloat16)``: the matmuls run in bfloat16 while the weights,
their gradients, the optimizer state, the loss and the returned logits stay float32 (the attention
backends and the task heads compute in float32 inside autocast). On a CPU with native bfloat16
instructions (``gfm.utils.hardware.cpu_bf16_instructions``) the matmuls run ~2.6x faster; see
``benchmarks/finetune_throughput.py`` for what that gives a whole fine-tuning step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup, set_seed

from gfm.evaluation.metrics import score_outputs
from gfm.utils.errors import GFMError

from .encoding import TaskSampleEncoder
from .heads import check_labels_for_head
from .task_data import TaskItems

__all__ = ["MIXED_PRECISION_CHOICES", "MixedPrecisionError", "TrainingConfig", "TrainingOutcome", "predict",
           "score_split", "evaluate_split", "train_task_model", "autocast_context"]

logger = logging.getLogger(__name__)

#: values of ``TrainingConfig.mixed_precision``
MIXED_PRECISION_CHOICES = ("no", "bf16")


class MixedPrecisionError(GFMError, ValueError):
    """A ``mixed_precision`` value fine-tuning does not know."""


def _check_mixed_precision(value: str, where: str = "TrainingConfig.mixed_precision") -> str:
    if value not in MIXED_PRECISION_CHOICES:
        raise MixedPrecisionError(
            f"{where}={value!r} is not a fine-tuning precision; choose one of {list(MIXED_PRECISION_CHOICES)} "
            "('no': float32 throughout, 'bf16': bfloat16 autocast of the forward passes, float32 weights, "
            "loss and optimizer)"
        )
    return value


def autocast_context(model: nn.Module, mixed_precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast(<the model's device type>, dtype=torch.bfloat16)`` for ``"bf16"``, a no-op for ``"no"``."""
    _check_mixed_precision(mixed_precision, "mixed_precision")
    if mixed_precision == "no":
        return contextlib.nullcontext()
    device = next(model.parameters()).device.type
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


@dataclass
class TrainingConfig:
    """Optimization of a gfm task model.

    Attributes:
        learning_rate / weight_decay: AdamW.
        epochs: passes over the training items (bounded by ``max_steps``).
        max_steps: optional cap on optimizer steps.
        batch_size: sequences per step.
        eval_batch_size: sequences per forward pass at evaluation.
        eval_every_steps: steps between validation evaluations (default: once per epoch).
        warmup_ratio: share of steps with linear warmup.
        max_grad_norm: gradient clipping (0 = off).
        pack_sequences: pack each batch's samples into rows of the model's length instead of
            padding every sample to the longest (same samples per step, same outputs up to float
            rounding, fewer positions; see ``TaskSampleEncoder.batches``).
        mixed_precision: ``"no"`` (float32) or ``"bf16"``: forward passes under bfloat16 autocast
            with float32 master weights, float32 loss and optimizer, float32 logits returned.
    """

    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    eval_every_steps: int | None = None
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    pack_sequences: bool = True
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        _check_mixed_precision(self.mixed_precision)


@dataclass
class TrainingOutcome:
    """What :func:`train_task_model` measured (the model holds the selected weights)."""

    train_losses: list[float] = field(default_factory=list)
    valid_curve: list[float] = field(default_factory=list)
    valid_steps: list[int] = field(default_factory=list)
    best_valid: float | None = None
    best_step: int | None = None
    test: float | None = None
    test_outputs: torch.Tensor | None = None  # [n_test, num_labels] at the selected weights, in items' order
    seconds: float = 0.0


@torch.no_grad()
def predict(
    model: nn.Module, encoder: TaskSampleEncoder, samples, batch_size: int = 64, pack: bool = True,
    mixed_precision: str = "no",
) -> torch.Tensor:
    """Model outputs ``[n, num_labels]`` (float32) for ``samples`` (in order), in eval mode.

    ``mixed_precision="bf16"``: the forward passes run under bfloat16 autocast (see the module docstring).
    """
    was_training = model.training
    model.eval()
    outputs = []
    for _, batch in encoder.batches(samples, batch_size, pack=pack):
        with autocast_context(model, mixed_precision):
            logits = model(**batch).logits
        outputs.append(logits.float())
    model.train(was_training)
    return torch.cat(outputs)


def score_split(items: TaskItems, split: str, outputs: torch.Tensor) -> float:
    """The task metric of ``outputs`` on a split (link tasks: positives first, then negatives)."""
    targets = items.targets[split]
    if items.kind == "link":
        count = items.num_positives[split]
        scores = outputs[:, 0]
        return items.metric.function(scores[:count], scores[count:])
    return score_outputs(items.metric, items.kind, targets, outputs)


def evaluate_split(
    model: nn.Module, encoder: TaskSampleEncoder, items: TaskItems, split: str, batch_size: int = 64, pack: bool = True,
    mixed_precision: str = "no",
) -> float:
    """The task metric of ``model`` on ``items.samples[split]`` (eval mode, no gradient)."""
    return score_split(items, split, predict(model, encoder, items.samples[split], batch_size, pack, mixed_precision))


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def train_task_model(
    model: nn.Module,
    encoder: TaskSampleEncoder,
    items: TaskItems,
    config: TrainingConfig,
    seed: int,
) -> TrainingOutcome:
    """Train ``model``'s trainable parameters on ``items['train']``; keep the best on ``valid``.

    Raises:
        gfm.adapters.heads.TaskHeadMismatchError: the training targets do not fit the head.
    """
    check_labels_for_head(model, items.targets["train"], what=f"{items.name} training targets")
    set_seed(seed)
    generator = torch.Generator().manual_seed(int(seed))
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("train_task_model: the model has no trainable parameter")
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    num_train = len(items.samples["train"])
    steps_per_epoch = math.ceil(num_train / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    eval_every = config.eval_every_steps or steps_per_epoch
    outcome = TrainingOutcome()
    best_state = None
    started = time.perf_counter()
    step = 0
    model.train()
    targets = items.targets["train"]
    while step < total_steps:
        order = torch.randperm(num_train, generator=generator).tolist()
        for chosen, batch in encoder.batches(items.samples["train"], config.batch_size, order, pack=config.pack_sequences):
            batch["labels"] = targets[chosen]
            with autocast_context(model, config.mixed_precision):
                loss = model(**batch).loss.float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            outcome.train_losses.append(loss.item())
            if step % eval_every == 0 or step == total_steps:
                valid = evaluate_split(model, encoder, items, "valid", config.eval_batch_size, config.pack_sequences,
                                       config.mixed_precision)
                outcome.valid_curve.append(valid)
                outcome.valid_steps.append(step)
                if items.metric.improves(valid, outcome.best_valid):
                    outcome.best_valid, outcome.best_step = valid, step
                    best_state = _trainable_state(model)
                logger.info("%s step %d: loss %.4f, valid %s %.4f", items.name, step, outcome.train_losses[-1], items.metric.name, valid)
            if step >= total_steps:
                break
    with torch.no_grad():
        named = dict(model.named_parameters())
        for name, value in best_state.items():
            named[name].copy_(value)
    outcome.test_outputs = predict(model, encoder, items.samples["test"], config.eval_batch_size, config.pack_sequences,
                                   config.mixed_precision)
    outcome.test = score_split(items, "test", outcome.test_outputs)
    outcome.seconds = time.perf_counter() - started
    return outcome
