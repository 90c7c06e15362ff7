"""gfm: graph foundation models in the Hugging Face style.

``import gfm`` registers the gfm model classes with transformers' Auto classes (so
``AutoModel.from_pretrained`` loads gfm checkpoints); every other public name is imported
lazily on first access to keep ``import gfm`` cheap.
"""

from __future__ import annotations

from gfm.utils.lazy import lazy_exports

__version__ = "0.1.0.dev0"

# public name -> module that defines it (imported on first access)
_LAZY_EXPORTS: dict[str, str] = {
    # the base class of every named gfm error
    "GFMError": "gfm.utils.errors",
    # contract between tokenizers and models
    "TokenizedGraph": "gfm.tokenization.tokenized_graph",
    "collate_tokenized_graphs": "gfm.tokenization.tokenized_graph",
    "pack_tokenized_graphs": "gfm.tokenization.tokenized_graph",
    "GraphTokenizer": "gfm.tokenization.base",
    "AutoGraphTokenizer": "gfm.tokenization.base",
    "EulerianTokenizer": "gfm.tokenization.eulerian",
    "QuantizedTokenizer": "gfm.tokenization.quantized",
    "GraphInputProjector": "gfm.tokenization.input_space",
    # models
    "GFMConfig": "gfm.modeling.configuration_gfm",
    "GFMModel": "gfm.modeling.modeling_gfm",
    "GFMPreTrainedModel": "gfm.modeling.modeling_gfm",
    "GFMForPretraining": "gfm.modeling.modeling_gfm",
    "GFMForGraphClassification": "gfm.modeling.modeling_gfm",
    "GFMForNodeClassification": "gfm.modeling.modeling_gfm",
    "GFMForEdgePrediction": "gfm.modeling.modeling_gfm",
    "AutoModelForNodeClassification": "gfm.modeling.auto",
    "AutoModelForEdgePrediction": "gfm.modeling.auto",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_EXPORTS)


# Registers GFMConfig / GFM* models with transformers' Auto classes.
from gfm import modeling as _modeling  # noqa: E402,F401
