"""The in-context few-shot model under the leak-proof protocol, beside every control and its random init.

- :class:`InContextMethod`: an :class:`~gfm.modeling.in_context.InContextModel` as a
  :class:`~gfm.evaluation.zero_shot.ZeroShotMethod` (no gradient step: the support set is read in
  context). The whole graph is prepared once per visible graph (node vectors, evidence
  channels) and reused across support draws.
- :func:`run_fewshot_in_context`: every evaluation graph x access x k x seed through
  :func:`gfm.evaluation.protocol.run_fewshot_node_classification`, the pretrained model, the
  same architecture with random weights and every control of the access; one table
  (:func:`gfm.evaluation.protocol.fewshot_table`) with the CPU named.
- :func:`write_model_card`: the checkpoint's ``README.md`` carrying that table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch_geometric.data import Data

from gfm.data.corpus import EVALUATION_GRAPHS
from gfm.evaluation.protocol import (
    fewshot_controls,
    fewshot_table,
    protocol_statement,
    run_fewshot_node_classification,
)
from gfm.evaluation.reports import RunResult
from gfm.evaluation.zero_shot import Access, AccessError, LabelledNodes, ZeroShotMethod
from gfm.modeling.in_context import InContextConfig, InContextModel, PreparedGraph, prepare_graph
from gfm.utils.hardware import cpu_model_name
from gfm.utils.io import atomic_write_text

__all__ = ["InContextMethod", "random_init_copy", "FewshotBenchmarkConfig", "run_fewshot_in_context",
           "write_model_card", "benchmark_markdown"]

logger = logging.getLogger(__name__)


class InContextMethod(ZeroShotMethod):
    """The in-context model as a few-shot method: ``node_class_scores`` reads the support set, no gradient step."""

    def __init__(self, model: InContextModel, name: str = "gfm_in_context", role: str = "method") -> None:
        self.model = model.eval()
        self.name, self.role = name, role
        self._cache: tuple[tuple, PreparedGraph] | None = None
        self.details: dict = {}

    def prepared(self, visible: Data) -> PreparedGraph:
        """The visible graph prepared once (features used exactly when the access shows them)."""
        use_features = isinstance(getattr(visible, "x", None), torch.Tensor)
        # the cache holds the tensors themselves (not their ids, which Python may reuse for another graph)
        key = (visible.edge_index, int(visible.num_nodes), use_features, getattr(visible, "x", None))
        cached = self._cache[0] if self._cache is not None else None
        if cached is None or any(a is not b for a, b in zip(cached, key) if not isinstance(a, (int, bool))) \
                or cached[1:3] != key[1:3]:
            self._cache = (key, prepare_graph(visible, use_features, self.model.config,
                                              str(getattr(visible, "name", None) or "graph")))
        return self._cache[1]

    def node_class_scores(self, visible: Data, labelled: LabelledNodes) -> torch.Tensor:
        graph = self.prepared(visible)
        scores = self.model.predict(graph, labelled.index, labelled.labels, labelled.num_classes)
        return scores.float()

    def link_scores(self, visible: Data, pairs: torch.Tensor) -> torch.Tensor:
        raise AccessError(f"{self.name}: the in-context model classifies nodes from labelled supports; it has no "
                          "link scores (use the link controls, or a gfm pretraining checkpoint)")


def random_init_copy(config: InContextConfig, seed: int = 0) -> InContextModel:
    """The same architecture with random weights (seeded): the control every in-context number sits beside."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InContextModel(config).eval()


@dataclass
class FewshotBenchmarkConfig:
    """The table of issue 13: graphs x accesses x k x seeds."""

    graphs: list[str] = field(default_factory=lambda: list(EVALUATION_GRAPHS))
    accesses: list[str] = field(default_factory=lambda: ["structure+features+k_labels", "structure+k_labels"])
    ks: list[int] = field(default_factory=lambda: [5, 20])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    data_dir: str | None = None
    random_init_seed: int = 0


def run_fewshot_in_context(model: InContextModel, config: FewshotBenchmarkConfig,
                           name: str = "gfm_in_context") -> tuple[list[RunResult], dict[str, float]]:
    """Score the model, its random-init copy and every control; returns the runs and seconds per graph."""
    from gfm.data.registry import load

    pretrained = InContextMethod(model, name)
    random = InContextMethod(random_init_copy(model.config, config.random_init_seed), "random_init", role="control")
    results: list[RunResult] = []
    seconds: dict[str, float] = {}
    for graph in config.graphs:
        started = time.perf_counter()
        dataset = load(graph, data_dir=config.data_dir)
        for text in config.accesses:
            # one set of controls per graph and access: label-independent work is reused across k and seeds
            controls = fewshot_controls(Access.parse(text, 1), seed=0)
            for k in config.ks:
                access = Access.parse(text, k)
                methods: list[ZeroShotMethod] = [pretrained, random, *controls]
                results += run_fewshot_node_classification(dataset, methods, access, config.seeds, allow_fewer=True)
        seconds[graph] = time.perf_counter() - started
        logger.info("%s done in %.1f s", graph, seconds[graph])
    return results, seconds


def benchmark_markdown(results: Sequence[RunResult], seconds: dict[str, float], command: str,
                       name: str = "gfm_in_context") -> str:
    """The table with its header: date, CPU, command, held-out statement."""
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    header = (f"In-context few-shot node classification, test accuracy (%), mean ± std over seeds; {stamp}, "
              f"CPU: {cpu_model_name()}, one thread.\n\n{protocol_statement()}\n\n```bash\n{command}\n```\n\n")
    timing = ", ".join(f"{graph} {value:.0f} s" for graph, value in seconds.items())
    return header + fewshot_table(results, order=[name, "random_init"]) + f"\nSeconds per graph: {timing}.\n"


def write_model_card(model_dir: str | Path, table: str, training: str = "") -> Path:
    """Write ``model_dir/README.md``: what the checkpoint is, how it was trained, and the table."""
    text = (
        "---\nlibrary_name: gfm\ntags: [graph, few-shot, in-context, node-classification]\n---\n\n"
        "# gfm in-context few-shot node classifier\n\n"
        "An `InContextModel` (`gfm.modeling.in_context`): reads the k labelled support nodes of a graph it never saw "
        "and scores query nodes with no gradient step; any number of classes, invariant to class order. Load with "
        "`InContextModel.from_pretrained(path)` or `transformers.AutoModel.from_pretrained(path)` after `import "
        "gfm.modeling`; evaluate with `gfm.pipelines.fewshot.InContextMethod`.\n\n"
        + (f"## Training\n\n{training}\n\n" if training else "")
        + "## Evaluation\n\n" + table
    )
    return atomic_write_text(Path(model_dir) / "README.md", text)
