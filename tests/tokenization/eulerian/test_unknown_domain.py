"""A graph of a domain or layout the vocabulary never saw: the generic path (issue 13, item 6).

Before: ``encode`` refused it (``UnknownValueError: its layout <graph:power_grid> was not seen``)
whatever ``unknown`` said. Now ``unknown="unk"`` (what the adaptation encoder uses) writes it
through the generic schema and records what it did; ``unknown="error"`` still refuses, naming
the fix.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch_geometric.data import Data

from gfm.tokenization.eulerian import EulerianTokenizer, UnknownValueError
from gfm.tokenization.eulerian.tokenizer import UNKNOWN_DOMAIN
from gfm.tokenization.eulerian.vocab import EulerianVocabulary, FieldSpec, GraphSchema


def _power_grid(directed: bool = False, **fields) -> Data:
    """A 5-bus ring with a tap: the kind of graph no gfm corpus holds."""
    src = torch.tensor([0, 1, 2, 3, 4, 2])
    dst = torch.tensor([1, 2, 3, 4, 0, 5])
    edge_index = torch.stack([src, dst]) if directed else torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    graph = Data(edge_index=edge_index, num_nodes=6, domain="power_grid", **fields)
    if directed:
        graph.directed = True
    return graph


@pytest.fixture(scope="module")
def social_tokenizer(karate) -> EulerianTokenizer:
    """The demo-size tokenizer of the test suite: trained on the packaged karate club only."""
    return EulerianTokenizer.train(karate.graphs, num_index_tokens=64)


def test_unknown_domain_is_refused_only_when_asked(social_tokenizer) -> None:
    with pytest.raises(UnknownValueError, match=r"layout <graph:power_grid> was not seen.*no domain 'power_grid'.*"
                                                r"unknown='unk'"):
        social_tokenizer.encode(_power_grid())  # the tokenizer's default: unknown="error"


def test_unknown_domain_encodes_through_the_generic_schema(social_tokenizer, caplog) -> None:
    assert "<graph:generic>" in social_tokenizer.vocabulary.tokens  # every tokenizer trained now holds it
    with caplog.at_level(logging.WARNING, logger="gfm.tokenization.eulerian"):
        tokens = social_tokenizer.encode(_power_grid(), unknown="unk", target_node=2)
    assert "encoded through the generic path (<graph:power_grid> -> <graph:generic>)" in caplog.text
    assert tokens.metadata["generic_schema"] == {
        "domain": "power_grid", "layout": "<graph:power_grid>", "written_as": "<graph:generic>", "left_out": [],
    }
    assert tokens.domain == "power_grid"  # the graph keeps its own domain
    assert tokens.input_ids[1] == social_tokenizer.vocabulary.token_to_id["<graph:generic>"]
    decoded = social_tokenizer.decode(tokens)
    assert decoded.num_nodes == 6 and decoded.edge_index.shape[1] == 12  # structure round-trips


def test_unseen_columns_are_named_as_left_out(social_tokenizer) -> None:
    graph = _power_grid(x=torch.rand(6, 3), edge_attr=torch.ones(12, 1))
    tokens = social_tokenizer.encode(graph, unknown="unk")
    record = tokens.metadata["generic_schema"]
    assert record["written_as"] == "<graph:generic>"
    assert record["left_out"] == ["x=float32[3]", "edge_attr=float32[1]"]
    # the karate domain with a column it never had: the same path
    same_domain = _power_grid(x=torch.rand(6, 2))
    same_domain.domain = "social"
    assert social_tokenizer.encode(same_domain, unknown="unk").metadata["generic_schema"]["left_out"] == ["x=float32[2]"]


def test_same_layout_under_the_generic_domain_keeps_the_attributes() -> None:
    """Step 1 of the generic path: the graph's fields exist under default_domain; unseen values are <unk>."""
    generic = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, x=torch.tensor([[1], [2]]))  # domain 'generic'
    tokenizer = EulerianTokenizer.train([generic], num_index_tokens=16)
    graph = _power_grid(x=torch.tensor([[1], [2], [1], [2], [7], [1]]))
    tokens = tokenizer.encode(graph, unknown="unk")
    record = tokens.metadata["generic_schema"]
    assert record["written_as"] == "<graph:generic|x=int64[1]>" and record["left_out"] == []
    assert tokens.metadata["unknown_values"] == 1  # the 7: written as <unk>, counted per graph
    assert tokens.input_ids.tolist().count(tokenizer.unk_token_id) == 1
    decoded = tokenizer.decode(tokens, unk_value=-1)
    assert sorted(decoded.x.view(-1).tolist()) == [-1, 1, 1, 1, 2, 2]


def test_unseen_values_are_counted_per_graph(social_tokenizer) -> None:
    plain = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, domain="alpha", x=torch.tensor([[0], [1]]))
    tokenizer = EulerianTokenizer.train([plain], num_index_tokens=16)
    seen = plain.clone()
    unseen = plain.clone()
    unseen.x = torch.tensor([[5], [6]])
    first, second = tokenizer.encode_batch([seen, unseen], unknown="unk")
    assert "unknown_values" not in first.metadata and second.metadata["unknown_values"] == 2


def test_directed_unknown_domain_uses_the_directed_generic_schema(social_tokenizer) -> None:
    tokens = social_tokenizer.encode(_power_grid(directed=True), unknown="unk")
    assert tokens.metadata["generic_schema"]["written_as"] == "<graph:generic|directed>"
    decoded = social_tokenizer.decode(tokens)
    assert getattr(decoded, "directed", False) and decoded.edge_index.shape[1] == 6


def test_a_tokenizer_without_generic_schema_writes_unk_in_the_schema_position(karate, tmp_path) -> None:
    """Tokenizers saved before the generic schema existed load unchanged and still encode any domain."""
    social = GraphSchema("social", False, (), (FieldSpec("edge_attr", "continuous", "float32", 1),))
    old = EulerianTokenizer(EulerianVocabulary([social], {}, num_index_tokens=64))
    old.save_pretrained(tmp_path / "old")
    payload = json.loads((tmp_path / "old" / "eulerian_vocab.json").read_text())
    assert "<graph:generic>" not in payload["tokens"]
    loaded = EulerianTokenizer.from_pretrained(tmp_path / "old")
    assert loaded.content_hash == old.content_hash and loaded.vocabulary.tokens == old.vocabulary.tokens
    assert loaded.encode(karate.graphs[0]).input_ids.tolist() == old.encode(karate.graphs[0]).input_ids.tolist()

    tokens = loaded.encode(_power_grid(x=torch.rand(6, 2)), unknown="unk")
    assert tokens.input_ids[1] == loaded.unk_token_id
    assert tokens.metadata["generic_schema"] == {
        "domain": "power_grid", "layout": "<graph:power_grid|x=float32[2]>", "written_as": "<unk>",
        "left_out": ["x=float32[2]"],
    }
    decoded = loaded.decode(tokens)
    assert decoded.domain == UNKNOWN_DOMAIN and decoded.num_nodes == 6 and decoded.edge_index.shape[1] == 12
