"""Auto classes for the two gfm tasks transformers has none for: node classification, edge prediction.

``AutoModelForNodeClassification.from_pretrained(path_or_hub_id)`` and
``AutoModelForEdgePrediction.from_pretrained(...)`` (and ``from_config``) behave like
transformers' task Auto classes, with every ``from_pretrained`` option (revision, dtype,
``local_files_only``, ...): they read the checkpoint's config and build the head registered for
its config class. transformers' own ``AutoModelForTokenClassification`` is not used on purpose:
it promises one prediction per position, while gfm's node head predicts one target node per
sample (``target_node``) and the edge head one node pair (``target_edge``).

Other projects can register their own heads: ``AutoModelForNodeClassification.register(MyConfig,
MyNodeHead)``.
"""

from __future__ import annotations

from collections import OrderedDict

from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping

from .configuration_gfm import GFMConfig
from .modeling_gfm import GFMForEdgePrediction, GFMForNodeClassification

__all__ = ["AutoModelForEdgePrediction", "AutoModelForNodeClassification"]


class AutoModelForNodeClassification(_BaseAutoModelClass):
    """Builds the node-classification head registered for a checkpoint's config (gfm: :class:`GFMForNodeClassification`)."""

    _model_mapping = _LazyAutoMapping(OrderedDict(), OrderedDict())


class AutoModelForEdgePrediction(_BaseAutoModelClass):
    """Builds the edge-prediction head registered for a checkpoint's config (gfm: :class:`GFMForEdgePrediction`)."""

    _model_mapping = _LazyAutoMapping(OrderedDict(), OrderedDict())


AutoModelForNodeClassification.register(GFMConfig, GFMForNodeClassification, exist_ok=True)
AutoModelForEdgePrediction.register(GFMConfig, GFMForEdgePrediction, exist_ok=True)
