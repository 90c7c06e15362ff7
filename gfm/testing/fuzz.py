"""Fuzz the Eulerian tokenizer: ``python -m gfm.testing.fuzz --num-graphs 100000``.

Every random graph (:func:`~gfm.testing.eulerian_synthetic.random_graph`: empty graphs,
isolated nodes, self-loops, parallel edges, several components, directed graphs, every attribute
layout) is encoded with a random mix of options (seeded walks, random index offsets, target
nodes and edges) by a base tokenizer with only 4 single-token node indices (so multi-token
indices are frequent) and by the same vocabulary with learned BPE merges, then:

* the ``TokenizedGraph`` must pass ``validate`` and lie inside the vocabulary;
* ``decode`` must give back the same graph up to the reported node order (continuous values
  within the declared precision), with the same targets;
* on a sample, the fast writer must equal the per-token reference writer on the same walk.

The last line of the output is ``fuzz: <graphs> graphs, <failures> failures``; the exit status
is 1 when any graph failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import torch

from gfm.tokenization.eulerian import EulerianTokenizer
from gfm.tokenization.eulerian.walk import walk_graph_python

from .eulerian_reference import graph_difference, multigraph_edges, reference_tokens
from .eulerian_synthetic import covering_graphs, random_graph

logger = logging.getLogger("gfm.testing.fuzz")

__all__ = ["run_fuzz", "main"]


def _check(tokenizer: EulerianTokenizer, graph, encoded, target_node, target_edge) -> str | None:
    encoded.validate(vocab_size=tokenizer.vocab_size)
    decoded = tokenizer.decode(encoded)
    order = encoded.metadata["node_order"]
    difference = graph_difference(
        graph, decoded, order, tokenizer.continuous_tolerance, tokenizer.default_domain
    )
    if difference:
        return difference
    rank = {original: new for new, original in enumerate(order)}
    if target_node is not None and getattr(decoded, "target_node", None) != rank[target_node]:
        return f"target_node decoded as {getattr(decoded, 'target_node', None)}, expected {rank[target_node]}"
    if target_edge is not None and getattr(decoded, "target_edge", None) != [
        rank[target_edge[0]],
        rank[target_edge[1]],
    ]:
        return "target_edge decoded wrongly"
    return None


def run_fuzz(
    num_graphs: int, seed: int = 0, chunk: int = 512, reference_every: int = 10, max_reported: int = 5
) -> tuple[int, list[str]]:
    """Fuzz ``num_graphs`` graphs; returns ``(failures, descriptions of the first failures)``."""
    rng = np.random.default_rng(seed)
    base = EulerianTokenizer.train(covering_graphs(), num_index_tokens=4, continuous_decimals=3)
    sample = [random_graph(np.random.default_rng(10_000 + i)) for i in range(1500)]
    merged = EulerianTokenizer.train(
        covering_graphs() + sample,
        num_index_tokens=4,
        continuous_decimals=3,
        merges="bpe",
        num_merges=400,
        max_piece_length=24,
    )
    failures = 0
    reports: list[str] = []
    done = 0
    started = time.perf_counter()
    while done < num_graphs:
        count = min(chunk, num_graphs - done)
        graph_seeds = rng.integers(0, 2**62, count)
        graphs = [random_graph(np.random.default_rng(int(s))) for s in graph_seeds]
        seeds = [int(rng.integers(0, 2**63)) if rng.random() < 0.5 else None for _ in graphs]
        targets_node = [
            int(rng.integers(g.num_nodes)) if g.num_nodes and rng.random() < 0.3 else None for g in graphs
        ]
        targets_edge = [
            (int(rng.integers(g.num_nodes)), int(rng.integers(g.num_nodes)))
            if g.num_nodes and rng.random() < 0.2
            else None
            for g in graphs
        ]
        offset = bool(rng.random() < 0.3)
        for tokenizer in (base, merged):
            try:
                encoded = tokenizer.encode_batch(
                    graphs,
                    seed=seeds,
                    target_node=targets_node,
                    target_edge=targets_edge,
                    random_offset=offset,
                    return_node_order=True,
                )
            except Exception as err:  # noqa: BLE001 - a fuzzer reports every failure
                failures += count
                reports.append(f"chunk at graph {done}: encode_batch raised {err!r}")
                continue
            for i, (graph, tokens) in enumerate(zip(graphs, encoded)):
                try:
                    problem = _check(tokenizer, graph, tokens, targets_node[i], targets_edge[i])
                    if (
                        problem is None
                        and tokenizer is base
                        and not offset
                        and (done + i) % reference_every == 0
                    ):
                        n, eu, ev, _, _ = multigraph_edges(graph)
                        walk = walk_graph_python(n, eu, ev, seeds[i])
                        expected = reference_tokens(
                            tokenizer, graph, walk, target_node=targets_node[i], target_edge=targets_edge[i]
                        )
                        same = all(
                            torch.equal(getattr(expected, k), getattr(tokens, k))
                            for k in ("input_ids", "node_index", "edge_index", "edge_type")
                        )
                        problem = None if same else "fast writer differs from the reference writer"
                except Exception as err:  # noqa: BLE001
                    problem = f"raised {err!r}"
                if problem is not None:
                    failures += 1
                    if len(reports) < max_reported:
                        merges = "merged" if tokenizer is merged else "base"
                        reports.append(
                            f"graph seed {int(graph_seeds[i])} ({merges}, walk seed {seeds[i]}, "
                            f"offset {offset}): {problem}"
                        )
        done += count
        if done % (chunk * 20) == 0 or done == num_graphs:
            logger.info(
                "%d/%d graphs, %d failures, %.0f s", done, num_graphs, failures, time.perf_counter() - started
            )
    return failures, reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-graphs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    failures, reports = run_fuzz(args.num_graphs, args.seed)
    for report in reports:
        logger.info("failure: %s", report)
    logger.info("fuzz: %d graphs, %d failures", args.num_graphs, failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
