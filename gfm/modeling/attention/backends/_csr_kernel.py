"""A fused C kernel for the CSR edge-softmax (CPU, float32), loaded with ctypes.

Why hand-written C: the chunked PyTorch implementation in :mod:`.csr` spends its time moving
``links x heads x head_dim`` gathered copies through memory (about ten full passes per
forward + backward); one fused loop per query row touches each key row once per pass, keeps the
running softmax in registers and needs no temporaries. No library we depend on offers a sampled
softmax with per-link bias and its backward on CPU (PyG's ``softmax`` + ``scatter`` is the
unfused recipe; ``torch.sparse`` has no such kernel), and ``torch.utils.cpp_extension`` would
compile the torch headers on first use (tens of seconds). The source, ``csr_kernel.c`` beside this
file (shipped as package data), is plain C99 with ``<math.h>`` only; it builds with the system C
compiler in about a second and is cached (by source, flags and CPU) in ``$GFM_KERNEL_CACHE``
(default ``~/.cache/gfm/kernels``). Without a compiler the backend falls back to the PyTorch path
(same results) and logs a warning once.

Forward, per query row ``i``: the scores of all its links and heads (kept in a buffer as wide
as the widest row), the row maximum per head, then ``p = exp(s - m)``, ``l = sum p``,
``out = sum p v / l`` and ``lse = m + log l`` (``-inf`` and a zero output for a row without
links). Head sizes 16/32/64/128 get specialized, vectorized loops (dot products with sixteen
partial sums, since a single running sum cannot be vectorized without -ffast-math).
Backward, in one pass over the links: ``p = exp(s - lse)``, ``ds = p (dout . v - dout . out)``,
``dq += ds k``, ``dk += ds q``, ``dv += p dout``, ``dbias = ds``. Single-threaded (the scatter
into ``dk``/``dv`` would race across rows); memory is the inputs, outputs and gradients plus
one row of scores.
"""

from __future__ import annotations

import ctypes

import torch

from gfm.utils.c_kernels import CKernel, PackageSource

__all__ = ["KERNEL_SOURCE", "load_csr_kernel", "csr_forward_c", "csr_backward_c"]

#: the C source, ``csr_kernel.c`` beside this file (package data; read on first build, not at import)
KERNEL_SOURCE = PackageSource(__package__, "csr_kernel.c")


def _declare(library: ctypes.CDLL) -> None:
    library.gfm_csr_forward.restype = ctypes.c_int
    library.gfm_csr_forward.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 8
    library.gfm_csr_backward.restype = ctypes.c_int
    library.gfm_csr_backward.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 13


_KERNEL = CKernel(
    "gfm_csr_attention", KERNEL_SOURCE, ["-O3", "-std=c99", "-march=native", "-fno-math-errno"], _declare,
    fallback="using the PyTorch implementation", link_flags=["-lm"],
)


def load_csr_kernel() -> ctypes.CDLL | None:
    """Build (once, cached) and load the kernel; ``None`` (warning logged once) if impossible.

    ``GFM_DISABLE_C_KERNELS=1`` turns it off (the PyTorch path is used).
    """
    return _KERNEL.load()


def _pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _check(tensors: dict[str, torch.Tensor | None]) -> None:
    for name, tensor in tensors.items():
        if tensor is not None and (tensor.device.type != "cpu" or not tensor.is_contiguous()):
            raise ValueError(f"CSR kernel: {name} must be a contiguous CPU tensor")


def csr_forward_c(
    library: ctypes.CDLL,
    row_pointer: torch.Tensor,
    key: torch.Tensor,
    query: torch.Tensor,
    key_states: torch.Tensor,
    value: torch.Tensor,
    link_bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward of the fused kernel: ``query`` (pre-scaled) / ``key_states`` / ``value`` float32 ``[N, H, D]``.

    Returns:
        ``(out [N, H, D], log_sum_exp [N, H])``.
    """
    _check({"row_pointer": row_pointer, "key": key, "query": query, "key_states": key_states, "value": value,
            "link_bias": link_bias})
    num_positions, heads, head_dim = query.shape
    out = torch.empty_like(query)
    log_sum_exp = torch.empty(num_positions, heads, dtype=query.dtype)
    status = library.gfm_csr_forward(
        num_positions, heads, head_dim, _pointer(row_pointer), _pointer(key), _pointer(query),
        _pointer(key_states), _pointer(value), _pointer(link_bias), _pointer(out), _pointer(log_sum_exp),
    )
    if status != 0:
        raise MemoryError("CSR attention kernel could not allocate its per-row buffer")
    return out, log_sum_exp


def csr_backward_c(
    library: ctypes.CDLL,
    row_pointer: torch.Tensor,
    key: torch.Tensor,
    query: torch.Tensor,
    key_states: torch.Tensor,
    value: torch.Tensor,
    link_bias: torch.Tensor | None,
    out: torch.Tensor,
    log_sum_exp: torch.Tensor,
    grad_out: torch.Tensor,
    need: tuple[bool, bool, bool, bool],
) -> tuple[torch.Tensor | None, ...]:
    """Backward of the fused kernel; ``need`` = which of (query, key, value, bias) gradients to compute."""
    _check({"grad_out": grad_out, "out": out, "log_sum_exp": log_sum_exp})
    num_positions, heads, head_dim = query.shape
    grad_query = torch.zeros_like(query) if need[0] else None
    grad_key = torch.zeros_like(key_states) if need[1] else None
    grad_value = torch.zeros_like(value) if need[2] else None
    grad_bias = torch.zeros_like(link_bias) if (need[3] and link_bias is not None) else None
    status = library.gfm_csr_backward(
        num_positions, heads, head_dim, _pointer(row_pointer), _pointer(key), _pointer(query),
        _pointer(key_states), _pointer(value), _pointer(link_bias), _pointer(out), _pointer(log_sum_exp),
        _pointer(grad_out), _pointer(grad_query), _pointer(grad_key), _pointer(grad_value), _pointer(grad_bias),
    )
    if status != 0:
        raise MemoryError("CSR attention kernel could not allocate its per-row buffer")
    return grad_query, grad_key, grad_value, grad_bias
