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
========================================  ===============================

Node classification and edge prediction have no matching Auto class (transformers' token
classification predicts every position, not one target node or node pair per sample); load
them with ``GFMForNodeClassification.from_pretrained`` / ``GFMForEdgePrediction.from_pretrained``.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .configuration_gfm import GFMConfig, GFMConfigError
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

__all__ = [
    "GFMCheckpointMismatchError",
    "GFMConfig",
    "GFMConfigError",
    "GFMForEdgePrediction",
    "GFMForGraphClassification",
    "GFMForNodeClassification",
    "GFMForPretraining",
    "GFMInputError",
    "GFMModel",
    "GFMPreTrainedModel",
]
