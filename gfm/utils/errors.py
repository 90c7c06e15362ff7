"""The root of gfm's named errors, and how command lines report them.

Every error gfm raises on purpose derives from :class:`GFMError`, so a user can catch all of
them in one clause (``except gfm.GFMError``) while each keeps the built-in base it had
(``ValueError``, ``FileNotFoundError``, ...) for code that already catches those. The CLI and
the recipes run their ``main`` through :func:`run_main`, which prints a ``GFMError`` as one
message, without a traceback, and exits non-zero.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["GFMError", "run_main"]


class GFMError(Exception):
    """Base class of every named gfm error: the message names the graph, file or field, and the fix."""


def run_main(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run a command line's ``main(argv)`` and return its exit status.

    A :class:`GFMError` (bad input the message already explains) is written to stderr as one
    message, ``<prog>: error: <ErrorClass>: <message>``, and gives status 2; any other exception
    propagates with its traceback (it is a bug, not a user mistake). ``main`` returning an int
    gives that status; returning anything else (a summary, ``None``) gives 0.

    Args:
        main: the recipe's or CLI's ``main``, taking the argument list.
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the program name in the message (default: the script's file name).

    Use as ``if __name__ == "__main__": sys.exit(run_main(main))``.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        result = main(arguments)
    except GFMError as err:
        name = prog or os.path.basename(sys.argv[0]) or "gfm"
        sys.stderr.write(f"{name}: error: {type(err).__name__}: {err}\n")
        sys.stderr.flush()
        return 2
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
