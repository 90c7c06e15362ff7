"""Link splits (gfm.data.link_splits): held-out edges never leak into what a model reads or its negatives."""

from __future__ import annotations

import pytest
import torch

from gfm.data.link_splits import (
    LeakageError,
    LinkSplit,
    LinkSplitError,
    holdout_link_split,
    link_split_from_dataset,
)
from gfm.data.registry import load


def test_holdout_link_split_never_leaks(karate):
    karate_graph = karate.graphs[0]
    split = holdout_link_split(karate_graph, "karate", valid_fraction=0.1, test_fraction=0.2, seed=0)
    num_nodes = karate_graph.num_nodes

    def keys(pairs):
        low, high = pairs.min(0).values, pairs.max(0).values
        return set((low * num_nodes + high).tolist())

    test_keys = keys(split.test_pos) | keys(split.valid_pos)
    assert not keys(split.train_graph) & test_keys  # no held-out edge in the readable graph
    negatives = split.sample_train_negatives(500, torch.Generator().manual_seed(1))
    assert not keys(negatives) & (test_keys | keys(split.train_pos))
    assert bool((negatives[0] != negatives[1]).all())
    assert not keys(split.test_neg) & (test_keys | keys(split.train_pos))
    # all positives are accounted for exactly once
    assert len(keys(split.train_pos)) + len(test_keys) == len(keys(karate_graph.edge_index))
    with pytest.raises(LeakageError, match="held-out edge .* is in the graph the model reads"):
        LinkSplit("karate", num_nodes, False, karate_graph.edge_index, split.train_pos, split.valid_pos, split.test_pos,
                  split.valid_neg, split.test_neg).check_no_leakage()
    with pytest.raises(LinkSplitError, match="the test split has no positive edges"):
        LinkSplit("karate", num_nodes, False, split.train_graph, split.train_pos, split.valid_pos,
                  torch.zeros(2, 0, dtype=torch.long), split.valid_neg, split.test_neg)


def test_given_negatives_are_used_as_shipped_and_checked():
    """A dataset that ships evaluation negatives keeps them; a given negative that is a positive is refused."""
    import copy

    dataset = load("packaged/les-miserables")
    split = link_split_from_dataset(dataset, num_eval_negatives=999, seed=0)
    assert split.negatives_given
    for name in ("valid", "test"):
        assert torch.equal(getattr(split, f"{name}_neg"), dataset.edge_splits[name]["neg_edge_index"])
    sampled = split.sample_train_negatives(200, torch.Generator().manual_seed(0))
    split.check_no_leakage(sampled)  # sampled training negatives are never a positive of any split
    broken = copy.deepcopy(dataset)
    positive = broken.edge_splits["test"]["edge_index"][:, :1]
    broken.edge_splits["test"]["neg_edge_index"] = torch.cat([broken.edge_splits["test"]["neg_edge_index"], positive], 1)
    with pytest.raises(LeakageError, match="test_neg holds .* which is a positive edge of the task"):
        link_split_from_dataset(broken)


@pytest.mark.data
@pytest.mark.slow
def test_ddi_negatives_and_training_edges_are_never_test_edges(data_dir):
    dataset = load("linkpred/ddi", data_dir=data_dir)
    split = link_split_from_dataset(dataset, num_eval_negatives=20_000, seed=0)
    n = split.num_nodes

    def keys(pairs):
        return torch.unique(pairs.min(0).values * n + pairs.max(0).values)

    test = keys(torch.cat([split.test_pos, split.valid_pos], dim=1))
    negatives = split.sample_train_negatives(200_000, torch.Generator().manual_seed(0))
    for what, pairs in (("train graph", split.train_graph), ("train negatives", negatives),
                        ("test negatives", split.test_neg), ("valid negatives", split.valid_neg)):
        assert not bool(torch.isin(keys(pairs), test).any()), what
    assert not bool(torch.isin(keys(negatives), keys(split.train_pos)).any())
