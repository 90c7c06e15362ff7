"""Small C kernels built once with the system compiler, cached on disk and loaded with ctypes.

gfm's hot loops that PyTorch has no op for (the Eulerian walk, the CSR edge softmax) are plain
C99 sources compiled on first use. Each lives in a ``.c`` file beside its Python wrapper, shipped as
package data (``[tool.setuptools.package-data]`` in ``pyproject.toml``) and read through
:mod:`importlib.resources` (:class:`PackageSource`), so an installed wheel builds the same kernel as a
source checkout. A kernel is cached in ``$GFM_KERNEL_CACHE`` (default ``~/.cache/gfm/kernels``) under
a name that hashes its source text and flags (and the CPU, for ``-march=native`` builds): editing the
``.c`` file gives a new cache entry, never a stale library. Libraries are written atomically so a concurrent or interrupted build never leaves
a half-written library. Without a compiler, or with ``GFM_DISABLE_C_KERNELS=1``, :meth:`CKernel.load`
returns ``None`` and the caller uses its PyTorch / Python path (same results, slower); the reason
is logged once.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.resources
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["CKernel", "PackageSource", "kernel_cache_directory", "c_kernels_disabled"]


def kernel_cache_directory() -> Path:
    """Where built kernels are cached: ``$GFM_KERNEL_CACHE`` or ``~/.cache/gfm/kernels``."""
    return Path(os.environ.get("GFM_KERNEL_CACHE") or Path.home() / ".cache" / "gfm" / "kernels")


def c_kernels_disabled() -> bool:
    """``GFM_DISABLE_C_KERNELS=1`` (or true / yes) turns every C kernel off."""
    return os.environ.get("GFM_DISABLE_C_KERNELS", "").lower() in {"1", "true", "yes"}


def _cpu_signature() -> str:
    """The CPU a ``-march=native`` build is for (a cache shared across machines must not mix them)."""
    try:
        with open("/proc/cpuinfo") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return platform.machine() + "".join(lines)


@dataclass(frozen=True)
class PackageSource:
    """A kernel's C source shipped as package data: ``filename`` inside the package ``package``.

    Args:
        package: dotted name of the package holding the file (a wrapper passes its ``__package__``).
        filename: the ``.c`` file's name inside that package (``"walk_kernel.c"``).
    """

    package: str
    filename: str

    def read(self) -> str:
        """The source text, read with :mod:`importlib.resources` (works from a wheel and a checkout).

        Raises:
            FileNotFoundError: the file is not in the installed package (a broken install).
        """
        resource = importlib.resources.files(self.package).joinpath(self.filename)
        try:
            return resource.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"C source {self.filename} is missing from package {self.package} (a wheel built without "
                "its package data: reinstall gfm, pyproject.toml lists *.c under [tool.setuptools.package-data])"
            ) from err


class CKernel:
    """One C library: built on first :meth:`load`, then the same ``ctypes.CDLL`` every call.

    Args:
        name: file stem of the library and its source (``"gfm_csr_attention"``).
        source: the C99 source: a :class:`PackageSource` (how gfm's kernels ship, read on first
            use, not at import) or the source text itself.
        flags: compiler flags (``-shared -fPIC`` are added).
        link_flags: flags after the source (``["-lm"]``).
        declare: sets ``restype`` / ``argtypes`` of the library's functions after loading.
        fallback: what the caller does without the kernel, for the warning (``"using the Python walk"``).
    """

    def __init__(
        self,
        name: str,
        source: PackageSource | str,
        flags: Sequence[str],
        declare: Callable[[ctypes.CDLL], None],
        fallback: str,
        link_flags: Sequence[str] = (),
    ) -> None:
        self.name = name
        self._source = source
        self._source_text: str | None = source if isinstance(source, str) else None
        self.flags = [*flags, "-shared", "-fPIC"]
        self.link_flags = list(link_flags)
        self.declare = declare
        self.fallback = fallback
        self._lock = threading.Lock()
        self._library: ctypes.CDLL | None = None
        self._failed = False

    @property
    def source(self) -> str:
        """The C source text (a :class:`PackageSource` is read once, on first use)."""
        if self._source_text is None:
            assert isinstance(self._source, PackageSource)
            self._source_text = self._source.read()
        return self._source_text

    def target(self) -> Path:
        """The cached library's path (depends on source, flags and, for native builds, the CPU)."""
        key = self.source + " ".join(self.flags + self.link_flags)
        if any(flag.startswith("-march=native") for flag in self.flags):
            key += _cpu_signature()
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return kernel_cache_directory() / f"{self.name}_{digest}.so"

    def _compile(self, target: Path) -> None:
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise RuntimeError("no C compiler found (set CC or install gcc)")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            source = Path(tmp) / f"{self.name}.c"
            source.write_text(self.source)
            built = Path(tmp) / target.name
            result = subprocess.run(
                [compiler, *self.flags, "-o", str(built), str(source), *self.link_flags], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:2000]}")
            os.replace(built, target)  # atomic: a reader sees no library or a whole one

    def load(self) -> ctypes.CDLL | None:
        """The loaded library, or ``None`` (reason logged once) when it cannot be built or is disabled."""
        if self._library is not None or self._failed:
            return self._library
        if c_kernels_disabled():
            return None
        with self._lock:
            if self._library is not None or self._failed:
                return self._library
            try:
                target = self.target()  # reads the source: a missing .c file falls back like a failed build
                if not target.is_file():
                    self._compile(target)
                library = ctypes.CDLL(str(target))
                self.declare(library)
            except (OSError, RuntimeError, AttributeError) as err:
                logger.warning("C kernel %s unavailable (%s); %s", self.name, err, self.fallback)
                self._failed = True
                return None
            self._library = library
            return library
