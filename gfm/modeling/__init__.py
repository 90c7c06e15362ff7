"""The gfm transformer: configuration, model classes, attention patterns and backends.

Importing this package registers gfm with transformers' Auto classes, so that after
``import gfm`` ``AutoConfig`` / ``AutoModel`` / ``AutoModelForPreTraining`` /
``AutoModelForSequenceClassification`` load gfm checkpoints:

========================================  ===============================
Auto class                                gfm class
========================================  ===============================
``AutoConfig``                            :class:`GFMConfig` (``"gfm"``)
``AutoModel``                             :class:`GFMModel`
``AutoModelForPreTraining``               :class:`GFMForPretraining`
``AutoModelForSequenceClassification``    :class:`GFMForGraphClassification` (one label per sample)
``gfm.AutoModelForNodeClassification``    :class:`GFMForNodeClassification`
``gfm.AutoModelForEdgePrediction``        :class:`GFMForEdgePrediction`
========================================  ===============================

Node classification and edge prediction have no transformers Auto class (token classification
predicts every position, not one target node or node pair per sample), so gfm defines the two
in :mod:`gfm.modeling.auto`, built on transformers' Auto machinery (same ``from_pretrained``
options, ``register`` for other heads).
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .auto import AutoModelForEdgePrediction, AutoModelForNodeClassification
from .checkpoint_files import GFMCheckpointFileError, GFMCorruptWeightsError, GFMNonFiniteWeightsError
from .configuration_gfm import GFMConfig, GFMConfigError
from .in_context import InContextConfig, InContextModel
from .modeling_gfm import (
    GFMCheckpointMismatchError,
    GFMForEdgePrediction,
    GFMForGraphClassification,
    GFMForNodeClassification,
    GFMForPretraining,
    GFMInputError,
    GFMModel,
    GFMPreTrainedModel,
)

AutoConfig.register(GFMConfig.model_type, GFMConfig, exist_ok=True)
AutoModel.register(GFMConfig, GFMModel, exist_ok=True)
AutoModelForPreTraining.register(GFMConfig, GFMForPretraining, exist_ok=True)
AutoModelForSequenceClassification.register(GFMConfig, GFMForGraphClassification, exist_ok=True)
AutoConfig.register(InContextConfig.model_type, InContextConfig, exist_ok=True)
AutoModel.register(InContextConfig, InContextModel, exist_ok=True)

__all__ = [
    "AutoModelForEdgePrediction",
    "AutoModelForNodeClassification",
    "GFMCheckpointFileError",
    "GFMCheckpointMismatchError",
    "GFMConfig",
    "GFMConfigError",
    "GFMCorruptWeightsError",
    "GFMForEdgePrediction",
    "GFMForGraphClassification",
    "GFMForNodeClassification",
    "GFMForPretraining",
    "GFMInputError",
    "GFMModel",
    "GFMNonFiniteWeightsError",
    "GFMPreTrainedModel",
    "InContextConfig",
    "InContextModel",
]
