"""Adaptation: task heads and peft adapters over a pretrained gfm backbone.

Public names are imported lazily on first access (``from gfm.adapters import load_pretrained_for_task``)::

    heads        head_spec_for_task, load_pretrained_for_task, scratch_model_for_task,
                 check_labels_for_head, TaskHeadMismatchError
    adaptation   AdaptationConfig, prepare_for_adaptation, save_adapter, load_adapter,
                 export_merged, AdapterMismatchError
    encoding     SamplingConfig, TaskSampleEncoder
    task data    build_task_items, TaskItems, TaskDataError
    training     TrainingConfig, train_task_model, predict

The fine-tuning recipe as a function (``run_finetuning``), which also runs the baselines and
controls of :mod:`gfm.evaluation`, is orchestration: :mod:`gfm.pipelines.finetune`.
"""

from __future__ import annotations

from gfm.utils.lazy import lazy_exports

_LAZY_EXPORTS: dict[str, str] = {
    **{name: "gfm.adapters.heads" for name in (
        "HeadSpec", "TaskHeadMismatchError", "head_spec_for_task", "backbone_of", "load_pretrained_for_task",
        "scratch_model_for_task", "check_labels_for_head",
    )},
    **{name: "gfm.adapters.adaptation" for name in (
        "AdaptationConfig", "AdapterMismatchError", "prepare_for_adaptation", "parameter_counts",
        "base_model_fingerprint", "save_adapter", "load_adapter", "export_merged",
    )},
    **{name: "gfm.adapters.encoding" for name in ("SamplingConfig", "TaskSampleEncoder", "EncodingError")},
    **{name: "gfm.adapters.task_data" for name in ("TaskItems", "TaskDataError", "build_task_items")},
    **{name: "gfm.adapters.training" for name in ("TrainingConfig", "TrainingOutcome", "train_task_model", "predict")},
}

__all__ = sorted(_LAZY_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_EXPORTS)
