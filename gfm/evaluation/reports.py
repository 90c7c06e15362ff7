"""Run records, summaries over seeds, markdown tables and PNG bar plots.

Every recipe (fine-tuning, zero-shot) produces :class:`RunResult` records, one per
(method, task, seed). :func:`summarize` groups them into mean ± std over seeds, and
:func:`markdown_table` writes one row per method with its baselines and controls beside it.
A table never mixes runs that saw different parts of the target graph: when records carry an
``access`` (the zero-shot protocol), a comparison with two different accesses raises
:class:`AccessMismatchError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_write_json, atomic_write_text
from gfm.utils.tables import format_markdown_table

__all__ = [
    "ROLES",
    "RunResult",
    "ResultSummary",
    "AccessMismatchError",
    "summarize",
    "markdown_table",
    "per_seed_table",
    "bar_plot",
    "write_report",
    "load_results",
]

logger = logging.getLogger(__name__)

#: ``method``: what is being evaluated; ``baseline``: trained comparators (scratch, GCN, GIN);
#: ``control``: parameter-free or untrained comparators (label propagation, SVD probe, random init).
ROLES = ("method", "baseline", "control")


class AccessMismatchError(GFMError, ValueError):
    """Runs that saw different parts of the target graph were put into one comparison."""


@dataclass
class RunResult:
    """One evaluated run.

    Attributes:
        method: e.g. ``"lora"``, ``"full"``, ``"linear_probe"``, ``"scratch"``, ``"gcn"``,
            ``"gin"``, ``"label_propagation"``, ``"svd_probe"``, ``"random_init"``, ``"gfm"``.
        task: the dataset / task name (``"planetoid/cora"``, ``"cora links"``).
        metric: metric name (``"accuracy"``, ``"roc_auc"``, ``"hits@20"``...).
        seed: the run's seed.
        test: metric on the test split at the selected checkpoint.
        valid: metric on the validation split at the selected checkpoint (selection uses only it).
        role: ``"method"``, ``"baseline"`` or ``"control"``.
        access: what the run saw of the target graph (zero-shot protocol), e.g.
            ``"structure+features+20_labels"``; ``None`` for supervised fine-tuning.
        train_losses: training loss per logged step.
        valid_curve: validation metric per evaluation.
        selected_step: step (or epoch) of the selected checkpoint.
        trainable_parameters / total_parameters: parameter counts (0 when parameter-free).
        extra: anything else worth recording (wall time, number of negatives, ...).
    """

    method: str
    task: str
    metric: str
    seed: int
    test: float
    valid: float | None = None
    role: str = "method"
    access: str | None = None
    train_losses: list[float] = field(default_factory=list)
    valid_curve: list[float] = field(default_factory=list)
    selected_step: int | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"RunResult.role={self.role!r}; expected one of {ROLES}")
        self.test = float(self.test)
        self.valid = None if self.valid is None else float(self.valid)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RunResult:
        return cls(**payload)


@dataclass
class ResultSummary:
    """Mean ± std over seeds of one (task, metric, access, method)."""

    method: str
    task: str
    metric: str
    role: str
    access: str | None
    mean: float
    std: float
    seeds: list[int]
    valid_mean: float | None
    final_train_loss: float | None

    def formatted(self, digits: int = 4) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def summarize(runs: Iterable[RunResult]) -> list[ResultSummary]:
    """Group runs by (task, metric, access, method) and average over seeds.

    Raises:
        ValueError: two runs of one group share a seed (a duplicate would bias the mean).
    """
    groups: dict[tuple, list[RunResult]] = defaultdict(list)
    for run in runs:
        groups[(run.task, run.metric, run.access, run.method, run.role)].append(run)
    summaries = []
    for (task, metric, access, method, role), members in groups.items():
        seeds = [r.seed for r in members]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{method} on {task}: seeds {seeds} repeat; each seed must be run once")
        tests = np.array([r.test for r in members])
        valids = [r.valid for r in members if r.valid is not None]
        losses = [r.train_losses[-1] for r in members if r.train_losses]
        summaries.append(
            ResultSummary(
                method=method,
                task=task,
                metric=metric,
                role=role,
                access=access,
                mean=float(tests.mean()),
                # sample std over seeds (ddof=1); 0 for a single seed
                std=float(tests.std(ddof=1)) if len(tests) > 1 else 0.0,
                seeds=sorted(seeds),
                valid_mean=float(np.mean(valids)) if valids else None,
                final_train_loss=float(np.mean(losses)) if losses else None,
            )
        )
    return summaries


def _check_one_access(summaries: Sequence[ResultSummary], task: str) -> None:
    accesses = {s.access for s in summaries}
    if len(accesses) > 1:
        detail = ", ".join(sorted(f"{s.method}: {s.access}" for s in summaries))
        raise AccessMismatchError(
            f"{task}: runs with different access to the target graph cannot be compared in one table "
            f"({detail}); report each access level in its own table"
        )


def _comparison_key(summary: ResultSummary) -> tuple[str, str, str | None]:
    return (summary.task, summary.metric, summary.access)


def markdown_table(runs: Iterable[RunResult], digits: int = 4, title: str | None = None) -> str:
    """One row per method (role ``method``), its baselines and controls on the same task beside it.

    Columns: method | task | metric | mean ± std (seeds) | baselines | controls.
    Tasks that have only baselines / controls get one row per comparator so nothing is hidden.

    Raises:
        AccessMismatchError: one task's runs declare different accesses.
    """
    summaries = summarize(runs)
    by_task: dict[str, list[ResultSummary]] = defaultdict(list)
    for summary in summaries:
        by_task[summary.task].append(summary)
    rows = []
    for task in sorted(by_task):
        members = by_task[task]
        _check_one_access(members, task)
        for metric in sorted({s.metric for s in members}):
            group = [s for s in members if s.metric == metric]
            access = group[0].access
            task_label = task if access is None else f"{task} [{access}]"

            def cell(role: str, group=group) -> str:
                chosen = sorted((s for s in group if s.role == role), key=lambda s: s.method)
                return "; ".join(f"{s.method} {s.formatted(digits)}" for s in chosen) or "—"

            methods = sorted((s for s in group if s.role == "method"), key=lambda s: s.method)
            shown = methods or sorted(group, key=lambda s: (ROLES.index(s.role), s.method))
            for summary in shown:
                seeds = ",".join(str(s) for s in summary.seeds)
                rows.append([summary.method, task_label, metric, f"{summary.formatted(digits)} ({seeds})",
                             cell("baseline"), cell("control")])
    header = ["method", "task", "metric", "mean ± std (seeds)", "baselines", "controls"]
    table = format_markdown_table(header, rows) + "\n"
    return f"### {title}\n\n{table}" if title else table


def per_seed_table(runs: Iterable[RunResult], digits: int = 4) -> str:
    """Every run on its own row: seed, valid, test, selected step, final train loss, parameters."""
    header = ["task", "method", "role", "seed", "valid", "test", "selected step", "final train loss",
              "trainable / total params"]
    rows = []
    for run in sorted(runs, key=lambda r: (r.task, ROLES.index(r.role), r.method, r.seed)):
        valid = "—" if run.valid is None else f"{run.valid:.{digits}f}"
        loss = f"{run.train_losses[-1]:.4f}" if run.train_losses else "—"
        step = "—" if run.selected_step is None else str(run.selected_step)
        params = f"{run.trainable_parameters:,} / {run.total_parameters:,}" if run.total_parameters else "0"
        rows.append([run.task, run.method, run.role, run.seed, valid, f"{run.test:.{digits}f}", step, loss, params])
    return format_markdown_table(header, rows) + "\n"


def bar_plot(runs: Iterable[RunResult], path: str | os.PathLike, title: str | None = None) -> Path:
    """PNG bar plot: one panel per (task, metric), one bar per method with a ±std error bar.

    Methods are coloured by role (method / baseline / control). Uses matplotlib's Agg backend
    (no display needed).

    Raises:
        AccessMismatchError: the runs declare different accesses (plot each access on its own).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    summaries = summarize(runs)
    # one figure is one comparison: every panel must share one access
    _check_one_access(summaries, "bar_plot")
    panels: dict[tuple, list[ResultSummary]] = defaultdict(list)
    for summary in summaries:
        panels[_comparison_key(summary)].append(summary)
    if not panels:
        raise ValueError("bar_plot: no runs to plot")
    keys = sorted(panels, key=lambda k: (k[0], k[1], str(k[2])))
    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.6 * rows), squeeze=False)
    colours = {"method": "#3b6ea8", "baseline": "#d08c2f", "control": "#8a8a8a"}
    for axis, key in zip(axes.flat, keys):
        members = sorted(panels[key], key=lambda s: (ROLES.index(s.role), s.method))
        positions = np.arange(len(members))
        axis.bar(
            positions,
            [s.mean for s in members],
            yerr=[s.std for s in members],
            color=[colours[s.role] for s in members],
            capsize=3,
        )
        axis.set_xticks(positions, [s.method for s in members], rotation=30, ha="right", fontsize=8)
        task, metric, access = key
        axis.set_title(task if access is None else f"{task}\n[{access}]", fontsize=9)
        axis.set_ylabel(metric)
    for axis in list(axes.flat)[len(keys) :]:
        axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(
    runs: Sequence[RunResult], output_dir: str | os.PathLike, name: str = "report", title: str | None = None
) -> dict[str, Path]:
    """Write ``<name>.md`` (summary + per-seed tables), ``<name>.png`` and ``<name>.json`` (all runs).

    Returns:
        ``{"markdown": path, "plot": path, "json": path}``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(runs, title=title)
    text = table + "\n#### Every run\n\n" + per_seed_table(runs)
    paths = {
        "markdown": atomic_write_text(output_dir / f"{name}.md", text),
        "json": atomic_write_json(output_dir / f"{name}.json", [r.to_dict() for r in runs]),
        "plot": bar_plot(runs, output_dir / f"{name}.png", title=title),
    }
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


def load_results(path: str | os.PathLike) -> list[RunResult]:
    """Read the runs a :func:`write_report` JSON holds."""
    return [RunResult.from_dict(item) for item in json.loads(Path(path).read_text())]
