"""Element-wise pieces of the transformer block with hand-written backward passes (CPU-friendly).

On a CPU the matmuls of a small transformer run near the core's peak, so the rest of a training
step is element-wise passes over ``[B, T, H]`` activations; the functions here cut those passes
without changing the math, and each has a textbook reference that the tests compare against
(values and gradients):

* :func:`rotary_cos_sin` / :func:`apply_rotary`: rotary positions (Llama / GPT-NeoX half-split
  layout), 4 passes per direction instead of ~10 through ``cat`` / ``neg`` / broadcasts;
* :class:`RMSNorm`: ``nn.RMSNorm`` (same parameters, same state-dict keys) with a fused backward,
  statistics in float32 at least (float64 stays float64).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RMSNorm", "apply_rotary", "rotary_cos_sin"]


def rotary_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype, num_heads: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables for ``position_ids`` [B, T]: ``(cos, sin)`` each ``[B, T, num_heads, head_dim / 2]``.

    Half width: both halves of a head use the same angles (Llama / GPT-NeoX half-split layout).
    Expanded over the heads and contiguous, so the per-layer rotations are plain same-shape
    element-wise ops (a broadcast over the head axis is ~3x slower on a CPU); the two tables
    together are the size of one ``[B, T, hidden]`` activation, shared by all layers. Computed per call
    rather than cached in a buffer, so nothing non-persistent has to survive
    ``from_pretrained``'s meta-device initialization.
    """
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim)
    )
    angles = position_ids.to(torch.float32)[..., None, None] * inv_freq  # [B, T, 1, D/2]
    angles = angles.expand(*position_ids.shape, num_heads, head_dim // 2)
    return angles.cos().to(dtype).contiguous(), angles.sin().to(dtype).contiguous()


class _Rotary(torch.autograd.Function):
    """``[x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]`` with a hand-written backward.

    Autograd of the textbook ``x * cos + rotate_half(x) * sin`` keeps ``x`` and three
    temporaries alive and runs ~10 passes over ``[B, T, H, D]`` per call; this runs 4 in each
    direction and saves nothing but the (shared) tables.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, sign=1.0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        cos, sin = ctx.saved_tensors
        return _rotate(grad_out, cos, sin, sign=-1.0), None, None


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    """Rotation by ``sign * angle``: ``[x1 c - s x2 sin, x2 c + s x1 sin]`` for ``x`` [..., D]."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    out_first, out_second = out[..., :half], out[..., half:]
    torch.mul(first, cos, out=out_first)
    out_first.addcmul_(second, sin, value=-sign)
    torch.mul(second, cos, out=out_second)
    out_second.addcmul_(first, sin, value=sign)
    return out


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [B, T, H, D] by half-width tables ``cos``, ``sin`` [B, T, H or 1, D/2]."""
    if x.shape[-1] != 2 * cos.shape[-1]:
        raise ValueError(f"rotary tables have width {cos.shape[-1]}, expected half the head size {x.shape[-1]}")
    if cos.shape[2] != x.shape[2]:
        cos, sin = cos.expand(*x.shape[:-1], cos.shape[-1]), sin.expand(*x.shape[:-1], sin.shape[-1])
    return _Rotary.apply(x, cos, sin)


class _RMSNormFunction(torch.autograd.Function):
    """``y = x / sqrt(mean(x^2) + eps) * weight`` over the last axis, in float32 at least.

    Backward with ``n = x * r`` (``r`` the inverse root mean square) and ``u = dy * weight``:
    ``dx = r * (u - n * mean(u * n))``, ``dweight = sum(dy * n)`` over all leading axes.
    Saves ``x`` and ``r`` ``[..., 1]`` only; ``n`` is recomputed in the backward pass.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        compute = torch.promote_types(x.dtype, torch.float32)
        x_wide = x.to(compute)
        inverse_rms = torch.rsqrt(x_wide.pow(2).mean(-1, keepdim=True).add_(eps))
        ctx.save_for_backward(x, inverse_rms, weight)
        return (x_wide * inverse_rms).mul_(weight.to(compute)).to(torch.result_type(x, weight))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, inverse_rms, weight = ctx.saved_tensors
        compute = inverse_rms.dtype
        normed = x.to(compute) * inverse_rms
        grad_wide = grad_out.to(compute)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_wide * normed).reshape(-1, weight.shape[0]).sum(0).to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            weighted = grad_wide * weight.to(compute)
            projection = (weighted * normed).mean(-1, keepdim=True)
            grad_x = weighted.sub_(normed.mul_(projection)).mul_(inverse_rms).to(x.dtype)
        return grad_x, grad_weight, None


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` over the last axis with the fused backward of :class:`_RMSNormFunction`.

    Same parameter (``weight`` ``[hidden]``) and state-dict keys as ``nn.RMSNorm``; falls back to
    it without an affine weight, without ``eps`` or over more than one axis. Output dtype: that
    of ``x * weight`` (statistics in float32 at least).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None or self.eps is None or len(self.normalized_shape) != 1:
            return super().forward(x)
        return _RMSNormFunction.apply(x, self.weight, self.eps)
