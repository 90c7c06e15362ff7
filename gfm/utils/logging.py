"""Logging setup for recipes and the CLI (library modules only call ``logging.getLogger``)."""

from __future__ import annotations

import logging
import os

__all__ = ["setup_logging"]


def setup_logging(level: int | str | None = None) -> None:
    """Configure the root logger once: ``GFM_LOG_LEVEL`` or ``level`` (default INFO)."""
    level = level or os.environ.get("GFM_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "filelock", "fsspec", "matplotlib", "PIL", "datasets", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
