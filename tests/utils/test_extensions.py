"""A build lock left by a killed DeepSpeed op build is named, and removed only on request; a live build's lock never."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from gfm.utils.extensions import CLEAR_LOCKS_VARIABLE, extension_build_roots, release_stale_build_locks


def make_lock(root: Path, op: str, age_seconds: float) -> Path:
    lock = root / op / "lock"
    lock.parent.mkdir(parents=True)
    lock.touch()
    stamp = time.time() - age_seconds
    os.utime(lock, (stamp, stamp))
    return lock


def test_stale_lock_is_only_named_unless_removal_is_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CLEAR_LOCKS_VARIABLE, raising=False)
    stale = make_lock(tmp_path, "deepspeed_shm_comm", age_seconds=3600)
    live = make_lock(tmp_path, "cpu_adam", age_seconds=5)
    with caplog.at_level(logging.WARNING, logger="gfm.utils.extensions"):
        assert release_stale_build_locks([tmp_path], max_age_seconds=900) == []
        assert release_stale_build_locks([tmp_path], max_age_seconds=900, remove=False) == []
    assert stale.exists() and live.exists()
    assert f"stale build lock {stale}" in caplog.text and f"rm {stale}" in caplog.text
    assert f"{CLEAR_LOCKS_VARIABLE}=1" in caplog.text
    assert str(live) not in caplog.text


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_stale_lock_is_removed_on_request_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.delenv(CLEAR_LOCKS_VARIABLE, raising=False)
    stale = make_lock(tmp_path, "deepspeed_shm_comm", age_seconds=3600)
    live = make_lock(tmp_path, "cpu_adam", age_seconds=5)
    (tmp_path / "cpu_adam" / "cpu_adam.so").write_bytes(b"")
    if how == "environment":
        monkeypatch.setenv(CLEAR_LOCKS_VARIABLE, "1")
    with caplog.at_level(logging.WARNING, logger="gfm.utils.extensions"):
        removed = release_stale_build_locks([tmp_path], max_age_seconds=900, remove=True if how == "argument" else None)
    assert removed == [stale]
    assert not stale.exists() and live.exists()
    assert str(stale) in caplog.text and "removed a stale build lock" in caplog.text
    # an explicit remove=False wins over the environment
    again = make_lock(tmp_path, "fused_adam", age_seconds=3600)
    monkeypatch.setenv(CLEAR_LOCKS_VARIABLE, "1")
    assert release_stale_build_locks([tmp_path], max_age_seconds=900, remove=False) == [] and again.exists()


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
