"""The standard molecule transfer protocol: MoleculeNet classification, scaffold split, ROC-AUC, seeds.

The protocol of Hu et al. ("Strategies for Pre-training Graph Neural Networks", 2020) that
GraphMAE and the field report on, as one config (``configs/finetune/protocols/moleculenet_scaffold.yaml``):

- datasets: the six MoleculeNet classification sets HIV, Tox21, ToxCast, MUV, SIDER, ClinTox
  (``$GFM_DATA_DIR/moleculenet``);
- split: the deterministic Bemis-Murcko scaffold split 80/10/10 of Hu et al.
  (``split: hu2020``, :func:`gfm.data.scaffold_protocol.hu_scaffold_split`: chirality-aware
  scaffolds, ties broken as their code does), or the registry's own scaffold split
  (``split: registry``; the same idea, another tie order, so another test set); test sets are
  never cut; a cap on training molecules (``max_train_molecules``, per dataset) draws one seeded
  subset of the training split that every method and seed shares;
- metric: ROC-AUC averaged over tasks, each task scored on its observed labels (missing labels
  masked); a task with a single class in the split is skipped and counted
  (:func:`split_facts`) - also for MUV, whose registry metric is PRC-AUC;
- selection on the validation split only (epochs of the neural models, ``C`` of the logistic
  regression); the test score is read once at the selected point;
- seeds: every method runs once per seed (the logistic regression and the cap are
  deterministic, so their seed spread is zero).

Methods (``methods``):

- ``fingerprint_lr`` / ``fingerprint_rf``: ECFP4 bits + logistic regression / random forest
  (:mod:`gfm.evaluation.fingerprints`);
- ``gin``: PyG's GIN from scratch (:func:`gfm.evaluation.baselines.train_gin_graph_model`; atom
  features only, no bond features);
- ``full``, ``lora``, ``linear_probe`` (from the checkpoint ``pretrained``) and ``scratch`` (the
  same architecture, randomly initialized): the fine-tuning runner
  :func:`gfm.pipelines.finetune.run_finetuning`, given the protocol's dataset (metric, cap).

Every finished run is appended to ``<output_dir>/runs.jsonl`` as soon as it ends; a re-run with
the same settings skips the runs already there, so an interrupted benchmark continues.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from gfm.adapters.training import MIXED_PRECISION_CHOICES
from gfm.evaluation.baselines import BaselineConfig, graph_targets, train_gin_graph_model
from gfm.evaluation.fingerprints import FINGERPRINT_METHODS, FingerprintConfig, train_fingerprint_model
from gfm.evaluation.reports import RunResult, summarize
from gfm.utils.config import ConfigError
from gfm.utils.hardware import cpu_model_name
from gfm.utils.io import atomic_write_json, atomic_write_text
from gfm.utils.tables import format_markdown_table

__all__ = [
    "MoleculeBenchmarkConfig",
    "BENCHMARK_METHODS",
    "GFM_METHODS",
    "DatasetFacts",
    "protocol_dataset",
    "split_facts",
    "run_molecule_benchmark",
    "format_benchmark_tables",
    "write_benchmark_report",
]

logger = logging.getLogger(__name__)

GFM_METHODS = ("full", "lora", "linear_probe", "scratch")
BENCHMARK_METHODS = (*FINGERPRINT_METHODS, "gin", *GFM_METHODS)
SIX = ("moleculenet/hiv", "moleculenet/tox21", "moleculenet/toxcast", "moleculenet/muv", "moleculenet/sider",
       "moleculenet/clintox")
#: the four sets of GraphMAE's headline mean (Tox21, ToxCast, MUV, HIV: 75.5 / 64.1 / 76.3 / 77.2, mean 73.3)
GRAPHMAE_FOUR = ("moleculenet/tox21", "moleculenet/toxcast", "moleculenet/muv", "moleculenet/hiv")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class MoleculeBenchmarkConfig:
    """Every option of ``finetune/run_molecule_benchmark.py`` (one flat YAML mapping)."""

    datasets: list[str] = field(default_factory=lambda: list(SIX), metadata=_help("registry names of binary graph "
                                                                                    "tasks (the six MoleculeNet sets)"))
    methods: list[str] = field(default_factory=lambda: ["fingerprint_lr", "fingerprint_rf", "gin"],
                               metadata=_help(f"any of {list(BENCHMARK_METHODS)}; full / lora / linear_probe / scratch "
                                              "need `pretrained`"))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata=_help("one run per seed and method"))
    metric: str = field(default="roc_auc", metadata=_help("the protocol's metric for every dataset (MUV included)"))
    split: str = field(default="hu2020", metadata={"help": "'hu2020': Hu et al.'s scaffold split (the literature's); "
                                                           "'registry': the dataset loader's own scaffold split",
                                                   "choices": ("hu2020", "registry")})
    pretrained: Optional[str] = field(default=None, metadata=_help("checkpoint directory or hub id (gfm methods)"))
    data_dir: Optional[str] = field(default=None, metadata=_help("data folder (default: $GFM_DATA_DIR)"))
    output_dir: str = field(default="runs/moleculenet_scaffold", metadata=_help("runs.jsonl, the report and plots"))
    max_train_molecules: dict[str, int] = field(
        default_factory=lambda: {"moleculenet/hiv": 10_000, "moleculenet/muv": 10_000},
        metadata=_help("per dataset: at most this many training molecules (one seeded subset for every method and "
                       "seed); test and validation sets are never cut"))
    cap_seed: int = field(default=0, metadata=_help("seed of the training-subset draw of capped datasets"))
    resume: bool = field(default=True, metadata=_help("skip runs already in runs.jsonl with the same settings"))
    num_threads: Optional[int] = field(default=None, metadata=_help("torch threads (None: torch's default)"))
    # --- fingerprints -----------------------------------------------------------------------------
    fingerprint_radius: int = field(default=2, metadata=_help("Morgan radius (2 = ECFP4)"))
    fingerprint_bits: int = field(default=2048, metadata=_help("fingerprint length"))
    lr_c_grid: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0],
                                   metadata=_help("logistic regression: C values, one chosen on validation"))
    rf_num_trees: int = field(default=100, metadata=_help("random forest: trees per task"))
    rf_min_samples_leaf: int = field(default=1, metadata=_help("random forest: minimum samples per leaf"))
    fingerprint_jobs: int = field(default=1, metadata=_help("scikit-learn jobs"))
    # --- GIN ---------------------------------------------------------------------------------------
    gin_hidden_channels: int = field(default=128, metadata=_help("GIN width"))
    gin_num_layers: int = field(default=3, metadata=_help("GIN layers"))
    gin_dropout: float = field(default=0.5, metadata=_help("GIN dropout"))
    gin_learning_rate: float = field(default=1e-3, metadata=_help("GIN Adam learning rate"))
    gin_weight_decay: float = field(default=0.0, metadata=_help("GIN weight decay"))
    gin_epochs: int = field(default=30, metadata=_help("GIN epochs (the best validation epoch is selected)"))
    gin_batch_size: int = field(default=64, metadata=_help("GIN molecules per step"))
    # --- gfm fine-tuning hooks (gfm.pipelines.finetune) --------------------------------------------
    epochs: int = field(default=10, metadata=_help("gfm methods: passes over the training molecules"))
    max_steps: Optional[int] = field(default=None, metadata=_help("gfm methods: cap on optimizer steps"))
    batch_size: int = field(default=32, metadata=_help("gfm methods: sequences per step"))
    eval_batch_size: int = field(default=128, metadata=_help("gfm methods: sequences per evaluation forward"))
    pack_sequences: bool = field(
        default=True, metadata=_help("gfm methods: pack each batch into rows of the model's length (no padding)")
    )
    mixed_precision: str = field(
        default="no",
        metadata={"help": "gfm methods: 'no' (float32) or 'bf16' (forward passes under bfloat16 autocast; float32 "
                          "weights, loss and optimizer). Part of a run's resume key only when not 'no'",
                  "choices": MIXED_PRECISION_CHOICES},
    )
    learning_rate: float = field(default=1e-3, metadata=_help("gfm methods: AdamW learning rate"))
    scratch_learning_rate: Optional[float] = field(default=None, metadata=_help("scratch: learning rate "
                                                                                 "(default: learning_rate)"))
    weight_decay: float = field(default=0.0, metadata=_help("gfm methods: AdamW weight decay"))
    warmup_ratio: float = field(default=0.1, metadata=_help("gfm methods: share of steps with linear warmup"))
    lora_r: int = field(default=8, metadata=_help("LoRA rank"))
    lora_alpha: int = field(default=16, metadata=_help("LoRA alpha"))
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      metadata=_help("modules LoRA wraps"))
    long_sequences: str = field(default="drop", metadata=_help("gfm methods: a molecule longer than the model's "
                                                               "positions is an 'error' or dropped from every gfm "
                                                               "method's split (listed in the report)"))

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in BENCHMARK_METHODS]
        if unknown:
            raise ConfigError(f"methods {unknown} are unknown; choose from {list(BENCHMARK_METHODS)}")
        gfm_methods = [m for m in self.methods if m in GFM_METHODS]
        if gfm_methods and self.pretrained is None:
            raise ConfigError(f"methods {gfm_methods} need `pretrained` (a checkpoint directory or hub id): the adapted "
                              "models start from it and 'scratch' copies its architecture")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds {self.seeds}: give at least one seed, none repeated")
        if not self.datasets:
            raise ConfigError("datasets is empty: list registry names (moleculenet/hiv, ...)")
        unknown_caps = sorted(set(self.max_train_molecules) - set(self.datasets))
        if unknown_caps:
            raise ConfigError(f"max_train_molecules names {unknown_caps}, which are not in datasets {self.datasets}")
        bad_caps = {k: v for k, v in self.max_train_molecules.items() if v < 1}
        if bad_caps:
            raise ConfigError(f"max_train_molecules must be >= 1, got {bad_caps}")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ConfigError(f"mixed_precision={self.mixed_precision!r} is unknown; choose one of "
                              f"{list(MIXED_PRECISION_CHOICES)}")

    def fingerprints(self) -> FingerprintConfig:
        return FingerprintConfig(radius=self.fingerprint_radius, num_bits=self.fingerprint_bits,
                                 lr_c_grid=list(self.lr_c_grid), rf_num_trees=self.rf_num_trees,
                                 rf_min_samples_leaf=self.rf_min_samples_leaf, num_jobs=self.fingerprint_jobs)

    def gin(self) -> BaselineConfig:
        return BaselineConfig(hidden_channels=self.gin_hidden_channels, num_layers=self.gin_num_layers,
                              dropout=self.gin_dropout, learning_rate=self.gin_learning_rate,
                              weight_decay=self.gin_weight_decay, epochs=self.gin_epochs, batch_size=self.gin_batch_size)

    def method_settings(self, method: str) -> dict[str, Any]:
        """The settings a run of ``method`` depends on (its resume key)."""
        shared = {"metric": self.metric, "cap_seed": self.cap_seed, "split": self.split}
        if method in FINGERPRINT_METHODS:
            return shared | dataclasses.asdict(self.fingerprints())
        if method == "gin":
            return shared | dataclasses.asdict(self.gin())
        keys = ("pretrained", "epochs", "max_steps", "batch_size", "eval_batch_size", "learning_rate",
                "scratch_learning_rate", "weight_decay", "warmup_ratio", "lora_r", "lora_alpha", "target_modules",
                "long_sequences", "pack_sequences")
        settings = shared | {k: getattr(self, k) for k in keys}
        if self.mixed_precision != "no":  # runs recorded before the field existed (fp32) keep their key
            settings["mixed_precision"] = self.mixed_precision
        return settings


# ---------------------------------------------------------------------------------------------
# the protocol's view of a dataset
# ---------------------------------------------------------------------------------------------
@dataclass
class DatasetFacts:
    """What one dataset contributes to the table: sizes, tasks, skipped tasks, the cap."""

    dataset: str
    molecules: int
    skipped_smiles: int
    train: int
    train_available: int
    valid: int
    test: int
    tasks: int
    single_class_valid_tasks: int
    single_class_test_tasks: int
    cap: int | None
    split: str = ""


def _single_class_tasks(targets: torch.Tensor, kind: str) -> int:
    """Tasks whose observed labels in a split hold one class (no ROC-AUC: skipped and counted)."""
    values = targets.double().view(targets.shape[0], -1).numpy()
    count = 0
    for task in range(values.shape[1]):
        observed = values[~np.isnan(values[:, task]), task]
        if observed.size == 0 or observed.min() == observed.max():
            count += 1
    return count


def protocol_dataset(dataset, metric: str = "roc_auc", cap: int | None = None, cap_seed: int = 0,
                     split: str = "registry"):
    """The dataset as the protocol scores it: its split, its metric, the training split capped (seeded, sorted).

    Args:
        split: ``"hu2020"`` recomputes Hu et al.'s scaffold split from the graphs' SMILES
            (``graph.name``, in dataset order); ``"registry"`` keeps the loader's split.

    Returns:
        a shallow copy (graphs shared) with ``task`` and ``splits`` replaced.
    """
    if dataset.task.level != "graph" or dataset.task.kind not in ("classification", "multilabel"):
        raise ConfigError(f"{dataset.name}: the molecule protocol scores binary graph tasks, got {dataset.task.summary()}")
    if split not in ("hu2020", "registry"):
        raise ConfigError(f"split={split!r}; use 'hu2020' or 'registry'")
    splits = dict(dataset.splits)
    description = dataset.task.split
    if split == "hu2020":
        from gfm.data.scaffold_protocol import hu_scaffold_split

        names = [getattr(g, "name", None) for g in dataset.graphs]
        if not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{dataset.name}: split 'hu2020' needs each graph's SMILES in `name`; use split: registry")
        splits = hu_scaffold_split(names)
        description = "Hu et al. 2020 scaffold split 80/10/10 (chirality-aware scaffolds, their tie order)"
    available = int(len(splits["train"]))
    if cap is not None and len(splits["train"]) > cap:
        generator = torch.Generator().manual_seed(cap_seed)
        chosen = torch.randperm(len(splits["train"]), generator=generator)[:cap]
        splits["train"] = splits["train"][chosen].sort().values
    task = dataclasses.replace(dataset.task, metric=metric, split=description)
    info = dict(dataset.info)
    info["train_available"] = available
    return dataclasses.replace(dataset, task=task, splits=splits, info=info)


def split_facts(dataset, cap: int | None = None) -> DatasetFacts:
    """Sizes and single-class task counts of a protocol dataset (see :func:`protocol_dataset`)."""
    kind = dataset.task.kind

    def targets(split: str) -> torch.Tensor:
        graphs = [dataset.graphs[i] for i in dataset.splits[split].tolist()]
        values = graph_targets(graphs, kind)
        return values.double().view(-1, 1) if kind == "classification" else values

    return DatasetFacts(
        dataset=dataset.name, molecules=len(dataset.graphs), skipped_smiles=dataset.num_skipped,
        train=len(dataset.splits["train"]), train_available=int(dataset.info.get("train_available",
                                                                                  len(dataset.splits["train"]))),
        valid=len(dataset.splits["valid"]), test=len(dataset.splits["test"]), tasks=dataset.task.num_targets,
        single_class_valid_tasks=_single_class_tasks(targets("valid"), kind),
        single_class_test_tasks=_single_class_tasks(targets("test"), kind), cap=cap, split=dataset.task.split,
    )


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def _settings_key(config: MoleculeBenchmarkConfig, method: str) -> str:
    return hashlib.sha256(json.dumps(config.method_settings(method), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_done(path: Path) -> dict[tuple[str, str, int, str], RunResult]:
    done = {}
    if not path.is_file():
        return done
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
            key = (payload["dataset"], payload["method"], int(payload["seed"]), payload["settings"])
            done[key] = RunResult.from_dict(payload["run"])
        except (ValueError, KeyError, TypeError) as err:  # a line cut short by a kill: run it again
            logger.warning("%s, line %d: unreadable (%s); that run will be repeated", path, number, err)
    return done


def _same_training_set(run: RunResult, dataset, runs_path: Path) -> bool:
    """Whether a finished run trained on as many molecules as ``dataset`` offers now.

    The settings key holds the method's options, not the dataset's cap (``max_train_molecules``);
    a run recorded under another cap is repeated, never reused.
    """
    recorded = run.extra.get("train_molecules")
    now = int(len(dataset.splits["train"]))
    if recorded is None or int(recorded) == now:
        return True
    logger.warning("%s: the recorded %s %s seed %d trained on %d molecules, the protocol now gives %d "
                   "(max_train_molecules changed); that run is repeated", runs_path, run.task, run.method, run.seed,
                   int(recorded), now)
    return False


def _append(path: Path, dataset: str, method: str, seed: int, settings: str, run: RunResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"dataset": dataset, "method": method, "seed": seed, "settings": settings,
                                 "run": run.to_dict()}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _finetune_config(config: MoleculeBenchmarkConfig, name: str, methods: list[str], seeds: list[int]):
    from gfm.pipelines.finetune import FinetuneConfig

    return FinetuneConfig(
        dataset=name, pretrained=config.pretrained, data_dir=config.data_dir,
        output_dir=str(Path(config.output_dir) / "finetune"), methods=methods, seeds=seeds, epochs=config.epochs,
        max_steps=config.max_steps, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate, scratch_learning_rate=config.scratch_learning_rate,
        weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio, lora_r=config.lora_r,
        lora_alpha=config.lora_alpha, target_modules=list(config.target_modules),
        long_sequences=config.long_sequences, num_threads=config.num_threads, save_adapter=False,
        pack_sequences=config.pack_sequences, mixed_precision=config.mixed_precision,
    )


def run_molecule_benchmark(config: MoleculeBenchmarkConfig, datasets: dict[str, Any] | None = None
                           ) -> tuple[list[RunResult], list[DatasetFacts]]:
    """Run every method and seed of the protocol on every dataset (see the module docstring).

    Args:
        datasets: already loaded ``GraphDataset``s by name (default: ``gfm.data.load``).

    Returns:
        ``(runs, facts)``: one :class:`RunResult` per (dataset, method, seed), and one
        :class:`DatasetFacts` per dataset.
    """
    from gfm.data.registry import load

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    output_dir = Path(config.output_dir)
    runs_path = output_dir / "runs.jsonl"
    done = _read_done(runs_path) if config.resume else {}
    results: list[RunResult] = []
    facts: list[DatasetFacts] = []
    for name in config.datasets:
        started = time.perf_counter()
        raw = (datasets or {}).get(name) or load(name, data_dir=config.data_dir)
        cap = config.max_train_molecules.get(name)
        dataset = protocol_dataset(raw, config.metric, cap, config.cap_seed, config.split)
        facts.append(split_facts(dataset, cap))
        logger.info("%s: %s", name, facts[-1])
        gfm_todo: dict[str, list[int]] = defaultdict(list)
        for method in config.methods:
            settings = _settings_key(config, method)
            for seed in config.seeds:
                key = (name, method, seed, settings)
                if key in done and _same_training_set(done[key], dataset, runs_path):
                    results.append(done[key])
                    continue
                if method in GFM_METHODS:
                    gfm_todo[method].append(seed)
                    continue
                if method in FINGERPRINT_METHODS:
                    run = train_fingerprint_model(dataset, method, config.fingerprints(), seed, metric=config.metric)
                else:
                    run = train_gin_graph_model(dataset, config.gin(), seed)
                run.extra["train_molecules"] = int(len(dataset.splits["train"]))
                _append(runs_path, name, method, seed, settings, run)
                results.append(run)
                logger.info("%s %s seed %d: valid %.4f test %.4f", name, method, seed, run.valid or float("nan"), run.test)
        if gfm_todo:
            from gfm.pipelines.finetune import run_finetuning

            for seeds in sorted({tuple(s) for s in gfm_todo.values()}):
                methods = [m for m, s in gfm_todo.items() if tuple(s) == seeds]
                for run in run_finetuning(_finetune_config(config, name, methods, list(seeds)), dataset=dataset):
                    run.extra["train_molecules"] = int(len(dataset.splits["train"]))
                    _append(runs_path, name, run.method, run.seed, _settings_key(config, run.method), run)
                    results.append(run)
        logger.info("%s: done in %.0f s", name, time.perf_counter() - started)
    return results, facts


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------
def _percent(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def format_benchmark_tables(runs: Sequence[RunResult], facts: Sequence[DatasetFacts]) -> str:
    """Two markdown tables: test ROC-AUC (x100, mean ± std over seeds) per method and dataset with the
    means over the six and over GraphMAE's four; and the datasets' sizes, caps and skipped tasks."""
    summaries = summarize(runs)
    names = [f.dataset for f in facts]
    by_method: dict[str, dict[str, Any]] = defaultdict(dict)
    seeds: dict[str, set[int]] = defaultdict(set)
    for summary in summaries:
        by_method[summary.method][summary.task] = summary
        seeds[summary.method].update(summary.seeds)
    order = [m for m in BENCHMARK_METHODS if m in by_method] + sorted(set(by_method) - set(BENCHMARK_METHODS))
    header = ["method", *[n.split("/")[-1] for n in names], "mean (all)", "mean (tox21, toxcast, muv, hiv)", "seeds"]
    rows = []
    for method in dict.fromkeys(order):
        cells = by_method[method]
        row = [method]
        for name in names:
            row.append(_percent(cells[name].mean, cells[name].std) if name in cells else "—")
        complete = all(n in cells for n in names)
        row.append(f"{100 * np.mean([cells[n].mean for n in names]):.1f}" if complete else "—")
        four = [n for n in GRAPHMAE_FOUR if n in names]
        row.append(f"{100 * np.mean([cells[n].mean for n in four]):.1f}"
                   if four and all(n in cells for n in four) else "—")
        row.append(",".join(str(s) for s in sorted(seeds[method])))
        rows.append(row)
    metric = summaries[0].metric if summaries else "roc_auc"
    table = format_markdown_table(header, rows)
    facts_table = format_markdown_table(
        ["dataset", "molecules (skipped SMILES)", "train (of available)", "valid", "test", "tasks",
         "single-class tasks valid / test"],
        [[f.dataset, f"{f.molecules:,} ({f.skipped_smiles})",
          f"{f.train:,}" + (f" (cap; of {f.train_available:,})" if f.train != f.train_available else ""),
          f"{f.valid:,}", f"{f.test:,}", f.tasks, f"{f.single_class_valid_tasks} / {f.single_class_test_tasks}"]
         for f in facts],
    )
    splits = sorted({f.split for f in facts if f.split})
    versus = format_pretraining_gain(runs, names)
    if versus:
        table += "\n\n" + versus
    return (f"Test {metric} x 100 (mean ± std over seeds; selection on validation):\n\n{table}\n\n"
            f"Datasets ({'; '.join(splits) or 'their own splits'}; single-class tasks are skipped in the task mean and "
            f"counted):\n\n{facts_table}")


def format_pretraining_gain(runs: Sequence[RunResult], names: Sequence[str], reference: str = "scratch") -> str:
    """What pretraining buys: each method from the checkpoint against ``reference`` (the same
    architecture from random initialization), per dataset, on the seeds both ran.

    A cell is ``difference of the means (mean ± std of the per-seed differences)``, x100, and is
    marked **above** / **below** when the difference of the means is larger than the sum of the two
    methods' seed standard deviations (their ±1 std intervals do not overlap), ``level`` otherwise;
    fewer than two common seeds give no verdict. Returns ``""`` when ``reference`` did not run.
    """
    by_key = {(r.task, r.method, r.seed): r for r in runs}
    methods = [m for m in ("full", "lora", "linear_probe") if any(r.method == m for r in runs)]
    if not methods or not any(r.method == reference for r in runs):
        return ""
    rows = []
    for method in methods:
        row, counts = [method], defaultdict(int)
        for name in names:
            seeds = sorted(seed for (task, m, seed) in by_key if task == name and m == method
                           and (name, reference, seed) in by_key)
            if not seeds:
                row.append("—")
                continue
            ours = np.array([by_key[(name, method, s)].test for s in seeds])
            theirs = np.array([by_key[(name, reference, s)].test for s in seeds])
            paired = ours - theirs
            gap = float(ours.mean() - theirs.mean())
            if len(seeds) < 2:
                verdict = "one seed"
            else:
                spread = float(ours.std(ddof=1) + theirs.std(ddof=1))
                verdict = "**above**" if gap > spread else "**below**" if gap < -spread else "level"
                counts[verdict.strip("*")] += 1
            spread_text = f" ± {100 * paired.std(ddof=1):.1f}" if len(seeds) > 1 else ""
            row.append(f"{100 * gap:+.1f} ({100 * paired.mean():+.1f}{spread_text}; {verdict})")
        row.append(", ".join(f"{counts[v]} {v}" for v in ("above", "level", "below")))
        rows.append(row)
    table = format_markdown_table(["method", *[n.split("/")[-1] for n in names], "verdicts"], rows)
    return (f"Pretrained minus `{reference}` (same architecture, random initialization), test x 100: difference "
            "of the means (mean ± std of the per-seed differences; verdict: above / below when the difference "
            "exceeds the sum of the two seed stds, else level):\n\n" + table)


def write_benchmark_report(runs: Sequence[RunResult], facts: Sequence[DatasetFacts], config: MoleculeBenchmarkConfig,
                           name: str = "moleculenet_scaffold", seconds: float | None = None) -> dict[str, Path]:
    """``<output_dir>/<name>.md`` (tables, settings, machine) and ``<name>.json`` (every run, the facts)."""
    from gfm.evaluation.reports import per_seed_table

    output_dir = Path(config.output_dir)
    header = [f"# {name}", "", f"date: {time.strftime('%Y-%m-%d %H:%M')}; CPU: {cpu_model_name()} x{os.cpu_count()}"
              + (f"; {seconds:.0f} s" if seconds is not None else ""), ""]
    text = "\n".join(header) + format_benchmark_tables(runs, facts) + "\n\n#### Every run\n\n" + per_seed_table(runs)
    settings = {m: config.method_settings(m) for m in config.methods}
    return {
        "markdown": atomic_write_text(output_dir / f"{name}.md", text),
        "json": atomic_write_json(output_dir / f"{name}.json", {
            "runs": [r.to_dict() for r in runs], "facts": [dataclasses.asdict(f) for f in facts], "settings": settings}),
    }
