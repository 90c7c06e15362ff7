"""Attention backends (see :mod:`.registry` for the common signature).

Importing this package imports every module in it, and each module registers its backend:
adding a backend means adding one file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import (
    AUTO,
    AttentionBackend,
    AttentionBackendError,
    BackendUnavailableError,
    UnknownAttentionBackendError,
    UnsupportedPatternError,
    attention_backend_names,
    get_backend,
    register_backend,
    select_backend,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "AUTO",
    "AttentionBackend",
    "AttentionBackendError",
    "BackendUnavailableError",
    "UnknownAttentionBackendError",
    "UnsupportedPatternError",
    "attention_backend_names",
    "get_backend",
    "register_backend",
    "select_backend",
]
