"""The main job (``make demo`` runs ``python -m gfm.demo``).

For now: load the corpus and print one summary table per dataset, grouped by domain (graphs,
nodes, edges, node feature widths, task). Without a data folder it uses the embedded default
corpus (``packaged/*``: no data folder, no network). With ``GFM_DATA_DIR`` / ``--data-dir``
it summarises every dataset the folder holds; large ones (HIV, MUV, ...) are skipped unless
``--full`` or their Arrow cache already exists (``--cache-dir`` / ``GFM_CACHE_DIR``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

logger = logging.getLogger("gfm.demo")

#: Datasets that take more than a few seconds to process from their source files.
LARGE_DATASETS = (
    "moleculenet/hiv",
    "moleculenet/muv",
    "moleculenet/toxcast",
    "moleculenet/qm8",
    "moleculenet/tox21",
    "linkpred/ddi",
    "karateclub/reddit10k",
)

_COLUMNS = (
    ("dataset", "dataset", "<"),
    ("domain", "domain", "<"),
    ("graphs", "graphs", ">"),
    ("nodes", "nodes", ">"),
    ("edges", "edges", ">"),
    ("x cat/cont", "features", ">"),
    ("task", "task", "<"),
)


def write_summary_table(rows: Sequence[dict[str, Any]], stream: TextIO | None = None) -> None:
    """Report function: write the per-domain summary table to ``stream`` (default stdout)."""
    stream = stream or sys.stdout
    cells = []
    for row in rows:
        cells.append(
            {
                "dataset": row["dataset"],
                "domain": row["domain"],
                "graphs": f"{row['graphs']:,}" if isinstance(row.get("graphs"), int) else str(row.get("graphs", "")),
                "nodes": f"{row['nodes']:,}" if isinstance(row.get("nodes"), int) else str(row.get("nodes", "")),
                "edges": f"{row['edges']:,}" if isinstance(row.get("edges"), int) else str(row.get("edges", "")),
                "features": f"{row['x_cat']}/{row['x_cont']}" if "x_cat" in row else "",
                "task": row["task"],
            }
        )
    widths = {key: max([len(title)] + [len(c[key]) for c in cells]) for title, key, _ in _COLUMNS}
    header = "  ".join(f"{title:{align}{widths[key]}}" for title, key, align in _COLUMNS)
    header = header.rstrip()
    lines = [header, "-" * len(header)]
    for c in cells:
        lines.append("  ".join(f"{c[key]:{align}{widths[key]}}" for _, key, align in _COLUMNS).rstrip())
    stream.write("\n".join(lines) + "\n")


def _is_cached(name: str, data_dir: Any, cache_dir: Any) -> bool:
    from gfm.data.arrow import META_FILE, cache_path

    if cache_dir is None:
        return False
    try:
        return (cache_path(name, data_dir, cache_dir, {}) / META_FILE).is_file()
    except (OSError, ValueError):
        return False


def summarize(names: Sequence[str], data_dir: Any, cache_dir: Any, skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Summary rows for ``names`` (loading each, through the cache when given), sorted by domain."""
    from gfm.data.corpus import Corpus

    kept = [n for n in names if n not in skip]
    rows = Corpus(kept, data_dir=data_dir, cache_dir=cache_dir).build().summary() if kept else []
    for name in skip:
        rows.append({"dataset": name, "domain": "-", "graphs": "-", "nodes": "-", "edges": "-",
                     "task": "skipped: large (use --full; with --cache-dir it is processed once)"})
    return sorted(rows, key=lambda r: (r["domain"] == "-", r["domain"], r["dataset"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Summarise the corpus; returns the exit code."""
    from gfm.data.corpus import default_cache_dir
    from gfm.data.packaged import PACKAGED_NAMES
    from gfm.data.registry import available, resolve_data_dir
    from gfm.utils.logging import setup_logging

    parser = argparse.ArgumentParser(prog="python -m gfm.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="real data folder (default: GFM_DATA_DIR); none: the packaged corpus")
    parser.add_argument("--packaged", action="store_true", help="summarise the packaged corpus even when a data folder is set")
    parser.add_argument("--full", action="store_true", help="also process the large datasets (HIV, MUV, ToxCast, QM8, ...)")
    parser.add_argument("--cache-dir", default=None, help="Arrow cache of processed datasets (default: GFM_CACHE_DIR; none: no cache)")
    parser.add_argument("--log-level", default=None, help="logging level (default: GFM_LOG_LEVEL or INFO)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)

    data_dir = None if args.packaged else resolve_data_dir(args.data_dir)
    cache_dir = args.cache_dir or default_cache_dir()
    if data_dir is None:
        names, skip = list(PACKAGED_NAMES), []
        logger.info("no data folder: summarising the embedded default corpus (%s)", ", ".join(names))
    else:
        names = available(data_dir)
        skip = [] if args.full else [n for n in names if n in LARGE_DATASETS and not _is_cached(n, data_dir, cache_dir)]
        logger.info("data folder %s: %d datasets (%d large ones skipped)", data_dir, len(names), len(skip))
    start = time.perf_counter()
    rows = summarize(names, data_dir, cache_dir, skip)
    write_summary_table(rows)
    logger.info("summarised %d datasets in %.1f s", len(rows) - len(skip), time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
