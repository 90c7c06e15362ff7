"""The main job, the whole gfm pipeline in minutes (``make demo``, ``gfm demo`` and
``python -m gfm.pipelines.demo`` run it).

Without a data folder it runs on the embedded default corpus (graphs shipped inside installed
packages: RDKit's NCI molecules with their TPSA, networkx's social graphs; no network):

1. **data**: load the corpus and print a per-domain summary table;
2. **tokenizer**: train an Eulerian tokenizer (one vocabulary across domains, BPE merges);
3. **pretraining**: pretrain a tiny sparse-attention model (next-token + masked-token) with
   ``gfm.training`` (checkpoints, metrics CSV, loss plots);
4. **fine-tuning**: LoRA and full fine-tuning on a held-out graph-regression task (NCI TPSA, MAE) against the same
   architecture from scratch, a GIN trained from scratch and the training-mean control;
5. **zero-shot**: node classification by class prototypes on a graph the model never trained
   on for labels, with k labels per class, beside label propagation, the SVD probe and a
   randomly initialized model;
6. **hub**: save model + tokenizer + a model card of this run's figures as a hub-ready
   directory, reload it with ``AutoModel.from_pretrained`` and check the outputs are identical.

It ends with one summary table (data, sizes, losses, task metrics against scratch and controls,
where files went); plots and reports are in the output folder. With ``GFM_DATA_DIR`` /
``--data-dir`` the corpus grows by real datasets of the data folder and zero-shot adds Cora.
``--summary-only`` prints only the corpus table (step 1); ``--quick`` shrinks every stage to
seconds (what the test suite runs).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from gfm.utils.tables import format_markdown_table

logger = logging.getLogger(__name__)

#: Datasets that take more than a few seconds to process from their source files.
LARGE_DATASETS = (
    "moleculenet/hiv",
    "moleculenet/muv",
    "moleculenet/toxcast",
    "moleculenet/qm8",
    "moleculenet/tox21",
    "linkpred/ddi",
    "karateclub/reddit10k",
)

#: Extra pretraining datasets when a data folder is set (one per domain, quick to load).
DATA_FOLDER_PRETRAINING = ("moleculenet/esol", "tu/PROTEINS", "planetoid/cora", "hetero/chameleon", "kg/codex-m")
#: Extra zero-shot graphs when a data folder is set.
DATA_FOLDER_ZERO_SHOT = ("planetoid/cora",)

# ------------------------------------------------------------------------------------------
# Step 1: the corpus table
# ------------------------------------------------------------------------------------------
def write_summary_table(rows: Sequence[dict[str, Any]], stream: TextIO | None = None) -> None:
    """Report function: write the per-domain summary table (markdown) to ``stream`` (default stdout)."""
    stream = stream or sys.stdout

    def count(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:,}" if isinstance(row.get(key), int) else str(row.get(key, ""))

    cells = [
        [row["dataset"], row["domain"], count(row, "graphs"), count(row, "nodes"), count(row, "edges"),
         f"{row['x_cat']}/{row['x_cont']}" if "x_cat" in row else "", row["task"]]
        for row in rows
    ]
    header = ["dataset", "domain", "graphs", "nodes", "edges", "x cat/cont", "task"]
    stream.write(format_markdown_table(header, cells) + "\n")


def _is_cached(name: str, data_dir: Any, cache_dir: Any) -> bool:
    from gfm.data.arrow import META_FILE
    from gfm.data.registry import cache_path

    if cache_dir is None:
        return False
    try:
        return (cache_path(name, data_dir, cache_dir, {}) / META_FILE).is_file()
    except (OSError, ValueError):
        return False


def summarize(names: Sequence[str], data_dir: Any, cache_dir: Any, skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Summary rows for ``names`` (loading each, through the cache when given), sorted by domain."""
    from gfm.data.corpus import Corpus

    kept = [n for n in names if n not in skip]
    rows = Corpus(kept, data_dir=data_dir, cache_dir=cache_dir).build().summary() if kept else []
    for name in skip:
        rows.append({"dataset": name, "domain": "-", "graphs": "-", "nodes": "-", "edges": "-",
                     "task": "skipped: large (use --full; with --cache-dir it is processed once)"})
    return sorted(rows, key=lambda r: (r["domain"] == "-", r["domain"], r["dataset"]))


# ------------------------------------------------------------------------------------------
# Steps 2-6: the pipeline
# ------------------------------------------------------------------------------------------
@dataclass
class DemoPlan:
    """Sizes of every stage. ``default()`` fits in a few minutes on 2 cores; ``quick()`` in seconds."""

    pretraining_datasets: list[str] = field(default_factory=lambda: [
        "packaged/nci5k", "packaged/karate", "packaged/les-miserables", "packaged/florentine", "packaged/davis"])
    zero_shot_datasets: list[str] = field(default_factory=lambda: ["packaged/karate"])
    finetune_dataset: str = "packaged/nci5k"
    max_graphs_per_dataset: int = 1500
    num_merges: int = 512
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_length: int = 256
    pretraining_steps: int = 150
    micro_batch_rows: int = 8
    global_batch_rows: int = 16
    finetune_methods: list[str] = field(default_factory=lambda: ["lora", "full", "scratch", "gnn", "controls"])
    finetune_seeds: list[int] = field(default_factory=lambda: [0, 1])
    finetune_train_items: int = 1000
    finetune_eval_items: int = 400
    finetune_epochs: int = 4
    gnn_epochs: int = 40
    zero_shot_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    labels_per_class: int = 2

    @classmethod
    def default(cls) -> DemoPlan:
        return cls()

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(max_graphs_per_dataset=120, num_merges=32, hidden_size=32, num_attention_heads=2,
                   pretraining_steps=6, micro_batch_rows=4, global_batch_rows=4,
                   finetune_methods=["lora", "scratch", "controls"], finetune_seeds=[0], finetune_train_items=48,
                   finetune_eval_items=32, finetune_epochs=1, gnn_epochs=2, zero_shot_seeds=[0])

    def with_data_folder(self) -> DemoPlan:
        """The larger real corpus of a data folder: one more dataset per domain, Cora for zero-shot."""
        return replace(
            self,
            pretraining_datasets=self.pretraining_datasets + list(DATA_FOLDER_PRETRAINING),
            zero_shot_datasets=self.zero_shot_datasets + list(DATA_FOLDER_ZERO_SHOT),
            max_graphs_per_dataset=min(self.max_graphs_per_dataset, 600),
            pretraining_steps=self.pretraining_steps * 2,
        )


@dataclass
class DemoOutcome:
    """What the pipeline produced: figures for the summary table and paths of every artefact."""

    corpus_rows: list[dict[str, Any]] = field(default_factory=list)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    pretraining: dict[str, Any] = field(default_factory=dict)
    finetune_results: list[Any] = field(default_factory=list)
    zero_shot_results: list[Any] = field(default_factory=list)
    hub: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    probe_graphs: list[Any] = field(default_factory=list)


def _train_tokenizer(plan: DemoPlan, data_dir: str | None, output: Path, outcome: DemoOutcome) -> Path:
    from gfm.data.molecules import molecule_feature_values
    from gfm.tokenization.eulerian import EulerianTokenizer
    from gfm.training.corpus import corpus_graphs

    graphs, per_dataset = [], {}
    for name in plan.pretraining_datasets:
        chosen, record = corpus_graphs(name, data_dir, plan.max_graphs_per_dataset, seed=0, ego_num_hops=2,
                                       ego_max_neighbors=6)
        if not outcome.probe_graphs:
            outcome.probe_graphs = chosen[:16]  # the reload check of the hub stage compares outputs on them
        graphs += chosen
        per_dataset[name] = (len(chosen), record["domain"])
    # every RDKit feature value gets a token, so the molecules of other datasets never need <unk>
    tokenizer = EulerianTokenizer.train(
        graphs, merges="bpe", num_merges=plan.num_merges, declared_values=molecule_feature_values()
    )
    directory = tokenizer.save_pretrained(output / "tokenizer")
    base = sum(len(t) for t in tokenizer.encode_batch(graphs, use_merges=False))
    tokens, offset = {}, 0
    merged_lengths = [len(t) for t in tokenizer.encode_batch(graphs)]
    for name, (count, _) in per_dataset.items():
        tokens[name] = sum(merged_lengths[offset:offset + count])
        offset += count
    merged = sum(merged_lengths)
    outcome.tokenizer = {
        "graphs": len(graphs), "vocab": tokenizer.vocab_size, "base_vocab": tokenizer.base_vocab_size,
        "merged_tokens": tokenizer.merges.num_merged if tokenizer.merges else 0,
        "compression": base / max(merged, 1), "hash": tokenizer.content_hash, "per_dataset": per_dataset,
        "tokens": tokens,
    }
    outcome.files["tokenizer"] = str(directory)
    return Path(directory)


def _pretrain(plan: DemoPlan, data_dir: str | None, tokenizer_dir: Path, output: Path, outcome: DemoOutcome) -> Path:
    import torch

    from gfm.training import load_config, run_pretraining

    run_dir = output / "pretraining"
    config = {
        "model_type": "gfm",
        "model_config": {"hidden_size": plan.hidden_size, "num_hidden_layers": plan.num_hidden_layers,
                         "num_attention_heads": plan.num_attention_heads, "max_position_embeddings": plan.max_length,
                         "hidden_dropout": 0.0},
        "tokenizer_name_or_path": str(tokenizer_dir),
        "datasets": list(plan.pretraining_datasets),
        "data_dir": data_dir,
        "max_graphs_per_dataset": plan.max_graphs_per_dataset,
        "ego_num_hops": 2,
        "ego_max_neighbors": 6,
        "cache_dir": str(output / "tokenized_cache"),
        "max_length": plan.max_length,
        "drop_long_sequences": True,
        "eval_fraction": 0.1,
        "eval_max_per_domain": 16,
        "objectives": {"next_token": 1.0, "masked_token": 0.5},
        "output_dir": str(run_dir),
        "overwrite_output_dir": True,
        "seed": 0,
        "micro_batch_rows": plan.micro_batch_rows,
        "global_batch_rows": plan.global_batch_rows,
        "max_steps": plan.pretraining_steps,
        "learning_rate": 3e-3,
        "weight_decay": 0.01,
        "lr_scheduler_type": "cosine",
        "warmup_steps": max(1, plan.pretraining_steps // 10),
        "logging_steps": max(1, plan.pretraining_steps // 15),
        "eval_steps": max(1, plan.pretraining_steps // 3),
        "save_steps": max(1, plan.pretraining_steps // 2),
        "save_total_limit": 1,
        "report_to": ["csv"],
        "mixed_precision": "no",
        "torch_num_threads": torch.get_num_threads(),
    }
    summary = run_pretraining(load_config(None, config))
    export = Path(summary["config"].get("export_dir") or run_dir / "final")
    outcome.pretraining = summary
    outcome.files["pretraining run (metrics.csv, plots/)"] = str(run_dir)
    outcome.files["pretrained export"] = str(export)
    return export


def _finetune(plan: DemoPlan, data_dir: str | None, export: Path, output: Path, outcome: DemoOutcome) -> None:
    import torch

    from gfm.evaluation.reports import write_report
    from gfm.pipelines.finetune import FinetuneConfig, run_finetuning

    directory = output / "finetune"
    config = FinetuneConfig(
        dataset=plan.finetune_dataset, pretrained=str(export), data_dir=data_dir, output_dir=str(directory),
        methods=list(plan.finetune_methods), seeds=list(plan.finetune_seeds),
        max_train_items=plan.finetune_train_items, max_eval_items=plan.finetune_eval_items,
        epochs=plan.finetune_epochs, batch_size=32, learning_rate=3e-3, gnn_epochs=plan.gnn_epochs,
        long_sequences="drop", num_threads=torch.get_num_threads(),
    )
    outcome.finetune_results = run_finetuning(config)
    paths = write_report(outcome.finetune_results, directory, name="finetune",
                         title=f"fine-tuning: {plan.finetune_dataset}")
    outcome.files["fine-tuning report + plot"] = str(paths["markdown"])
    adapters = directory / "adapters"
    if adapters.is_dir():
        outcome.files["LoRA adapters (peft format)"] = str(adapters)


def _zero_shot(plan: DemoPlan, data_dir: str | None, export: Path, output: Path, outcome: DemoOutcome) -> None:
    import torch

    from gfm.evaluation.zero_shot import write_zero_shot_report
    from gfm.pipelines.zero_shot import ZeroShotConfig, run_zero_shot

    directory = output / "zero_shot"
    config = ZeroShotConfig(
        datasets=list(plan.zero_shot_datasets), pretrained=str(export), data_dir=data_dir,
        output_dir=str(directory), seeds=list(plan.zero_shot_seeds), node_accesses=["structure+k_labels"],
        labels_per_class=[plan.labels_per_class], link_accesses=[], svd_rank=32, num_hops=2, max_neighbors=6,
        num_threads=torch.get_num_threads(),
    )
    outcome.zero_shot_results = run_zero_shot(config)
    paths = write_zero_shot_report(outcome.zero_shot_results, directory, name="zero_shot")
    outcome.files["zero-shot report + plots"] = str(paths["markdown"])


def _best(summaries: Sequence[Any], lower_is_better: bool) -> Any:
    """The best of ``summaries`` by mean (``None`` when empty)."""
    if not summaries:
        return None
    return (min if lower_is_better else max)(summaries, key=lambda s: s.mean)


def _evaluation_rows(outcome: DemoOutcome) -> list[dict[str, Any]]:
    """Model-card rows: each gfm method's mean beside its best baseline and best control."""
    from gfm.evaluation.reports import summarize as summarize_runs

    rows = []
    for results in (outcome.finetune_results, outcome.zero_shot_results):
        summaries = summarize_runs(results)
        for item in (s for s in summaries if s.role == "method"):
            peers = [s for s in summaries if (s.task, s.metric, s.access) == (item.task, item.metric, item.access)]
            lower_is_better = item.metric in ("mae", "rmse")
            baseline, control = (_best([s for s in peers if s.role == role], lower_is_better)
                                 for role in ("baseline", "control"))
            rows.append({
                "task": (f"{item.task}: {item.method} fine-tuning" if item.access is None
                         else f"{item.task}: zero-shot ({item.access})"),
                "dataset": item.task, "metric": item.metric, "method": item.method,
                "value": item.mean, "std": item.std, "split": "test",
                "baseline": baseline.method if baseline else None, "baseline_value": baseline.mean if baseline else None,
                "control": control.method if control else None, "control_value": control.mean if control else None,
            })
    return rows


def _save_and_reload(plan: DemoPlan, export: Path, output: Path, outcome: DemoOutcome) -> None:
    import torch
    from transformers import AutoModel

    from gfm.hub import ModelCardInfo, load_checkpoint, save_checkpoint

    model, tokenizer = load_checkpoint(export)
    model.eval()
    summary = outcome.pretraining
    weights = summary.get("config", {}).get("mixture_weights") or {}
    corpus = {
        name: {"domain": domain, "graphs": count, "tokens": outcome.tokenizer["tokens"][name],
               "weight": weights.get(domain, "natural (each graph once per epoch)")}
        for name, (count, domain) in outcome.tokenizer["per_dataset"].items()
    }
    training = {key: summary[key] for key in ("steps", "tokens_seen", "wall_seconds", "world_size", "num_parameters")
                if key in summary}
    for metric, record in sorted(summary.get("losses", {}).get("eval", {}).items()):
        training[f"held-out {metric}"] = (f"{record['first']:.3f} (step {record['first_step']}) -> "
                                          f"{record['last']:.3f} (step {record['last_step']})")
    card = ModelCardInfo(
        model_name="gfm-demo-tiny",
        corpus=corpus,
        objectives=summary.get("objectives", {}),
        training=training,
        evaluation=_evaluation_rows(outcome),
        tags=["demo"],
    )
    hub_dir = save_checkpoint(model, tokenizer, output / "hub" / "gfm-demo-tiny", card, overwrite=True)
    reloaded = AutoModel.from_pretrained(hub_dir)
    reloaded.eval()
    probe = outcome.probe_graphs
    batch = tokenizer(probe, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).last_hidden_state
        actual = reloaded(**batch).last_hidden_state
    difference = float((expected - actual).abs().max())
    if difference != 0.0:
        raise RuntimeError(f"{hub_dir}: the reloaded model differs from the saved one (max |diff| {difference:.3g})")
    outcome.hub = {"directory": str(hub_dir), "max_abs_diff": difference, "probe_graphs": len(probe),
                   "files": sorted(p.name for p in Path(hub_dir).iterdir())}
    outcome.files["hub-ready checkpoint (model, tokenizer, README.md card)"] = str(hub_dir)


# ------------------------------------------------------------------------------------------
# The summary table
# ------------------------------------------------------------------------------------------
def _task_lines(results: Sequence[Any]) -> list[str]:
    """A markdown table of ``results`` summarized over seeds (one row per task, access and method)."""
    from gfm.evaluation.reports import summarize as summarize_runs

    rows = [
        [item.task + (f" [{item.access}]" if item.access else ""), item.method, item.role, item.metric,
         f"{item.mean:.4f} ± {item.std:.4f}", ",".join(map(str, item.seeds))]
        for item in summarize_runs(results)
    ]
    table = format_markdown_table(["task", "method", "role", "metric", "mean ± std", "seeds"], rows)
    return table.splitlines()


def write_pipeline_summary(outcome: DemoOutcome, stream: TextIO | None = None) -> None:
    """Report function: the one summary table of the demo."""
    stream = stream or sys.stdout
    tok, pre = outcome.tokenizer, outcome.pretraining
    lines = ["", "=" * 100, "gfm demo: summary", "=" * 100]
    graphs = sum(r["graphs"] for r in outcome.corpus_rows if isinstance(r.get("graphs"), int))
    lines.append(f"data         {len(outcome.corpus_rows)} datasets, {graphs:,} graphs, domains "
                 f"{', '.join(sorted({r['domain'] for r in outcome.corpus_rows if r['domain'] != '-'}))}")
    if tok:
        lines.append(f"tokenizer    Eulerian, vocab {tok['vocab']:,} ({tok['base_vocab']:,} base + {tok['merged_tokens']:,} BPE "
                     f"merges), trained on {tok['graphs']:,} graphs, sequences {tok['compression']:.2f}x shorter with "
                     f"merges, hash {tok['hash'][:12]}")
    if pre:
        lines.append(f"pretraining  {pre.get('num_parameters', 0):,} parameters, {pre.get('steps')} steps, "
                     f"{pre.get('tokens_seen', 0):,} tokens, {pre.get('wall_seconds', 0):.0f} s")
        for split in ("eval", "train"):
            for metric, record in sorted(pre.get("losses", {}).get(split, {}).items()):
                if metric.count("/") == 2:  # loss/<objective>/<domain>
                    lines.append(f"  {split} {metric[5:]:<36} {record['first']:.3f} (step {record['first_step']}) -> "
                                 f"{record['last']:.3f} (step {record['last_step']})")
            if any(m.count("/") == 2 for m in pre.get("losses", {}).get(split, {})):
                break
    if outcome.finetune_results:
        lines.append("fine-tuning  (test split; selection on validation)")
        lines += _task_lines(outcome.finetune_results)
        lora = [r for r in outcome.finetune_results if r.method == "lora" and r.total_parameters]
        if lora:
            share = lora[0].trainable_parameters / lora[0].total_parameters
            lines.append(f"  LoRA trains {lora[0].trainable_parameters:,} of {lora[0].total_parameters:,} parameters "
                         f"({100 * share:.2f}%)")
    if outcome.zero_shot_results:
        lines.append("zero-shot    (no gradient step; every number beside its controls, same access)")
        lines += _task_lines(outcome.zero_shot_results)
    if outcome.hub:
        lines.append(f"hub          saved and reloaded with AutoModel.from_pretrained: max |diff| "
                     f"{outcome.hub['max_abs_diff']:.1e} on {outcome.hub['probe_graphs']} graphs; files "
                     f"{', '.join(outcome.hub['files'])}")
    if outcome.seconds:
        lines.append("time         " + ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items())
                     + f"; total {sum(outcome.seconds.values()):.0f} s")
    lines.append("files")
    for what, where in outcome.files.items():
        lines.append(f"  {what:<58} {where}")
    lines.append("=" * 100)
    stream.write("\n".join(lines) + "\n")


def run_pipeline(plan: DemoPlan, data_dir: str | None, output: Path, outcome: DemoOutcome) -> DemoOutcome:
    """Steps 2-6 (the corpus rows of step 1 are already in ``outcome``)."""
    from tqdm.auto import tqdm

    output.mkdir(parents=True, exist_ok=True)
    stages = ["tokenizer", "pretraining", "fine-tuning", "zero-shot", "hub"]
    export: Path | None = None
    tokenizer_dir: Path | None = None
    with tqdm(total=len(stages), desc="gfm demo", unit="stage", file=sys.stderr) as bar:
        for stage in stages:
            bar.set_postfix_str(stage)
            start = time.perf_counter()
            if stage == "tokenizer":
                tokenizer_dir = _train_tokenizer(plan, data_dir, output, outcome)
            elif stage == "pretraining":
                export = _pretrain(plan, data_dir, tokenizer_dir, output, outcome)
            elif stage == "fine-tuning":
                _finetune(plan, data_dir, export, output, outcome)
            elif stage == "zero-shot":
                _zero_shot(plan, data_dir, export, output, outcome)
            else:
                _save_and_reload(plan, export, output, outcome)
            outcome.seconds[stage] = time.perf_counter() - start
            logger.info("%s done in %.1f s", stage, outcome.seconds[stage])
            bar.update(1)
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    from gfm.data.corpus import default_cache_dir
    from gfm.data.packaged import PACKAGED_NAMES
    from gfm.data.registry import available, resolve_data_dir
    from gfm.utils.logging import setup_logging

    parser = argparse.ArgumentParser(prog="python -m gfm.pipelines.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="real data folder (default: GFM_DATA_DIR); none: the packaged corpus")
    parser.add_argument("--packaged", action="store_true", help="use the packaged corpus even when a data folder is set")
    parser.add_argument("--summary-only", action="store_true", help="only print the corpus table (step 1)")
    parser.add_argument("--quick", action="store_true", help="every stage in seconds (a smoke run, not useful figures)")
    parser.add_argument("--output-dir", default="runs/demo", help="where every artefact goes (default: runs/demo)")
    parser.add_argument("--full", action="store_true", help="table: also process the large datasets (HIV, MUV, ...)")
    parser.add_argument("--cache-dir", default=None, help="Arrow cache of processed datasets (default: GFM_CACHE_DIR; none: no cache)")
    parser.add_argument("--log-level", default=None, help="logging level (default: GFM_LOG_LEVEL or INFO)")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="torch threads (default 1: the demo's models are tiny, and on a busy 2-core machine "
                             "two threads were 7x slower than one)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.num_threads < 1:
        parser.error(f"--num-threads must be >= 1, got {args.num_threads}")
    import torch

    torch.set_num_threads(args.num_threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    data_dir = None if args.packaged else resolve_data_dir(args.data_dir)
    cache_dir = args.cache_dir or default_cache_dir()
    if data_dir is None:
        names, skip = list(PACKAGED_NAMES), []
        logger.info("no data folder: the embedded default corpus (%s)", ", ".join(names))
    else:
        names = available(data_dir)
        skip = [] if args.full else [n for n in names if n in LARGE_DATASETS and not _is_cached(n, data_dir, cache_dir)]
        logger.info("data folder %s: %d datasets (%d large ones skipped in the table)", data_dir, len(names), len(skip))
    start = time.perf_counter()
    rows = summarize(names, data_dir, cache_dir, skip)
    write_summary_table(rows)
    sys.stdout.flush()
    logger.info("summarised %d datasets in %.1f s", len(rows) - len(skip), time.perf_counter() - start)
    if args.summary_only:
        return 0

    plan = DemoPlan.quick() if args.quick else DemoPlan.default()
    if data_dir is not None:
        plan = plan.with_data_folder()
    outcome = DemoOutcome(corpus_rows=rows, seconds={"data": time.perf_counter() - start})
    run_pipeline(plan, None if data_dir is None else str(data_dir), Path(args.output_dir), outcome)
    write_pipeline_summary(outcome)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
