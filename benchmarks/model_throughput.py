"""Training throughput: a gfm model vs a same-size dense ``transformers.LlamaForCausalLM``.

Both models: hidden 256, 4 layers, 4 heads, SwiGLU width 688, vocabulary 1,024, tied
embeddings, next-token loss (causal), AdamW step included; one sequence of ``T`` tokens per
step, one thread by default. Llama uses ``attn_implementation="sdpa"`` (dense causal attention,
PyTorch's CPU flash kernel).

The gfm input is an Eulerian-style walk of ``T`` tokens over a random graph (average degree 5):
consecutive tokens are joined by graph edges (both directions) and repeated visits of a node
share ``node_index``; gfm's default pattern adds a 4-regular expander and one global token.
``attention_backend="auto"`` picks the backend (named in the table).

Precision: ``fp32`` (no autocast) and ``bf16`` (``torch.autocast("cpu", torch.bfloat16)``
around both models' forward passes: matmuls in bfloat16, softmax / norms / loss in float32, the
usual mixed-precision training setup). Each precision treats both models the same way.

Figure: training tokens per second (``T`` / median step time over the timed steps, after
warm-up; steps of the two models alternate so they share the machine's noise; step time is the
process's CPU time by default, which on one thread is its run time without the waits of a
shared machine; ``--clock wall`` for wall time); ratio = gfm / Llama. Goals: >= 3x at 4,096
tokens, >= 0.9x at 512.

``gfm mm`` is the share of gfm's step spent in matmul kernels (one profiled step) and
``bound`` = ratio / that share: the ratio gfm would reach if everything but its matmuls took no
time, since the two models' linear layers do the same work. In float32 on this CPU the bound at
4,096 tokens (hidden 256) is under 3x: there the linear layers, not attention, cap the
speed-up, and only bfloat16 matmuls move the cap above it (on a CPU with ``avx512_bf16`` they
run 2.3x faster than float32, while PyTorch's CPU flash attention gains 1.2x; the header names
the CPU's bfloat16 instructions, without which the bf16 rows are not expected to reach 3x).

Run: ``python benchmarks/model_throughput.py [--quick] [--precision fp32,bf16] [--lengths 512,4096]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

HIDDEN, LAYERS, HEADS, INTERMEDIATE, VOCAB = 256, 4, 4, 688, 1024


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


def gfm_model(length: int):
    from gfm import GFMConfig, GFMForPretraining

    config = GFMConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=max(length, 8192),
    )
    return GFMForPretraining(config)


def llama_model(length: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=max(length, 8192),
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")


class _Trainer:
    """One model, its inputs and its optimizer; ``step()`` runs forward, backward and AdamW."""

    def __init__(self, model, inputs: dict, precision: str) -> None:
        self.model, self.inputs = model.train(), inputs
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.autocast_dtype = torch.bfloat16 if precision == "bf16" else None

    def step(self) -> None:
        with torch.autocast("cpu", dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None):
            loss = self.model(**self.inputs).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def timed_step(self, clock: str) -> float:
        now = time.process_time if clock == "cpu" else time.perf_counter
        start = now()
        self.step()
        return now() - start

    def matmul_share(self) -> float:
        """Share of one profiled step's CPU time spent in matmul kernels (aten mm / addmm / bmm)."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            self.step()
        events = profiler.key_averages()
        names = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
        matmul = sum(e.self_cpu_time_total for e in events if e.key in names)
        return matmul / max(sum(e.self_cpu_time_total for e in events), 1e-9)


def measure(length: int, precision: str, steps: int, clock: str) -> dict:
    """Median step times of both models at ``length`` tokens in ``precision``; see the module doc."""
    from gfm.modeling.attention import select_backend

    torch.manual_seed(0)
    batch = walk_batch(length)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, :-1] = batch["input_ids"][:, 1:]  # gfm labels are aligned per position
    gfm = _Trainer(gfm_model(length), dict(batch, labels=labels, causal=True), precision)
    llama = _Trainer(llama_model(length), {"input_ids": batch["input_ids"], "labels": batch["input_ids"]}, precision)
    with torch.no_grad():
        pattern = gfm.model.model.build_pattern(
            batch["sequence_ids"], batch["node_index"], batch["graph_edge_index"], batch["graph_edge_type"], True
        )
    backend = select_backend("auto", pattern, HIDDEN // HEADS, torch.device("cpu")).name
    gfm.step(), llama.step()  # warm-up: kernels built, allocator primed
    gfm_times, llama_times = [], []
    for _ in range(steps):  # alternate so that both share the machine's noise
        gfm_times.append(gfm.timed_step(clock))
        llama_times.append(llama.timed_step(clock))
    gfm_step, llama_step = statistics.median(gfm_times), statistics.median(llama_times)
    return {
        "length": length,
        "precision": precision,
        "backend": backend,
        "links": pattern.num_links_estimate(),
        "gfm_rate": length / gfm_step,
        "llama_rate": length / llama_step,
        "matmul_share": gfm.matmul_share(),
    }


def cpu_description() -> str:
    """Model name and whether the CPU has bfloat16 dot-product instructions (they decide the bf16 rows)."""
    from gfm.utils.hardware import cpu_bf16_instructions, cpu_model_name

    bf16 = cpu_bf16_instructions()
    return f"{cpu_model_name()}, bf16 matmul instructions: {', '.join(bf16) if bf16 else 'none (bf16 is emulated)'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--lengths", type=str, default="512,4096")
    parser.add_argument("--precision", type=str, default="fp32,bf16", help="comma list of fp32, bf16")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model (default 8, --quick 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = args.steps or (3 if args.quick else 8)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread; use --clock wall with --threads > 1")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    unknown = sorted(set(precisions) - {"fp32", "bf16"})
    if unknown:
        parser.error(f"--precision: unknown {unknown}; choose from fp32, bf16")
    rows = [
        measure(int(length), precision, steps, args.clock)
        for length in args.lengths.split(",")
        for precision in precisions
    ]

    goal = {512: ">= 0.9x", 4096: ">= 3x"}
    print(
        f"training tokens/s, hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, causal next-token + AdamW, "
        f"{args.threads} thread(s), {'process CPU' if args.clock == 'cpu' else 'wall'} time, median of {steps} steps"
    )
    print(f"CPU: {cpu_description()}; torch {torch.__version__}")
    print(
        f"{'tokens':>7} {'precision':>9} {'gfm backend':>12} {'gfm links':>10} {'gfm tok/s':>10} "
        f"{'llama tok/s':>12} {'ratio':>7} {'gfm mm':>7} {'bound':>7} {'goal':>8}"
    )
    for row in rows:
        ratio = row["gfm_rate"] / row["llama_rate"]
        print(
            f"{row['length']:>7} {row['precision']:>9} {row['backend']:>12} {row['links']:>10} "
            f"{row['gfm_rate']:>10.0f} {row['llama_rate']:>12.0f} {ratio:>6.2f}x "
            f"{row['matmul_share']:>6.0%} {ratio / row['matmul_share']:>6.2f}x {goal.get(row['length'], '-'):>8}"
        )


if __name__ == "__main__":
    main()
