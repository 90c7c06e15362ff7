"""The hand-written element-wise ops of the transformer block agree with their textbook references."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gfm.modeling.modeling_gfm as modeling
from gfm import GFMConfig, GFMForPretraining
from gfm.modeling.fused_ops import RMSNorm, apply_rotary, rotary_cos_sin
from gfm.testing.modeling import apply_rotary_reference


def _tables(batch: int, length: int, head_dim: int, heads: int, dtype=torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    positions = torch.randint(0, 500, (batch, length), generator=generator)
    return positions, rotary_cos_sin(positions, head_dim, 10_000.0, dtype, heads)


@pytest.mark.parametrize("heads_in_table", [1, 3])
def test_rotary_matches_the_textbook_rotation_in_values_and_gradients(heads_in_table: int) -> None:
    _, (cos, sin) = _tables(2, 9, 16, heads_in_table, torch.float64)
    # a strided view, as the projections' outputs can be
    wide = torch.randn(2, 9, 3, 40, dtype=torch.float64)
    x = wide[..., 4:20].clone().requires_grad_(True)
    x_view = wide[..., 4:20].requires_grad_(False)
    reference_input = x.detach().clone().requires_grad_(True)
    out, reference = apply_rotary(x, cos, sin), apply_rotary_reference(reference_input, cos, sin)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(apply_rotary(x_view, cos, sin), reference.detach(), rtol=0, atol=1e-12)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    reference.backward(upstream)
    torch.testing.assert_close(x.grad, reference_input.grad, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: apply_rotary(t, cos, sin), (x.detach().clone().requires_grad_(True),))


def test_rotary_is_a_rotation_that_encodes_relative_positions() -> None:
    head_dim, shift = 32, 37
    positions = torch.arange(0, 60).view(1, -1)
    cos, sin = rotary_cos_sin(positions, head_dim, 10_000.0, torch.float64, 1)
    cos_shifted, sin_shifted = rotary_cos_sin(positions + shift, head_dim, 10_000.0, torch.float64, 1)
    query, key = torch.randn(1, 1, 1, head_dim, dtype=torch.float64), torch.randn(1, 1, 1, head_dim, dtype=torch.float64)
    q = apply_rotary(query.expand(1, 60, 1, head_dim), cos, sin)
    k = apply_rotary(key.expand(1, 60, 1, head_dim), cos, sin)
    q_shifted = apply_rotary(query.expand(1, 60, 1, head_dim), cos_shifted, sin_shifted)
    k_shifted = apply_rotary(key.expand(1, 60, 1, head_dim), cos_shifted, sin_shifted)
    torch.testing.assert_close(q.norm(dim=-1), query.norm(dim=-1).expand(1, 60, 1))
    scores = torch.einsum("btd,bsd->bts", q[:, :, 0], k[:, :, 0])
    scores_shifted = torch.einsum("btd,bsd->bts", q_shifted[:, :, 0], k_shifted[:, :, 0])
    # q_m . k_n depends on m - n only (to the float32 angles' rounding)
    torch.testing.assert_close(scores, scores_shifted, rtol=1e-4, atol=1e-4)


def test_rotary_table_of_the_wrong_width_is_refused() -> None:
    _, (cos, sin) = _tables(1, 4, 8, 2)
    with pytest.raises(ValueError, match="rotary tables have width 4, expected half the head size 16"):
        apply_rotary(torch.randn(1, 4, 2, 16), cos, sin)


@pytest.mark.parametrize("shape", [(7, 24), (2, 5, 24), (3, 1, 4, 24)])
def test_rms_norm_matches_torch_in_values_and_gradients(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    fused, reference = RMSNorm(shape[-1], eps=1e-6), nn.RMSNorm(shape[-1], eps=1e-6)
    with torch.no_grad():
        fused.weight.normal_()
    reference.load_state_dict(fused.state_dict())
    assert list(fused.state_dict()) == ["weight"]
    x = (torch.randn(shape) * 3).requires_grad_(True)
    x_reference = x.detach().clone().requires_grad_(True)
    out, expected = fused(x), reference(x_reference)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(x.grad, x_reference.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)


def test_rms_norm_double_precision_gradcheck_and_low_precision_inputs() -> None:
    norm = RMSNorm(12, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, w: modeling.RMSNorm.forward(norm, t), (x, norm.weight))
    half = RMSNorm(12, eps=1e-5)
    x16 = torch.randn(4, 12).to(torch.bfloat16)
    expected = nn.functional.rms_norm(x16.float(), (12,), half.weight, 1e-5)
    torch.testing.assert_close(half(x16), expected)  # float32 statistics and output (weight is float32)
    assert RMSNorm(12, elementwise_affine=False)(x16).dtype == torch.bfloat16  # plain nn.RMSNorm path


def test_pretraining_loss_is_the_mean_over_labelled_positions() -> None:
    torch.manual_seed(0)
    config = GFMConfig(
        vocab_size=30, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=32,
    )
    model = GFMForPretraining(config)
    input_ids = torch.randint(3, 30, (2, 10))
    labels = torch.randint(3, 30, (2, 10))
    labels[0, :4] = -100
    labels[1, 7:] = -100
    output = model(input_ids=input_ids, labels=labels)
    keep = labels != -100
    expected = nn.functional.cross_entropy(output.logits[keep], labels[keep])
    torch.testing.assert_close(output.loss, expected)


def test_model_with_fused_ops_equals_the_textbook_model(monkeypatch) -> None:
    """Whole forward and backward of a model against one rebuilt on nn.RMSNorm and the cat-based rotation."""
    torch.manual_seed(0)
    config = GFMConfig(
        vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=64, attention_backend="dense",
    )
    model = GFMForPretraining(config)
    batch = {"input_ids": torch.randint(3, 30, (2, 12)), "labels": torch.randint(3, 30, (2, 12)), "causal": True}
    loss = model(**batch).loss
    loss.backward()
    fused_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    textbook = GFMForPretraining(config)
    textbook.load_state_dict(model.state_dict())
    for module in list(textbook.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, RMSNorm):
                replacement = nn.RMSNorm(child.normalized_shape, eps=child.eps)
                replacement.load_state_dict(child.state_dict())
                setattr(module, child_name, replacement)
    assert not any(type(m) is RMSNorm for m in textbook.modules())
    monkeypatch.setattr(modeling, "apply_rotary", apply_rotary_reference)
    textbook_loss = textbook(**batch).loss
    textbook_loss.backward()
    torch.testing.assert_close(loss, textbook_loss, rtol=1e-6, atol=1e-6)
    for name, parameter in textbook.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(fused_grads[name], parameter.grad, rtol=1e-5, atol=1e-6, msg=name)
