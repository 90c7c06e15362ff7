"""The files of a gfm model folder, and the checks every load runs before trusting them.

A gfm model folder holds ``config.json``, the weights as safetensors (``model.safetensors``, or
shards listed in ``model.safetensors.index.json``) and, when :func:`gfm.hub.save_checkpoint` or
the pretraining export wrote it, ``weights_manifest.json``: the size and SHA-256 of every
weights file at save time. ``from_pretrained`` of every gfm model class (so also
``AutoModel.from_pretrained``) and :func:`gfm.hub.load_checkpoint` check, in this order:

1. ``config.json`` is there (transformers would otherwise build a default config, or fail on a
   missing ``model_type``);
2. the weights are safetensors: pickle-based files (``pytorch_model.bin``, ``*.pt``, ``*.pth``,
   ``*.ckpt``, ...) are refused and never read, since unpickling runs arbitrary code;
3. each safetensors file is whole (its header parses and every tensor's bytes are present);
4. each weights file matches the manifest, when there is one (byte corruption of the same size);
5. after loading, every floating-point weight is finite (also for folders written before the
   manifest existed).

Each failure is a named error whose message names the file and the fix.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_write_json, sha256_file

__all__ = [
    "CONFIG_NAME",
    "SAFE_WEIGHTS_NAME",
    "SAFE_WEIGHTS_INDEX_NAME",
    "WEIGHTS_MANIFEST_NAME",
    "GFMCheckpointFileError",
    "GFMCorruptWeightsError",
    "GFMNonFiniteWeightsError",
    "safetensors_files",
    "write_weights_manifest",
    "verify_weights_manifest",
    "verify_safetensors_file",
    "check_model_folder",
    "check_finite_weights",
]

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_MANIFEST_NAME = "weights_manifest.json"
MANIFEST_FORMAT = "gfm-weights-manifest/1"

#: weight files transformers or torch would read with pickle (or another non-safetensors format)
_UNSAFE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".gguf")


class GFMCheckpointFileError(GFMError, FileNotFoundError):
    """A model folder lacks a file gfm needs (``config.json``, safetensors weights), or offers
    weights only in a format gfm refuses to read (pickle)."""


class GFMCorruptWeightsError(GFMError, ValueError):
    """A weights file is truncated, its header is damaged, or it does not match its SHA-256 manifest."""


class GFMNonFiniteWeightsError(GFMCorruptWeightsError):
    """Weights hold NaN or infinite values (a diverged run, or corrupted bytes)."""


def safetensors_files(directory: str | os.PathLike) -> list[Path]:
    """The safetensors weights of a folder: ``model.safetensors`` or the shards its index names.

    Raises:
        GFMCorruptWeightsError: the shard index is not valid JSON.
    """
    directory = Path(directory)
    index = directory / SAFE_WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise GFMCorruptWeightsError(
                f"{index}: damaged shard index ({err}); save the model again with save_pretrained"
            ) from err
        return [directory / name for name in sorted(set(weight_map.values()))]
    single = directory / SAFE_WEIGHTS_NAME
    return [single] if single.is_file() else []


def _manifest_targets(directory: Path) -> list[Path]:
    files = safetensors_files(directory)
    index = directory / SAFE_WEIGHTS_INDEX_NAME
    return ([index] if index.is_file() else []) + files


def write_weights_manifest(directory: str | os.PathLike) -> Path:
    """Write ``weights_manifest.json`` (size and SHA-256 of every weights file) into ``directory``.

    Call it right after ``save_pretrained`` into the same (temporary) folder.

    Raises:
        GFMCheckpointFileError: the folder holds no safetensors weights.
    """
    directory = Path(directory)
    targets = _manifest_targets(directory)
    if not any(p.suffix == ".safetensors" for p in targets):
        raise GFMCheckpointFileError(
            f"{directory}: no {SAFE_WEIGHTS_NAME} to record in {WEIGHTS_MANIFEST_NAME}; save with "
            "save_pretrained(..., safe_serialization=True) first"
        )
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in targets}
    return atomic_write_json(directory / WEIGHTS_MANIFEST_NAME, {"format": MANIFEST_FORMAT, "files": files})


def verify_weights_manifest(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Check every weights file of ``directory`` against ``weights_manifest.json``.

    Returns the manifest, or ``None`` when the folder has none (written before gfm recorded
    one, or by plain ``save_pretrained``): then only the non-finite check protects the load.

    Raises:
        GFMCorruptWeightsError: the manifest is damaged, a listed file is missing or differs
            (size or SHA-256), or a weights file the loader would read is not listed.
    """
    directory = Path(directory)
    path = directory / WEIGHTS_MANIFEST_NAME
    if not path.is_file():
        return None
    fix = "the file was changed after it was saved (disk or copy corruption?): copy or save the checkpoint again"
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise GFMCorruptWeightsError(f"{path}: damaged manifest ({err}); save the checkpoint again") from err
    for name, expected in sorted(files.items()):
        file = directory / name
        if not file.is_file():
            raise GFMCorruptWeightsError(f"{file}: listed in {WEIGHTS_MANIFEST_NAME} but missing; {fix}")
        size = file.stat().st_size
        if size != expected["size"]:
            raise GFMCorruptWeightsError(
                f"{file}: {size} bytes on disk, {WEIGHTS_MANIFEST_NAME} recorded {expected['size']}; {fix}"
            )
        digest = sha256_file(file)
        if digest != expected["sha256"]:
            raise GFMCorruptWeightsError(
                f"{file}: SHA-256 {digest[:16]}… does not match {expected['sha256'][:16]}… recorded in "
                f"{WEIGHTS_MANIFEST_NAME} at save time; {fix}"
            )
    unlisted = [p.name for p in _manifest_targets(directory) if p.name not in files]
    if unlisted:
        raise GFMCorruptWeightsError(
            f"{directory}: weights file(s) {unlisted} are not in {WEIGHTS_MANIFEST_NAME} (added or renamed after "
            "saving); save the checkpoint again so the manifest covers what is loaded"
        )
    return manifest


def verify_safetensors_file(path: str | os.PathLike) -> dict[str, Any]:
    """Check a safetensors file is whole: the header parses and every tensor's bytes are present.

    Returns the parsed header.

    Raises:
        GFMCheckpointFileError: the file does not exist.
        GFMCorruptWeightsError: too short, header damaged, or data cut off (names the sizes).
    """
    path = Path(path)
    if not path.is_file():
        raise GFMCheckpointFileError(f"{path}: weights file is missing; save the model again with save_pretrained")
    size = path.stat().st_size
    fix = "the file was cut short (interrupted copy or download?): copy or save the checkpoint again"
    if size < 8:
        raise GFMCorruptWeightsError(f"{path}: {size} bytes is too short for a safetensors file; {fix}")
    with open(path, "rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        if 8 + header_size > size:
            raise GFMCorruptWeightsError(f"{path}: header claims {header_size} bytes but the file has {size}; {fix}")
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise GFMCorruptWeightsError(f"{path}: header is not valid JSON ({err}); {fix}") from err
    if not isinstance(header, dict):
        raise GFMCorruptWeightsError(f"{path}: header is not a JSON object; {fix}")
    try:
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, IndexError) as err:
        raise GFMCorruptWeightsError(f"{path}: header lacks tensor data offsets ({err}); {fix}") from err
    expected = 8 + header_size + end
    if size < expected:
        raise GFMCorruptWeightsError(f"{path}: truncated: {size} bytes on disk, header needs {expected}; {fix}")
    return header


def _unsafe_weight_files(directory: Path) -> list[str]:
    return sorted(
        p.name for p in directory.iterdir()
        if p.is_file() and (p.suffix in _UNSAFE_WEIGHT_SUFFIXES or p.name.endswith(".bin.index.json")
                            or p.name.startswith("model.ckpt"))
    )


def check_model_folder(directory: str | os.PathLike, need_config: bool = True) -> list[Path]:
    """Checks 1-4 of the module docstring on a local model folder; returns its safetensors files.

    Args:
        directory: the folder ``from_pretrained`` reads.
        need_config: require ``config.json`` (``False`` when the caller passes a config object).

    Raises:
        GFMCheckpointFileError: ``config.json`` missing, or no safetensors weights (pickle ones
            are named and refused).
        GFMCorruptWeightsError: a safetensors file is cut short or differs from the manifest.
    """
    directory = Path(directory)
    if need_config and not (directory / CONFIG_NAME).is_file():
        present = sorted(p.name for p in directory.iterdir())[:8] if directory.is_dir() else []
        raise GFMCheckpointFileError(
            f"{directory}: {CONFIG_NAME} is missing in this directory (it holds {present}); a gfm model folder "
            f"needs the {CONFIG_NAME} written by save_pretrained beside its weights: copy it back from where the "
            "checkpoint came from, or save the model again"
        )
    files = safetensors_files(directory)
    if not files:
        unsafe = _unsafe_weight_files(directory) if directory.is_dir() else []
        if unsafe:
            raise GFMCheckpointFileError(
                f"{directory}: no {SAFE_WEIGHTS_NAME}, only {unsafe}: gfm loads safetensors only and never reads "
                "pickle-based weights (unpickling can run arbitrary code). Use the original model.safetensors, or "
                "convert a file you trust yourself (torch.load(..., weights_only=True), then save_pretrained)"
            )
        raise GFMCheckpointFileError(
            f"{directory}: no {SAFE_WEIGHTS_NAME} in this directory; save the model with save_pretrained "
            "(safetensors) or copy its weights file back"
        )
    for file in files:
        verify_safetensors_file(file)
    verify_weights_manifest(directory)
    return files


def check_finite_weights(named_tensors: Iterable[tuple[str, torch.Tensor]], source: str) -> None:
    """Raise :class:`GFMNonFiniteWeightsError` naming the tensors that hold NaN or infinite values.

    Args:
        named_tensors: ``(name, tensor)`` pairs, e.g. ``model.state_dict().items()``.
        source: what the tensors come from (a path, "the model"), for the message.
    """
    bad = []
    for name, tensor in named_tensors:
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.is_meta:
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad.append(f"{name} ({int((~finite).sum())} of {tensor.numel()})")
    if bad:
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        raise GFMNonFiniteWeightsError(
            f"{source}: weights hold NaN or infinite values: {shown}. A diverged training run or corrupted bytes; "
            "use an earlier checkpoint, or retrain with a lower learning_rate / gradient clipping"
        )
