"""Episodic multi-graph pretraining of the in-context few-shot model (:mod:`gfm.modeling.in_context`).

Each step trains on ``episodes_per_step`` few-shot episodes, each drawn deterministically from
``(seed, step, i)`` (so a resumed run sees exactly the episodes an uninterrupted one would):

- **labelled** episode: a graph of the corpus with node labels, a random subset of ``2..max_classes``
  of its classes (renumbered in a random order), a random ``k`` in ``[min_k, max_k]`` support
  nodes per class (fewer where a class is small: at least one node of each class is left as a
  query), ``num_queries`` queries among the other labelled nodes of those classes;
- **self-supervised** episode (``ssl_fraction`` of them): the same on pseudo-classes that need no
  label: k-means clusters (2..8 clusters) of a label-free channel of the graph (propagated
  spectral coordinates, propagated features, or the structural-role block), fitted once per graph.

Every graph is prepared under both access levels it supports (with and without features), so
the model meets the feature channels and their absence. The corpus list goes through
:func:`gfm.data.corpus.check_pretraining_datasets` (an evaluation graph is refused) before any
graph is read; ``validation_datasets`` (held out from training, e.g. ``planetoid/cora``) give a
fixed set of episodes scored every ``eval_every`` steps, the only data hyper-parameters are
chosen on.

The loop is small and separate from :mod:`gfm.training.trainer` on purpose: an episode is not a
token sequence (no packing, no collator, no vocabulary), its inputs are computed from whole
graphs held in memory, and the model is a few hundred thousand parameters trained in minutes on
one CPU process. Checkpoints are atomic folders (``gfm.utils.io.atomic_directory``) holding the
model (``save_pretrained``), the optimizer and scheduler state and the step; a run resumes from
the newest one; ``metrics.csv`` has one row per (step, episode kind) with the loss and accuracy.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch_geometric.data import Data

from gfm.data.corpus import check_pretraining_datasets
from gfm.modeling.in_context import InContextConfig, InContextModel, PreparedGraph, prepare_graph
from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_directory, atomic_write_json

__all__ = [
    "EpisodeError",
    "FewshotPretrainConfig",
    "EpisodeGraph",
    "Episode",
    "kmeans",
    "prepare_episode_graphs",
    "sample_episode",
    "step_episodes",
    "FewshotPretrainer",
    "run_fewshot_pretraining",
]

logger = logging.getLogger(__name__)


class EpisodeError(GFMError, ValueError):
    """A corpus graph cannot give episodes, or the run's folder / config is unusable."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class FewshotPretrainConfig:
    """Every option of ``pretrain/run_fewshot_pretraining.py`` (one flat YAML mapping)."""

    datasets: list[str] = field(metadata=_help("registry names of the training graphs (never an evaluation graph)"))
    validation_datasets: list[str] = field(default_factory=list,
                                           metadata=_help("graphs held out from training whose episodes are scored"))
    data_dir: str | None = field(default=None, metadata=_help("data folder (default: $GFM_DATA_DIR)"))
    output_dir: str = field(default="runs/fewshot", metadata=_help("run folder (checkpoints, metrics.csv, model)"))
    seed: int = field(default=0, metadata=_help("seed of the weights and of every episode"))
    max_steps: int = field(default=1500, metadata=_help("optimizer steps"))
    stop_after_steps: int | None = field(default=None, metadata=_help(
        "stop (with a checkpoint) after this step; resume later to max_steps with the same schedule"))
    episodes_per_step: int = field(default=2, metadata=_help("episodes averaged per step"))
    learning_rate: float = field(default=1e-3, metadata=_help("AdamW peak learning rate"))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay"))
    warmup_steps: int = field(default=50, metadata=_help("linear warmup, then cosine decay to 10%"))
    grad_clip: float = field(default=1.0, metadata=_help("gradient norm clip"))
    min_classes: int = field(default=2, metadata=_help("fewest classes of an episode"))
    max_classes: int = field(default=8, metadata=_help("most classes of an episode"))
    min_k: int = field(default=1, metadata=_help("fewest support nodes per class"))
    max_k: int = field(default=30, metadata=_help("most support nodes per class"))
    num_queries: int = field(default=64, metadata=_help("query nodes per episode"))
    ssl_fraction: float = field(default=0.3, metadata=_help("share of self-supervised (pseudo-class) episodes"))
    ssl_clusterings: int = field(default=3, metadata=_help("k-means pseudo-labellings fitted per graph and access"))
    both_accesses: bool = field(default=True, metadata=_help("prepare graphs with features also without them"))
    max_nodes: int = field(default=40_000, metadata=_help("graphs with more nodes are refused (memory)"))
    hidden_size: int = field(default=64, metadata=_help("episode transformer width"))
    num_layers: int = field(default=2, metadata=_help("episode transformer layers"))
    num_heads: int = field(default=4, metadata=_help("attention heads"))
    pair_term: bool = field(default=True, metadata=_help("learned query-class pair function on the transformer tokens"))
    selection_sharpness: float = field(default=20.0, metadata=_help("initial leave-one-out prior of the channel attention"))
    eval_every: int = field(default=100, metadata=_help("steps between validation scores"))
    eval_episodes: int = field(default=24, metadata=_help("fixed validation episodes"))
    checkpoint_every: int = field(default=250, metadata=_help("steps between atomic checkpoints"))
    log_every: int = field(default=50, metadata=_help("steps between log lines"))
    num_threads: int | None = field(default=None, metadata=_help("torch threads (None: torch's default)"))

    def __post_init__(self) -> None:
        if not self.datasets:
            raise EpisodeError("FewshotPretrainConfig.datasets is empty; list at least one labelled node graph")
        if not 2 <= self.min_classes <= self.max_classes:
            raise EpisodeError(f"min_classes={self.min_classes}, max_classes={self.max_classes}: need 2 <= min <= max")
        if not 1 <= self.min_k <= self.max_k:
            raise EpisodeError(f"min_k={self.min_k}, max_k={self.max_k}: need 1 <= min_k <= max_k")
        if not 0.0 <= self.ssl_fraction <= 1.0:
            raise EpisodeError(f"ssl_fraction={self.ssl_fraction} must be in [0, 1]")
        overlap = set(self.datasets) & set(self.validation_datasets)
        if overlap:
            raise EpisodeError(f"validation_datasets {sorted(overlap)} are also training datasets; hold them out of "
                               "'datasets'")

    def model_config(self) -> InContextConfig:
        return InContextConfig(hidden_size=self.hidden_size, num_layers=self.num_layers, num_heads=self.num_heads,
                               pair_term=self.pair_term, selection_sharpness=self.selection_sharpness)

    def identity(self) -> dict:
        """What must not change across a resume."""
        keys = ("datasets", "seed", "episodes_per_step", "min_classes", "max_classes", "min_k", "max_k",
                "num_queries", "ssl_fraction", "ssl_clusterings", "both_accesses", "hidden_size", "num_layers",
                "num_heads", "pair_term", "selection_sharpness")
        return {key: getattr(self, key) for key in keys}


@dataclass
class EpisodeGraph:
    """One training graph under one access.

    Attributes:
        name: ``"<dataset>"`` plus ``"+features"`` / ``"-features"``.
        prepared: :class:`~gfm.modeling.in_context.PreparedGraph`.
        labels: int64 ``[N]`` (-1: unlabelled) or ``None`` (no labels: self-supervised episodes only).
        pseudo_labels: int64 ``[N]`` k-means labellings.
    """

    name: str
    prepared: PreparedGraph
    labels: torch.Tensor | None
    pseudo_labels: list[torch.Tensor]


@dataclass
class Episode:
    """``support_index`` / ``support_labels`` ``[S]``, ``query_index`` / ``query_labels`` ``[Q]``, classes ``0..C-1``."""

    graph: str
    kind: str
    support_index: torch.Tensor
    support_labels: torch.Tensor
    query_index: torch.Tensor
    query_labels: torch.Tensor
    num_classes: int


def kmeans(points: torch.Tensor, num_clusters: int, generator: torch.Generator, iterations: int = 25,
           max_fit: int = 5000) -> torch.Tensor:
    """Lloyd's k-means (k-means++ start) on at most ``max_fit`` sampled rows, then every row assigned: int64 ``[N]``."""
    points = points.float()
    fit = points[torch.randperm(points.shape[0], generator=generator)[:max_fit]]
    centres = fit[torch.randint(fit.shape[0], (1,), generator=generator)]
    for _ in range(1, num_clusters):
        distance = torch.cdist(fit, centres).min(dim=1).values.pow(2)
        probabilities = distance / distance.sum() if float(distance.sum()) > 0 else torch.full_like(distance, 1 / len(distance))
        centres = torch.cat([centres, fit[torch.multinomial(probabilities, 1, generator=generator)]])
    for _ in range(iterations):
        assign = torch.cdist(fit, centres).argmin(dim=1)
        for c in range(num_clusters):
            members = fit[assign == c]
            if members.shape[0]:
                centres[c] = members.mean(dim=0)
    return torch.cat([torch.cdist(chunk, centres).argmin(dim=1) for chunk in points.split(8192)])


def _pseudo_labellings(prepared: PreparedGraph, count: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    sources = [name for name in ("struct:AX", "feat:AX", "roles") if name in prepared.channels]
    out = []
    for i in range(count):
        source = sources[i % len(sources)]
        clusters = int(torch.randint(2, 9, (1,), generator=generator))
        out.append(kmeans(prepared.channels[source], clusters, generator))
    return out


def prepare_episode_graphs(names: list[str], data_dir: str | None, config: FewshotPretrainConfig,
                           model_config: InContextConfig) -> list[EpisodeGraph]:
    """Load and prepare the graphs of ``names`` (each access it supports). Callers run the leak check first."""
    from gfm.data.registry import load

    graphs = []
    for index, name in enumerate(names):
        started = time.perf_counter()
        dataset = load(name, data_dir=data_dir)
        if len(dataset.graphs) != 1:
            raise EpisodeError(f"{name}: {len(dataset.graphs)} graphs; episodic pretraining reads one large node graph "
                               "per dataset: remove it from 'datasets'")
        data: Data = dataset.graphs[0]
        if int(data.num_nodes) > config.max_nodes:
            raise EpisodeError(f"{name}: {int(data.num_nodes)} nodes > max_nodes={config.max_nodes}; raise max_nodes or "
                               "remove it from 'datasets'")
        labels = None
        y = getattr(data, "y", None)
        if dataset.task.level == "node" and dataset.task.kind == "classification" and isinstance(y, torch.Tensor) \
                and y.dim() == 1:
            labels = y.long()
        has_features = isinstance(getattr(data, "x", None), torch.Tensor) and data.x.numel() > 0
        accesses = [True, False] if has_features and config.both_accesses else [has_features]
        for use_features in accesses:
            label = f"{name}{'+features' if use_features else '-features'}"
            prepared = prepare_graph(data, use_features, model_config, label)
            pseudo = _pseudo_labellings(prepared, config.ssl_clusterings, config.seed * 1000 + index)
            graphs.append(EpisodeGraph(label, prepared, labels, pseudo))
        logger.info("episodes: prepared %s (%d nodes, %s) in %.1f s", name, int(data.num_nodes),
                    "labelled" if labels is not None else "unlabelled", time.perf_counter() - started)
    return graphs


def sample_episode(labels: torch.Tensor, generator: torch.Generator, config: FewshotPretrainConfig, graph: str,
                   kind: str) -> Episode | None:
    """One episode from ``labels`` ``[N]`` (``-1`` = unlabelled); ``None`` when fewer than two classes are usable."""
    labelled = (labels >= 0).nonzero().view(-1)
    counts = torch.bincount(labels[labelled], minlength=int(labels.max()) + 1 if labelled.numel() else 0)
    eligible = (counts >= 2).nonzero().view(-1)
    if eligible.numel() < 2:
        return None
    upper = min(config.max_classes, eligible.numel())
    lower = min(config.min_classes, upper)
    num_classes = int(torch.randint(lower, upper + 1, (1,), generator=generator))
    classes = eligible[torch.randperm(eligible.numel(), generator=generator)[:num_classes]]
    k = int(torch.randint(config.min_k, config.max_k + 1, (1,), generator=generator))
    supports, support_labels, pool, pool_labels = [], [], [], []
    for new, cls in enumerate(classes.tolist()):
        members = labelled[labels[labelled] == cls]
        members = members[torch.randperm(members.numel(), generator=generator)]
        take = min(k, members.numel() - 1)
        supports.append(members[:take])
        support_labels.append(torch.full((take,), new, dtype=torch.long))
        pool.append(members[take:])
        pool_labels.append(torch.full((members.numel() - take,), new, dtype=torch.long))
    pool, pool_labels = torch.cat(pool), torch.cat(pool_labels)
    chosen = torch.randperm(pool.numel(), generator=generator)[: config.num_queries]
    return Episode(graph, kind, torch.cat(supports), torch.cat(support_labels), pool[chosen], pool_labels[chosen],
                   num_classes)


def step_episodes(graphs: list[EpisodeGraph], step: int, config: FewshotPretrainConfig,
                  seed: int | None = None) -> list[Episode]:
    """The episodes of ``step`` (a function of ``(seed, step)`` only: resuming gives the same ones)."""
    seed = config.seed if seed is None else seed
    episodes = []
    for i in range(config.episodes_per_step):
        generator = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 97 + i) % (2**62))
        for _ in range(20):  # retry graphs that cannot give an episode of the drawn kind
            graph = graphs[int(torch.randint(len(graphs), (1,), generator=generator))]
            ssl = graph.labels is None or float(torch.rand(1, generator=generator)) < config.ssl_fraction
            if ssl:
                labels = graph.pseudo_labels[int(torch.randint(len(graph.pseudo_labels), (1,), generator=generator))]
            else:
                labels = graph.labels
            episode = sample_episode(labels, generator, config, graph.name, "ssl" if ssl else "labelled")
            if episode is not None:
                episodes.append(episode)
                break
        else:
            raise EpisodeError(f"step {step}: no graph of the corpus gave an episode; check that the datasets have "
                               "at least two classes with two nodes each")
    return episodes


def _episode_loss(model: InContextModel, graphs: dict[str, EpisodeGraph], episode: Episode):
    output = model.episode_logits(graphs[episode.graph].prepared, episode.support_index, episode.support_labels,
                                  episode.query_index, episode.num_classes, labels=episode.query_labels)
    accuracy = float((output.logits.argmax(dim=1) == episode.query_labels).float().mean())
    return output.loss, accuracy


class FewshotPretrainer:
    """The episodic loop: ``FewshotPretrainer(config).train()`` (resumes from ``output_dir`` when it has a checkpoint).

    ``graphs`` / ``validation`` / ``model_config`` replace the prepared corpus and the model
    configuration built from ``config`` (tests, other corpora); the leak check runs on
    ``config.datasets`` either way.
    """

    METRICS = "metrics.csv"

    def __init__(self, config: FewshotPretrainConfig, graphs: list[EpisodeGraph] | None = None,
                 validation: list[EpisodeGraph] | None = None, model_config: InContextConfig | None = None) -> None:
        check_pretraining_datasets(list(config.datasets) + list(config.validation_datasets), config.data_dir,
                                   config_key="datasets / validation_datasets", where="episodic pretraining corpus")
        self.config = config
        self.output = Path(config.output_dir)
        self.model_config = model_config or config.model_config()
        if graphs is None:
            graphs = prepare_episode_graphs(config.datasets, config.data_dir, config, self.model_config)
        if validation is None:
            validation = prepare_episode_graphs(config.validation_datasets, config.data_dir, config,
                                                self.model_config) if config.validation_datasets else []
        self.graphs = graphs
        self.by_name = {g.name: g for g in graphs + validation}
        labelled_validation = [g for g in validation if g.labels is not None]
        self.validation_episodes = []
        if labelled_validation:
            eval_config = FewshotPretrainConfig(**{**asdict(config), "ssl_fraction": 0.0, "episodes_per_step": 1,
                                                   "validation_datasets": []})
            self.validation_episodes = [step_episodes(labelled_validation, i, eval_config, seed=10_000 + config.seed)[0]
                                        for i in range(config.eval_episodes)]
        torch.manual_seed(config.seed)
        self.model = InContextModel(self.model_config)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0

    def _lr_factor(self, step: int) -> float:
        warmup, total = self.config.warmup_steps, max(self.config.max_steps, 1)
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(total - warmup, 1))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_dir(self) -> Path:
        return self.output / "checkpoint"

    def save(self) -> Path:
        """Write ``output_dir/checkpoint`` atomically: model, optimizer, scheduler, step, identity."""
        with atomic_directory(self.checkpoint_dir(), overwrite=True) as folder:
            self.model.save_pretrained(folder / "model")
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                       folder / "optimizer.pt")
            atomic_write_json(folder / "state.json", {"step": self.step, "identity": self.config.identity()})
        return self.checkpoint_dir()

    def resume(self) -> bool:
        """Load ``output_dir/checkpoint`` when present (same identity required); ``True`` when resumed."""
        folder = self.checkpoint_dir()
        if not (folder / "state.json").is_file():
            return False
        state = json.loads((folder / "state.json").read_text())
        if state.get("identity") != json.loads(json.dumps(self.config.identity())):
            raise EpisodeError(f"{folder}: written by a run with another configuration ({state.get('identity')}); use "
                               "another output_dir or delete the checkpoint")
        self.model = InContextModel.from_pretrained(folder / "model")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.learning_rate,
                                           weight_decay=self.config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        saved = torch.load(folder / "optimizer.pt", weights_only=True)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.step = int(state["step"])
        logger.info("resumed %s at step %d", folder, self.step)
        return True

    # ------------------------------------------------------------------ loop
    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean query accuracy over the fixed validation episodes."""
        if not self.validation_episodes:
            return None
        self.model.eval()
        accuracies = [_episode_loss(self.model, self.by_name, e)[1] for e in self.validation_episodes]
        self.model.train()
        return sum(accuracies) / len(accuracies)

    def _log(self, rows: list[dict]) -> None:
        path = self.output / self.METRICS
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", "kind", "loss", "accuracy", "episodes", "seconds"])
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def train(self) -> dict:
        """Run to ``max_steps`` (from the checkpoint when there is one); export ``output_dir/model``; return a summary."""
        config = self.config
        self.output.mkdir(parents=True, exist_ok=True)
        if self.resume():
            self._truncate_metrics(self.step)
        self.model.train()
        window: dict[str, list[float]] = {}
        started = time.perf_counter()
        stop = min(config.max_steps, config.stop_after_steps or config.max_steps)
        while self.step < stop:
            step_started = time.perf_counter()
            episodes = step_episodes(self.graphs, self.step, config)
            losses, by_kind = [], {}
            for episode in episodes:
                loss, accuracy = _episode_loss(self.model, self.by_name, episode)
                losses.append(loss)
                by_kind.setdefault(episode.kind, []).append((float(loss.detach()), accuracy))
            total = torch.stack(losses).mean()
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            seconds = time.perf_counter() - step_started
            rows = [{"step": self.step, "kind": kind, "loss": sum(v[0] for v in values) / len(values),
                     "accuracy": sum(v[1] for v in values) / len(values), "episodes": len(values),
                     "seconds": round(seconds, 4)} for kind, values in sorted(by_kind.items())]
            for row in rows:
                window.setdefault(row["kind"], []).append(row["loss"])
            if config.eval_every and self.step % config.eval_every == 0:
                accuracy = self.validate()
                if accuracy is not None:
                    rows.append({"step": self.step, "kind": "validation", "loss": "", "accuracy": accuracy,
                                 "episodes": len(self.validation_episodes), "seconds": ""})
            self._log(rows)
            if config.log_every and self.step % config.log_every == 0:
                logger.info("step %d: %s (%.2f s/step)", self.step, ", ".join(
                    f"{kind} loss {sum(v) / len(v):.4f}" for kind, v in sorted(window.items())), seconds)
                window = {}
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self.save()
        self.save()
        if self.step < config.max_steps:
            logger.info("stopped after step %d of %d; run again to resume", self.step, config.max_steps)
            return {"steps": self.step, "seconds": time.perf_counter() - started, "stopped_early": True}
        export = self.output / "model"
        with atomic_directory(export, overwrite=True) as folder:
            self.model.save_pretrained(folder)
        return {"steps": self.step, "seconds": time.perf_counter() - started, "model": str(export),
                "validation_accuracy": self.validate()}

    def _truncate_metrics(self, step: int) -> None:
        """Drop metric rows written after the checkpoint a run resumes from (they will be written again)."""
        path = self.output / self.METRICS
        if not path.exists():
            return
        with open(path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]
        os.replace(path, path.with_suffix(".csv.bak"))
        self._log(rows)
        path.with_suffix(".csv.bak").unlink()


def run_fewshot_pretraining(config: FewshotPretrainConfig) -> dict:
    """Leak check, prepare the corpus, train (resuming when possible), export ``output_dir/model``."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    return FewshotPretrainer(config).train()
