"""The zero-shot protocol: declared access, what a method sees, controls."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gfm.data.registry import load
from gfm.evaluation.zero_shot import (
    Access,
    AccessError,
    LabelledNodes,
    LabelPropagationMethod,
    NodeStateMethod,
    run_node_classification,
)


def test_access_levels_parse_and_print():
    assert str(Access()) == "structure" and Access().level == "structure"
    assert str(Access(features=True)) == "structure+features"
    k_labels = Access.parse("structure+features+k_labels", labels_per_class=20)
    assert k_labels == Access(True, 20) and str(k_labels) == "structure+features+20_labels"
    assert k_labels.level == "structure+features+k_labels"
    assert Access.parse(str(k_labels)) == k_labels
    with pytest.raises(AccessError, match="unknown access 'features'"):
        Access.parse("features")
    with pytest.raises(AccessError, match="needs labels_per_class"):
        Access.parse("structure+k_labels")
    with pytest.raises(AccessError, match="positive integer"):
        Access(labels_per_class=0)


def test_visible_graph_shows_only_what_the_access_allows(karate):
    data = karate.graphs[0].clone()
    data.x = torch.randn(data.num_nodes, 3)
    structure = Access().visible_graph(data)
    assert set(structure.keys()) <= {"edge_index", "num_nodes", "domain", "directed", "name"}
    with_features = Access(features=True, labels_per_class=5).visible_graph(data)
    assert torch.equal(with_features.x, data.x)
    for visible in (structure, with_features):  # labels and split masks never reach a method
        assert "y" not in visible and "train_mask" not in visible and "test_mask" not in visible


class Spy(NodeStateMethod):
    """Records what the protocol hands a method."""

    name = "spy"

    def __init__(self):
        self.seen: list[tuple[Data, LabelledNodes]] = []

    def node_states(self, visible):
        return torch.ones(int(visible.num_nodes), 2)

    def node_class_scores(self, visible, labelled):
        self.seen.append((visible, labelled))
        return super().node_class_scores(visible, labelled)


def test_node_protocol_hands_over_only_k_labels_from_the_training_split(karate):
    spy = Spy()
    access = Access(features=False, labels_per_class=2)
    results = run_node_classification(karate, [spy], access, seeds=[0, 1])
    assert [r.access for r in results] == ["structure+2_labels"] * 2
    data = karate.graphs[0]
    for visible, labelled in spy.seen:
        assert "y" not in visible
        assert labelled.index.numel() == 4 and bool(data.train_mask[labelled.index].all())
        assert torch.equal(labelled.labels, data.y[labelled.index])
    with pytest.raises(AccessError, match="sees no label"):
        run_node_classification(karate, [spy], Access(features=True), seeds=[0])


@pytest.mark.data
def test_planetoid_controls_with_twenty_labels(data_dir):
    """Cora's public split has 20 labels per class: the k = 20 draw is that split."""
    cora = load("planetoid/cora", data_dir=data_dir)
    results = run_node_classification(cora, [LabelPropagationMethod()], Access(labels_per_class=20), seeds=[0])
    assert results[0].extra["num_labelled"] == 140
    assert results[0].test > 0.6  # label propagation on Cora: ~0.71 in the literature
