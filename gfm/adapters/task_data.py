"""Tokenized train / valid / test items of a task, the same for every gfm method of a run.

:func:`build_task_items` turns a ``GraphDataset`` into :class:`TaskItems`: per split, the
token sequences (``TokenizedGraph``) and the targets, so LoRA, full fine-tuning, the linear
probe and the from-scratch baseline all train and select on exactly the same items.

- graph tasks: the dataset's ``splits``;
- node tasks: the labelled nodes of ``train_mask`` / ``val_mask`` / ``test_mask`` (split
  ``split_index`` of ``[N, S]`` masks); evaluation nodes may be capped (seeded) for cost;
- link tasks: the training positives (capped) with as many training negatives, drawn so that
  no negative is a positive of any split (:class:`~gfm.data.link_splits.LinkSplit`);
  valid / test hold positives then negatives (counts in ``num_positives``), scored OGB-style.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch_geometric.data import Data

from gfm.data.dataset import graph_targets
from gfm.data.link_splits import LinkSplit
from gfm.evaluation.metrics import MetricInfo, get_metric
from gfm.tokenization.tokenized_graph import TokenizedGraph
from gfm.utils.errors import GFMError

from .encoding import TaskSampleEncoder

__all__ = ["TaskItems", "TaskDataError", "build_task_items", "node_split_index", "SPLITS"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


class TaskDataError(GFMError, ValueError):
    """A split cannot be built (no positives, no labelled node, no graphs)."""


@dataclass
class TaskItems:
    """Tokenized samples and targets per split.

    Attributes:
        name: dataset name.
        kind: task kind (``classification``, ``multilabel``, ``regression``, ``link``).
        metric: the task's metric.
        samples: split -> list of ``TokenizedGraph``.
        targets: split -> targets: int64 ``[n]`` (classification), float ``[n, T]``
            (multilabel / regression, NaN missing), float ``[n, 1]`` 0/1 (link).
        num_positives: link tasks: split -> how many leading items are positives.
        ids: split -> node ids / graph indices / pairs ``[2, n]`` of the items (for checks).
        dropped: graph tasks with ``long_sequences="drop"``: split -> graph indices left out
            because their sequence is longer than the model accepts (reported, never silent).
    """

    name: str
    kind: str
    metric: MetricInfo
    samples: dict[str, list[TokenizedGraph]]
    targets: dict[str, torch.Tensor]
    num_positives: dict[str, int] = field(default_factory=dict)
    ids: dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: dict[str, list[int]] = field(default_factory=dict)


def node_split_index(mask: torch.Tensor, split_index: int, key: str, name: str) -> torch.Tensor:
    """Node ids of a split mask (``[N]`` or column ``split_index`` of ``[N, S]``)."""
    if mask.dim() == 2:
        if not 0 <= split_index < mask.shape[1]:
            raise TaskDataError(f"{name}: split_index={split_index} but {key} holds {mask.shape[1]} splits")
        mask = mask[:, split_index]
    return mask.nonzero().view(-1)


def _cap(index: torch.Tensor, limit: int | None, generator: torch.Generator) -> torch.Tensor:
    if limit is None or index.numel() <= limit:
        return index
    return index[torch.randperm(index.numel(), generator=generator)[:limit]].sort().values


def build_task_items(
    dataset,
    encoder: TaskSampleEncoder,
    seed: int = 0,
    split_index: int = 0,
    max_train_items: int | None = None,
    max_eval_items: int | None = None,
    link_split: LinkSplit | None = None,
    max_eval_negatives: int | None = None,
    max_length: int | None = None,
    long_sequences: str = "error",
) -> TaskItems:
    """Tokenize a dataset's splits for gfm training and evaluation.

    Args:
        dataset: a ``GraphDataset``.
        encoder: tokenizes graphs / ego graphs / pair subgraphs.
        seed: seeds the caps and the training negatives of link tasks.
        split_index: which of several given node splits.
        max_train_items / max_eval_items: caps (seeded subsamples) on training and evaluation
            items (graphs, nodes, positive pairs).
        link_split: link tasks: a prepared split (``link_split_from_dataset``); its
            ``train_graph`` is the only graph sampled from.
        max_eval_negatives: link tasks: cap on evaluation negatives per split.
        max_length: longest sequence the model accepts (``max_position_embeddings``).
        long_sequences: a longer sequence is an ``"error"``, or (graph tasks) ``"drop"``: the
            graph leaves its split for every method, listed in ``TaskItems.dropped``.

    Raises:
        TaskDataError: an empty split, or a split without positives / labelled nodes.
    """
    task = dataset.task
    metric = get_metric(task.metric)
    generator = torch.Generator().manual_seed(int(seed))
    samples: dict[str, list[TokenizedGraph]] = {}
    targets: dict[str, torch.Tensor] = {}
    ids: dict[str, torch.Tensor] = {}
    num_positives: dict[str, int] = {}
    dropped: dict[str, list[int]] = {}
    if task.level == "graph":
        for split in SPLITS:
            if split not in dataset.splits or dataset.splits[split].numel() == 0:
                raise TaskDataError(f"{dataset.name}: the {split!r} split holds no graph")
            limit = max_train_items if split == "train" else max_eval_items
            index = _cap(dataset.splits[split], limit, generator)
            graphs = [dataset.graphs[i] for i in index.tolist()]
            encoded = encoder.graph_samples(graphs)
            if max_length is not None:
                fits = torch.tensor([len(sample) <= max_length for sample in encoded], dtype=torch.bool)
                if not bool(fits.all()):
                    too_long = index[~fits].tolist()
                    if long_sequences != "drop":
                        raise TaskDataError(
                            f"{dataset.name}: {len(too_long)} {split} graph(s) (e.g. graph {too_long[0]}) tokenize to more "
                            f"than max_length={max_length} tokens; set long_sequences='drop' to leave them out of every "
                            "method's split (reported), or use a model with more positions; gfm never truncates"
                        )
                    dropped[split] = too_long
                    logger.warning("%s: %d %s graph(s) longer than %d tokens left out of every method's split: %s",
                                   dataset.name, len(too_long), split, max_length, too_long[:10])
                    index = index[fits]
                    graphs = [g for g, keep in zip(graphs, fits.tolist()) if keep]
                    encoded = [e for e, keep in zip(encoded, fits.tolist()) if keep]
            samples[split] = encoded
            targets[split] = graph_targets(graphs, task.kind)
            ids[split] = index
    elif task.level == "node":
        data: Data = dataset.graphs[0]
        for split, key in zip(SPLITS, ("train_mask", "val_mask", "test_mask")):
            index = node_split_index(getattr(data, key), split_index, key, dataset.name)
            if task.kind == "classification":
                index = index[data.y[index] >= 0]
            if index.numel() == 0:
                raise TaskDataError(f"{dataset.name}: {key} (split {split_index}) selects no labelled node")
            index = _cap(index, max_train_items if split == "train" else max_eval_items, generator)
            samples[split] = encoder.node_samples(data, index)
            targets[split] = data.y[index].clone() if task.kind == "classification" else data.y[index].float()
            ids[split] = index
    elif task.level == "edge":
        if link_split is None:
            raise TaskDataError(f"{dataset.name}: an edge task needs a LinkSplit: pass link_split=gfm.data.link_split_from_dataset(dataset)")
        readable = link_split.readable_graph(dataset.graphs[0])
        positives = _cap_pairs(link_split.train_pos, max_train_items, generator)
        negatives = link_split.sample_train_negatives(positives.shape[1], generator)
        link_split.check_no_leakage(negatives)
        pairs = {"train": (positives, negatives)}
        for split in ("valid", "test"):
            pos = _cap_pairs(getattr(link_split, f"{split}_pos"), max_eval_items, generator)
            neg = _cap_pairs(getattr(link_split, f"{split}_neg"), max_eval_negatives, generator)
            pairs[split] = (pos, neg)
        for split, (pos, neg) in pairs.items():
            if pos.shape[1] == 0:
                raise TaskDataError(f"{dataset.name}: the {split} split has no positive edge")
            both = torch.cat([pos, neg], dim=1)
            samples[split] = encoder.edge_samples(readable, both)
            targets[split] = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])]).view(-1, 1)
            num_positives[split] = int(pos.shape[1])
            ids[split] = both
    else:
        raise TaskDataError(f"{dataset.name}: unknown task level {task.level!r}")
    if max_length is not None and task.level != "graph":
        for split in SPLITS:
            longest = max(len(sample) for sample in samples[split])
            if longest > max_length:
                raise TaskDataError(
                    f"{dataset.name}: a {split} {task.level} sample tokenizes to {longest} tokens, more than "
                    f"max_length={max_length}; set long_sequences='fit' to shrink such ego graphs until they fit (reported), "
                    "lower max_neighbors / num_hops, or use a model with more positions"
                )
    if task.kind in ("multilabel",):
        _check_positives(dataset.name, targets)
    logger.info(
        "%s: %s items (train/valid/test)", dataset.name, "/".join(str(len(samples[s])) for s in SPLITS)
    )
    return TaskItems(dataset.name, task.kind, metric, samples, targets, num_positives, ids, dropped)


def _cap_pairs(pairs: torch.Tensor, limit: int | None, generator: torch.Generator) -> torch.Tensor:
    if limit is None or pairs.shape[1] <= limit:
        return pairs
    return pairs[:, torch.randperm(pairs.shape[1], generator=generator)[:limit].sort().values]


def _check_positives(name: str, targets: dict[str, torch.Tensor]) -> None:
    """A binary (multi-task) split whose observed labels hold no positive cannot be ranked."""
    for split, values in targets.items():
        observed = values[~torch.isnan(values)]
        if observed.numel() == 0 or not bool((observed == 1).any()):
            raise TaskDataError(
                f"{name}: the {split} split has no positive label in any task; ROC-AUC / AP are undefined "
                "and a classifier cannot learn the positive class: choose another split or seed"
            )

