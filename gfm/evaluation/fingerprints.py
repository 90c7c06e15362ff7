"""Fingerprint baselines for molecular property prediction: ECFP bits + logistic regression / random forest.

Chemists compare every learned molecule model with this one: Morgan / ECFP bit vectors (RDKit's
``rdFingerprintGenerator``; ECFP4 = radius 2, 2,048 bits by default) fed to a linear model or a
random forest (scikit-learn). Multi-task sets with missing labels (Tox21, ToxCast, MUV, SIDER)
get one model per task, trained on that task's observed labels only; a task whose training
labels hold one class predicts its training rate (counted in ``extra["constant_tasks"]``).

- ``fingerprint_lr``: ``LogisticRegression`` (liblinear, L2), the inverse regularization ``C``
  chosen from a grid by the mean validation ROC-AUC over tasks (one ``C`` for the dataset);
  deterministic, so every seed gives the same numbers.
- ``fingerprint_rf``: ``RandomForestClassifier`` with settings fixed in advance (no selection),
  seeded.

Scores are class-1 probabilities, scored with the task's metric on the validation and test
splits (:func:`gfm.evaluation.metrics.score_outputs`: tasks with one class in a split are
skipped and counted there). Results are :class:`~gfm.evaluation.reports.RunResult` records, the
same as the GNN baselines and the gfm methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gfm.utils.errors import GFMError

from .metrics import get_metric, score_outputs
from .reports import RunResult

__all__ = [
    "FINGERPRINT_METHODS",
    "FingerprintConfig",
    "FingerprintError",
    "ecfp_bits",
    "train_fingerprint_model",
]

logger = logging.getLogger(__name__)

FINGERPRINT_METHODS = ("fingerprint_lr", "fingerprint_rf")


class FingerprintError(GFMError, ValueError):
    """A fingerprint baseline cannot run on the given data (no SMILES, a SMILES RDKit cannot parse, a task kind)."""


@dataclass
class FingerprintConfig:
    """Settings of the fingerprint baselines (fixed in advance; only ``C`` is selected, on validation).

    Attributes:
        radius: Morgan radius (2 = ECFP4).
        num_bits: fingerprint length.
        use_chirality: include chirality in the atom invariants.
        lr_c_grid: inverse L2 strengths tried for logistic regression.
        lr_class_weight: ``None`` or ``"balanced"``.
        rf_num_trees / rf_min_samples_leaf / rf_max_features / rf_class_weight: the forest.
        num_jobs: scikit-learn jobs (trees built in parallel).
    """

    radius: int = 2
    num_bits: int = 2048
    use_chirality: bool = False
    lr_c_grid: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    lr_class_weight: str | None = "balanced"
    rf_num_trees: int = 100
    rf_min_samples_leaf: int = 1
    rf_max_features: str = "sqrt"
    rf_class_weight: str | None = "balanced"
    num_jobs: int = 1


def ecfp_bits(smiles: Sequence[str], radius: int = 2, num_bits: int = 2048, use_chirality: bool = False,
              name: str = "molecules") -> np.ndarray:
    """Morgan / ECFP bit vectors, uint8 ``[N, num_bits]``.

    Raises:
        FingerprintError: a SMILES RDKit cannot parse (named with its position); the datasets gfm
            loads already left those out, so this means the input is not what it should be.
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=num_bits,
                                                          includeChirality=use_chirality)
    out = np.zeros((len(smiles), num_bits), dtype=np.uint8)
    for index, text in enumerate(smiles):
        mol = Chem.MolFromSmiles(text) if isinstance(text, str) else None
        if mol is None:
            raise FingerprintError(f"{name}: molecule {index} ({text!r}) cannot be parsed by RDKit; give parsable SMILES")
        out[index] = generator.GetFingerprintAsNumPy(mol)
    return out


def _targets(dataset, indices: np.ndarray) -> np.ndarray:
    """float ``[n, T]`` targets with NaN for missing labels (a classification task becomes one column)."""
    import torch

    kind = dataset.task.kind
    rows = []
    for i in indices.tolist():
        y = dataset.graphs[i].y
        if kind == "classification":
            rows.append(torch.as_tensor(y).view(-1)[:1].double().numpy())
        else:
            rows.append(torch.as_tensor(y).view(-1).double().numpy())
    return np.stack(rows) if rows else np.zeros((0, 1))


def _smiles(dataset, indices: np.ndarray) -> list[str]:
    out = []
    for i in indices.tolist():
        text = getattr(dataset.graphs[i], "name", None)
        if not isinstance(text, str):
            raise FingerprintError(f"{dataset.name}: graph {i} carries no SMILES in `name`; the fingerprint baselines "
                                   "need a SMILES dataset (gfm's MoleculeNet loaders set it)")
        out.append(text)
    return out


def _fit_predict(method: str, train_x, train_y: np.ndarray, eval_x: dict, config: FingerprintConfig, seed: int,
                 c_value: float | None) -> tuple[dict[str, np.ndarray], int]:
    """One model per task; returns class-1 probabilities ``{split: [n, T]}`` and how many tasks were constant."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    num_tasks = train_y.shape[1]
    scores = {split: np.zeros((x.shape[0], num_tasks)) for split, x in eval_x.items()}
    constant = 0
    for task in range(num_tasks):
        observed = ~np.isnan(train_y[:, task])
        labels = train_y[observed, task].astype(np.int64)
        if labels.size == 0 or labels.min() == labels.max():
            rate = float(labels.mean()) if labels.size else 0.5
            for split in scores:
                scores[split][:, task] = rate
            constant += 1
            continue
        if method == "fingerprint_lr":
            model = LogisticRegression(C=c_value, solver="liblinear", class_weight=config.lr_class_weight, max_iter=1000)
        else:
            model = RandomForestClassifier(
                n_estimators=config.rf_num_trees, min_samples_leaf=config.rf_min_samples_leaf,
                max_features=config.rf_max_features, class_weight=config.rf_class_weight, n_jobs=config.num_jobs,
                random_state=seed + 7919 * task,
            )
        model.fit(train_x[observed], labels)
        positive = int(np.flatnonzero(model.classes_ == 1)[0])
        for split, x in eval_x.items():
            scores[split][:, task] = model.predict_proba(x)[:, positive]
    return scores, constant


def _score(metric, kind: str, targets: np.ndarray, scores: np.ndarray) -> float:
    if kind == "classification":
        import torch

        # score_outputs reads two-class logits; log-odds of the probability keep the order
        p = np.clip(scores[:, 0], 1e-7, 1 - 1e-7)
        logits = np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1)
        return score_outputs(metric, kind, torch.as_tensor(targets[:, 0]).long(), torch.as_tensor(logits))
    return score_outputs(metric, kind, targets, scores)


def train_fingerprint_model(dataset, method: str, config: FingerprintConfig, seed: int, name: str | None = None,
                            metric: str | None = None) -> RunResult:
    """Train and evaluate a fingerprint baseline on a graph-level molecule ``GraphDataset``.

    Args:
        dataset: graphs carrying their SMILES in ``name`` and ``y`` targets; ``splits`` train /
            valid / test.
        method: ``"fingerprint_lr"`` or ``"fingerprint_rf"``.
        seed: forest seed (logistic regression is deterministic).
        metric: metric name (default: the dataset's; binary metrics only: ROC-AUC, AP).
    """
    from scipy import sparse

    if method not in FINGERPRINT_METHODS:
        raise FingerprintError(f"unknown fingerprint method {method!r}; choose from {list(FINGERPRINT_METHODS)}")
    task = dataset.task
    if task.level != "graph" or task.kind not in ("classification", "multilabel") or (
            task.kind == "classification" and task.num_classes != 2):
        raise FingerprintError(
            f"{dataset.name}: the fingerprint baselines score binary graph tasks (one or several), got {task.summary()}"
        )
    info = get_metric(metric or task.metric)
    if info.kind != "binary":
        raise FingerprintError(f"{dataset.name}: metric {info.name} is not a binary ranking metric (roc_auc, ...)")
    started = time.perf_counter()
    split_index = {s: np.asarray(dataset.splits[s].tolist(), dtype=np.int64) for s in ("train", "valid", "test")}
    features = {s: sparse.csr_matrix(ecfp_bits(_smiles(dataset, idx), config.radius, config.num_bits,
                                               config.use_chirality, dataset.name).astype(np.float32))
                for s, idx in split_index.items()}
    targets = {s: _targets(dataset, idx) for s, idx in split_index.items()}
    grid = list(config.lr_c_grid) if method == "fingerprint_lr" else [None]
    best = None
    curve = []
    for c_value in grid:
        scores, constant = _fit_predict(method, features["train"], targets["train"],
                                        {"valid": features["valid"], "test": features["test"]}, config, seed, c_value)
        valid = _score(info, task.kind, targets["valid"], scores["valid"])
        curve.append(valid)
        if best is None or valid > best[0]:
            best = (valid, c_value, scores, constant)
    valid, c_value, scores, constant = best
    test = _score(info, task.kind, targets["test"], scores["test"])
    return RunResult(
        method=method, task=name or dataset.name, metric=info.name, seed=seed, test=test, valid=valid, role="baseline",
        valid_curve=curve, selected_step=grid.index(c_value) if c_value is not None else None,
        extra={"seconds": time.perf_counter() - started, "selected_C": c_value, "constant_tasks": constant,
               "fingerprint": f"ECFP{2 * config.radius} {config.num_bits} bits",
               "train_molecules": int(len(split_index["train"]))},
    )
