"""Sparse attention for gfm: patterns built per batch and the backends that execute them."""

from .backends import (
    AUTO,
    AttentionBackend,
    AttentionBackendError,
    BackendUnavailableError,
    UnknownAttentionBackendError,
    UnsupportedPatternError,
    attention_backend_names,
    get_backend,
    register_backend,
    select_backend,
)
from .patterns import (
    AttentionPattern,
    AttentionPatternError,
    CSRLinks,
    LinkTypes,
    PatternOptions,
    build_attention_pattern,
)

__all__ = [
    "AUTO",
    "AttentionBackend",
    "AttentionBackendError",
    "AttentionPattern",
    "AttentionPatternError",
    "BackendUnavailableError",
    "CSRLinks",
    "LinkTypes",
    "PatternOptions",
    "UnknownAttentionBackendError",
    "UnsupportedPatternError",
    "attention_backend_names",
    "build_attention_pattern",
    "get_backend",
    "register_backend",
    "select_backend",
]
