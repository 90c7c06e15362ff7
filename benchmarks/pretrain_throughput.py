"""Pretraining throughput: tokens per second for 1 and 2 processes and each DeepSpeed ZeRO stage.

Every row runs the real recipe (``pretrain/run_pretraining.py``) on the same packaged corpus
(RDKit's 4,999 NCI molecules, Eulerian tokens; no data folder needed) with the same tiny
``GFMForPretraining`` and the same global batch, launched as a user would:

* ``python`` (one process, the reference),
* ``accelerate launch --config_file configs/accelerate/ddp_cpu.yaml`` (2 processes, DDP/gloo),
* ``accelerate launch --config_file configs/accelerate/zero{1,2,3}.yaml`` (2 processes, DeepSpeed),
* optionally ``zero2_offload.yaml`` (``--offload``; compiles DeepSpeedCPUAdam on first use).

Tokens per second are real (non-padding) tokens of optimizer steps after the first logging
window (which holds the warm-up), read from each run's ``metrics.csv``; start-up, evaluation
and export are excluded. The table prints the ratio to the one-process run measured in the
same invocation (measured first and again last; the ratio uses their mean, since the load of a
shared machine drifts during the run).

    python benchmarks/pretrain_throughput.py            # 24 steps per row
    python benchmarks/pretrain_throughput.py --quick    # 10 steps per row
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from gfm.utils.tables import format_markdown_table

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "pretrain" / "run_pretraining.py"


def prepare_tokenizer(root: Path) -> Path:
    """Train an Eulerian tokenizer on the packaged NCI molecules (no data folder needed)."""
    from gfm.data import registry
    from gfm.tokenization.eulerian import EulerianTokenizer

    graphs = registry.load("packaged/nci5k").graphs
    return EulerianTokenizer.train(graphs).save_pretrained(root / "tokenizer")


def run_row(name: str, launcher: list[str], config: dict, root: Path, env: dict) -> dict:
    config_path = root / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump({**config, "output_dir": str(root / name)}, sort_keys=False))
    started = time.perf_counter()
    result = subprocess.run([*launcher, str(RECIPE), "--config", str(config_path)], cwd=REPO, env=env,
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "Error" in line]
        return {"name": name, "error": (errors or ["failed"])[-1].strip()}
    from gfm.training.tracking import read_metrics

    rows = read_metrics(root / name / "metrics.csv")
    windows = {r["step"]: r["value"] for r in rows if r["split"] == "train" and r["metric"] == "tokens_per_second"}
    seen = {r["step"]: r["value"] for r in rows if r["split"] == "train" and r["metric"] == "tokens_seen"}
    steps = sorted(windows)[1:]  # drop the first window (warm-up)
    tokens = sum(seen[s] - seen[p] for p, s in zip(sorted(seen), sorted(seen)[1:]))
    seconds = sum((seen[s] - seen[p]) / windows[s] for p, s in zip(sorted(seen), sorted(seen)[1:]))
    summary = json.loads((root / name / "training_summary.json").read_text())
    return {"name": name, "tokens_per_second": tokens / seconds if seconds else float("nan"), "windows": len(steps),
            "processes": summary["world_size"], "kind": summary["distributed_type"] +
            (f" ZeRO-{summary['zero_stage']}" if summary["zero_stage"] is not None else ""),
            "final_loss": summary["losses"]["train"].get("loss/next_token/molecules", {}).get("last", float("nan")),
            "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 steps per row instead of 24")
    parser.add_argument("--offload", action="store_true", help="add a ZeRO-2 + ZeRO-Offload row (builds cpu_adam)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = parser.parse_args()
    steps = 10 if args.quick else 24
    root = args.keep or Path(tempfile.mkdtemp(prefix="gfm-throughput-"))
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "gfm" / "torch_extensions"))
    env.update({"GFM_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
    tokenizer = prepare_tokenizer(root)
    config = {
        "model_type": "gfm",
        "model_config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "max_position_embeddings": 512},
        "tokenizer_name_or_path": str(tokenizer),
        "datasets": ["packaged/nci5k"],
        "max_graphs_per_dataset": 2000,
        "cache_dir": str(root / "cache"),
        "max_length": 512,
        "drop_long_sequences": True,
        "eval_fraction": 0.01,
        "eval_max_per_domain": 8,
        "objectives": {"next_token": 1.0},
        "micro_batch_rows": 2,
        "global_batch_rows": 4,
        "max_steps": steps,
        "logging_steps": max(2, steps // 5),
        "learning_rate": 1e-3,
        "report_to": ["csv"],
        "plot": False,
        "progress_bar": False,
        "torch_num_threads": 1,
    }
    accelerate = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file"]
    rows = [("1 process", [sys.executable], {})]
    rows.append(("2 processes DDP", [*accelerate, str(REPO / "configs/accelerate/ddp_cpu.yaml")], {"world_size": 2}))
    for stage in (1, 2, 3):
        rows.append((f"2 processes ZeRO-{stage}", [*accelerate, str(REPO / f"configs/accelerate/zero{stage}.yaml")],
                     {"world_size": 2}))
    if args.offload:
        rows.append(("2 processes ZeRO-2 offload", [*accelerate, str(REPO / "configs/accelerate/zero2_offload.yaml")],
                     {"world_size": 2}))
    # the reference again at the end: on a shared machine the load drifts during the run
    rows.append(("1 process (again)", [sys.executable], {}))
    results = []
    for name, launcher, extra in rows:
        results.append(run_row(name.replace(" ", "_"), launcher, {**config, **extra}, root, env))
        print(f"  ran {name}", file=sys.stderr, flush=True)
    references = [r["tokens_per_second"] for r in (results[0], results[-1]) if "tokens_per_second" in r]
    reference = sum(references) / len(references) if references else None
    print(f"\npretraining throughput: tiny GFMForPretraining (hidden 64, 2 layers), packaged/nci5k Eulerian tokens, "
          f"global batch 4 x 512 positions, {steps} steps, CPU (gloo), torch threads 1 per process")
    print("ratios are to the mean of the two one-process runs (first and last row)")
    table = []
    for (name, _, _), result in zip(rows, results):
        if "error" in result:
            table.append((name, "-", f"failed: {result['error']}", "-", "-"))
            continue
        ratio = result["tokens_per_second"] / reference if reference else float("nan")
        table.append((name, result["kind"], f"{result['tokens_per_second']:.0f}", f"{ratio:.2f}x",
                      f"{result['final_loss']:.4f}"))
    print(format_markdown_table(("run", "launcher", "tokens/s", "vs 1 process", "last loss"), table))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
