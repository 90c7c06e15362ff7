"""The quantized tokenizer: a GNN encoder plus residual vector quantization gives every node codes.

Modules: :mod:`.tokenizer` (``QuantizedTokenizer``, its config, training and sequences),
:mod:`.model` (GNN encoder, self-supervised heads, losses), :mod:`.rvq` (the residual VQ
codebooks), :mod:`.sampling` (capped and exact ego subgraphs for training and inference) and
:mod:`.evaluation` (codebook statistics and the linear probes of a trained tokenizer).
"""

from ..special_tokens import SPECIAL_TOKENS
from .tokenizer import (
    QUANTIZER_WEIGHTS_FILE,
    CorpusPart,
    QuantizedTokenizer,
    QuantizedTokenizerConfig,
    QuantizedTokenizerError,
    normalize_corpus,
)

__all__ = [
    "QuantizedTokenizer",
    "QuantizedTokenizerConfig",
    "QuantizedTokenizerError",
    "CorpusPart",
    "normalize_corpus",
    "SPECIAL_TOKENS",
    "QUANTIZER_WEIGHTS_FILE",
]
