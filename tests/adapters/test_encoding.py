"""Ego graphs fitted to the model's context (gfm.adapters.encoding, issue 13 item 6).

Before: a node whose ego graph tokenized to more than ``max_length`` tokens stopped the run
("a train node sample tokenizes to N tokens, more than max_length=..."). Now the encoder shrinks
that node's ego graph (fewer neighbours per hop, then fewer hops), records the setting per node
and counts the settings; ``long_sequences="error"`` keeps the old behaviour.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from gfm.adapters.encoding import (
    EncodingError,
    SamplingConfig,
    TaskSampleEncoder,
    describe_ego_setting,
    ego_setting_counts,
)
from gfm.tokenization.eulerian import EulerianTokenizer
from gfm.tokenization.tokenized_graph import TokenizedGraphError


def _hub_graph() -> Data:
    """A hub (node 0) with 60 leaves, the leaves in a ring: a 2-hop ego graph of the hub is the whole graph."""
    leaves = torch.arange(1, 61)
    star = torch.stack([torch.zeros(60, dtype=torch.long), leaves])
    ring = torch.stack([leaves, torch.roll(leaves, 1)])
    return Data(edge_index=to_undirected(torch.cat([star, ring], dim=1)), num_nodes=61, domain="power_grid")


@pytest.fixture(scope="module")
def tokenizer(karate) -> EulerianTokenizer:
    # trained on the karate club only: the hub graph's domain is one it never saw (generic path)
    return EulerianTokenizer.train(karate.graphs, num_index_tokens=64)


def _encoder(tokenizer, max_length, **sampling):
    options = dict(num_hops=2, max_neighbors=None, attributes="drop")
    options.update(sampling)
    return TaskSampleEncoder(tokenizer, SamplingConfig(**options), max_length=max_length)


def test_a_hub_gets_a_shrunken_ego_graph_that_fits(tokenizer, caplog) -> None:
    graph = _hub_graph()
    nodes = torch.tensor([0, 1, 30])
    unfitted = _encoder(tokenizer, None).node_samples(graph, nodes)
    assert len(unfitted[0]) > 100  # the hub's whole-graph ego
    encoder = _encoder(tokenizer, 40)
    with caplog.at_level(logging.INFO, logger="gfm.adapters.encoding"):
        samples = encoder.node_samples(graph, nodes)
    assert all(len(sample) <= 40 for sample in samples)
    assert "were longer than max_length=40 tokens" in caplog.text
    hub = samples[0].metadata["ego"]
    # no cap: the ladder halves the largest degree (60); the hops stay while neighbours can shrink
    assert encoder.fit_ladder(graph)[:5] == [{"num_hops": 2, "max_neighbors": m} for m in (30, 15, 7, 3, 1)]
    assert hub == {"num_hops": 2, "max_neighbors": 3}  # the first setting whose sequence fits
    leaf = samples[1].metadata["ego"]
    assert leaf == {"num_hops": 2, "max_neighbors": 7}  # a leaf's 2-hop ego holds the hub's neighbours too
    counts = ego_setting_counts(samples, encoder.configured_setting())
    assert counts == {"2 hops x 7 neighbours": 2, "2 hops x 3 neighbours": 1}
    # deterministic: the same call gives the same sequences and settings
    again = _encoder(tokenizer, 40).node_samples(graph, nodes)
    assert [s.input_ids.tolist() for s in again] == [s.input_ids.tolist() for s in samples]
    assert [s.metadata.get("ego") for s in again] == [s.metadata.get("ego") for s in samples]


def test_the_ladder_shrinks_neighbours_then_hops(tokenizer) -> None:
    encoder = _encoder(tokenizer, 40, num_hops=2, max_neighbors=8)
    ladder = encoder.fit_ladder(_hub_graph())
    assert ladder == [
        {"num_hops": 2, "max_neighbors": 4}, {"num_hops": 2, "max_neighbors": 2}, {"num_hops": 2, "max_neighbors": 1},
        {"num_hops": 1, "max_neighbors": 8}, {"num_hops": 1, "max_neighbors": 4}, {"num_hops": 1, "max_neighbors": 2},
        {"num_hops": 1, "max_neighbors": 1}, {"num_hops": 0, "max_neighbors": 0},
    ]
    assert describe_ego_setting({"num_hops": 0, "max_neighbors": 0}) == "centre only"
    assert describe_ego_setting({"num_hops": 2, "max_neighbors": None}) == "2 hops x all neighbours"


def test_error_mode_keeps_the_long_sequence(tokenizer) -> None:
    encoder = _encoder(tokenizer, 40, long_sequences="error")
    samples = encoder.node_samples(_hub_graph(), torch.tensor([0]))
    assert len(samples[0]) > 40 and "ego" not in samples[0].metadata
    with pytest.raises(TokenizedGraphError, match="more than max_length=40"):
        next(encoder.batches(samples, 1))


def test_a_node_too_long_alone_is_named(tokenizer) -> None:
    encoder = _encoder(tokenizer, 3)  # <bos> <graph> <node> <target_node> <i:0> <eos> is 6 tokens
    with pytest.raises(EncodingError, match=r"node 0 tokenizes to \d+ tokens even without neighbours, more than "
                                            r"max_length=3"):
        encoder.node_samples(_hub_graph(), torch.tensor([0]))


def test_bad_long_sequences_value_is_named() -> None:
    with pytest.raises(EncodingError, match=r"long_sequences='shrink'; use one of \['fit', 'error'\]"):
        SamplingConfig(long_sequences="shrink")
