"""The zero-shot recipe as a library function (``finetune/run_zero_shot.py`` is a thin wrapper).

For every dataset, access and seed it runs the gfm model (when a checkpoint is given) and the
three controls - label propagation, the SVD probe, and a randomly initialized gfm model of the
same architecture - under the same declared :class:`~gfm.evaluation.zero_shot.Access`:

- node classification under each ``node_accesses`` entry (a ``k_labels`` access, for each k
  of ``labels_per_class``);
- link prediction on held-out edges under each ``link_accesses`` entry.

The protocol itself (accesses, controls, reports) is model-free and lives in
:mod:`gfm.evaluation.zero_shot`; this module adds the gfm model as a method
(:class:`GFMZeroShotMethod`, which reads a checkpoint through :mod:`gfm.adapters`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch_geometric.data import Data

from gfm.adapters.encoding import SamplingConfig, TaskSampleEncoder, describe_ego_setting, ego_setting_counts
from gfm.adapters.heads import backbone_of, load_pretrained_for_task
from gfm.data.edge_list import USER_GRAPH_KEYS, user_graph_spec
from gfm.data.link_splits import holdout_link_split
from gfm.evaluation.controls import SVDProbe
from gfm.evaluation.reports import RunResult
from gfm.evaluation.zero_shot import (
    Access,
    AccessError,
    LabelPropagationMethod,
    NodeStateMethod,
    SVDProbeMethod,
    run_link_prediction,
    run_node_classification,
)
from gfm.modeling import GFMModel
from gfm.modeling.modeling_gfm import pool_per_node
from gfm.pipelines.finetune import load_task_dataset
from gfm.utils.config import ConfigError, load_yaml_dataclass

__all__ = ["GFMZeroShotMethod", "ZeroShotConfig", "ZeroShotConfigError", "load_zero_shot_config", "run_zero_shot"]

logger = logging.getLogger(__name__)


class GFMZeroShotMethod(NodeStateMethod):
    """A gfm backbone read without any gradient step: node state = mean of its token states.

    Every node's ego graph is tokenized with ``target_node`` (see
    :class:`gfm.adapters.encoding.TaskSampleEncoder`); the backbone's last hidden states of the
    tokens that stand for the target node are averaged.

    Args:
        model: a gfm model (``GFMModel`` or any gfm head; its backbone is used).
        encoder: a ``TaskSampleEncoder`` built with the model's tokenizer.
        name / role: ``"gfm"`` / ``"method"``, or ``"random_init"`` / ``"control"``.
        batch_size: sequences per forward pass.
    """

    def __init__(self, model, encoder, name: str = "gfm", role: str = "method", batch_size: int = 64) -> None:
        self.backbone = backbone_of(model).eval()
        self.encoder = encoder
        self.name, self.role = name, role
        self.batch_size = batch_size
        self._cache: tuple[Data, torch.Tensor] | None = None
        #: nodes per ego-graph setting of the last graph read (``{"2 hops x 8 neighbours": 31, ...}``)
        self.ego_graphs: dict[str, int] = {}

    @classmethod
    def random_init(cls, model, encoder, seed: int, batch_size: int = 64) -> GFMZeroShotMethod:
        """The control: the same architecture (config) with freshly initialized weights."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = GFMModel(backbone_of(model).config)
        return cls(fresh, encoder, name="random_init", role="control", batch_size=batch_size)

    @torch.no_grad()
    def node_states(self, visible: Data) -> torch.Tensor:
        if self._cache is not None and self._cache[0] is visible:
            return self._cache[1]
        num_nodes = int(visible.num_nodes)
        samples = self.encoder.node_samples(visible, torch.arange(num_nodes))
        self.ego_graphs = ego_setting_counts(samples, self.encoder.configured_setting())
        states = torch.zeros(num_nodes, self.backbone.config.hidden_size)
        for chosen, batch in self.encoder.batches(samples, self.batch_size):
            target = batch.pop("target_node").view(-1)
            hidden = self.backbone(**batch, return_dict=True).last_hidden_state
            rows = torch.arange(target.numel())
            states[chosen] = pool_per_node(hidden, batch["sequence_ids"], batch["node_index"], rows, target).float()
        self._cache = (visible, states)
        return states


#: a config key unknown, missing or inconsistent: gfm's one config error (the name is kept for importers)
ZeroShotConfigError = ConfigError


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ZeroShotConfig:
    """Every option of ``finetune/run_zero_shot.py`` (one flat YAML mapping)."""

    datasets: list[str] = field(
        default_factory=list,
        metadata=_help("registry names of node-classification graphs, or your own graphs as "
                       "'csv:edges=<path>,nodes=<path>,label=<column>'"),
    )
    edges_csv: str | None = field(
        default=None, metadata=_help("your own graph: edge list CSV / Parquet (columns source,target), added to datasets")
    )
    nodes_csv: str | None = field(
        default=None, metadata=_help("your own graph: node table (column id, the label column, optional numeric features)")
    )
    label_column: str = field(default="label", metadata=_help("your own graph: the node table's label column"))
    id_column: str = field(default="id", metadata=_help("your own graph: the node table's node id column"))
    long_sequences: str = field(
        default="fit",
        metadata={"help": "gfm ego graphs longer than the model's positions: 'fit' shrinks them (fewer neighbours per "
                          "hop, then fewer hops; counts per setting in the report), 'error' raises",
                  "choices": ("fit", "error")},
    )
    pretrained: str | None = field(
        default=None, metadata=_help("checkpoint directory or hub id; without it only the parameter-free controls run")
    )
    data_dir: str | None = field(default=None, metadata=_help("data folder (default: $GFM_DATA_DIR)"))
    output_dir: str = field(default="runs/zero_shot", metadata=_help("where the report goes"))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata=_help("seeds (label draws, splits, init)"))
    node_accesses: list[str] = field(
        default_factory=lambda: ["structure+k_labels", "structure+features+k_labels"],
        metadata=_help("accesses for node classification (each needs k labels)"),
    )
    labels_per_class: list[int] = field(default_factory=lambda: [20], metadata=_help("k values of the k_labels accesses"))
    link_accesses: list[str] = field(
        default_factory=lambda: ["structure"], metadata=_help("accesses for held-out link prediction ([] = skip)")
    )
    link_metric: str = field(default="hits@20", metadata=_help("link metric (hits@k or mrr)"))
    link_valid_fraction: float = field(default=0.05, metadata=_help("share of edges held out for validation"))
    link_test_fraction: float = field(default=0.1, metadata=_help("share of edges held out for test"))
    svd_rank: int = field(default=256, metadata=_help("SVD probe rank"))
    svd_hops: int = field(default=3, metadata=_help("SVD probe smoothing hops"))
    num_hops: int = field(default=2, metadata=_help("gfm ego graphs: hops"))
    max_neighbors: int = field(default=8, metadata=_help("gfm ego graphs: neighbour cap"))
    attributes: str = field(default="drop", metadata=_help("gfm: 'tokens' to tokenize attributes, 'drop' for structure"))
    batch_size: int = field(default=64, metadata=_help("sequences per gfm forward"))
    num_threads: int | None = field(default=None, metadata=_help("torch threads (None: torch's default)"))

    def __post_init__(self) -> None:
        if not self.datasets and self.edges_csv is None:
            raise ZeroShotConfigError("no graph: give datasets (registry names or csv:edges=...,nodes=...,label=... "
                                      "specs) or edges_csv with nodes_csv and label_column")
        if self.nodes_csv is not None and self.edges_csv is None:
            raise ZeroShotConfigError("nodes_csv is set without edges_csv; give the edge list too (edges_csv=<path>)")
        for entry in self.datasets:
            if str(entry).partition("=")[0] in USER_GRAPH_KEYS:
                raise ZeroShotConfigError(
                    f"datasets: entry {entry!r} is a piece of a csv: graph spec that YAML split at its commas; quote the "
                    "spec: --datasets '[\"csv:edges=<path>,nodes=<path>,label=<column>\"]' (or use edges_csv, "
                    "nodes_csv, label_column)"
                )
        for text in self.node_accesses:
            for k in self.labels_per_class:
                access = Access.parse(text, k if "k_labels" in text else None)
                if not access.labels_per_class:
                    raise ZeroShotConfigError(
                        f"node_accesses: {text!r} shows no labels; node classification needs a k_labels access"
                    )
        for text in self.link_accesses:
            Access.parse(text)

    def accesses(self) -> tuple[list[Access], list[Access]]:
        node = []
        for text in self.node_accesses:
            if "k_labels" in text:
                node.extend(Access.parse(text, k) for k in self.labels_per_class)
            else:
                node.append(Access.parse(text))
        return node, [Access.parse(text) for text in self.link_accesses]


def load_zero_shot_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> ZeroShotConfig:
    """Read a YAML config (an unknown key is an error naming the closest valid key)."""
    return load_yaml_dataclass(path, ZeroShotConfig, overrides)


def _gfm_factory(config: ZeroShotConfig, task):
    """``seed -> [gfm, random_init]`` methods, or ``None`` without a checkpoint."""
    if config.pretrained is None:
        return None
    model, tokenizer = load_pretrained_for_task(config.pretrained, task)
    encoder = TaskSampleEncoder(
        tokenizer,
        SamplingConfig(num_hops=config.num_hops, max_neighbors=config.max_neighbors, attributes=config.attributes,
                       long_sequences=config.long_sequences),
        node_feature_dim=model.config.node_feature_dim,
        max_length=model.config.max_position_embeddings,
    )
    pretrained = GFMZeroShotMethod(model, encoder, batch_size=config.batch_size)

    def methods(seed: int):
        return [pretrained, GFMZeroShotMethod.random_init(model, encoder, seed=seed, batch_size=config.batch_size)]

    return methods


def _graph_names(config: ZeroShotConfig) -> list[str]:
    """``datasets`` plus the ``edges_csv`` graph as a spec."""
    names = list(config.datasets)
    if config.edges_csv is not None:
        names.append(user_graph_spec(config.edges_csv, config.nodes_csv, config.label_column,
                                     id=None if config.id_column == "id" else config.id_column))
    return names


def _record_ego_graphs(results: list[RunResult], methods) -> None:
    """Put the ego-graph settings each gfm method's node states used into its results' ``extra``."""
    by_name = {m.name: m for m in methods if isinstance(m, GFMZeroShotMethod)}
    for run in results:
        method = by_name.get(run.method)
        if method is not None and method.ego_graphs:
            run.extra["ego_graphs"] = dict(method.ego_graphs)
            run.extra["ego_graph_setting"] = describe_ego_setting(method.encoder.configured_setting())


def run_zero_shot(config: ZeroShotConfig) -> list[RunResult]:
    """Run the protocol on every dataset, access and seed; return all results."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    node_accesses, link_accesses = config.accesses()
    probe = SVDProbe(rank=config.svd_rank, hops=config.svd_hops)
    results: list[RunResult] = []
    for name in _graph_names(config):
        dataset = load_task_dataset(name, config.data_dir)
        if dataset.task.level != "node" or dataset.task.kind != "classification":
            raise AccessError(f"{name}: the zero-shot recipe takes node-classification graphs, got {dataset.task.summary()}")
        gfm_methods = _gfm_factory(config, dataset.task)

        def methods(seed: int, gfm_methods=gfm_methods):
            controls = [LabelPropagationMethod(), SVDProbeMethod(dataclasses.replace(probe, seed=seed))]
            return (gfm_methods(seed) if gfm_methods else []) + controls

        for access in node_accesses:
            used: dict[int, list] = {}

            def tracked(seed: int, methods=methods, used=used):
                used[seed] = methods(seed)
                return used[seed]

            new = run_node_classification(dataset, tracked, access, config.seeds)
            for seed, seed_methods in used.items():
                _record_ego_graphs([run for run in new if run.seed == seed], seed_methods)
            results += new
        data = dataset.graphs[0]

        def split_for_seed(seed: int, data=data, name=dataset.name):
            return holdout_link_split(
                data, f"{name} links", config.link_valid_fraction, config.link_test_fraction, seed=seed
            )

        for access in link_accesses:
            results += run_link_prediction(
                data, split_for_seed, methods, access, config.seeds, config.link_metric, f"{dataset.name} links"
            )
    return results
