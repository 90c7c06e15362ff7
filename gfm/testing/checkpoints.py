"""Tiny saved checkpoints and a hand-made hub cache, for the hub, adapter and pipeline tests.

* :func:`tiny_config_for` / :func:`save_tiny_checkpoint`: a randomly initialized
  ``GFMForPretraining`` sized for a tokenizer's vocabulary, saved with its tokenizer by
  :func:`gfm.hub.save_checkpoint` (what a pretraining run exports, in a second).
* :func:`as_hub_cache`: lay a checkpoint folder out as ``huggingface_hub``'s cache does, so it
  loads by repo id with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from gfm.hub import save_checkpoint
from gfm.modeling import GFMConfig, GFMForPretraining
from gfm.tokenization.base import GraphTokenizer
from gfm.tokenization.eulerian import EulerianTokenizer

__all__ = ["HUB_REVISION", "tiny_config_for", "save_tiny_checkpoint", "as_hub_cache"]

#: The commit hash :func:`as_hub_cache` files the snapshot under (``refs/main`` points at it).
HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"


def tiny_config_for(tokenizer: GraphTokenizer, **overrides: Any) -> GFMConfig:
    """A small ``GFMConfig`` for ``tokenizer``'s vocabulary and pad id (hidden 64, 2 layers, 4 heads)."""
    settings: dict[str, Any] = dict(
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=2048,
    )
    settings.update(overrides)
    return GFMConfig(**settings)


def save_tiny_checkpoint(directory: str | Path, graphs: Sequence[Data], *, seed: int = 0, num_index_tokens: int = 64,
                         overwrite: bool = False, **config_overrides: Any) -> Path:
    """Train an ``EulerianTokenizer`` on ``graphs``, seed torch with ``seed``, save a fresh model beside it.

    ``config_overrides`` go to :func:`tiny_config_for`. Returns ``directory``.
    """
    tokenizer = EulerianTokenizer.train(graphs, num_index_tokens=num_index_tokens)
    config = tiny_config_for(tokenizer, **config_overrides)
    torch.manual_seed(seed)
    return save_checkpoint(GFMForPretraining(config), tokenizer, directory, overwrite=overwrite)


def as_hub_cache(checkpoint_dir: Path, cache: Path, repo_id: str, revision: str = HUB_REVISION) -> Path:
    """Lay ``checkpoint_dir`` out exactly as huggingface_hub's cache does under ``cache``.

    ``models--{org}--{name}/blobs/`` holds the files, ``snapshots/{revision}/`` links to them and
    ``refs/main`` names the revision. Returns the snapshot folder.
    """
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    blobs = repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for file in checkpoint_dir.iterdir():
        blob = blobs / f"blob-{file.name}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot
