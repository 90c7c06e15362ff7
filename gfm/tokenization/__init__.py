"""Graph tokenizers (Eulerian and quantized) and the ``TokenizedGraph`` contract."""

from .base import AutoGraphTokenizer, GraphTokenizer, TokenizerLoadError, content_hash
from .eulerian import EulerianTokenizer
from .input_space import GraphInputProjector
from .quantized import QuantizedTokenizer
from .tokenized_graph import (
    TokenizedGraph,
    TokenizedGraphError,
    collate_tokenized_graphs,
    pack_tokenized_graphs,
)

__all__ = [
    "AutoGraphTokenizer",
    "EulerianTokenizer",
    "GraphInputProjector",
    "GraphTokenizer",
    "QuantizedTokenizer",
    "TokenizedGraph",
    "TokenizedGraphError",
    "TokenizerLoadError",
    "collate_tokenized_graphs",
    "content_hash",
    "pack_tokenized_graphs",
]
