"""The few-shot evaluation protocol: held-out graphs, support sets, controls, one table.

Transfer is measured on a fixed list of **evaluation graphs** that no pretraining run may read
(structure, features or labels): :data:`EVALUATION_GRAPHS`, defined once in
:mod:`gfm.data.corpus` (the layer both pretraining and evaluation import), where
:func:`~gfm.data.corpus.check_pretraining_datasets` refuses a corpus that names one of them.
Every few-shot / zero-shot report states the list (:func:`protocol_statement`).

A few-shot task on a target graph:

- **support set**: ``k`` labelled nodes per class (:func:`sample_support`), drawn from the
  training mask of the graph's first given split when it has one, else from all labelled nodes;
  deterministic given the seed. Where a class has fewer than ``k`` candidates the sampler either
  refuses (:class:`~gfm.evaluation.controls.SupportSetError`) or, with ``allow_fewer=True``,
  takes all of them and records it in :attr:`SupportSet.notes`; a class with no candidate at
  all is then left out of the support set (its test nodes cannot be predicted and count as
  errors).
- **test nodes**: the test mask of the same split, or, without masks, every labelled node
  outside the support set.
- **methods**: anything implementing :class:`~gfm.evaluation.zero_shot.ZeroShotMethod`; the
  parameter-free controls of an access are :func:`fewshot_controls`. No method sees a
  validation or test label; hyper-parameters are fixed rules or chosen on the support set.

:func:`run_fewshot_node_classification` runs it and :func:`fewshot_table` turns the runs into
one markdown table (mean ± std accuracy per graph x access x k x method, and the best control of
each row); ``benchmarks/fewshot_controls.py`` is the command line over the six graphs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch_geometric.data import Data

from gfm.data.corpus import EVALUATION_GRAPH_ALIASES, EVALUATION_GRAPHS

from .controls import SupportSetError, SVDProbe, _labelled_index, check_support
from .metrics import accuracy
from .reports import RunResult
from .zero_shot import (
    Access,
    AccessError,
    LabelledNodes,
    LabelPropagationMethod,
    LinearGNNMethod,
    StructuralRoleMethod,
    SVDProbeMethod,
    ZeroShotMethod,
)

__all__ = [
    "EVALUATION_GRAPHS",
    "EVALUATION_GRAPH_ALIASES",
    "protocol_statement",
    "SupportSet",
    "sample_support",
    "fewshot_controls",
    "run_fewshot_node_classification",
    "fewshot_table",
]

logger = logging.getLogger(__name__)


def protocol_statement() -> str:
    """One markdown paragraph every few-shot / zero-shot report carries: the held-out graphs."""
    aliases = ", ".join(f"`{alias}` (= `{graph}`)" for alias, graph in EVALUATION_GRAPH_ALIASES.items())
    return (
        "**Held-out evaluation graphs** (no pretraining corpus may read their structure, features or labels; "
        "the corpus code refuses them, `gfm.data.corpus.EVALUATION_GRAPHS`): "
        + ", ".join(f"`{name}`" for name in EVALUATION_GRAPHS)
        + (f"; also refused: {aliases}" if aliases else "")
        + "."
    )


@dataclass
class SupportSet:
    """The labelled nodes a few-shot run may see, and what the sampler did to get them.

    Attributes:
        index: int64 ``[L]`` node ids, sorted.
        labels: int64 ``[L]`` their classes (the task's ids, ``0..C-1``).
        num_classes: ``C``, the task's class count.
        requested_k: the ``k`` asked for.
        taken: ``[C]`` labelled nodes taken per class (``k``, or fewer with ``allow_fewer``).
        available: ``[C]`` candidates per class.
        notes: one sentence per class that got fewer than ``k`` (empty when none did).
    """

    index: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    requested_k: int
    taken: list[int]
    available: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[int]:
        """Class ids with at least one support node (all ``C`` unless a class had no candidate)."""
        return [c for c, count in enumerate(self.taken) if count > 0]

    @property
    def capped(self) -> bool:
        """Some class got fewer than ``requested_k`` labelled nodes."""
        return any(count < self.requested_k for count in self.taken)


def sample_support(
    labels: torch.Tensor,
    candidates,
    k: int,
    seed: int,
    num_classes: int | None = None,
    allow_fewer: bool = False,
    what: str = "graph",
) -> SupportSet:
    """Draw ``k`` labelled nodes per class among ``candidates`` (deterministic given ``seed``).

    With every class at ``k`` or more candidates this is the same draw as
    :func:`~gfm.evaluation.controls.sample_k_labels_per_class`.

    Args:
        labels: int64 ``[N]`` classes, -1 for unlabelled nodes.
        candidates: bool ``[N]`` mask or int64 index of the nodes allowed to reveal their label
            (the training split; never validation or test nodes).
        k: labels per class (>= 1).
        seed: the draw's seed.
        num_classes: ``C``; defaults to ``max(label) + 1``.
        allow_fewer: where a class has fewer than ``k`` candidates take all of them (none: the
            class is left out of the support set) and say so in :attr:`SupportSet.notes`;
            otherwise that is an error.
        what: the graph named in messages.

    Raises:
        SupportSetError: ``k < 1``; candidates outside the graph; fewer than two classes; a class
            with fewer than ``k`` candidates (without ``allow_fewer``); fewer than two classes
            left with ``allow_fewer``.
    """
    labels = torch.as_tensor(labels).view(-1).long()
    num_nodes = labels.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SupportSetError(f"{what}: k={k!r} labels per class; pass a positive integer")
    candidates = torch.as_tensor(candidates)
    if candidates.dtype == torch.bool and candidates.shape != (num_nodes,):
        raise SupportSetError(f"{what}: the candidate mask has shape {tuple(candidates.shape)} but the graph has "
                              f"{num_nodes} nodes; pass a bool [{num_nodes}] mask or node ids")
    index = _labelled_index(candidates, num_nodes)
    outside = index[(index < 0) | (index >= num_nodes)]
    if outside.numel():
        raise SupportSetError(
            f"{what}: candidate node(s) {sorted(set(outside.tolist()))[:8]} are outside the graph, which has "
            f"{num_nodes} nodes (ids 0..{num_nodes - 1}); pass candidates of this graph (same node numbering)"
        )
    index = index[labels[index] >= 0]
    top = int(labels.max()) + 1 if num_nodes else 0
    num_classes = max(top, 0) if num_classes is None else int(num_classes)
    if top > num_classes:
        raise SupportSetError(f"{what}: label {top - 1} is outside the {num_classes} classes 0..{num_classes - 1}; "
                              "pass the right num_classes")
    available = torch.bincount(labels[index], minlength=num_classes).tolist() if num_classes else []
    if num_classes < 2 or sum(count > 0 for count in available) < 2:
        present = [c for c, count in enumerate(available) if count > 0]
        raise SupportSetError(
            f"{what}: the candidate nodes carry {len(present)} class(es) ({present}) of {num_classes}; few-shot "
            "classification needs at least two classes (with one, every node gets it): evaluate a graph / task "
            "with two or more classes, or widen the candidate split"
        )
    short = [(c, count) for c, count in enumerate(available) if count < k]
    if short and not allow_fewer:
        listed = ", ".join(f"class {c} has {count}" for c, count in short)
        raise SupportSetError(
            f"{what}: k={k} labels per class, but {listed} candidate node(s) (training split); lower k to "
            f"{min(count for _, count in short) or 1}, or pass allow_fewer=True to take every candidate of such a "
            "class (the support set then says so in .notes and the report states it)"
        )
    generator = torch.Generator().manual_seed(int(seed))
    chosen, taken, notes = [], [], []
    for cls in range(num_classes):
        pool = index[labels[index] == cls]
        # the same draw as sample_k_labels_per_class when the pool is large enough
        pick = pool[torch.randperm(pool.numel(), generator=generator)[:k]]
        chosen.append(pick)
        taken.append(int(pick.numel()))
        if pick.numel() == 0:
            notes.append(f"class {cls}: no candidate node, left out of the support set (its test nodes count as "
                         "errors)")
        elif pick.numel() < k:
            notes.append(f"class {cls}: {pick.numel()} candidate node(s), all taken (k={k} asked)")
    if sum(count > 0 for count in taken) < 2:
        raise SupportSetError(f"{what}: fewer than two classes have a candidate node; few-shot classification "
                              "needs at least two")
    for note in notes:
        logger.info("%s support (k=%d, seed %d): %s", what, k, seed, note)
    index = torch.sort(torch.cat(chosen)).values
    return SupportSet(index=index, labels=labels[index], num_classes=num_classes, requested_k=k, taken=taken,
                      available=available, notes=notes)


def fewshot_controls(access: Access, seed: int = 0) -> list[ZeroShotMethod]:
    """The parameter-free few-shot controls under ``access`` (all fixed-rule, nothing tuned on test labels).

    ``label_propagation``, ``svd_probe_structure`` (the SVD probe without features),
    ``svd_probe_features`` (with the feature channel; only under a ``+features`` access),
    ``structural_role`` and ``linear_gnn`` (features as its base under ``+features``, spectral
    coordinates otherwise). ``seed`` seeds the randomized SVDs.
    """
    from .controls import LinearGNNEnsemble

    controls: list[ZeroShotMethod] = [
        LabelPropagationMethod(),
        SVDProbeMethod(SVDProbe(seed=seed), name="svd_probe_structure", use_features=False),
    ]
    if access.features:
        controls.append(SVDProbeMethod(SVDProbe(seed=seed), name="svd_probe_features", use_features=True))
    controls += [StructuralRoleMethod(), LinearGNNMethod(LinearGNNEnsemble(seed=seed), use_features=access.features)]
    return controls


def _split_mask(data: Data, key: str, split_index: int) -> torch.Tensor | None:
    mask = getattr(data, key, None)
    if not isinstance(mask, torch.Tensor):
        return None
    if mask.dim() == 2:
        if split_index >= mask.shape[1]:
            raise AccessError(f"{key} has {mask.shape[1]} splits; split_index={split_index} does not exist")
        return mask[:, split_index]
    return mask


def run_fewshot_node_classification(
    dataset,
    methods: Sequence[ZeroShotMethod] | Callable[[int], Sequence[ZeroShotMethod]],
    access: Access,
    seeds: Sequence[int],
    split_index: int = 0,
    allow_fewer: bool = True,
    task_name: str | None = None,
) -> list[RunResult]:
    """Score every method on one graph under ``access`` for each seed (no gradient step).

    Every seed draws its own support set (:func:`sample_support`) from the training mask of
    split ``split_index`` (the first split by default; all labelled nodes when the graph has no
    masks); accuracy is measured on that split's test mask (without masks: every labelled node
    outside the support set). When a class has no candidate the task is restricted to the
    classes present (the methods see compact class ids) and that class's test nodes count as
    errors. ``methods`` is a list (reused across seeds, so label-independent work is cached) or
    ``seed -> list``.

    Returns:
        one :class:`RunResult` per (seed, method), ``access`` as declared, ``extra`` with the
        requested ``k``, the labels taken per class, the sampler's notes, the test-node count,
        where the candidates came from, and any ``details`` the method records.
    """
    if not access.labels_per_class:
        raise AccessError(f"{dataset.name}: few-shot classification needs a k_labels access, got {access}")
    task = dataset.task
    if task.level != "node" or task.kind != "classification":
        raise AccessError(f"{dataset.name}: expected a node classification task, got {task.summary()}")
    data: Data = dataset.graphs[0]
    num_nodes = int(data.num_nodes)
    labels = data.y.view(-1).long()
    train = _split_mask(data, "train_mask", split_index)
    test = _split_mask(data, "test_mask", split_index)
    valid = _split_mask(data, "val_mask", split_index)
    source = f"train_mask (split {split_index})" if train is not None else "all labelled nodes"
    candidates = train if train is not None else labels >= 0
    visible = access.visible_graph(data)
    name = task_name or dataset.name
    k = int(access.labels_per_class)
    results = []
    for seed in seeds:
        support = sample_support(labels, candidates, k, seed, task.num_classes, allow_fewer=allow_fewer, what=name)
        present = torch.tensor(support.classes, dtype=torch.long)
        compact = torch.full((task.num_classes,), -1, dtype=torch.long)
        compact[present] = torch.arange(present.numel())
        labelled = LabelledNodes(index=support.index, labels=compact[support.labels], num_classes=present.numel())
        check_support(labelled.index, labelled.labels, num_nodes, labelled.num_classes, name)
        if test is not None:
            test_nodes = test & (labels >= 0)
        else:
            test_nodes = labels >= 0
            test_nodes[support.index] = False
        valid_nodes = valid & (labels >= 0) if valid is not None else None
        for method in (methods(seed) if callable(methods) else methods):
            started = time.perf_counter()
            scores = method.node_class_scores(visible, labelled)
            predicted = present[scores.argmax(dim=1)]
            extra = {
                "seconds": time.perf_counter() - started, "split_index": split_index if train is not None else None,
                "candidates": source, "requested_k": k, "labels_per_class": support.taken,
                "num_labelled": int(support.index.numel()), "notes": list(support.notes),
                "num_test": int(test_nodes.sum()),
            }
            details = getattr(method, "details", None)
            if details:
                extra["details"] = dict(details)
            results.append(RunResult(
                method=method.name, task=name, metric="accuracy", seed=seed,
                test=accuracy(labels[test_nodes], predicted[test_nodes]),
                valid=accuracy(labels[valid_nodes], predicted[valid_nodes]) if valid_nodes is not None
                and bool(valid_nodes.any()) else None,
                role=method.role, access=str(access), extra=extra,
            ))
            logger.info("%s %s seed %d [%s]: test accuracy %.4f", name, method.name, seed, access, results[-1].test)
    return results


def _mean_std(values: list[float]) -> tuple[float, float]:
    tensor = torch.tensor(values, dtype=torch.float64)
    return float(tensor.mean()), float(tensor.std(unbiased=False)) if tensor.numel() > 1 else 0.0


def fewshot_table(
    results: Sequence[RunResult], percent: bool = True, digits: int = 1, order: Sequence[str] = ()
) -> str:
    """One markdown table: a row per (graph, access level, k), a column per method, mean ± std over seeds.

    The last columns name the best control of the row (highest mean at the shown precision; ties
    listed together) and the labels actually taken per class when a class had fewer than ``k``
    candidates; notes of the sampler follow the table. Columns: the methods named in ``order``
    first, then the others in order of first appearance.
    """
    methods: list[str] = [name for name in order if any(run.method == name for run in results)]
    rows: dict[tuple[str, str, int], dict[str, list[RunResult]]] = {}
    for run in results:
        access = Access.parse(run.access) if run.access else None
        if access is None or not access.labels_per_class:
            raise AccessError(f"{run.method} on {run.task}: a few-shot result must declare a k_labels access")
        level = "structure+features+k_labels" if access.features else "structure+k_labels"
        key = (run.task, level, int(access.labels_per_class))
        rows.setdefault(key, {}).setdefault(run.method, []).append(run)
        if run.method not in methods:
            methods.append(run.method)
    scale = 100.0 if percent else 1.0
    header = ["graph", "access", "k", *methods, "best control", "labels per class"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(methods) + ["---"] * 2) + "|"]
    notes: list[str] = []
    for (task, level, k), by_method in rows.items():
        cells, means = [], {}
        for method in methods:
            runs = by_method.get(method)
            if not runs:
                cells.append("—")
                continue
            mean, std = _mean_std([r.test * scale for r in runs])
            means[method] = (mean, runs[0].role)
            cells.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
        controls = {m: mean for m, (mean, role) in means.items() if role == "control"}
        top = max(controls.values()) if controls else None
        best = ", ".join(m for m, v in controls.items() if round(v, digits) == round(top, digits)) if controls else "—"
        first = next(iter(by_method.values()))[0]
        taken = first.extra.get("labels_per_class")
        shown = "" if taken is None or all(t == k for t in taken) else "/".join(str(t) for t in taken)
        for note in first.extra.get("notes", []):
            text = f"{task}, k={k}: {note}"
            if text not in notes:
                notes.append(text)
        lines.append("| " + " | ".join([task, level, str(k), *cells, best, shown]) + " |")
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
