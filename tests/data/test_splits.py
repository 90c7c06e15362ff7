"""Seeded choices of items and of a dataset's graphs (gfm.data.splits.seeded_choice, GraphDataset.subset)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gfm.data.dataset import GraphDataset, TaskSpec, graph_targets
from gfm.data.splits import seeded_choice


def _dataset(num_graphs: int = 10) -> GraphDataset:
    graphs = [Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, y=torch.tensor([i % 2]), name=str(i))
              for i in range(num_graphs)]
    task = TaskSpec("graph", "classification", 2, 1, ["parity"], "accuracy")
    splits = {"train": torch.arange(0, 6), "valid": torch.arange(6, 8), "test": torch.arange(8, 10)}
    return GraphDataset("test/parity", "synthetic", task, graphs, splits=splits, info={"source": "test"})


def test_seeded_choice_is_sorted_distinct_and_repeatable():
    chosen = seeded_choice(100, 10, seed=3)
    assert chosen.dtype == torch.long and chosen.numel() == 10
    assert torch.equal(chosen, chosen.unique()) and int(chosen.max()) < 100  # sorted, no repeats
    assert torch.equal(chosen, seeded_choice(100, 10, seed=3))
    assert not torch.equal(chosen, seeded_choice(100, 10, seed=4))
    assert torch.equal(seeded_choice(5, None, seed=0), torch.arange(5))
    assert torch.equal(seeded_choice(5, 9, seed=0), torch.arange(5))
    with pytest.raises(ValueError, match=r"cannot choose -1 items; give a count >= 0"):
        seeded_choice(5, -1, seed=0)


def test_subset_keeps_chosen_graphs_in_order_and_reindexes_splits():
    dataset = _dataset()
    subset = dataset.subset(4, seed=1)
    chosen = seeded_choice(10, 4, seed=1).tolist()
    assert [g.name for g in subset.graphs] == [str(i) for i in chosen]
    for split, index in dataset.splits.items():  # each split keeps exactly its chosen members
        kept = [subset.graphs[i].name for i in subset.splits[split].tolist()]
        assert kept == [str(i) for i in index.tolist() if i in chosen], split
    assert subset.info == {"source": "test", "subset": {"of": 10, "max_graphs": 4, "seed": 1}}
    assert "subset" not in dataset.info and len(dataset.graphs) == 10  # the original is untouched
    assert torch.equal(graph_targets(subset.graphs, "classification"), torch.tensor([i % 2 for i in chosen]))
    assert dataset.subset(None) is dataset and dataset.subset(10) is dataset
    with pytest.raises(ValueError, match=r"test/parity: subset\(max_graphs=0\); keep at least one graph"):
        dataset.subset(0)


def test_graph_targets_stack_classes_and_float_rows():
    graphs = [Data(num_nodes=1, y=torch.tensor([[1.0, float("nan")]])), Data(num_nodes=1, y=torch.tensor([[0.5, 2.0]]))]
    stacked = graph_targets(graphs, "multilabel")
    assert stacked.shape == (2, 2) and stacked.dtype == torch.float32 and torch.isnan(stacked[0, 1])
    assert torch.equal(graph_targets([Data(num_nodes=1, y=torch.tensor([2]))], "classification"), torch.tensor([2]))
