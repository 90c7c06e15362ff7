"""The zero-shot protocol: declared access, no gradient step, controls beside every number.

A zero-shot run declares its :class:`Access` to the target graph before it starts:

=================================  ===========================================================
level                              what the method may read
=================================  ===========================================================
``structure``                      ``edge_index`` and ``num_nodes`` only
``structure+features``             plus node / edge attributes
``structure+k_labels``             structure plus ``k`` labelled nodes per class
``structure+features+k_labels``    all of the above
=================================  ===========================================================

The protocol hands a method only :meth:`Access.visible_graph` (labels, masks and any other
field removed) and, under a ``k_labels`` access, a :class:`LabelledNodes` drawn from the
training split. Methods never take a gradient step: node classification is by class
prototypes in the method's state space (cosine to the mean state of each class's labelled
nodes); link prediction scores candidate pairs (cosine of the two node states). Results carry
their access (:class:`~gfm.evaluation.reports.RunResult.access`), and a table or plot that
would put two accesses in one comparison raises
:class:`~gfm.evaluation.reports.AccessMismatchError`.

Controls, always run beside a method under the same access: label propagation, the
parameter-free SVD probe (with and without the feature channel), the structural-role probe, the
linear-GNN ensemble (:class:`LinearGNNMethod`), and a randomly initialized gfm model of the same
architecture. :func:`gfm.evaluation.protocol.fewshot_controls` lists the parameter-free ones for an
access; the held-out evaluation graphs and the few-shot protocol are in
:mod:`gfm.evaluation.protocol`.

This module is model-free: the protocol, the access levels and the parameter-free controls. The
gfm model as a method (and its random-initialization control), which needs a checkpoint's
tokenizer and ego-graph encoder, is :class:`gfm.pipelines.zero_shot.GFMZeroShotMethod`; any
:class:`NodeStateMethod` plugs into the same protocol.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_geometric.data import Data

from gfm.data.link_splits import LinkSplit
from gfm.utils.errors import GFMError

from .controls import (
    ControlError,
    LinearGNNEnsemble,
    SVDProbe,
    check_support,
    class_prototype_scores,
    label_propagation_link_scores,
    label_propagation_scores,
    prototype_distance_scores,
    sample_k_labels_per_class,
    structural_role_features,
)
from .metrics import get_metric, score_outputs
from .reports import AccessMismatchError, RunResult, bar_plot, markdown_table, per_seed_table

__all__ = [
    "Access",
    "AccessError",
    "AccessMismatchError",
    "LabelledNodes",
    "ZeroShotMethod",
    "NodeStateMethod",
    "LabelPropagationMethod",
    "SVDProbeMethod",
    "StructuralRoleMethod",
    "LinearGNNMethod",
    "run_node_classification",
    "run_link_prediction",
    "write_zero_shot_report",
]

logger = logging.getLogger(__name__)

_LEVEL_PATTERN = re.compile(r"^structure(\+features)?(\+(k|\d+)_labels)?$")


class AccessError(GFMError, ValueError):
    """A run asked for something its declared access does not allow, or the access is malformed."""


@dataclass(frozen=True)
class Access:
    """What a zero-shot run may see of the target graph.

    Attributes:
        features: node / edge attributes are visible.
        labels_per_class: ``k`` labelled nodes per class are visible (``None``: no label).
    """

    features: bool = False
    labels_per_class: int | None = None

    def __post_init__(self) -> None:
        k = self.labels_per_class
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise AccessError(f"Access.labels_per_class must be a positive integer or None, got {k!r}")

    @property
    def level(self) -> str:
        """The access level name: ``structure``, ``structure+features``, ``...+k_labels``."""
        return "structure" + ("+features" if self.features else "") + ("+k_labels" if self.labels_per_class else "")

    def __str__(self) -> str:
        labels = f"+{self.labels_per_class}_labels" if self.labels_per_class else ""
        return "structure" + ("+features" if self.features else "") + labels

    @classmethod
    def parse(cls, text: str, labels_per_class: int | None = None) -> Access:
        """``"structure"``, ``"structure+features"``, ``"structure+k_labels"`` (with
        ``labels_per_class``), ``"structure+features+20_labels"``..."""
        match = _LEVEL_PATTERN.match(text.strip())
        if not match:
            raise AccessError(
                f"unknown access {text!r}; use 'structure', 'structure+features', 'structure+k_labels' or "
                "'structure+features+k_labels' (k given separately, or written as e.g. '+20_labels')"
            )
        features = match.group(1) is not None
        k_token = match.group(3)
        if k_token is None:
            if labels_per_class is not None:
                raise AccessError(f"access {text!r} shows no labels but labels_per_class={labels_per_class} was given")
            return cls(features, None)
        if k_token == "k":
            if labels_per_class is None:
                raise AccessError(f"access {text!r} needs labels_per_class (k)")
            return cls(features, int(labels_per_class))
        if labels_per_class is not None and labels_per_class != int(k_token):
            raise AccessError(f"access {text!r} disagrees with labels_per_class={labels_per_class}")
        return cls(features, int(k_token))

    def visible_graph(self, data: Data) -> Data:
        """The part of ``data`` this access may read: structure (+ attributes); never labels."""
        visible = Data(edge_index=data.edge_index, num_nodes=int(data.num_nodes))
        for key in ("domain", "directed", "name"):
            if getattr(data, key, None) is not None:
                visible[key] = getattr(data, key)
        if self.features:
            for key in ("x", "x_cont", "edge_attr", "edge_attr_cont"):
                if isinstance(getattr(data, key, None), torch.Tensor):
                    visible[key] = getattr(data, key)
        return visible


@dataclass
class LabelledNodes:
    """The labels a ``k_labels`` run may see: ``index`` int64 ``[L]``, ``labels`` int64 ``[L]``."""

    index: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def as_full_labels(self, num_nodes: int) -> torch.Tensor:
        """int64 ``[N]`` with the visible labels and -1 elsewhere."""
        full = torch.full((num_nodes,), -1, dtype=torch.long)
        full[self.index] = self.labels
        return full


class ZeroShotMethod(ABC):
    """A method scored under the zero-shot protocol (no gradient step on the target graph)."""

    #: name in tables
    name: str = "method"
    #: ``"method"`` or ``"control"``
    role: str = "method"

    @abstractmethod
    def node_class_scores(self, visible: Data, labelled: LabelledNodes) -> torch.Tensor:
        """float ``[N, C]`` class scores of every node."""

    @abstractmethod
    def link_scores(self, visible: Data, pairs: torch.Tensor) -> torch.Tensor:
        """float ``[P]`` scores of the candidate pairs ``[2, P]``."""


class NodeStateMethod(ZeroShotMethod):
    """A method defined by node states: prototypes for classes, cosine for links."""

    @abstractmethod
    def node_states(self, visible: Data) -> torch.Tensor:
        """float ``[N, H]``."""

    def node_class_scores(self, visible: Data, labelled: LabelledNodes) -> torch.Tensor:
        states = self.node_states(visible)
        full = labelled.as_full_labels(int(visible.num_nodes))
        return class_prototype_scores(states, full, labelled.index, labelled.num_classes)

    def link_scores(self, visible: Data, pairs: torch.Tensor) -> torch.Tensor:
        states = torch.nn.functional.normalize(self.node_states(visible).float(), dim=1)
        return (states[pairs[0]] * states[pairs[1]]).sum(dim=1)


class LabelPropagationMethod(ZeroShotMethod):
    """Control: PyG ``LabelPropagation`` (links: each source's indicator propagated)."""

    role = "control"

    def __init__(self, num_layers: int = 50, alpha: float = 0.9, name: str = "label_propagation") -> None:
        self.num_layers, self.alpha, self.name = num_layers, alpha, name

    def node_class_scores(self, visible: Data, labelled: LabelledNodes) -> torch.Tensor:
        full = labelled.as_full_labels(int(visible.num_nodes))
        return label_propagation_scores(
            visible.edge_index, full, labelled.index, labelled.num_classes, self.num_layers, self.alpha
        )

    def link_scores(self, visible: Data, pairs: torch.Tensor) -> torch.Tensor:
        return label_propagation_link_scores(visible.edge_index, int(visible.num_nodes), pairs, alpha=self.alpha)


def _visible_features(visible: Data) -> torch.Tensor | None:
    """float ``[N, F]``: ``x`` (and ``x_cont``) of a visible graph, or ``None`` when it shows none."""
    features = None
    x = getattr(visible, "x", None)
    if isinstance(x, torch.Tensor):
        features = x.float().view(int(visible.num_nodes), -1)
        if isinstance(getattr(visible, "x_cont", None), torch.Tensor):
            features = torch.cat([features, visible.x_cont.float()], dim=1)
    return features


class SVDProbeMethod(NodeStateMethod):
    """Control: randomized SVD + k-hop smoothing (+ the feature channel when features are visible).

    ``use_features=False`` gives the structure-only probe even under a ``+features`` access (the
    "SVD probe without features" control beside the one with features). States are computed once
    per visible graph and reused across support draws.
    """

    role = "control"

    def __init__(self, probe: SVDProbe | None = None, name: str = "svd_probe", use_features: bool = True) -> None:
        self.probe = probe or SVDProbe()
        self.name = name
        self.use_features = use_features
        self._cache: tuple[Data, torch.Tensor] | None = None

    def node_states(self, visible: Data) -> torch.Tensor:
        if self._cache is not None and self._cache[0] is visible:
            return self._cache[1]
        features = _visible_features(visible) if self.use_features else None
        states = self.probe.embed(visible.edge_index, int(visible.num_nodes), features)
        self._cache = (visible, states)
        return states


class StructuralRoleMethod(ZeroShotMethod):
    """Control: class prototypes over standardized structural-role statistics (structure only).

    Reads only ``edge_index`` whatever the access (:func:`~gfm.evaluation.controls.structural_role_features`);
    class scores are minus the squared distance to each class's mean role vector; links are
    scored by the cosine of the two role vectors.
    """

    role = "control"

    def __init__(self, name: str = "structural_role") -> None:
        self.name = name
        self._cache: tuple[Data, torch.Tensor] | None = None

    def role_features(self, visible: Data) -> torch.Tensor:
        """float ``[N, R]`` standardized role statistics of the visible graph (cached per graph)."""
        if self._cache is None or self._cache[0] is not visible:
            self._cache = (visible, structural_role_features(visible.edge_index, int(visible.num_nodes)))
        return self._cache[1]

    def node_class_scores(self, visible: Data, labelled: LabelledNodes) -> torch.Tensor:
        num_classes = check_support(labelled.index, labelled.labels, int(visible.num_nodes), labelled.num_classes,
                                    f"{self.name} on {getattr(visible, 'name', None) or 'the target graph'}")
        return prototype_distance_scores(self.role_features(visible), labelled.index, labelled.labels.long(),
                                         num_classes)

    def link_scores(self, visible: Data, pairs: torch.Tensor) -> torch.Tensor:
        roles = torch.nn.functional.normalize(self.role_features(visible), dim=1)
        return (roles[pairs[0]] * roles[pairs[1]]).sum(dim=1)


class LinearGNNMethod(ZeroShotMethod):
    """Control: :class:`~gfm.evaluation.controls.LinearGNNEnsemble` under the run's access.

    With ``+features`` (and a graph that has features) the base matrix is the features, else the
    spectral coordinates of the structure; ``use_features=False`` forces the structure base.
    The channels are computed once per visible graph; each call fits the support set in closed
    form, and :attr:`details` records the channel and ridge strength chosen (on the support set
    alone) for the report.
    """

    role = "control"

    def __init__(self, ensemble: LinearGNNEnsemble | None = None, name: str = "linear_gnn",
                 use_features: bool = True) -> None:
        self.ensemble = ensemble or LinearGNNEnsemble()
        self.name = name
        self.use_features = use_features
        self.details: dict = {}
        self._cache: tuple[Data, dict[str, torch.Tensor]] | None = None

    def node_class_scores(self, visible: Data, labelled: LabelledNodes) -> torch.Tensor:
        num_nodes = int(visible.num_nodes)
        num_classes = check_support(labelled.index, labelled.labels, num_nodes, labelled.num_classes,
                                    f"{self.name} on {getattr(visible, 'name', None) or 'the target graph'}")
        if self._cache is None or self._cache[0] is not visible:
            features = _visible_features(visible) if self.use_features else None
            self._cache = (visible, self.ensemble.channel_matrices(visible.edge_index, num_nodes, features))
        scores, self.details = self.ensemble.fit_predict(self._cache[1], labelled.index, labelled.labels.long(),
                                                         num_classes)
        return scores

    def link_scores(self, visible: Data, pairs: torch.Tensor) -> torch.Tensor:
        raise ControlError(
            f"{self.name} is a node-classification control (it fits node labels); for link prediction use "
            "LabelPropagationMethod or SVDProbeMethod"
        )


# ---------------------------------------------------------------------------------------------
# running the protocol
# ---------------------------------------------------------------------------------------------
def _mask(data: Data, key: str, split_index: int) -> torch.Tensor:
    mask = getattr(data, key)
    return mask[:, split_index] if mask.dim() == 2 else mask


def _methods_for(methods, seed: int) -> Sequence[ZeroShotMethod]:
    return methods(seed) if callable(methods) else methods


def run_node_classification(
    dataset,
    methods: Sequence[ZeroShotMethod] | Callable[[int], Sequence[ZeroShotMethod]],
    access: Access,
    seeds: Sequence[int],
    task_name: str | None = None,
) -> list[RunResult]:
    """Score node classification by each method under ``access`` for every seed.

    Seed ``s`` uses given split ``s mod S`` (heterophilous graphs ship S = 10) and draws the
    ``k`` visible labels per class from that split's training nodes. ``methods`` is a list, or
    ``seed -> list`` (e.g. a fresh random-init control per seed). Validation and test
    accuracy are measured on the split's masks; the method never sees those labels.

    Raises:
        AccessError: the access shows no labels (a prototype needs at least one per class).
    """
    if not access.labels_per_class:
        raise AccessError(
            f"{dataset.name}: node classification under access {access} sees no label, so no class can be "
            "named; declare a k_labels access (e.g. Access(features=False, labels_per_class=20))"
        )
    task = dataset.task
    if task.level != "node" or task.kind != "classification":
        raise AccessError(f"{dataset.name}: expected a node classification task, got {task.summary()}")
    data: Data = dataset.graphs[0]
    visible = access.visible_graph(data)
    metric = get_metric(task.metric)
    results = []
    for seed in seeds:
        split_index = seed % max(task.num_splits, 1)
        train = _mask(data, "train_mask", split_index)
        index = sample_k_labels_per_class(data.y, train, access.labels_per_class, seed, task.num_classes)
        labelled = LabelledNodes(index=index, labels=data.y[index], num_classes=task.num_classes)
        valid_mask, test_mask = _mask(data, "val_mask", split_index), _mask(data, "test_mask", split_index)
        for method in _methods_for(methods, seed):
            started = time.perf_counter()
            scores = method.node_class_scores(visible, labelled)
            results.append(
                RunResult(
                    method=method.name, task=task_name or dataset.name, metric=metric.name, seed=seed,
                    test=score_outputs(metric, task.kind, data.y[test_mask], scores[test_mask]),
                    valid=score_outputs(metric, task.kind, data.y[valid_mask], scores[valid_mask]),
                    role=method.role, access=str(access),
                    extra={"seconds": time.perf_counter() - started, "split_index": split_index,
                           "num_labelled": int(index.numel())},
                )
            )
            logger.info("%s %s seed %d [%s]: test %s %.4f", task_name or dataset.name, method.name, seed,
                        access, metric.name, results[-1].test)
    return results


def run_link_prediction(
    data: Data,
    split_for_seed: Callable[[int], LinkSplit],
    methods: Sequence[ZeroShotMethod] | Callable[[int], Sequence[ZeroShotMethod]],
    access: Access,
    seeds: Sequence[int],
    metric: str,
    task_name: str,
) -> list[RunResult]:
    """Score held-out links by each method under ``access`` for every seed (no gradient step).

    Args:
        data: the graph (attributes read only when ``access.features``).
        split_for_seed: ``seed -> LinkSplit``; a method reads only ``split.train_graph``.
        metric: a link metric (``"hits@20"``, ``"mrr"``).
    """
    info = get_metric(metric)
    if info.kind != "link":
        raise AccessError(f"{metric} is not a link metric; use hits@k or mrr")
    results = []
    for seed in seeds:
        split: LinkSplit = split_for_seed(seed)
        split.check_no_leakage()
        visible = access.visible_graph(split.readable_graph(data))
        for method in _methods_for(methods, seed):
            started = time.perf_counter()
            score = {w: (method.link_scores(visible, getattr(split, f"{w}_pos")),
                         method.link_scores(visible, getattr(split, f"{w}_neg"))) for w in ("valid", "test")}
            results.append(
                RunResult(
                    method=method.name, task=task_name, metric=info.name, seed=seed,
                    test=info.function(*score["test"]), valid=info.function(*score["valid"]),
                    role=method.role, access=str(access),
                    extra={"seconds": time.perf_counter() - started,
                           "num_test_positives": int(split.test_pos.shape[1]),
                           "num_test_negatives": int(split.test_neg.shape[1])},
                )
            )
            logger.info("%s %s seed %d [%s]: test %s %.4f", task_name, method.name, seed, access, info.name,
                        results[-1].test)
    return results


def write_zero_shot_report(results: Sequence[RunResult], output_dir: str | Path, name: str = "zero_shot") -> dict:
    """One markdown section and one PNG per access level; runs of different accesses never share one.

    The markdown opens with the held-out evaluation graphs of the protocol
    (:func:`gfm.evaluation.protocol.protocol_statement`).

    Returns:
        ``{"markdown": path, "plots": [paths], "json": path}``.
    """
    from gfm.utils.io import atomic_write_json, atomic_write_text

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    by_access: dict[str, list[RunResult]] = defaultdict(list)
    for run in results:
        if run.access is None:
            raise AccessError(f"{run.method} on {run.task}: a zero-shot result must declare its access")
        by_access[run.access].append(run)
    sections, plots = [], []
    for access in sorted(by_access):
        runs = by_access[access]
        sections.append(markdown_table(runs, title=f"access: {access}"))
        slug = re.sub(r"[^A-Za-z0-9_]+", "_", access)
        plots.append(bar_plot(runs, output_dir / f"{name}_{slug}.png", title=f"zero-shot, access {access}"))
    from .protocol import protocol_statement

    text = protocol_statement() + "\n\n" + "\n".join(sections) + "\n#### Every run\n\n" + per_seed_table(results)
    return {
        "markdown": atomic_write_text(output_dir / f"{name}.md", text),
        "plots": plots,
        "json": atomic_write_json(output_dir / f"{name}.json", [r.to_dict() for r in results]),
    }
