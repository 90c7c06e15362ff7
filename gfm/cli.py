"""The ``gfm`` console script: a thin front door to the recipes and the data registry.

    gfm datasets [--data-dir DIR]        list the dataset names loadable now
    gfm describe NAME [--data-dir DIR]   load one dataset and show its task and sizes
    gfm demo [...]                       the README's main job (same as ``make demo``)
"""

from __future__ import annotations

import argparse
import json
import sys

from gfm.utils.errors import run_main
from gfm.utils.logging import setup_logging

__all__ = ["main"]


def _datasets(args: argparse.Namespace) -> int:
    """Names on stdout (one per line, for scripts); where they come from, and any missing
    data folder, on stderr."""
    import os

    from gfm.data.registry import DATA_DIR_ENV, available, resolve_data_dir

    origin = "--data-dir" if args.data_dir is not None else DATA_DIR_ENV
    folder = resolve_data_dir(args.data_dir)
    if folder is None:
        sys.stderr.write(
            f"gfm: no data folder set ({DATA_DIR_ENV} is unset): listing the packaged datasets only; "
            f"set {DATA_DIR_ENV}=../shared/data or pass --data-dir for the folder's datasets\n"
        )
    elif not folder.is_dir():
        given = args.data_dir if args.data_dir is not None else os.environ.get(DATA_DIR_ENV)
        what = "is not a folder" if folder.exists() else "does not exist"
        sys.stderr.write(
            f"gfm: warning: {origin} points to {given}, which {what}: none of its datasets can load; "
            f"listing the packaged datasets only. Fix {origin} (gfm never downloads)\n"
        )
    for name in available(args.data_dir):
        sys.stdout.write(name + "\n")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from gfm.data.registry import load

    dataset = load(args.name, data_dir=args.data_dir)
    graphs = dataset.graphs
    summary = {
        "name": dataset.name,
        "domain": dataset.domain,
        "task": asdict(dataset.task),
        "graphs": len(graphs),
        "nodes": int(sum(g.num_nodes for g in graphs)),
        "edges": int(sum(g.edge_index.shape[1] for g in graphs)),
    }
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


def _demo(args: argparse.Namespace, rest: list[str]) -> int:
    from gfm.pipelines import demo

    return int(demo.main(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    """Run ``gfm <command>``; a gfm error is printed as one message on stderr (status 2), without a traceback."""
    return run_main(_main, argv, prog="gfm")


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gfm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("datasets", help="list loadable dataset names")
    listing.add_argument("--data-dir", default=None, help="data folder (default: $GFM_DATA_DIR)")
    describe = commands.add_parser("describe", help="load a dataset and show its task and sizes")
    describe.add_argument("name")
    describe.add_argument("--data-dir", default=None, help="data folder (default: $GFM_DATA_DIR)")
    commands.add_parser("demo", help="run the main job (arguments after 'demo' go to it)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    setup_logging()
    if args.command == "demo":
        return _demo(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return {"datasets": _datasets, "describe": _describe}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
