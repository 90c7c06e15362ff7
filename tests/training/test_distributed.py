"""Two processes with DeepSpeed ZeRO-2 and ZeRO-3 on CPU (gloo) follow the one-process loss trajectory.

The real ``GFMForPretraining`` (tiny: 2 layers, hidden 32) trains on a hand-built three-domain
corpus with two objectives (next-token and masked-token) for a few steps. The reference runs in
this process; each ZeRO run is ``accelerate launch --config_file configs/accelerate/zero{2,3}.yaml``
with ``world_size: 2``, the same global batch (4 rows: 1 process x 2 micro-batches x 2 rows vs
2 processes x 1 micro-batch x 2 rows), dropout 0. Tolerance: relative 1e-6 per step (float32
reductions run in another order when gradients are reduced across processes / partitions).

Also: ``accelerate launch --cpu --num_processes 2`` silently starts ONE process; the run's
world-size check turns that into a named error.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from gfm.testing.paths import source_root
from gfm.testing.training import (
    PYTHON,
    base_config,
    reset_accelerate_state,
    subprocess_env,
    write_config,
    write_run_inputs,
)
from gfm.training import load_config, run_pretraining
from gfm.training.tracking import read_metrics

pytestmark = pytest.mark.distributed

TOLERANCE = 1e-6  # relative, per step (measured: <= 2e-8 over 4 steps)
ACCELERATE = str(Path(PYTHON).with_name("accelerate"))
REPO = source_root()


def free_port() -> int:
    """A port no other run holds: DeepSpeed names its CPU shared-memory buffers after the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def losses(run_dir: Path) -> dict[tuple[str, int, str], float]:
    return {(r["split"], r["step"], r["metric"]): r["value"] for r in read_metrics(run_dir / "metrics.csv")
            if r["metric"].startswith("loss")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("distributed")
    inputs = write_run_inputs(root, graphs_per_domain=40)
    common = {
        "model_type": "gfm",
        "model_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "max_position_embeddings": 64, "hidden_dropout": 0.0},
        "objectives": {"next_token": 1.0, "masked_token": 0.5},
        "max_steps": 4,
        "learning_rate": 3e-3,
        "global_batch_rows": 4,
        "micro_batch_rows": 2,
        "eval_fraction": 0.05,
    }
    reset_accelerate_state()
    run_pretraining(load_config(None, base_config(root / "reference", *inputs, **common)))
    reset_accelerate_state()
    driver = root / "driver.py"
    driver.write_text(
        "import runpy\nimport gfm.testing.training  # noqa: F401\n"
        f"runpy.run_path({str(REPO / 'pretrain' / 'run_pretraining.py')!r}, run_name='__main__')\n"
    )
    return {"root": root, "inputs": inputs, "common": common, "driver": driver,
            "reference": losses(root / "reference" / "run")}


@pytest.mark.parametrize("stage", [2, 3])
def test_two_process_zero_matches_one_process(setup: dict, stage: int) -> None:
    root = setup["root"] / f"zero{stage}"
    config = write_config(setup["root"] / f"zero{stage}.yaml",
                          base_config(root, *setup["inputs"], **setup["common"], world_size=2))
    result = subprocess.run(
        [ACCELERATE, "launch", "--config_file", str(REPO / "configs" / "accelerate" / f"zero{stage}.yaml"),
         "--main_process_port", str(free_port()), str(setup["driver"]), "--config", str(config)],
        cwd=REPO, env=subprocess_env(GFM_LOG_LEVEL="WARNING"), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((root / "run" / "training_summary.json").read_text())
    assert (summary["world_size"], summary["distributed_type"], summary["zero_stage"]) == (2, "DEEPSPEED", stage)
    got, expected = losses(root / "run"), setup["reference"]
    assert got.keys() == expected.keys()
    assert {k[1] for k in got if k[0] == "train"} == {1, 2, 3, 4}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=TOLERANCE), key
    # the exported directory holds the consolidated (ZeRO-3: gathered) weights
    assert (Path(summary["export_dir"]) / "model.safetensors").stat().st_size > 10_000


def test_silent_single_process_launch_is_caught(setup: dict) -> None:
    config = write_config(setup["root"] / "trap.yaml",
                          base_config(setup["root"] / "trap", *setup["inputs"], **setup["common"], world_size=2))
    result = subprocess.run(
        [ACCELERATE, "launch", "--cpu", "--num_processes", "2", str(setup["driver"]), "--config", str(config)],
        cwd=REPO, env=subprocess_env(GFM_LOG_LEVEL="WARNING"), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode != 0
    assert "WorldSizeError: the config promises world_size=2 processes but 1 are running" in result.stderr
    assert not (setup["root"] / "trap" / "run" / "metrics.csv").exists()
