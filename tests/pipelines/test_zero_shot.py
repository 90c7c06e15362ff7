"""gfm checkpoints in the zero-shot protocol (gfm.pipelines.zero_shot): beside the controls, separated reports."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch_geometric.data import Data

from gfm.adapters.encoding import SamplingConfig, TaskSampleEncoder
from gfm.adapters.heads import load_pretrained_for_task
from gfm.data.link_splits import holdout_link_split
from gfm.evaluation.controls import SVDProbe
from gfm.evaluation.reports import AccessMismatchError, markdown_table
from gfm.evaluation.zero_shot import (
    Access,
    LabelPropagationMethod,
    SVDProbeMethod,
    run_link_prediction,
    run_node_classification,
    write_zero_shot_report,
)
from gfm.pipelines.zero_shot import GFMZeroShotMethod
from gfm.testing.checkpoints import save_tiny_checkpoint


@pytest.fixture(scope="module")
def gfm_methods(tmp_path_factory, karate):
    graph = karate.graphs[0]
    structure = Data(edge_index=graph.edge_index, num_nodes=graph.num_nodes, domain=graph.domain)  # attributes="drop"
    directory = save_tiny_checkpoint(tmp_path_factory.mktemp("zs") / "ckpt", [structure],
                                     hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     max_position_embeddings=1024)
    model, tokenizer = load_pretrained_for_task(directory, karate.task)
    encoder = TaskSampleEncoder(tokenizer, SamplingConfig(num_hops=1, max_neighbors=5, attributes="drop"))
    return model, encoder


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
