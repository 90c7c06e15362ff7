"""Fine-tuning throughput: training molecules per second of ``train_task_model``, padded vs packed, fp32 vs bf16.

Rows (each at 1 thread, and at every count of ``--threads``):

* ``padded fp32`` (the reference): every batch padded to its longest molecule
  (``pack_sequences=False``), float32;
* ``packed fp32``: each batch's molecules packed into rows of the model's length (the default);
* ``packed bf16``: packed, forward passes under bfloat16 autocast
  (``TrainingConfig.mixed_precision="bf16"``; float32 weights, loss and optimizer).

Data: real molecules. ``--dataset auto`` takes ClinTox (``moleculenet/clintox``, 2 binary tasks)
when ``GFM_DATA_DIR`` is set, else RDKit's packaged NCI set (``packaged/nci5k``, TPSA regression);
molecules of at most ``--max-atoms`` atoms (50) whose Eulerian sequence fits the model's 256
positions, in the dataset's order (classification: the 4 validation and 4 test molecules are half
positive, half negative on the first task, so the metric is defined). An Eulerian tokenizer with
``--num-merges`` BPE merges is trained on them (ClinTox: 19 tokens per molecule on average), or
``--tokenizer`` loads a saved one (the MOSES BPE-8k tokenizer of the molecule checkpoint: 34).

Model: a fresh ``GFMForPretraining`` of ``configs/pretrain/molecules_small.yaml``'s
``model_config`` (hidden 256, 6 layers, 8 heads, 256 positions, no dropout), built with
``GFMConfig``, saved with its tokenizer and loaded with a new head by
``load_pretrained_for_task``, as the fine-tuning recipe does: full fine-tuning, every parameter
trains. Each measurement loads the model again with the same seed, so every row starts from the
same weights and sees the same batches.

Measurement: ``train_task_model`` for ``--steps`` optimizer steps of ``--batch-size`` molecules
(AdamW, warmup, clipping, one validation pass at the end and the test prediction, on 4
molecules each: about 1% of a run). ``mol/s`` = steps x batch size / time of the whole call.
Clock (``--clock auto``): one thread is timed by the process's CPU time (its run time without a
shared machine's waits), more threads by wall time. Rows are interleaved within each repeat (so
they share the machine's drift); the figure is the median over ``--repeats`` after one untimed
warm-up call per row; ``ratio`` = mol/s over the padded fp32 row's at the same threads.
``loss`` is the mean training loss of the last half of the steps of the first repeat (the same
seed in every row: padded and packed fp32 agree to float rounding, bf16 to its tolerance).

    python benchmarks/finetune_throughput.py                  # 1 thread
    python benchmarks/finetune_throughput.py --threads 1,2
    python benchmarks/finetune_throughput.py --quick          # a tiny model, 2 steps (smoke test)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SMALL_YAML = REPO / "configs" / "pretrain" / "molecules_small.yaml"
QUICK_MODEL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 256,
               "hidden_dropout": 0.0}
ROWS = (("padded", "fp32"), ("packed", "fp32"), ("packed", "bf16"))
EVAL_MOLECULES = 4  # valid and test each: the call's one validation pass and test prediction stay small


def model_settings(quick: bool) -> dict:
    """``GFMConfig`` keyword arguments: molecules_small.yaml's ``model_config`` (``--quick``: a tiny model)."""
    if quick:
        return dict(QUICK_MODEL)
    import yaml

    return dict(yaml.safe_load(SMALL_YAML.read_text())["model_config"])


def molecules(dataset_name: str, data_dir: str | None, max_atoms: int, count: int):
    """``(name, task, graphs)``: the first ``count`` molecules of at most ``max_atoms`` atoms (at least 400)."""
    from gfm.data.registry import load

    dataset = load(dataset_name, data_dir=data_dir)
    graphs = [graph for graph in dataset.graphs if int(graph.num_nodes) <= max_atoms]
    return dataset.name, dataset.task, graphs[: max(count, 400)]


def _evaluation_molecules(graphs: list, kind: str) -> list[int]:
    """Indices of ``2 * EVAL_MOLECULES`` molecules for valid and test; classification: half of each split
    positive and half negative on the first task, so that the metric is defined."""
    if kind == "regression":
        return list(range(2 * EVAL_MOLECULES))
    first = [float(graph.y.reshape(-1)[0]) for graph in graphs]
    positives = [i for i, value in enumerate(first) if value == 1]
    negatives = [i for i, value in enumerate(first) if value == 0]
    half = EVAL_MOLECULES // 2
    if len(positives) < 2 * half or len(negatives) < 2 * half:
        raise SystemExit("too few positives or negatives on the first task for the evaluation splits")
    return (positives[:half] + negatives[:half]) + (positives[half:2 * half] + negatives[half:2 * half])


def prepare(args, root: Path):
    """The checkpoint (fresh model + tokenizer) and the task dataset the rows train on."""
    from gfm.adapters.encoding import TaskSampleEncoder
    from gfm.data.dataset import GraphDataset
    from gfm.hub import save_checkpoint
    from gfm.modeling import GFMConfig, GFMForPretraining
    from gfm.tokenization.eulerian import EulerianTokenizer

    settings = model_settings(args.quick)
    max_length = int(settings["max_position_embeddings"])
    num_train = args.steps * args.batch_size
    name, task, graphs = molecules(args.dataset, args.data_dir, args.max_atoms, 2 * num_train)
    if args.tokenizer:
        from gfm.tokenization.base import AutoGraphTokenizer

        tokenizer = AutoGraphTokenizer.from_pretrained(args.tokenizer)
    else:
        tokenizer = EulerianTokenizer.train(graphs, num_index_tokens=64, merges="bpe", num_merges=args.num_merges)
    encoder = TaskSampleEncoder(tokenizer, max_length=max_length)
    lengths = [len(sample) for sample in encoder.graph_samples(graphs)]
    fitting = [(graph, length) for graph, length in zip(graphs, lengths) if length <= max_length]
    if len(fitting) < num_train + 2 * EVAL_MOLECULES:
        raise SystemExit(f"{name}: only {len(fitting)} molecules of <= {args.max_atoms} atoms fit {max_length} "
                         f"positions, {num_train + 2 * EVAL_MOLECULES} needed; lower --steps or --batch-size")
    evaluation = _evaluation_molecules([graph for graph, _ in fitting], task.kind)
    rest = [i for i in range(len(fitting)) if i not in set(evaluation)]
    chosen = [fitting[i] for i in rest[:num_train] + evaluation]
    splits = {"train": torch.arange(0, num_train), "valid": torch.arange(num_train, num_train + EVAL_MOLECULES),
              "test": torch.arange(num_train + EVAL_MOLECULES, num_train + 2 * EVAL_MOLECULES)}
    dataset = GraphDataset(f"{name} (<= {args.max_atoms} atoms)", "molecules", task, [g for g, _ in chosen],
                           splits=splits)
    config = GFMConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, **settings)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(GFMForPretraining(config), tokenizer, root / "model")
    return checkpoint, dataset, config, [length for _, length in chosen[:num_train]]


def train_once(checkpoint: Path, dataset, steps: int, batch_size: int, batches: str, precision: str,
               clock=time.perf_counter):
    """``(seconds on the row's clock, outcome)`` of one ``train_task_model`` call from fresh weights."""
    from gfm.adapters.encoding import TaskSampleEncoder
    from gfm.adapters.heads import load_pretrained_for_task
    from gfm.adapters.task_data import build_task_items
    from gfm.adapters.training import TrainingConfig, train_task_model
    from gfm.pipelines.finetune import _standardize_regression_head

    torch.manual_seed(0)  # the new head's initialization
    model, tokenizer = load_pretrained_for_task(checkpoint, dataset.task)
    encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
    items = build_task_items(dataset, encoder, max_length=model.config.max_position_embeddings)
    _standardize_regression_head(model, items)  # as the recipe does: a regression head learns standardized targets
    config = TrainingConfig(epochs=1, max_steps=steps, batch_size=batch_size, eval_batch_size=2 * EVAL_MOLECULES,
                            eval_every_steps=steps, learning_rate=1e-4, pack_sequences=batches == "packed",
                            mixed_precision="no" if precision == "fp32" else precision)
    start = clock()
    outcome = train_task_model(model, encoder, items, config, seed=0)
    return clock() - start, outcome


def main() -> None:
    from transformers.utils import logging as transformers_logging

    from gfm.utils.hardware import cpu_bf16_instructions, cpu_model_name
    from gfm.utils.tables import format_markdown_table

    transformers_logging.set_verbosity_error()  # no load report or progress bar per fresh head
    transformers_logging.disable_progress_bar()

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model (hidden 64, 2 layers), 2 steps of 8 molecules, 1 repeat")
    parser.add_argument("--dataset", default="auto",
                        help="auto (moleculenet/clintox with GFM_DATA_DIR, else packaged/nci5k) or a registry name")
    parser.add_argument("--data-dir", default=None, help="data folder (default: $GFM_DATA_DIR)")
    parser.add_argument("--max-atoms", type=int, default=50)
    parser.add_argument("--tokenizer", default=None,
                        help="a saved tokenizer folder (e.g. a pretraining export) instead of training one")
    parser.add_argument("--num-merges", type=int, default=1000, help="BPE merges of the trained tokenizer")
    parser.add_argument("--threads", default="1", help="comma list of thread counts, e.g. 1,2")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per call (default 8, --quick 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="molecules per step (default 32, --quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 3, --quick 1)")
    parser.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                        help="auto: process CPU time for 1 thread, wall time otherwise")
    args = parser.parse_args()
    args.steps = args.steps or (2 if args.quick else 8)
    args.batch_size = args.batch_size or (8 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 3)
    data_dir = args.data_dir or os.environ.get("GFM_DATA_DIR")
    if args.dataset == "auto":
        args.dataset = "moleculenet/clintox" if data_dir else "packaged/nci5k"
    args.data_dir = data_dir
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    if args.clock == "cpu" and any(t != 1 for t in thread_counts):
        parser.error("--clock cpu measures one thread; use --clock wall or auto with --threads > 1")

    with tempfile.TemporaryDirectory() as folder:
        checkpoint, dataset, config, lengths = prepare(args, Path(folder))
        clocks = {t: (args.clock if args.clock != "auto" else ("cpu" if t == 1 else "wall")) for t in thread_counts}
        times: dict[tuple, list[float]] = {}
        losses: dict[tuple, float] = {}
        for threads in thread_counts:  # one untimed warm-up call per row
            torch.set_num_threads(threads)
            for batches, precision in ROWS:
                train_once(checkpoint, dataset, 1, args.batch_size, batches, precision)
        for _ in range(repeats):
            for threads in thread_counts:
                torch.set_num_threads(threads)
                clock = time.process_time if clocks[threads] == "cpu" else time.perf_counter
                for batches, precision in ROWS:
                    seconds, outcome = train_once(checkpoint, dataset, args.steps, args.batch_size, batches, precision,
                                                 clock)
                    key = (threads, batches, precision)
                    times.setdefault(key, []).append(seconds)
                    tail = outcome.train_losses[len(outcome.train_losses) // 2:]
                    losses.setdefault(key, sum(tail) / len(tail))

    molecules_per_call = args.steps * args.batch_size
    table = []
    for threads in thread_counts:
        reference = molecules_per_call / statistics.median(times[(threads, "padded", "fp32")])
        for batches, precision in ROWS:
            key = (threads, batches, precision)
            rate = molecules_per_call / statistics.median(times[key])
            table.append([threads, clocks[threads], batches, precision, f"{rate:.1f}", f"{rate / reference:.2f}x",
                          f"{losses[key]:.4f}"])
    bf16 = cpu_bf16_instructions()
    print(f"CPU: {cpu_model_name()}, bf16 matmul instructions: {', '.join(bf16) if bf16 else 'none (bf16 is emulated)'}")
    print(f"data: {dataset.name}, {molecules_per_call} training molecules per call ({args.steps} steps x "
          f"{args.batch_size}) of {min(lengths)}-{max(lengths)} tokens (mean {statistics.mean(lengths):.0f}), "
          f"tokenizer {args.tokenizer or f'trained here ({args.num_merges} BPE merges)'}")
    print(f"model: hidden {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads, "
          f"{config.max_position_embeddings} positions, attention backend {config.attention_backend}; full fine-tuning")
    print(f"median of {repeats} repeat(s), rows interleaved; ratio to padded fp32 at the same threads\n")
    print(format_markdown_table(["threads", "clock", "batches", "precision", "mol/s", "ratio", "loss"], table))


if __name__ == "__main__":
    main()
