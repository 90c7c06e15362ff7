"""The shared C-kernel builder: built once into the cache, reused, disabled or failing cleanly."""

from __future__ import annotations

import ctypes
import logging

import pytest

from gfm.utils.c_kernels import CKernel, PackageSource

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


def _package_with_source(root, name: str, source: str):
    """A throwaway importable package ``name`` under ``root`` holding ``kernel.c``."""
    package = root / name
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "kernel.c").write_text(source)
    return package


def test_a_package_source_builds_and_its_cache_key_follows_the_file(tmp_path, monkeypatch) -> None:
    source_root = tmp_path / "src"
    source_root.mkdir()
    package = _package_with_source(source_root, "gfm_test_kernel_pkg", SOURCE)
    monkeypatch.syspath_prepend(str(source_root))
    kernel = CKernel("gfm_test_add", PackageSource("gfm_test_kernel_pkg", "kernel.c"), ["-O2"], declare,
                     fallback="using Python")
    assert kernel.source == SOURCE
    # same text given inline or as a file: the same cached library
    assert kernel.target() == CKernel("gfm_test_add", SOURCE, ["-O2"], declare, fallback="using Python").target()
    library = kernel.load()
    if library is None:
        pytest.skip("no C compiler on this machine")
    assert library.gfm_test_add(2, 3) == 5
    (package / "kernel.c").write_text(SOURCE + "/* edited */\n")
    edited = CKernel("gfm_test_add", PackageSource("gfm_test_kernel_pkg", "kernel.c"), ["-O2"], declare,
                     fallback="using Python")
    assert edited.target() != kernel.target()


def test_a_missing_source_file_falls_back_and_names_the_file(tmp_path, monkeypatch, caplog) -> None:
    source_root = tmp_path / "src"
    source_root.mkdir()
    _package_with_source(source_root, "gfm_test_kernel_pkg_missing", SOURCE)
    monkeypatch.syspath_prepend(str(source_root))
    kernel = CKernel("gfm_test_add", PackageSource("gfm_test_kernel_pkg_missing", "absent.c"), ["-O2"], declare,
                     fallback="using Python")
    with caplog.at_level(logging.WARNING, logger="gfm.utils.c_kernels"):
        assert kernel.load() is None
    message = caplog.records[0].getMessage()
    assert "absent.c is missing from package gfm_test_kernel_pkg_missing" in message
    assert "package-data" in message and "using Python" in message


@pytest.mark.parametrize(
    "module, function",
    [
        ("gfm.modeling.attention.backends._csr_kernel", "gfm_csr_forward"),
        ("gfm.tokenization.eulerian.kernel", "gfm_euler_walk_batch"),
    ],
)
def test_shipped_kernel_sources_are_package_files(module: str, function: str) -> None:
    """gfm's kernels are .c files read through importlib.resources, not Python strings."""
    import importlib

    source = importlib.import_module(module).KERNEL_SOURCE
    assert isinstance(source, PackageSource) and source.filename.endswith(".c")
    text = source.read()
    assert f"{function}(" in text and text.lstrip().startswith("/*")
