"""Metrics against plain-loop references written from their definitions (no scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gfm.evaluation.metrics import (
    MetricError,
    accuracy,
    average_precision,
    average_precision_per_task,
    get_metric,
    hits_at_k,
    macro_f1,
    mae,
    mrr,
    rmse,
    roc_auc,
    roc_auc_per_task,
)


# ---------------------------------------------------------------------------------------------
# slow references: one loop per definition
# ---------------------------------------------------------------------------------------------
def reference_roc_auc(labels, scores) -> float:
    positives = [s for y, s in zip(labels, scores) if y == 1]
    negatives = [s for y, s in zip(labels, scores) if y == 0]
    total = 0.0
    for p in positives:
        for n in negatives:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(positives) * len(negatives))


def reference_average_precision(labels, scores) -> float:
    num_pos = sum(1 for y in labels if y == 1)
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        predicted = [y for y, s in zip(labels, scores) if s >= threshold]
        tp = sum(1 for y in predicted if y == 1)
        precision, recall = tp / len(predicted), tp / num_pos
        ap += (recall - previous_recall) * precision
        previous_recall = recall
    return ap


def reference_macro_f1(y_true, y_pred, classes) -> float:
    f1s = []
    for c in classes:
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == c and p != c)
        f1s.append(0.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s)


def reference_multitask(y_true, y_score, binary):
    scores = []
    for t in range(y_true.shape[1]):
        rows = [i for i in range(y_true.shape[0]) if not math.isnan(y_true[i, t])]
        labels = [y_true[i, t] for i in rows]
        if len(set(labels)) < 2:
            continue
        scores.append(binary(labels, [y_score[i, t] for i in rows]))
    return sum(scores) / len(scores)


def reference_rank(pos, negs) -> float:
    optimistic = sum(1 for n in negs if n >= pos)
    pessimistic = sum(1 for n in negs if n > pos)
    return 0.5 * (optimistic + pessimistic) + 1


def reference_hits_shared(pos, neg, k) -> float:
    if len(neg) < k:
        return 1.0
    kth = sorted(neg, reverse=True)[k - 1]
    return sum(1 for p in pos if p > kth) / len(pos)


# ---------------------------------------------------------------------------------------------
# textbook values
# ---------------------------------------------------------------------------------------------
def test_known_values():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    # thresholds 0.8 (P=1, R=.5), 0.4 (P=.5, R=.5), 0.35 (P=2/3, R=1): .5*1 + .5*2/3
    assert average_precision(labels, scores) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == 0.75
    # class 0: F1 1; class 1: F1 0; class 2: 2*2/(4+1) = 0.8
    assert macro_f1([0, 1, 2, 2], [0, 2, 2, 2]) == pytest.approx((1 + 0 + 0.8) / 3)
    assert mae([1.0, 2.0], [2.0, 4.0]) == 1.5
    assert rmse([1.0, 2.0], [2.0, 4.0]) == pytest.approx(math.sqrt(2.5))
    # one positive, negatives 0.9, 0.5, 0.5 -> rank of 0.5: 1 + 0.5*(3+1) = 3
    assert mrr([0.5], [[0.9, 0.5, 0.5]]) == pytest.approx(1 / 3)
    assert hits_at_k([0.95, 0.6, 0.1], [0.9, 0.5, 0.4], k=2) == pytest.approx(2 / 3)
    assert hits_at_k([0.0], [0.9], k=5) == 1.0  # fewer negatives than k: OGB returns 1


# ---------------------------------------------------------------------------------------------
# fast path == reference on random inputs (ties forced by small integer scores)
# ---------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=2, max_size=40),
    seed=st.integers(0, 10_000),
    tie_levels=st.sampled_from([3, 10, 1000]),
)
def test_roc_auc_and_ap_match_reference(labels, seed, tie_levels):
    if len(set(labels)) < 2:
        labels = labels + [1 - labels[0]]
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, tie_levels, size=len(labels)).astype(float)
    assert roc_auc(labels, scores) == pytest.approx(reference_roc_auc(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(
        reference_average_precision(labels, scores), abs=1e-12
    )


@settings(max_examples=60, deadline=None)
@given(
    y_true=st.lists(st.integers(0, 4), min_size=1, max_size=50),
    seed=st.integers(0, 10_000),
)
def test_macro_f1_and_accuracy_match_reference(y_true, seed):
    rng = np.random.default_rng(seed)
    y_pred = rng.integers(0, 5, size=len(y_true)).tolist()
    classes = sorted(set(y_true) | set(y_pred))
    assert macro_f1(y_true, y_pred) == pytest.approx(reference_macro_f1(y_true, y_pred, classes))
    assert macro_f1(y_true, y_pred, num_classes=6) == pytest.approx(
        reference_macro_f1(y_true, y_pred, range(6))
    )
    assert accuracy(y_true, y_pred) == pytest.approx(np.mean([t == p for t, p in zip(y_true, y_pred)]))
    # logits [N, C] are argmaxed
    logits = np.eye(5)[y_pred] + 0.01
    assert accuracy(torch.tensor(y_true), torch.tensor(logits)) == accuracy(y_true, y_pred)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), num_pos=st.integers(1, 20), num_neg=st.integers(1, 30), k=st.integers(1, 40))
def test_link_metrics_match_reference(seed, num_pos, num_neg, k):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 8, size=num_pos).astype(float)
    neg_shared = rng.integers(0, 8, size=num_neg).astype(float)
    neg_each = rng.integers(0, 8, size=(num_pos, num_neg)).astype(float)
    assert hits_at_k(pos, neg_shared, k) == pytest.approx(reference_hits_shared(pos, neg_shared, k))
    ranks_each = [reference_rank(p, n) for p, n in zip(pos, neg_each)]
    assert hits_at_k(pos, neg_each, k) == pytest.approx(np.mean([r <= k for r in ranks_each]))
    assert mrr(pos, neg_each) == pytest.approx(np.mean([1 / r for r in ranks_each]))
    ranks_shared = [reference_rank(p, neg_shared) for p in pos]
    assert mrr(pos, neg_shared) == pytest.approx(np.mean([1 / r for r in ranks_shared]))


def test_multitask_regression_matches_reference():
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(30, 3))
    y_true[rng.random((30, 3)) < 0.3] = np.nan
    y_pred = rng.normal(size=(30, 3))
    expected_mae, expected_rmse = [], []
    for t in range(3):
        errors = [y_pred[i, t] - y_true[i, t] for i in range(30) if not math.isnan(y_true[i, t])]
        expected_mae.append(sum(abs(e) for e in errors) / len(errors))
        expected_rmse.append(math.sqrt(sum(e * e for e in errors) / len(errors)))
    assert mae(y_true, y_pred) == pytest.approx(np.mean(expected_mae))
    assert rmse(torch.tensor(y_true), torch.tensor(y_pred)) == pytest.approx(np.mean(expected_rmse))


def test_multitask_nan_masked_and_single_class_tasks_skipped_and_counted():
    rng = np.random.default_rng(1)
    y_true = (rng.random((40, 4)) < 0.4).astype(float)
    y_true[rng.random((40, 4)) < 0.25] = np.nan
    y_true[:, 2] = np.where(np.isnan(y_true[:, 2]), np.nan, 0.0)  # task 2: negatives only
    y_score = rng.normal(size=(40, 4))
    y_score[np.isnan(y_true)] = np.nan  # scores of missing labels are never read
    per_task = roc_auc_per_task(y_true, y_score)
    assert per_task.skipped_tasks == [2]
    assert math.isnan(per_task.scores[2])
    assert per_task.num_observed == (~np.isnan(y_true)).sum(0).tolist()
    assert roc_auc(y_true, y_score) == pytest.approx(reference_multitask(y_true, y_score, reference_roc_auc))
    assert average_precision_per_task(y_true, y_score).skipped_tasks == [2]
    assert average_precision(y_true, y_score) == pytest.approx(
        reference_multitask(y_true, y_score, reference_average_precision)
    )


@pytest.mark.data
def test_multitask_on_real_tox21_labels(data_dir):
    """Tox21's own label matrix (12 tasks, ~17% missing) with random scores."""
    frame = pd.read_csv(data_dir / "moleculenet" / "tox21.csv").head(300)
    y_true = frame.drop(columns=["smiles"]).to_numpy(dtype=float)
    assert np.isnan(y_true).any()
    y_score = np.random.default_rng(0).normal(size=y_true.shape)
    assert roc_auc(y_true, y_score) == pytest.approx(reference_multitask(y_true, y_score, reference_roc_auc))
    assert average_precision(y_true, y_score) == pytest.approx(
        reference_multitask(y_true, y_score, reference_average_precision)
    )
    # a perfect scorer gets 1.0 on every task
    assert roc_auc(y_true, np.nan_to_num(y_true, nan=0.5)) == 1.0


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_are_named():
    with pytest.raises(MetricError, match="no positives"):
        roc_auc([0, 0, np.nan], [0.1, 0.2, 0.3])
    with pytest.raises(MetricError, match="shape"):
        roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(MetricError, match="0, 1 or NaN"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(MetricError, match="NaN or infinite"):
        average_precision([0, 1], [np.nan, 0.2])
    with pytest.raises(MetricError, match="negative ids"):
        accuracy([-1, 1], [0, 1])
    with pytest.raises(MetricError, match="no observed target"):
        mae(np.array([[1.0, np.nan]]), np.array([[1.0, 1.0]]))
    with pytest.raises(MetricError, match="per-positive negatives"):
        mrr([0.1, 0.2], np.zeros((3, 4)))
    with pytest.raises(MetricError, match="unknown metric 'top5'"):
        get_metric("top5")


def test_registry():
    assert get_metric("Hits@20").name == "hits@20"
    assert get_metric("hits@20").function([1.0], [0.0] * 30) == 1.0
    assert get_metric("rocauc").function is roc_auc
    assert not get_metric("mae").higher_is_better
