"""The root of gfm's named errors.

Every error gfm raises on purpose derives from :class:`GFMError`, so a user can catch all of
them in one clause (``except gfm.GFMError``) while each keeps the built-in base it had
(``ValueError``, ``FileNotFoundError``, ...) for code that already catches those. The CLI and
the recipes print a ``GFMError`` as one message, without a traceback, and exit non-zero.
"""

from __future__ import annotations

__all__ = ["GFMError"]


class GFMError(Exception):
    """Base class of every named gfm error: the message names the graph, file or field, and the fix."""
