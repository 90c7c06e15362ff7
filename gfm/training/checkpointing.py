"""Atomic, verifiable, resumable checkpoints around ``accelerator.save_state``.

Layout of ``<output_dir>/checkpoints/``::

    step-00000100/              complete checkpoints only (renamed into place as the last act)
        (accelerate / DeepSpeed state files)
        rng_state_<rank>.json   python / numpy / torch RNG states of each process (no pickle)
        trainer_state.json      step, data position, run identity, manifest of every file
    .tmp-step-00000200/         a checkpoint being written; never loaded, removed on next save

A checkpoint is written into ``.tmp-step-N`` by every process, then the main process writes
``trainer_state.json`` (with the size and SHA-256 of every file), fsyncs, and renames the
directory to ``step-N``. A run killed at any moment therefore leaves either a complete
``step-N`` or a ``.tmp-*`` directory that :func:`find_latest_checkpoint` ignores; a ``step-N``
whose files no longer match their manifest is reported and skipped (and when *no* checkpoint
verifies, the trainer stops instead of starting afresh). Rotation (``keep_last``) removes only
checkpoints of the same run identity: never one it cannot read or one of another configuration.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gfm.utils.io import atomic_write_json, fsync_directory, sha256_file

from .errors import CheckpointConfigMismatchError, CorruptCheckpointError

__all__ = [
    "TRAINER_STATE_NAME",
    "checkpoint_name",
    "list_checkpoints",
    "find_latest_checkpoint",
    "latest_verified_checkpoint",
    "same_run",
    "verify_checkpoint",
    "read_trainer_state",
    "save_training_state",
    "check_resume_identity",
    "rng_state_dict",
    "restore_rng_state",
]

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
_CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete-looking checkpoint directories under ``root``, oldest first (``.tmp-*`` excluded)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def _manifest(directory: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != TRAINER_STATE_NAME:
            files[str(path.relative_to(directory))] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return files


def read_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    path = Path(checkpoint) / TRAINER_STATE_NAME
    if not path.is_file():
        raise CorruptCheckpointError(
            f"{checkpoint}: no {TRAINER_STATE_NAME}; the checkpoint was not completely written and cannot be resumed"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorruptCheckpointError(f"{path}: damaged ({err}); resume from an older checkpoint") from err


def verify_checkpoint(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Check every file against the manifest; return the trainer state.

    Raises:
        CorruptCheckpointError: a file is missing, has another size or another SHA-256.
    """
    checkpoint = Path(checkpoint)
    state = read_trainer_state(checkpoint)
    for relative, expected in state.get("manifest", {}).items():
        path = checkpoint / relative
        if not path.is_file():
            raise CorruptCheckpointError(f"{checkpoint}: file {relative} listed in the manifest is missing")
        if path.stat().st_size != expected["size"]:
            raise CorruptCheckpointError(
                f"{checkpoint}: file {relative} has {path.stat().st_size} bytes, the manifest says {expected['size']} "
                "(truncated or overwritten)"
            )
        if sha256_file(path) != expected["sha256"]:
            raise CorruptCheckpointError(f"{checkpoint}: file {relative} does not match its SHA-256 in the manifest")
    if not state.get("manifest"):
        raise CorruptCheckpointError(f"{checkpoint}: the manifest is empty; the checkpoint holds no state")
    return state


def find_latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """Newest checkpoint under ``root`` that verifies; broken ones are logged and skipped."""
    return latest_verified_checkpoint(root)[0]


def latest_verified_checkpoint(root: str | os.PathLike) -> tuple[Path | None, list[tuple[Path, str]]]:
    """Newest checkpoint under ``root`` that verifies, and every newer one that did not, with its reason.

    Returns:
        ``(checkpoint or None, [(checkpoint, why it failed), ...])``; with ``None`` and a non-empty
        list, checkpoints exist but not one of them can be resumed.
    """
    failures: list[tuple[Path, str]] = []
    for checkpoint in reversed(list_checkpoints(root)):
        try:
            verify_checkpoint(checkpoint)
        except CorruptCheckpointError as err:
            logger.warning("skipping checkpoint that does not verify: %s", err)
            failures.append((checkpoint, str(err)))
            continue
        return checkpoint, failures
    return None, failures


def same_run(checkpoint: str | os.PathLike, identity: Mapping[str, Any] | None) -> bool:
    """Whether ``checkpoint`` was written by a run with this identity (its state readable, identity equal)."""
    try:
        recorded = read_trainer_state(checkpoint).get("identity")
    except CorruptCheckpointError:
        return False
    if recorded is None or identity is None:
        return False
    return json.dumps(recorded, sort_keys=True, default=str) == json.dumps(identity, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------
# RNG states as JSON (accelerate stores them pickled and skips a failed restore silently)
# ---------------------------------------------------------------------------------------------
def _tensor_to_text(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _text_to_byte_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def rng_state_dict() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states of this process, JSON-serializable."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": _tensor_to_text(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_tensor_to_text(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(_text_to_byte_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_text_to_byte_tensor(s) for s in state["cuda"]])


# ---------------------------------------------------------------------------------------------
# save / resume
# ---------------------------------------------------------------------------------------------
def save_training_state(
    accelerator: Any,
    root: str | os.PathLike,
    step: int,
    trainer_state: Mapping[str, Any],
    keep_last: int,
) -> Path:
    """Write the training state of ``step`` (model, optimizer, scheduler, RNG, data position) atomically.

    Keeps the newest ``keep_last`` such checkpoints; call on every process. (This is what a run
    resumes from; the model + tokenizer a run exports are written by ``Pretrainer.export``, and
    ``gfm.hub.save_checkpoint`` writes such an export with a model card.)

    Args:
        accelerator: the run's ``accelerate.Accelerator`` (model, optimizer, scheduler prepared).
        root: ``<output_dir>/checkpoints``.
        step: optimizer steps done.
        trainer_state: JSON-serializable run state (data position, identity, ...).
        keep_last: how many complete checkpoints to keep.
    """
    root = Path(root)
    final = root / checkpoint_name(step)
    temporary = root / f".tmp-{checkpoint_name(step)}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)  # left by a run killed while saving
        temporary.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    atomic_write_json(temporary / f"rng_state_{accelerator.process_index}.json", rng_state_dict())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = dict(trainer_state)
        state["step"] = step
        state["manifest"] = _manifest(temporary)
        atomic_write_json(temporary / TRAINER_STATE_NAME, state)
        for path in temporary.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        if final.exists():  # re-saving a step after resuming from an older checkpoint
            trash = root / f".trash-{final.name}"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(temporary, final)
        fsync_directory(root)
        for old in list_checkpoints(root)[:-keep_last]:
            # Rotation only removes checkpoints of this run's trajectory: one it cannot read, or one
            # written by a run with another configuration, may be all that is left of that run.
            if same_run(old, state.get("identity")):
                shutil.rmtree(old, ignore_errors=True)
            else:
                logger.warning("not rotating out %s: this run did not write it (unreadable state or another "
                               "configuration); delete it yourself if it is not needed", old)
        logger.info("checkpoint written: %s", final)
    accelerator.wait_for_everyone()
    return final


def check_resume_identity(checkpoint: Path, state: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    """Raise :class:`CheckpointConfigMismatchError` unless the checkpoint's run had this identity.

    Args:
        checkpoint: the checkpoint directory (for the message).
        state: its ``trainer_state.json``.
        identity: this run's identity (config keys that shape the trajectory, tokenizer hash,
            corpus fingerprint, distributed layout).
    """
    recorded = state.get("identity")
    if recorded is None:
        raise CheckpointConfigMismatchError(f"{checkpoint}: no run identity recorded; it was not written by gfm")
    differences = []
    for key in sorted(set(recorded) | set(identity)):
        old, new = recorded.get(key, "<absent>"), identity.get(key, "<absent>")
        if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
            differences.append(f"{key}: checkpoint {old!r}, this run {new!r}")
    if differences:
        shown = "; ".join(differences[:8]) + (f"; and {len(differences) - 8} more" if len(differences) > 8 else "")
        raise CheckpointConfigMismatchError(
            f"cannot resume from {checkpoint}: it was written by a run with another configuration ({shown}). "
            "Resume with the config that wrote it, or start a new run in another output_dir"
        )
