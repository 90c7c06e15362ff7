"""Pipelines: orchestration that uses several rooms at once (data, adapters, evaluation, training).

Public names are imported lazily on first access (``from gfm.pipelines import run_finetuning``)::

    finetune     FinetuneConfig, FinetuneConfigError, run_finetuning, load_finetune_config
                 (every adaptation method beside scratch, GNN baselines and controls)
    zero_shot    ZeroShotConfig, ZeroShotConfigError, run_zero_shot, load_zero_shot_config,
                 GFMZeroShotMethod (the gfm model as a method of the zero-shot protocol)
    tokenizer_training
                 TokenizerTrainingArguments, train_tokenizer, format_tokenizer_report
                 (an Eulerian tokenizer trained on registry datasets + the tokenized corpus cache)
    quantizer_training
                 TrainQuantizerArguments, train_quantizer, format_quantizer_report
                 (the quantized tokenizer trained, probed, reloaded and timed)
    demo         ``python -m gfm.pipelines.demo`` / ``gfm demo``: the whole pipeline in minutes

The recipes in ``finetune/`` and ``tokenizers/`` are thin command lines over
these functions. The pieces they orchestrate stay in their rooms: heads and adapters in
:mod:`gfm.adapters`, the model-free zero-shot protocol, metrics, baselines and controls in
:mod:`gfm.evaluation`.
"""

from __future__ import annotations

from gfm.utils.lazy import lazy_exports

_LAZY_EXPORTS: dict[str, str] = {
    **{name: "gfm.pipelines.finetune" for name in (
        "FinetuneConfig", "FinetuneConfigError", "run_finetuning", "load_finetune_config",
    )},
    **{name: "gfm.pipelines.zero_shot" for name in (
        "ZeroShotConfig", "ZeroShotConfigError", "run_zero_shot", "load_zero_shot_config", "GFMZeroShotMethod",
    )},
    **{name: "gfm.pipelines.tokenizer_training" for name in (
        "TokenizerTrainingArguments", "train_tokenizer", "format_tokenizer_report",
    )},
    **{name: "gfm.pipelines.quantizer_training" for name in (
        "TrainQuantizerArguments", "train_quantizer", "format_quantizer_report",
    )},
}

__all__ = sorted(_LAZY_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_EXPORTS)
