"""The fine-tuning recipe as a library function: one config, every method, several seeds.

``run_finetuning(config)`` loads the dataset (its ``TaskSpec`` decides the head and the
metric), tokenizes the splits once, and runs, for every seed:

- the adaptation methods on the pretrained checkpoint (``lora``, ``full``, ``linear_probe``);
- ``scratch``: the same architecture from random initialization, fully trained by the same loop;
- ``gnn``: the PyG baseline trained from scratch on the same splits (GCN for node and link
  tasks, GIN for graph tasks);
- ``controls``: parameter-free comparators (node tasks: label propagation and the SVD probe
  from the training labels, structure only and, when the graph has features, with them; link
  tasks: their link counterparts; graph tasks: the training prior, i.e. class frequencies /
  target means).

Selection is on the validation split only; the test metric is read once at the selected
checkpoint. Results come back as :class:`~gfm.evaluation.reports.RunResult` records, ready for
``gfm.evaluation.reports.write_report``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gfm.adapters.adaptation import (
    ADAPTATION_METHODS,
    AdaptationConfig,
    base_model_fingerprint,
    export_merged,
    parameter_counts,
    prepare_for_adaptation,
    save_adapter,
)
from gfm.adapters.encoding import SamplingConfig, TaskSampleEncoder, describe_ego_setting, ego_setting_counts
from gfm.adapters.heads import load_pretrained_for_task, scratch_model_for_task
from gfm.adapters.task_data import TaskItems, build_task_items, node_split_index
from gfm.adapters.training import MIXED_PRECISION_CHOICES, TrainingConfig, train_task_model
from gfm.data.dataset import graph_targets
from gfm.data.edge_list import is_user_graph_spec, load_user_graph, parse_user_graph_spec, user_graph_name
from gfm.data.link_splits import LinkSplit, link_split_from_dataset
from gfm.evaluation.baselines import (
    BaselineConfig,
    train_gcn_link_predictor,
    train_gcn_node_classifier,
    train_gin_graph_model,
)
from gfm.evaluation.controls import SVDProbe, label_propagation_link_scores, label_propagation_scores
from gfm.evaluation.metrics import score_outputs
from gfm.evaluation.reports import RunResult
from gfm.utils.config import ConfigError, load_yaml_dataclass
from gfm.utils.io import atomic_write_bytes

__all__ = ["FinetuneConfig", "FinetuneConfigError", "run_finetuning", "load_finetune_config", "METHOD_NAMES",
           "load_task_dataset", "ego_graph_section"]

logger = logging.getLogger(__name__)

METHOD_NAMES = (*ADAPTATION_METHODS, "scratch", "gnn", "controls")


#: a config key unknown, missing or inconsistent: gfm's one config error (the name is kept for importers)
FinetuneConfigError = ConfigError


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class FinetuneConfig:
    """Every option of ``finetune/run_finetuning.py`` (one flat YAML mapping)."""

    dataset: str | None = field(
        default=None,
        metadata=_help("registry name of the task dataset, e.g. 'planetoid/cora', or your own graph as "
                       "'csv:edges=<path>,nodes=<path>,label=<column>' (or set edges_csv / nodes_csv / label_column)"),
    )
    edges_csv: str | None = field(
        default=None, metadata=_help("your own graph: edge list CSV / Parquet (columns source,target) instead of dataset")
    )
    nodes_csv: str | None = field(
        default=None, metadata=_help("your own graph: node table (column id, the label column, optional numeric features)")
    )
    label_column: str = field(default="label", metadata=_help("your own graph: the node table's label column"))
    id_column: str = field(default="id", metadata=_help("your own graph: the node table's node id column"))
    pretrained: str | None = field(
        default=None, metadata=_help("pretrained checkpoint directory or hub id (model + tokenizer)")
    )
    data_dir: str | None = field(default=None, metadata=_help("data folder (default: $GFM_DATA_DIR)"))
    output_dir: str = field(default="runs/finetune", metadata=_help("where reports, adapters and exports go"))
    methods: list[str] = field(
        default_factory=lambda: ["lora", "scratch", "gnn", "controls"],
        metadata=_help(f"any of {METHOD_NAMES}"),
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata=_help("one run per seed and method"))
    # --- sampling / tokenization ------------------------------------------------------------
    sampling_method: str = field(default="khop", metadata=_help("node / edge tasks: 'khop' or 'ppr' ego graphs"))
    num_hops: int = field(default=2, metadata=_help("k of the k-hop ego graphs"))
    max_neighbors: int = field(default=8, metadata=_help("neighbour cap per hop"))
    ppr_k: int = field(default=32, metadata=_help("size of PPR ego graphs"))
    attributes: str = field(
        default="tokens", metadata=_help("'tokens': the tokenizer writes attributes; 'drop': structure only")
    )
    split_index: int = field(default=0, metadata=_help("node tasks with several given splits: which one"))
    max_train_items: int | None = field(default=None, metadata=_help("cap on training graphs / nodes / positive pairs"))
    max_eval_items: int | None = field(default=None, metadata=_help("cap on valid / test graphs / nodes / positive pairs"))
    max_eval_negatives: int | None = field(default=None, metadata=_help("link tasks: cap on evaluation negatives"))
    long_sequences: str = field(
        default="fit",
        metadata=_help("a sequence longer than the model's positions. Node tasks: 'fit' (and 'drop') shrink the ego "
                       "graph (fewer neighbours per hop, then fewer hops; counts per setting in the report), 'error' "
                       "raises. Graph tasks: 'drop' leaves the graph out of every method's split (listed in the "
                       "report), 'fit' and 'error' raise"),
    )
    num_eval_negatives: int = field(
        default=10_000, metadata=_help("link tasks without given negatives: negatives sampled per split")
    )
    # --- optimization -------------------------------------------------------------------------
    learning_rate: float = field(default=1e-3, metadata=_help("AdamW learning rate (adapted models)"))
    scratch_learning_rate: float | None = field(
        default=None, metadata=_help("learning rate of the from-scratch model (default: learning_rate)")
    )
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    epochs: int = field(default=10, metadata=_help("passes over the training items"))
    max_steps: int | None = field(default=None, metadata=_help("cap on optimizer steps"))
    batch_size: int = field(default=32, metadata=_help("sequences per step"))
    eval_batch_size: int = field(default=64, metadata=_help("sequences per evaluation forward"))
    eval_every_steps: int | None = field(default=None, metadata=_help("steps between validations (default: epoch)"))
    warmup_ratio: float = field(default=0.1, metadata=_help("share of steps with linear warmup"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping (0 = off)"))
    pack_sequences: bool = field(
        default=True,
        metadata=_help("pack each batch's sequences into rows of the model's length instead of padding them "
                       "(same samples per step, same outputs up to float rounding, fewer positions)"),
    )
    mixed_precision: str = field(
        default="no",
        metadata={"help": "'no': float32; 'bf16': forward passes of the gfm models under bfloat16 autocast (float32 "
                          "weights, loss, optimizer and outputs; ~2.6x faster matmuls on a CPU with avx512_bf16 / AMX)",
                  "choices": MIXED_PRECISION_CHOICES},
    )
    # --- LoRA -----------------------------------------------------------------------------------
    lora_r: int = field(default=8, metadata=_help("LoRA rank"))
    lora_alpha: int = field(default=16, metadata=_help("LoRA alpha"))
    lora_dropout: float = field(default=0.0, metadata=_help("LoRA dropout"))
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], metadata=_help("modules LoRA wraps")
    )
    max_trainable_fraction: float = field(default=0.05, metadata=_help("LoRA must train at most this share"))
    save_adapter: bool = field(default=True, metadata=_help("save the LoRA adapter of each seed (peft format)"))
    export_merged: bool = field(default=False, metadata=_help("also save the merged model of the first seed"))
    save_test_outputs: bool = field(
        default=True,
        metadata=_help("save each gfm run's test outputs (model scores per item, with the items' ids) to "
                       "<output_dir>/test_outputs/<dataset>-<method>-seed<k>.pt, for bootstrap intervals or "
                       "re-scoring on a subset"),
    )
    # --- GNN baseline ---------------------------------------------------------------------------
    gnn_hidden_channels: int = field(default=64, metadata=_help("GCN / GIN width"))
    gnn_num_layers: int = field(default=2, metadata=_help("GCN / GIN layers"))
    gnn_dropout: float = field(default=0.5, metadata=_help("GCN / GIN dropout"))
    gnn_learning_rate: float = field(default=0.01, metadata=_help("GCN / GIN learning rate"))
    gnn_weight_decay: float = field(default=5e-4, metadata=_help("GCN / GIN weight decay"))
    gnn_epochs: int = field(default=100, metadata=_help("GCN / GIN epochs"))
    gnn_batch_size: int = field(default=128, metadata=_help("GIN graphs / link positives per step"))
    gnn_max_train_edges_per_epoch: int | None = field(default=None, metadata=_help("link GCN: positives per epoch"))
    num_threads: int | None = field(default=None, metadata=_help("torch threads (None: torch's default)"))

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise FinetuneConfigError(f"methods {unknown} are unknown; choose from {list(METHOD_NAMES)}")
        adapted = [m for m in self.methods if m in ADAPTATION_METHODS]
        if (adapted or "scratch" in self.methods) and self.pretrained is None:
            raise FinetuneConfigError(
                f"methods {adapted or ['scratch']} need `pretrained` (a checkpoint directory or hub id): the adapted "
                "models start from it and 'scratch' copies its architecture"
            )
        if not self.seeds:
            raise FinetuneConfigError("seeds is empty: give at least one seed")
        if self.long_sequences not in ("fit", "error", "drop"):
            raise FinetuneConfigError(f"long_sequences={self.long_sequences!r}; use 'fit', 'error' or 'drop'")
        if (self.dataset is None) == (self.edges_csv is None):
            raise FinetuneConfigError(
                "give the task's graph once: dataset (a registry name or 'csv:edges=...,nodes=...,label=...') or "
                f"edges_csv with nodes_csv and label_column (got dataset={self.dataset!r}, edges_csv={self.edges_csv!r})"
            )
        if self.nodes_csv is not None and self.edges_csv is None:
            raise FinetuneConfigError("nodes_csv is set without edges_csv; give the edge list too (edges_csv=<path>)")
        if len(set(self.seeds)) != len(self.seeds):
            raise FinetuneConfigError(f"seeds {self.seeds} repeat")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise FinetuneConfigError(
                f"mixed_precision={self.mixed_precision!r} is unknown; choose one of {list(MIXED_PRECISION_CHOICES)}"
            )

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            method=self.sampling_method, num_hops=self.num_hops, max_neighbors=self.max_neighbors,
            ppr_k=self.ppr_k, attributes=self.attributes,
            long_sequences="error" if self.long_sequences == "error" else "fit",
        )

    @property
    def dataset_name(self) -> str:
        """The task's name in reports: the registry name or spec, or the user graph's."""
        if self.dataset is None:
            return user_graph_name(self.edges_csv)
        if is_user_graph_spec(self.dataset):
            options = parse_user_graph_spec(self.dataset)
            return str(options.get("name") or user_graph_name(str(options["edges"])))
        return self.dataset

    def training(self, scratch: bool = False) -> TrainingConfig:
        rate = self.scratch_learning_rate if scratch and self.scratch_learning_rate is not None else self.learning_rate
        return TrainingConfig(
            learning_rate=rate, weight_decay=self.weight_decay, epochs=self.epochs, max_steps=self.max_steps,
            batch_size=self.batch_size, eval_batch_size=self.eval_batch_size, eval_every_steps=self.eval_every_steps,
            warmup_ratio=self.warmup_ratio, max_grad_norm=self.max_grad_norm, pack_sequences=self.pack_sequences,
            mixed_precision=self.mixed_precision,
        )

    def adaptation(self, method: str) -> AdaptationConfig:
        return AdaptationConfig(
            method=method, lora_r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            target_modules=list(self.target_modules), max_trainable_fraction=self.max_trainable_fraction,
        )

    def baseline(self, level: str) -> BaselineConfig:
        return BaselineConfig(
            hidden_channels=self.gnn_hidden_channels, num_layers=self.gnn_num_layers, dropout=self.gnn_dropout,
            learning_rate=self.gnn_learning_rate, weight_decay=self.gnn_weight_decay, epochs=self.gnn_epochs,
            batch_size=self.gnn_batch_size, max_train_edges_per_epoch=self.gnn_max_train_edges_per_epoch,
        )


def load_finetune_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Read a YAML config (unknown keys are an error naming the closest valid key)."""
    return load_yaml_dataclass(path, FinetuneConfig, overrides)


# ---------------------------------------------------------------------------------------------
# the pieces of a run
# ---------------------------------------------------------------------------------------------
def load_task_dataset(name: str | None, data_dir: str | None = None, *, edges_csv: str | None = None,
                      nodes_csv: str | None = None, label_column: str = "label", id_column: str = "id"):
    """The task's ``GraphDataset``: a registry name, a ``csv:edges=...,nodes=...,label=...`` spec, or
    the ``edges_csv`` / ``nodes_csv`` / ``label_column`` config keys (a user's own graph with node labels)."""
    from gfm.data.registry import load

    if name is None:
        return load_user_graph(edges_csv, nodes_csv, label_column, id=id_column,
                               config_keys=("nodes_csv", "label_column", "id_column"))
    if is_user_graph_spec(name):
        return load_user_graph(**parse_user_graph_spec(name))
    return load(name, data_dir=data_dir)


def _load_dataset(config: FinetuneConfig):
    return load_task_dataset(config.dataset, config.data_dir, edges_csv=config.edges_csv, nodes_csv=config.nodes_csv,
                             label_column=config.label_column, id_column=config.id_column)


def ego_graph_section(results: list[RunResult]) -> str:
    """Markdown: how many nodes each ego-graph setting served, per run that had to fit ego graphs
    to the model's context (``extra["ego_graphs"]``); empty when none did."""
    rows = [(run.method, run.task, run.seed, run.extra["ego_graphs"]) for run in results
            if set(run.extra.get("ego_graphs") or {}) - {run.extra.get("ego_graph_setting")}]
    if not rows:
        return ""
    lines = ["### ego graphs fitted to the model's context", "",
             "Nodes whose ego graph was longer than the model's positions were sampled again with fewer neighbours "
             "per hop, then fewer hops (long_sequences: fit); nodes per setting:", "",
             "| method | task | seed | nodes per ego-graph setting |", "|---|---|---|---|"]
    for method, task, seed, counts in rows:
        lines.append(f"| {method} | {task} | {seed} | {'; '.join(f'{k}: {v}' for k, v in counts.items())} |")
    return "\n".join(lines) + "\n"


def _gnn_baseline(config: FinetuneConfig, dataset, link_split: LinkSplit | None, seed: int) -> RunResult:
    level = dataset.task.level
    baseline = config.baseline(level)
    if level == "node":
        return train_gcn_node_classifier(dataset, baseline, seed, split_index=config.split_index)
    if level == "graph":
        return train_gin_graph_model(dataset, baseline, seed)
    return train_gcn_link_predictor(dataset.graphs[0], link_split, dataset.task.metric, baseline, seed, name=dataset.name)


def _link_label_propagation(link_split: LinkSplit) -> dict[str, torch.Tensor]:
    """Label-propagation scores of every evaluation pair, ``{"valid_pos": [P], ...}``, in one pass.

    One call over all four pair sets shares the propagation of each source node (on a dense
    graph such as ddi nearly every node is a source of some pair, and each propagation is a
    sparse product over all training edges).
    """
    names = ("valid_pos", "valid_neg", "test_pos", "test_neg")
    pairs = [getattr(link_split, name) for name in names]
    scores = label_propagation_link_scores(link_split.train_graph, link_split.num_nodes, torch.cat(pairs, dim=1))
    return dict(zip(names, torch.split(scores, [p.shape[1] for p in pairs])))


def _controls(
    config: FinetuneConfig, dataset, link_split: LinkSplit | None, seed: int, cache: dict[str, Any] | None = None
) -> list[RunResult]:
    """Parameter-free comparators on the same splits (they use the training labels only).

    Args:
        cache: kept across the seeds of one run; holds what does not depend on the seed (the
            link label-propagation scores, whose split is fixed for the run).
    """
    cache = {} if cache is None else cache
    task, name = dataset.task, dataset.name
    results = []
    if task.level == "node" and task.kind == "classification":
        data = dataset.graphs[0]
        train = node_split_index(data.train_mask, config.split_index, "train_mask", name)
        valid = node_split_index(data.val_mask, config.split_index, "val_mask", name)
        test = node_split_index(data.test_mask, config.split_index, "test_mask", name)
        features = data.x.float() if isinstance(getattr(data, "x", None), torch.Tensor) else None
        probe = SVDProbe(seed=seed)
        scores = {
            "label_propagation": label_propagation_scores(data.edge_index, data.y, train, task.num_classes),
            "svd_probe": probe.node_scores(data.edge_index, data.y, train, None, task.num_classes),
        }
        if features is not None and features.shape[1] >= 2:
            scores["svd_probe+features"] = probe.node_scores(data.edge_index, data.y, train, features, task.num_classes)
        elif features is not None:  # an SVD of one column is no probe (SVDProbe refuses it)
            logger.warning("%s: svd_probe+features is left out: the graph has %d feature column(s), the probe needs "
                           "two or more", name, features.shape[1])
        for method, values in scores.items():
            results.append(RunResult(
                method=method, task=name, metric=task.metric, seed=seed, role="control",
                test=score_outputs(task.metric, task.kind, data.y[test], values[test]),
                valid=score_outputs(task.metric, task.kind, data.y[valid], values[valid]),
            ))
    elif task.level == "edge":
        from gfm.evaluation.metrics import get_metric

        metric = get_metric(task.metric)
        probe = SVDProbe(seed=seed)
        states = torch.nn.functional.normalize(probe.embed(link_split.train_graph, link_split.num_nodes), dim=1)
        if "link_label_propagation" not in cache:
            cache["link_label_propagation"] = _link_label_propagation(link_split)
        pair_sets = {key: getattr(link_split, key) for key in ("valid_pos", "valid_neg", "test_pos", "test_neg")}
        scores = {
            "label_propagation": cache["link_label_propagation"],
            "svd_probe": {key: (states[pairs[0]] * states[pairs[1]]).sum(1) for key, pairs in pair_sets.items()},
        }
        for method, by_name in scores.items():
            values = {w: metric.function(by_name[f"{w}_pos"], by_name[f"{w}_neg"]) for w in ("valid", "test")}
            results.append(RunResult(method=method, task=name, metric=metric.name, seed=seed, role="control",
                                     test=values["test"], valid=values["valid"]))
    elif task.level == "graph":
        results.append(_prior_control(dataset, seed))
    return results


def _prior_control(dataset, seed: int) -> RunResult:
    """Predict the training prior for every graph: class frequencies, label rates or target means."""
    task = dataset.task
    split_targets = {s: graph_targets([dataset.graphs[i] for i in dataset.splits[s].tolist()], task.kind)
                     for s in ("train", "valid", "test")}
    train = split_targets["train"]
    if task.kind == "classification":
        prior = torch.bincount(train, minlength=task.num_classes).float().log()
    else:
        prior = torch.nanmean(train, dim=0)
        if task.kind == "multilabel":
            prior = torch.logit(prior.clamp(1e-4, 1 - 1e-4))

    def outputs(split: str) -> torch.Tensor:
        return prior.expand(split_targets[split].shape[0], -1).clone()

    values = {}
    for split in ("valid", "test"):
        try:
            values[split] = score_outputs(task.metric, task.kind, split_targets[split], outputs(split))
        except ValueError as err:
            logger.info("prior control on %s %s: %s", dataset.name, split, err)
            values[split] = float("nan")
    return RunResult(method="prior", task=dataset.name, metric=task.metric, seed=seed, role="control",
                     test=values["test"], valid=values["valid"])


def _standardize_regression_head(model: torch.nn.Module, items: TaskItems) -> None:
    """Regression: the head learns standardized targets (training-split mean / std per target).

    Without it a fresh head starts at 0 against targets of tens or hundreds (TPSA, QM8 energies)
    and spends its steps learning the offset; the model still predicts in the targets' units.
    """
    if items.kind != "regression":
        return
    targets = items.targets["train"].double().reshape(len(items.samples["train"]), -1)
    observed = ~torch.isnan(targets)
    counts = observed.sum(0).clamp(min=1)
    mean = torch.where(observed, targets, 0.0).sum(0) / counts
    variance = torch.where(observed, (targets - mean) ** 2, 0.0).sum(0) / (counts - 1).clamp(min=1)
    std = variance.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant target keeps unit scale
    model.config.regression_target_mean = mean.tolist()
    model.config.regression_target_std = std.tolist()


def _gfm_run(
    config: FinetuneConfig, method: str, dataset, items: TaskItems, encoder: TaskSampleEncoder, seed: int,
    output_dir: Path,
) -> RunResult:
    task = dataset.task
    model, tokenizer = load_pretrained_for_task(config.pretrained, task)
    fingerprint = None
    if method == "scratch":
        model = scratch_model_for_task(model.config, task, seed)
        training = config.training(scratch=True)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # the new head's initialization follows the seed (normal(0, initializer_range), as transformers)
            torch.nn.init.normal_(model.score.weight, std=model.config.initializer_range)
            torch.nn.init.zeros_(model.score.bias)
        fingerprint = base_model_fingerprint(model)
        model = prepare_for_adaptation(model, config.adaptation(method))
        training = config.training()
    _standardize_regression_head(model, items)
    trainable, total = parameter_counts(model)
    logger.info("%s %s seed %d: %d of %d parameters train (%.3f%%)", dataset.name, method, seed, trainable, total,
                100 * trainable / total)
    outcome = train_task_model(model, encoder, items, training, seed)
    extra: dict[str, Any] = {"seconds": outcome.seconds, "valid_steps": outcome.valid_steps,
                             "trainable_fraction": trainable / total}
    if config.save_test_outputs:
        extra["test_outputs"] = str(save_test_outputs(
            output_dir / "test_outputs" / f"{_slug(dataset.name)}-{method}-seed{seed}.pt", outcome.test_outputs,
            items.ids["test"], items.targets["test"],
        ))
    if method == "lora" and config.save_adapter:
        adapter_dir = output_dir / "adapters" / f"{_slug(dataset.name)}-seed{seed}"
        save_adapter(model, adapter_dir, config.pretrained, fingerprint)
        extra["adapter_dir"] = str(adapter_dir)
        if config.export_merged and seed == config.seeds[0]:
            merged_dir = output_dir / "merged" / f"{_slug(dataset.name)}-seed{seed}"
            export_merged(model, tokenizer, merged_dir, overwrite=True)
            extra["merged_dir"] = str(merged_dir)
    return RunResult(
        method=method, task=dataset.name, metric=items.metric.name, seed=seed, test=outcome.test,
        valid=outcome.best_valid, role="baseline" if method == "scratch" else "method",
        train_losses=outcome.train_losses, valid_curve=outcome.valid_curve, selected_step=outcome.best_step,
        trainable_parameters=trainable, total_parameters=total, extra=extra,
    )


def save_test_outputs(path: Path, outputs: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor) -> Path:
    """Write ``{"outputs": [n, labels], "ids": [n] or [2, n], "targets": [n, ...]}`` to ``path`` atomically.

    ``ids`` are the items' graph indices / node ids / pairs in the dataset, so the run can be
    re-scored on any subset of its test items (e.g. without the molecules a pretraining corpus held).
    """
    buffer = io.BytesIO()
    torch.save({"outputs": outputs.detach().cpu(), "ids": ids.cpu(), "targets": targets.cpu()}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _restricted_to_items(dataset, items: TaskItems, config: FinetuneConfig):
    """``dataset`` cut down to the gfm models' items, so the baselines and controls train and
    are scored on the same graphs / nodes after the caps (``max_*_items``) and long-sequence drops.

    Graph tasks: the splits become ``items.ids``. Node tasks with a cap: ``[N]`` masks of the
    capped node sets replace the given masks. Link tasks share one ``LinkSplit`` already.
    """
    capped = config.max_train_items is not None or config.max_eval_items is not None
    if dataset.task.level == "graph" and (capped or items.dropped):
        return dataclasses.replace(dataset, splits=dict(items.ids))
    if dataset.task.level == "node" and capped:
        data = dataset.graphs[0].clone()
        for split, key in zip(("train", "valid", "test"), ("train_mask", "val_mask", "test_mask")):
            mask = torch.zeros(int(data.num_nodes), dtype=torch.bool)
            mask[items.ids[split]] = True
            data[key] = mask
        return dataclasses.replace(dataset, graphs=[data])
    return dataset


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def run_finetuning(config: FinetuneConfig, dataset=None) -> list[RunResult]:
    """Run every configured method and seed; return the per-seed results.

    Args:
        config: the run config.
        dataset: an already loaded ``GraphDataset`` (default: ``gfm.data.load(config.dataset)``).
    """
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    dataset = dataset if dataset is not None else _load_dataset(config)
    output_dir = Path(config.output_dir)
    task = dataset.task
    link_split = None
    if task.level == "edge":
        link_split = link_split_from_dataset(dataset, num_eval_negatives=config.num_eval_negatives, seed=0)
        if config.max_eval_items is not None or config.max_eval_negatives is not None:
            # every method (gfm, GCN, controls) is scored on the same evaluation subsample
            link_split = link_split.subsample(config.max_eval_items, config.max_eval_negatives, seed=0)
    gfm_methods = [m for m in config.methods if m in ADAPTATION_METHODS or m == "scratch"]
    items = encoder = None
    if gfm_methods:
        probe_model, tokenizer = load_pretrained_for_task(config.pretrained, task)
        encoder = TaskSampleEncoder(
            tokenizer, config.sampling(), node_feature_dim=probe_model.config.node_feature_dim,
            max_length=probe_model.config.max_position_embeddings,
        )
        del probe_model
    results: list[RunResult] = []
    control_cache: dict[str, Any] = {}
    for seed in config.seeds:
        baseline_dataset = dataset
        if gfm_methods:
            items = build_task_items(
                dataset, encoder, seed=seed, split_index=config.split_index, max_train_items=config.max_train_items,
                max_eval_items=None if task.level == "edge" else config.max_eval_items, link_split=link_split,
                max_length=encoder.max_length, long_sequences="drop" if config.long_sequences == "drop" else "error",
            )
            baseline_dataset = _restricted_to_items(dataset, items, config)
        for method in config.methods:
            first_new = len(results)
            if method in ADAPTATION_METHODS or method == "scratch":
                results.append(_gfm_run(config, method, dataset, items, encoder, seed, output_dir))
            elif method == "gnn":
                results.append(_gnn_baseline(config, baseline_dataset, link_split, seed))
            elif method == "controls":
                results.extend(_controls(config, baseline_dataset, link_split, seed, control_cache))
            if items is not None and items.dropped:
                for run in results[first_new:]:
                    run.extra["dropped_long_graphs"] = {k: len(v) for k, v in items.dropped.items()}
            if items is not None and task.level == "node" and (method in ADAPTATION_METHODS or method == "scratch"):
                counts = ego_setting_counts([s for split in items.samples.values() for s in split],
                                            encoder.configured_setting())
                for run in results[first_new:]:
                    run.extra["ego_graphs"] = counts
                    run.extra["ego_graph_setting"] = describe_ego_setting(encoder.configured_setting())
            logger.info("%s seed %d %s done", dataset.name, seed, method)
    logger.info("%s: %d runs in %.0f s", dataset.name, len(results), time.perf_counter() - started)
    return results
