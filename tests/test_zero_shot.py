"""The zero-shot protocol: declared access, what a method sees, controls, separated reports."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch_geometric.data import Data

from gfm.adapters.encoding import SamplingConfig, TaskSampleEncoder, strip_attributes
from gfm.adapters.heads import load_pretrained_for_task
from gfm.data.link_splits import holdout_link_split
from gfm.data.registry import load
from gfm.evaluation.controls import SVDProbe
from gfm.evaluation.reports import AccessMismatchError, markdown_table
from gfm.evaluation.zero_shot import (
    Access,
    AccessError,
    LabelledNodes,
    LabelPropagationMethod,
    NodeStateMethod,
    SVDProbeMethod,
    run_link_prediction,
    run_node_classification,
    write_zero_shot_report,
)
from gfm.pipelines.zero_shot import GFMZeroShotMethod
from gfm.testing.checkpoints import save_tiny_checkpoint


@pytest.fixture(scope="module")
def gfm_methods(tmp_path_factory, karate):
    directory = save_tiny_checkpoint(tmp_path_factory.mktemp("zs") / "ckpt", [strip_attributes(karate.graphs[0])],
                                     hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     max_position_embeddings=1024)
    model, tokenizer = load_pretrained_for_task(directory, karate.task)
    encoder = TaskSampleEncoder(tokenizer, SamplingConfig(num_hops=1, max_neighbors=5, attributes="drop"))
    return model, encoder


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


def test_controls_and_gfm_models_beside_each_other(karate, gfm_methods, tmp_path):
    model, encoder = gfm_methods
    pretrained = GFMZeroShotMethod(model, encoder, batch_size=16)

    def methods(seed):
        return [pretrained, GFMZeroShotMethod.random_init(model, encoder, seed=seed, batch_size=16),
                LabelPropagationMethod(), SVDProbeMethod(SVDProbe(rank=8, hops=2, seed=seed))]

    node = run_node_classification(karate, methods, Access(labels_per_class=3), seeds=[0, 1])
    assert {(r.method, r.role) for r in node} == {
        ("gfm", "method"), ("random_init", "control"), ("label_propagation", "control"), ("svd_probe", "control")
    }
    assert all(0.0 <= r.test <= 1.0 for r in node)
    states = pretrained.node_states(Access().visible_graph(karate.graphs[0]))
    assert states.shape == (34, 32) and torch.isfinite(states).all()

    data = karate.graphs[0]
    links = run_link_prediction(
        data, lambda seed: holdout_link_split(data, "karate links", 0.1, 0.2, seed=seed), methods,
        Access(), seeds=[0], metric="mrr", task_name="karate links",
    )
    assert {r.method for r in links} == {"gfm", "random_init", "label_propagation", "svd_probe"}
    assert all(r.access == "structure" and 0.0 < r.test <= 1.0 for r in links)

    other_access = dataclasses.replace(node[0], method="other", access="structure+features+3_labels")
    with pytest.raises(AccessMismatchError, match="different access"):
        markdown_table(node + [other_access])
    paths = write_zero_shot_report(node + links, tmp_path)
    text = paths["markdown"].read_text()
    assert "### access: structure+3_labels" in text and "### access: structure" in text
    assert len(paths["plots"]) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in paths["plots"])


@pytest.mark.data
def test_planetoid_controls_with_twenty_labels(data_dir):
    """Cora's public split has 20 labels per class: the k = 20 draw is that split."""
    cora = load("planetoid/cora", data_dir=data_dir)
    results = run_node_classification(cora, [LabelPropagationMethod()], Access(labels_per_class=20), seeds=[0])
    assert results[0].extra["num_labelled"] == 140
    assert results[0].test > 0.6  # label propagation on Cora: ~0.71 in the literature
