"""Speed of the quantized tokenizer: nodes encoded per second on a 20k-node graph, epoch time.

    python benchmarks/quantizer_speed.py            # real data (GFM_DATA_DIR): PubMed + the recipe corpus
    python benchmarks/quantizer_speed.py --quick    # synthetic graphs, seconds

Prints one table: each figure beside the reference measured in the same run and their ratio:

* codes of every node of a ~20k-node graph (PubMed, 19,717 nodes, 500 features; or a
  synthetic 20k-node graph): the full-graph fast path against the exact chunked ego-graph
  reference path (same codes, asserted);
* input-space projection of that graph, and context sequences (PPR top-k) per second;
* training seconds per epoch on the corpus (the recipe's five datasets, or a synthetic corpus),
  quantized epoch against the warm-up epoch that runs without the quantizer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch_geometric.data import Data
from torch_geometric.utils import barabasi_albert_graph, to_undirected

from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig
from gfm.utils.tables import format_markdown_table

RECIPE_DATASETS = ["moleculenet/tox21", "planetoid/cora", "karateclub/github", "tu/PROTEINS", "kg/codex-m"]


def _timed(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _synthetic_graph(num_nodes: int, width: int, seed: int, domain: str) -> Data:
    torch.manual_seed(seed)
    edge_index = to_undirected(barabasi_albert_graph(num_nodes, 4))
    x = (torch.rand(num_nodes, width) < 0.05).float() if width else None
    return Data(x=x, edge_index=edge_index, num_nodes=num_nodes, domain=domain)


def _synthetic_corpus() -> dict[str, list[Data]]:
    molecules = []
    for seed in range(300):
        generator = torch.Generator().manual_seed(seed)
        n = 8 + seed % 20
        ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
        molecules.append(
            Data(
                x=torch.randint(0, 8, (n, 9), generator=generator),
                edge_index=to_undirected(ring),
                num_nodes=n,
                domain="molecules",
            )
        )
    return {
        "molecules": molecules,
        "citation": [_synthetic_graph(3000, 300, 1, "citation")],
        "social": [_synthetic_graph(8000, 0, 2, "social")],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="synthetic data, one repeat, a short training")
    parser.add_argument("--data-dir", default=os.environ.get("GFM_DATA_DIR"), help="real data folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=30)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    use_data = bool(args.data_dir) and not args.quick

    if use_data:
        import gfm.data

        big = gfm.data.load("planetoid/pubmed", args.data_dir).graphs[0]
        big_name = "planetoid/pubmed"
        corpus = {}
        for name in RECIPE_DATASETS:
            dataset = gfm.data.load(name, args.data_dir)
            if len(dataset.graphs) > 2000:
                keep = torch.randperm(len(dataset.graphs), generator=torch.Generator().manual_seed(0))[:2000]
                dataset.graphs = [dataset.graphs[i] for i in keep.sort().values.tolist()]
            corpus[name] = dataset
    else:
        big = _synthetic_graph(20_000, 500, 7, "citation")
        big_name = "synthetic BA (20k nodes, 500 features)"
        corpus = _synthetic_corpus()

    config = QuantizedTokenizerConfig(
        epochs=2,
        vq_warmup_epochs=1,
        steps_per_epoch=4 if args.quick else args.steps_per_epoch,
        ego_max_neighbors=3,
        codebook_size=256,
    )
    tokenizer = QuantizedTokenizer.train(corpus, config, progress=False)
    warmup, quantized = tokenizer.training_log[0], tokenizer.training_log[1]
    corpus_nodes = sum(int(g.num_nodes) for part in corpus.values() for g in getattr(part, "graphs", part))

    num_nodes = int(big.num_nodes)

    def full_graph_codes() -> torch.Tensor:
        tokenizer.clear_cache()
        return tokenizer.node_codes(big)

    projection_seconds, inputs = _timed(lambda: tokenizer.projector.transform(big), repeats)
    full_seconds, codes = _timed(full_graph_codes, repeats)
    state = tokenizer._graph_state(big)
    encoder_seconds, _ = _timed(lambda: tokenizer.network.codes(state.inputs, state.edges), repeats)
    reference_seconds, reference_codes = _timed(
        lambda: tokenizer._codes_by_ego_chunks(state.inputs, state.edges, chunk_size=2048), 1
    )
    if not torch.equal(codes, reference_codes):
        raise SystemExit("fast and reference paths disagree: this is a bug")
    centres = list(range(0, num_nodes, max(1, num_nodes // 2000)))[:2000]
    context_seconds, sequences = _timed(lambda: tokenizer.encode_nodes(big, centres), 1)

    rows = [
        (
            "codes, whole pipeline (nodes/s)",
            num_nodes / full_seconds,
            "exact ego-chunk reference",
            num_nodes / (projection_seconds + reference_seconds),
        ),
        (
            "codes, encoder + RVQ only (nodes/s)",
            num_nodes / encoder_seconds,
            "ego-chunk reference",
            num_nodes / reference_seconds,
        ),
        ("input-space projection (nodes/s)", num_nodes / projection_seconds, "-", None),
        ("context sequences, PPR top-16 (seq/s)", len(sequences) / context_seconds, "-", None),
        ("train epoch, quantized (s/epoch)", quantized["seconds"], "warm-up epoch, no VQ", warmup["seconds"]),
        (
            "train steps (loss nodes/s)",
            quantized["steps"] * config.nodes_per_dataset_per_step * len(corpus) / quantized["seconds"],
            "-",
            None,
        ),
    ]
    print(
        f"\nQuantized tokenizer speed on {big_name} ({num_nodes} nodes); corpus {list(corpus)} ({corpus_nodes} nodes), "
        f"{quantized['steps']} steps/epoch; torch threads {torch.get_num_threads()}"
    )
    table = [
        (name, f"{value:,.1f}", reference, f"{reference_value:,.1f}" if reference_value else "-",
         f"{value / reference_value:.2f}" if reference_value else "-")
        for name, value, reference, reference_value in rows
    ]
    print(format_markdown_table(("measurement", "value", "reference", "reference value", "ratio"), table))


if __name__ == "__main__":
    main()
