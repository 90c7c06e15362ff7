"""What the machine's CPU can do, where it changes a default (mixed precision) or a benchmark's reading."""

from __future__ import annotations

import functools
import platform

__all__ = ["cpu_bf16_instructions", "cpu_model_name"]

#: /proc/cpuinfo flags of x86 instructions that multiply bfloat16 natively (AVX-512 BF16, AMX)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` of the first CPU in ``/proc/cpuinfo`` (Linux); empty elsewhere."""
    name, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def cpu_model_name() -> str:
    """The CPU's model name (``platform.processor()`` where ``/proc/cpuinfo`` is absent)."""
    return _cpuinfo()[0] or platform.processor() or "unknown CPU"


def cpu_bf16_instructions() -> list[str]:
    """The CPU's native bfloat16 matmul instruction sets (``[]``: bfloat16 would be emulated, slower).

    With them, PyTorch's bfloat16 matmuls run ~2x faster than float32 on a CPU core (measured
    2.3x with ``avx512_bf16``), which is what makes ``mixed_precision: auto`` pick bf16 on a CPU.
    """
    return [flag for flag in _BF16_FLAGS if flag in _cpuinfo()[1]]
