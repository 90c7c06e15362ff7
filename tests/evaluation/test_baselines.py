"""GNN baselines trained from scratch: selection on validation, masked losses, every task level."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gfm.data.dataset import GraphDataset, TaskSpec
from gfm.data.link_splits import holdout_link_split
from gfm.data.registry import load
from gfm.evaluation.baselines import (
    BaselineConfig,
    BaselineError,
    NodeInputEncoder,
    train_gcn_link_predictor,
    train_gcn_node_classifier,
    train_gin_graph_model,
)
from gfm.modeling.modeling_gfm import GFMInputError, masked_loss


def test_masked_losses_match_a_loop():
    """The one masked task loss (gfm heads and the GIN baseline) against a loop over observed labels."""
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(6, 3, generator=generator)
    targets = torch.tensor([[1.0, 0.0, float("nan")], [0.0, float("nan"), 1.0], [1.0, 1.0, 0.0],
                            [float("nan")] * 3, [0.0, 0.0, 0.0], [1.0, float("nan"), float("nan")]])
    terms = [F.binary_cross_entropy_with_logits(outputs[i, j], targets[i, j])
             for i in range(6) for j in range(3) if not math.isnan(targets[i, j])]
    assert masked_loss(outputs, targets, "multi_label_classification") == pytest.approx(float(sum(terms) / len(terms)), rel=1e-6)
    squared = [(outputs[i, j] - targets[i, j]) ** 2 for i in range(6) for j in range(3) if not math.isnan(targets[i, j])]
    assert masked_loss(outputs, targets, "regression") == pytest.approx(float(sum(squared) / len(squared)), rel=1e-6)
    classes = torch.tensor([0, -1, 2, 1, -1, 0])
    keep = classes >= 0
    assert masked_loss(outputs, classes, "single_label_classification") == pytest.approx(
        float(F.cross_entropy(outputs[keep], classes[keep])))
    # every label missing: a zero loss that still reaches the logits
    logits = outputs.clone().requires_grad_()
    empty = masked_loss(logits, torch.full((6, 3), float("nan")), "regression")
    empty.backward()
    assert float(empty) == 0.0 and logits.grad is not None
    with pytest.raises(GFMInputError, match=r"unknown problem_type 'link'; expected one of"):
        masked_loss(outputs, targets, "link")
    with pytest.raises(GFMInputError, match=r"labels hold class 3 but config.num_labels=3"):
        masked_loss(outputs, torch.tensor([0, 1, 2, 3, 0, 1]), "single_label_classification")


def test_input_encoder_covers_every_feature_layout():
    categorical = Data(x=torch.tensor([[0, 2], [1, 0]]), num_nodes=2)
    mixed = Data(x=torch.tensor([[1], [0]]), x_cont=torch.tensor([[0.5], [2.0]]), num_nodes=2)
    featureless = Data(num_nodes=3)
    for graph, transductive in ((categorical, False), (mixed, False), (featureless, True), (featureless, False)):
        encoder = NodeInputEncoder.from_graphs([graph], 8, transductive=transductive)
        assert encoder(graph).shape == (int(graph.num_nodes), 8)
    assert NodeInputEncoder.from_graphs([categorical], 8).categorical_sizes == [2, 3]


def test_sparse_adjacency_gives_the_edge_index_result():
    from torch_geometric.nn.models import GCN

    from gfm.evaluation.baselines import message_passing_adjacency

    karate = load("packaged/karate").graphs[0]
    torch.manual_seed(0)
    model = GCN(5, 8, 2)
    x = torch.randn(karate.num_nodes, 5)
    expected = model(x, karate.edge_index)
    assert torch.allclose(model(x, message_passing_adjacency(karate.edge_index, karate.num_nodes)), expected, atol=1e-5)


def test_gcn_node_baseline_selects_on_validation():
    karate = load("packaged/karate")
    result = train_gcn_node_classifier(karate, BaselineConfig(epochs=30, hidden_channels=16), seed=0)
    assert result.role == "baseline" and result.method == "gcn" and len(result.train_losses) == 30
    best = max(result.valid_curve)
    assert result.valid == best and result.selected_step == result.valid_curve.index(best) + 1
    assert result.train_losses[-1] < result.train_losses[0]
    again = train_gcn_node_classifier(karate, BaselineConfig(epochs=30, hidden_channels=16), seed=0)
    assert again.train_losses == result.train_losses  # deterministic when seeded


def test_baseline_without_a_validation_score_names_eval_every():
    karate = load("packaged/karate")
    with pytest.raises(BaselineError, match=r"no validation score was taken.*set eval_every <= epochs"):
        train_gcn_node_classifier(karate, BaselineConfig(epochs=2, eval_every=5, hidden_channels=8), seed=0)


def _ring_dataset() -> GraphDataset:
    """Cycles vs paths (a structural label a GIN can learn), with a second, half-missing task."""
    graphs = []
    for i in range(40):
        n = 4 + i % 5
        src = torch.arange(n - 1)
        edges = torch.stack([src, src + 1])
        is_cycle = i % 2 == 0
        if is_cycle:
            edges = torch.cat([edges, torch.tensor([[n - 1], [0]])], dim=1)
        edge_index = torch.cat([edges, edges.flip(0)], dim=1)
        second = float(n > 6) if i % 4 else float("nan")
        graphs.append(Data(edge_index=edge_index, num_nodes=n, y=torch.tensor([[float(is_cycle), second]]),
                           domain="synthetic"))
    task = TaskSpec("graph", "multilabel", None, 2, ["cycle", "large"], "roc_auc")
    splits = {"train": torch.arange(0, 24), "valid": torch.arange(24, 32), "test": torch.arange(32, 40)}
    return GraphDataset("test/rings", "synthetic", task, graphs, splits=splits)


def test_gin_graph_baseline_multitask_with_missing_labels():
    result = train_gin_graph_model(_ring_dataset(), BaselineConfig(epochs=15, hidden_channels=16, batch_size=8,
                                                                   dropout=0.0, num_layers=3), seed=0)
    assert result.method == "gin" and result.metric == "roc_auc"
    assert all(math.isfinite(loss) for loss in result.train_losses)
    assert result.valid == max(result.valid_curve)


def test_gcn_link_baseline_reads_only_training_edges():
    karate = load("packaged/karate").graphs[0]
    split = holdout_link_split(karate, "karate links", 0.1, 0.2, seed=0)
    result = train_gcn_link_predictor(karate, split, "mrr",
                                      BaselineConfig(epochs=20, hidden_channels=16, batch_size=64), seed=0)
    assert result.metric == "mrr" and 0.0 < result.test <= 1.0
    assert result.extra["num_test_positives"] == split.test_pos.shape[1]
