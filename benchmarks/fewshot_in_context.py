"""In-context few-shot node classification on the held-out evaluation graphs, beside every control.

Scores a pretrained ``InContextModel`` (``--model``, e.g. ``runs/fewshot/pretrain/model`` written by
``pretrain/run_fewshot_pretraining.py --config configs/fewshot/pretrain.yaml``), the same
architecture with random weights (``random_init``) and every parameter-free control of
``gfm.evaluation.protocol.fewshot_controls`` on each evaluation graph, k = 5 and k = 20 labels per
class (fewer where a class has fewer training nodes: the protocol takes them all and says so),
seeds 0-4, under ``structure+features+k_labels`` and ``structure+k_labels``; prints one markdown
table (mean ± std test accuracy, %, best control per row; date and CPU in the header) and writes
it to ``--output``. ``--model-card`` also writes it into the checkpoint's ``README.md``.

    python benchmarks/fewshot_in_context.py --model runs/fewshot/pretrain/model --output fewshot_in_context.md
    python benchmarks/fewshot_in_context.py --model runs/fewshot/pretrain/model --graphs hetero/texas --k 5 --seeds 0 --output /tmp/t.md

Needs the real data folder (``--data-dir`` or ``GFM_DATA_DIR``). No hyper-parameter is chosen here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch

from gfm.evaluation.protocol import EVALUATION_GRAPHS
from gfm.modeling.in_context import InContextModel
from gfm.pipelines.fewshot import (
    FewshotBenchmarkConfig,
    benchmark_markdown,
    run_fewshot_in_context,
    write_model_card,
)
from gfm.utils.io import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="InContextModel folder (save_pretrained) or hub id")
    parser.add_argument("--data-dir", default=os.environ.get("GFM_DATA_DIR"))
    parser.add_argument("--graphs", nargs="+", default=list(EVALUATION_GRAPHS), help="registry names (default: the six)")
    parser.add_argument("--k", nargs="+", type=int, default=[5, 20], help="labels per class")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--access", nargs="+", choices=["structure+features+k_labels", "structure+k_labels"],
                        default=["structure+features+k_labels", "structure+k_labels"])
    parser.add_argument("--output", required=True, type=Path, help="markdown file to write the table to")
    parser.add_argument("--model-card", action="store_true", help="also write the table into the model's README.md")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("set --data-dir or GFM_DATA_DIR to the real data folder")
    torch.set_num_threads(args.threads)
    model = InContextModel.from_pretrained(args.model).eval()
    config = FewshotBenchmarkConfig(graphs=args.graphs, accesses=args.access, ks=args.k, seeds=args.seeds,
                                    data_dir=args.data_dir)
    results, seconds = run_fewshot_in_context(model, config)
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/fewshot_in_context.py", *(argv or sys.argv[1:])])
    text = benchmark_markdown(results, seconds, command)
    print(text)
    atomic_write_text(args.output, text)
    if args.model_card:
        write_model_card(args.model, text, training="`pretrain/run_fewshot_pretraining.py --config "
                         "configs/fewshot/pretrain.yaml` (episodic, see docs/adaptation.md).")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
