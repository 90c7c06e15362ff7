"""The Eulerian tokenizer: a graph becomes a walk over every edge, written losslessly as tokens.

Modules: :mod:`.tokenizer` (``EulerianTokenizer``, the sequence format), :mod:`.vocab` (token
layout, schemas, attribute encoding), :mod:`.graphs` (reading and checking input graphs),
:mod:`.walk` (the walk's definition in Python), :mod:`.kernel` + ``walk_kernel.c`` (the same
walk in C, the fast path), :mod:`.merges` (learned SentencePiece merges over base tokens) and
:mod:`.declared` (the categorical values of a whole dataset, to declare when training on a sample).
"""

from .declared import dataset_categorical_values, merge_categorical_values
from .merges import LearnedMerges, MergesError
from .tokenizer import (
    EDGE_TYPE_DUPLICATE,
    EDGE_TYPE_EDGE,
    EDGE_TYPE_MERGED_NODE,
    EDGE_TYPE_REVERSE,
    EDGE_TYPE_STEP_TOKEN,
    MERGES_FILE,
    VOCAB_FILE,
    EulerianDecodeError,
    EulerianTokenizer,
    GraphInputError,
    UnknownValueError,
)
from .vocab import EULERIAN_SPECIAL_TOKENS, EulerianVocabulary, VocabularyError

__all__ = [
    "EulerianTokenizer",
    "EulerianDecodeError",
    "EulerianVocabulary",
    "GraphInputError",
    "UnknownValueError",
    "VocabularyError",
    "LearnedMerges",
    "MergesError",
    "EULERIAN_SPECIAL_TOKENS",
    "EDGE_TYPE_EDGE",
    "EDGE_TYPE_REVERSE",
    "EDGE_TYPE_DUPLICATE",
    "EDGE_TYPE_STEP_TOKEN",
    "EDGE_TYPE_MERGED_NODE",
    "VOCAB_FILE",
    "MERGES_FILE",
    "dataset_categorical_values",
    "merge_categorical_values",
]
