"""The shared C-kernel builder: built once into the cache, reused, disabled or failing cleanly."""

from __future__ import annotations

import ctypes
import logging

import pytest

from gfm.utils.c_kernels import CKernel

SOURCE = "long gfm_test_add(long a, long b) { return a + b; }\n"


def declare(library: ctypes.CDLL) -> None:
    library.gfm_test_add.restype = ctypes.c_long
    library.gfm_test_add.argtypes = [ctypes.c_long, ctypes.c_long]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GFM_KERNEL_CACHE", str(tmp_path))
    monkeypatch.delenv("GFM_DISABLE_C_KERNELS", raising=False)


def test_builds_once_and_reuses_the_cached_library(tmp_path) -> None:
    kernel = CKernel("gfm_test_add", SOURCE, ["-O2", "-std=c99"], declare, fallback="using Python")
    library = kernel.load()
    if library is None:
        pytest.skip("no C compiler on this machine")
    assert library.gfm_test_add(40, 2) == 42
    assert kernel.load() is library
    assert [p.name for p in tmp_path.iterdir()] == [kernel.target().name]
    again = CKernel("gfm_test_add", SOURCE, ["-O2", "-std=c99"], declare, fallback="using Python")
    assert again.target() == kernel.target() and again.load().gfm_test_add(1, 2) == 3
    changed = CKernel("gfm_test_add", SOURCE + "\n", ["-O2", "-std=c99"], declare, fallback="using Python")
    assert changed.target() != kernel.target()


def test_disabled_by_environment(monkeypatch) -> None:
    monkeypatch.setenv("GFM_DISABLE_C_KERNELS", "1")
    assert CKernel("gfm_test_add", SOURCE, ["-O2"], declare, fallback="using Python").load() is None


def test_a_failing_build_falls_back_with_a_named_warning(caplog: pytest.LogCaptureFixture) -> None:
    kernel = CKernel("gfm_test_broken", "this is not C;", ["-O2"], declare, fallback="using the Python walk")
    with caplog.at_level(logging.WARNING, logger="gfm.utils.c_kernels"):
        assert kernel.load() is None
        assert kernel.load() is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "C kernel gfm_test_broken unavailable" in messages[0] and "using the Python walk" in messages[0]
