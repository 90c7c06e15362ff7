"""The tokenized corpus and the batch plan: deterministic, packed exactly, mixture-weighted, world-size free."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gfm.testing.training import write_corpus
from gfm.tokenization.tokenized_graph import pack_tokenized_graphs
from gfm.training.data import (
    BatchPlan,
    TokenizedCorpus,
    build_micro_batch,
    eval_micro_batches,
    mixture_draw,
    pack_rows_first_fit,
)
from gfm.training.errors import CorpusError, MixtureWeightError, VocabularyMismatchError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> TokenizedCorpus:
    directory = write_corpus(tmp_path_factory.mktemp("corpus") / "c", graphs_per_domain=80, tokenizer_hash="h1")
    return TokenizedCorpus.load(directory, eval_fraction=0.1, eval_max_per_domain=6)


def reference_first_fit(lengths: list[int], budget: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r in range(len(rows)):
            if room[r] >= lengths[i]:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(budget - lengths[i])
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_first_fit_equals_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, size=int(rng.integers(1, 60)))
    assert pack_rows_first_fit(lengths, 32) == reference_first_fit(lengths.tolist(), 32)


def test_corpus_split_is_per_domain_disjoint_and_seed_free(corpus: TokenizedCorpus) -> None:
    assert corpus.domain_names == ["alpha", "beta", "gamma"]
    assert set(corpus.train_rows).isdisjoint(corpus.eval_rows)
    assert len(corpus.train_rows) + len(corpus.eval_rows) == len(corpus)
    summary = corpus.domain_summary()
    assert all(s["eval_graphs"] == 6 and s["train_graphs"] == 74 for s in summary.values())
    again = TokenizedCorpus(corpus.dataset, eval_fraction=0.1, eval_max_per_domain=6)
    assert np.array_equal(again.eval_rows, corpus.eval_rows)
    assert again.fingerprint() == corpus.fingerprint()


def test_plan_is_deterministic_and_covers_each_graph_once(corpus: TokenizedCorpus) -> None:
    plan = BatchPlan(corpus, row_length=48, global_batch_rows=4, seed=7, bucket_window=4)
    again = BatchPlan(corpus, row_length=48, global_batch_rows=4, seed=7, bucket_window=4)
    other_seed = BatchPlan(corpus, row_length=48, global_batch_rows=4, seed=8, bucket_window=4)
    assert plan.epoch(0) == again.epoch(0)
    assert plan.epoch(0) != other_seed.epoch(0)
    assert plan.epoch(0) != plan.epoch(1)
    seen = Counter(r for batch in plan.epoch(0) for row in batch.rows for r in row)
    assert max(seen.values()) == 1
    assert set(seen) <= set(corpus.train_rows.tolist())
    for batch in plan.epoch(0):
        assert len(batch.rows) == 4
        assert all(corpus.lengths[list(row)].sum() <= 48 for row in batch.rows)


def test_shards_partition_the_global_batch_for_any_world_size(corpus: TokenizedCorpus) -> None:
    plan = BatchPlan(corpus, row_length=48, global_batch_rows=8, seed=1)
    batch = plan.batch_at(0, 3)
    everything = sorted(r for row in batch.rows for r in row)
    for world_size, micro_rows in ((1, 8), (1, 2), (2, 2), (2, 4), (4, 2)):
        accumulation = 8 // (world_size * micro_rows)
        shards = [batch.shard(m, rank, world_size, micro_rows) for m in range(accumulation) for rank in range(world_size)]
        assert sorted(r for shard in shards for r in shard) == everything


def test_packing_a_shard_reproduces_the_planned_rows(corpus: TokenizedCorpus) -> None:
    plan = BatchPlan(corpus, row_length=48, global_batch_rows=8, seed=2)
    for batch in plan.epoch(0)[:10]:
        for shard_index in range(4):
            rows = batch.shard(shard_index, 0, 1, 2)
            packed, domains = build_micro_batch(corpus, rows, 48, pad_token_id=0)
            assert packed["input_ids"].shape == (2, 48)
            planned = batch.rows[2 * shard_index : 2 * shard_index + 2]
            for row_index, planned_row in enumerate(planned):
                sample_ids = packed["sequence_ids"][row_index]
                placed = [rows[int(s)] for s in sample_ids.unique() if s >= 0]
                assert sorted(placed) == sorted(planned_row)
            assert domains.tolist() == corpus.domains[rows].tolist()


def test_graphs_round_trip_from_the_arrow_cache(corpus: TokenizedCorpus, tmp_path: Path) -> None:
    graphs = corpus.graphs([0, 5, 9])
    assert [g.domain for g in graphs] == [corpus.domain_names[d] for d in corpus.domains[[0, 5, 9]]]
    assert [len(g) for g in graphs] == corpus.lengths[[0, 5, 9]].tolist()
    batch = pack_tokenized_graphs(graphs, token_budget=64)
    assert int(batch["attention_mask"].sum()) == sum(len(g) for g in graphs)


def test_mixture_draw_follows_weights_and_cycles_small_domains(corpus: TokenizedCorpus) -> None:
    rng = np.random.default_rng(0)
    drawn = mixture_draw(corpus.train_rows, corpus.domains, corpus.domain_names,
                         {"alpha": 3.0, "beta": 1.0, "gamma": 0.0}, 400, rng)
    counts = Counter(corpus.domain_names[d] for d in corpus.domains[drawn])
    assert counts == {"alpha": 300, "beta": 100}
    alpha = drawn[corpus.domains[drawn] == 0]
    # 300 draws from 74 graphs: every graph 4 or 5 times (full cycles before repeats)
    assert set(Counter(alpha.tolist()).values()) <= {4, 5}


def test_mixture_weight_for_unknown_domain_is_a_named_error(corpus: TokenizedCorpus) -> None:
    with pytest.raises(MixtureWeightError, match=r"domain\(s\) \['proteinz'\].*known domains: \['alpha', 'beta', 'gamma'\]"):
        BatchPlan(corpus, 48, 4, seed=0, mixture_weights={"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "proteinz": 2.0})
    with pytest.raises(MixtureWeightError, match=r"no weight for domain\(s\) \['gamma'\]"):
        BatchPlan(corpus, 48, 4, seed=0, mixture_weights={"alpha": 1.0, "beta": 1.0})


def test_mixture_plan_epoch_has_the_requested_shares(corpus: TokenizedCorpus) -> None:
    plan = BatchPlan(corpus, 48, 4, seed=0, mixture_weights={"alpha": 1.0, "beta": 0.0, "gamma": 1.0}, samples_per_epoch=300)
    rows = [r for batch in plan.epoch(0) for row in batch.rows for r in row]
    domains = Counter(corpus.domain_names[d] for d in corpus.domains[rows])
    assert "beta" not in domains
    assert abs(domains["alpha"] - domains["gamma"]) <= 30  # the last partial batch waits for the next epoch


def test_too_long_graphs_are_an_error_or_dropped_when_asked(corpus: TokenizedCorpus) -> None:
    with pytest.raises(CorpusError, match="longer than max_length=10.*never truncates"):
        BatchPlan(corpus, row_length=10, global_batch_rows=2, seed=0)
    plan = BatchPlan(corpus, row_length=12, global_batch_rows=2, seed=0, drop_long_sequences=True)
    assert all(corpus.lengths[r] <= 12 for batch in plan.epoch(0) for row in batch.rows for r in row)


def test_eval_batches_cover_every_held_back_graph(corpus: TokenizedCorpus) -> None:
    batches = eval_micro_batches(corpus, 48, micro_batch_rows=2)
    assert sorted(r for b in batches for r in b) == sorted(corpus.eval_rows.tolist())


def test_vocabulary_checks(corpus: TokenizedCorpus) -> None:
    corpus.check_vocabulary(vocab_size=corpus.max_token_id + 1, tokenizer_hash="h1")
    with pytest.raises(VocabularyMismatchError, match="holds token id .* re-tokenize"):
        corpus.check_vocabulary(vocab_size=corpus.max_token_id)
    with pytest.raises(VocabularyMismatchError, match="was tokenized by tokenizer h1"):
        corpus.check_vocabulary(vocab_size=1000, tokenizer_hash="other")


def test_missing_corpus_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist.*train_tokenizer"):
        TokenizedCorpus.load(tmp_path / "nowhere")
