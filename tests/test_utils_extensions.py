"""A build lock left by a killed DeepSpeed op build is released; a live build's lock is not."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from gfm.utils.extensions import extension_build_roots, release_stale_build_locks


def make_lock(root: Path, op: str, age_seconds: float) -> Path:
    lock = root / op / "lock"
    lock.parent.mkdir(parents=True)
    lock.touch()
    stamp = time.time() - age_seconds
    os.utime(lock, (stamp, stamp))
    return lock


def test_stale_lock_is_removed_and_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stale = make_lock(tmp_path, "deepspeed_shm_comm", age_seconds=3600)
    live = make_lock(tmp_path, "cpu_adam", age_seconds=5)
    (tmp_path / "cpu_adam" / "cpu_adam.so").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="gfm.utils.extensions"):
        removed = release_stale_build_locks([tmp_path], max_age_seconds=900)
    assert removed == [stale]
    assert not stale.exists() and live.exists()
    assert str(stale) in caplog.text and "stale build lock" in caplog.text


def test_missing_root_and_bad_age(tmp_path: Path) -> None:
    assert release_stale_build_locks([tmp_path / "absent"]) == []
    with pytest.raises(ValueError, match="max_age_seconds must be positive, got 0"):
        release_stale_build_locks([tmp_path], max_age_seconds=0)


def test_build_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert extension_build_roots() == [tmp_path]
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    roots = extension_build_roots()
    assert len(roots) == 1 and "torch_extensions" in str(roots[0])
