"""Metrics of a pretraining run: CSV and TensorBoard sinks, PNG curves, the final summary table.

``metrics.csv`` is tidy (one value per line: ``step, split, metric, value``) so that
per-domain and per-level metrics can appear without changing the header. Metric names:
``loss`` (the weighted objective the optimizer minimized: in ``train`` the mean of the per-step
values over the logging window), ``loss/<objective>`` and ``loss/<objective>/<domain>`` (token
means over the window or the held-back set), ``loss/masked_code/level<k>``, ``lr``,
``grad_norm``, ``tokens_per_second`` (training steps only), ``tokens_seen``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gfm.utils.io import atomic_write_text
from gfm.utils.tables import format_markdown_table

__all__ = ["MetricsWriter", "read_metrics", "plot_metrics", "format_summary"]

logger = logging.getLogger(__name__)

_HEADER = ["step", "split", "metric", "value"]


class MetricsWriter:
    """Append metrics to ``metrics.csv`` and TensorBoard (main process only).

    Args:
        output_dir: run folder.
        report_to: subset of ``("csv", "tensorboard")``.
        resume_step: when resuming, rows logged after this step by the interrupted run are
            dropped first so the file describes one consistent trajectory.
    """

    def __init__(self, output_dir: str | os.PathLike, report_to: Sequence[str], resume_step: int | None = None):
        self.output_dir = Path(output_dir)
        self.csv_path = self.output_dir / "metrics.csv" if "csv" in report_to else None
        self._tensorboard = None
        if self.csv_path is not None:
            if resume_step is None or not self.csv_path.exists():
                atomic_write_text(self.csv_path, ",".join(_HEADER) + "\n")
            else:
                kept = [row for row in read_metrics(self.csv_path) if row["step"] <= resume_step]
                lines = [",".join(_HEADER)] + [f"{r['step']},{r['split']},{r['metric']},{r['value']!r}" for r in kept]
                atomic_write_text(self.csv_path, "\n".join(lines) + "\n")
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"), purge_step=resume_step)

    def write(self, step: int, split: str, values: Mapping[str, float]) -> None:
        if self.csv_path is not None:
            with open(self.csv_path, "a", newline="") as handle:
                writer = csv.writer(handle)
                for name, value in values.items():
                    writer.writerow([step, split, name, repr(float(value))])
        if self._tensorboard is not None:
            for name, value in values.items():
                self._tensorboard.add_scalar(f"{split}/{name}", float(value), step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.flush()
            self._tensorboard.close()
            self._tensorboard = None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` as dicts with ``step`` int and ``value`` float."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({"step": int(row["step"]), "split": row["split"], "metric": row["metric"], "value": float(row["value"])})
    return rows


def _series(rows: Sequence[Mapping[str, Any]], split: str, metric: str) -> tuple[list[int], list[float]]:
    points = sorted((r["step"], r["value"]) for r in rows if r["split"] == split and r["metric"] == metric)
    return [p[0] for p in points], [p[1] for p in points]


def plot_metrics(metrics_csv: str | os.PathLike, plot_dir: str | os.PathLike) -> list[Path]:
    """Write PNG curves: total and per-domain loss (train and eval), learning rate, tokens/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_csv)
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    written = []
    metrics = sorted({(r["split"], r["metric"]) for r in rows})
    loss_groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for split, metric in metrics:
        parts = metric.split("/")
        if parts[0] == "loss" and len(parts) == 3:
            loss_groups[(split, parts[1])].append(metric)
    for (split, objective), names in sorted(loss_groups.items()):
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for name in names:
            steps, values = _series(rows, split, name)
            axis.plot(steps, values, marker="o" if split == "eval" else None, markersize=3, label=name.split("/")[-1])
        axis.set_xlabel("optimizer step")
        axis.set_ylabel(f"{objective} loss")
        axis.set_title(f"{split}: {objective} loss per domain")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        path = plot_dir / f"{split}_{objective}_loss.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    for split, metric, filename in (("train", "loss", "train_loss.png"), ("train", "lr", "learning_rate.png"),
                                    ("train", "tokens_per_second", "tokens_per_second.png")):
        steps, values = _series(rows, split, metric)
        if not steps:
            continue
        figure, axis = plt.subplots(figsize=(7, 4))
        axis.plot(steps, values)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        path = plot_dir / filename
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def format_summary(summary: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A markdown table of a run's losses: split, objective/group, first and last value, change, falling.

    Args:
        summary: ``{split: {"loss/<objective>/<group>": {"first": x, "last": y, ...}}}`` (the
            ``losses`` of the pretraining summary).
    """
    rows = []
    for split in ("eval", "train"):
        for metric, values in sorted(summary.get(split, {}).items()):
            first, last = values["first"], values["last"]
            change = (last - first) / first * 100 if first else float("nan")
            rows.append([split, metric.removeprefix("loss/"), first, last, f"{change:.1f}%",
                         "yes" if last < first else "NO"])
    return format_markdown_table(["split", "objective / group", "first", "last", "change", "falling"], rows)
