"""EulerianTokenizer: exact round trips, the fast writer against the reference, the TokenizedGraph
contract, seeds and offsets, targets, HF-style I/O, and every bad input with its message."""

from __future__ import annotations

import json
import logging
import os

import networkx as nx
import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import from_networkx, to_undirected

from gfm.testing.eulerian_reference import (
    graph_difference,
    multigraph_edges,
    networkx_walk,
    reference_encode,
    reference_tokens,
)
from gfm.testing.eulerian_synthetic import covering_graphs, molecule_like_graphs, random_graph
from gfm.testing.molecules import nci_molecules
from gfm.tokenization import AutoGraphTokenizer, TokenizerLoadError
from gfm.tokenization.eulerian import (
    EDGE_TYPE_DUPLICATE,
    EDGE_TYPE_EDGE,
    EDGE_TYPE_REVERSE,
    EDGE_TYPE_STEP_TOKEN,
    MERGES_FILE,
    VOCAB_FILE,
    EulerianDecodeError,
    EulerianTokenizer,
    GraphInputError,
    UnknownValueError,
)
from gfm.tokenization.eulerian.kernel import kernel_available
from gfm.tokenization.eulerian.walk import walk_graph_python


@pytest.fixture(scope="module")
def molecules() -> list[Data]:
    return nci_molecules(300)


@pytest.fixture(scope="module")
def molecule_tokenizer(molecules) -> EulerianTokenizer:
    return EulerianTokenizer.train(molecules)


@pytest.fixture(scope="module")
def fuzz_tokenizer() -> EulerianTokenizer:
    return EulerianTokenizer.train(covering_graphs(), num_index_tokens=4, continuous_decimals=3)


def _round_trip(tokenizer: EulerianTokenizer, graph: Data, **kwargs) -> None:
    encoded = tokenizer.encode(graph, return_node_order=True, **kwargs)
    encoded.validate(vocab_size=tokenizer.vocab_size)
    decoded = tokenizer.decode(encoded)
    difference = graph_difference(graph, decoded, encoded.metadata["node_order"], tokenizer.continuous_tolerance,
                                  tokenizer.default_domain)
    assert difference is None, difference
    # a plain id list decodes the same way
    again = tokenizer.decode(encoded.input_ids.tolist())
    assert torch.equal(again.edge_index, decoded.edge_index)


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
def test_real_molecules_round_trip_exactly(molecules, molecule_tokenizer) -> None:
    encoded = molecule_tokenizer.encode_batch(molecules, return_node_order=True)
    for graph, tokens in zip(molecules, encoded):
        tokens.validate(vocab_size=molecule_tokenizer.vocab_size)
        decoded = molecule_tokenizer.decode(tokens)
        order = torch.tensor(tokens.metadata["node_order"])
        assert torch.equal(decoded.x, graph.x[order])  # categorical atom attributes exact
        assert graph_difference(graph, decoded, order.tolist(), 0.0, "generic") is None
        assert decoded.domain == "molecules"


def test_networkx_graphs_round_trip() -> None:
    graphs = []
    for maker in (nx.karate_club_graph, nx.florentine_families_graph, nx.les_miserables_graph, nx.davis_southern_women_graph):
        graph = from_networkx(nx.convert_node_labels_to_integers(maker()), group_node_attrs=None, group_edge_attrs=None)
        graphs.append(Data(edge_index=graph.edge_index, num_nodes=graph.num_nodes, domain="social"))
    tokenizer = EulerianTokenizer.train(graphs, num_index_tokens=16)
    for graph in graphs:
        _round_trip(tokenizer, graph)
        _round_trip(tokenizer, graph, seed=3, random_offset=True)


def test_fast_writer_equals_reference_writer(fuzz_tokenizer) -> None:
    """Token by token, node_index and link by link, on random graphs of every layout (both backends)."""
    rng = np.random.default_rng(4)
    graphs = [random_graph(rng, max_nodes=14) for _ in range(300)]
    seeds = [None if i % 2 else i for i in range(len(graphs))]
    backends = ["python"] + (["c"] if kernel_available() else [])
    outputs = {}
    for backend in backends:
        fuzz_tokenizer.backend = backend
        outputs[backend] = fuzz_tokenizer.encode_batch(graphs, seed=seeds, batch_size=64)
    fuzz_tokenizer.backend = "auto"
    for i, graph in enumerate(graphs):
        num_nodes, eu, ev, _, _ = multigraph_edges(graph)
        expected = reference_tokens(fuzz_tokenizer, graph, walk_graph_python(num_nodes, eu, ev, seeds[i]))
        for backend in backends:
            got = outputs[backend][i]
            for key in ("input_ids", "node_index", "edge_index", "edge_type"):
                assert torch.equal(getattr(got, key), getattr(expected, key)), (backend, i, key)


def test_networkx_reference_decodes_to_the_same_graph(molecules, molecule_tokenizer, fuzz_tokenizer) -> None:
    for graph in molecules[:40]:
        tokens = reference_encode(molecule_tokenizer, graph)
        num_nodes, eu, ev, _, _ = multigraph_edges(graph)
        order = np.argsort(networkx_walk(num_nodes, eu, ev).rank).tolist()
        assert graph_difference(graph, molecule_tokenizer.decode(tokens), order, 0.0) is None
    rng = np.random.default_rng(8)
    for _ in range(60):
        graph = random_graph(rng, max_nodes=9)
        num_nodes, eu, ev, _, _ = multigraph_edges(graph)
        order = np.argsort(networkx_walk(num_nodes, eu, ev).rank).tolist()
        decoded = fuzz_tokenizer.decode(reference_encode(fuzz_tokenizer, graph))
        assert graph_difference(graph, decoded, order, fuzz_tokenizer.continuous_tolerance) is None


def test_special_graphs_round_trip(fuzz_tokenizer) -> None:
    def graph(n, edges, directed=False, **fields):
        edge_index = torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t()
        if not directed and edge_index.numel():
            edge_index = to_undirected(edge_index, num_nodes=n)
        data = Data(edge_index=edge_index, num_nodes=n, domain="alpha", **fields)
        if directed:
            data.directed = True
        return data

    cases = [
        graph(0, []),
        graph(1, []),
        graph(5, []),  # isolated nodes only
        graph(4, [(1, 2)]),  # isolated nodes around one edge
        graph(3, [(0, 0), (1, 1)]),  # self-loops
        graph(3, [(0, 1), (1, 2), (2, 0), (0, 1)], directed=True),
        graph(6, [(0, 1), (1, 2), (3, 4), (4, 5), (5, 3)]),  # two components
        graph(30, [(i, (i * 7 + 3) % 30) for i in range(30)]),  # labels beyond the 4 index tokens
    ]
    parallel = Data(edge_index=torch.tensor([[0, 1, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0]]), num_nodes=2, domain="alpha")
    cases.append(parallel)
    for case in cases:
        _round_trip(fuzz_tokenizer, case)
        _round_trip(fuzz_tokenizer, case, seed=11, random_offset=True)


def test_multi_token_indices_never_collide(fuzz_tokenizer) -> None:
    big = Data(edge_index=to_undirected(torch.stack([torch.arange(99), torch.arange(1, 100)])), num_nodes=100,
               domain="alpha")
    ring = Data(edge_index=to_undirected(torch.stack([torch.arange(100), (torch.arange(100) + 37) % 100])),
                num_nodes=100, domain="alpha")
    for graph in (big, ring):
        tokens = fuzz_tokenizer.encode(graph, return_node_order=True, seed=1, random_offset=True)
        names = fuzz_tokenizer.convert_ids_to_tokens(tokens.input_ids.tolist())
        assert any(name.startswith("<ilen:") for name in names)  # labels >= 4 take several tokens
        _round_trip(fuzz_tokenizer, graph, seed=1, random_offset=True)


def test_continuous_values_within_declared_precision(fuzz_tokenizer) -> None:
    x = torch.tensor([[0.0, -1.23456], [1e6 + 0.0004, 3.14159]], dtype=torch.float32)
    graph = Data(x=x, edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, domain="alpha")
    tokens = fuzz_tokenizer.encode(graph, return_node_order=True)
    decoded = fuzz_tokenizer.decode(tokens)
    order = tokens.metadata["node_order"]
    assert decoded.x.dtype == torch.float32
    assert torch.all((decoded.x - x[order]).abs() <= fuzz_tokenizer.continuous_tolerance + 1e-6 * x[order].abs())
    assert not torch.equal(decoded.x, x[order])  # rounded: 3 decimals declared


def test_dtypes_and_one_dimensional_fields_are_restored(fuzz_tokenizer) -> None:
    graph = Data(x=torch.tensor([1, 0, 3], dtype=torch.int32)[:, None].repeat(1, 2), num_nodes=3, domain="alpha",
                 edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), edge_attr=torch.tensor([1, 1, 2, 2]))
    decoded = fuzz_tokenizer.decode(fuzz_tokenizer.encode(graph))
    assert decoded.x.dtype == torch.int32 and decoded.x.shape == (3, 2)
    assert decoded.edge_attr.dim() == 1 and decoded.edge_attr.dtype == torch.int64
    _round_trip(fuzz_tokenizer, graph)


# ---------------------------------------------------------------------------------------------
# the TokenizedGraph contract
# ---------------------------------------------------------------------------------------------
def test_node_index_and_links_carry_the_graph(molecules, molecule_tokenizer) -> None:
    for graph in molecules[:50]:
        tokens = molecule_tokenizer.encode(graph, return_node_order=True)
        order = tokens.metadata["node_order"]
        rank = {original: new for new, original in enumerate(order)}
        node_index = tokens.node_index
        src, dst = tokens.edge_index
        types = tokens.edge_type
        # every attribute token of a new node carries it; every node has positions
        assert set(node_index[node_index >= 0].tolist()) == set(range(graph.num_nodes))
        edge_links = (types == EDGE_TYPE_EDGE)
        linked = {(int(node_index[a]), int(node_index[b])) for a, b in zip(src[edge_links], dst[edge_links])}
        expected = {(rank[int(u)], rank[int(v)]) for u, v in graph.edge_index.t()}
        assert linked == expected  # the real edges, in both directions
        step = types == EDGE_TYPE_STEP_TOKEN
        # each step-token link joins an edge-attribute token (no node) with a visit of an endpoint
        assert torch.equal((node_index[src[step]] == -1) ^ (node_index[dst[step]] == -1), torch.ones(int(step.sum()), dtype=torch.bool))
        duplicates = types == EDGE_TYPE_DUPLICATE
        for a, b in zip(src[duplicates], dst[duplicates]):
            pair = (int(node_index[a]), int(node_index[b]))
            assert pair in expected  # a duplicate re-traverses a real edge


def test_directed_graphs_get_direction_tokens_and_typed_links(fuzz_tokenizer) -> None:
    graph = Data(edge_index=torch.tensor([[0, 1, 2, 2], [1, 2, 0, 3]]), num_nodes=4, domain="alpha", directed=True)
    tokens = fuzz_tokenizer.encode(graph, return_node_order=True)
    names = fuzz_tokenizer.convert_ids_to_tokens(tokens.input_ids.tolist())
    assert "<fwd>" in names or "<bwd>" in names
    rank = {original: new for new, original in enumerate(tokens.metadata["node_order"])}
    forward = tokens.edge_type == EDGE_TYPE_EDGE
    arcs = {(int(tokens.node_index[a]), int(tokens.node_index[b]))
            for a, b in zip(tokens.edge_index[0][forward], tokens.edge_index[1][forward])}
    assert arcs == {(rank[u], rank[v]) for u, v in graph.edge_index.t().tolist()}
    assert int((tokens.edge_type == EDGE_TYPE_REVERSE).sum()) == 4
    _round_trip(fuzz_tokenizer, graph)


def test_batch_call_pads_like_a_transformers_tokenizer(molecules, molecule_tokenizer) -> None:
    batch = molecule_tokenizer(molecules[:8], padding=True, return_tensors="pt")
    lengths = [len(molecule_tokenizer.encode(g)) for g in molecules[:8]]
    assert batch["input_ids"].shape == (8, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert (batch["input_ids"][batch["attention_mask"] == 0] == molecule_tokenizer.pad_token_id).all()
    assert batch["graph_edge_index"].shape[0] == 2 and batch["num_nodes"].tolist() == [g.num_nodes for g in molecules[:8]]
    listed = molecule_tokenizer(molecules[:3], return_tensors=None)
    assert [len(t) for t in listed] == lengths[:3]


def test_special_token_ids_are_exposed(molecule_tokenizer) -> None:
    tok = molecule_tokenizer
    names = tok.convert_ids_to_tokens([tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.mask_token_id,
                                      tok.sep_token_id, tok.jump_token_id, tok.unk_token_id,
                                      tok.target_node_token_id, tok.target_edge_token_id])
    assert names == ["<pad>", "<bos>", "<eos>", "<mask>", "<sep>", "<jump>", "<unk>", "<target_node>", "<target_edge>"]
    a, b = molecules_pair = nci_molecules(2)
    union = Data(x=torch.cat([a.x, b.x]), edge_attr=torch.cat([a.edge_attr, b.edge_attr]), domain="molecules",
                 edge_index=torch.cat([a.edge_index, b.edge_index + a.num_nodes], dim=1), num_nodes=a.num_nodes + b.num_nodes)
    tokens = tok.encode(union)
    assert tok.jump_token_id in tokens.input_ids.tolist()  # two components chained by <jump>
    assert len(molecules_pair) == 2


# ---------------------------------------------------------------------------------------------
# seeds, offsets, targets
# ---------------------------------------------------------------------------------------------
def test_seeded_walks_are_deterministic_and_varied(molecules, molecule_tokenizer) -> None:
    graph = max(molecules[:50], key=lambda g: g.edge_index.shape[1])
    same = [molecule_tokenizer.encode(graph, seed=5).input_ids for _ in range(2)]
    assert torch.equal(same[0], same[1])
    variants = {tuple(molecule_tokenizer.encode(graph, seed=s).input_ids.tolist()) for s in range(10)}
    assert len(variants) > 3
    for s in range(10):
        _round_trip(molecule_tokenizer, graph, seed=s)
    canonical = molecule_tokenizer.encode(graph).input_ids
    assert torch.equal(canonical, molecule_tokenizer.encode(graph, seed=None).input_ids)


def test_random_offset_shifts_labels_and_still_decodes(molecules, molecule_tokenizer) -> None:
    graph = next(g for g in molecules if g.edge_index.shape[1] > 20)
    plain = molecule_tokenizer.encode(graph, seed=9)
    shifted = molecule_tokenizer.encode(graph, seed=9, random_offset=True, return_node_order=True)
    assert shifted.metadata["index_offset"] > 0
    assert torch.equal(molecule_tokenizer.encode(graph, seed=9, random_offset=True).input_ids, shifted.input_ids)
    assert not torch.equal(plain.input_ids, shifted.input_ids)
    _round_trip(molecule_tokenizer, graph, seed=9, random_offset=True)


def test_target_node_and_edge_markers(molecules, molecule_tokenizer) -> None:
    graph = molecules[3]
    tokens = molecule_tokenizer.encode(graph, target_node=2, target_edge=(0, 4), return_node_order=True)
    rank = {original: new for new, original in enumerate(tokens.metadata["node_order"])}
    assert tokens.metadata["target_node"] == rank[2]
    assert tokens.metadata["target_edge"] == [rank[0], rank[4]]
    ids = tokens.input_ids.tolist()
    marker = ids.index(molecule_tokenizer.target_node_token_id)
    assert tokens.node_index[marker + 1] == rank[2]  # the label after the marker stands for the node
    decoded = molecule_tokenizer.decode(tokens)
    assert decoded.target_node == rank[2] and decoded.target_edge == [rank[0], rank[4]]
    batch = molecule_tokenizer(molecules[:3], target_node=[0, 1, 2])
    assert batch["target_node"].shape == (3,)


# ---------------------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------------------
def test_save_and_load_give_the_same_tokenizer(tmp_path, molecules, molecule_tokenizer) -> None:
    directory = molecule_tokenizer.save_pretrained(tmp_path / "tok")
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["eulerian_vocab.json", "tokenizer_config.json"]
    config = json.loads((directory / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "EulerianTokenizer"
    assert config["content_hash"] == molecule_tokenizer.content_hash
    assert config["jump_token_id"] == molecule_tokenizer.jump_token_id
    for loaded in (EulerianTokenizer.from_pretrained(directory), AutoGraphTokenizer.from_pretrained(directory)):
        assert loaded.content_hash == molecule_tokenizer.content_hash
        for graph in molecules[:20]:
            assert torch.equal(loaded.encode(graph, seed=2).input_ids, molecule_tokenizer.encode(graph, seed=2).input_ids)


# ---------------------------------------------------------------------------------------------
# bad input: each gets a named error
# ---------------------------------------------------------------------------------------------
def test_edge_index_out_of_range_is_named(molecule_tokenizer, molecules) -> None:
    graph = molecules[0].clone()
    graph.edge_index = graph.edge_index.clone()
    graph.edge_index[1, 3] = graph.num_nodes + 2
    with pytest.raises(GraphInputError, match=r"graph 0 \(.*\): edge_index\[1, 3\] = \d+ is not a node id.*num_nodes"):
        molecule_tokenizer.encode(graph)
    graph.edge_index[1, 3] = -1
    with pytest.raises(GraphInputError, match=r"edge_index\[1, 3\] = -1 is not a node id"):
        molecule_tokenizer.encode(graph)


def test_asymmetric_edge_index_without_directed_flag_is_an_error(fuzz_tokenizer) -> None:
    graph = Data(edge_index=torch.tensor([[0, 1, 1], [1, 0, 2]]), num_nodes=3, domain="alpha")
    with pytest.raises(GraphInputError, match=r"not symmetric.*edge \(1, 2\) appears 1 time\(s\) but its reverse "
                                              r"\(2, 1\) 0 time\(s\).*data.directed = True"):
        fuzz_tokenizer.encode(graph)
    mismatched = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), edge_attr=torch.tensor([[1, 2], [1, 3]]),
                      num_nodes=2, domain="alpha")
    with pytest.raises(GraphInputError, match=r"edge \(0, 1\) with edge attributes \[1.0, 2.0\] appears 1"):
        fuzz_tokenizer.encode(mismatched)


def test_unseen_attribute_values_error_or_count_as_unk(molecule_tokenizer, molecules, caplog) -> None:
    graph = molecules[0].clone()
    graph.x = graph.x.clone()
    graph.x[2, 0] = 118  # oganesson: not in the training molecules
    with pytest.raises(UnknownValueError, match=r"x\[2, 0\] = 118 \(node 2\) was not seen.*domain 'molecules'.*unknown='unk'"):
        molecule_tokenizer.encode(graph)
    before = molecule_tokenizer.unknown_value_count
    with caplog.at_level(logging.WARNING, logger="gfm.tokenization.eulerian"):
        tokens = molecule_tokenizer.encode(graph, unknown="unk", return_node_order=True)
    assert molecule_tokenizer.unknown_value_count == before + 1
    assert "1 categorical attribute value(s) unseen in training were written as <unk>" in caplog.text
    assert molecule_tokenizer.unk_token_id in tokens.input_ids.tolist()
    decoded = molecule_tokenizer.decode(tokens, unk_value=-1)
    assert decoded.x[tokens.metadata["node_order"].index(2), 0] == -1


def test_unseen_layout_or_domain_is_named(molecule_tokenizer, molecules) -> None:
    graph = molecules[0].clone()
    graph.domain = "proteins"
    with pytest.raises(UnknownValueError, match=r"was not seen when the vocabulary was trained; the vocabulary has no "
                                                r"domain 'proteins'"):
        molecule_tokenizer.encode(graph)
    graph = molecules[0].clone()
    graph.x = graph.x[:, :5]
    with pytest.raises(UnknownValueError, match=r"layout <graph:molecules\|x=int64\[5\]\|edge_attr=int64\[3\]> was not "
                                                r"seen.*known layouts for domain 'molecules'"):
        molecule_tokenizer.encode(graph)


def test_nan_and_infinite_attributes_are_named(fuzz_tokenizer) -> None:
    x = torch.tensor([[0.5, float("nan")], [1.0, 2.0]])
    graph = Data(x=x, edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, domain="alpha")
    with pytest.raises(GraphInputError, match=r"x\[0, 1\] is nan \(node 0\).*must be finite"):
        fuzz_tokenizer.encode(graph)
    graph.x = torch.tensor([[0.5, 1.0], [float("inf"), 2.0]])
    with pytest.raises(GraphInputError, match=r"x\[1, 0\] is inf"):
        fuzz_tokenizer.encode(graph)
    graph.x = torch.tensor([[0.5, 1.0], [1e30, 2.0]])
    with pytest.raises(GraphInputError, match=r"too large to encode with continuous_decimals=3"):
        fuzz_tokenizer.encode(graph)


def test_malformed_fields_are_named(fuzz_tokenizer) -> None:
    with pytest.raises(GraphInputError, match=r"field 'x' has 3 rows but the graph has 2 nodes"):
        fuzz_tokenizer.encode(Data(x=torch.zeros(3, 2, dtype=torch.long), num_nodes=2, domain="alpha",
                                   edge_index=torch.zeros(2, 0, dtype=torch.long)))
    with pytest.raises(GraphInputError, match=r"num_nodes is not set.*set data.num_nodes explicitly"):
        fuzz_tokenizer.encode(Data(edge_index=torch.tensor([[0], [0]]), domain="alpha"))
    with pytest.raises(GraphInputError, match=r"edge_index has dtype torch.float32"):
        fuzz_tokenizer.encode(Data(edge_index=torch.zeros(2, 1), num_nodes=1, domain="alpha"))
    with pytest.raises(GraphInputError, match=r"takes torch_geometric.data.Data"):
        fuzz_tokenizer.encode({"edge_index": torch.zeros(2, 0)})


def test_malformed_sequences_name_position_and_reason(molecules, molecule_tokenizer) -> None:
    tok = molecule_tokenizer
    ids = tok.encode(molecules[5]).input_ids.tolist()
    with pytest.raises(EulerianDecodeError, match=r"position 1: expected a graph schema token"):
        tok.decode([tok.bos_token_id, tok.eos_token_id])
    with pytest.raises(EulerianDecodeError, match=r"position \d+: the sequence ends inside molecules/x\[\d\]"):
        tok.decode(ids[:5])
    with pytest.raises(EulerianDecodeError, match=r"position 2: expected a value of molecules/x\[0\], got '<dup>'"):
        tok.decode(ids[:2] + [tok.duplicate_token_id] + ids[2:])
    with pytest.raises(EulerianDecodeError, match=r"position 99999999|outside the vocabulary"):
        tok.decode(ids + [tok.vocab_size + 5])
    with pytest.raises(EulerianDecodeError, match=r"position \d+: unexpected '<bos>' after the end of the walk"):
        tok.decode(ids + [tok.bos_token_id])
    index = tok.vocabulary.token_to_id["<i:7>"]
    # <bos> <graph> 9 atom tokens 3 bond tokens, then a revisit of a node not seen yet
    with pytest.raises(EulerianDecodeError, match=r"position 14: node index 7 refers to node 7, which is not visited"):
        tok.decode(ids[:14] + [index] + ids[14:])
    fwd = tok.vocabulary.token_to_id["<fwd>"]
    with pytest.raises(EulerianDecodeError, match=r"position 11: direction token in an undirected graph"):
        tok.decode(ids[:11] + [fwd] + ids[11:])
    # a <dup> step between two nodes with no real edge between them
    two = [tok.bos_token_id, ids[1]] + ids[2:11] + [tok.jump_token_id] + ids[2:11] + [tok.duplicate_token_id,
                                                                                    tok.vocabulary.token_to_id["<i:0>"],
                                                                                    tok.eos_token_id]
    with pytest.raises(EulerianDecodeError, match=r"<dup> step between nodes 1 and 0, but the sequence has no real edge"):
        tok.decode(two)


def test_loading_merges_that_do_not_match_is_an_error(tmp_path, molecules) -> None:
    small = EulerianTokenizer.train(molecules[:100], merges="bpe", num_merges=50, max_piece_length=16)
    other = EulerianTokenizer.train(molecules[100:200], merges="bpe", num_merges=60, max_piece_length=16)
    first, second = small.save_pretrained(tmp_path / "a"), other.save_pretrained(tmp_path / "b")
    assert sorted(p.name for p in first.iterdir()) == [MERGES_FILE, VOCAB_FILE, "tokenizer_config.json"]
    (first / MERGES_FILE).write_bytes((second / MERGES_FILE).read_bytes())
    with pytest.raises(TokenizerLoadError, match=r"merges model does not match the vocabulary|outside the base vocabulary"):
        EulerianTokenizer.from_pretrained(first)
    os.remove(first / MERGES_FILE)
    with pytest.raises(TokenizerLoadError, match=r"declares learned merges but eulerian_merges.model is missing"):
        EulerianTokenizer.from_pretrained(first)
    plain = EulerianTokenizer.train(molecules[:100]).save_pretrained(tmp_path / "plain")
    (plain / MERGES_FILE).write_bytes((second / MERGES_FILE).read_bytes())
    with pytest.raises(TokenizerLoadError, match=r"records no merges: the merges do not match this vocabulary"):
        EulerianTokenizer.from_pretrained(plain)
    (plain / MERGES_FILE).unlink()
    vocab = json.loads((plain / VOCAB_FILE).read_text())
    vocab["tokens"][20] = "<edited>"
    (plain / VOCAB_FILE).write_text(json.dumps(vocab))
    with pytest.raises(TokenizerLoadError, match=r"stored token list does not match"):
        EulerianTokenizer.from_pretrained(plain)


def test_molecule_like_generator_shape() -> None:
    for graph in molecule_like_graphs(20, seed=1):
        degree = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
        assert 20 <= graph.num_nodes <= 30 and int(degree.max()) <= 4
        cycles = graph.edge_index.shape[1] // 2 - graph.num_nodes + 1
        assert 1 <= cycles <= 3


def test_fields_outside_the_token_stream_are_reported_once(fuzz_tokenizer, caplog) -> None:
    graph = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, domain="alpha", pos=torch.zeros(2, 3))
    tokenizer = EulerianTokenizer(fuzz_tokenizer.vocabulary)
    with caplog.at_level(logging.WARNING, logger="gfm.tokenization.eulerian.graphs"):
        tokenizer.encode_batch([graph, graph, graph])
    assert caplog.text.count("field 'pos' is not part of the token stream") == 1


def test_per_graph_seeds_accept_arrays(fuzz_tokenizer) -> None:
    graphs = [random_graph(np.random.default_rng(i), max_nodes=8) for i in range(6)]
    seeds = np.arange(6) * 1000 + 7
    from_array = fuzz_tokenizer.encode_batch(graphs, seed=seeds)
    one_by_one = [fuzz_tokenizer.encode(g, seed=int(s)) for g, s in zip(graphs, seeds)]
    assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(from_array, one_by_one))


def test_declared_molecule_values_remove_unk_for_other_datasets() -> None:
    """A tokenizer trained on three small molecules writes selenium, charges and triple bonds exactly."""
    from gfm.data.molecules import featurize_smiles, molecule_feature_values, molecules_to_graphs

    train, *_ = molecules_to_graphs(["CCO", "c1ccccc1O", "CC(=O)N"])
    unseen, *_ = molecules_to_graphs(["C[Se]C(=O)[O-]", "C[N+](C)(C)C#N", "[2H]C([2H])Cl"])
    declared = molecule_feature_values()
    plain = EulerianTokenizer.train(train)
    full = EulerianTokenizer.train(train, declared_values={**declared, ("social", "x"): [[1, 2, 3]]})
    with pytest.raises(UnknownValueError, match="was not seen when the vocabulary was trained"):
        plain.encode(unseen[0])
    for graph in unseen:
        tokens = full.encode(graph, return_node_order=True)
        assert full.unk_token_id not in tokens.input_ids.tolist()
        decoded = full.decode(tokens)
        order = torch.tensor(tokens.metadata["node_order"])
        assert torch.equal(decoded.x, graph.x[order])
        assert graph_difference(graph, decoded, order.tolist(), 0.0, "generic") is None
    # exactly the declared values were added, and nothing for a domain the corpus lacks
    added = len(full.vocabulary) - len(plain.vocabulary)
    seen = featurize_smiles(["CCO", "c1ccccc1O", "CC(=O)N"])
    expected = sum(
        len(set(columns[c]) - set(np.unique(table[:, c]).tolist()))
        for columns, table in ((declared[("molecules", "x")], seen.x), (declared[("molecules", "edge_attr")], seen.edge_attr))
        for c in range(len(columns))
    )
    assert added == expected > 150
    assert not any("social" in token for token in full.vocabulary.tokens)
