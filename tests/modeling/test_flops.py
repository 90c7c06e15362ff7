"""Model FLOPs of a training step (gfm.utils.flops, gfm.modeling.flops) and the measured matmul peak."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gfm.modeling import GFMConfig, GFMForPretraining
from gfm.modeling.attention import build_attention_pattern
from gfm.modeling.flops import gfm_gemm_shapes, gfm_training_flops, pattern_links
from gfm.utils.flops import (
    FlopCountError,
    GemmShape,
    causal_attention_links,
    linear_weights,
    measure_matmul_peak,
    model_flops_utilization,
    training_gemm_shapes,
    training_step_flops,
)

H, L, HEADS, INTER, V = 32, 2, 2, 64, 50  # a tiny config: hidden, layers, heads, SwiGLU width, vocabulary


def _gfm(**options) -> GFMForPretraining:
    torch.manual_seed(0)
    config = GFMConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=HEADS,
                       intermediate_size=INTER, **options)
    return GFMForPretraining(config)


def _llama(attn_implementation: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=HEADS,
                         num_key_value_heads=HEADS, intermediate_size=INTER, tie_word_embeddings=True, pad_token_id=0)
    torch.manual_seed(0)
    return LlamaForCausalLM._from_config(config, attn_implementation=attn_implementation)


def _linear_weight_count(model: nn.Module) -> int:
    """Weights of every nn.Linear, each tensor once (the tied LM head is the embedding's tensor)."""
    seen, total = set(), 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            total += module.weight.numel()
    return total


def test_linear_weights_equal_a_hand_count_and_the_models_linear_layers() -> None:
    # per layer: q, k, v, o = 4 * 32 * 32 = 4096; gate, up, down = 3 * 32 * 64 = 6144; LM head 32 * 50
    hand = 2 * (4096 + 6144) + 1600
    assert hand == 22080 == linear_weights(H, L, INTER, V)
    gfm = _gfm()
    assert gfm.lm_head.weight is gfm.model.embeddings.embed_tokens.weight  # tied, yet a real matmul: counted
    assert _linear_weight_count(gfm) == hand
    assert _linear_weight_count(_llama("sdpa")) == hand


def test_step_flops_by_hand_for_a_tiny_config() -> None:
    flops = training_step_flops(tokens=10, attention_links=37, hidden_size=H, num_layers=L, intermediate_size=INTER,
                                vocab_size=V)
    assert flops.linear == 6 * 22080 * 10
    assert flops.attention == 12 * 32 * 2 * 37  # 4 D per link and head forward, x3 with backward, per layer
    assert flops.total == flops.linear + flops.attention and flops.per_token == flops.total / 10
    with_features = training_step_flops(tokens=10, attention_links=37, hidden_size=H, num_layers=L,
                                        intermediate_size=INTER, vocab_size=V, input_projection_weights=7 * H)
    assert with_features.linear - flops.linear == 4 * 7 * H * 10  # forward + weight gradient, no input gradient


def test_linear_flops_equal_torch_flop_counter_for_gfm_and_llama() -> None:
    """FlopCounterMode counts every mm of a real forward + backward: it must equal 6 x weights x tokens."""
    T = 24
    ids = torch.randint(3, V, (1, T), generator=torch.Generator().manual_seed(0))
    expected = training_step_flops(tokens=T, attention_links=0, hidden_size=H, num_layers=L, intermediate_size=INTER,
                                   vocab_size=V)
    gfm = _gfm(attention_backend="csr")  # attention by gathers: no matmul for the counter to see
    with FlopCounterMode(display=False) as counter:
        gfm(input_ids=ids, labels=ids, causal=True).loss.backward()
    assert counter.get_total_flops() == expected.linear

    llama = _llama("eager")  # eager attention is two bmm over the full T x T square (masked afterwards)
    with FlopCounterMode(display=False) as counter:
        llama(input_ids=ids, labels=ids).loss.backward()
    full_square = 12 * H * L * T * T
    assert counter.get_total_flops() == expected.linear + full_square
    causal = training_step_flops(tokens=T, attention_links=causal_attention_links(T), hidden_size=H, num_layers=L,
                                 intermediate_size=INTER, vocab_size=V)
    assert causal.attention == full_square * (T + 1) // (2 * T)  # the causal half, diagonal included


def test_causal_links_are_the_lower_triangle() -> None:
    assert [causal_attention_links(t) for t in (1, 2, 3, 4096)] == [1, 3, 6, 4096 * 4097 // 2]
    assert causal_attention_links(4096) == int(torch.ones(4096, 4096).tril().sum())


def _path_pattern(config: GFMConfig, lengths: list[int], causal: bool):
    """Samples packed in one row (plus 2 padding positions), each a path: token i joined to i + 1."""
    row = sum(lengths) + 2
    sequence_ids = torch.full((1, row), -1)
    sources, targets, start = [], [], 0
    for sample, length in enumerate(lengths):
        sequence_ids[0, start:start + length] = sample
        sources += list(range(start, start + length - 1)) + list(range(start + 1, start + length))
        targets += list(range(start + 1, start + length)) + list(range(start, start + length - 1))
        start += length
    edges = torch.tensor([sources, targets])
    return build_attention_pattern(sequence_ids, config.pattern_options(), graph_edge_index=edges,
                                   graph_edge_type=torch.zeros(edges.shape[1], dtype=torch.long), causal=causal)


def test_gfm_attention_counts_the_patterns_links_not_the_square() -> None:
    config = _gfm(attention_expander_degree=0, attention_num_global_tokens=0, attention_same_node=False).config
    lengths = [7, 5]
    for causal, per_sample in ((False, lambda t: t + 2 * (t - 1)), (True, lambda t: t + (t - 1))):
        pattern = _path_pattern(config, lengths, causal)
        links = sum(per_sample(t) for t in lengths)  # self links + path edges (one direction when causal)
        assert pattern_links(pattern) == links
        flops = gfm_training_flops(config, pattern)
        assert flops.tokens == 12  # padding is not a token
        assert flops.attention == 12 * H * L * links
        assert flops.linear == 6 * linear_weights(H, L, INTER, V) * 12


def test_gfm_with_a_full_causal_window_counts_what_llama_counts() -> None:
    T = 16
    config = _gfm(attention_expander_degree=0, attention_num_global_tokens=0, attention_same_node=False,
                  attention_graph_edges=False, attention_window=2 * T).config
    pattern = build_attention_pattern(torch.zeros(1, T, dtype=torch.long), config.pattern_options(), causal=True)
    llama = training_step_flops(tokens=T, attention_links=causal_attention_links(T), hidden_size=H, num_layers=L,
                                intermediate_size=INTER, vocab_size=V)
    assert gfm_training_flops(config, pattern) == llama


def test_gemm_shapes_add_up_to_the_linear_flops() -> None:
    T = 40
    shapes = training_gemm_shapes(T, H, L, INTER, V)
    assert len(shapes) == 12 and {s.form for s in shapes} == {"forward", "input_grad", "weight_grad"}
    step = training_step_flops(tokens=T, attention_links=0, hidden_size=H, num_layers=L, intermediate_size=INTER,
                               vocab_size=V)
    assert sum(s.flops * s.count for s in shapes) == step.linear
    assert gfm_gemm_shapes(_gfm().config, T) == shapes
    lm_head = {s.form: (s.m, s.k, s.n) for s in shapes if s.name == "lm head"}
    assert lm_head == {"forward": (T, H, V), "input_grad": (T, V, H), "weight_grad": (V, T, H)}


def test_peak_arithmetic_with_a_fake_clock() -> None:
    """A clock that advances one unit per reading makes every timed batch last 1: rates = FLOPs per call."""
    ticks = iter(range(10**6))
    shapes = [GemmShape("a", "forward", 4, 8, 16, count=3), GemmShape("b", "weight_grad", 32, 8, 4, count=1),
              GemmShape("c", "input_grad", 2, 2, 2, count=5)]
    peak = measure_matmul_peak(shapes, clock=lambda: float(next(ticks)), repeats=3)
    assert [rate.flops_per_second for rate in peak.rates] == [2 * 4 * 8 * 16, 2 * 32 * 8 * 4, 2 * 2 * 2 * 2]
    assert peak.best == 2048 and peak.best_shape.name == "b"
    total = 1024 * 3 + 2048 + 16 * 5
    assert peak.weighted == pytest.approx(total / (3 + 1 + 5))  # each call "takes" one unit of time


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_measured_peak_is_positive_and_the_weighted_rate_lies_between_the_shapes(dtype) -> None:
    torch.set_num_threads(1)
    shapes = training_gemm_shapes(64, 32, 2, 64, 50)
    peak = measure_matmul_peak(shapes, dtype, repeats=2, min_seconds=0.002)
    rates = [rate.flops_per_second for rate in peak.rates]
    assert all(math.isfinite(rate) and rate > 0 for rate in rates)
    assert min(rates) <= peak.weighted <= max(rates) == peak.best
    assert peak.dtype == dtype and peak.threads == 1 and peak.device == "cpu"
    assert [rate.shape for rate in peak.rates] == shapes


def test_mfu_is_achieved_over_peak() -> None:
    assert model_flops_utilization(2.5e9, 1e10) == 0.25


def test_bad_inputs_name_the_field_and_the_fix() -> None:
    with pytest.raises(FlopCountError, match=r"hidden_size must be a positive integer, got 0; pass the model config's"):
        linear_weights(0, L, INTER, V)
    with pytest.raises(FlopCountError, match=r"attention_links must be a non-negative integer, got -1"):
        training_step_flops(tokens=4, attention_links=-1, hidden_size=H, num_layers=L, intermediate_size=INTER,
                            vocab_size=V)
    with pytest.raises(FlopCountError, match=r"tokens must be a positive integer, got 2.5"):
        training_step_flops(tokens=2.5, attention_links=1, hidden_size=H, num_layers=L, intermediate_size=INTER,
                            vocab_size=V)
    with pytest.raises(FlopCountError, match=r"input_projection_weights must be a non-negative integer, got -3; "
                                             r"pass node_feature_dim \* hidden_size"):
        training_step_flops(tokens=4, attention_links=1, hidden_size=H, num_layers=L, intermediate_size=INTER,
                            vocab_size=V, input_projection_weights=-3)
    with pytest.raises(FlopCountError, match=r"got no shapes; pass training_gemm_shapes"):
        measure_matmul_peak([])
    with pytest.raises(FlopCountError, match=r"repeats and warmup must be >= 1, got repeats=0"):
        measure_matmul_peak(training_gemm_shapes(4, 4, 1, 4, 4), repeats=0)
    with pytest.raises(FlopCountError, match=r"peak_flops_per_second must be positive and finite, got 0.*"
                                             r"measure_matmul_peak"):
        model_flops_utilization(1.0, 0.0)
