"""Sparse attention speed and memory: gfm's backends vs a PyG index softmax and dense SDPA.

Two patterns, one attention call (forward + backward), hidden 64 = 4 heads x 16, ONE thread:

* graph pattern: a random graph with N nodes and average degree 5 (one token per node, one
  sample), gfm pattern = graph edges + 4-regular expander + 1 global token + self links;
* sequence pattern: N tokens of one sample, sliding window 512 (radius 256) + 4 global tokens.

Methods, all on exactly the same links (gfm's materialized pattern) and the same inputs:

* ``gfm``: the backend ``"auto"`` picks (CSR edge-softmax for the graph pattern, block-gather
  SDPA for the sequence pattern);
* ``pyg``: ``torch_geometric.utils.softmax`` over scores gathered per link, then
  ``torch_geometric.utils.scatter`` of ``alpha * v[key]`` (the usual index-softmax recipe,
  autograd through every intermediate);
* ``dense``: ``scaled_dot_product_attention`` with a boolean ``[N, N]`` mask (no link bias,
  which only makes it cheaper).

Time: median of the timed repeats after one warm-up call, measured as the process's CPU time
(``time.process_time``; every method runs on one thread, so this is its run time without the
waits a shared machine adds; ``--clock wall`` uses wall-clock time instead). Peak memory: every configuration
runs in a fresh subprocess; after building inputs and pattern it calls ``malloc_trim``, resets
the kernel's peak-RSS counter (``/proc/self/clear_refs`` = 5) and reports ``VmHWM - VmRSS``
across the warm-up forward + backward, i.e. the extra resident memory the call needed
(``tracemalloc`` cannot see torch's allocations). Configurations whose estimated memory
exceeds ``--memory-budget-gb`` are not run and print ``OOM/skipped`` with the estimate.

Run: ``python benchmarks/attention_speed.py [--quick]``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time

HEADS, HEAD_DIM = 4, 16
WINDOW, SEQUENCE_GLOBALS = 512, 4
GRAPH_DEGREE, EXPANDER_DEGREE, GRAPH_GLOBALS = 5, 4, 1


# ----------------------------------------------------------------------------------------------
# worker (one configuration per process)
# ----------------------------------------------------------------------------------------------
def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _build(kind: str, size: int):
    import torch

    from gfm.modeling.attention import PatternOptions, build_attention_pattern

    generator = torch.Generator().manual_seed(0)
    sequence_ids = torch.zeros(1, size, dtype=torch.long)
    if kind == "graph":
        num_edges = size * GRAPH_DEGREE // 2
        src = torch.randint(0, size, (num_edges,), generator=generator)
        dst = torch.randint(0, size, (num_edges,), generator=generator)
        edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
        options = PatternOptions(
            num_edge_types=1, expander_degree=EXPANDER_DEGREE, num_global_tokens=GRAPH_GLOBALS, same_node=False
        )
        pattern = build_attention_pattern(sequence_ids, options, graph_edge_index=edge_index)
    else:
        options = PatternOptions(num_edge_types=1, num_global_tokens=SEQUENCE_GLOBALS, window=WINDOW, same_node=False)
        pattern = build_attention_pattern(sequence_ids, options)
    return pattern


def _run_method(method: str, pattern, q, k, v, bias):
    import torch
    import torch.nn.functional as F

    from gfm.modeling.attention import select_backend

    scale = HEAD_DIM**-0.5
    if method == "gfm":
        backend = select_backend("auto", pattern, HEAD_DIM, q.device)
        return backend.forward(q, k, v, pattern, bias, scale)
    if method == "pyg":
        from torch_geometric.utils import scatter, softmax

        query, key, link_type = pattern.links()
        size = q.shape[1]
        qf, kf, vf = q.reshape(size, HEADS, HEAD_DIM), k.reshape(size, HEADS, HEAD_DIM), v.reshape(size, HEADS, HEAD_DIM)
        alpha = (qf[query] * kf[key]).sum(-1) * scale + bias[link_type]
        alpha = softmax(alpha, query, num_nodes=size)
        out = scatter(alpha.unsqueeze(-1) * vf[key], query, dim=0, dim_size=size, reduce="sum")
        return out.view_as(q)
    if method == "dense":
        query, key, _ = pattern.links()
        size = q.shape[1]
        mask = torch.zeros(size, size, dtype=torch.bool)
        mask[query, key] = True
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, scale=scale
        )
        return out.transpose(1, 2)
    raise ValueError(method)


def worker(kind: str, size: int, method: str, repeats: int, clock: str = "cpu") -> dict:
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    pattern = _build(kind, size)
    if method != "gfm" or kind == "graph":
        pattern.csr()  # materialize once, outside the timed call (the model does it once per batch)
    build_ms = (time.perf_counter() - start) * 1000
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, size, HEADS, HEAD_DIM, generator=generator, requires_grad=True) for _ in range(3))
    bias = torch.zeros(pattern.link_types.num_types, HEADS)
    bias_param = torch.zeros(pattern.link_types.num_biased, HEADS, requires_grad=True)
    backend_name = ""
    if method == "gfm":
        from gfm.modeling.attention import select_backend

        backend_name = select_backend("auto", pattern, HEAD_DIM, q.device).name

    def step():
        full_bias = torch.cat([bias_param, bias[:1]])
        out = _run_method(method, pattern, q, k, v, full_bias)
        out.square().sum().backward()
        for tensor in (q, k, v, bias_param):
            tensor.grad = None

    _reset_peak()
    base_kb = _rss_kb("VmRSS")
    step()
    peak_kb = _rss_kb("VmHWM") - base_kb
    now = time.process_time if clock == "cpu" else time.perf_counter
    times = []
    for _ in range(repeats):
        start = now()
        step()
        times.append((now() - start) * 1000)
    links = pattern.num_links_estimate() if pattern._links is None else int(pattern.links()[0].numel())
    return {
        "time_ms": statistics.median(times),
        "peak_mb": peak_kb / 1024,
        "links": links,
        "build_ms": build_ms,
        "backend": backend_name,
    }


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------
def _links_estimate(kind: str, size: int) -> int:
    if kind == "graph":
        return size * (GRAPH_DEGREE + EXPANDER_DEGREE + 2 * GRAPH_GLOBALS + 1)
    return size * (WINDOW + 1 + 2 * SEQUENCE_GLOBALS)


def _memory_estimate_gb(kind: str, size: int, method: str) -> float:
    """Rough peak of a configuration, to skip what cannot fit (never run blindly into OOM)."""
    links = _links_estimate(kind, size)
    if method == "pyg":  # ~6 live [links, H, D] float32 intermediates for autograd
        return links * HEADS * HEAD_DIM * 4 * 6 / 2**30
    if method == "dense":  # bool mask + SDPA's float copy of it + a float [N, N] per head-chunk
        return size * size * (1 + 4 + 4) / 2**30
    return links * 64 / 2**30 + size * HEADS * HEAD_DIM * 4 * 12 / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes 1k and 4k only, 1 timed repeat")
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated N (default 1024,4096,16384,65536)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--memory-budget-gb", type=float, default=6.0)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "N", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, size, method = args.worker[0], int(args.worker[1]), args.worker[2]
        print(json.dumps(worker(kind, size, method, args.repeats or 2, args.clock)))
        return

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([1024, 4096] if args.quick else [1024, 4096, 16384, 65536])
    repeats = args.repeats or (1 if args.quick else 2)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows = []
    for kind in ("graph", "sequence"):
        for size in sizes:
            results = {}
            for method in ("gfm", "pyg", "dense"):
                estimate = _memory_estimate_gb(kind, size, method)
                if estimate > args.memory_budget_gb:
                    results[method] = {"skipped": f"OOM/skipped (~{estimate:.0f} GB)"}
                    continue
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", kind, str(size), method, "--repeats", str(repeats),
                     "--clock", args.clock],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if done.returncode != 0:
                    tail = (done.stderr.strip().splitlines() or ["?"])[-1]
                    results[method] = {"skipped": f"failed: {tail[:40]}"}
                else:
                    results[method] = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((kind, size, results))
            print(f"# done {kind} N={size}", file=sys.stderr, flush=True)

    def cell(result: dict, key: str, fmt: str) -> str:
        return result["skipped"] if "skipped" in result else format(result[key], fmt)

    def ratio(gfm: dict, other: dict, key: str) -> str:
        if "skipped" in gfm or "skipped" in other:
            return "-"
        return f"{other[key] / max(gfm[key], 1e-9):.1f}x"

    header = (
        f"{'pattern':<9} {'N':>6} {'links':>9} {'backend':>10} {'gfm ms':>8} {'gfm MB':>7} {'B/link':>6} "
        f"{'pyg ms':>22} {'pyg MB':>22} {'dense ms':>22} {'dense MB':>22} {'vs pyg':>7} {'vs dense':>8}"
    )
    print(f"attention forward+backward, hidden {HEADS * HEAD_DIM} = {HEADS} heads x {HEAD_DIM}, 1 thread, "
          f"ms = {'process CPU' if args.clock == 'cpu' else 'wall'} time; MB = peak RSS increase (fresh process "
          "per cell); 'vs' = time ratio other / gfm")
    print(header)
    for kind, size, results in rows:
        gfm, pyg, dense = results["gfm"], results["pyg"], results["dense"]
        links = gfm.get("links", _links_estimate(kind, size))
        per_link = "-" if "skipped" in gfm else f"{gfm['peak_mb'] * 2**20 / links:.0f}"
        print(
            f"{kind:<9} {size:>6} {links:>9} {gfm.get('backend', '-'):>10} {cell(gfm, 'time_ms', '.0f'):>8} "
            f"{cell(gfm, 'peak_mb', '.0f'):>7} {per_link:>6} {cell(pyg, 'time_ms', '.0f'):>22} "
            f"{cell(pyg, 'peak_mb', '.0f'):>22} {cell(dense, 'time_ms', '.0f'):>22} {cell(dense, 'peak_mb', '.0f'):>22} "
            f"{ratio(gfm, pyg, 'time_ms'):>7} {ratio(gfm, dense, 'time_ms'):>8}"
        )


if __name__ == "__main__":
    main()
