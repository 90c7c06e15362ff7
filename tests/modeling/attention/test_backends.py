"""Every attention backend equals the dense masked reference (outputs and gradients, fp32)."""

from __future__ import annotations

import warnings

import pytest
import torch

from gfm.modeling.attention import (
    BackendUnavailableError,
    PatternOptions,
    UnknownAttentionBackendError,
    UnsupportedPatternError,
    build_attention_pattern,
    get_backend,
    select_backend,
)
from gfm.modeling.attention.backends._csr_kernel import load_csr_kernel
from gfm.modeling.attention.backends.csr import csr_attention
from gfm.modeling.attention.backends.flex import flex_attention_forward
from gfm.testing.modeling import random_tokenized_graph
from gfm.tokenization import collate_tokenized_graphs, pack_tokenized_graphs

HEADS, HEAD_DIM = 3, 8
TOLERANCE = 1e-5


def make_batch(seed: int, packed: bool, lengths: list[int], isolated: bool = False) -> dict:
    """Random sequences; with ``isolated`` the graph edges skip some positions entirely."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for length in lengths:
        num_edges = 0 if isolated else 2 * length
        samples.append(random_tokenized_graph(generator, length, 5, vocab_size=30, num_edges=num_edges,
                                              edge_positions=length // 2, num_edge_types=2))
    if packed:
        return pack_tokenized_graphs(samples, token_budget=max(lengths) + 9)
    return collate_tokenized_graphs(samples, pad_to_multiple_of=8)


def run_backend(name: str, pattern, inputs: tuple[torch.Tensor, ...], bias_table: torch.Tensor, weights: torch.Tensor):
    """Output and gradients (query, key, value, biased rows of the table) of one backend.

    ``"csr-kernel"`` / ``"csr-torch"`` are the two implementations behind the ``"csr"`` backend.
    """
    query, key, value = (t.detach().clone().requires_grad_(True) for t in inputs)
    table = bias_table.detach().clone().requires_grad_(True)
    link_bias = torch.cat([table, table.new_zeros(1, HEADS)])  # the model's layout: zero "plain" row
    if name.startswith("csr-"):
        if name == "csr-kernel" and load_csr_kernel() is None:
            pytest.skip("the CSR C kernel does not build here (no C compiler)")
        out = csr_attention(query, key, value, pattern, link_bias, HEAD_DIM**-0.5, use_kernel=name == "csr-kernel")
    else:
        out = get_backend(name).forward(query, key, value, pattern, link_bias, HEAD_DIM**-0.5)
    grads = torch.autograd.grad((out * weights).sum(), [query, key, value, table])
    return out.detach(), grads


def random_inputs(pattern, seed: int):
    generator = torch.Generator().manual_seed(seed)
    shape = (pattern.num_rows, pattern.row_length, HEADS, HEAD_DIM)
    inputs = tuple(torch.randn(shape, generator=generator) for _ in range(3))
    bias_table = torch.randn(pattern.link_types.num_biased, HEADS, generator=generator)
    weights = torch.randn(shape, generator=generator)
    return inputs, bias_table, weights


def assert_matches_dense(name: str, pattern, seed: int) -> None:
    inputs, bias_table, weights = random_inputs(pattern, seed)
    expected, expected_grads = run_backend("dense", pattern, inputs, bias_table, weights)
    got, got_grads = run_backend(name, pattern, inputs, bias_table, weights)
    assert torch.isfinite(got).all() and all(torch.isfinite(g).all() for g in got_grads)
    torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=TOLERANCE)
    for label, a, b in zip(("query", "key", "value", "link bias"), got_grads, expected_grads):
        torch.testing.assert_close(a, b, atol=TOLERANCE, rtol=TOLERANCE, msg=lambda m, label=label: f"{label}: {m}")


GRAPH_OPTIONS = [
    PatternOptions(num_edge_types=2, expander_degree=4, num_global_tokens=1),
    PatternOptions(num_edge_types=2, num_global_tokens=2, window=4, same_node=False),
    # no self links, no globals: isolated positions have empty rows
    PatternOptions(num_edge_types=2, self_links=False, same_node=False),
]


@pytest.mark.parametrize("implementation", ["csr-kernel", "csr-torch"])
@pytest.mark.parametrize("option_index", range(len(GRAPH_OPTIONS)))
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_csr_equals_dense_reference(implementation: str, option_index: int, packed: bool, causal: bool) -> None:
    seed = option_index + 3 * packed + 6 * causal
    if True:
        batch = make_batch(seed, packed, [13, 5, 29, 1, 8], isolated=option_index == 2 and packed)
        pattern = build_attention_pattern(
            batch["sequence_ids"],
            GRAPH_OPTIONS[option_index],
            node_index=batch["node_index"],
            graph_edge_index=batch["graph_edge_index"],
            graph_edge_type=batch["graph_edge_type"],
            causal=causal,
        )
        if option_index == 2:
            counts = torch.bincount(pattern.links()[0], minlength=pattern.num_positions)
            assert bool(((counts == 0) & pattern.is_valid).any()), "the case must contain empty real rows"
        assert_matches_dense(implementation, pattern, seed)


def test_csr_chunking_is_exact() -> None:
    batch = make_batch(5, True, [40, 31, 7, 22])
    options = PatternOptions(num_edge_types=2, expander_degree=2, num_global_tokens=1)
    pattern = build_attention_pattern(
        batch["sequence_ids"], options, batch["node_index"], batch["graph_edge_index"], batch["graph_edge_type"]
    )
    inputs, bias_table, _ = random_inputs(pattern, 0)
    link_bias = torch.cat([bias_table, bias_table.new_zeros(1, HEADS)])
    whole = csr_attention(*inputs, pattern, link_bias, 0.3, chunk_links=10**9, use_kernel=False)
    for chunk in (5, 64):  # rows longer than a chunk become chunks of their own
        chunked = csr_attention(*inputs, pattern, link_bias, 0.3, chunk_links=chunk, use_kernel=False)
        torch.testing.assert_close(chunked, whole)


@pytest.mark.parametrize("window, globals_", [(2, 0), (6, 1), (40, 3), (64, 2)])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_block_sdpa_equals_dense_reference(window: int, globals_: int, packed: bool, causal: bool) -> None:
    options = PatternOptions(num_edge_types=1, window=window, num_global_tokens=globals_, same_node=False, graph_edges=False)
    batch = make_batch(window + globals_, packed, [70, 3, 1, 45, 17])
    pattern = build_attention_pattern(batch["sequence_ids"], options, causal=causal)
    assert pattern.is_window_shaped
    assert_matches_dense("block_sdpa", pattern, seed=window)


# Sequences long enough for the CPU flash path's mask-free "clean" blocks, mixed with blocks at
# sample boundaries, global tokens and padding ("dirty"): (window, globals, lengths, packed).
FLASH_CASES = [
    (64, 2, [300, 45, 190], False),  # clean blocks in two rows: an index selection
    (50, 0, [257, 3], False),  # radius 25 is not a multiple of the block (16); no globals
    (81, 3, [400, 120, 7, 260], True),  # packed rows of different lengths
    (200, 1, [523], False),  # one long sample, block 25: a contiguous (slice) selection
]


def flash_case(index: int, causal: bool):
    window, globals_, lengths, packed = FLASH_CASES[index]
    options = PatternOptions(
        num_edge_types=1, window=window, num_global_tokens=globals_, same_node=False, graph_edges=False
    )
    batch = make_batch(100 + index, packed, lengths)
    return build_attention_pattern(batch["sequence_ids"], options, causal=causal)


@pytest.mark.parametrize("case", range(len(FLASH_CASES)))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("call_bytes", [None, 3000])
def test_block_sdpa_flash_path_equals_dense_reference(case: int, causal: bool, call_bytes, monkeypatch) -> None:
    """The CPU path (log-sum-exp merge of flash-kernel parts) on clean and dirty blocks, in one or many calls."""
    from gfm.modeling.attention.backends import _banded_flash
    from gfm.modeling.attention.backends.block_sdpa import flash_block_size

    if call_bytes is not None:  # tiny budgets: every part is split into many chunks
        monkeypatch.setattr(_banded_flash, "_CALL_BYTES", call_bytes)
        monkeypatch.setattr(_banded_flash, "_GLOBAL_CHUNK_ELEMENTS", 500)
    pattern = flash_case(case, causal)
    block = flash_block_size(pattern.window_radius)
    plan, _ = _banded_flash._build_plan(pattern, block, torch.float32, 0.3, HEADS * HEAD_DIM)
    clean_parts = [part for part in plan.block_parts if part.key_rows is None]
    dirty_parts = [part for part in plan.block_parts if part.key_rows is not None]
    assert clean_parts and dirty_parts, "the case must exercise both the mask-free and the masked blocks"
    if call_bytes is not None:
        assert len(dirty_parts) > 1 and len(clean_parts) > 3
    if case == 3 and call_bytes is None:
        assert all(isinstance(part.selection, slice) for part in clean_parts)
    assert_matches_dense("block_sdpa", pattern, seed=case)


@pytest.mark.parametrize("case", [0, 2])
@pytest.mark.parametrize("causal", [False, True])
def test_block_sdpa_gathered_path_equals_dense_reference(case: int, causal: bool, monkeypatch) -> None:
    """The device-agnostic path (used off CPU), forced on CPU."""
    from gfm.modeling.attention.backends import block_sdpa

    monkeypatch.setattr(block_sdpa, "banded_flash_supported", lambda query: False)
    assert_matches_dense("block_sdpa", flash_case(case, causal), seed=case)


def test_block_sdpa_flash_path_reads_views_with_storage_offsets() -> None:
    """q, k, v as contiguous slices of one fused tensor (non-zero storage offsets), as a fused projection gives."""
    sequence_ids = torch.cat([torch.zeros(200, dtype=torch.long), torch.ones(120, dtype=torch.long)])[None]
    options = PatternOptions(window=128, num_global_tokens=2, same_node=False, graph_edges=False)
    pattern = build_attention_pattern(sequence_ids, options)  # T = 320, a multiple of the block (16): no copy
    inputs, bias_table, _ = random_inputs(pattern, 11)
    fused = torch.stack(inputs)  # [3, B, T, H, D]
    query, key, value = fused[0], fused[1], fused[2]
    assert key.is_contiguous() and key.storage_offset() > 0
    link_bias = torch.cat([bias_table, bias_table.new_zeros(1, HEADS)])
    got = get_backend("block_sdpa").forward(query, key, value, pattern, link_bias, HEAD_DIM**-0.5)
    expected = get_backend("dense").forward(*inputs, pattern, link_bias, HEAD_DIM**-0.5)
    torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_block_sdpa_flash_path_float64_and_empty_rows() -> None:
    """float64 inputs stay float64; padding rows and one-token samples give zeros / finite gradients."""
    pattern = flash_case(2, False)
    inputs, bias_table, _ = random_inputs(pattern, 7)
    query, key, value = (t.double().requires_grad_(True) for t in inputs)
    link_bias = torch.cat([bias_table, bias_table.new_zeros(1, HEADS)]).double()
    got = get_backend("block_sdpa").forward(query, key, value, pattern, link_bias, HEAD_DIM**-0.5)
    expected = get_backend("dense").forward(query, key, value, pattern, link_bias, HEAD_DIM**-0.5)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    padding = ~pattern.is_valid.view(pattern.num_rows, pattern.row_length)
    assert bool(padding.any()) and torch.equal(got[padding], torch.zeros_like(got[padding]))
    grads = torch.autograd.grad(got.sum(), [query, key, value])
    assert all(torch.isfinite(g).all() and torch.equal(g[padding], torch.zeros_like(g[padding])) for g in grads)


@pytest.mark.parametrize("causal", [False, True])
def test_flex_forward_equals_dense_reference(causal: bool) -> None:
    """FlexAttention's mask and score functions, run by PyTorch's eager CPU forward (no backward on CPU)."""
    batch = make_batch(2, True, [13, 5, 29, 1, 8], isolated=True)
    options = PatternOptions(num_edge_types=2, expander_degree=2, window=4, num_global_tokens=1, self_links=False)
    pattern = build_attention_pattern(
        batch["sequence_ids"], options, batch["node_index"], batch["graph_edge_index"], batch["graph_edge_type"], causal
    )
    inputs, bias_table, _ = random_inputs(pattern, 3)
    link_bias = torch.cat([bias_table, bias_table.new_zeros(1, HEADS)])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "flex_attention called without torch.compile()"
        expected = get_backend("dense").forward(*inputs, pattern, link_bias, 0.35)
        got = flex_attention_forward(*inputs, pattern, link_bias, 0.35, compiled=False)
    torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_reference_gives_zeros_not_nan_for_empty_rows() -> None:
    batch = make_batch(0, False, [6, 2], isolated=True)
    options = PatternOptions(num_edge_types=2, self_links=False, same_node=False)
    pattern = build_attention_pattern(batch["sequence_ids"], options, graph_edge_index=batch["graph_edge_index"])
    assert pattern.links()[0].numel() == 0
    inputs, bias_table, weights = random_inputs(pattern, 0)
    for name in ("dense", "csr-kernel", "csr-torch"):
        out, grads = run_backend(name, pattern, inputs, bias_table, weights)
        assert torch.equal(out, torch.zeros_like(out))
        assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_backend_selection_and_errors() -> None:
    cpu = torch.device("cpu")
    graph = make_batch(0, True, [13, 5, 29])
    graph_pattern = build_attention_pattern(
        graph["sequence_ids"], PatternOptions(num_edge_types=2, expander_degree=4), graph["node_index"], graph["graph_edge_index"]
    )
    long_sequence = torch.zeros(1, 4096, dtype=torch.long)
    window_pattern = build_attention_pattern(long_sequence, PatternOptions(window=512, num_global_tokens=4, graph_edges=False))
    big_graph = build_attention_pattern(
        long_sequence, PatternOptions(expander_degree=4, num_global_tokens=1, graph_edges=False)
    )
    assert select_backend("auto", graph_pattern, 16, cpu).name == "dense"  # short rows: dense is cheapest
    assert select_backend("auto", window_pattern, 16, cpu).name == "block_sdpa"
    assert select_backend("auto", big_graph, 16, cpu).name == "csr"
    assert select_backend("csr", window_pattern, 16, cpu).name == "csr"  # forcing works
    with pytest.raises(UnknownAttentionBackendError, match=r"unknown attention backend 'sparse'.*auto, block_sdpa, csr, dense, flex"):
        select_backend("sparse", graph_pattern, 16, cpu)
    with pytest.raises(BackendUnavailableError, match="'flex' is unavailable: FlexAttention needs a CUDA device"):
        select_backend("flex", graph_pattern, 16, cpu)
    with pytest.raises(UnsupportedPatternError, match="block_sdpa.*graph-edge, expander or same-node links"):
        select_backend("block_sdpa", graph_pattern, 16, cpu)
