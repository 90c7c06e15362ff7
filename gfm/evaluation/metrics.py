"""Evaluation metrics for node, edge and graph tasks.

Every metric takes tensors or arrays, validates shapes and values, and returns a python
``float``. Multi-task metrics (ROC-AUC, average precision, MAE, RMSE) accept ``[N]`` or
``[N, T]`` targets with ``NaN`` for a missing label; they score each task on its observed
entries and average over tasks. A classification task whose observed labels hold a single
class has no ROC-AUC / AP: it is skipped *and counted* (``*_per_task`` returns the skipped
task ids, the averaged metric logs how many), never silently dropped.

scikit-learn is deliberately not a dependency: each metric is a few vectorized numpy lines,
and the tests check each against a plain-loop reference written from the definition.

Link-prediction ranking metrics follow OGB's evaluator:

- ``hits_at_k(pos [P], neg [M], k)`` with *shared* negatives (ogbl-ddi / collab): the share of
  positives scored strictly above the k-th highest negative score (1.0 when ``M < k``).
- ``hits_at_k(pos [P], neg [P, M], k)`` and ``mrr(pos [P], neg [P, M])`` with *per-positive*
  negatives (ogbl-citation2): rank ``= 1 + 0.5 * (#neg >= pos + #neg > pos)``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import rankdata

from gfm.utils.errors import GFMError

__all__ = [
    "MetricError",
    "PerTaskScores",
    "METRICS",
    "MetricInfo",
    "accuracy",
    "macro_f1",
    "roc_auc",
    "roc_auc_per_task",
    "average_precision",
    "average_precision_per_task",
    "mae",
    "rmse",
    "mrr",
    "hits_at_k",
    "get_metric",
    "score_outputs",
]

logger = logging.getLogger(__name__)


class MetricError(GFMError, ValueError):
    """Inputs a metric cannot score (shapes, NaN scores, a task without both classes...)."""


def _as_numpy(values, name: str, dtype=np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64 if dtype == np.float64 else values.dtype).numpy()
    return np.asarray(values, dtype=dtype)


def _check_same_shape(y_true: np.ndarray, y_other: np.ndarray, what: str) -> None:
    if y_true.shape != y_other.shape:
        raise MetricError(
            f"{what}: y_true has shape {y_true.shape} but the predictions have shape {y_other.shape}; "
            "pass one prediction per target"
        )
    if y_true.size == 0:
        raise MetricError(f"{what}: got no samples to score")


def _as_tasks(array: np.ndarray) -> np.ndarray:
    """``[N]`` -> ``[N, 1]``; ``[N, T]`` unchanged."""
    if array.ndim == 1:
        return array[:, None]
    if array.ndim != 2:
        raise MetricError(f"expected targets of shape [N] or [N, T], got {array.shape}")
    return array


# ------------------------------------------------------------------------------------------
# classification from hard labels
# ------------------------------------------------------------------------------------------
def _class_predictions(y_pred, num_samples: int, what: str) -> np.ndarray:
    """Integer predictions ``[N]`` from labels ``[N]`` or scores / logits ``[N, C]`` (argmax)."""
    if isinstance(y_pred, torch.Tensor):
        y_pred = y_pred.detach().cpu().numpy()
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        if not np.isfinite(y_pred).all():
            raise MetricError(f"{what}: the class scores hold NaN or infinite values")
        y_pred = y_pred.argmax(axis=1)
    if y_pred.ndim != 1 or y_pred.shape[0] != num_samples:
        raise MetricError(
            f"{what}: predictions must be class ids [N] or scores [N, C] with N={num_samples}, got {y_pred.shape}"
        )
    return y_pred.astype(np.int64)


def _class_targets(y_true, what: str) -> np.ndarray:
    if isinstance(y_true, torch.Tensor):
        y_true = y_true.detach().cpu().numpy()
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise MetricError(f"{what}: class targets must have shape [N], got {y_true.shape}")
    if y_true.size == 0:
        raise MetricError(f"{what}: got no samples to score")
    if np.issubdtype(y_true.dtype, np.floating):
        if not np.isfinite(y_true).all() or not np.all(y_true == np.round(y_true)):
            raise MetricError(f"{what}: class targets must be integer class ids, got non-integer values")
    y_true = y_true.astype(np.int64)
    if (y_true < 0).any():
        raise MetricError(
            f"{what}: class targets hold negative ids (-1 marks unlabelled nodes); score only labelled nodes"
        )
    return y_true


def accuracy(y_true, y_pred) -> float:
    """Share of samples whose predicted class equals the target.

    Args:
        y_true: int ``[N]`` class ids.
        y_pred: int ``[N]`` predicted ids, or float ``[N, C]`` scores (argmax taken).
    """
    y_true = _class_targets(y_true, "accuracy")
    y_pred = _class_predictions(y_pred, y_true.shape[0], "accuracy")
    return float((y_true == y_pred).mean())


def macro_f1(y_true, y_pred, num_classes: int | None = None) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN).

    Args:
        y_true: int ``[N]`` class ids.
        y_pred: int ``[N]`` predicted ids or float ``[N, C]`` scores.
        num_classes: average over ``0..C-1`` (a class never seen nor predicted scores 0);
            by default over the classes that occur in ``y_true`` or ``y_pred``.
    """
    y_true = _class_targets(y_true, "macro_f1")
    y_pred = _class_predictions(y_pred, y_true.shape[0], "macro_f1")
    if num_classes is None:
        classes = np.union1d(y_true, y_pred)
    else:
        if y_true.max() >= num_classes or y_pred.max() >= num_classes:
            raise MetricError(f"macro_f1: a class id is >= num_classes={num_classes}")
        classes = np.arange(num_classes)
    size = int(classes.max()) + 1
    true_one_hot = np.zeros((y_true.shape[0], size), dtype=bool)
    true_one_hot[np.arange(y_true.shape[0]), y_true] = True
    pred_one_hot = np.zeros_like(true_one_hot)
    pred_one_hot[np.arange(y_pred.shape[0]), y_pred] = True
    tp = (true_one_hot & pred_one_hot).sum(0)[classes]
    fp = (~true_one_hot & pred_one_hot).sum(0)[classes]
    fn = (true_one_hot & ~pred_one_hot).sum(0)[classes]
    denominator = 2 * tp + fp + fn
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return float(f1.mean())


# ------------------------------------------------------------------------------------------
# ranking metrics for binary (multi-task) targets
# ------------------------------------------------------------------------------------------
@dataclass
class PerTaskScores:
    """Scores of a multi-task metric.

    Attributes:
        scores: one float per task; ``nan`` for a skipped task.
        skipped_tasks: ids of tasks with a single observed class (no ROC-AUC / AP exists).
        num_observed: observed (non-NaN) labels per task.
    """

    scores: list[float]
    skipped_tasks: list[int] = field(default_factory=list)
    num_observed: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        valid = [s for s in self.scores if not math.isnan(s)]
        return float(np.mean(valid)) if valid else float("nan")


def _observed_pairs(y_true, y_other, what: str, other: str, finite_what: str) -> tuple[np.ndarray, ...]:
    """``(y_true, y_other, observed)`` as ``[N, T]`` arrays, ``y_other`` finite where a target is observed.

    Args:
        other: the name of ``y_other`` in messages (``"y_score"``, ``"y_pred"``).
        finite_what: what must be finite, for the message (``"the scores of observed labels"``).
    """
    y_true = _as_tasks(_as_numpy(y_true, "y_true"))
    y_other = _as_tasks(_as_numpy(y_other, other))
    _check_same_shape(y_true, y_other, what)
    observed = ~np.isnan(y_true)
    if not np.isfinite(y_other[observed]).all():
        raise MetricError(f"{what}: {finite_what} hold NaN or infinite values")
    return y_true, y_other, observed


def _binary_inputs(y_true, y_score, what: str) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score, observed = _observed_pairs(y_true, y_score, what, "y_score", "the scores of observed labels")
    bad = observed & (y_true != 0) & (y_true != 1)
    if bad.any():
        row, task = np.argwhere(bad)[0]
        raise MetricError(
            f"{what}: binary targets must be 0, 1 or NaN (missing); y_true[{row}, {task}] = {y_true[row, task]}"
        )
    return y_true, y_score


def _binary_roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney U / (P * N): P(score_pos > score_neg) + 0.5 P(tie)."""
    positives = labels == 1
    num_pos = int(positives.sum())
    num_neg = labels.shape[0] - num_pos
    ranks = rankdata(scores)  # 1-based, ties share their average rank
    u_statistic = ranks[positives].sum() - num_pos * (num_pos + 1) / 2.0
    return float(u_statistic / (num_pos * num_neg))


def _binary_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP = sum over thresholds of (R_n - R_{n-1}) * P_n, thresholds at the distinct scores."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    true_positives = np.cumsum(sorted_labels)
    # the last position of each run of equal scores is one threshold
    last_of_group = np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]])
    tp = true_positives[last_of_group]
    predicted_positive = (np.flatnonzero(last_of_group) + 1).astype(np.float64)
    precision = tp / predicted_positive
    recall = tp / true_positives[-1]
    recall_increase = np.diff(np.concatenate([[0.0], recall]))
    return float((recall_increase * precision).sum())


def _per_task(y_true, y_score, what: str, binary_metric: Callable[[np.ndarray, np.ndarray], float]) -> PerTaskScores:
    y_true, y_score = _binary_inputs(y_true, y_score, what)
    scores, skipped, observed_counts = [], [], []
    for task in range(y_true.shape[1]):
        observed = ~np.isnan(y_true[:, task])
        labels = y_true[observed, task]
        observed_counts.append(int(observed.sum()))
        if labels.size == 0 or labels.min() == labels.max():
            scores.append(float("nan"))
            skipped.append(task)
            continue
        scores.append(binary_metric(labels, y_score[observed, task]))
    return PerTaskScores(scores=scores, skipped_tasks=skipped, num_observed=observed_counts)


def _task_mean(per_task: PerTaskScores, what: str) -> float:
    num_tasks = len(per_task.scores)
    if len(per_task.skipped_tasks) == num_tasks:
        raise MetricError(
            f"{what}: none of the {num_tasks} task(s) has both a positive and a negative observed label; "
            "the split has no positives (or no negatives) to rank, choose another split or seed"
        )
    if per_task.skipped_tasks:
        logger.info(
            "%s: skipped %d of %d task(s) with a single observed class: %s",
            what,
            len(per_task.skipped_tasks),
            num_tasks,
            per_task.skipped_tasks,
        )
    return per_task.mean


def roc_auc_per_task(y_true, y_score) -> PerTaskScores:
    """ROC-AUC of every task on its observed labels.

    Args:
        y_true: float ``[N]`` or ``[N, T]`` with values 0, 1 or NaN (missing).
        y_score: float, same shape: higher means more likely positive (logits or probabilities).
    """
    return _per_task(y_true, y_score, "roc_auc", _binary_roc_auc)


def roc_auc(y_true, y_score) -> float:
    """Mean ROC-AUC over tasks that have both classes (OGB's molhiv / Tox21 convention).

    Raises :class:`MetricError` when no task has both classes.
    """
    return _task_mean(roc_auc_per_task(y_true, y_score), "roc_auc")


def average_precision_per_task(y_true, y_score) -> PerTaskScores:
    """Average precision of every task on its observed labels (shapes as :func:`roc_auc_per_task`)."""
    return _per_task(y_true, y_score, "average_precision", _binary_average_precision)


def average_precision(y_true, y_score) -> float:
    """Mean average precision over tasks that have both classes (OGB's molpcba convention)."""
    return _task_mean(average_precision_per_task(y_true, y_score), "average_precision")


# ------------------------------------------------------------------------------------------
# regression
# ------------------------------------------------------------------------------------------
def _regression_errors(y_true, y_pred, what: str) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred, observed = _observed_pairs(y_true, y_pred, what, "y_pred", "predictions of observed targets")
    empty = np.flatnonzero(observed.sum(0) == 0)
    if empty.size:
        raise MetricError(f"{what}: task(s) {empty.tolist()} have no observed target in this split")
    return np.where(observed, y_pred - y_true, 0.0), observed


def mae(y_true, y_pred) -> float:
    """Mean absolute error per task on observed (non-NaN) targets, averaged over tasks.

    Args:
        y_true: float ``[N]`` or ``[N, T]``, NaN for missing.
        y_pred: float, same shape.
    """
    errors, observed = _regression_errors(y_true, y_pred, "mae")
    return float((np.abs(errors).sum(0) / observed.sum(0)).mean())


def rmse(y_true, y_pred) -> float:
    """Root mean squared error per task on observed targets, averaged over tasks."""
    errors, observed = _regression_errors(y_true, y_pred, "rmse")
    return float(np.sqrt((errors**2).sum(0) / observed.sum(0)).mean())


# ------------------------------------------------------------------------------------------
# link prediction (OGB evaluator conventions)
# ------------------------------------------------------------------------------------------
def _link_inputs(pos_scores, neg_scores, what: str) -> tuple[np.ndarray, np.ndarray]:
    pos = _as_numpy(pos_scores, "pos_scores")
    neg = _as_numpy(neg_scores, "neg_scores")
    if pos.ndim != 1 or pos.size == 0:
        raise MetricError(f"{what}: positive scores must be a non-empty [P] vector, got shape {pos.shape}")
    if neg.ndim == 2 and neg.shape[0] != pos.shape[0]:
        raise MetricError(
            f"{what}: per-positive negatives must have shape [P={pos.shape[0]}, M], got {neg.shape}"
        )
    if neg.ndim not in (1, 2) or neg.size == 0:
        raise MetricError(
            f"{what}: negative scores must be shared [M] or per-positive [P, M] and non-empty, got {neg.shape}"
        )
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise MetricError(f"{what}: link scores hold NaN or infinite values")
    return pos, neg


def _ranks(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """OGB rank of each positive among its negatives; ties count half."""
    if neg.ndim == 1:
        # shared negatives: count via a sorted copy (M log M + P log M instead of P * M)
        sorted_neg = np.sort(neg)
        at_least = neg.size - np.searchsorted(sorted_neg, pos, side="left")  # neg >= pos
        strictly = neg.size - np.searchsorted(sorted_neg, pos, side="right")  # neg > pos
    else:
        at_least = (neg >= pos[:, None]).sum(1)
        strictly = (neg > pos[:, None]).sum(1)
    return 0.5 * (at_least + strictly) + 1.0


def mrr(pos_scores, neg_scores) -> float:
    """Mean reciprocal rank of each positive among its negatives.

    Args:
        pos_scores: float ``[P]``.
        neg_scores: float ``[P, M]`` (negatives per positive) or ``[M]`` (shared by all).
    """
    pos, neg = _link_inputs(pos_scores, neg_scores, "mrr")
    return float((1.0 / _ranks(pos, neg)).mean())


def hits_at_k(pos_scores, neg_scores, k: int) -> float:
    """OGB Hits@k.

    Args:
        pos_scores: float ``[P]``.
        neg_scores: float ``[M]`` negatives shared by every positive (a positive hits when it
            scores strictly above the k-th highest negative; 1.0 when ``M < k``), or ``[P, M]``
            negatives per positive (a positive hits when its rank is at most ``k``).
        k: the cut-off, >= 1.
    """
    if int(k) != k or k < 1:
        raise MetricError(f"hits_at_k: k must be a positive integer, got {k!r}")
    pos, neg = _link_inputs(pos_scores, neg_scores, f"hits@{k}")
    if neg.ndim == 1:
        if neg.size < k:
            return 1.0
        kth_highest = np.partition(neg, neg.size - k)[neg.size - k]
        return float((pos > kth_highest).mean())
    return float((_ranks(pos, neg) <= k).mean())


# ------------------------------------------------------------------------------------------
# registry: metric names used by TaskSpec.metric and the recipes
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricInfo:
    """A metric by name.

    Attributes:
        name: canonical name (``"accuracy"``, ``"roc_auc"``, ``"hits@20"``, ...).
        function: ``(y_true, y_pred) -> float`` for sample metrics, ``(pos, neg) -> float``
            for link metrics.
        higher_is_better: direction used for model selection.
        kind: ``"class"`` (targets are class ids, predictions scores ``[N, C]``),
            ``"binary"`` (targets 0/1/NaN, predictions one score per task),
            ``"regression"``, or ``"link"`` (positive and negative scores).
    """

    name: str
    function: Callable[..., float]
    higher_is_better: bool
    kind: str

    def improves(self, value: float, best: float | None) -> bool:
        """Whether validation score ``value`` beats ``best`` (``None``: nothing selected yet).

        The one model-selection rule of gfm's training loops: an undefined (NaN) score never
        beats a number, and any number replaces an undefined best; ties keep the earlier one.
        """
        if best is None or math.isnan(best):
            return True
        if math.isnan(value):
            return False
        return value > best if self.higher_is_better else value < best


METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("accuracy", accuracy, True, "class"),
    "macro_f1": MetricInfo("macro_f1", macro_f1, True, "class"),
    "roc_auc": MetricInfo("roc_auc", roc_auc, True, "binary"),
    "average_precision": MetricInfo("average_precision", average_precision, True, "binary"),
    "mae": MetricInfo("mae", mae, False, "regression"),
    "rmse": MetricInfo("rmse", rmse, False, "regression"),
    "mrr": MetricInfo("mrr", mrr, True, "link"),
}

_ALIASES = {
    "acc": "accuracy",
    "f1": "macro_f1",
    "f1_macro": "macro_f1",
    "rocauc": "roc_auc",
    "auroc": "roc_auc",
    "auc": "roc_auc",
    "ap": "average_precision",
}


def get_metric(name: str) -> MetricInfo:
    """Look a metric up by name; ``hits@k`` (any k) is built on demand."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    match = re.fullmatch(r"hits_?@_?(\d+)", key)
    if match:
        k = int(match.group(1))
        return MetricInfo(f"hits@{k}", lambda pos, neg: hits_at_k(pos, neg, k), True, "link")
    if key not in METRICS:
        known = sorted(METRICS) + ["hits@<k>"]
        raise MetricError(f"unknown metric {name!r}; known metrics: {known}")
    return METRICS[key]


def score_outputs(metric: str | MetricInfo, task_kind: str, y_true, outputs) -> float:
    """Score raw model outputs for a task kind with a named metric.

    Args:
        metric: metric name or :class:`MetricInfo`.
        task_kind: ``TaskSpec.kind``: ``"classification"``, ``"multilabel"`` or ``"regression"``.
        y_true: classification: int ``[N]``; multilabel / regression: float ``[N, T]`` (NaN missing).
        outputs: classification: logits ``[N, C]``; multilabel: logits ``[N, T]``; regression:
            predictions ``[N, T]``.

    A binary metric (ROC-AUC, AP) on a two-class classification task scores ``logit_1 - logit_0``.
    """
    info = metric if isinstance(metric, MetricInfo) else get_metric(metric)
    if info.kind == "link":
        raise MetricError(f"{info.name} scores positive and negative pairs; use it on link scores, not {task_kind} outputs")
    if task_kind == "classification":
        if info.kind == "class":
            return info.function(y_true, outputs)
        if info.kind == "binary":
            outputs = torch.as_tensor(outputs)
            if outputs.dim() != 2 or outputs.shape[1] != 2:
                raise MetricError(
                    f"{info.name} needs two classes for a classification task; got outputs of shape {tuple(outputs.shape)}"
                )
            return info.function(torch.as_tensor(y_true).float(), outputs[:, 1] - outputs[:, 0])
    elif task_kind == "multilabel" and info.kind == "binary":
        return info.function(y_true, outputs)
    elif task_kind == "regression" and info.kind == "regression":
        return info.function(y_true, outputs)
    raise MetricError(f"metric {info.name!r} ({info.kind}) does not apply to a {task_kind} task")
