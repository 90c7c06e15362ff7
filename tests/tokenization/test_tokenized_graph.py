"""The TokenizedGraph contract and its two batch layouts (padded, packed)."""

from __future__ import annotations

import pytest
import torch

from gfm.testing.modeling import random_tokenized_graph
from gfm.tokenization import (
    TokenizedGraph,
    TokenizedGraphError,
    collate_tokenized_graphs,
    pack_tokenized_graphs,
)


def _random_sequence(length: int, num_nodes: int, seed: int, with_extras: bool = False) -> TokenizedGraph:
    return random_tokenized_graph(torch.Generator().manual_seed(seed), length, num_nodes, extras=with_extras,
                                  domain="test", metadata={"target_node": seed % num_nodes})


def _per_sample_view(batch: dict, sample: int):
    """Recover one sample's tokens and position-level edges from a batch (the reference check)."""
    mask = batch["sequence_ids"] == sample
    rows, cols = mask.nonzero(as_tuple=True)
    order = torch.argsort(batch["position_ids"][rows, cols])
    rows, cols = rows[order], cols[order]
    T = batch["input_ids"].shape[1]
    flat = rows * T + cols
    local = {int(p): i for i, p in enumerate(flat)}
    src, dst = batch["graph_edge_index"]
    keep = torch.tensor([int(s) in local for s in src], dtype=torch.bool)
    edges = torch.tensor([[local[int(s)] for s in src[keep]], [local[int(d)] for d in dst[keep]]]).reshape(2, -1)
    return batch["input_ids"][rows, cols], batch["node_index"][rows, cols], edges, batch["graph_edge_type"][keep]


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_batches_preserve_every_sample_exactly(layout: str) -> None:
    samples = [_random_sequence(length, 7, seed, with_extras=seed % 2 == 0) for seed, length in enumerate([5, 17, 3, 11, 9])]
    if layout == "padded":
        batch = collate_tokenized_graphs(samples, pad_token_id=0)
        assert batch["input_ids"].shape == (5, 17)
    else:
        batch = pack_tokenized_graphs(samples, token_budget=20)
        assert batch["input_ids"].shape[1] == 20
        assert batch["input_ids"].shape[0] < len(samples)  # packing actually shares rows
    assert int(batch["attention_mask"].sum()) == sum(len(s) for s in samples)
    assert torch.equal(batch["target_node"], torch.tensor([s.metadata["target_node"] for s in samples]))
    for i, s in enumerate(samples):
        ids, nodes, edges, types = _per_sample_view(batch, i)
        assert torch.equal(ids, s.input_ids)
        assert torch.equal(nodes, s.node_index)
        # no edge leaves its sample, and every edge survives
        assert edges.shape[1] == s.edge_index.shape[1]
        assert torch.equal(edges, s.edge_index) and torch.equal(types, s.edge_type)
    src, dst = batch["graph_edge_index"]
    flat_seq = batch["sequence_ids"].reshape(-1)
    assert torch.equal(flat_seq[src], flat_seq[dst])
    assert "level_ids" in batch and "node_features" in batch
    assert (batch["level_ids"][batch["attention_mask"] == 0] == -1).all()


def test_arrow_dict_round_trip_is_exact() -> None:
    for seed in range(4):
        s = _random_sequence(13, 5, seed, with_extras=seed % 2 == 0)
        assert TokenizedGraph.from_dict(s.to_dict()).equals(s)


def test_over_long_sample_raises_instead_of_truncating() -> None:
    s = _random_sequence(30, 5, 0)
    with pytest.raises(TokenizedGraphError, match="30 tokens, more than max_length=16.*never truncates"):
        collate_tokenized_graphs([s], max_length=16)
    with pytest.raises(TokenizedGraphError, match="30 tokens, more than max_length=20"):
        pack_tokenized_graphs([s], token_budget=20)


def test_validate_names_the_field_and_the_fix() -> None:
    with pytest.raises(TokenizedGraphError, match=r"graph 3: edge_index refers to position 9.*has 4 positions"):
        TokenizedGraph(input_ids=[1, 2, 3, 4], node_index=[0, 1, -1, 0], edge_index=[[0], [9]], num_nodes=2).validate(
            "graph 3"
        )
    with pytest.raises(TokenizedGraphError, match="node_index holds 5 but num_nodes is 2"):
        TokenizedGraph(input_ids=[1, 2], node_index=[0, 5], edge_index=[[], []], num_nodes=2).validate()
    with pytest.raises(TokenizedGraphError, match=r"input_ids\[1\] = 99 is outside the vocabulary \[0, 10\)"):
        TokenizedGraph(input_ids=[1, 99], node_index=[0, 1], edge_index=[[], []], num_nodes=2).validate(vocab_size=10)
    with pytest.raises(TokenizedGraphError, match="node_features widths differ"):
        a = TokenizedGraph(input_ids=[1], node_index=[0], edge_index=[[], []], num_nodes=1, node_features=[[0.0, 1.0]])
        b = TokenizedGraph(input_ids=[1], node_index=[0], edge_index=[[], []], num_nodes=1, node_features=[[0.0]])
        collate_tokenized_graphs([a, b])
