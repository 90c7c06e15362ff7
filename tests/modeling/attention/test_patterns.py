"""Attention patterns: the vectorized builder equals a slow per-sample reference, and bad input fails clearly."""

from __future__ import annotations

import itertools

import pytest
import torch

from gfm.modeling.attention import AttentionPatternError, PatternOptions, build_attention_pattern
from gfm.modeling.attention.patterns import _hash31
from gfm.testing.modeling import random_tokenized_graph
from gfm.tokenization import TokenizedGraph, collate_tokenized_graphs, pack_tokenized_graphs


def random_samples(count: int, seed: int, max_length: int = 23, num_nodes: int = 6) -> list[TokenizedGraph]:
    """``count`` random sequences of 1 to ``max_length`` tokens with 0 to ``2 * length`` token edges."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(count):
        length = int(torch.randint(1, max_length + 1, (1,), generator=generator))
        num_edges = int(torch.randint(0, 2 * length + 1, (1,), generator=generator))
        samples.append(random_tokenized_graph(generator, length, num_nodes, num_edges=num_edges))
    return samples


def random_batch(seed: int, packed: bool, count: int = 5) -> dict:
    samples = random_samples(count, seed)
    if packed:
        return pack_tokenized_graphs(samples, token_budget=max(len(s) for s in samples) + 7)
    return collate_tokenized_graphs(samples, pad_to_multiple_of=8)


def expander_reference(length: int, degree: int, seed: int) -> set[tuple[int, int]]:
    """Local (query, key) expander links of one sample, one cycle at a time (slow and plain)."""
    links = set()
    for cycle in range(degree // 2):
        salt = int(_hash31(torch.tensor([seed * 1_000_003 + cycle]))[0])
        hashes = [
            int(_hash31(_hash31(torch.tensor([offset + salt])) ^ _hash31(torch.tensor([length + salt])))[0])
            for offset in range(length)
        ]
        order = sorted(range(length), key=lambda offset: (hashes[offset], offset))
        for i, position in enumerate(order):
            successor = order[(i + 1) % length]
            if successor != position:
                links |= {(position, successor), (successor, position)}
    return links


def reference_links(batch: dict, options: PatternOptions, causal: bool) -> dict[tuple[int, int], int]:
    """Every (query, key) link with its type, from Python loops over samples and positions."""
    types = options.link_types
    sequence = batch["sequence_ids"].reshape(-1).tolist()
    node = batch["node_index"].reshape(-1).tolist()
    links: dict[tuple[int, int], int] = {}

    def add(query: int, key: int, link_type: int) -> None:
        if causal and key > query:
            return
        links[(query, key)] = min(links.get((query, key), 10**9), link_type)

    for sample in sorted(set(sequence) - {-1}):
        positions = [p for p, s in enumerate(sequence) if s == sample]
        length = len(positions)
        for i, p in enumerate(positions):
            if options.self_links:
                add(p, p, types.plain)
            for j, other in enumerate(positions):
                if options.window and abs(i - j) <= options.window // 2:
                    add(p, other, types.plain)
                if i < options.num_global_tokens:
                    add(p, other, types.global_token)
                    add(other, p, types.global_token)
                if options.same_node and i != j and node[p] >= 0 and node[p] == node[other]:
                    add(p, other, types.same_node)
        if options.expander_degree:
            for a, b in expander_reference(length, options.expander_degree, options.expander_seed):
                add(positions[a], positions[b], types.expander)
    if options.graph_edges:
        src, dst = batch["graph_edge_index"].tolist()
        for s, d, t in zip(src, dst, batch["graph_edge_type"].tolist()):
            add(d, s, t)
    return links


OPTION_CASES = [
    PatternOptions(num_edge_types=3),
    PatternOptions(num_edge_types=3, expander_degree=4, num_global_tokens=1),
    PatternOptions(num_edge_types=3, window=6, num_global_tokens=2, same_node=False, graph_edges=False),
    PatternOptions(num_edge_types=3, expander_degree=2, window=4, num_global_tokens=3, self_links=False, expander_seed=7),
]


@pytest.mark.parametrize("case", range(len(OPTION_CASES)))
@pytest.mark.parametrize("packed, causal", list(itertools.product([False, True], [False, True])))
def test_builder_equals_per_sample_reference(case: int, packed: bool, causal: bool) -> None:
    options = OPTION_CASES[case]
    for seed in range(3):
        batch = random_batch(seed + 10 * case, packed)
        pattern = build_attention_pattern(
            batch["sequence_ids"],
            options,
            node_index=batch["node_index"],
            graph_edge_index=batch["graph_edge_index"],
            graph_edge_type=batch["graph_edge_type"],
            causal=causal,
        )
        query, key, link_type = pattern.links()
        got = {(q, k): t for q, k, t in zip(query.tolist(), key.tolist(), link_type.tolist())}
        assert len(got) == query.numel(), "duplicate links"
        assert got == reference_links(batch, options, causal)
        pairs = query * pattern.num_positions + key
        assert torch.equal(pairs, torch.sort(pairs).values), "links must be sorted by (query, key)"
        csr = pattern.csr()
        assert int(csr.row_pointer[-1]) == query.numel()
        flat_sequence = batch["sequence_ids"].reshape(-1)
        assert torch.equal(flat_sequence[query], flat_sequence[key]), "a link crosses samples"
        assert bool((flat_sequence[query] >= 0).all()), "padding must have no links"


def test_expander_depends_only_on_seed_and_length_and_is_connected() -> None:
    options = PatternOptions(num_edge_types=1, expander_degree=4, same_node=False, self_links=False, graph_edges=False)
    samples = random_samples(6, seed=3, max_length=40)
    lengths = [len(s) for s in samples]

    def local_links(batch: dict, sample: int) -> set[tuple[int, int]]:
        pattern = build_attention_pattern(batch["sequence_ids"], options)
        flat_sequence = batch["sequence_ids"].reshape(-1)
        positions = (flat_sequence == sample).nonzero().squeeze(1)
        local = {int(p): i for i, p in enumerate(positions)}
        query, key, _ = pattern.links()
        return {(local[q], local[k]) for q, k in zip(query.tolist(), key.tolist()) if q in local}

    padded = collate_tokenized_graphs(samples)
    packed = pack_tokenized_graphs(list(reversed(samples)), token_budget=64)
    for i, length in enumerate(lengths):
        links = local_links(padded, i)
        assert links == local_links(packed, len(samples) - 1 - i)  # same sample, other batch and place
        degree = torch.bincount(torch.tensor([q for q, _ in links] or [0]), minlength=length)
        assert int(degree.max()) <= 4
        if length >= 3:
            reached, frontier = {0}, [0]  # a random Hamiltonian cycle makes it connected
            while frontier:
                current = frontier.pop()
                for q, k in links:
                    if q == current and k not in reached:
                        reached.add(k)
                        frontier.append(k)
            assert reached == set(range(length))
    other_seed = PatternOptions(num_edge_types=1, expander_degree=4, expander_seed=1, graph_edges=False)
    a = build_attention_pattern(padded["sequence_ids"], options).explicit_key
    b = build_attention_pattern(padded["sequence_ids"], other_seed).explicit_key
    assert not torch.equal(a, b), "the seed must change the expander"


def test_bad_structure_fails_with_named_errors() -> None:
    batch = random_batch(0, packed=True)
    options = PatternOptions(num_edge_types=3)
    sequence_ids = batch["sequence_ids"]
    num_positions = sequence_ids.numel()
    with pytest.raises(AttentionPatternError, match=r"graph_edge_index\[:, 0\].*out of range.*flat positions"):
        build_attention_pattern(sequence_ids, options, graph_edge_index=torch.tensor([[num_positions], [0]]))
    with pytest.raises(AttentionPatternError, match="out of range"):
        build_attention_pattern(sequence_ids, options, graph_edge_index=torch.tensor([[-1], [0]]))
    first, second = (sequence_ids.reshape(-1) == 0).nonzero()[0, 0], (sequence_ids.reshape(-1) == 1).nonzero()[0, 0]
    with pytest.raises(AttentionPatternError, match="joins two different samples"):
        build_attention_pattern(sequence_ids, options, graph_edge_index=torch.tensor([[first], [second]]))
    padding = (sequence_ids.reshape(-1) == -1).nonzero()
    if padding.numel():
        with pytest.raises(AttentionPatternError, match="touches a padding position"):
            build_attention_pattern(sequence_ids, options, graph_edge_index=torch.tensor([[first], [padding[0, 0]]]))
    with pytest.raises(AttentionPatternError, match=r"num_edge_types=3; raise config.num_edge_types"):
        build_attention_pattern(
            sequence_ids, options, graph_edge_index=torch.tensor([[first], [first]]), graph_edge_type=torch.tensor([3])
        )
    with pytest.raises(AttentionPatternError, match=r"graph_edge_type has shape"):
        build_attention_pattern(
            sequence_ids, options, graph_edge_index=torch.tensor([[first], [first]]), graph_edge_type=torch.tensor([0, 1])
        )
    split = torch.tensor([[0, 0, 1, 0]])
    with pytest.raises(AttentionPatternError, match="sample 0 .* more than one contiguous span"):
        build_attention_pattern(split, options)
    with pytest.raises(AttentionPatternError, match="expander_degree must be a non-negative even"):
        PatternOptions(expander_degree=3)
