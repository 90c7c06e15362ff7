"""The few-shot protocol: held-out evaluation graphs refused by every corpus path, the support
sampler (what it does when a class is short), the runner and its table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch_geometric.data import Data

from gfm.data.corpus import (
    EVALUATION_GRAPH_ALIASES,
    EVALUATION_GRAPHS,
    Corpus,
    EvaluationGraphLeakError,
    check_pretraining_datasets,
)
from gfm.data.dataset import GraphDataset, TaskSpec
from gfm.data.registry import available, input_files, load
from gfm.evaluation.controls import SupportSetError, sample_k_labels_per_class
from gfm.evaluation.protocol import (
    fewshot_controls,
    fewshot_table,
    protocol_statement,
    run_fewshot_node_classification,
    sample_support,
)
from gfm.evaluation.reports import RunResult
from gfm.evaluation.zero_shot import Access, write_zero_shot_report
from gfm.utils.errors import GFMError

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# the held-out list and the leak check
# ---------------------------------------------------------------------------------------------
def test_the_list_is_the_six_graphs_of_the_issue():
    assert EVALUATION_GRAPHS == ("planetoid/citeseer", "hetero/actor", "hetero/wisconsin", "hetero/texas",
                                 "hetero/cornell", "karateclub/lastfm")
    assert set(EVALUATION_GRAPH_ALIASES.values()) <= set(EVALUATION_GRAPHS)
    assert issubclass(EvaluationGraphLeakError, GFMError) and issubclass(EvaluationGraphLeakError, ValueError)


@pytest.mark.data
def test_the_list_uses_exact_registry_names(data_dir):
    names = set(available(data_dir))
    assert set(EVALUATION_GRAPHS) <= names and set(EVALUATION_GRAPH_ALIASES) <= names


@pytest.mark.data
def test_texas_4_classes_is_the_texas_graph(data_dir):
    """Why the alias is refused: same nodes, edges, features and labels; only the masks differ."""
    texas, alias = load("hetero/texas", data_dir).graphs[0], load("hetero/texas_4_classes", data_dir).graphs[0]
    assert torch.equal(texas.edge_index, alias.edge_index) and torch.equal(texas.x, alias.x)
    assert torch.equal(texas.y, alias.y)


@pytest.mark.parametrize("name", [*EVALUATION_GRAPHS, "Planetoid/CiteSeer", " hetero/ACTOR ", "karateclub//lastfm",
                                  "hetero/texas_4_classes", "HETERO/Texas_4_Classes"])
def test_every_spelling_of_an_evaluation_graph_is_refused(name, tmp_path):
    with pytest.raises(EvaluationGraphLeakError) as caught:
        check_pretraining_datasets(["packaged/karate", name, "tu/PROTEINS"], data_dir=tmp_path)
    message = str(caught.value)
    assert f"{name!r} reads" in message and "config key 'datasets'" in message
    assert f"Fix: remove {name!r} from 'datasets'" in message
    assert all(graph in message for graph in EVALUATION_GRAPHS)  # the message states the list
    assert "'packaged/karate'" not in message and "tu/PROTEINS'" not in message  # only the offenders


def test_every_offender_is_named_at_once(tmp_path):
    with pytest.raises(EvaluationGraphLeakError, match=r"'hetero/cornell' reads 'hetero/cornell'.*"
                       r"'planetoid/citeseer' reads 'planetoid/citeseer'.*remove 'hetero/cornell', "
                       r"'planetoid/citeseer' from 'datasets'"):
        check_pretraining_datasets({"hetero/cornell": {}, "planetoid/cora": None, "planetoid/citeseer": {}}, tmp_path)


def test_a_clean_corpus_passes(tmp_path):
    check_pretraining_datasets(["planetoid/cora", "hetero/chameleon", "karateclub/github", "packaged/karate",
                                "tu/PROTEINS", "no-such/dataset"], data_dir=tmp_path)


@pytest.mark.data
def test_a_csv_path_into_an_evaluation_graph_folder_is_refused(data_dir, tmp_path):
    edges, targets = input_files("karateclub/lastfm", data_dir)
    with pytest.raises(EvaluationGraphLeakError, match=r"reads 'karateclub/lastfm' \(it reads .*edges.csv', a file of "
                       "that evaluation graph"):
        check_pretraining_datasets([f"csv/{edges}"], data_dir)
    # the node table of a csv graph counts too, even when the edge list does not exist
    with pytest.raises(EvaluationGraphLeakError, match="target.csv', a file of that evaluation graph"):
        check_pretraining_datasets({"csv/elsewhere/edges.csv": {"nodes_path": str(targets)}}, data_dir)
    # a copy of an evaluation graph's file under another name is refused by its bytes
    copy = tmp_path / "renamed.csv"
    shutil.copyfile(input_files("hetero/actor", data_dir)[0], copy)
    with pytest.raises(EvaluationGraphLeakError, match=r"reads 'hetero/actor' \(it reads .*renamed.csv', a copy of"):
        check_pretraining_datasets([f"csv/{copy}"], data_dir)
    # a file of the same size but other bytes is not (cora's and citeseer's test.index both have 5,000 bytes)
    check_pretraining_datasets([f"csv/{Path(data_dir) / 'planetoid' / 'ind.cora.test.index'}"], data_dir)


def test_corpus_refuses_before_loading_anything(tmp_path):
    with pytest.raises(EvaluationGraphLeakError, match=r"Corpus: config key 'datasets'.*'hetero/wisconsin'"):
        Corpus(["packaged/karate", "hetero/wisconsin"], data_dir=tmp_path)
    # inspection (summary tables) may opt out explicitly
    corpus = Corpus(["packaged/karate", "hetero/wisconsin"], data_dir=tmp_path, allow_evaluation_graphs=True)
    assert list(corpus.options) == ["packaged/karate", "hetero/wisconsin"]


def test_training_corpus_paths_refuse(tmp_path):
    from gfm.training.corpus import build_tokenized_corpus, corpus_graphs, read_corpus_table

    # checked before the tokenizer, the cache or the data are touched
    with pytest.raises(EvaluationGraphLeakError, match=r"config key 'datasets'.*'planetoid/citeseer'"):
        build_tokenized_corpus(["planetoid/cora", "planetoid/citeseer"], tokenizer=None, cache_dir=tmp_path,
                               data_dir=tmp_path)
    with pytest.raises(EvaluationGraphLeakError, match="'karateclub/lastfm' reads 'karateclub/lastfm'"):
        corpus_graphs("karateclub/lastfm", tmp_path, max_graphs=1, seed=0)
    # a tokenized corpus built earlier from an evaluation graph is refused where pretraining opens it
    import datasets

    folder = tmp_path / "tokenized-old"
    datasets.Dataset.from_dict({"input_ids": [[1, 2, 3]]}).save_to_disk(str(folder))
    (folder / "gfm_corpus.json").write_text(json.dumps({"datasets": [
        {"name": "packaged/karate", "graphs": 0}, {"name": "hetero/texas", "graphs": 1}]}))
    with pytest.raises(EvaluationGraphLeakError, match=r"the tokenized corpus .*tokenized-old: config key "
                       r"'tokenized_corpus' .*'hetero/texas'.*Fix: tokenize a new corpus from a `datasets` list without "
                       "them"):
        read_corpus_table(folder)


def _shipped_dataset_lists() -> list[tuple[str, list[str]]]:
    lists = []
    for folder in ("pretrain", "tokenizers"):
        for path in sorted((REPO / "configs" / folder).glob("*.yaml")):
            config = yaml.safe_load(path.read_text()) or {}
            if config.get("datasets"):
                lists.append((f"configs/{folder}/{path.name}", list(config["datasets"])))
    return lists


def test_every_shipped_pretraining_config_passes_the_check(tmp_path):
    import os

    lists = _shipped_dataset_lists()
    assert {name for name, _ in lists} >= {f"configs/pretrain/{n}.yaml" for n in ("tiny", "small", "base")}
    data_dir = os.environ.get("GFM_DATA_DIR") or tmp_path  # file checks too, when the data folder is there
    for name, datasets in lists:
        check_pretraining_datasets(datasets, data_dir, where=name)


def test_the_demo_never_pretrains_on_an_evaluation_graph(tmp_path):
    from gfm.pipelines.demo import DemoPlan

    for plan in (DemoPlan.default(), DemoPlan.quick(), DemoPlan.default().with_data_folder()):
        check_pretraining_datasets(plan.pretraining_datasets, tmp_path, where="gfm.pipelines.demo")


def test_reports_state_the_list(tmp_path):
    statement = protocol_statement()
    assert all(f"`{name}`" in statement for name in EVALUATION_GRAPHS) and "hetero/texas_4_classes" in statement
    runs = [RunResult(method="label_propagation", task="packaged/karate", metric="accuracy", seed=0, test=0.9,
                      role="control", access="structure+2_labels")]
    text = write_zero_shot_report(runs, tmp_path)["markdown"].read_text()
    assert text.startswith(statement)


# ---------------------------------------------------------------------------------------------
# the support sampler
# ---------------------------------------------------------------------------------------------
LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, -1, 0])
TRAIN = torch.tensor([True] * 12 + [True, False])


def test_support_is_the_existing_draw_when_no_class_is_short():
    for seed in range(4):
        support = sample_support(LABELS, TRAIN, 3, seed, num_classes=3)
        assert torch.equal(support.index, sample_k_labels_per_class(LABELS, TRAIN, 3, seed, 3))
        assert support.taken == [3, 3, 3] and support.available == [4, 3, 5] and support.notes == []
        assert not support.capped and support.classes == [0, 1, 2]
        assert torch.equal(support.labels, LABELS[support.index])
        assert not TRAIN[support.index].logical_not().any()  # never a non-candidate (node 13)
    assert not torch.equal(sample_support(LABELS, TRAIN, 2, 0).index, sample_support(LABELS, TRAIN, 2, 1).index)


def test_a_short_class_is_an_error_unless_allowed():
    with pytest.raises(SupportSetError, match=r"k=4 labels per class, but class 1 has 3 candidate node\(s\) \(training "
                       r"split\); lower k to 3, or pass allow_fewer=True"):
        sample_support(LABELS, TRAIN, 4, 0, num_classes=3, what="toy")
    support = sample_support(LABELS, TRAIN, 4, 0, num_classes=3, allow_fewer=True)
    assert support.taken == [4, 3, 4] and support.capped
    assert support.notes == ["class 1: 3 candidate node(s), all taken (k=4 asked)"]


def test_a_class_without_candidates_is_left_out_and_said():
    train = TRAIN & (LABELS != 1)
    with pytest.raises(SupportSetError, match="class 1 has 0 candidate"):
        sample_support(LABELS, train, 2, 0, num_classes=3)
    support = sample_support(LABELS, train, 2, 0, num_classes=3, allow_fewer=True)
    assert support.classes == [0, 2] and support.taken == [2, 0, 2]
    assert "class 1: no candidate node, left out of the support set (its test nodes count as errors)" in support.notes


def test_sampler_bad_input_is_named():
    with pytest.raises(SupportSetError, match=r"toy: the candidate nodes carry 1 class\(es\) \(\[0\]\) of 3; few-shot "
                       "classification needs at least two classes"):
        sample_support(LABELS, LABELS == 0, 1, 0, num_classes=3, allow_fewer=True, what="toy")
    with pytest.raises(SupportSetError, match=r"one class|needs at least two classes"):
        sample_support(torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.bool), 1, 0)
    with pytest.raises(SupportSetError, match=r"candidate node\(s\) \[14, 99\] are outside the graph, which has 14 "
                       "nodes"):
        sample_support(LABELS, torch.tensor([0, 14, 99]), 1, 0)
    with pytest.raises(SupportSetError, match="k=0 labels per class; pass a positive integer"):
        sample_support(LABELS, TRAIN, 0, 0)
    with pytest.raises(SupportSetError, match=r"candidate mask has shape \(3,\) but the graph has 14 nodes"):
        sample_support(LABELS, torch.ones(3, dtype=torch.bool), 1, 0)


# ---------------------------------------------------------------------------------------------
# the runner and the table
# ---------------------------------------------------------------------------------------------
def test_runner_on_karate_scores_every_control(karate):
    runs = run_fewshot_node_classification(karate, fewshot_controls(Access(labels_per_class=2)),
                                           Access(labels_per_class=2), seeds=[0, 1])
    assert {r.method for r in runs} == {"label_propagation", "svd_probe_structure", "structural_role", "linear_gnn"}
    assert len(runs) == 8 and all(r.access == "structure+2_labels" and r.role == "control" for r in runs)
    graph = karate.graphs[0]
    for run in runs:
        assert run.extra["labels_per_class"] == [2, 2] and run.extra["num_test"] == int(graph.test_mask.sum())
        assert run.extra["candidates"] == "train_mask (split 0)" and 0.0 <= run.test <= 1.0
    assert min(r.test for r in runs if r.method == "label_propagation") > 0.8  # karate's two factions
    assert all(r.extra["details"]["channel"] for r in runs if r.method == "linear_gnn")


def _toy_dataset(train_classes_missing: tuple[int, ...] = (), with_masks: bool = True) -> GraphDataset:
    """Three 6-node cliques, one per class, joined in a ring."""
    edges = []
    for block in range(3):
        nodes = list(range(6 * block, 6 * block + 6))
        edges += [(u, v) for u in nodes for v in nodes if u < v]
    edges += [(5, 6), (11, 12), (17, 0)]
    edge_index = torch.tensor(edges).t()
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    y = torch.arange(18) // 6
    data = Data(edge_index=edge_index, num_nodes=18, y=y)
    if with_masks:
        train = (torch.arange(18) % 6) < 3
        for cls in train_classes_missing:
            train &= y != cls
        data.train_mask, data.test_mask = train, ~train
        data.val_mask = torch.zeros(18, dtype=torch.bool)
    task = TaskSpec(level="node", kind="classification", num_classes=3, num_targets=1, target_names=["class"],
                    metric="accuracy")
    return GraphDataset(name="toy", domain="social", task=task, graphs=[data])


def test_runner_restricts_to_the_classes_present_and_counts_the_rest_as_errors():
    dataset = _toy_dataset(train_classes_missing=(2,))
    runs = run_fewshot_node_classification(dataset, fewshot_controls(Access(labels_per_class=2)),
                                           Access(labels_per_class=2), seeds=[0])
    lp = next(r for r in runs if r.method == "label_propagation")
    assert lp.extra["labels_per_class"] == [2, 2, 0] and "class 2: no candidate node" in lp.extra["notes"][0]
    # test nodes: 3 of class 0, 3 of class 1 and all 6 of class 2, which can never be predicted
    assert all(r.extra["num_test"] == 12 and r.test <= 0.5 + 1e-9 for r in runs) and lp.test == pytest.approx(0.5)
    with pytest.raises(SupportSetError, match="class 2 has 0 candidate"):
        run_fewshot_node_classification(dataset, fewshot_controls(Access(labels_per_class=2)),
                                        Access(labels_per_class=2), seeds=[0], allow_fewer=False)


def test_runner_without_masks_tests_every_other_labelled_node():
    runs = run_fewshot_node_classification(_toy_dataset(with_masks=False), fewshot_controls(Access(labels_per_class=1)),
                                           Access(labels_per_class=1), seeds=[3])
    assert all(r.extra["num_test"] == 15 and r.extra["candidates"] == "all labelled nodes" for r in runs)
    assert next(r for r in runs if r.method == "label_propagation").test == 1.0


def test_table_has_a_row_per_graph_access_and_k_with_the_best_control():
    runs = []
    for seed, (a, b) in enumerate([(0.5, 0.7), (0.7, 0.7)]):
        for method, value in (("label_propagation", a), ("linear_gnn", b)):
            for access in ("structure+5_labels", "structure+features+5_labels"):
                runs.append(RunResult(method=method, task="g", metric="accuracy", seed=seed, test=value, role="control",
                                      access=access, extra={"labels_per_class": [5, 3], "notes": ["class 1: 3 ..."]}))
    runs.append(RunResult(method="gfm", task="g", metric="accuracy", seed=0, test=0.99, role="method",
                          access="structure+5_labels", extra={"labels_per_class": [5, 3], "notes": []}))
    text = fewshot_table(runs, order=["gfm", "linear_gnn"])
    lines = text.splitlines()
    assert lines[0] == "| graph | access | k | gfm | linear_gnn | label_propagation | best control | labels per class |"
    assert lines[2] == "| g | structure+k_labels | 5 | 99.0 ± 0.0 | 70.0 ± 0.0 | 60.0 ± 10.0 | linear_gnn | 5/3 |"
    assert lines[3] == "| g | structure+features+k_labels | 5 | — | 70.0 ± 0.0 | 60.0 ± 10.0 | linear_gnn | 5/3 |"
    assert "- g, k=5: class 1: 3 ..." in lines
    with pytest.raises(GFMError, match="must declare a k_labels access"):
        fewshot_table([RunResult(method="m", task="g", metric="accuracy", seed=0, test=1.0, access="structure")])


@pytest.mark.data
def test_benchmark_writes_the_table_with_the_protocol(data_dir, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fewshot_controls", REPO / "benchmarks" / "fewshot_controls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "table.md"
    assert module.main(["--data-dir", str(data_dir), "--graphs", "hetero/texas", "--k", "5", "--seeds", "0", "1",
                        "--output", str(output)]) == 0
    text = output.read_text()
    assert protocol_statement() in text and "CPU: " in text and "Command: `python benchmarks/fewshot_controls.py" in text
    rows = [line for line in text.splitlines() if line.startswith("| hetero/texas |")]
    assert len(rows) == 2 and "structure+k_labels" in rows[0] and "structure+features+k_labels" in rows[1]
    assert "5/0/5/5/5" in rows[0]  # split 0 has no training node of class 1
    assert "class 1: no candidate node" in text and text.strip() in capsys.readouterr().out
