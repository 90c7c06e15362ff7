"""Training throughput: a gfm model vs a same-size dense ``transformers.LlamaForCausalLM``.

Both models: hidden 256, 4 layers, 4 heads, SwiGLU width 688, vocabulary 1,024, tied
embeddings, next-token loss (causal), AdamW step included; one sequence of ``T`` tokens per
step, one thread by default. Llama uses ``attn_implementation="sdpa"`` (dense causal attention).

The gfm input is an Eulerian-style walk of ``T`` tokens over a random graph (average degree 5):
consecutive tokens are joined by graph edges (both directions) and repeated visits of a node
share ``node_index``; gfm's default pattern adds a 4-regular expander and one global token.
``attention_backend="auto"`` picks the backend (named in the table).

Figure: training tokens per second (``T`` / median step time over the timed steps, after
warm-up; step time is the process's CPU time by default, which on one thread is its run time
without the waits of a shared machine; ``--clock wall`` for wall time); ratio = gfm / Llama. Goals: >= 3x at 4,096 tokens, >= 0.9x at 512.

Run: ``python benchmarks/model_throughput.py [--quick]``.
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


def step_timer(model, inputs: dict, steps: int, warmup: int, clock: str = "cpu") -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    now = time.process_time if clock == "cpu" else time.perf_counter
    times = []
    for step in range(warmup + steps):
        start = now()
        loss = model(**inputs).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            times.append(now() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--lengths", type=str, default="512,4096")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = args.steps or (2 if args.quick else 6)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread; use --clock wall with --threads > 1")
    rows = []
    for length in [int(v) for v in args.lengths.split(",")]:
        torch.manual_seed(0)
        batch = walk_batch(length)
        labels = torch.full_like(batch["input_ids"], -100)
        labels[:, :-1] = batch["input_ids"][:, 1:]  # gfm labels are aligned per position
        gfm_inputs = dict(batch, labels=labels, causal=True)
        llama_inputs = {"input_ids": batch["input_ids"], "labels": batch["input_ids"]}  # Llama shifts inside
        gfm, llama = gfm_model(length), llama_model(length)
        with torch.no_grad():
            pattern = gfm.model.build_pattern(
                batch["sequence_ids"], batch["node_index"], batch["graph_edge_index"], batch["graph_edge_type"], True
            )
            from gfm.modeling.attention import select_backend

            backend = select_backend("auto", pattern, HIDDEN // HEADS, torch.device("cpu")).name
        gfm_times, llama_times = [], []
        for _ in range(2):  # interleave to share the machine's noise
            gfm_times += step_timer(gfm, gfm_inputs, steps // 2 or 1, warmup=1, clock=args.clock)
            llama_times += step_timer(llama, llama_inputs, steps // 2 or 1, warmup=1, clock=args.clock)
        gfm_rate = length / statistics.median(gfm_times)
        llama_rate = length / statistics.median(llama_times)
        rows.append((length, backend, pattern.num_links_estimate(), gfm_rate, llama_rate))

    goal = {512: ">= 0.9x", 4096: ">= 3x"}
    print(
        f"training tokens/s, hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, causal next-token + AdamW, "
        f"{args.threads} thread(s), {'process CPU' if args.clock == 'cpu' else 'wall'} time"
    )
    print(f"{'tokens':>7} {'gfm backend':>12} {'gfm links':>10} {'gfm tok/s':>10} {'llama tok/s':>12} {'ratio':>7} {'goal':>8}")
    for length, backend, links, gfm_rate, llama_rate in rows:
        print(
            f"{length:>7} {backend:>12} {links:>10} {gfm_rate:>10.0f} {llama_rate:>12.0f} "
            f"{gfm_rate / llama_rate:>6.2f}x {goal.get(length, '-'):>8}"
        )


if __name__ == "__main__":
    main()
