"""Few-shot controls (structural-role probe, linear-GNN ensemble, SVD probe with and without
features, label propagation) against slow obvious references; class handling; bad support sets."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gfm.data.registry import load
from gfm.evaluation.controls import (
    LINEAR_GNN_CHANNELS,
    STRUCTURAL_ROLE_FEATURES,
    ControlError,
    LinearGNNEnsemble,
    SupportSetError,
    check_support,
    linear_gnn_channels,
    normalized_adjacency,
    ridge_fit,
    ridge_loo_predictions,
    ridge_penalty,
    structural_role_features,
    structural_role_scores,
)
from gfm.evaluation.protocol import fewshot_controls, run_fewshot_node_classification
from gfm.evaluation.zero_shot import Access, LabelledNodes, LinearGNNMethod, SVDProbeMethod


def sbm(num_classes: int, per_class: int = 30, seed: int = 0, feature_noise: float = 1.0) -> Data:
    """A stochastic block model with noisy class-indicator features (8 columns per class)."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(per_class)
    n = y.numel()
    same = y[:, None] == y[None, :]
    probability = torch.where(same, torch.tensor(0.3), torch.tensor(0.02))
    upper = torch.triu(torch.rand(n, n, generator=generator) < probability, diagonal=1)
    edge_index = upper.nonzero().t()
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    x = F.one_hot(y, num_classes).float().repeat_interleave(8, dim=1)
    x = x + feature_noise * torch.randn(n, 8 * num_classes, generator=generator)
    return Data(edge_index=edge_index, num_nodes=n, y=y, x=x)


def support_of(y: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([(y == c).nonzero().view(-1)[torch.randperm(int((y == c).sum()), generator=generator)[:k]]
                      for c in range(int(y.max()) + 1)]).sort().values


def to_networkx(edge_index: torch.Tensor, num_nodes: int) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from((u, v) for u, v in edge_index.t().tolist() if u != v)
    return graph


# ---------------------------------------------------------------------------------------------
# structural roles against networkx
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["karate", "sbm_with_isolated_and_loops"])
def test_structural_roles_match_networkx(which, karate):
    if which == "karate":
        edge_index, n = karate.graphs[0].edge_index, karate.graphs[0].num_nodes
    else:
        graph = sbm(3, per_class=12, seed=1)
        n = graph.num_nodes + 3  # three isolated nodes
        edge_index = torch.cat([graph.edge_index, torch.tensor([[0, 5], [0, 5]])], dim=1)  # self-loops are ignored
    roles = structural_role_features(edge_index, n, standardize=False)
    assert roles.shape == (n, len(STRUCTURAL_ROLE_FEATURES))
    column = {name: roles[:, i] for i, name in enumerate(STRUCTURAL_ROLE_FEATURES)}
    reference = to_networkx(edge_index, n)
    degree = torch.tensor([reference.degree(v) for v in range(n)], dtype=torch.float)
    log_degree = torch.log1p(degree)
    assert torch.allclose(column["log_degree"], log_degree)
    for v in range(n):
        neighbours = list(reference.neighbors(v))
        values = log_degree[neighbours] if neighbours else torch.zeros(1)
        assert column["mean_neighbor_log_degree"][v] == pytest.approx(float(values.mean()), abs=1e-5)
        assert column["max_neighbor_log_degree"][v] == pytest.approx(float(values.max()), abs=1e-5)
        assert column["std_neighbor_log_degree"][v] == pytest.approx(float(values.std(unbiased=False)), abs=1e-3)
        two_hop = set(neighbours) | {w for u in neighbours for w in reference.neighbors(u)}
        two_hop.discard(v)
        assert column["log_two_hop"][v] == pytest.approx(float(torch.log1p(torch.tensor(float(len(two_hop))))), abs=1e-5)
    clustering, triangles = nx.clustering(reference), nx.triangles(reference)
    assert torch.allclose(column["clustering"], torch.tensor([clustering[v] for v in range(n)], dtype=torch.float),
                          atol=1e-6)
    assert torch.allclose(column["log_triangles"], torch.log1p(torch.tensor([float(triangles[v]) for v in range(n)])))
    pagerank = nx.pagerank(reference, alpha=0.85, tol=1e-12, max_iter=1000)
    expected = torch.log(torch.tensor([pagerank[v] for v in range(n)]) * n)
    assert torch.allclose(column["log_pagerank"], expected, atol=1e-4)
    standardized = structural_role_features(edge_index, n)
    varying = roles.std(dim=0) > 1e-6
    assert torch.allclose(standardized[:, varying].mean(dim=0), torch.zeros(int(varying.sum())), atol=1e-5)
    assert torch.allclose(standardized[:, varying].std(dim=0, unbiased=False), torch.ones(int(varying.sum())), atol=1e-4)


def test_structural_role_scores_are_prototype_distances(karate):
    graph = karate.graphs[0]
    support = torch.tensor([0, 1, 2, 30, 32, 33])
    scores = structural_role_scores(graph.edge_index, graph.y, support, 2)
    roles = structural_role_features(graph.edge_index, graph.num_nodes)
    for cls in range(2):
        members = [i for i in support.tolist() if int(graph.y[i]) == cls]
        prototype = roles[members].mean(dim=0)
        for v in range(graph.num_nodes):
            assert scores[v, cls] == pytest.approx(-float(((roles[v] - prototype) ** 2).sum()), rel=1e-4, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# the linear-GNN ensemble against slow references
# ---------------------------------------------------------------------------------------------
def test_channels_match_dense_products(karate):
    graph = karate.graphs[0]
    base = torch.randn(graph.num_nodes, 4, generator=torch.Generator().manual_seed(0))
    channels = linear_gnn_channels(base, graph.edge_index)
    assert tuple(channels) == LINEAR_GNN_CHANNELS
    a = normalized_adjacency(graph.edge_index, graph.num_nodes).to_dense()
    identity = torch.eye(graph.num_nodes)
    expected = {"X": base, "AX": a @ base, "A2X": a @ a @ base, "(I-A)X": (identity - a) @ base,
                "(I-A)2X": (identity - a) @ (identity - a) @ base}
    for name, matrix in expected.items():
        assert torch.allclose(channels[name], matrix, atol=1e-5), name
    with pytest.raises(ControlError, match=r"unknown channel\(s\) \['A3X'\]; choose among"):
        linear_gnn_channels(base, graph.edge_index, ("X", "A3X"))


@pytest.mark.parametrize("shape", [(12, 30), (40, 6)])  # more columns than rows, and fewer
def test_ridge_agrees_with_lstsq_and_normal_equations(shape):
    generator = torch.Generator().manual_seed(sum(shape))
    rows = torch.randn(*shape, generator=generator, dtype=torch.float64) * 3 + 1
    targets = F.one_hot(torch.arange(shape[0]) % 3, 3).double()
    penalty = ridge_penalty(rows, 0.1)
    weights, bias = ridge_fit(rows, targets, penalty)
    # reference 1: the primal normal equations on centred data (the intercept is not penalized)
    centred = rows - rows.mean(dim=0)
    primal = torch.linalg.solve(centred.T @ centred + penalty * torch.eye(shape[1], dtype=torch.float64),
                                centred.T @ (targets - targets.mean(dim=0)))
    assert torch.allclose(weights, primal, atol=1e-8)
    # reference 2: least squares on the augmented system [1 H; 0 sqrt(lambda) I] [b; W] = [Y; 0]
    ones = torch.ones(shape[0], 1, dtype=torch.float64)
    design = torch.cat([torch.cat([ones, rows], dim=1),
                        torch.cat([torch.zeros(shape[1], 1, dtype=torch.float64),
                                   penalty ** 0.5 * torch.eye(shape[1], dtype=torch.float64)], dim=1)])
    stacked = torch.cat([targets, torch.zeros(shape[1], 3, dtype=torch.float64)])
    solution = torch.linalg.lstsq(design, stacked, driver="gelsd").solution
    assert torch.allclose(bias, solution[0], atol=1e-7) and torch.allclose(weights, solution[1:], atol=1e-7)
    assert penalty == pytest.approx(0.1 * float((centred ** 2).sum()) / shape[0], rel=1e-9)


def test_leave_one_out_matches_explicit_refits():
    generator = torch.Generator().manual_seed(3)
    rows = torch.randn(15, 9, generator=generator, dtype=torch.float64)
    targets = F.one_hot(torch.arange(15) % 4, 4).double()
    penalty = 0.7
    loo = ridge_loo_predictions(rows, targets, penalty)
    for i in range(15):
        keep = torch.arange(15) != i
        weights, bias = ridge_fit(rows[keep], targets[keep], penalty)
        assert torch.allclose(loo[i], rows[i] @ weights + bias, atol=1e-8), i


def test_ensemble_picks_by_leave_one_out_on_the_support_only():
    graph = sbm(4, seed=2)
    support = support_of(graph.y, 5)
    ensemble = LinearGNNEnsemble()
    channels = ensemble.channel_matrices(graph.edge_index, graph.num_nodes, graph.x)
    scores, choice = ensemble.fit_predict(channels, support, graph.y[support], 4)
    # the reported choice is the best leave-one-out accuracy over channels x strengths
    targets = F.one_hot(graph.y[support], 4).double()
    best = max(float((ridge_loo_predictions(m[support], targets, ridge_penalty(m[support], s)).argmax(1)
                      == graph.y[support]).double().mean()) for m in channels.values() for s in ensemble.ridge_strengths)
    assert choice["loo_accuracy"] == pytest.approx(best) and choice["channel"] in LINEAR_GNN_CHANNELS
    weights, bias = ridge_fit(channels[choice["channel"]][support], targets,
                              ridge_penalty(channels[choice["channel"]][support], choice["ridge_strength"]))
    assert torch.allclose(scores, (channels[choice["channel"]].double() @ weights + bias).float(), atol=1e-5)
    assert float((scores.argmax(1) == graph.y).float().mean()) > 0.9  # an easy SBM


# ---------------------------------------------------------------------------------------------
# every control: labels outside the support are never read; classes are only names
# ---------------------------------------------------------------------------------------------
ACCESSES = [Access(features=False, labels_per_class=4), Access(features=True, labels_per_class=4)]


def _scores(control, graph: Data, access: Access, index: torch.Tensor, labels: torch.Tensor, num_classes: int):
    visible = access.visible_graph(graph)
    return control.node_class_scores(visible, LabelledNodes(index=index, labels=labels, num_classes=num_classes))


@pytest.mark.parametrize("access", ACCESSES, ids=str)
@pytest.mark.parametrize("num_classes", [2, 7])
def test_controls_are_invariant_to_class_names_and_blind_to_other_labels(access, num_classes):
    graph = sbm(num_classes, per_class=20, seed=num_classes)
    support = support_of(graph.y, 4)
    permutation = torch.randperm(num_classes, generator=torch.Generator().manual_seed(5))
    for control in fewshot_controls(access):
        scores = _scores(control, graph, access, support, graph.y[support], num_classes)
        assert scores.shape == (graph.num_nodes, num_classes) and torch.isfinite(scores).all(), control.name
        # rename the classes: the scores' columns follow the names, nothing else changes
        renamed = _scores(control, graph, access, support, permutation[graph.y[support]], num_classes)
        assert torch.allclose(renamed[:, permutation], scores, atol=1e-4), control.name
        # labels of non-support nodes are never read (the visible graph has none at all)
        scrambled = graph.clone()
        scrambled.y = torch.randint(num_classes, (graph.num_nodes,), generator=torch.Generator().manual_seed(9))
        assert torch.equal(_scores(control, scrambled, access, support, graph.y[support], num_classes), scores)
        assert "y" not in access.visible_graph(graph)


def test_controls_separate_an_easy_graph_with_many_classes():
    graph = sbm(7, per_class=25, seed=11)
    dataset_like = type("D", (), {})()
    dataset_like.name = "sbm7"
    dataset_like.graphs = [graph]
    from gfm.data.dataset import TaskSpec

    dataset_like.task = TaskSpec(level="node", kind="classification", num_classes=7, num_targets=1,
                                 target_names=["class"], metric="accuracy")
    access = Access(features=True, labels_per_class=5)
    runs = run_fewshot_node_classification(dataset_like, fewshot_controls(access), access, seeds=[0, 1])
    by_method = {r.method: r.test for r in runs if r.seed == 0}
    for name in ("label_propagation", "svd_probe_features", "linear_gnn"):
        assert by_method[name] > 0.85, (name, by_method)
    assert by_method["structural_role"] < by_method["linear_gnn"]  # roles carry no community signal here


def test_the_two_svd_probes_differ_only_by_the_feature_channel():
    graph = sbm(3, seed=4)
    support = support_of(graph.y, 4)
    with_features = Access(features=True, labels_per_class=4)
    structure = Access(features=False, labels_per_class=4)
    probe_structure = SVDProbeMethod(name="svd_probe_structure", use_features=False)
    a = _scores(probe_structure, graph, with_features, support, graph.y[support], 3)
    b = _scores(SVDProbeMethod(), graph, structure, support, graph.y[support], 3)
    c = _scores(SVDProbeMethod(), graph, with_features, support, graph.y[support], 3)
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c, atol=1e-3)
    names = [[m.name for m in fewshot_controls(access)] for access in (structure, with_features)]
    assert names == [["label_propagation", "svd_probe_structure", "structural_role", "linear_gnn"],
                     ["label_propagation", "svd_probe_structure", "svd_probe_features", "structural_role", "linear_gnn"]]


def test_linear_gnn_uses_features_only_when_visible():
    graph = sbm(3, seed=6)
    support = support_of(graph.y, 4)
    method = LinearGNNMethod()
    _scores(method, graph, Access(features=False, labels_per_class=4), support, graph.y[support], 3)
    structural = method._cache[1]["X"]
    assert structural.shape == (graph.num_nodes, min(128, graph.num_nodes - 1))
    _scores(method, graph, Access(features=True, labels_per_class=4), support, graph.y[support], 3)
    assert torch.allclose(method._cache[1]["X"], F.normalize(graph.x, dim=1))
    with pytest.raises(ControlError, match="linear_gnn is a node-classification control .* for link prediction use"):
        method.link_scores(Access().visible_graph(graph), torch.tensor([[0], [1]]))


# ---------------------------------------------------------------------------------------------
# bad support sets
# ---------------------------------------------------------------------------------------------
def test_check_support_names_each_problem():
    with pytest.raises(SupportSetError, match=r"toy: labels on node\(s\) \[10, 12\] outside the graph, which has 10 "
                       r"nodes \(ids 0..9\); label only nodes of this graph"):
        check_support(torch.tensor([0, 10, 12, 3]), torch.tensor([0, 1, 1, 0]), 10, what="toy")
    with pytest.raises(SupportSetError, match=r"toy: the task has one class only \(class 0 of 1\); few-shot "
                       "classification needs at least two classes"):
        check_support(torch.tensor([0, 1]), torch.tensor([0, 0]), 10, what="toy")
    with pytest.raises(SupportSetError, match="needs at least two classes"):
        check_support(torch.tensor([0, 1]), torch.tensor([2, 2]), 10, num_classes=3, what="toy")
    with pytest.raises(SupportSetError, match=r"toy: class\(es\) \[1\] of 0..2 have no support node, so no control can "
                       "name them; give at least one labelled node of every class"):
        check_support(torch.tensor([0, 1]), torch.tensor([0, 2]), 10, num_classes=3, what="toy")
    with pytest.raises(SupportSetError, match=r"node\(s\) \[1\] are labelled more than once"):
        check_support(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 1]), 10, what="toy")
    with pytest.raises(SupportSetError, match="label 3 is outside the 3 classes 0..2"):
        check_support(torch.tensor([0, 1]), torch.tensor([0, 3]), 10, num_classes=3, what="toy")
    with pytest.raises(SupportSetError, match="the support set is empty"):
        check_support(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 10, what="toy")
    assert check_support(torch.tensor([0, 4]), torch.tensor([0, 1]), 10) == 2


@pytest.mark.parametrize("access", ACCESSES, ids=str)
def test_every_new_control_refuses_a_bad_support_set(access):
    graph = sbm(3, per_class=10, seed=8)
    for control in fewshot_controls(access):
        if control.name in ("label_propagation", "svd_probe_structure", "svd_probe_features"):
            continue  # the existing controls keep their own checks (the protocol runner checks first)
        with pytest.raises(SupportSetError, match=r"labels on node\(s\) \[30\] outside the graph"):
            _scores(control, graph, access, torch.tensor([0, 30]), torch.tensor([0, 1]), 2)
        with pytest.raises(SupportSetError, match=r"class\(es\) \[1\] of 0..2 have no support node"):
            _scores(control, graph, access, torch.tensor([0, 25]), torch.tensor([0, 2]), 3)
        with pytest.raises(SupportSetError, match="one class only"):
            _scores(control, graph, access, torch.tensor([0, 1]), torch.tensor([0, 0]), 1)
    with pytest.raises(SupportSetError, match=r"structural_role_scores: labels on node\(s\) \[99\] outside the graph"):
        structural_role_scores(graph.edge_index, graph.y, torch.tensor([0, 99]), 3)
    with pytest.raises(SupportSetError, match=r"LinearGNNEnsemble: class\(es\) \[2\] of 0..2 have no support node"):
        LinearGNNEnsemble().node_scores(graph.edge_index, graph.y, torch.tensor([0, 10]), num_classes=3)


# ---------------------------------------------------------------------------------------------
# the anchor on real data
# ---------------------------------------------------------------------------------------------
@pytest.mark.data
def test_citeseer_anchor_with_twenty_labels(data_dir):
    """CiteSeer's public split has 20 training nodes per class; the SVD probe with features gives about 71."""
    citeseer = load("planetoid/citeseer", data_dir)
    access = Access(features=True, labels_per_class=20)
    runs = run_fewshot_node_classification(citeseer, fewshot_controls(access), access, seeds=[0])
    test = {r.method: r.test for r in runs}
    assert runs[0].extra["labels_per_class"] == [20] * 6 and runs[0].extra["num_test"] == 1000
    assert 0.68 < test["svd_probe_features"] < 0.75
    assert test["linear_gnn"] > 0.6 and test["svd_probe_features"] > test["svd_probe_structure"]
