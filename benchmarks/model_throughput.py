"""Training throughput and model FLOPs utilization: a gfm model vs a same-size dense Llama.

Models (``--config tiny,small``), both built twice per row, as ``GFMForPretraining`` and as
``transformers.LlamaForCausalLM`` (``attn_implementation="sdpa"``: dense causal attention,
PyTorch's flash kernel), with the same sizes, tied embeddings, vocabulary 1,024, no dropout:

* ``tiny``: hidden 256, 4 layers, 4 heads, SwiGLU width 688 (3.7M matmul weights);
* ``small``: the sizes of ``configs/pretrain/small.yaml``'s ``model_config`` (hidden 512,
  8 layers, 8 heads, SwiGLU width 1,408 = GFMConfig's default; 26M matmul weights).

Step: next-token loss (causal), backward, AdamW; one sequence of ``T`` tokens (``--lengths``;
molecules pack into tens of tokens per graph, ego graphs into a few hundred, so 512 and 4,096).
The gfm input is an Eulerian-style walk of ``T`` tokens over a random graph (average degree 5):
consecutive tokens are joined by graph edges (both directions) and repeated visits of a node
share ``node_index``; gfm's default pattern adds a 4-regular expander and one global token.
``attention_backend="auto"`` picks the backend (named in the table; FlexAttention on a GPU).

Precision: ``fp32`` (no autocast) and ``bf16`` (``torch.autocast(device, torch.bfloat16)``
around both models' forward passes: matmuls in bfloat16, softmax / norms / loss in float32).

Threads (``--threads 1,2``): ``torch.set_num_threads`` before each row. Clock (``--clock auto``):
one thread is timed by the process's CPU time (its run time without a shared machine's waits),
more threads by wall time; the ``clock`` column says which. Steps of the two models alternate
so they share the machine's noise; the figure is the median over the timed steps after one
warm-up step; ``ratio`` = gfm tok/s / Llama tok/s.

Model FLOPs (:mod:`gfm.utils.flops`): ``6 x matmul weights x T`` (attention projections, SwiGLU
and the LM head, which is counted although tied; the embedding lookup is not a matmul) plus
attention ``12 x hidden x layers x links``: gfm's links are its pattern's deduplicated (query,
key) pairs (``gfm links``), Llama's ``T (T + 1) / 2`` (causal). ``MFLOP/tok`` is a step's model
FLOPs per token.

Peak: in the same row, right after the models' steps, with the same threads, clock and dtype,
:func:`gfm.utils.flops.measure_matmul_peak` times the step's 12 linear-layer GEMMs at ``T``
tokens (each layer's forward ``x W^T``, input gradient ``dy W`` and weight gradient ``dy^T x``;
median of repeats after warm-up). ``peak GFLOP/s`` is their FLOP-weighted rate (total FLOPs /
total time of the step's GEMMs at the measured rates); MFU divides by it: ``MFU = MFLOP/tok x
tok/s / peak``. ``best GFLOP/s`` is the fastest single shape, for reference.

``gfm mm`` is the share of gfm's step spent in matmul kernels (one profiled step; CPU only) and
``bound`` = ratio / that share: the ratio gfm would reach if everything but its matmuls took no
time, since the two models' linear layers do the same work.

Run (CPU, the whole matrix: 2 configs x 2 threads x 2 lengths x 2 precisions, ~15 minutes)::

    python benchmarks/model_throughput.py
    python benchmarks/model_throughput.py --config tiny --threads 1 --lengths 512 --quick

On a GPU the same script runs unchanged (``--device auto`` picks CUDA when available; threads
do not apply, the clock is wall time after ``torch.cuda.synchronize()``, gfm's ``"auto"``
backend selects FlexAttention, and MFU is against the GPU's measured bf16 / fp32 GEMM rate)::

    python benchmarks/model_throughput.py --device cuda --precision bf16 --config small --lengths 512,4096
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
VOCAB = 1024
TINY = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 688}
SMALL_YAML = REPO / "configs" / "pretrain" / "small.yaml"


def model_sizes(name: str) -> dict:
    """``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size`` of a config name."""
    if name == "tiny":
        return dict(TINY)
    if name == "small":
        import yaml

        from gfm import GFMConfig

        model_config = yaml.safe_load(SMALL_YAML.read_text())["model_config"]
        keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        config = GFMConfig(vocab_size=VOCAB, **{k: model_config[k] for k in keys if k in model_config})
        return {key: getattr(config, key) for key in keys}
    raise ValueError(f"unknown config {name!r}; choose from tiny, small")


def walk_batch(length: int, seed: int = 0) -> dict:
    """A batch of one walk over a random graph, in the batch contract of ``gfm.tokenization``."""
    from gfm.tokenization import TokenizedGraph, collate_tokenized_graphs

    generator = torch.Generator().manual_seed(seed)
    num_nodes = max(length // 3, 2)
    num_edges = num_nodes * 5 // 2
    src = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    neighbours = [[] for _ in range(num_nodes)]
    for a, b in zip(src.tolist(), dst.tolist()):
        neighbours[a].append(b)
        neighbours[b].append(a)
    node, visits = 0, []
    for _ in range(length):
        visits.append(node)
        options = neighbours[node]
        pick = int(torch.randint(0, max(len(options), 1), (1,), generator=generator))
        node = options[pick] if options else int(torch.randint(0, num_nodes, (1,), generator=generator))
    positions = torch.arange(length - 1)
    edge_index = torch.cat([torch.stack([positions, positions + 1]), torch.stack([positions + 1, positions])], dim=1)
    sample = TokenizedGraph(
        input_ids=torch.randint(8, VOCAB, (length,), generator=generator),
        node_index=torch.tensor(visits),
        edge_index=edge_index,
        num_nodes=num_nodes,
    )
    return collate_tokenized_graphs([sample])


def gfm_model(sizes: dict, length: int):
    from gfm import GFMConfig, GFMForPretraining

    config = GFMConfig(vocab_size=VOCAB, max_position_embeddings=max(length, 8192), **sizes)
    return GFMForPretraining(config)


def llama_model(sizes: dict, length: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        num_key_value_heads=sizes["num_attention_heads"],
        max_position_embeddings=max(length, 8192),
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **sizes,
    )
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")


class _Trainer:
    """One model, its inputs and its optimizer; ``step()`` runs forward, backward and AdamW."""

    def __init__(self, model, inputs: dict, precision: str, device: torch.device) -> None:
        self.model = model.to(device).train()
        self.inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.device_type = device.type
        self.bf16 = precision == "bf16"

    def step(self) -> None:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.model(**self.inputs).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def timed_step(self, clock) -> float:
        start = clock()
        self.step()
        return clock() - start

    def matmul_share(self) -> float:
        """Share of one profiled step's CPU time spent in matmul kernels (aten mm / addmm / bmm)."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            self.step()
        events = profiler.key_averages()
        names = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
        matmul = sum(e.self_cpu_time_total for e in events if e.key in names)
        return matmul / max(sum(e.self_cpu_time_total for e in events), 1e-9)


def measure(config_name: str, length: int, precision: str, threads: int | None, steps: int, clock_name: str,
            device: torch.device, quick: bool) -> dict:
    """One table row: both models' median step times, the matmul peak and the MFU; see the module doc."""
    from gfm.modeling.attention import select_backend
    from gfm.modeling.flops import gfm_gemm_shapes, gfm_training_flops
    from gfm.utils.flops import (
        causal_attention_links,
        default_clock,
        measure_matmul_peak,
        training_step_flops,
    )

    if threads is not None:
        torch.set_num_threads(threads)
    clock = time.process_time if clock_name == "cpu" else default_clock(device)
    sizes = model_sizes(config_name)
    torch.manual_seed(0)
    batch = walk_batch(length)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, :-1] = batch["input_ids"][:, 1:]  # gfm labels are aligned per position
    gfm = _Trainer(gfm_model(sizes, length), dict(batch, labels=labels, causal=True), precision, device)
    llama = _Trainer(llama_model(sizes, length), {"input_ids": batch["input_ids"], "labels": batch["input_ids"]},
                     precision, device)
    inputs = gfm.inputs
    with torch.no_grad():
        pattern = gfm.model.model.build_pattern(
            inputs["sequence_ids"], inputs["node_index"], inputs["graph_edge_index"], inputs["graph_edge_type"], True
        )
    config = gfm.model.config
    backend = select_backend(config.attention_backend, pattern, config.head_dim, device).name
    gfm_flops = gfm_training_flops(config, pattern)
    llama_flops = training_step_flops(
        tokens=length, attention_links=causal_attention_links(length), hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers, intermediate_size=config.intermediate_size, vocab_size=config.vocab_size,
    )
    gfm.step(), llama.step()  # warm-up: kernels built, allocator primed
    gfm_times, llama_times = [], []
    for _ in range(steps):  # alternate so that both share the machine's noise
        gfm_times.append(gfm.timed_step(clock))
        llama_times.append(llama.timed_step(clock))
    gfm_step, llama_step = statistics.median(gfm_times), statistics.median(llama_times)
    share = gfm.matmul_share() if device.type == "cpu" else None
    del gfm, llama
    peak = measure_matmul_peak(
        gfm_gemm_shapes(config, length), torch.bfloat16 if precision == "bf16" else torch.float32, device,
        clock=clock, repeats=3 if quick else 5, min_seconds=0.005 if quick else 0.05,
    )
    return {
        "config": config_name,
        "threads": threads,
        "clock": clock_name,
        "length": length,
        "precision": precision,
        "backend": backend,
        "links": pattern.links()[0].numel(),
        "gfm_rate": length / gfm_step,
        "llama_rate": length / llama_step,
        "gfm_flops_per_token": gfm_flops.per_token,
        "llama_flops_per_token": llama_flops.per_token,
        "peak": peak.weighted,
        "best": peak.best,
        "matmul_share": share,
    }


def format_row(row: dict) -> list:
    """The table cells of a row (MFU = MFLOP/tok x tok/s / peak)."""
    ratio = row["gfm_rate"] / row["llama_rate"]
    share = row["matmul_share"]
    return [
        row["config"],
        "-" if row["threads"] is None else row["threads"],
        row["clock"],
        row["length"],
        row["precision"],
        row["backend"],
        row["links"],
        f"{row['gfm_rate']:.0f}",
        f"{row['llama_rate']:.0f}",
        f"{ratio:.2f}x",
        f"{row['gfm_flops_per_token'] / 1e6:.2f}",
        f"{row['llama_flops_per_token'] / 1e6:.2f}",
        f"{row['peak'] / 1e9:.1f}",
        f"{row['best'] / 1e9:.1f}",
        f"{row['gfm_rate'] * row['gfm_flops_per_token'] / row['peak']:.1%}",
        f"{row['llama_rate'] * row['llama_flops_per_token'] / row['peak']:.1%}",
        "-" if share is None else f"{share:.0%}",
        "-" if share is None else f"{ratio / share:.2f}x",
    ]


HEADER = [
    "config", "threads", "clock", "tokens", "precision", "gfm backend", "gfm links", "gfm tok/s", "llama tok/s",
    "ratio", "gfm MFLOP/tok", "llama MFLOP/tok", "peak GFLOP/s", "best GFLOP/s", "gfm MFU", "llama MFU",
    "gfm mm", "bound",
]


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and its bfloat16 dot-product instructions."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    from gfm.utils.hardware import cpu_bf16_instructions, cpu_model_name

    bf16 = cpu_bf16_instructions()
    return f"CPU: {cpu_model_name()}, bf16 matmul instructions: {', '.join(bf16) if bf16 else 'none (bf16 is emulated)'}"


def _names(text: str, allowed: tuple[str, ...], flag: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(names) - set(allowed))
    if unknown or not names:
        parser.error(f"{flag}: unknown {unknown or text!r}; choose from {', '.join(allowed)}")
    return names


def main() -> None:
    from gfm.utils.tables import format_markdown_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer timed steps, shorter peak measurement")
    parser.add_argument("--config", type=str, default="tiny,small", help="comma list of tiny, small")
    parser.add_argument("--lengths", type=str, default="512,4096")
    parser.add_argument("--precision", type=str, default="fp32,bf16", help="comma list of fp32, bf16")
    parser.add_argument("--threads", type=str, default="1,2", help="comma list of thread counts (CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model (default 5, --quick 2)")
    parser.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                        help="auto: process CPU time for 1 thread, wall time otherwise (and on a GPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available, else cpu")
    args = parser.parse_args()
    configs = _names(args.config, ("tiny", "small"), "--config", parser)
    precisions = _names(args.precision, ("fp32", "bf16"), "--precision", parser)
    lengths = [int(length) for length in args.lengths.split(",") if length.strip()]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False here; use --device cpu")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    if device.type == "cuda":
        if args.clock == "cpu":
            parser.error("--clock cpu does not time a GPU; use --clock wall (or auto)")
        thread_counts: list[int | None] = [None]
    else:
        thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
        if args.clock == "cpu" and any(t != 1 for t in thread_counts):
            parser.error("--clock cpu measures one thread; use --clock wall or auto with --threads > 1")
    steps = args.steps or (2 if args.quick else 5)

    rows = []
    for config_name in configs:
        for threads in thread_counts:
            clock_name = args.clock if args.clock != "auto" else ("cpu" if threads == 1 else "wall")
            for length in lengths:
                for precision in precisions:
                    rows.append(measure(config_name, length, precision, threads, steps, clock_name, device, args.quick))

    described = ", ".join(
        f"{name} = hidden {s['hidden_size']}, {s['num_hidden_layers']} layers, {s['num_attention_heads']} heads, "
        f"SwiGLU {s['intermediate_size']}" for name, s in ((name, model_sizes(name)) for name in configs)
    )
    print(f"training step (causal next-token + AdamW), vocabulary {VOCAB}: {described}; median of {steps} steps")
    print(f"{device_description(device)}; torch {torch.__version__}; {datetime.date.today().isoformat()}")
    print("peak = FLOP-weighted rate of the step's linear-layer GEMMs at the row's tokens, dtype, threads and clock "
          "(MFU divides by it); best = fastest single GEMM shape")
    print()
    print(format_markdown_table(HEADER, [format_row(row) for row in rows]))
    print()
    print("goals (issue 15, bf16, small, 4,096 tokens): gfm MFU >= 40%, ratio >= 4x; "
          "earlier goals: ratio >= 3x at 4,096 tokens, >= 0.9x at 512")


if __name__ == "__main__":
    main()
