"""Transfer-quality controls on Planetoid: what a parameter-free method scores with k labels.

Prints one table: test accuracy on the public split (20 labels per class) of label propagation,
the SVD probe (structure only; structure + features) and a GCN trained from scratch, each with
its ratio to the GCN measured in the same run, over seeds (mean ± std).

    python benchmarks/transfer_quality.py            # Cora and CiteSeer, 3 seeds
    python benchmarks/transfer_quality.py --quick    # Cora, 1 seed, shorter GCN

Needs the real data folder (``--data-dir`` or ``GFM_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from gfm.data.registry import load
from gfm.evaluation.baselines import BaselineConfig, train_gcn_node_classifier
from gfm.evaluation.controls import SVDProbe, label_propagation_scores
from gfm.evaluation.metrics import accuracy
from gfm.utils.tables import format_markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("GFM_DATA_DIR"))
    parser.add_argument("--quick", action="store_true", help="Cora only, one seed, 50 GCN epochs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.data_dir:
        raise SystemExit("set --data-dir or GFM_DATA_DIR to the real data folder")
    torch.set_num_threads(args.threads)
    names = ["planetoid/cora"] if args.quick else ["planetoid/cora", "planetoid/citeseer"]
    seeds = [0] if args.quick else [0, 1, 2]
    epochs = 50 if args.quick else 200
    rows = []
    for name in names:
        dataset = load(name, data_dir=args.data_dir)
        data = dataset.graphs[0]
        test, train = data.test_mask, data.train_mask
        scores: dict[str, list[float]] = {"label propagation": [], "SVD probe (structure)": [],
                                          "SVD probe (structure + features)": [], "GCN (from scratch)": []}
        seconds: dict[str, float] = dict.fromkeys(scores, 0.0)
        for seed in seeds:
            started = time.perf_counter()
            lp = label_propagation_scores(data.edge_index, data.y, train)
            seconds["label propagation"] += time.perf_counter() - started
            scores["label propagation"].append(accuracy(data.y[test], lp[test]))
            probe = SVDProbe(rank=256, hops=3, seed=seed)
            for label, features in (("SVD probe (structure)", None), ("SVD probe (structure + features)", data.x)):
                started = time.perf_counter()
                values = probe.node_scores(data.edge_index, data.y, train, features=features)
                seconds[label] += time.perf_counter() - started
                scores[label].append(accuracy(data.y[test], values[test]))
            run = train_gcn_node_classifier(dataset, BaselineConfig(epochs=epochs), seed)
            seconds["GCN (from scratch)"] += run.extra["seconds"]
            scores["GCN (from scratch)"].append(run.test)
        reference = statistics.mean(scores["GCN (from scratch)"])
        for label, values in scores.items():
            mean = statistics.mean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            rows.append((name, label, f"{mean:.4f} ± {std:.4f}", f"{mean / reference:.3f}", f"{seconds[label] / len(seeds):.1f}"))
    header = ("dataset", "method (20 labels per class, public split)", f"test accuracy ({len(seeds)} seeds)",
              "ratio to GCN", "seconds / seed")
    print(format_markdown_table(header, rows))


if __name__ == "__main__":
    main()
