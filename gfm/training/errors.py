"""Named errors of the pretraining stack; each is raised before any training step runs.

Every message names the offending key / file / domain and says how to fix it.
"""

from __future__ import annotations

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
]


class PretrainingError(ValueError):
    """Base class of every error the pretraining stack raises about user input."""


class ConfigError(PretrainingError):
    """A configuration value is invalid (wrong type, out of range, inconsistent with another)."""


class UnknownConfigKeyError(ConfigError):
    """A configuration key that no config dataclass defines (the message names the close match)."""


class MixtureWeightError(ConfigError):
    """``mixture_weights`` names a domain the corpus does not have, or misses one it has."""


class VocabularyMismatchError(PretrainingError):
    """The tokenizer, the corpus and the model disagree on the vocabulary."""


class CorpusError(PretrainingError):
    """The tokenized corpus is missing, empty or inconsistent with the configuration."""


class CheckpointError(PretrainingError):
    """A checkpoint cannot be used."""


class CheckpointConfigMismatchError(CheckpointError):
    """Resuming from a checkpoint written by a run with another configuration."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint directory is incomplete or its files do not match its manifest."""


class WorldSizeError(PretrainingError):
    """The number of processes actually running differs from the one the config promised."""
