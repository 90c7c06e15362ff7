"""Evaluation: metrics, baselines, the zero-shot protocol and reports.

Public names are imported lazily on first access (``from gfm.evaluation import roc_auc``)::

    metrics      accuracy, macro_f1, roc_auc, average_precision, mae, rmse, mrr, hits_at_k,
                 get_metric, score_outputs
    controls     SVDProbe, label_propagation_scores, class_prototype_scores, LinearGNNEnsemble,
                 structural_role_scores, ...
    baselines    train_gcn_node_classifier, train_gin_graph_model, train_gcn_link_predictor
    zero-shot    Access, run_node_classification, run_link_prediction, write_zero_shot_report
    protocol     EVALUATION_GRAPHS, sample_support, fewshot_controls, run_fewshot_node_classification,
                 fewshot_table
    reports      RunResult, markdown_table, bar_plot, write_report

Evaluation is model-free and never imports :mod:`gfm.adapters`: the gfm model as a zero-shot
method and the zero-shot / fine-tuning recipes live in :mod:`gfm.pipelines`; link splits in
:mod:`gfm.data.link_splits`.
"""

from __future__ import annotations

from gfm.utils.lazy import lazy_exports

_LAZY_EXPORTS: dict[str, str] = {
    **{name: "gfm.evaluation.metrics" for name in (
        "MetricError", "accuracy", "macro_f1", "roc_auc", "roc_auc_per_task", "average_precision",
        "average_precision_per_task", "mae", "rmse", "mrr", "hits_at_k", "get_metric", "score_outputs",
    )},
    **{name: "gfm.evaluation.controls" for name in (
        "ControlError", "SVDProbe", "label_propagation_scores", "label_propagation_link_scores",
        "class_prototype_scores", "normalized_adjacency", "sample_k_labels_per_class",
        "SupportSetError", "check_support", "structural_role_features", "structural_role_scores",
        "LinearGNNEnsemble", "LINEAR_GNN_CHANNELS",
    )},
    **{name: "gfm.evaluation.baselines" for name in (
        "BaselineConfig", "BaselineError", "train_gcn_node_classifier", "train_gin_graph_model",
        "train_gcn_link_predictor",
    )},
    **{name: "gfm.evaluation.zero_shot" for name in (
        "Access", "AccessError", "LabelledNodes", "ZeroShotMethod", "NodeStateMethod", "LabelPropagationMethod",
        "SVDProbeMethod", "StructuralRoleMethod", "LinearGNNMethod", "run_node_classification",
        "run_link_prediction", "write_zero_shot_report",
    )},
    **{name: "gfm.evaluation.protocol" for name in (
        "EVALUATION_GRAPHS", "protocol_statement", "SupportSet", "sample_support", "fewshot_controls",
        "run_fewshot_node_classification", "fewshot_table",
    )},
    **{name: "gfm.evaluation.reports" for name in (
        "RunResult", "AccessMismatchError", "summarize", "markdown_table", "per_seed_table", "bar_plot",
        "write_report", "load_results",
    )},
}

__all__ = sorted(_LAZY_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_EXPORTS)
