"""The one place gfm reads Python pickles: legacy source formats that exist only as pickles.

The Planetoid raw files (``ind.<name>.x`` ...) are Python-2 pickles of scipy/numpy objects and
the OpenGraph ``ddi`` split is a set of pickled ``scipy.sparse.coo_matrix`` objects. There is no
other encoding of these sources, so unpickling is unavoidable for them. To keep that safe, the
unpickler below resolves only an allow-list of numpy / scipy.sparse / collections classes: a
pickle naming anything else (e.g. ``os.system``) is refused before any code runs. gfm never
pickles its own data (it writes Arrow, safetensors and JSON).
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

from .dataset import DataFormatError

__all__ = ["load_legacy_pickle"]

_CONTAINERS = ("list", "dict", "set", "tuple", "int", "float", "complex", "object", "bytearray")
_ALLOWED_EXACT = {
    ("collections", "defaultdict"),
    ("collections", "OrderedDict"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    *(("builtins", name) for name in _CONTAINERS),
    *(("__builtin__", name) for name in _CONTAINERS),  # Python-2 pickles
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolve only numpy arrays/dtypes, scipy.sparse matrices and plain containers."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = (module, name) in _ALLOWED_EXACT or (
            module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array"))
        )
        if not allowed:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a legacy data pickle (only numpy / scipy.sparse data is allowed)"
            )
        if module.startswith("scipy.sparse.") and hasattr(importlib.import_module("scipy.sparse"), name):
            module = "scipy.sparse"  # old private module paths (scipy.sparse.csr) are deprecated aliases
        return super().find_class(module, name)


def load_legacy_pickle(source: str | Path | bytes, description: str, encoding: str = "latin1") -> Any:
    """Unpickle a legacy *data* file (numpy / scipy.sparse / dict of lists) with an allow-list.

    Args:
        source: a path, or the raw bytes (e.g. read from a zip member).
        description: how to name the file in errors (``"planetoid/ind.cora.graph"``).
        encoding: ``"latin1"`` for Python-2 pickles holding numpy arrays.

    Raises:
        DataFormatError: the file is not a data pickle of the allowed kinds, or is damaged.
    """
    payload = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        return _RestrictedUnpickler(io.BytesIO(payload), encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as err:
        raise DataFormatError(
            f"{description}: not a readable legacy data pickle ({err}); replace it with the original source file"
        ) from err
