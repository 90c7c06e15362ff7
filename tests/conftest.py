"""Shared fixtures: the real data folder (skip with a reason when absent), one torch thread, no network,
small packaged datasets.

Plain helper functions and classes (stand-in models, tiny configs, random sequences, tiny checkpoints)
live in :mod:`gfm.testing`; test modules never import each other.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _data_dir() -> Path | None:
    value = os.environ.get("GFM_DATA_DIR")
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder from ``GFM_DATA_DIR``; tests needing it skip when it is absent."""
    path = _data_dir()
    if path is None:
        pytest.skip(
            "real data folder not available: set GFM_DATA_DIR to ../shared/data "
            f"(GFM_DATA_DIR={os.environ.get('GFM_DATA_DIR')!r})"
        )
    return path


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread for the whole suite: the tests' models are tiny, and on a busy 2-core
    machine two threads run them several times slower than one (``make test`` also sets
    ``OMP_NUM_THREADS=1``; this covers a bare ``pytest`` run)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to open a connection or download."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def karate():
    """``packaged/karate`` (Zachary's karate club with its node task), loaded once per test module."""
    from gfm.data.registry import load

    return load("packaged/karate")
