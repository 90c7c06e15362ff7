"""Lazy package exports: ``from gfm.data import load`` without importing every submodule up front."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for a package whose names live in submodules.

    Args:
        package: the package's name (for the ``AttributeError`` message).
        namespace: the package's ``globals()``; a name is cached there on first access.
        exports: public name -> module that defines it.

    Use in a package's ``__init__``: ``__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_EXPORTS)``.
    """

    def __getattr__(name: str) -> Any:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
