"""The in-context few-shot model: class-order invariance, any class count, reference == fast, save/load, bad input."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from transformers import AutoConfig, AutoModel

import gfm.modeling  # noqa: F401  (registers the Auto classes)
from gfm.modeling.in_context import (
    InContextConfig,
    InContextError,
    InContextModel,
    episode_evidence,
    prepare_graph,
    variant_names,
)


def sbm(num_classes: int, per_class: int = 12, features: int = 10, seed: int = 0) -> tuple[Data, torch.Tensor]:
    """A stochastic block model with noisy class-mean features: [N] labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    n = labels.numel()
    same = labels[:, None] == labels[None, :]
    probability = torch.where(same, torch.tensor(0.3), torch.tensor(0.02))
    upper = torch.triu(torch.rand(n, n, generator=generator) < probability, diagonal=1)
    adjacency = upper | upper.T
    means = torch.randn(num_classes, features, generator=generator)
    x = means[labels] + 0.8 * torch.randn(n, features, generator=generator)
    return Data(edge_index=adjacency.nonzero().T.contiguous(), num_nodes=n, x=x), labels


def small_config(**overrides) -> InContextConfig:
    settings = dict(hidden_size=32, num_layers=2, num_heads=4,
                    node_inputs=dict(structure_dim=8, continuous_width=8, categorical_width=4, evidence_feature_rank=16,
                                     evidence_structure_rank=8))
    settings.update(overrides)
    return InContextConfig(**settings)


def model_with_nonzero_weights(config: InContextConfig, seed: int = 0) -> InContextModel:
    torch.manual_seed(seed)
    model = InContextModel(config)
    with torch.no_grad():  # larger than the init so every path matters in the comparisons
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model.eval()


def support_of(labels: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    picks = [(labels == c).nonzero().view(-1) for c in range(int(labels.max()) + 1)]
    return torch.cat([p[torch.randperm(p.numel(), generator=generator)[:k]] for p in picks])


@pytest.mark.parametrize("num_classes", [2, 15])
def test_any_class_count_and_renaming_classes_permutes_the_scores(num_classes):
    config = small_config()
    data, labels = sbm(num_classes, per_class=8)
    model = model_with_nonzero_weights(config)
    graph = prepare_graph(data, True, config, "sbm")
    support = support_of(labels, 3)
    scores = model.predict(graph, support, labels[support], num_classes)
    assert scores.shape == (data.num_nodes, num_classes) and torch.isfinite(scores).all()
    permutation = torch.randperm(num_classes, generator=torch.Generator().manual_seed(1))
    # class c is called permutation[c] now: the column of the new name must hold the old scores
    renamed = model.predict(graph, support, permutation[labels[support]], num_classes)
    torch.testing.assert_close(renamed[:, permutation], scores, atol=1e-5, rtol=1e-5)
    # reordering the support nodes changes nothing either
    order = torch.randperm(support.numel(), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(model.predict(graph, support[order], labels[support][order], num_classes), scores,
                               atol=1e-5, rtol=1e-5)


def test_batched_path_equals_the_one_query_at_a_time_reference():
    config = small_config()
    data, labels = sbm(4)
    model = model_with_nonzero_weights(config, seed=3)
    graph = prepare_graph(data, True, config, "sbm")
    support = support_of(labels, 4)
    queries = torch.arange(0, data.num_nodes, 3)
    evidence = episode_evidence(graph, support, labels[support], queries, 4, config)
    with torch.no_grad():
        fast = model(graph.vectors[support], labels[support], graph.vectors[queries], evidence, 4).logits
    reference = model.forward_reference(graph.vectors[support], labels[support], graph.vectors[queries], evidence, 4)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
    # and a query's scores do not depend on which other queries share its batch
    alone = model.predict(graph, support, labels[support], 4, query_index=queries[:1])
    torch.testing.assert_close(alone, fast[:1], atol=1e-5, rtol=1e-5)


def test_evidence_ridge_matches_least_squares_and_structure_only_masks_feature_variants():
    config = small_config()
    data, labels = sbm(3)
    graph = prepare_graph(data, True, config, "sbm")
    support = support_of(labels, 5)
    targets = torch.nn.functional.one_hot(labels[support], 3).double()
    queries = torch.arange(data.num_nodes)
    evidence = episode_evidence(graph, support, labels[support], queries, 3, config)
    names = variant_names(config)
    assert evidence.query.shape == (data.num_nodes, 3, len(names)) and evidence.mask.all()
    # ridge on feat:X at strength s equals the primal solution of the centred system
    matrix = graph.channels["feat:X"].double()
    rows = matrix[support]
    centred = rows - rows.mean(0)
    strength = config.ridge_strengths[1]
    penalty = strength * float((centred * centred).sum()) / support.numel()
    weights = torch.linalg.solve(centred.T @ centred + penalty * torch.eye(matrix.shape[1], dtype=torch.float64),
                                 centred.T @ (targets - targets.mean(0)))
    primal = (matrix - rows.mean(0)) @ weights + targets.mean(0)
    column = names.index(f"ridge{strength:g}:feat:X")
    # the evidence is centred over classes and scaled: compare after the same centring, up to the scale
    centred_primal = primal - primal.mean(1, keepdim=True)
    z = evidence.query[:, :, column].double()
    scale = float((z * centred_primal).sum() / (centred_primal * centred_primal).sum())
    torch.testing.assert_close(z, (scale * centred_primal).clamp(-10, 10), atol=2e-4, rtol=1e-3)
    without = episode_evidence(prepare_graph(data, False, config, "sbm"), support, labels[support], queries, 3, config)
    feature_variants = torch.tensor(["feat:" in name for name in names])
    assert not without.mask[feature_variants].any() and without.mask[~feature_variants].all()
    assert without.query[:, :, feature_variants].abs().sum() == 0


def test_save_load_round_trip_is_exact_and_auto_classes_load_it(tmp_path):
    config = small_config()
    model = model_with_nonzero_weights(config, seed=5)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded = InContextModel.from_pretrained(tmp_path / "m").eval()
    auto = AutoModel.from_pretrained(tmp_path / "m").eval()
    assert isinstance(auto, InContextModel) and isinstance(AutoConfig.from_pretrained(tmp_path / "m"), InContextConfig)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]) and torch.equal(tensor, auto.state_dict()[name])
    data, labels = sbm(3)
    support = support_of(labels, 2)
    graph = prepare_graph(data, True, loaded.config, "sbm")
    assert torch.equal(model.predict(graph, support, labels[support], 3), loaded.predict(graph, support, labels[support], 3))


def test_bad_episodes_are_named_errors():
    config = small_config()
    data, labels = sbm(3)
    model = model_with_nonzero_weights(config)
    graph = prepare_graph(data, True, config, "sbm")
    support = support_of(labels, 2)
    with pytest.raises(InContextError, match=r"sbm: support_index holds node 999 outside the graph's 36 nodes"):
        model.predict(graph, torch.cat([support, torch.tensor([999])]), torch.cat([labels[support], torch.tensor([0])]), 3)
    with pytest.raises(InContextError, match=r"1 class\(es\); in-context classification needs at least two"):
        model.predict(graph, support, torch.zeros_like(support), 1)
    with pytest.raises(InContextError, match=r"class\(es\) \[2\] of 0..2 have no support node.*drop the class"):
        keep = labels[support] != 2
        model.predict(graph, support[keep], labels[support][keep], 3)
    with pytest.raises(InContextError, match="support_labels must be class ids 0..2"):
        model.predict(graph, support, labels[support] + 5, 3)
    with pytest.raises(InContextError, match="hidden_size=30 is not divisible by num_heads=4"):
        InContextConfig(hidden_size=30, num_heads=4)
