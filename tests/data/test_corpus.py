"""The Arrow corpus cache (reuse, keys, exact rows), the generic row store, and Corpus mixing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gfm.data import Corpus, read_rows, registry, write_rows
from gfm.data.arrow import ArrowFormatError, ArrowGraphDataset, datasets_equal, graphs_equal
from gfm.data.dataset import UnknownDatasetError
from gfm.data.registry import cache_path
from gfm.testing.paths import source_root
from gfm.tokenization.tokenized_graph import TokenizedGraph

SMALL = ["packaged/karate", "packaged/les-miserables", "packaged/florentine", "packaged/davis"]


def test_cache_is_reused_and_keyed_by_options(tmp_path, monkeypatch):
    first = registry.load("packaged/karate", cache_dir=tmp_path)
    source = registry.resolve_source("packaged/karate")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the loader ran although the cache holds this dataset")

    monkeypatch.setattr(source, "loader", must_not_run)
    second = registry.load("packaged/karate", cache_dir=tmp_path)
    assert datasets_equal(first, second)
    with pytest.raises(AssertionError, match="loader ran"):
        registry.load("packaged/karate", cache_dir=tmp_path, seed=5)  # new options -> new key
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


def test_cache_key_follows_the_input_files(tmp_path):
    edges = tmp_path / "edges.csv"
    edges.write_text("source,target\n0,1\n1,2\n2,3\n3,0\n0,2\n")
    name = f"csv/{edges}"
    key_before = registry.cache_key(name)
    first = registry.load(name, cache_dir=tmp_path / "cache")
    edges.write_text("source,target\n0,1\n1,2\n2,3\n3,0\n0,2\n2,4\n")
    stat = edges.stat()
    os.utime(edges, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert registry.cache_key(name) != key_before
    second = registry.load(name, cache_dir=tmp_path / "cache")
    assert first[0].num_nodes == 4 and second[0].num_nodes == 5
    assert registry.cache_key(name, hash_contents=True) == registry.cache_key(name, hash_contents=True)


def test_lazy_cached_dataset_streams_graphs(tmp_path):
    from gfm.data.registry import load_or_build_cached

    eager = registry.load("packaged/davis")
    lazy = load_or_build_cached("packaged/davis", None, tmp_path, {}, lazy=True)
    assert isinstance(lazy, ArrowGraphDataset) and len(lazy) == 1
    assert graphs_equal(lazy[0], eager[0]) and graphs_equal(lazy[-1], eager[0])
    assert lazy.summary() == eager.summary()
    with pytest.raises(IndexError, match="graph 1 out of range"):
        lazy[1]


def test_rows_round_trip_exactly(tmp_path):
    samples = [
        TokenizedGraph(input_ids=[1, 5, 7], node_index=[-1, 0, 1], edge_index=[[1], [2]], num_nodes=2, domain="toy",
                       metadata={"target_node": 0}),
        TokenizedGraph(input_ids=[1, 9], node_index=[-1, 0], edge_index=[[], []], num_nodes=1, domain="toy",
                       ppr_weight=[0.0, 0.1234567], level_ids=[-1, 0], metadata={"target_edge": [0, 1], "note": None}),
    ]
    write_rows((s.to_dict() for s in samples), tmp_path / "rows", json_columns=("metadata",))
    rows = read_rows(tmp_path / "rows")
    assert len(rows) == 2
    back = [TokenizedGraph.from_dict(row) for row in rows]
    assert all(a.equals(b) for a, b in zip(samples, back))
    assert TokenizedGraph.from_dict(rows[1]).ppr_weight.tolist() == samples[1].ppr_weight.tolist()
    with pytest.raises(FileExistsError):
        write_rows([{"a": 1}], tmp_path / "rows")
    # the rows' metadata file read as the graph cache's is: missing or not a JSON object is named
    (tmp_path / "rows" / "gfm_rows.json").write_text("[1, 2]")
    with pytest.raises(ArrowFormatError, match=r"rows is damaged \(gfm_rows.json: TypeError: a JSON list, not an object\)"):
        read_rows(tmp_path / "rows")
    (tmp_path / "rows" / "gfm_rows.json").unlink()
    with pytest.raises(ArrowFormatError, match=r"rows: no gfm_rows.json; write it with gfm.data.write_rows"):
        read_rows(tmp_path / "rows")


def _write_rings(folder: Path, name: str = "RINGS", count: int = 600) -> Path:
    """``count`` ring graphs of 3..8 nodes in TU format (a cheap second domain: 'other')."""
    raw = folder / "tudataset" / name / "raw"
    raw.mkdir(parents=True)
    edges, indicator, labels, offset = [], [], [], 0
    for g in range(count):
        size = 3 + g % 6
        for i in range(size):
            j = (i + 1) % size
            edges += [f"{offset + i + 1}, {offset + j + 1}", f"{offset + j + 1}, {offset + i + 1}"]
        indicator += [str(g + 1)] * size
        labels.append(str(size % 2))
        offset += size
    (raw / f"{name}_A.txt").write_text("\n".join(edges) + "\n")
    (raw / f"{name}_graph_indicator.txt").write_text("\n".join(indicator) + "\n")
    (raw / f"{name}_graph_labels.txt").write_text("\n".join(labels) + "\n")
    return folder


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory):
    data_dir = _write_rings(tmp_path_factory.mktemp("rings"))
    return Corpus(SMALL + ["tu/RINGS"], domain_weights={"other": 0.8, "social": 0.2}, data_dir=data_dir).build()


def test_corpus_domains_weights_and_errors(mixed_corpus):
    assert set(mixed_corpus.domains) == {"other", "social"} and len(mixed_corpus.domains["social"]) == 4
    assert mixed_corpus.domain_weights() == pytest.approx({"social": 0.2, "other": 0.8})
    assert len(mixed_corpus) == sum(len(d) for d in mixed_corpus.datasets.values())
    with pytest.raises(ValueError, match=r"domain_weights names 'socail' \(did you mean 'social'\?\), which no dataset of this corpus has; its domains are \['social'\]"):
        Corpus(SMALL, domain_weights={"socail": 1.0}).build()
    with pytest.raises(ValueError, match="domain weights sum to 0"):
        Corpus(SMALL, domain_weights={"social": 0.0}).build()
    with pytest.raises(UnknownDatasetError, match="did you mean 'packaged/karate'"):
        Corpus(["packaged/karat"]).build()


def test_corpus_sampling_is_seeded_and_follows_weights(mixed_corpus):
    corpus = mixed_corpus
    draws = corpus.sample_indices(5000, seed=1)
    assert draws == corpus.sample_indices(5000, seed=1) and draws != corpus.sample_indices(5000, seed=2)
    domains = Counter(corpus.datasets[name].domain for name, _ in draws)
    assert domains["other"] / 5000 == pytest.approx(0.8, abs=0.03)
    rings = [index for name, index in draws if name == "tu/RINGS"]
    assert min(rings) >= 0 and max(rings) < 600 and len(set(rings)) > 550
    name, graph = next(corpus.iter_samples(1, seed=1))
    assert graphs_equal(graph, corpus.datasets[name][draws[0][1]])


def test_cached_corpus_streams_the_same_graphs(tmp_path):
    memory = Corpus(SMALL)
    cached = Corpus(SMALL, cache_dir=tmp_path).build()
    assert all(isinstance(d, ArrowGraphDataset) for d in cached.datasets.values())
    assert [(n, g.num_nodes) for n, g in memory] == [(n, g.num_nodes) for n, g in cached]
    assert all(graphs_equal(a, b) for (_, a), (_, b) in zip(memory, cached))
    assert cached.summary() == memory.summary()
    for name in SMALL:
        assert cache_path(name, None, tmp_path, {}).is_dir()


@pytest.mark.slow
def test_two_processes_share_one_cache(tmp_path):
    script = (
        "import sys; from gfm.data import registry; "
        "d = registry.load('packaged/les-miserables', cache_dir=sys.argv[1]); print(d[0].edge_index.shape[1])"
    )
    env = {**os.environ, "PYTHONPATH": str(source_root())}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outputs[0] == outputs[1]
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
