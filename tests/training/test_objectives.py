"""Objectives: vectorized label/mask builders equal plain-loop references on random and hand-built batches."""

from __future__ import annotations

import math

import pytest
import torch

from gfm.testing.training import NUM_SPECIAL, make_graph
from gfm.tokenization.tokenized_graph import TokenizedGraph, pack_tokenized_graphs
from gfm.training.objectives import (
    IGNORE_INDEX,
    build_objective_batches,
    code_cross_entropy,
    level_token_ranges,
    mask_ratios,
    masked_code_batch,
    masked_token_batch,
    next_token_labels,
    per_sample_uniforms,
    position_in_sample,
    sample_key,
    select_masked_units,
    token_cross_entropy,
)

SPECIAL = list(range(NUM_SPECIAL))


# ---------------------------------------------------------------------------------------------
# slow, obviously correct references
# ---------------------------------------------------------------------------------------------
def reference_next_token_labels(input_ids: torch.Tensor, sequence_ids: torch.Tensor) -> torch.Tensor:
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    rows, columns = input_ids.shape
    for b in range(rows):
        for t in range(columns - 1):
            if sequence_ids[b, t] >= 0 and sequence_ids[b, t] == sequence_ids[b, t + 1]:
                labels[b, t] = input_ids[b, t + 1]
    return labels


def reference_select(sequence_ids, node_index, maskable, position_noise, ratios) -> torch.Tensor:
    rows, columns = sequence_ids.shape
    units: dict[int, dict[tuple, list[int]]] = {}
    for b in range(rows):
        for t in range(columns):
            sid = int(sequence_ids[b, t])
            if sid < 0 or not bool(maskable[b, t]):
                continue
            flat = b * columns + t
            node = int(node_index[b, t])
            key = (0, node) if node >= 0 else (1, flat)
            units.setdefault(sid, {}).setdefault(key, []).append(flat)
    mask = torch.zeros(rows * columns, dtype=torch.bool)
    for sid, sample_units in units.items():
        scored = sorted((float(position_noise.view(-1)[min(p)]), key) for key, p in sample_units.items())
        n = len(scored)
        k = min(n, max(1, math.ceil(float(ratios[sid]) * n)))
        for _, key in scored[:k]:
            for p in sample_units[key]:
                mask[p] = True
    return mask.view(rows, columns)


def random_graph(rng: torch.Generator, quantized: bool = False) -> TokenizedGraph:
    length = int(torch.randint(1, 20, (1,), generator=rng))
    num_nodes = int(torch.randint(1, 6, (1,), generator=rng))
    ids = torch.randint(0, NUM_SPECIAL + 20, (length,), generator=rng)
    nodes = torch.randint(-1, num_nodes, (length,), generator=rng)
    levels = torch.where(nodes >= 0, torch.randint(0, 3, (length,), generator=rng), -1) if quantized else None
    return TokenizedGraph(input_ids=ids, node_index=nodes, edge_index=torch.zeros(2, 0), num_nodes=num_nodes,
                          level_ids=levels, domain="random")


def random_batch(seed: int, quantized: bool = False, budget: int = 24) -> tuple[dict, list[int]]:
    rng = torch.Generator().manual_seed(seed)
    graphs = [random_graph(rng, quantized) for _ in range(int(torch.randint(1, 9, (1,), generator=rng)))]
    batch = pack_tokenized_graphs(graphs, token_budget=budget)
    keys = [sample_key(seed, 0, i) for i in range(len(graphs))]
    return batch, keys


def walk_batch(seed: int, quantized: bool = False) -> tuple[dict, list[int], list[TokenizedGraph]]:
    """Hand-built graph walks (nodes revisited, node-less tokens), packed several per row."""
    rng = torch.Generator().manual_seed(seed)
    graphs = [make_graph(rng, "d", style=1 + i % 3, quantized=quantized) for i in range(7)]
    batch = pack_tokenized_graphs(graphs, token_budget=64)
    keys = [sample_key(seed, 2, 100 + i) for i in range(len(graphs))]
    return batch, keys, graphs


# ---------------------------------------------------------------------------------------------
# next-token
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_next_token_labels_equal_reference_on_random_packings(seed: int) -> None:
    batch, _ = random_batch(seed)
    expected = reference_next_token_labels(batch["input_ids"], batch["sequence_ids"])
    assert torch.equal(next_token_labels(batch["input_ids"], batch["sequence_ids"]), expected)


def test_next_token_labels_never_cross_packed_samples() -> None:
    batch, _, graphs = walk_batch(5)
    labels = next_token_labels(batch["input_ids"], batch["sequence_ids"])
    assert torch.equal(labels, reference_next_token_labels(batch["input_ids"], batch["sequence_ids"]))
    # every graph contributes exactly len - 1 targets: its last token predicts nothing
    for i, graph in enumerate(graphs):
        assert int(((batch["sequence_ids"] == i) & (labels != IGNORE_INDEX)).sum()) == len(graph) - 1
    assert int((labels != IGNORE_INDEX).sum()) == sum(len(g) - 1 for g in graphs)


# ---------------------------------------------------------------------------------------------
# per-graph random draws
# ---------------------------------------------------------------------------------------------
def test_position_in_sample_restarts_per_graph() -> None:
    batch, _, graphs = walk_batch(1)
    offsets = position_in_sample(batch["sequence_ids"])
    for i, graph in enumerate(graphs):
        assert torch.equal(offsets[batch["sequence_ids"] == i], torch.arange(len(graph)))
    assert bool((offsets[batch["sequence_ids"] < 0] == -1).all())


def test_masks_do_not_depend_on_packing_neighbours() -> None:
    """A graph gets the same mask alone in its batch as packed among others (what makes 1 == 2 processes)."""
    rng = torch.Generator().manual_seed(0)
    graphs = [make_graph(rng, "d", style=2) for _ in range(6)]
    keys = [sample_key(9, 4, 50 + i) for i in range(6)]
    together = pack_tokenized_graphs(graphs, token_budget=80)
    masked_together = masked_token_batch(together, keys, 3, SPECIAL)
    for i, graph in enumerate(graphs):
        alone = pack_tokenized_graphs([graph], token_budget=80)
        masked_alone = masked_token_batch(alone, [keys[i]], 3, SPECIAL)
        here = together["sequence_ids"] == i
        assert torch.equal(masked_together.labels[here], masked_alone.labels[alone["sequence_ids"] == 0])


def test_uniforms_are_deterministic_and_key_dependent() -> None:
    batch, keys = random_batch(3)
    a = per_sample_uniforms(batch["sequence_ids"], keys, salt=1)
    b = per_sample_uniforms(batch["sequence_ids"], keys, salt=1)
    c = per_sample_uniforms(batch["sequence_ids"], [k + 1 for k in keys], salt=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


# ---------------------------------------------------------------------------------------------
# masked-token / masked-code selection
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(60))
def test_select_masked_units_equals_reference_on_random_inputs(seed: int) -> None:
    batch, keys = random_batch(seed)
    rng = torch.Generator().manual_seed(1000 + seed)
    maskable = (batch["attention_mask"] > 0) & (torch.rand(batch["input_ids"].shape, generator=rng) < 0.8)
    noise, sample_noise = per_sample_uniforms(batch["sequence_ids"], keys, salt=seed)
    if seed % 5 == 0:  # ties: every score equal, the key order must decide
        noise = torch.zeros_like(noise)
    ratios = mask_ratios(sample_noise, ("constant", "uniform", "cosine")[seed % 3], 0.1, 0.7)
    got = select_masked_units(batch["sequence_ids"], batch["node_index"], maskable, noise, ratios)
    assert torch.equal(got, reference_select(batch["sequence_ids"], batch["node_index"], maskable, noise, ratios))


@pytest.mark.parametrize("seed", range(10))
def test_masked_token_masks_whole_nodes_and_matches_reference(seed: int) -> None:
    batch, keys, _ = walk_batch(seed)
    out = masked_token_batch(batch, keys, mask_token_id=3, special_token_ids=SPECIAL, schedule="cosine")
    masked = out.labels != IGNORE_INDEX
    noise, sample_noise = per_sample_uniforms(batch["sequence_ids"], keys, salt=0x6D61736B)
    maskable = (batch["attention_mask"] > 0) & ~torch.isin(batch["input_ids"], torch.tensor(SPECIAL))
    expected = reference_select(batch["sequence_ids"], batch["node_index"], maskable, noise,
                                mask_ratios(sample_noise, "cosine", 0.15, 0.5))
    assert torch.equal(masked, expected)
    # every occurrence of a masked node is masked
    for sid, node in {(int(s), int(n)) for s, n in zip(batch["sequence_ids"][masked], batch["node_index"][masked]) if n >= 0}:
        occurrences = (batch["sequence_ids"] == sid) & (batch["node_index"] == node)
        assert bool(masked[occurrences].all())
    # inputs replaced by <mask> exactly where labels are set; labels hold the original ids
    assert torch.equal(out.inputs["input_ids"][masked], torch.full((int(masked.sum()),), 3))
    assert torch.equal(out.labels[masked], batch["input_ids"][masked])
    assert torch.equal(out.inputs["input_ids"][~masked], batch["input_ids"][~masked])
    assert not bool(torch.isin(batch["input_ids"][masked], torch.tensor(SPECIAL)).any())
    assert out.causal is False


def test_masked_token_ratio_respected_per_graph() -> None:
    batch, keys, graphs = walk_batch(2)
    out = masked_token_batch(batch, keys, 3, SPECIAL, schedule="constant", ratio_min=0.5, ratio_max=0.5)
    masked = out.labels != IGNORE_INDEX
    for i, graph in enumerate(graphs):
        nodes = {int(n) for n in graph.node_index if n >= 0}
        singles = int(((graph.node_index < 0) & ~torch.isin(graph.input_ids, torch.tensor(SPECIAL))).sum())
        units = len(nodes) + singles
        here = batch["sequence_ids"] == i
        masked_nodes = {int(n) for n in batch["node_index"][here & masked] if n >= 0}
        masked_singles = int((here & masked & (batch["node_index"] < 0)).sum())
        assert len(masked_nodes) + masked_singles == math.ceil(0.5 * units)


@pytest.mark.parametrize("seed", range(10))
def test_masked_code_masks_only_code_tokens_of_whole_nodes(seed: int) -> None:
    batch, keys, _ = walk_batch(seed, quantized=True)
    out = masked_code_batch(batch, keys, mask_token_id=3, schedule="uniform")
    masked = out.labels != IGNORE_INDEX
    assert bool((batch["level_ids"][masked] >= 0).all())
    noise, sample_noise = per_sample_uniforms(batch["sequence_ids"], keys, salt=0x636F6465)
    maskable = (batch["attention_mask"] > 0) & (batch["level_ids"] >= 0)
    expected = reference_select(batch["sequence_ids"], batch["node_index"], maskable, noise,
                                mask_ratios(sample_noise, "uniform", 0.15, 0.5))
    assert torch.equal(masked, expected)
    for sid, node in {(int(s), int(n)) for s, n in zip(batch["sequence_ids"][masked], batch["node_index"][masked])}:
        codes = (batch["sequence_ids"] == sid) & (batch["node_index"] == node) & (batch["level_ids"] >= 0)
        assert bool(masked[codes].all()), "every level of a masked node must be masked"


def test_masked_code_without_level_ids_is_a_named_error() -> None:
    batch, keys, _ = walk_batch(0)
    with pytest.raises(ValueError, match="masked_code needs quantized tokens"):
        masked_code_batch(batch, keys, 3)


def test_mask_ratio_schedules() -> None:
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.equal(mask_ratios(u, "constant", 0.1, 0.4), torch.full_like(u, 0.4))
    assert torch.allclose(mask_ratios(u, "uniform", 0.1, 0.4), 0.1 + 0.3 * u)
    cosine = mask_ratios(u, "cosine", 0.1, 0.4)
    assert torch.allclose(cosine, 0.1 + 0.3 * torch.cos(u * math.pi / 2))
    assert float(cosine.min()) >= 0.1 - 1e-12 and float(cosine.max()) <= 0.4 + 1e-12
    with pytest.raises(ValueError, match="unknown mask schedule"):
        mask_ratios(u, "zigzag", 0.1, 0.4)


def test_build_objective_batches_order_and_cross_entropy() -> None:
    batch, keys, _ = walk_batch(4)
    out = build_objective_batches(batch, keys, {"masked_token": 0.5, "next_token": 1.0}, 3, SPECIAL, "cosine", 0.2, 0.6)
    assert [o.name for o in out] == ["masked_token", "next_token"]
    assert [o.causal for o in out] == [False, True]
    logits = torch.randn(*batch["input_ids"].shape, NUM_SPECIAL + 25, generator=torch.Generator().manual_seed(0))
    losses = token_cross_entropy(logits, out[1].labels)
    valid = out[1].labels != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(logits[valid], out[1].labels[valid], reduction="none")
    assert torch.allclose(losses[valid], expected)
    assert bool((losses[~valid] == 0).all())


def test_code_cross_entropy_predicts_each_level_among_its_own_codes() -> None:
    generator = torch.Generator().manual_seed(0)
    ranges = [(7, 11), (11, 15), (15, 19)]  # 3 levels x 4 codes after 7 special tokens
    logits = torch.randn(2, 6, 19, generator=generator)
    level_ids = torch.tensor([[0, 1, 2, -1, 0, 1], [2, 1, 0, 0, -1, -1]])
    labels = torch.full((2, 6), IGNORE_INDEX)
    for b in range(2):
        for t in range(6):
            level = int(level_ids[b, t])
            if level >= 0 and (b + t) % 2 == 0:
                labels[b, t] = ranges[level][0] + int(torch.randint(0, 4, (1,), generator=generator))
    losses = code_cross_entropy(logits, labels, level_ids, ranges)
    for b in range(2):
        for t in range(6):
            if labels[b, t] == IGNORE_INDEX:
                assert losses[b, t] == 0
                continue
            start, end = ranges[int(level_ids[b, t])]
            log_probs = torch.log_softmax(logits[b, t, start:end], dim=0)
            assert losses[b, t] == pytest.approx(-float(log_probs[int(labels[b, t]) - start]), rel=1e-6)
    bad = labels.clone()
    bad[0, 0] = 12  # a level-1 code at a level-0 position
    with pytest.raises(ValueError, match="level-0 label is not a level-0 code id"):
        code_cross_entropy(logits, bad, level_ids, ranges)


def test_level_token_ranges_follow_the_tokenizer_layout() -> None:
    class Quantized:
        class config:  # noqa: N801 - mimics QuantizedTokenizer.config
            codebook_size = 4

        @staticmethod
        def code_token_id(level: int, code: int) -> int:
            return 7 + level * 4 + code

    assert level_token_ranges(Quantized(), 3) == [(7, 11), (11, 15), (15, 19)]
    assert level_token_ranges(object(), 3) is None


# ---------------------------------------------------------------------------------------------
# real graphs: RDKit's packaged NCI molecules, Eulerian tokens with and without learned merges
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_batches() -> list[tuple[dict, list[int], list[int]]]:
    from pathlib import Path

    from rdkit import RDConfig
    from torch_geometric.utils import from_smiles

    from gfm.tokenization.eulerian import EulerianTokenizer

    lines = (Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi").read_text().splitlines()[:120]
    graphs = []
    for line in lines:
        graph = from_smiles(line.split()[0])
        graph.domain = "molecules"
        del graph.smiles
        graphs.append(graph)
    out = []
    for merges in (None, "bpe"):
        tokenizer = EulerianTokenizer.train(graphs, merges=merges, num_merges=200)
        special = sorted({getattr(tokenizer, n) for n in dir(type(tokenizer)) if n.endswith("_token_id")})
        sequences = tokenizer.encode_batch(graphs[:60])
        for start in range(0, 60, 30):
            chunk = sequences[start : start + 30]
            batch = pack_tokenized_graphs(chunk, token_budget=max(256, max(len(s) for s in chunk)))
            out.append((batch, [sample_key(1, 0, start + i) for i in range(len(chunk))], special + [tokenizer.mask_token_id]))
    return out


def test_vectorized_objectives_equal_references_on_real_tokenized_molecules(real_batches) -> None:
    for batch, keys, special in real_batches:
        assert torch.equal(next_token_labels(batch["input_ids"], batch["sequence_ids"]),
                           reference_next_token_labels(batch["input_ids"], batch["sequence_ids"]))
        out = masked_token_batch(batch, keys, mask_token_id=special[-1], special_token_ids=special, schedule="cosine")
        noise, sample_noise = per_sample_uniforms(batch["sequence_ids"], keys, salt=0x6D61736B)
        maskable = (batch["attention_mask"] > 0) & ~torch.isin(batch["input_ids"], torch.tensor(special))
        expected = reference_select(batch["sequence_ids"], batch["node_index"], maskable, noise,
                                    mask_ratios(sample_noise, "cosine", 0.15, 0.5))
        masked = out.labels != IGNORE_INDEX
        assert torch.equal(masked, expected)
        assert int(masked.sum()) > 0
        for sid, node in {(int(s), int(n)) for s, n in zip(batch["sequence_ids"][masked], batch["node_index"][masked]) if n >= 0}:
            same_node = (batch["sequence_ids"] == sid) & (batch["node_index"] == node) & maskable
            assert bool(masked[same_node].all()), "every occurrence of a masked atom is masked"
