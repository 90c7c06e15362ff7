"""Link-prediction splits and negative sampling that never leak held-out edges.

A :class:`LinkSplit` holds, for one graph:

- ``train_graph``: the edges a model may read (message passing, tokenized subgraphs): training
  positives only, both directions for an undirected graph;
- positives of each split (one direction per undirected pair);
- evaluation negatives of the valid and test splits: given by the dataset, or sampled once
  (seeded) among pairs that are *no* known positive of any split and no self-loop.

Training negatives are drawn by :meth:`LinkSplit.sample_train_negatives` with the same
exclusion, so no sampled negative is ever a validation or test edge and no test edge is ever in
the graph a model reads. :meth:`LinkSplit.check_no_leakage` verifies both and raises
:class:`LeakageError` naming the offending pair.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from gfm.utils.errors import GFMError

__all__ = ["LeakageError", "LinkSplitError", "LinkSplit", "link_split_from_dataset", "holdout_link_split"]

logger = logging.getLogger(__name__)


class LeakageError(GFMError, ValueError):
    """A held-out edge appears where a model could read it (input graph, training negatives)."""


class LinkSplitError(GFMError, ValueError):
    """A link split cannot be built (no positives, too few candidate negatives...)."""


def _pair_keys(pairs: torch.Tensor, num_nodes: int, directed: bool) -> torch.Tensor:
    """int64 key per pair; an undirected pair has one key whatever its orientation."""
    if directed:
        return pairs[0] * num_nodes + pairs[1]
    low, high = torch.minimum(pairs[0], pairs[1]), torch.maximum(pairs[0], pairs[1])
    return low * num_nodes + high


def _member(keys: torch.Tensor, sorted_known: torch.Tensor) -> torch.Tensor:
    """bool ``[K]``: ``keys[i]`` is in the sorted tensor ``sorted_known``."""
    if sorted_known.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    position = torch.searchsorted(sorted_known, keys).clamp(max=sorted_known.numel() - 1)
    return sorted_known[position] == keys


@dataclass
class LinkSplit:
    """Positives, evaluation negatives and the readable graph of a link-prediction task.

    Attributes:
        name: dataset name for messages.
        num_nodes: ``N``.
        directed: pairs are ordered (else ``(u, v)`` and ``(v, u)`` are one pair).
        train_graph: int64 ``[2, E]`` edges a model may read.
        train_pos / valid_pos / test_pos: int64 ``[2, P_split]`` positives.
        valid_neg / test_neg: int64 ``[2, M_split]`` negatives shared by every positive of the split.
        negatives_given: the evaluation negatives came from the dataset (else sampled here).
    """

    name: str
    num_nodes: int
    directed: bool
    train_graph: torch.Tensor
    train_pos: torch.Tensor
    valid_pos: torch.Tensor
    test_pos: torch.Tensor
    valid_neg: torch.Tensor
    test_neg: torch.Tensor
    negatives_given: bool = False

    def __post_init__(self) -> None:
        for split in ("train", "valid", "test"):
            positives = getattr(self, f"{split}_pos")
            if positives.dim() != 2 or positives.shape[0] != 2 or positives.shape[1] == 0:
                raise LinkSplitError(
                    f"{self.name}: the {split} split has no positive edges (shape {tuple(positives.shape)}); "
                    "a link task needs positives in every split: choose another split or a larger graph"
                )
        self._known = torch.sort(
            _pair_keys(torch.cat([self.train_pos, self.valid_pos, self.test_pos], dim=1), self.num_nodes, self.directed)
        ).values

    # -- negatives --------------------------------------------------------------------------
    def is_known_positive(self, pairs: torch.Tensor) -> torch.Tensor:
        """bool ``[P]``: the pair is a positive of any split."""
        return _member(_pair_keys(pairs, self.num_nodes, self.directed), self._known)

    def sample_negatives(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` uniform pairs that are no known positive and no self-loop (``[2, count]``).

        Rejection sampling, vectorized; pairs may repeat (as OGB's samplers) but never hit a
        positive of any split.
        """
        if count <= 0:
            return torch.zeros(2, 0, dtype=torch.long)
        num_pairs = self.num_nodes * (self.num_nodes - 1) // (1 if self.directed else 2)
        if num_pairs - self._known.numel() <= 0:
            raise LinkSplitError(f"{self.name}: every pair of nodes is a positive edge; no negative exists")
        chosen: list[torch.Tensor] = []
        found = 0
        for _ in range(100):
            draw = torch.randint(0, self.num_nodes, (2, 2 * (count - found) + 16), generator=generator)
            keep = (draw[0] != draw[1]) & ~self.is_known_positive(draw)
            chosen.append(draw[:, keep])
            found += int(keep.sum())
            if found >= count:
                return torch.cat(chosen, dim=1)[:, :count]
        raise LinkSplitError(f"{self.name}: could not draw {count} negatives (graph too dense)")

    def sample_train_negatives(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """Training negatives: never a training, validation or test positive."""
        return self.sample_negatives(count, generator)

    # -- checks -----------------------------------------------------------------------------
    def check_no_leakage(self, negatives: torch.Tensor | None = None) -> None:
        """Raise :class:`LeakageError` if a valid/test positive is in ``train_graph`` or ``negatives``."""
        held_out = torch.cat([self.valid_pos, self.test_pos], dim=1)
        held_keys = torch.sort(_pair_keys(held_out, self.num_nodes, self.directed)).values
        in_graph = _member(_pair_keys(self.train_graph, self.num_nodes, self.directed), held_keys)
        if bool(in_graph.any()):
            u, v = (int(x) for x in self.train_graph[:, int(in_graph.nonzero()[0, 0])])
            raise LeakageError(
                f"{self.name}: held-out edge ({u}, {v}) is in the graph the model reads; remove validation and "
                "test edges from the input graph"
            )
        for what, pairs in (("valid_neg", self.valid_neg), ("test_neg", self.test_neg), ("negatives", negatives)):
            if pairs is None or pairs.numel() == 0:
                continue
            positive = self.is_known_positive(pairs)
            if bool(positive.any()):
                u, v = (int(x) for x in pairs[:, int(positive.nonzero()[0, 0])])
                raise LeakageError(f"{self.name}: {what} holds ({u}, {v}), which is a positive edge of the task")

    def readable_graph(self, data: Data) -> Data:
        """``data`` with ``train_graph`` as its edges; edge attributes follow their edges.

        Each readable edge takes the attributes of the matching ``(src, dst)`` column of
        ``data.edge_index`` (the first one for parallel edges), so held-out edges and their
        attributes are gone and nothing is misaligned.
        """
        readable = data.clone()
        readable.edge_index = self.train_graph
        edge_keys = [k for k in ("edge_attr", "edge_attr_cont", "edge_weight") if isinstance(getattr(data, k, None), torch.Tensor)]
        if not edge_keys:
            return readable
        n = self.num_nodes
        source_keys = data.edge_index[0] * n + data.edge_index[1]
        order = torch.argsort(source_keys, stable=True)
        sorted_keys = source_keys[order]
        wanted = self.train_graph[0] * n + self.train_graph[1]
        position = torch.searchsorted(sorted_keys, wanted).clamp(max=max(sorted_keys.numel() - 1, 0))
        found = sorted_keys.numel() > 0 and bool((sorted_keys[position] == wanted).all())
        if not found:
            raise LinkSplitError(
                f"{self.name}: some readable edges are not edges of the graph, so their attributes are unknown"
            )
        for key in edge_keys:
            readable[key] = getattr(data, key)[order[position]]
        return readable

    def subsample(self, max_positives: int | None, max_negatives: int | None, seed: int) -> LinkSplit:
        """The same split with at most ``max_*`` valid/test positives and negatives (seeded).

        Used to evaluate costly models on a fixed subset; every method of one comparison must
        use the same subsample.
        """
        generator = torch.Generator().manual_seed(int(seed))

        def pick(pairs: torch.Tensor, limit: int | None) -> torch.Tensor:
            if limit is None or pairs.shape[1] <= limit:
                return pairs
            return pairs[:, torch.randperm(pairs.shape[1], generator=generator)[:limit].sort().values]

        return LinkSplit(
            name=self.name,
            num_nodes=self.num_nodes,
            directed=self.directed,
            train_graph=self.train_graph,
            train_pos=self.train_pos,
            valid_pos=pick(self.valid_pos, max_positives),
            test_pos=pick(self.test_pos, max_positives),
            valid_neg=pick(self.valid_neg, max_negatives),
            test_neg=pick(self.test_neg, max_negatives),
            negatives_given=self.negatives_given,
        )


def _one_direction(edge_index: torch.Tensor, directed: bool) -> torch.Tensor:
    if directed:
        return edge_index
    low, high = torch.minimum(edge_index[0], edge_index[1]), torch.maximum(edge_index[0], edge_index[1])
    pairs = torch.stack([low, high])
    keep = low != high
    return torch.unique(pairs[:, keep], dim=1)


def link_split_from_dataset(dataset, num_eval_negatives: int = 10_000, seed: int = 0) -> LinkSplit:
    """Build a :class:`LinkSplit` from a ``GraphDataset`` with ``edge_splits`` (``docs/CONTRACTS.md`` §1).

    Given negatives (``neg_edge_index``) are used as they are; otherwise ``num_eval_negatives``
    are sampled per split, seeded, excluding every known positive.
    """
    if dataset.task.level != "edge":
        raise LinkSplitError(
            f"{dataset.name}: task level is {dataset.task.level!r}; link prediction needs an edge-level dataset"
        )
    data: Data = dataset.graphs[0]
    directed = bool(getattr(data, "directed", False))
    parts = dataset.edge_splits
    for split in ("train", "valid", "test"):
        if split not in parts:
            raise LinkSplitError(f"{dataset.name}: edge_splits has no {split!r} split (has {sorted(parts)})")
    positives = {s: _one_direction(parts[s]["edge_index"], directed) for s in ("train", "valid", "test")}
    given = all("neg_edge_index" in parts[s] for s in ("valid", "test"))
    placeholder = torch.zeros(2, 0, dtype=torch.long)
    split = LinkSplit(
        name=dataset.name,
        num_nodes=int(data.num_nodes),
        directed=directed,
        train_graph=data.edge_index,
        train_pos=positives["train"],
        valid_pos=positives["valid"],
        test_pos=positives["test"],
        valid_neg=parts["valid"]["neg_edge_index"] if given else placeholder,
        test_neg=parts["test"]["neg_edge_index"] if given else placeholder,
        negatives_given=given,
    )
    if not given:
        generator = torch.Generator().manual_seed(int(seed))
        split.valid_neg = split.sample_negatives(num_eval_negatives, generator)
        split.test_neg = split.sample_negatives(num_eval_negatives, generator)
        logger.info("%s: sampled %d evaluation negatives per split (seed %d)", dataset.name, num_eval_negatives, seed)
    split.check_no_leakage()
    return split


def holdout_link_split(
    data: Data,
    name: str,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.1,
    num_eval_negatives: int | None = None,
    seed: int = 0,
) -> LinkSplit:
    """Hold out a share of a graph's edges as valid / test positives (node tasks' graphs, zero-shot).

    The returned ``train_graph`` keeps the remaining edges (both directions when undirected).
    ``num_eval_negatives`` defaults to the number of held-out positives of each split.
    """
    directed = bool(getattr(data, "directed", False))
    pairs = _one_direction(data.edge_index, directed)
    count = pairs.shape[1]
    num_valid, num_test = int(round(valid_fraction * count)), int(round(test_fraction * count))
    if num_valid < 1 or num_test < 1 or num_valid + num_test >= count:
        raise LinkSplitError(
            f"{name}: {count} edges cannot give {valid_fraction:.0%} validation and {test_fraction:.0%} test "
            "positives and keep training edges"
        )
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(count, generator=generator)
    test_pos = pairs[:, order[:num_test]]
    valid_pos = pairs[:, order[num_test : num_test + num_valid]]
    train_pos = pairs[:, order[num_test + num_valid :]]
    train_graph = train_pos if directed else torch.cat([train_pos, train_pos.flip(0)], dim=1)
    placeholder = torch.zeros(2, 0, dtype=torch.long)
    split = LinkSplit(
        name=name,
        num_nodes=int(data.num_nodes),
        directed=directed,
        train_graph=train_graph,
        train_pos=train_pos,
        valid_pos=valid_pos,
        test_pos=test_pos,
        valid_neg=placeholder,
        test_neg=placeholder,
    )
    split.valid_neg = split.sample_negatives(num_eval_negatives or num_valid, generator)
    split.test_neg = split.sample_negatives(num_eval_negatives or num_test, generator)
    split.check_no_leakage()
    return split
