"""SIGKILL a pretraining process mid-epoch (while it writes a checkpoint), resume, get the same losses."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from gfm.testing.training import (
    base_config,
    driver_command,
    metric_by_step,
    reset_accelerate_state,
    subprocess_env,
    write_config,
    write_run_inputs,
)
from gfm.training import load_config, run_pretraining
from gfm.training.checkpointing import find_latest_checkpoint, verify_checkpoint


def test_sigkill_mid_epoch_then_resume_replays_the_same_losses(tmp_path: Path) -> None:
    inputs = write_run_inputs(tmp_path, graphs_per_domain=100)
    common = {"max_steps": 400, "save_steps": 5, "save_total_limit": 3,
              "objectives": {"next_token": 1.0, "masked_token": 0.5}, "eval_fraction": 0.05}
    # the uninterrupted reference (first 16 steps of a 400-step schedule)
    reset_accelerate_state()
    run_pretraining(load_config(None, base_config(tmp_path / "reference", *inputs, **common, stop_after_steps=16)))
    reset_accelerate_state()
    reference = metric_by_step(tmp_path / "reference" / "run")

    config = write_config(tmp_path / "run.yaml", base_config(tmp_path, *inputs, **common))
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    process = subprocess.Popen(driver_command(config), env=subprocess_env(GFM_LOG_LEVEL="WARNING"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        # kill as soon as the step-10 checkpoint starts (or finishes) being written
        while not ((checkpoints / ".tmp-step-00000010").exists() or (checkpoints / "step-00000010").exists()):
            assert process.poll() is None, f"training ended before it could be killed: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    latest = find_latest_checkpoint(checkpoints)
    assert latest is not None and latest.name in ("step-00000005", "step-00000010")
    state = verify_checkpoint(latest)
    assert state["next_epoch"] == 0 and 0 < state["next_index"], "the kill must land mid-epoch"

    # resume in this process (the recipe's code path; a fresh interpreter adds nothing but start-up time)
    reset_accelerate_state()
    run_pretraining(load_config(config, {"resume_from_checkpoint": "latest", "stop_after_steps": 16}))
    reset_accelerate_state()
    resumed = metric_by_step(run_dir)
    assert sorted(resumed) == list(range(1, 17))
    assert resumed == reference, {s: (resumed[s], reference[s]) for s in reference if resumed[s] != reference[s]}
    assert not list(checkpoints.glob(".tmp-*")), "a partial checkpoint left by the kill is cleared by the next save"
