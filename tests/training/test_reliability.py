"""Nothing silently wrong in pretraining (issue 14, training half).

Each test is a case a user hit: before the fix a diverging run exited 0 with an all-NaN
``final/``; two runs in one folder both exited 0 with a mixed ``metrics.csv``; a resume whose
checkpoints all failed verification "started fresh" and rotation deleted them; an unusable
``output_dir`` was found only after the corpus had loaded (raw OSError). Every test checks the
message text.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from gfm.testing.training import (
    TinyConfig,
    TinyModelForPretraining,
    base_config,
    driver_command,
    metric_by_step,
    reset_accelerate_state,
    subprocess_env,
    write_config,
    write_run_inputs,
)
from gfm.training import load_config
from gfm.training.checkpointing import list_checkpoints, read_trainer_state
from gfm.training.errors import (
    NoUsableCheckpointError,
    OutputDirError,
    OutputDirInUseError,
    TrainingDivergedError,
)
from gfm.training.run_lock import LOCK_NAME, RunLock, read_lock_holder
from gfm.training.trainer import Pretrainer
from gfm.utils.errors import GFMError


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_run_inputs(tmp_path_factory.mktemp("inputs"))


def train(root: Path, inputs: tuple[Path, Path], model_factory=None, trainer_class=Pretrainer, **overrides: Any):
    reset_accelerate_state()
    try:
        trainer = trainer_class(load_config(None, base_config(root, *inputs, **overrides)), model_factory=model_factory)
        return trainer.run()
    finally:
        reset_accelerate_state()


def steps_of(run_dir: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in list_checkpoints(run_dir / "checkpoints")]


# ---------------------------------------------------------------------------------------------
# 1. a diverging run stops, names the step and the last finite loss, exports nothing
# ---------------------------------------------------------------------------------------------
def test_diverging_run_stops_with_the_step_and_the_last_finite_loss(tmp_path: Path, inputs) -> None:
    """The user's run: learning rate 1e6, no clipping (before: NaN from step 4, exit 0, final/ all NaN)."""
    with pytest.raises(TrainingDivergedError) as caught:
        train(tmp_path, inputs, learning_rate=1e6, max_grad_norm=0.0, max_steps=8, logging_steps=1)
    message = str(caught.value)
    run_dir = tmp_path / "run"
    losses = metric_by_step(run_dir)
    match = re.search(r"training diverged: the loss is nan at step (\d+) \(1 step\(s\) in a row, "
                      r"max_nonfinite_steps=1\); the last finite loss was (\S+) at step (\d+)\. Nothing was exported",
                      message)
    assert match, message
    step, last_value, last_step = int(match[1]), float(match[2]), int(match[3])
    assert last_step == step - 1 and 1 < step < 8
    assert all(v == v for s, v in losses.items() if s < step) and losses[step] != losses[step]  # NaN logged at step
    assert last_value == pytest.approx(losses[last_step], rel=1e-5)
    assert "Lower learning_rate (now 1e+06), enable gradient clipping (max_grad_norm, now 0)" in message
    assert isinstance(caught.value, GFMError)
    assert not (run_dir / "final").exists()
    assert not (run_dir / LOCK_NAME).exists(), "the lock is released when the run fails"


def test_the_recipe_exits_non_zero_on_divergence(tmp_path: Path, inputs) -> None:
    config = write_config(tmp_path / "c.yaml", base_config(tmp_path, *inputs, learning_rate=1e6, max_grad_norm=0.0,
                                                          max_steps=8))
    result = subprocess.run(driver_command(config), env=subprocess_env(GFM_LOG_LEVEL="WARNING"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "TrainingDivergedError" in result.stderr and "training diverged: the loss is nan at step" in result.stderr
    assert not (tmp_path / "run" / "final").exists()


class NaNAtSteps(Pretrainer):
    """Reports a non-finite step loss at chosen steps (as an fp16 run whose scaler skips the update would)."""

    nan_steps: set[int] = set()

    def train_step(self, epoch: int, index: int) -> dict[str, Any]:
        result = super().train_step(epoch, index)
        self.steps_done = getattr(self, "steps_done", 0) + 1
        if self.steps_done in self.nan_steps:
            result["loss"] = float("nan")
        return result


def test_patience_skips_checkpoints_while_the_loss_is_not_finite(tmp_path: Path, inputs, caplog) -> None:
    NaNAtSteps.nan_steps = {3, 4}
    with caplog.at_level(logging.WARNING, logger="gfm.training.trainer"):
        summary = train(tmp_path / "a", inputs, trainer_class=NaNAtSteps, max_nonfinite_steps=3, max_steps=6,
                        save_steps=1, save_total_limit=10)
    assert summary["steps"] == 6 and (tmp_path / "a" / "run" / "final" / "model.safetensors").is_file()
    assert steps_of(tmp_path / "a" / "run") == [1, 2, 5, 6], "no checkpoint of a step whose loss was not finite"
    assert "step 3: loss is nan (1 of max_nonfinite_steps=3 in a row)" in caplog.text
    assert "step 4: no checkpoint while the loss is not finite" in caplog.text

    NaNAtSteps.nan_steps = {3, 4, 5}
    with pytest.raises(TrainingDivergedError, match=r"the loss is nan at step 5 \(3 step\(s\) in a row, "
                                                    r"max_nonfinite_steps=3\); the last finite loss was \S+ at step 2\. "
                                                    r"Nothing was exported and the newest checkpoint is of step 2"):
        train(tmp_path / "b", inputs, trainer_class=NaNAtSteps, max_nonfinite_steps=3, max_steps=6, save_steps=1,
              save_total_limit=10)
    assert steps_of(tmp_path / "b" / "run") == [1, 2]


def nan_in_unused_weights(config, tokenizer, settings):
    """A model whose ``following`` layer (unused by the causal next-token objective) holds NaN: the loss stays finite."""
    model = TinyModelForPretraining(TinyConfig(vocab_size=tokenizer.vocab_size, hidden_size=16))
    with torch.no_grad():
        model.following.weight[0, 0] = float("nan")
    return model


def test_non_finite_weights_are_never_exported_or_checkpointed(tmp_path: Path, inputs) -> None:
    with pytest.raises(TrainingDivergedError, match=r"the trained model: weights hold NaN or infinite values: "
                                                    r"following\.weight \(1 of 256\).*Nothing was exported to .*final"):
        train(tmp_path / "a", inputs, model_factory=nan_in_unused_weights, max_steps=3)
    assert not (tmp_path / "a" / "run" / "final").exists()
    with pytest.raises(TrainingDivergedError, match=r"the weights hold NaN or infinite values after the update of "
                                                    r"step 2 \(following\.weight\); no checkpoint was written for it; "
                                                    r"the last finite loss was \S+ at step 2"):
        train(tmp_path / "b", inputs, model_factory=nan_in_unused_weights, max_steps=3, save_steps=2)
    assert steps_of(tmp_path / "b" / "run") == []


# ---------------------------------------------------------------------------------------------
# 2. one run per output folder
# ---------------------------------------------------------------------------------------------
def test_second_run_in_the_same_folder_fails_at_once_and_a_killed_runs_lock_is_taken_over(
        tmp_path: Path, inputs, caplog) -> None:
    common = {"max_steps": 400, "save_steps": 5, "save_total_limit": 3}
    config = write_config(tmp_path / "run.yaml", base_config(tmp_path, *inputs, **common))
    run_dir = tmp_path / "run"
    first = subprocess.Popen(driver_command(config), env=subprocess_env(GFM_LOG_LEVEL="WARNING"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (read_lock_holder(run_dir / LOCK_NAME) and (run_dir / "checkpoints" / "step-00000005").is_dir()):
            assert first.poll() is None, f"the first run ended early: {first.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.05)
        holder = read_lock_holder(run_dir / LOCK_NAME)
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        rows_before = (run_dir / "metrics.csv").read_text().count("\n")
        with pytest.raises(OutputDirInUseError, match=rf"output_dir {re.escape(str(run_dir))} is in use by another run "
                                                      rf"\(pid {first.pid} on host {re.escape(socket.gethostname())}, "
                                                      rf"started {re.escape(holder['started'])}.*give this run another "
                                                      "output_dir"):
            train(tmp_path, inputs, **common, resume_from_checkpoint="latest")
        assert first.poll() is None, "the second run must not disturb the first"
        assert (run_dir / "metrics.csv").read_text().count("\n") >= rows_before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    # the killed run left its lock file: the next run (resuming) takes it over with a warning
    assert read_lock_holder(run_dir / LOCK_NAME)["pid"] == first.pid
    with caplog.at_level(logging.WARNING, logger="gfm.training.run_lock"):
        summary = train(tmp_path, inputs, **common, resume_from_checkpoint="latest", stop_after_steps=12)
    assert summary["stopped_early"] and summary["steps"] == 12
    assert f"was left by a run that is no longer running (pid {first.pid} on host {socket.gethostname()}" in caplog.text
    assert "taking the lock over" in caplog.text
    assert not (run_dir / LOCK_NAME).exists()


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_lock_held_in_this_process_and_stale_lock_files(tmp_path: Path, caplog) -> None:
    with RunLock(tmp_path / "run") as held:
        assert read_lock_holder(held.path)["pid"] == os.getpid()
        with pytest.raises(OutputDirInUseError, match=rf"in use by another run \(pid {os.getpid()} on host"):
            RunLock(tmp_path / "run").acquire()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    stale = {"pid": dead_pid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(stale))
    with caplog.at_level(logging.WARNING, logger="gfm.training.run_lock"):
        lock = RunLock(tmp_path / "run").acquire()
    assert lock.took_over == stale and read_lock_holder(lock.path)["pid"] == os.getpid()
    assert f"no longer running (pid {stale['pid']} on host {stale['host']}, started 2026-01-01" in caplog.text
    lock.release()


def test_without_flock_an_exclusive_file_is_used(tmp_path: Path, monkeypatch, caplog) -> None:
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with RunLock(tmp_path / "run"):
        with pytest.raises(OutputDirInUseError, match=rf"pid {os.getpid()} .*this filesystem has no flock.*delete "
                                                      rf"{re.escape(str(tmp_path / 'run' / LOCK_NAME))}"):
            RunLock(tmp_path / "run").acquire()
    path = tmp_path / "run" / LOCK_NAME
    path.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "started": "earlier"}))
    with caplog.at_level(logging.WARNING, logger="gfm.training.run_lock"):
        RunLock(tmp_path / "run").acquire().release()
    assert "taking the lock over" in caplog.text
    path.write_text(json.dumps({"pid": 1, "host": "another-host", "started": "earlier"}))
    with pytest.raises(OutputDirInUseError, match="pid 1 on host another-host.*cannot tell whether a run on another host"):
        RunLock(tmp_path / "run").acquire()


# ---------------------------------------------------------------------------------------------
# 3. resume when no checkpoint verifies; rotation only removes this run's checkpoints
# ---------------------------------------------------------------------------------------------
def damage(checkpoint: Path) -> tuple[Path, bytes]:
    """Flip the last byte of the checkpoint's first file (same size); returns the file and its damaged bytes."""
    relative = sorted(read_trainer_state(checkpoint)["manifest"])[0]
    target = checkpoint / relative
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    return target, bytes(raw)


def test_resume_when_no_checkpoint_verifies_stops_and_deletes_nothing(tmp_path: Path, inputs) -> None:
    common = {"max_steps": 6, "save_steps": 2, "save_total_limit": 5}
    train(tmp_path, inputs, **common, stop_after_steps=4)
    checkpoints = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [c.name for c in checkpoints] == ["step-00000002", "step-00000004"]
    damaged = [damage(c) for c in checkpoints]
    with pytest.raises(NoUsableCheckpointError) as caught:  # before: "starting fresh", exit 0, both deleted
        train(tmp_path, inputs, **{**common, "save_total_limit": 1}, resume_from_checkpoint="latest")
    message = str(caught.value)
    assert "resume_from_checkpoint=latest: 2 checkpoint(s) in" in message and "none verifies" in message
    for checkpoint, (file, _) in zip(checkpoints, damaged):
        relative = file.relative_to(checkpoint)
        assert f"{checkpoint.name}: file {relative} does not match its SHA-256 in the manifest" in message
    assert "Nothing was deleted" in message and "overwrite_output_dir: true" in message
    for file, content in damaged:
        assert file.read_bytes() == content
    assert not (tmp_path / "run" / "final").exists()


def test_rotation_never_removes_a_checkpoint_this_run_did_not_write(tmp_path: Path, inputs, caplog) -> None:
    common = {"max_steps": 8, "save_steps": 2, "save_total_limit": 5}
    train(tmp_path, inputs, **common, stop_after_steps=4)
    unreadable = tmp_path / "run" / "checkpoints" / "step-00000002"
    (unreadable / "trainer_state.json").write_text("{ damaged")
    with caplog.at_level(logging.WARNING, logger="gfm.training.checkpointing"):
        train(tmp_path, inputs, **{**common, "save_total_limit": 1}, resume_from_checkpoint="latest")
    # step 4 (this run's trajectory) rotated out as usual, the unreadable step 2 kept and reported
    assert steps_of(tmp_path / "run") == [2, 8]
    assert f"not rotating out {unreadable}: this run did not write it" in caplog.text


# ---------------------------------------------------------------------------------------------
# 7. output_dir checked before anything is loaded
# ---------------------------------------------------------------------------------------------
def test_unusable_output_dir_is_named_before_anything_loads(tmp_path: Path) -> None:
    # tokenizer and corpus do not exist: any loading would fail with another error first
    missing = (tmp_path / "no-tokenizer", tmp_path / "no-corpus")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    with pytest.raises(OutputDirError, match=rf"output_dir={re.escape(str(a_file))} is a file, not a directory; the run "
                                             "writes its checkpoints, metrics and model there"):
        train(tmp_path, missing, output_dir=str(a_file))
    with pytest.raises(OutputDirError, match=rf"output_dir={re.escape(str(a_file))}/run cannot be created: "
                                             rf"{re.escape(str(a_file))} is a file"):
        train(tmp_path, missing, output_dir=str(a_file / "run"))
    with pytest.raises(OutputDirError, match=r"output_dir=/proc/gfm-run is not writable \(it does not exist yet, and "
                                             r"/proc is where it would be created\).*Choose a folder you can write to"):
        train(tmp_path, missing, output_dir="/proc/gfm-run")
    with pytest.raises(OutputDirError, match=rf"export_dir={re.escape(str(a_file))} is a file"):
        train(tmp_path, missing, export_dir=str(a_file))
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# 4 (export side). the pretraining export records SHA-256; a corrupted export is refused on load
# ---------------------------------------------------------------------------------------------
def test_export_writes_a_manifest_that_loading_verifies(tmp_path: Path, inputs) -> None:
    from transformers import AutoModelForPreTraining

    from gfm.modeling import GFMCheckpointFileError, GFMCorruptWeightsError
    from gfm.modeling.checkpoint_files import WEIGHTS_MANIFEST_NAME
    from gfm.utils.io import sha256_file

    summary = train(tmp_path, inputs, model_type="gfm", max_steps=2, max_length=48,
                    model_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                  "max_position_embeddings": 64})
    final = Path(summary["export_dir"])
    weights = final / "model.safetensors"
    manifest = json.loads((final / WEIGHTS_MANIFEST_NAME).read_text())
    assert manifest["files"]["model.safetensors"]["sha256"] == sha256_file(weights)
    AutoModelForPreTraining.from_pretrained(final)  # loads
    raw = bytearray(weights.read_bytes())
    raw[-2] ^= 0x01  # one low mantissa bit: finite, same size
    weights.write_bytes(bytes(raw))
    with pytest.raises(GFMCorruptWeightsError, match=r"does not match .* recorded in weights_manifest\.json"):
        AutoModelForPreTraining.from_pretrained(final)
    # continuing pretraining from a folder whose config.json is gone is named too
    (final / "config.json").unlink()
    with pytest.raises(GFMCheckpointFileError, match=r"final: config\.json is missing in this directory"):
        train(tmp_path / "again", inputs, model_type="gfm", model_name_or_path=str(final), model_config={}, max_steps=1)
