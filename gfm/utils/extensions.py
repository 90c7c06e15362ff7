"""Guard against stale build locks of PyTorch JIT extensions (DeepSpeed ops).

``torch.utils.cpp_extension.load`` serializes builds with a ``lock`` file in the op's build
directory and *every* later load waits for that file to disappear, with no timeout, even when
the op is already built. A process killed while building (a cancelled CI job, SIGKILL, an OOM
kill) leaves the file behind and every later ``deepspeed.initialize`` on that machine hangs
forever: on a CPU, DeepSpeed loads its ``deepspeed_shm_comm`` op on every initialization.

A DeepSpeed op builds in well under a minute here (``deepspeed_shm_comm`` ~24 s, ``cpu_adam``
~39 s), so a lock older than ``max_age_seconds`` (default 15 minutes) cannot belong to a live
build; it is removed with a warning that names it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MAX_LOCK_AGE_SECONDS = 15 * 60


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


def release_stale_build_locks(
    roots: list[Path] | None = None, max_age_seconds: float = DEFAULT_MAX_LOCK_AGE_SECONDS
) -> list[Path]:
    """Remove ``<root>/<op>/lock`` files older than ``max_age_seconds``; return the removed paths.

    Args:
        roots: build roots to scan (default: :func:`extension_build_roots`).
        max_age_seconds: a lock younger than this is left alone (a build may be running).
    """
    if max_age_seconds <= 0:
        raise ValueError(f"max_age_seconds must be positive, got {max_age_seconds}")
    removed: list[Path] = []
    now = time.time()
    for root in extension_build_roots() if roots is None else roots:
        if not root.is_dir():
            continue
        for lock in root.glob("*/lock"):
            try:
                age = now - lock.stat().st_mtime
            except FileNotFoundError:  # released meanwhile by its builder
                continue
            if age < max_age_seconds:
                continue
            try:
                lock.unlink()
            except FileNotFoundError:
                continue
            logger.warning(
                "removed a stale build lock %s (%.0f s old; a build killed mid-way leaves it and every later "
                "load of that op would wait for it forever)", lock, age,
            )
            removed.append(lock)
    return removed
