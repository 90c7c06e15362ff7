"""Ego-graph sampling speed on karateclub/github (37,700 nodes): vectorized vs plain-loop reference.

    python benchmarks/sampling_speed.py [--data-dir ../shared/data] [--quick]

Samples every node's ego graph (k-hop with a neighbour cap, and personalized-PageRank top-k)
with ``gfm.data.sampling`` and the same on a subset with the plain-Python references of
``gfm.testing.sampling_reference`` (identical output, checked), and prints one table: ego graphs
per second, the reference's rate, the ratio, and the peak resident memory after each phase.
Both run in this process on the same machine, so the ratio is meaningful even when the
absolute rates are noisy.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import torch

from gfm.utils.tables import format_markdown_table


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GFM_DATA_DIR"), help="data folder (default: GFM_DATA_DIR)")
    parser.add_argument("--quick", action="store_true", help="a short run: 4,096 centres, 40 reference centres")
    parser.add_argument("--num-hops", type=int, default=2)
    parser.add_argument("--max-neighbors", type=int, default=10)
    parser.add_argument("--ppr-k", type=int, default=32)
    parser.add_argument("--eps", type=float, default=1e-4)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (default 1: on a shared, oversubscribed machine torch's OpenMP pool made the "
        "gather-bound sampling 5-20x slower; 0 keeps torch's own choice)",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if not args.data_dir:
        sys.exit("sampling_speed: needs the data folder with karateclub/github: pass --data-dir ../shared/data or set GFM_DATA_DIR")

    from gfm.data import registry
    from gfm.data.sampling import EgoGraphSampler, build_csr, khop_ego_batch, ppr_topk
    from gfm.testing.sampling_reference import (
        adjacency_lists,
        khop_ego_reference,
        out_edge_lists,
        ppr_push_reference,
    )

    graph = registry.load("karateclub/github", args.data_dir)[0]
    n = int(graph.num_nodes)
    centres = torch.arange(n) if not args.quick else torch.arange(4096)
    reference_count = 40 if args.quick else 300
    reference_centres = torch.linspace(0, n - 1, reference_count).long()
    rows = []
    base_rss = _peak_rss_mb()

    # k-hop, vectorized, flat batches (all centres, chunks of 1024)
    csr = build_csr(graph.edge_index, n)
    start = time.perf_counter()
    total_nodes = total_edges = 0
    batches = {}
    wanted = set(reference_centres.tolist())
    for first in range(0, centres.numel(), 1024):
        chunk = centres[first : first + 1024]
        batch = khop_ego_batch(graph.edge_index, n, chunk, args.num_hops, args.max_neighbors, seed=0, csr=csr, out_csr=csr)
        total_nodes += batch.nodes.numel()
        total_edges += batch.edge_ids.numel()
        for i, c in enumerate(chunk.tolist()):
            if c in wanted:
                batches[c] = batch.ego(i)
    khop_rate = centres.numel() / (time.perf_counter() - start)
    khop_rss = _peak_rss_mb()

    adjacency = adjacency_lists(graph.edge_index, n)
    out_edges = out_edge_lists(graph.edge_index, n)
    start = time.perf_counter()
    for c in reference_centres.tolist():
        nodes, _, edges = khop_ego_reference(graph.edge_index, n, c, args.num_hops, args.max_neighbors, 0, "out", adjacency, out_edges)
        if c in batches:  # identical output, checked while timing costs nothing extra for the fast path
            fast_nodes, fast_edges, fast_ids = batches[c]
            assert fast_nodes.tolist() == nodes and list(zip(*fast_edges.tolist(), fast_ids.tolist())) == edges, c
    khop_reference_rate = reference_count / (time.perf_counter() - start)
    rows.append(
        (f"k-hop ego (k={args.num_hops}, cap {args.max_neighbors})", centres.numel(), khop_rate, khop_reference_rate, khop_rss,
         f"{total_nodes / centres.numel():.0f} nodes, {total_edges / centres.numel():.0f} edges per ego")
    )

    # the same as Data objects (what tokenizers consume)
    sampler = EgoGraphSampler(graph, num_hops=args.num_hops, max_neighbors=args.max_neighbors, seed=0)
    data_centres = centres[: min(centres.numel(), 8192)]
    start = time.perf_counter()
    count = sum(1 for _ in sampler.node_samples(data_centres))
    data_rate = count / (time.perf_counter() - start)
    rows.append(("k-hop ego -> torch_geometric Data", count, data_rate, khop_reference_rate, _peak_rss_mb(), "incl. feature/label slicing"))

    # PPR top-k
    ppr_centres = centres if not args.quick else centres[:2048]
    start = time.perf_counter()
    neighbors, _ = ppr_topk(graph.edge_index, n, ppr_centres, args.ppr_k, eps=args.eps, csr=csr)
    ppr_rate = ppr_centres.numel() / (time.perf_counter() - start)
    ppr_rss = _peak_rss_mb()
    start = time.perf_counter()
    checked = 0
    for c in reference_centres.tolist()[: max(10, reference_count // 3)]:
        scores = ppr_push_reference(graph.edge_index, n, c, 0.15, args.eps, adjacency=adjacency)
        if c < ppr_centres.numel():
            ranked = sorted((v for v in scores if v != c), key=lambda v: (-scores[v], v))[: args.ppr_k]
            assert sorted(ranked) == sorted(neighbors[c][neighbors[c] >= 0].tolist()), c
            checked += 1
    ppr_reference_rate = max(10, reference_count // 3) / (time.perf_counter() - start)
    rows.append((f"PPR top-{args.ppr_k} (eps {args.eps:g})", ppr_centres.numel(), ppr_rate, ppr_reference_rate, ppr_rss,
                 f"{checked} reference seeds checked equal"))

    print(f"karateclub/github: {n:,} nodes, {graph.edge_index.shape[1]:,} directed edges; torch threads {torch.get_num_threads()}; "
          f"RSS after loading {base_rss:.0f} MB")
    header = ("sampler", "egos", "egos/s (gfm)", "egos/s (loop ref.)", "ratio", "peak RSS MB", "note")
    table = [
        (name, f"{count:,}", f"{rate:,.0f}", f"{ref:,.0f}", f"{rate / ref:.1f}x", f"{rss:,.0f}", note)
        for name, count, rate, ref, rss, note in rows
    ]
    print(format_markdown_table(header, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
