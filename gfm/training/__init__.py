"""Training: objectives, the tokenized corpus and its batch plan, and the accelerate / DeepSpeed loop.

Entry points: :func:`load_config` (YAML -> :class:`PretrainConfig`) and :func:`run_pretraining`;
the recipe ``pretrain/run_pretraining.py`` is a thin command line over them. See
``docs/pretraining.md``.
"""

from .config import (
    DataArguments,
    ModelArguments,
    ObjectiveArguments,
    PretrainConfig,
    PretrainingArguments,
    load_config,
)
from .errors import (
    CheckpointConfigMismatchError,
    CheckpointError,
    ConfigError,
    CorpusError,
    CorruptCheckpointError,
    MixtureWeightError,
    NoUsableCheckpointError,
    OutputDirError,
    OutputDirInUseError,
    PretrainingError,
    TrainingDivergedError,
    UnknownConfigKeyError,
    VocabularyMismatchError,
    WorldSizeError,
)
from .objectives import (
    IGNORE_INDEX,
    masked_code_batch,
    masked_token_batch,
    next_token_batch,
    next_token_labels,
    select_masked_units,
)
from .tracking import format_summary
from .trainer import Pretrainer, run_pretraining

__all__ = [
    "IGNORE_INDEX",
    "CheckpointConfigMismatchError",
    "CheckpointError",
    "ConfigError",
    "CorpusError",
    "CorruptCheckpointError",
    "DataArguments",
    "MixtureWeightError",
    "NoUsableCheckpointError",
    "OutputDirError",
    "OutputDirInUseError",
    "ModelArguments",
    "ObjectiveArguments",
    "PretrainConfig",
    "Pretrainer",
    "PretrainingArguments",
    "PretrainingError",
    "TrainingDivergedError",
    "UnknownConfigKeyError",
    "VocabularyMismatchError",
    "WorldSizeError",
    "format_summary",
    "load_config",
    "masked_code_batch",
    "masked_token_batch",
    "next_token_batch",
    "next_token_labels",
    "run_pretraining",
    "select_masked_units",
]
