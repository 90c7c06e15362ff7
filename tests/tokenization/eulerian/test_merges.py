"""Learned merges (SentencePiece BPE / unigram) over the Eulerian base stream: exact decoding,
shorter sequences, the node_index / link rule of merged tokens, and saving with merges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from gfm.testing.eulerian_reference import graph_difference
from gfm.testing.molecules import nci_molecules
from gfm.tokenization.eulerian import EDGE_TYPE_MERGED_NODE, EulerianTokenizer
from gfm.tokenization.eulerian.merges import LearnedMerges, ids_to_text, text_to_ids


@pytest.fixture(scope="module")
def corpus() -> tuple[list[Data], list[Data]]:
    return nci_molecules(1200, with_edges=True), nci_molecules(150, skip=4000, with_edges=True)


@pytest.fixture(scope="module")
def bpe(corpus) -> EulerianTokenizer:
    train, held_out = corpus
    return EulerianTokenizer.train(train + held_out, merges="bpe", num_merges=2000, merges_max_graphs=len(train))


def test_private_use_mapping_is_invertible() -> None:
    ids = np.array([0, 1, 6399, 6400, 6401, 60000])
    assert np.array_equal(text_to_ids(ids_to_text(ids)), ids)


def test_merged_sequences_decode_exactly_and_are_shorter(corpus, bpe) -> None:
    _, held_out = corpus
    base_positions = merged_positions = edges = 0
    for graph in held_out:
        merged = bpe.encode(graph, return_node_order=True)
        base = bpe.encode(graph, use_merges=False)
        merged.validate(vocab_size=bpe.vocab_size)
        assert (merged.input_ids >= bpe.base_vocab_size).any()
        decoded = bpe.decode(merged)
        assert graph_difference(graph, decoded, merged.metadata["node_order"], 0.0) is None
        base_positions += len(base)
        merged_positions += len(merged)
        edges += graph.edge_index.shape[1] // 2
    assert merged_positions < 0.4 * base_positions
    assert merged_positions / edges < 1.5  # ~11 base positions per edge before merging


def test_merged_positions_keep_the_graph_reachable(corpus, bpe) -> None:
    """node_index of a merged token is the first node it covers; links join the covered nodes' positions."""
    _, held_out = corpus
    for graph in held_out[:40]:
        merged = bpe.encode(graph, return_node_order=True)
        base = bpe.encode(graph, use_merges=False)
        lengths = bpe.merges.expand(merged.input_ids.numpy())[1]
        owner = np.repeat(np.arange(len(merged)), lengths)
        assert len(owner) == len(base)
        covers = [set() for _ in range(len(merged))]
        first = [-1] * len(merged)
        for position, node in enumerate(base.node_index.tolist()):
            if node >= 0:
                covers[owner[position]].add(node)
                if first[owner[position]] < 0:
                    first[owner[position]] = node
        assert merged.node_index.tolist() == first
        linked = {(int(a), int(b)) for a, b in merged.edge_index.t()}
        rank = {original: new for new, original in enumerate(merged.metadata["node_order"])}
        for u, v in graph.edge_index.t().tolist():
            u, v = rank[u], rank[v]
            holders_u = [p for p in range(len(merged)) if u in covers[p]]
            holders_v = [p for p in range(len(merged)) if v in covers[p]]
            assert any(p == q or (p, q) in linked for p in holders_u for q in holders_v), (u, v)
        # positions covering a common node are linked unless node_index already says so
        for p in range(len(merged)):
            for q in range(len(merged)):
                common = covers[p] & covers[q]
                if p != q and common and not any(merged.node_index[p] == n == merged.node_index[q] for n in common):
                    assert (p, q) in linked
        assert (merged.edge_type <= EDGE_TYPE_MERGED_NODE).all()


def test_unigram_merges_round_trip(corpus) -> None:
    train, held_out = corpus
    unigram = EulerianTokenizer.train(train[:400] + held_out, merges="unigram", num_merges=500,
                                      merges_max_graphs=400, max_piece_length=32)
    assert unigram.merges.model_type == "unigram"
    for graph in held_out[:50]:
        tokens = unigram.encode(graph, return_node_order=True, seed=4)
        assert graph_difference(graph, unigram.decode(tokens), tokens.metadata["node_order"], 0.0) is None


def test_save_and_load_with_merges(tmp_path, corpus, bpe) -> None:
    _, held_out = corpus
    directory = bpe.save_pretrained(tmp_path / "bpe")
    loaded = EulerianTokenizer.from_pretrained(directory)
    assert loaded.content_hash == bpe.content_hash and loaded.vocab_size == bpe.vocab_size
    for graph in held_out[:20]:
        assert torch.equal(loaded.encode(graph).input_ids, bpe.encode(graph).input_ids)
    without = EulerianTokenizer(bpe.vocabulary)
    assert without.content_hash != bpe.content_hash


def test_merges_for_another_vocabulary_are_rejected(corpus, bpe) -> None:
    small = EulerianTokenizer.train(corpus[0][:20])
    with pytest.raises(ValueError, match=r"merges were trained on a base vocabulary of \d+ tokens but this vocabulary "
                                         r"has \d+: the merges do not match the vocabulary"):
        EulerianTokenizer(small.vocabulary, bpe.merges)
    with pytest.raises(ValueError, match=r"outside the base vocabulary.*does not match this vocabulary"):
        LearnedMerges(bpe.merges.model, base_vocab_size=10)
