"""CPU capability detection and the mixed-precision default it drives."""

from __future__ import annotations

import pytest

import gfm.utils.hardware as hardware
from gfm.training.trainer import _resolve_mixed_precision


@pytest.fixture
def fake_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path):
    def install(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        real_open = open
        monkeypatch.setattr(
            hardware, "open", lambda name, *a, **k: real_open(path if name == "/proc/cpuinfo" else name, *a, **k),
            raising=False,
        )
        hardware._cpuinfo.cache_clear()

    yield install
    hardware._cpuinfo.cache_clear()


def test_bf16_flags_and_model_name_are_read_from_cpuinfo(fake_cpuinfo) -> None:
    fake_cpuinfo("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
                 "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
    assert hardware.cpu_model_name() == "Test CPU 9000"
    assert hardware.cpu_bf16_instructions() == ["avx512_bf16"]
    fake_cpuinfo("model name\t: Old CPU\nflags\t\t: fpu avx2 fma\n")
    assert hardware.cpu_bf16_instructions() == []


def test_auto_mixed_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, fake_cpuinfo) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fake_cpuinfo("model name\t: New\nflags\t\t: avx512f amx_bf16 amx_tile\n")
    assert _resolve_mixed_precision("auto") == "bf16"
    fake_cpuinfo("model name\t: Old\nflags\t\t: avx2\n")
    assert _resolve_mixed_precision("auto") == "no"
    assert _resolve_mixed_precision("fp16") == "fp16" and _resolve_mixed_precision("no") == "no"
