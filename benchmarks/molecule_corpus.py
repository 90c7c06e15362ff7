"""Sharded molecule corpus: molecules/s and peak memory of the build by worker count, re-run reuse, tokens per molecule.

Run: ``python benchmarks/molecule_corpus.py [--quick] [--source moses/train --limit 50000] [--tokenizer DIR]``

Builds the same slice of a SMILES file (default: the first 20,000 MOSES molecules with
``GFM_DATA_DIR`` set, else RDKit's packaged ``first_5K.smi``) into a fresh folder with
:func:`gfm.training.molecule_corpus.build_molecule_corpus` once per worker count (``0`` = all in
the parent process), then re-runs the last build to time the reuse of its finished shards. Each
row: molecules, wall seconds, molecules/s, peak memory of the parent plus its workers (RSS summed,
and PSS, which splits the pages the forked workers share), the speed-up over the in-process
build. Then tokens per molecule without and with the tokenizer's merges.

The tokenizer is ``--tokenizer DIR`` or one trained here on a seeded sample (``--sample-size``,
``--num-merges`` BPE merges; every RDKit feature value gets a token). Wall time on a shared
machine moves with the load: the header prints the CPU and ``os.getloadavg``. The full MOSES
figure (1,584,663 molecules) comes from ``tokenizers/build_molecule_corpus.py`` and is kept in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from gfm.data.smiles_corpus import resolve_smiles_source
from gfm.training.molecule_corpus import build_molecule_corpus, sequence_lengths, train_molecule_tokenizer
from gfm.utils.hardware import cpu_model_name
from gfm.utils.tables import format_markdown_table


def packaged_smiles() -> Path:
    import rdkit

    return Path(rdkit.__file__).parent / "Data" / "NCI" / "first_5K.smi"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=None, help="named corpus or file (default: moses/train, else NCI 5K)")
    parser.add_argument("--data-dir", default=None, help="data folder (default: GFM_DATA_DIR)")
    parser.add_argument("--limit", type=int, default=None, help="molecules per build (default 20,000; quick 500)")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--shard-size", type=int, default=None, help="rows per shard (default: limit / 8)")
    parser.add_argument("--tokenizer", default=None, help="a trained tokenizer directory (default: train one)")
    parser.add_argument("--sample-size", type=int, default=None, help="tokenizer sample (default 5,000; quick 300)")
    parser.add_argument("--num-merges", type=int, default=None, help="BPE merges (default 2,000; quick 100)")
    parser.add_argument("--quick", action="store_true", help="a few hundred molecules (smoke test)")
    args = parser.parse_args(argv)

    data_dir = args.data_dir or os.environ.get("GFM_DATA_DIR")
    source = args.source or ("moses/train" if data_dir and Path(data_dir, "moses", "train.csv.gz").is_file()
                             else str(packaged_smiles()))
    source = resolve_smiles_source(source, data_dir=data_dir)
    limit = args.limit or (500 if args.quick else 20_000)
    shard_size = args.shard_size or max(limit // 8, 1)
    workers = [int(w) for w in args.workers.split(",")]
    print(f"CPU: {cpu_model_name()} x{os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; source {source.name}; "
          f"{limit:,} molecules, shards of {shard_size:,}")

    from gfm.tokenization.eulerian import EulerianTokenizer

    if args.tokenizer:
        tokenizer = EulerianTokenizer.from_pretrained(args.tokenizer)
        graphs = None
        sample_note = f"tokenizer {args.tokenizer}"
    else:
        sample = args.sample_size or (300 if args.quick else 5_000)
        merges = args.num_merges or (100 if args.quick else 2_000)
        tokenizer, graphs = train_molecule_tokenizer(source, sample_size=sample, num_merges=merges, num_workers=1)
        sample_note = f"tokenizer trained on {len(graphs):,} sampled molecules, {merges:,} BPE merges"
    print(sample_note + f"; vocab {tokenizer.vocab_size:,}")

    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="gfm-molecule-corpus-"))
    try:
        baseline = None
        last = None
        for count in workers:
            folder = scratch / f"workers-{count}"
            started = time.perf_counter()
            build = build_molecule_corpus(source, tokenizer, folder, shard_size=shard_size, num_workers=count,
                                          limit=limit, progress=False)
            seconds = time.perf_counter() - started
            rate = build.manifest["totals"]["source_rows"] / seconds
            baseline = baseline or rate
            rows.append([f"build, {count} workers" if count else "build, in-process", f"{build.rows:,}",
                         f"{seconds:.1f}", f"{rate:,.0f}", f"{build.peak_rss_bytes / 2**20:,.0f}",
                         f"{build.peak_pss_bytes / 2**20:,.0f}", f"{rate / baseline:.2f}x"])
            last = (folder, count)
        folder, count = last
        started = time.perf_counter()
        again = build_molecule_corpus(source, tokenizer, folder, shard_size=shard_size, num_workers=count, limit=limit,
                                      progress=False)
        seconds = time.perf_counter() - started
        assert not again.built_shards, "the re-run rebuilt shards"
        rows.append([f"re-run, {len(again.reused_shards)} shards reused", f"{again.rows:,}", f"{seconds:.2f}", "", "",
                     "", ""])
        print(format_markdown_table(["run", "molecules", "seconds", "molecules/s", "peak RSS MiB (sum)",
                                     "peak PSS MiB (sum)", "vs in-process"], rows))
        if graphs is None:
            from gfm.data.molecules import molecules_to_graphs
            from gfm.data.smiles_corpus import iter_smiles_chunks

            chunk = next(iter_smiles_chunks(source, min(limit, 5_000)))
            graphs = molecules_to_graphs(chunk.smiles, num_workers=1)[0]
        lengths = sequence_lengths(tokenizer, graphs)
        cells = [[name, f"{values.mean():.1f}", f"{np.median(values):.0f}", f"{np.percentile(values, 95):.0f}",
                  f"{values.max()}"] for name, values in (("without merges", lengths["base"]),
                                                         ("with merges", lengths["merged"]))]
        print(format_markdown_table(["tokens per molecule", "mean", "median", "p95", "max"], cells)
              + f"\n(on {len(graphs):,} molecules; ratio {lengths['base'].mean() / lengths['merged'].mean():.1f}x)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
