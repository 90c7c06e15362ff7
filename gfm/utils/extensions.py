"""Guard against stale build locks of PyTorch JIT extensions (DeepSpeed ops).

``torch.utils.cpp_extension.load`` serializes builds with a ``lock`` file in the op's build
directory and *every* later load waits for that file to disappear, with no timeout, even when
the op is already built. A process killed while building (a cancelled CI job, SIGKILL, an OOM
kill) leaves the file behind and every later ``deepspeed.initialize`` on that machine hangs
forever: on a CPU, DeepSpeed loads its ``deepspeed_shm_comm`` op on every initialization.

A DeepSpeed op builds in well under a minute here (``deepspeed_shm_comm`` ~24 s, ``cpu_adam``
~39 s), so a lock older than ``max_age_seconds`` (default 15 minutes) cannot belong to a live
build. gfm did not create such a file, so it removes it only when asked: with ``remove=True`` or
the environment variable ``GFM_CLEAR_STALE_EXTENSION_LOCKS=1`` (the Makefile's test targets and
CI set it). Otherwise it logs a warning naming each stale lock and how to remove it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "CLEAR_LOCKS_VARIABLE",
    "DEFAULT_MAX_LOCK_AGE_SECONDS",
    "extension_build_roots",
    "find_stale_build_locks",
    "release_stale_build_locks",
]

DEFAULT_MAX_LOCK_AGE_SECONDS = 15 * 60
#: set to 1 to let gfm delete stale torch-extension build locks.
CLEAR_LOCKS_VARIABLE = "GFM_CLEAR_STALE_EXTENSION_LOCKS"


def extension_build_roots() -> list[Path]:
    """Directories where torch JIT extensions are built: ``$TORCH_EXTENSIONS_DIR`` or torch's default."""
    explicit = os.environ.get("TORCH_EXTENSIONS_DIR")
    if explicit:
        return [Path(explicit)]
    from torch.utils.cpp_extension import _get_build_directory  # noqa: PLC0415 - torch private, only for the path

    try:
        return [Path(_get_build_directory("probe", verbose=False)).parent]
    except Exception:  # noqa: BLE001 - an unusual torch layout simply means nothing to clean
        return []


def find_stale_build_locks(
    roots: list[Path] | None = None, max_age_seconds: float = DEFAULT_MAX_LOCK_AGE_SECONDS
) -> list[tuple[Path, float]]:
    """``(lock, age in seconds)`` of every ``<root>/<op>/lock`` file older than ``max_age_seconds``.

    Args:
        roots: build roots to scan (default: :func:`extension_build_roots`).
        max_age_seconds: a lock younger than this is left alone (a build may be running).
    """
    if max_age_seconds <= 0:
        raise ValueError(f"max_age_seconds must be positive, got {max_age_seconds}")
    stale: list[tuple[Path, float]] = []
    now = time.time()
    for root in extension_build_roots() if roots is None else roots:
        if not root.is_dir():
            continue
        for lock in sorted(root.glob("*/lock")):
            try:
                age = now - lock.stat().st_mtime
            except FileNotFoundError:  # released meanwhile by its builder
                continue
            if age >= max_age_seconds:
                stale.append((lock, age))
    return stale


def _opted_in() -> bool:
    return os.environ.get(CLEAR_LOCKS_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def release_stale_build_locks(
    roots: list[Path] | None = None,
    max_age_seconds: float = DEFAULT_MAX_LOCK_AGE_SECONDS,
    remove: bool | None = None,
) -> list[Path]:
    """Remove stale build locks when asked, otherwise warn about each; return the removed paths.

    Args:
        roots: build roots to scan (default: :func:`extension_build_roots`).
        max_age_seconds: a lock younger than this is left alone (a build may be running).
        remove: delete the stale locks. ``None`` (default): only when the environment variable
            ``GFM_CLEAR_STALE_EXTENSION_LOCKS`` is ``1``; ``False``: never (warn only).
    """
    stale = find_stale_build_locks(roots, max_age_seconds)
    if remove is None:
        remove = _opted_in()
    removed: list[Path] = []
    for lock, age in stale:
        if not remove:
            logger.warning(
                "stale build lock %s (%.0f s old): a torch extension build killed mid-way leaves it, and every later "
                "load of that op (DeepSpeed loads one on each initialization) waits for it forever. Remove it "
                "(rm %s) or set %s=1 to let gfm remove such locks", lock, age, lock, CLEAR_LOCKS_VARIABLE,
            )
            continue
        try:
            lock.unlink()
        except FileNotFoundError:  # released meanwhile by its builder
            continue
        logger.warning(
            "removed a stale build lock %s (%.0f s old; %s=1): a build killed mid-way leaves it and every later "
            "load of that op would wait for it forever", lock, age, CLEAR_LOCKS_VARIABLE,
        )
        removed.append(lock)
    return removed
