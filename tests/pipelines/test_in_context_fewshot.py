"""The in-context model under the few-shot protocol: above chance on a real graph after a short training,
beside its controls and its random-init copy, one table, a model card."""

from __future__ import annotations

import pytest
import torch

from gfm.data.registry import load
from gfm.evaluation.protocol import fewshot_controls, fewshot_table, run_fewshot_node_classification
from gfm.evaluation.zero_shot import Access, AccessError
from gfm.pipelines.fewshot import InContextMethod, random_init_copy, write_model_card
from gfm.testing.in_context import episode_graphs, small_model_config
from gfm.testing.in_context import tiny_fewshot_config as tiny_config
from gfm.training.episodes import FewshotPretrainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("fewshot")
    config = tiny_config(tmp, max_steps=40)
    trainer = FewshotPretrainer(config, graphs=episode_graphs(config), validation=[],
                                model_config=small_model_config(config))
    trainer.train()
    return trainer.model.eval(), tmp


def test_in_context_model_is_above_chance_on_karate_beside_its_controls(trained):
    model, tmp = trained
    dataset = load("packaged/karate")  # real data inside networkx, never seen in training (synthetic graphs)
    access = Access(features=False, labels_per_class=3)
    method = InContextMethod(model)
    methods = [method, InContextMethod(random_init_copy(model.config), "random_init", role="control"),
               *fewshot_controls(access)]
    results = run_fewshot_node_classification(dataset, methods, access, seeds=[0, 1, 2])
    ours = [r.test for r in results if r.method == "gfm_in_context"]
    assert len(ours) == 3 and sum(ours) / 3 > 0.7  # two classes: chance is 0.5
    table = fewshot_table(results, order=["gfm_in_context", "random_init"])
    assert "| packaged/karate | structure+k_labels | 3 |" in table and "random_init" in table
    card = write_model_card(tmp / "card", table, training="tests")
    assert "packaged/karate" in card.read_text() and "InContextModel" in card.read_text()
    with pytest.raises(AccessError, match="has no link scores"):
        method.link_scores(dataset.graphs[0], torch.zeros(2, 1, dtype=torch.long))


def test_the_method_prepares_a_graph_once_per_access(trained):
    model, _ = trained
    data = load("packaged/karate").graphs[0]
    method = InContextMethod(model)
    visible = Access(features=False, labels_per_class=2).visible_graph(data)
    first = method.prepared(visible)
    assert method.prepared(Access(features=False, labels_per_class=5).visible_graph(data)) is first
