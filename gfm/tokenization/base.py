"""What every gfm graph tokenizer shares: batching, content hash, and loading by kind.

A tokenizer directory (``save_pretrained``) always holds ``tokenizer_config.json`` with at
least ``{"tokenizer_class": "<ClassName>", "content_hash": "<sha256>", "vocab_size": <int>}``
plus files of its own with names that cannot collide with a model's (``config.json``,
``model.safetensors``), so a tokenizer and a model can share one checkpoint directory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch_geometric.data import Data

from gfm.utils.errors import GFMError

from .tokenized_graph import TokenizedGraph, collate_tokenized_graphs

__all__ = [
    "GraphTokenizer",
    "AutoGraphTokenizer",
    "TOKENIZER_CONFIG_NAME",
    "TokenizerLoadError",
    "content_hash",
    "check_known_keys",
    "check_version",
    "check_special_ids",
]

TOKENIZER_CONFIG_NAME = "tokenizer_config.json"


class TokenizerLoadError(GFMError, ValueError):
    """A tokenizer directory is missing, incomplete or inconsistent."""


def content_hash(payload: Any, *blobs: bytes) -> str:
    """SHA-256 over a canonical JSON dump of ``payload`` followed by raw ``blobs``.

    Used as the identity of a trained tokenizer: the model config records it, and loading a
    checkpoint whose tokenizer hash differs from the model's is an error.
    """
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    for blob in blobs:
        digest.update(blob)
    return digest.hexdigest()


class GraphTokenizer(ABC):
    """Base class: ``encode`` one graph; ``__call__`` a list of graphs into a padded batch."""

    #: registry of concrete tokenizer classes by name, filled by ``__init_subclass__``.
    _registry: ClassVar[dict[str, type[GraphTokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        GraphTokenizer._registry[cls.__name__] = cls

    # -- what subclasses provide ------------------------------------------------------------
    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids (every id in ``TokenizedGraph.input_ids`` is below it)."""

    @property
    @abstractmethod
    def pad_token_id(self) -> int:
        """Id used for padding."""

    @property
    @abstractmethod
    def content_hash(self) -> str:
        """Stable SHA-256 of everything that determines the tokenizer's output."""

    @abstractmethod
    def encode(self, graph: Data, **kwargs: Any) -> TokenizedGraph:
        """Tokenize one graph."""

    @abstractmethod
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write the tokenizer (including ``tokenizer_config.json``) and return the directory."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> GraphTokenizer:
        """Load a tokenizer written by :meth:`save_pretrained`."""

    # -- shared behaviour -------------------------------------------------------------------
    def encode_batch(self, graphs: Iterable[Data], **kwargs: Any) -> list[TokenizedGraph]:
        return [self.encode(g, **kwargs) for g in graphs]

    def __call__(
        self,
        graphs: Data | Sequence[Data],
        padding: bool = True,
        return_tensors: str | None = "pt",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        **encode_kwargs: Any,
    ) -> dict[str, torch.Tensor] | list[TokenizedGraph]:
        """Tokenize graphs like a transformers tokenizer.

        Args:
            graphs: one ``Data`` or a list of them.
            padding: with ``return_tensors="pt"``, pad into one batch (required: graph batches
                cannot be ragged tensors).
            return_tensors: ``"pt"`` for a batch dict (see ``tokenized_graph``), ``None`` for the
                list of :class:`TokenizedGraph`.
            max_length: raise if a sequence is longer (never truncates).
        """
        if isinstance(graphs, Data):
            graphs = [graphs]
        encoded = self.encode_batch(graphs, **encode_kwargs)
        if return_tensors is None:
            return encoded
        if return_tensors != "pt":
            raise ValueError(f"return_tensors={return_tensors!r} is not supported; use 'pt' or None")
        if not padding:
            raise ValueError("return_tensors='pt' needs padding=True: token sequences of graphs differ in length")
        return collate_tokenized_graphs(
            encoded, pad_token_id=self.pad_token_id, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of
        )

    def _write_tokenizer_config(self, directory: Path, extra: dict[str, Any]) -> None:
        config = {
            "tokenizer_class": type(self).__name__,
            "content_hash": self.content_hash,
            "vocab_size": self.vocab_size,
            "pad_token_id": self.pad_token_id,
            **extra,
        }
        tmp = directory / (TOKENIZER_CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
        os.replace(tmp, directory / TOKENIZER_CONFIG_NAME)


def read_tokenizer_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / TOKENIZER_CONFIG_NAME
    if not path.is_file():
        raise TokenizerLoadError(
            f"{directory}: no {TOKENIZER_CONFIG_NAME}; this is not a gfm tokenizer directory "
            "(write one with tokenizer.save_pretrained(dir))"
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise TokenizerLoadError(f"{path}: not valid JSON ({err}); the file is damaged, save the tokenizer again") from err
    if not isinstance(config, dict):
        raise TokenizerLoadError(
            f"{path}: holds a JSON {type(config).__name__}, not an object; the file is damaged, save the tokenizer again"
        )
    return config


def check_known_keys(path: str | os.PathLike, entry: Any, known: Iterable[str], where: str = "") -> None:
    """Raise :class:`TokenizerLoadError` if the JSON object ``entry`` of file ``path`` holds a key
    this gfm does not write (an edit, a typo, or a file from a newer gfm).

    Args:
        path: the file, named in the message.
        entry: the JSON object read from it (anything else is an error too).
        known: the keys this gfm writes there.
        where: the object's place in the file (``"settings"``, ``"schemas[0]"``), ``""`` for the top level.

    The message names the file, the key, the closest known key and the fix.
    """
    inside = f" in '{where}'" if where else ""
    if not isinstance(entry, Mapping):
        raise TokenizerLoadError(
            f"{path}: expected a JSON object{inside}, found {type(entry).__name__} {entry!r:.80}; the file was edited "
            "or damaged: save the tokenizer again"
        )
    known = sorted(known)
    unknown = [key for key in entry if key not in known]
    if not unknown:
        return
    key = str(unknown[0])
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    more = f" (and {len(unknown) - 1} more unknown: {[str(k) for k in unknown[1:]]})" if len(unknown) > 1 else ""
    raise TokenizerLoadError(
        f"{path}: unknown key {key!r}{inside}{hint}{more}; this gfm reads only {known} there: remove it or correct "
        "its spelling (if a newer gfm wrote this file, upgrade gfm)"
    )


def check_version(path: str | os.PathLike, key: str, found: Any, supported: Sequence[int]) -> None:
    """Raise :class:`TokenizerLoadError` unless ``found`` (the file's ``key``) is one of ``supported``."""
    if found in supported and not isinstance(found, bool):
        return
    versions = ", ".join(str(v) for v in supported)
    raise TokenizerLoadError(
        f"{path}: {key!r} is {found!r}; this gfm reads {key} {versions} of this file. A newer gfm wrote it (upgrade "
        "gfm: pip install -U gfm) or it was edited (restore the value, or save the tokenizer again with this gfm)"
    )


def check_special_ids(
    path: str | os.PathLike, found: Mapping[str, tuple[str, Any]], expected: Mapping[str, int], tokenizer_class: str
) -> None:
    """Raise :class:`TokenizerLoadError` if a file records other ids for the special tokens than the fixed ones.

    Args:
        path: the file, named in the message.
        found: special token -> ``(the key or list it was read from, the id found)``.
        expected: special token -> the id this gfm gives it.
        tokenizer_class: named in the message.
    """
    wrong = [(token, where, value) for token, (where, value) in found.items() if value != expected[token]]
    if not wrong:
        return
    parts = []
    for number, (token, where, value) in enumerate(wrong):
        if number == 0:
            parts.append(f"special token {token!r} has id {value!r} in {where!r}, but this gfm's {tokenizer_class} "
                         f"uses id {expected[token]}")
        else:
            parts.append(f"{token!r} has id {value!r} in {where!r}, but this gfm uses id {expected[token]}")
    raise TokenizerLoadError(
        f"{path}: " + "; ".join(parts) + ". The special token ids are fixed (gfm/tokenization/special_tokens.py) "
        "and written into every corpus and checkpoint made with the tokenizer, so they cannot be remapped by "
        "editing the file: restore the ids, or save the tokenizer again"
    )


class AutoGraphTokenizer:
    """Load whichever gfm tokenizer a directory holds, by its ``tokenizer_class``."""

    @staticmethod
    def from_pretrained(directory: str | os.PathLike, **kwargs: Any) -> GraphTokenizer:
        # Importing the concrete tokenizers registers their classes (never the root package ``gfm``).
        from . import eulerian, quantized  # noqa: F401

        config = read_tokenizer_config(directory)
        name = config.get("tokenizer_class")
        if name not in GraphTokenizer._registry:
            raise TokenizerLoadError(
                f"{directory}: tokenizer_class={name!r} is not a gfm tokenizer; "
                f"known: {sorted(GraphTokenizer._registry)}"
            )
        return GraphTokenizer._registry[name].from_pretrained(directory, **kwargs)
