"""Quality checks of a quantized tokenizer: codebook usage and linear probes on codes.

* :func:`codebook_statistics`: per level, the fraction of codes used, the perplexity of the
  code distribution and how many codes are shared across domains.
* :func:`linear_probe_accuracy`: multinomial logistic regression (L2, full-batch L-BFGS, weight
  decay chosen on a validation split) — written here because scikit-learn is not a dependency;
  deterministic, and small enough to read.
* :func:`one_hot_codes` / :func:`bag_of_codes`: probe inputs for node and graph tasks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch_geometric.data import Data

__all__ = [
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
