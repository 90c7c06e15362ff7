"""The attention backend registry: one function signature, picked by name or by estimated cost.

Every backend is one module in this package that calls :func:`register_backend` at import;
the package imports all its modules, so adding a backend touches exactly one new file.

The common signature (``B`` rows, ``T`` positions, ``H`` heads, ``D`` head size)::

    attention(query, key, value, pattern, link_bias, scale) -> Tensor

    query, key, value: [B, T, H, D] (any float dtype; backends compute softmax in float32)
    pattern:           AttentionPattern of the batch
    link_bias:         [LinkTypes.num_types, H] additive bias per link type and head (the
                       "plain" row zero), or None for no bias
    scale:             multiplier of q . k (usually D ** -0.5)
    returns:           [B, T, H, D] in the dtype of ``query``; rows without keys are zeros

``"auto"`` picks, among the backends that are available on the device and support the
pattern, the one with the smallest estimated cost (each backend supplies its own estimate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gfm.utils.errors import GFMError

from ..patterns import AttentionPattern

__all__ = [
    "AUTO",
    "AttentionBackend",
    "AttentionBackendError",
    "BackendUnavailableError",
    "UnknownAttentionBackendError",
    "UnsupportedPatternError",
    "attention_backend_names",
    "get_backend",
    "register_backend",
    "select_backend",
]

AUTO = "auto"

AttentionFunction = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, AttentionPattern, "torch.Tensor | None", float], torch.Tensor
]


class AttentionBackendError(GFMError, RuntimeError):
    """Base class of backend selection errors."""


class UnknownAttentionBackendError(AttentionBackendError, ValueError):
    """A backend name that is not registered."""


class BackendUnavailableError(AttentionBackendError):
    """The backend exists but cannot run here (e.g. FlexAttention without CUDA)."""


class UnsupportedPatternError(AttentionBackendError):
    """The backend cannot execute this pattern (e.g. block SDPA on graph edges)."""


@dataclass(frozen=True)
class AttentionBackend:
    """A registered backend.

    Attributes:
        name: registry key (``GFMConfig.attention_backend``).
        forward: the attention function (signature in the module docstring).
        unavailable_reason: ``device -> None`` if the backend runs on that device, else why not.
        unsupported_reason: ``(pattern, head_dim) -> None`` if it can run the pattern, else why not.
        estimated_cost: ``(pattern, head_dim) -> float`` rough forward+backward time used by
            ``"auto"``, in microseconds of one CPU thread (fitted on the development machine with
            ``benchmarks/attention_speed.py``-style runs; only the ordering between backends matters).
    """

    name: str
    forward: AttentionFunction
    unavailable_reason: Callable[[torch.device], str | None]
    unsupported_reason: Callable[[AttentionPattern, int], str | None]
    estimated_cost: Callable[[AttentionPattern, int], float]


_BACKENDS: dict[str, AttentionBackend] = {}


def register_backend(backend: AttentionBackend) -> AttentionBackend:
    """Add a backend to the registry (called by each backend module at import)."""
    if backend.name == AUTO:
        raise ValueError(f"'{AUTO}' is reserved for automatic selection")
    _BACKENDS[backend.name] = backend
    return backend


def attention_backend_names() -> list[str]:
    """Registered backend names, sorted, plus ``"auto"`` first."""
    return [AUTO, *sorted(_BACKENDS)]


def get_backend(name: str) -> AttentionBackend:
    """The registered backend called ``name``.

    Raises:
        UnknownAttentionBackendError: listing the known names.
    """
    backend = _BACKENDS.get(name)
    if backend is None:
        raise UnknownAttentionBackendError(
            f"unknown attention backend {name!r}; known backends: {', '.join(attention_backend_names())}"
        )
    return backend


def select_backend(name: str, pattern: AttentionPattern, head_dim: int, device: torch.device) -> AttentionBackend:
    """Resolve ``name`` (a backend or ``"auto"``) for a pattern on a device.

    Raises:
        UnknownAttentionBackendError: ``name`` is not registered.
        BackendUnavailableError: a forced backend cannot run on ``device``.
        UnsupportedPatternError: a forced backend cannot execute ``pattern``.
    """
    if name != AUTO:
        backend = get_backend(name)
        reason = backend.unavailable_reason(device)
        if reason is not None:
            raise BackendUnavailableError(f"attention backend {name!r} is unavailable: {reason}")
        reason = backend.unsupported_reason(pattern, head_dim)
        if reason is not None:
            raise UnsupportedPatternError(f"attention backend {name!r} cannot run this pattern: {reason}")
        return backend
    candidates = [
        b
        for b in _BACKENDS.values()
        if b.unavailable_reason(device) is None and b.unsupported_reason(pattern, head_dim) is None
    ]
    if not candidates:
        raise AttentionBackendError("no registered attention backend can run this pattern")
    return min(candidates, key=lambda b: (b.estimated_cost(pattern, head_dim), b.name))
