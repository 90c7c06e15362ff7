"""One run per output folder: an exclusive lock file ``<output_dir>/run.lock``.

Two runs writing into one folder mix their ``metrics.csv``, rotate each other's checkpoints
and overwrite each other's ``final/``. The main process of a run therefore holds
``run.lock`` from start to end:

- the file is opened (created if absent) and locked with ``fcntl.flock(LOCK_EX | LOCK_NB)``;
  the kernel releases the lock when the process dies, however it dies (``kill -9`` included),
  so a lock can never outlive its holder on a filesystem that supports ``flock``;
- the holder writes its pid, host, start time and command line into the file;
- a second run fails at once with :class:`OutputDirInUseError` naming the holder;
- a lock file left by a process that is gone (the lock is free, the file still names it) is
  **taken over with a logged warning** naming the old pid, host and start time: that is what a
  run killed mid-way leaves, and resuming it must not need a manual step;
- on a filesystem without ``flock`` (some network filesystems), the file is created with
  ``O_EXCL`` instead; a file naming a dead process of this host is taken over (warning), one
  naming another host or a live process is an error that says to delete the file once that run
  is known to be over.

The lock is released (file removed) at the end of the run, also when it fails.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from .errors import OutputDirInUseError

__all__ = ["LOCK_NAME", "RunLock", "read_lock_holder"]

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def read_lock_holder(path: str | os.PathLike) -> dict[str, Any]:
    """The holder a lock file names (``{}`` when the file is empty, missing or unreadable)."""
    try:
        text = Path(path).read_text()
        return json.loads(text) if text.strip() else {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "a run that has not yet written its details"
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"
            f"{', command: ' + holder['command'] if holder.get('command') else ''}")


class RunLock:
    """The exclusive lock of one output folder (take it on the main process only).

    Args:
        output_dir: the run folder (created if missing).
    """

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / LOCK_NAME
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None

    def _identity(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:500],
        }

    def _in_use(self, holder: dict[str, Any]) -> OutputDirInUseError:
        return OutputDirInUseError(
            f"output_dir {self.output_dir} is in use by another run ({_describe(holder)}; lock file {self.path}). "
            "Two runs in one folder would mix metrics.csv, rotate each other's checkpoints and overwrite final/: "
            "wait for that run to end, stop it, or give this run another output_dir"
        )

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`OutputDirInUseError` naming the run that holds it."""
        import fcntl

        self.output_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # retried only when the holder removed the file between our open and lock
            try:
                fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                try:
                    fd, created = os.open(self.path, os.O_RDWR), False
                except FileNotFoundError:
                    continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._in_use(read_lock_holder(self.path)) from None
            except OSError as err:
                os.close(fd)
                if err.errno in _NO_FLOCK:
                    if created:
                        os.unlink(self.path)
                    return self._acquire_exclusive_create()
                raise
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:
                os.close(fd)
                continue
            previous = read_lock_holder(self.path)
            if previous and previous.get("pid") != os.getpid():
                self._report_takeover(previous)
            self._fd = fd
            self._write_identity(fd)
            return self
        raise self._in_use(read_lock_holder(self.path))

    def _acquire_exclusive_create(self) -> RunLock:
        """Fallback without ``flock``: ``O_EXCL`` create; a dead holder of this host is taken over."""
        logger.warning("%s: the filesystem does not support flock; using an O_EXCL lock file instead", self.path)
        for attempt in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_lock_holder(self.path)
                dead_here = (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
                             and not _pid_alive(holder["pid"]))
                if attempt or not dead_here:
                    error = self._in_use(holder)
                    raise OutputDirInUseError(
                        f"{error} (this filesystem has no flock, so gfm cannot tell whether a run on another host is "
                        f"still alive; once it is known to be over, delete {self.path})"
                    ) from None
                self._report_takeover(holder)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            self._fd = fd
            self._write_identity(fd)
            return self
        raise self._in_use(read_lock_holder(self.path))  # pragma: no cover - loop always returns or raises

    def _report_takeover(self, previous: dict[str, Any]) -> None:
        self.took_over = previous
        logger.warning(
            "%s was left by a run that is no longer running (%s); taking the lock over. This is what a run killed "
            "mid-way leaves; if that run is somehow still writing here, stop one of the two",
            self.path, _describe(previous),
        )

    def _write_identity(self, fd: int) -> None:
        self.holder = self._identity()
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(self.holder) + "\n").encode(), 0)
        os.fsync(fd)

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
