"""Where the source checkout is, for tests and benchmarks that run its recipes or read its configs.

The recipes (``tokenizers/``, ``pretrain/``, ``finetune/``), ``configs/``, ``benchmarks/`` and
``tests/`` ship beside the library in the source tree, not in the wheel. Tests find them through
:func:`source_root` instead of counting parent folders from their own file, so a test file can
move within ``tests/`` without its paths breaking.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["source_root"]


@lru_cache(maxsize=1)
def source_root() -> Path:
    """The folder holding ``pyproject.toml`` and the ``gfm`` package that was imported.

    Raises ``FileNotFoundError`` when gfm was imported from an installed wheel rather than a
    source checkout (the recipes and configs are only in the checkout).
    """
    root = Path(__file__).resolve().parents[2]  # gfm/testing/paths.py -> the folder holding gfm/
    if not (root / "pyproject.toml").is_file():
        raise FileNotFoundError(
            f"gfm was imported from {root / 'gfm'}, which is not a source checkout (no pyproject.toml in {root}): "
            "the recipes, configs and tests live in the checkout; run them from a clone of the repository "
            "with `pip install -e .`"
        )
    return root
