"""Pretraining in bf16 (``mixed_precision: bf16``) loss-matches float32 over 100 steps, within the seed spread.

The real trainer (accelerate, one process, bfloat16 autocast on the CPU) trains the real
``GFMForPretraining`` (hidden 64, 2 layers, 4 heads, positions 256, no dropout) for 100 steps on
400 molecules of the packaged NCI set (RDKit's ``first_5K.smi``) tokenized by an
``EulerianTokenizer`` (molecules longer than 256 tokens left out), masked-token + next-token
objectives, 4 rows per step. The figure compared is the final loss: the mean train loss of the
last 10 steps.

Measured on an AMD EPYC (avx512_bf16), one thread: float32 seeds 3 / 4 / 5 / 6 end at 1.680 /
1.541 / 1.455 / 1.521 (standard deviation over seeds 3-5: 0.116; range 0.225); bf16 from seed 3
ends at 1.643, 0.037 from its float32 run. The tolerance, 0.08, lies above that and below the
seed spread, which the test measures again (seeds 3, 4, 5) and checks. About 30 s on one thread.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from gfm.testing.training import base_config, metric_by_step, reset_accelerate_state
from gfm.training import load_config, run_pretraining

TOLERANCE = 0.08  # |final loss bf16 - final loss fp32|, same seed
SEEDS = (3, 4, 5)  # float32 runs: the seed spread


@pytest.fixture(scope="module")
def molecule_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An Eulerian tokenizer trained on 400 packaged NCI molecules and their tokenized corpus."""
    from gfm.tokenization.eulerian import EulerianTokenizer
    from gfm.training.corpus import build_tokenized_corpus, corpus_graphs

    root = tmp_path_factory.mktemp("nci")
    graphs, _ = corpus_graphs("packaged/nci5k", None, 400, 0, 2, 8, 32)
    tokenizer = EulerianTokenizer.train(graphs, num_index_tokens=64)
    tokenizer_dir = root / "tokenizer"
    tokenizer.save_pretrained(tokenizer_dir)
    corpus = build_tokenized_corpus(["packaged/nci5k"], tokenizer, root / "cache", max_graphs_per_dataset=400)
    return tokenizer_dir, corpus


def _pretrain(root: Path, inputs: tuple[Path, Path], precision: str, seed: int) -> tuple[dict, dict[int, float]]:
    reset_accelerate_state()
    config = base_config(
        root, *inputs, model_type="gfm",
        model_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "max_position_embeddings": 256, "hidden_dropout": 0.0},
        max_length=256, drop_long_sequences=True, micro_batch_rows=4, global_batch_rows=4, max_steps=100,
        learning_rate=3e-3, warmup_steps=10, objectives={"masked_token": 1.0, "next_token": 0.5},
        mixed_precision=precision, seed=seed,
    )
    summary = run_pretraining(load_config(None, config))
    reset_accelerate_state()
    return summary, metric_by_step(root / "run")


def _final(losses: dict[int, float]) -> float:
    return statistics.mean(losses[step] for step in sorted(losses)[-10:])


def test_bf16_pretraining_loss_matches_fp32_within_the_seed_spread(tmp_path: Path, molecule_inputs) -> None:
    runs = {seed: _pretrain(tmp_path / f"fp32-{seed}", molecule_inputs, "no", seed) for seed in SEEDS}
    summary, mixed = _pretrain(tmp_path / "bf16", molecule_inputs, "bf16", SEEDS[0])
    assert summary["mixed_precision"] == "bf16" and runs[SEEDS[0]][0]["mixed_precision"] == "no"
    reference = runs[SEEDS[0]][1]
    assert sorted(mixed) == sorted(reference) == list(range(1, 101))
    # the first step: same weights and batch, only rounding differs (and it does: bf16 really ran)
    assert mixed[1] != reference[1] and mixed[1] == pytest.approx(reference[1], abs=1e-2)
    assert _final(reference) < reference[1] - 3  # both runs learn (first loss ~7.5)
    finals = [_final(losses) for _, losses in runs.values()]
    spread = statistics.stdev(finals)
    difference = abs(_final(mixed) - _final(reference))
    assert difference < TOLERANCE, (difference, finals)
    assert TOLERANCE < spread, (spread, finals)  # the tolerance is tighter than what a seed changes
