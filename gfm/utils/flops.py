"""Model FLOPs of a transformer training step and the machine's measured matmul peak (for MFU).

Model FLOPs utilization (MFU) = achieved model FLOP/s / peak FLOP/s, where the model FLOPs of
a step count only the work the model itself needs (no recomputation, no padding), as in the
PaLM paper's definition. Everything here takes plain numbers (sizes, token and link counts), so
it serves any decoder-style transformer: gfm's own count (sizes from ``GFMConfig``, links from
the batch's attention pattern) is :mod:`gfm.modeling.flops`; a same-size Llama passes its sizes
and :func:`causal_attention_links`.

Counting (one FLOP = one multiply or one add; a multiply-add is 2 FLOPs):

* **Linear layers.** Per token and layer, attention projections ``q, k, v, o``: ``4 H^2``
  weights; SwiGLU ``gate, up, down``: ``3 H I`` weights; plus the LM head ``H V`` once (it is
  a real ``[T, H] x [H, V]`` matmul, counted even when its weight is tied to the token
  embedding). The token-embedding lookup is a gather, not a matmul, and norms, rotary, link
  biases and gates are elementwise: none of them is counted. A training step does ``2`` FLOPs
  per weight and token forward and ``4`` backward (input and weight gradients), so
  ``linear = 6 * P * tokens`` with ``P = L (4 H^2 + 3 H I) + H V`` (the "6 N" rule, ``N`` the
  matmul weights). ``torch.utils.flop_counter.FlopCounterMode`` counts exactly this for both
  models (tested).
* **Attention.** Per link (one query attending to one key) and head of size ``D``: ``q . k``
  is ``2 D`` FLOPs and adding ``p * v`` is ``2 D``: ``4 D`` forward, ``4 H`` over all heads
  (``H = heads * D``). The backward does twice the forward (``dp = do . v`` and ``dv += p do``;
  ``dq += ds k`` and ``dk += ds q``): ``attention = 12 * H * L * links``. gfm's links are its
  sparse pattern's deduplicated (query, key) pairs; a causal dense model has
  ``T (T + 1) / 2`` links per sequence (``~T^2 / 2``). Softmax and biases are not counted.

Peak: :func:`measure_matmul_peak` times the step's own GEMMs (:func:`training_gemm_shapes`:
each linear layer's forward ``x W^T``, input gradient ``dy W`` and weight gradient ``dy^T x``
at the row's token count) in the requested dtype, with the calling process's current thread
count, and reports each shape's rate, the best one and the FLOP-weighted rate (total FLOPs over
the total time the step's GEMMs take at the measured rates). MFU uses the FLOP-weighted rate:
100% would mean the whole step ran at the speed this machine multiplies exactly these matrices.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import GFMError

__all__ = [
    "FlopCountError",
    "GemmRate",
    "GemmShape",
    "MatmulPeak",
    "StepFlops",
    "causal_attention_links",
    "linear_weights",
    "measure_matmul_peak",
    "model_flops_utilization",
    "training_gemm_shapes",
    "training_step_flops",
]


class FlopCountError(GFMError, ValueError):
    """A size, count or option of a FLOP count or peak measurement that cannot be right."""


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FlopCountError(f"{name} must be a positive integer, got {value!r}; pass the model config's {name}")


def linear_weights(hidden_size: int, num_layers: int, intermediate_size: int, vocab_size: int) -> int:
    """Weights that multiply every token: ``L (4 H^2 + 3 H I) + H V`` (LM head included, embedding lookup not)."""
    _check_sizes(hidden_size=hidden_size, num_layers=num_layers, intermediate_size=intermediate_size,
                 vocab_size=vocab_size)
    per_layer = 4 * hidden_size * hidden_size + 3 * hidden_size * intermediate_size
    return num_layers * per_layer + hidden_size * vocab_size


def causal_attention_links(length: int) -> int:
    """(query, key) pairs of causal dense attention over one sequence of ``length`` tokens: ``T (T + 1) / 2``."""
    _check_sizes(length=length)
    return length * (length + 1) // 2


@dataclass(frozen=True)
class StepFlops:
    """Model FLOPs of one training step (forward + backward).

    Attributes:
        tokens: tokens the step trains on.
        linear: ``(6 * linear_weights + 4 * input_projection_weights) * tokens``.
        attention: ``12 * hidden_size * num_layers * links``.
    """

    tokens: int
    linear: int
    attention: int

    @property
    def total(self) -> int:
        return self.linear + self.attention

    @property
    def per_token(self) -> float:
        return self.total / self.tokens


def training_step_flops(
    *,
    tokens: int,
    attention_links: int,
    hidden_size: int,
    num_layers: int,
    intermediate_size: int,
    vocab_size: int,
    input_projection_weights: int = 0,
) -> StepFlops:
    """Model FLOPs of a training step over ``tokens`` tokens whose attention has ``attention_links`` links per layer.

    Args:
        tokens: tokens in the step (all rows of the batch, padding excluded).
        attention_links: (query, key) pairs each layer's attention computes, summed over the
            batch (gfm: its pattern's deduplicated links; causal dense: :func:`causal_attention_links`
            per sequence). Heads are accounted for through ``hidden_size``.
        hidden_size / num_layers / intermediate_size / vocab_size: the model's sizes.
        input_projection_weights: weights of a linear layer applied to input data (gfm's
            ``node_features`` projection, ``F * H``): ``4`` FLOPs per weight and token (forward and
            weight gradient; data needs no input gradient).
    """
    _check_sizes(tokens=tokens)
    if isinstance(attention_links, bool) or not isinstance(attention_links, int) or attention_links < 0:
        raise FlopCountError(
            f"attention_links must be a non-negative integer, got {attention_links!r}; "
            "count the (query, key) pairs of one layer's attention"
        )
    if isinstance(input_projection_weights, bool) or not isinstance(input_projection_weights, int) or (
        input_projection_weights < 0
    ):
        raise FlopCountError(
            f"input_projection_weights must be a non-negative integer, got {input_projection_weights!r}; "
            "pass node_feature_dim * hidden_size, or 0 without continuous inputs"
        )
    weights = linear_weights(hidden_size, num_layers, intermediate_size, vocab_size)
    return StepFlops(
        tokens=tokens,
        linear=(6 * weights + 4 * input_projection_weights) * tokens,
        attention=12 * hidden_size * num_layers * attention_links,
    )


def model_flops_utilization(flops_per_second: float, peak_flops_per_second: float) -> float:
    """``flops_per_second / peak_flops_per_second`` (a fraction; 1.0 = the peak)."""
    if not peak_flops_per_second > 0 or not math.isfinite(peak_flops_per_second):
        raise FlopCountError(
            f"peak_flops_per_second must be positive and finite, got {peak_flops_per_second!r}; "
            "measure it with measure_matmul_peak"
        )
    return flops_per_second / peak_flops_per_second


# -------------------------------------------------------------------------------------------------
# Measured peak
# -------------------------------------------------------------------------------------------------
_FORMS = ("forward", "input_grad", "weight_grad")


@dataclass(frozen=True)
class GemmShape:
    """One GEMM of a training step: ``[m, k] x [k, n]``, run ``count`` times per step.

    Attributes:
        name: the layer (``"attn q/k/v/o"``, ``"mlp gate/up"``, ``"mlp down"``, ``"lm head"``).
        form: ``"forward"`` (``F.linear(x [m, k], W [n, k])``), ``"input_grad"``
            (``dy [m, k] @ W [k, n]``) or ``"weight_grad"`` (``dy^T @ x`` with ``dy`` ``[k, m]``
            transposed): the memory layouts autograd uses for ``nn.Linear``.
    """

    name: str
    form: str
    m: int
    k: int
    n: int
    count: int = 1

    @property
    def flops(self) -> int:
        """FLOPs of one call: ``2 m k n``."""
        return 2 * self.m * self.k * self.n


def training_gemm_shapes(
    tokens: int, hidden_size: int, num_layers: int, intermediate_size: int, vocab_size: int
) -> list[GemmShape]:
    """The linear layers' GEMMs of one training step over ``tokens`` tokens (12 shapes).

    Their FLOPs, ``sum(shape.flops * shape.count)``, equal ``training_step_flops(...).linear``.
    """
    _check_sizes(tokens=tokens, hidden_size=hidden_size, num_layers=num_layers,
                 intermediate_size=intermediate_size, vocab_size=vocab_size)
    layers = (  # (name, in features, out features, uses per step)
        ("attn q/k/v/o", hidden_size, hidden_size, 4 * num_layers),
        ("mlp gate/up", hidden_size, intermediate_size, 2 * num_layers),
        ("mlp down", intermediate_size, hidden_size, num_layers),
        ("lm head", hidden_size, vocab_size, 1),
    )
    shapes = []
    for name, fan_in, fan_out, count in layers:
        shapes += [
            GemmShape(name, "forward", tokens, fan_in, fan_out, count),
            GemmShape(name, "input_grad", tokens, fan_out, fan_in, count),
            GemmShape(name, "weight_grad", fan_out, tokens, fan_in, count),
        ]
    return shapes


@dataclass(frozen=True)
class GemmRate:
    """A shape and its measured rate (FLOP/s, median of the repeats)."""

    shape: GemmShape
    flops_per_second: float


@dataclass(frozen=True)
class MatmulPeak:
    """Measured matmul throughput over a set of shapes.

    Attributes:
        rates: each shape's rate.
        weighted: FLOP-weighted rate, ``sum(count * flops) / sum(count * flops / rate)``: the rate
            of running every shape ``count`` times (what MFU divides by).
        best: the fastest shape's rate.
        dtype / device / threads: the conditions of the measurement.
    """

    rates: tuple[GemmRate, ...]
    weighted: float
    best: float
    dtype: torch.dtype
    device: str
    threads: int

    @property
    def best_shape(self) -> GemmShape:
        return max(self.rates, key=lambda rate: rate.flops_per_second).shape


def default_clock(device: torch.device | str) -> Callable[[], float]:
    """``time.perf_counter``, synchronizing CUDA first when ``device`` is a GPU."""
    if torch.device(device).type == "cuda":
        def clock() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()

        return clock
    return time.perf_counter


def _operands(shape: GemmShape, dtype: torch.dtype, device: torch.device, generator: torch.Generator):
    def rand(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=generator).to(device=device, dtype=dtype)

    if shape.form == "forward":
        x, weight = rand(shape.m, shape.k), rand(shape.n, shape.k)
        return lambda: F.linear(x, weight)
    if shape.form == "input_grad":
        grad, weight = rand(shape.m, shape.k), rand(shape.k, shape.n)
        return lambda: torch.matmul(grad, weight)
    grad, x = rand(shape.k, shape.m), rand(shape.k, shape.n)
    return lambda: torch.matmul(grad.t(), x)


def _time_calls(call: Callable[[], object], calls: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(calls):
        call()
    return clock() - start


def measure_matmul_peak(
    shapes: Sequence[GemmShape],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    *,
    clock: Callable[[], float] | None = None,
    repeats: int = 5,
    warmup: int = 2,
    min_seconds: float = 0.02,
    seed: int = 0,
) -> MatmulPeak:
    """Time each GEMM of ``shapes`` in ``dtype`` on ``device`` with the current thread count.

    Per shape: ``warmup`` untimed calls and a calibration of ``n`` (doubling from 1) so that ``n``
    calls last about ``min_seconds``; then ``repeats`` rounds, each timing ``n`` calls of every
    shape in turn (so that a burst of load on a shared machine spoils one repeat of several
    shapes, which the median drops, rather than every repeat of one shape); the rate is
    ``flops * n / median(repeat time)``. Operands are random normal matrices (no zeros or
    denormals that would flatter a kernel).

    Args:
        shapes: e.g. :func:`training_gemm_shapes`.
        dtype: ``torch.float32`` or ``torch.bfloat16`` (what autocast hands the matmuls), or any
            float dtype the device multiplies.
        device: where to run; on CUDA the default clock synchronizes before reading the time.
        clock: seconds as a float (default :func:`default_clock`); ``time.process_time`` measures
            one thread's CPU time on a shared machine.
        repeats / warmup / min_seconds: timing protocol.
        seed: operands' seed.

    Returns:
        :class:`MatmulPeak`.

    Raises:
        FlopCountError: no shapes, or ``repeats < 1``.
    """
    if not shapes:
        raise FlopCountError("measure_matmul_peak got no shapes; pass training_gemm_shapes(...) of the model")
    if repeats < 1 or warmup < 1:
        raise FlopCountError(f"repeats and warmup must be >= 1, got repeats={repeats}, warmup={warmup}")
    device = torch.device(device)
    clock = clock or default_clock(device)
    generator = torch.Generator().manual_seed(seed)
    calls_per_shape, batches = [], []
    for shape in shapes:
        call = _operands(shape, dtype, device, generator)
        for _ in range(warmup):
            call()
        calls = 1
        while True:  # calibrate: double the calls until a batch of them is measurable
            elapsed = _time_calls(call, calls, clock)
            if elapsed >= min_seconds / 4 or calls >= 1 << 16:
                break
            calls *= 2
        calls_per_shape.append(max(1, math.ceil(calls * min_seconds / elapsed)) if elapsed > 0 else calls)
        batches.append(call)
    times: list[list[float]] = [[] for _ in shapes]
    for _ in range(repeats):  # round robin: a burst of load on a shared machine hits one repeat of each shape
        for index, call in enumerate(batches):
            times[index].append(_time_calls(call, calls_per_shape[index], clock))
    rates = []
    for shape, calls, shape_times in zip(shapes, calls_per_shape, times):
        median = statistics.median(shape_times)
        rates.append(GemmRate(shape, shape.flops * calls / median if median > 0 else math.inf))
    total = sum(rate.shape.flops * rate.shape.count for rate in rates)
    seconds = sum(rate.shape.flops * rate.shape.count / rate.flops_per_second for rate in rates)
    return MatmulPeak(
        rates=tuple(rates),
        weighted=total / seconds if seconds > 0 else math.inf,
        best=max(rate.flops_per_second for rate in rates),
        dtype=dtype,
        device=str(device),
        threads=torch.get_num_threads(),
    )
