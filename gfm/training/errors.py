"""Named errors of the pretraining stack; each is raised before any training step runs.

Every message names the offending key / file / domain and says how to fix it. Configuration
errors are gfm's one :class:`~gfm.utils.config.ConfigError` (and its
:class:`~gfm.utils.config.UnknownConfigKeyError`), re-exported here; a checkpoint whose files
are damaged is gfm's one :class:`~gfm.hub.CorruptCheckpointError`, also re-exported.
"""

from __future__ import annotations

from gfm.hub import CorruptCheckpointError
from gfm.utils.config import ConfigError, UnknownConfigKeyError
from gfm.utils.errors import GFMError

__all__ = [
    "PretrainingError",
    "ConfigError",
    "UnknownConfigKeyError",
    "MixtureWeightError",
    "VocabularyMismatchError",
    "CheckpointError",
    "CheckpointConfigMismatchError",
    "CorruptCheckpointError",
    "WorldSizeError",
    "CorpusError",
    "TrainingDivergedError",
    "OutputDirError",
    "OutputDirInUseError",
    "NoUsableCheckpointError",
]


class PretrainingError(GFMError, ValueError):
    """Base class of the errors the pretraining stack raises about its run inputs (corpus, tokenizer, checkpoints, processes)."""


class MixtureWeightError(ConfigError):
    """``mixture_weights`` names a domain the corpus does not have, or misses one it has."""


class VocabularyMismatchError(PretrainingError):
    """The tokenizer, the corpus and the model disagree on the vocabulary."""


class CorpusError(PretrainingError):
    """The tokenized corpus is missing, empty or inconsistent with the configuration."""


class CheckpointError(PretrainingError):
    """A training checkpoint cannot be used (missing, or written by another configuration)."""


class CheckpointConfigMismatchError(CheckpointError):
    """Resuming from a checkpoint written by a run with another configuration."""


class WorldSizeError(PretrainingError):
    """The number of processes actually running differs from the one the config promised."""


class TrainingDivergedError(GFMError, RuntimeError):
    """The loss (or the weights to export) stopped being finite; the message names the step and the last finite loss."""


class OutputDirError(ConfigError):
    """``output_dir`` (or ``export_dir``) is a file or cannot be written; found before anything is loaded."""


class OutputDirInUseError(GFMError, FileExistsError):
    """Another run holds ``output_dir``'s lock file (the message names its pid, host and start time)."""


class NoUsableCheckpointError(CheckpointError):
    """Resume was requested, checkpoints exist, and none of them verifies (each is listed with its reason)."""
