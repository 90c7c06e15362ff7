"""Few-shot controls on the held-out evaluation graphs: the bar an in-context gfm model must beat.

Runs every parameter-free control of ``gfm.evaluation.protocol.fewshot_controls`` (label
propagation, the SVD probe without and with features, the structural-role probe, the linear-GNN
ensemble) on each evaluation graph, for k = 5 and k = 20 labels per class, 5 seeds, under both
access levels (``structure+k_labels``, ``structure+features+k_labels``), and prints one table:
mean ± std test accuracy (%) per graph x access x k x control, with the best control of each
row. The same table (with the protocol statement, CPU, date and command) is written as markdown
to ``--output``.

Protocol (``gfm.evaluation.protocol``): the support set is drawn from the training mask of the
graph's first split (all labelled nodes when it has none), seeded per run; where a class has
fewer than k training nodes all of them are taken (none: the class is left out, its test nodes
count as errors), as the table's notes say. Test nodes: the test mask of that split. Seeds vary
the support draw only (the split stays the first one, the randomized SVDs use seed 0), so where the
first split has exactly k training nodes per class (CiteSeer's public split, k = 20) every seed
draws the same support and the spread is 0.

    python benchmarks/fewshot_controls.py --output fewshot_controls.md
    python benchmarks/fewshot_controls.py --graphs hetero/texas --k 5 --seeds 0 --output /tmp/t.md   # seconds

Needs the real data folder (``--data-dir`` or ``GFM_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from gfm.data.registry import load
from gfm.evaluation.protocol import (
    EVALUATION_GRAPHS,
    fewshot_controls,
    fewshot_table,
    protocol_statement,
    run_fewshot_node_classification,
)
from gfm.evaluation.zero_shot import Access
from gfm.utils.hardware import cpu_model_name
from gfm.utils.io import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("GFM_DATA_DIR"))
    parser.add_argument("--graphs", nargs="+", default=list(EVALUATION_GRAPHS), help="registry names (default: the six)")
    parser.add_argument("--k", nargs="+", type=int, default=[5, 20], help="labels per class")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--access", nargs="+", choices=["structure", "structure+features"],
                        default=["structure", "structure+features"])
    parser.add_argument("--output", required=True, type=Path, help="markdown file to write the table to")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("set --data-dir or GFM_DATA_DIR to the real data folder")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results, timing, featureless = [], [], []
    for name in args.graphs:
        dataset = load(name, data_dir=args.data_dir)
        if getattr(dataset.graphs[0], "x", None) is None:
            featureless.append(name)
        graph_started = time.perf_counter()
        for level in args.access:
            features = level == "structure+features"
            # one set of controls per graph and access: label-independent work (SVDs, channels,
            # role statistics) is computed once and reused across k and seeds
            controls = fewshot_controls(Access(features=features, labels_per_class=1), seed=0)
            for k in args.k:
                access = Access(features=features, labels_per_class=k)
                results += run_fewshot_node_classification(dataset, controls, access, args.seeds, allow_fewer=True)
        timing.append((name, int(dataset.graphs[0].num_nodes), time.perf_counter() - graph_started))
    order = [control.name for control in fewshot_controls(Access(features=True, labels_per_class=1))]
    table = fewshot_table(results, order=order)
    seconds = time.perf_counter() - started
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/fewshot_controls.py", *(argv or sys.argv[1:])])
    header = [
        f"Date: {datetime.date.today().isoformat()}; CPU: {cpu_model_name()}, {args.threads} thread(s); "
        f"total {seconds:.0f} s.",
        f"Command: `{command}`",
        "",
        protocol_statement(),
        "",
        f"Accuracy (%) on the test mask of the first split, mean ± std over seeds {args.seeds}; support drawn from "
        "the first split's training mask (seeded; the seeds vary only the draw). Controls: parameter-free, hyper-parameters fixed in advance "
        "(linear_gnn: channel and ridge strength chosen by leave-one-out on the support set only).",
    ]
    if featureless:
        header.append(f"Without node features (both accesses coincide): {', '.join(featureless)}.")
    chosen: dict[tuple[str, str], Counter] = {}
    for run in results:
        details = run.extra.get("details")
        if details:
            chosen.setdefault((run.task, run.access), Counter())[details["channel"]] += 1
    footer = ["", "Seconds per graph (all accesses, k and seeds): "
              + ", ".join(f"{name} ({nodes:,} nodes) {s:.1f}" for name, nodes, s in timing) + "."]
    if chosen:
        footer.append("linear_gnn: channel chosen by leave-one-out on the support set (times over seeds): " + "; ".join(
            f"{task} [{access}]: " + ", ".join(f"{c} x{n}" for c, n in counts.most_common())
            for (task, access), counts in chosen.items()) + ".")
    text = "\n".join(header) + "\n\n" + table + "\n".join(footer) + "\n"
    print(text)
    atomic_write_text(args.output, text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
