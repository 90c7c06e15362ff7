"""Quality checks of a quantized tokenizer: codebook usage and linear probes on codes.

* :func:`codebook_statistics`: per level, the fraction of codes used, the perplexity of the
  code distribution and how many codes are shared across domains.
* :func:`linear_probe_accuracy`: multinomial logistic regression (L2, full-batch L-BFGS, weight
  decay chosen on a validation split) — written here because scikit-learn is not a dependency;
  deterministic, and small enough to read.
* :func:`one_hot_codes` / :func:`bag_of_codes`: probe inputs for node and graph tasks.
* :func:`node_probe` / :func:`graph_probe`: the recipe's probe protocol on one dataset (raw
  features vs one-hot codes vs random codes, same splits, same classifier), as
  :class:`ProbeResult` rows (:data:`PROBE_TABLE_HEADER`, :meth:`ProbeResult.as_row`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gfm.utils.errors import GFMError

if TYPE_CHECKING:
    from gfm.data.dataset import GraphDataset

    from .tokenizer import QuantizedTokenizer

__all__ = [
    "ProbeError",
    "ProbeResult",
    "PROBE_TABLE_HEADER",
    "node_probe",
    "graph_probe",
    "LevelStatistics",
    "codebook_statistics",
    "one_hot_codes",
    "bag_of_codes",
    "random_codes_like",
    "raw_node_features",
    "linear_probe_accuracy",
]


@dataclass
class LevelStatistics:
    """Usage of one quantizer level over a set of encoded nodes.

    Attributes:
        level: quantizer level (0 = coarsest).
        codebook_size: codes in the level.
        used: distinct codes used.
        utilization: ``used / codebook_size``.
        perplexity: ``exp(entropy)`` of the code frequencies (``codebook_size`` when uniform).
        shared_by_two: codes used by nodes of at least two domains.
        shared_by_all: codes used by nodes of every domain.
        num_domains: domains present.
    """

    level: int
    codebook_size: int
    used: int
    utilization: float
    perplexity: float
    shared_by_two: int
    shared_by_all: int
    num_domains: int


def codebook_statistics(
    codes: torch.Tensor, codebook_size: int, domains: Sequence[str] | None = None
) -> list[LevelStatistics]:
    """Usage statistics per level.

    Args:
        codes: int64 ``[N, L]`` code of every node at every level (without vocabulary offsets).
        codebook_size: codes per level ``C``.
        domains: the domain of each of the ``N`` nodes (``None``: one domain).
    """
    if codes.dim() != 2:
        raise ValueError(f"codes must be [N, L], got shape {tuple(codes.shape)}")
    num_nodes, num_levels = codes.shape
    if domains is not None and len(domains) != num_nodes:
        raise ValueError(f"domains has {len(domains)} entries for {num_nodes} nodes")
    names = sorted(set(domains)) if domains is not None else ["all"]
    domain_ids = (
        torch.tensor([names.index(d) for d in domains], dtype=torch.long)
        if domains is not None
        else torch.zeros(num_nodes, dtype=torch.long)
    )
    out = []
    for level in range(num_levels):
        column = codes[:, level]
        counts = torch.bincount(column, minlength=codebook_size).double()
        probs = counts / counts.sum().clamp_min(1)
        entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
        presence = torch.zeros(len(names), codebook_size, dtype=torch.bool)
        presence[domain_ids, column] = True
        per_code = presence.sum(dim=0)
        out.append(
            LevelStatistics(
                level=level,
                codebook_size=codebook_size,
                used=int((counts > 0).sum()),
                utilization=float((counts > 0).double().mean()),
                perplexity=float(math.exp(float(entropy))),
                shared_by_two=int((per_code >= 2).sum()),
                shared_by_all=int((per_code == len(names)).sum()),
                num_domains=len(names),
            )
        )
    return out


def one_hot_codes(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """``[N, L]`` codes -> float32 ``[N, L * C]`` one-hot per level, concatenated."""
    num_nodes, num_levels = codes.shape
    out = torch.zeros(num_nodes, num_levels * codebook_size)
    offsets = torch.arange(num_levels) * codebook_size
    out.scatter_(1, codes + offsets, 1.0)
    return out


def bag_of_codes(
    codes: torch.Tensor, batch: torch.Tensor, num_graphs: int, codebook_size: int
) -> torch.Tensor:
    """Mean one-hot code vector per graph: float32 ``[G, L * C]``.

    Args:
        codes: int64 ``[N, L]`` codes of all nodes of all graphs.
        batch: int64 ``[N]`` graph index of each node.
        num_graphs: ``G``.
    """
    one_hot = one_hot_codes(codes, codebook_size)
    summed = torch.zeros(num_graphs, one_hot.shape[1]).index_add_(0, batch, one_hot)
    counts = torch.bincount(batch, minlength=num_graphs).clamp_min(1).unsqueeze(1)
    return summed / counts


def random_codes_like(codes: torch.Tensor, codebook_size: int, seed: int = 0) -> torch.Tensor:
    """Uniformly random codes of the same shape ``[N, L]`` (the control of the probes)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, codebook_size, tuple(codes.shape), generator=generator)


def raw_node_features(graph: Data, categories: Sequence[int] | None = None) -> torch.Tensor:
    """A graph's own node features as one float matrix ``[N, F]`` for the raw-feature probe.

    Categorical columns (integer ``x``) are one-hot encoded with ``categories[j]`` values for
    column ``j`` (default: the column's maximum + 1 in this graph); continuous ``x`` /
    ``x_cont`` are appended unchanged. A graph without features gives ``[N, 0]``.
    """
    num_nodes = int(graph.num_nodes)
    parts = []
    x = getattr(graph, "x", None)
    if x is not None and not x.is_floating_point():
        x = x.reshape(num_nodes, -1).long()
        for column in range(x.shape[1]):
            size = int(categories[column]) if categories is not None else int(x[:, column].max()) + 1
            parts.append(F.one_hot(x[:, column].clamp(0, size - 1), size).float())
    elif x is not None:
        parts.append(x.reshape(num_nodes, -1).float())
    x_cont = getattr(graph, "x_cont", None)
    if x_cont is not None:
        parts.append(x_cont.reshape(num_nodes, -1).float())
    return torch.cat(parts, dim=1) if parts else torch.zeros(num_nodes, 0)


def _fit_logistic(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(features.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight + bias, labels) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def linear_probe_accuracy(
    features: torch.Tensor,
    labels: torch.Tensor,
    train_index: torch.Tensor,
    valid_index: torch.Tensor,
    test_index: torch.Tensor,
    weight_decays: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    max_iter: int = 200,
    standardize: bool = False,
) -> dict[str, float]:
    """Test accuracy of an L2 logistic regression whose weight decay is picked on ``valid_index``.

    The same protocol serves every input (raw features, one-hot codes, random codes). Inputs
    are used as given by default: they are binary or bag-of-codes frequencies here, and
    standardizing one-hot columns would blow rare codes up. Deterministic (full-batch L-BFGS).

    Args:
        features: float ``[N, F]``.
        labels: int64 ``[N]`` class ids (rows outside the three index sets are ignored).
        train_index / valid_index / test_index: int64 row indices.
        weight_decays: L2 strengths tried; the best validation accuracy wins (first on ties).
        max_iter: L-BFGS iterations per fit.
        standardize: standardize columns with the training rows' statistics first.

    Returns:
        ``{"test_accuracy", "valid_accuracy", "weight_decay"}``.
    """
    features = features.double()
    if standardize:
        mean = features[train_index].mean(dim=0)
        std = features[train_index].std(dim=0, unbiased=False).clamp_min(1e-6)
        features = (features - mean) / std
    num_classes = int(labels[torch.cat([train_index, valid_index, test_index])].max()) + 1
    best = None
    for decay in weight_decays:
        weight, bias = _fit_logistic(features[train_index], labels[train_index], num_classes, decay, max_iter)
        predict = (features @ weight + bias).argmax(dim=1)
        valid = float((predict[valid_index] == labels[valid_index]).double().mean())
        test = float((predict[test_index] == labels[test_index]).double().mean())
        if best is None or valid > best["valid_accuracy"]:
            best = {"valid_accuracy": valid, "test_accuracy": test, "weight_decay": decay}
    assert best is not None
    return best


class ProbeError(GFMError, ValueError):
    """A probe dataset lacks what the probe needs (labels, a split); the message names it and the fix."""


#: column titles of :meth:`ProbeResult.as_row` (accuracies in percent)
PROBE_TABLE_HEADER = (
    "dataset",
    "split",
    "raw features",
    "codes (one-hot/level)",
    "random codes",
    "codes - raw",
    "within 5 points",
)


@dataclass
class ProbeResult:
    """Test accuracies (fractions in ``[0, 1]``) of the same linear probe on three inputs of one split.

    Attributes:
        dataset: the dataset's name.
        split: how train / valid / test were chosen (``"public"``, ``"random 60/20/20 (seed 0)"``, ...).
        raw_features: accuracy on the dataset's own features (:func:`raw_node_features`).
        codes: accuracy on the tokenizer's codes, one-hot per level (:func:`one_hot_codes`;
            mean-pooled per graph for a graph task, :func:`bag_of_codes`).
        random_codes: accuracy on uniformly random codes of the same shape (the control).
    """

    dataset: str
    split: str
    raw_features: float
    codes: float
    random_codes: float

    @property
    def gap_points(self) -> float:
        """``codes - raw_features`` in percentage points (negative: the codes lost information)."""
        return 100 * (self.codes - self.raw_features)

    def as_row(self) -> list[object]:
        """One table row under :data:`PROBE_TABLE_HEADER`: percentages and ``"yes"``/``"NO"``
        for "codes within 5 points of the raw features"."""
        return [
            self.dataset,
            self.split,
            100 * self.raw_features,
            100 * self.codes,
            100 * self.random_codes,
            self.gap_points,
            "yes" if self.gap_points >= -5 else "NO",
        ]


def _probe(
    name: str, split: str, inputs: dict[str, torch.Tensor], labels: torch.Tensor,
    train: torch.Tensor, valid: torch.Tensor, test: torch.Tensor,
) -> ProbeResult:
    scores = {key: linear_probe_accuracy(value, labels, train, valid, test)["test_accuracy"] for key, value in inputs.items()}
    return ProbeResult(name, split, scores["raw"], scores["codes"], scores["random"])


def node_probe(tokenizer: QuantizedTokenizer, dataset: GraphDataset, seed: int = 0) -> list[ProbeResult]:
    """Node classification probes on the first graph of ``dataset`` (a single-graph node task).

    Inputs, for every node: its raw features ``[N, F]``, its codes one-hot per level
    ``[N, L * C]`` and random codes of the same shape. Splits: the graph's public
    ``train_mask`` / ``val_mask`` / ``test_mask`` when it has them (the first column of 2-D
    masks), and always a seeded random 60/20/20 split of the labelled nodes (``y >= 0``).

    Args:
        tokenizer: a trained :class:`~gfm.tokenization.quantized.QuantizedTokenizer`.
        dataset: a ``gfm.data`` dataset whose first graph has int64 node labels ``y`` ``[N]``.
        seed: seed of the random split and of the random codes.

    Returns:
        One :class:`ProbeResult` per split (public first).

    Raises:
        ProbeError: the graph has no node labels ``y``, or not one per node.
    """
    graph = dataset.graphs[0]
    labels = getattr(graph, "y", None)
    if labels is None or labels.dim() != 1 or labels.numel() != int(graph.num_nodes):
        shape = None if labels is None else tuple(labels.shape)
        raise ProbeError(
            f"node probe on {dataset.name!r}: graph 0 needs one integer label per node in y "
            f"(shape [{int(graph.num_nodes)}]), got y of shape {shape}; pick a node-classification "
            "dataset for probe_node_dataset"
        )
    size = tokenizer.config.codebook_size
    codes = tokenizer.node_codes(graph)
    inputs = {
        "raw": raw_node_features(graph),
        "codes": one_hot_codes(codes, size),
        "random": one_hot_codes(random_codes_like(codes, size, seed), size),
    }
    splits = []
    if hasattr(graph, "train_mask"):
        masks = [getattr(graph, k) for k in ("train_mask", "val_mask", "test_mask")]
        masks = [m[:, 0] if m.dim() == 2 else m for m in masks]
        splits.append(("public", *[m.nonzero().view(-1) for m in masks]))
    labelled = (labels >= 0).nonzero().view(-1)
    order = labelled[torch.randperm(labelled.numel(), generator=torch.Generator().manual_seed(seed))]
    a, b = int(0.6 * order.numel()), int(0.8 * order.numel())
    splits.append((f"random 60/20/20 (seed {seed})", order[:a], order[a:b], order[b:]))
    return [_probe(dataset.name, name, inputs, labels, *split) for name, *split in splits]


def graph_probe(tokenizer: QuantizedTokenizer, dataset: GraphDataset, seed: int = 0) -> ProbeResult:
    """Graph classification probe on ``dataset`` with mean-pooled node inputs.

    Inputs, per graph: the mean of its nodes' raw features (categorical columns one-hot with
    the dataset-wide number of values), the mean one-hot code vector (:func:`bag_of_codes`,
    ``[G, L * C]``) and the same for random codes. Split: the dataset's ``train`` / ``valid`` /
    ``test`` split when it has one, else a seeded random 80/10/10 split.

    Args:
        tokenizer: a trained :class:`~gfm.tokenization.quantized.QuantizedTokenizer`.
        dataset: a ``gfm.data`` dataset of graphs with one integer label each (``y`` of one element).
        seed: seed of the random split and of the random codes.

    Raises:
        ProbeError: a graph has no label or more than one, or the split lacks train / valid / test.
    """
    for index, graph in enumerate(dataset.graphs):
        y = getattr(graph, "y", None)
        if y is None or y.numel() != 1:
            raise ProbeError(
                f"graph probe on {dataset.name!r}: graph {index} needs exactly one label in y, got "
                f"{None if y is None else tuple(y.shape)}; pick a graph-classification dataset for probe_graph_dataset"
            )
    size = tokenizer.config.codebook_size
    codes = tokenizer.node_codes_many(dataset.graphs)
    batch = torch.cat([torch.full((c.shape[0],), i) for i, c in enumerate(codes)])
    all_codes = torch.cat(codes)
    categories = None
    if dataset.graphs[0].x is not None and not dataset.graphs[0].x.is_floating_point():
        categories = (torch.stack([g.x.max(dim=0).values for g in dataset.graphs]).max(dim=0).values + 1).tolist()
    raw = torch.stack([raw_node_features(g, categories).mean(dim=0) for g in dataset.graphs])
    inputs = {
        "raw": raw,
        "codes": bag_of_codes(all_codes, batch, len(codes), size),
        "random": bag_of_codes(random_codes_like(all_codes, size, seed), batch, len(codes), size),
    }
    labels = torch.cat([g.y.view(-1) for g in dataset.graphs])
    if dataset.splits:
        missing = [k for k in ("train", "valid", "test") if k not in dataset.splits]
        if missing:
            raise ProbeError(
                f"graph probe on {dataset.name!r}: its split has {sorted(dataset.splits)} but lacks {missing}; "
                "give the dataset train / valid / test splits, or none for a random 80/10/10 split"
            )
        train, valid, test = (dataset.splits[k] for k in ("train", "valid", "test"))
        split = "dataset split"
    else:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        a, b = int(0.8 * len(order)), int(0.9 * len(order))
        train, valid, test = order[:a], order[a:b], order[b:]
        split = f"random 80/10/10 (seed {seed})"
    return _probe(dataset.name, split + " (mean-pooled)", inputs, labels, train, valid, test)
