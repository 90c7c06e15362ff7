"""Atomic writes (a reader never sees a half-written file or checkpoint directory) and file digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_directory", "fsync_directory", "sha256_file",
]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (``hashlib.file_digest`` needs Python 3.11)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_directory(path: str | os.PathLike) -> None:
    """Flush a directory entry to disk so a rename inside it survives a crash."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(final_path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success rename it to ``final_path``.

    A crash inside the block leaves only a ``.tmp-*`` sibling (never a directory under the
    final name), so loaders that look for ``final_path`` cannot pick up a partial write.

    Args:
        final_path: where the finished directory should appear.
        overwrite: replace an existing ``final_path``; otherwise an existing one is an error.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    if final_path.exists() and not overwrite:
        raise FileExistsError(f"{final_path} already exists; pass overwrite=True to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final_path.name}-", dir=final_path.parent))
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        if final_path.exists():
            trash = final_path.with_name(f".trash-{final_path.name}-{os.getpid()}")
            os.replace(final_path, trash)
            os.replace(tmp, final_path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final_path)
        fsync_directory(final_path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
