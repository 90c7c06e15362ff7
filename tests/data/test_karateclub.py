"""karateclub social graphs: node-level counts (github: 37,700 nodes), labels aligned with
target.csv, twitch features, reddit10k's 10,000 graphs, seeded splits, Arrow round trip."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from gfm.data import registry
from gfm.data.arrow import datasets_equal, load_graph_dataset, save_graph_dataset
from gfm.data.dataset import GraphDataset

pytestmark = pytest.mark.data

# README: "7k to 38k nodes; 10,000 graphs"; nodes, edge lines, classes of each folder.
KARATECLUB = {
    "github": (37700, 289003, 2), "facebook": (22470, 171002, 4), "deezer": (28281, 92752, 2),
    "lastfm": (7624, 27806, 18), "twitch": (7126, 35324, 2), "wikipedia": (11631, 180020, 2),
}


@pytest.mark.parametrize("name", sorted(KARATECLUB))
def test_karateclub_node_counts_and_labels(data_dir, name):
    nodes, edge_lines, classes = KARATECLUB[name]
    dataset = registry.load(f"karateclub/{name}", data_dir)
    graph = dataset[0]
    folder = data_dir / "karateclub" / "node_level" / name
    edges = pd.read_csv(folder / "edges.csv")
    target = pd.read_csv(folder / "target.csv")
    assert graph.num_nodes == nodes and len(edges) == edge_lines and dataset.task.num_classes == classes
    assert torch.equal(graph.y, torch.tensor(target["target"].to_numpy()))
    both = torch.cat([torch.from_numpy(edges.to_numpy().T), torch.from_numpy(edges.to_numpy().T).flip(0)], dim=1)
    expected = torch.unique(both[0] * nodes + both[1])
    assert torch.equal(torch.sort(graph.edge_index[0] * nodes + graph.edge_index[1]).values, expected)
    masks = graph.train_mask.long() + graph.val_mask.long() + graph.test_mask.long()
    assert (masks == 1).all() and int(graph.train_mask.sum()) == pytest.approx(0.6 * nodes, abs=classes)


def test_karateclub_twitch_features_line_up(data_dir):
    graph = registry.load("karateclub/twitch", data_dir)[0]
    table = pd.read_csv(data_dir / "karateclub" / "node_level" / "twitch" / "features.csv")
    assert graph.x.shape == (7126, int(table.feature_id.max()) + 1)
    assert int(graph.x.sum()) == len(table.drop_duplicates(["node_id", "feature_id"]))
    row = table[table.node_id == 2435].feature_id.tolist()
    assert sorted(graph.x[2435].nonzero().view(-1).tolist()) == sorted(set(row))


def test_karateclub_splits_are_seeded(data_dir):
    from gfm.data.splits import stratified_split

    a = registry.load("karateclub/lastfm", data_dir, seed=1)[0]
    c = registry.load("karateclub/lastfm", data_dir, seed=2)[0]
    assert not torch.equal(a.train_mask, c.train_mask)
    again = stratified_split(a.y, (0.6, 0.2, 0.2), seed=1)["train"]
    assert torch.equal(a.train_mask.nonzero().view(-1), again)


@pytest.fixture(scope="module")
def reddit(data_dir):
    return registry.load("karateclub/reddit10k", data_dir)


def test_reddit10k_graphs_and_labels(reddit, data_dir):
    assert len(reddit) == 10000 and reddit.task.level == "graph" and reddit.task.num_classes == 2
    raw = json.loads((data_dir / "karateclub" / "graph_level" / "reddit10k" / "graphs.json").read_text())
    target = pd.read_csv(data_dir / "karateclub" / "graph_level" / "reddit10k" / "target.csv").set_index("id")
    for index in (0, 4321, 9999):
        graph = reddit[index]
        edges = raw[str(index)]
        assert graph.name == str(index) and int(graph.y) == int(target.loc[index, "target"])
        assert graph.num_nodes == max(max(e) for e in edges) + 1
        assert {tuple(e) for e in graph.edge_index.t().tolist()} == {tuple(e) for e in edges} | {(b, a) for a, b in edges}
    assert sum(s.numel() for s in reddit.splits.values()) == 10000


def test_karateclub_round_trip_is_exact(reddit, data_dir, tmp_path):
    head = GraphDataset(reddit.name, reddit.domain, reddit.task, reddit.graphs[:500], splits={"train": torch.arange(500)})
    save_graph_dataset(head, tmp_path / "reddit")
    assert datasets_equal(head, load_graph_dataset(tmp_path / "reddit"))
    twitch = registry.load("karateclub/twitch", data_dir)  # node level, float features, masks
    save_graph_dataset(twitch, tmp_path / "twitch")
    assert datasets_equal(twitch, load_graph_dataset(tmp_path / "twitch"))
