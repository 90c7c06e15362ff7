"""Real graph-level datasets round-trip exactly through one Eulerian vocabulary trained across domains.

The default suite round-trips PROTEINS, ENZYMES and AIDS in full and the first 1,000 graphs of
Mutagenicity, reddit10k and Tox21 (one vocabulary over all six); the ``slow`` suite round-trips
every graph of Mutagenicity, reddit10k, Tox21 and HIV (41k molecules).
"""

from __future__ import annotations

import pytest

from gfm.testing.eulerian_reference import graph_difference
from gfm.tokenization.eulerian import EulerianTokenizer

pytestmark = pytest.mark.data

# dataset -> number of graphs round-tripped in the default suite (None: all)
DEFAULT = {"tu/PROTEINS": None, "tu/ENZYMES": None, "tu/AIDS": None, "tu/Mutagenicity": 1000,
           "karateclub/reddit10k": 1000, "moleculenet/tox21": 1000}


def _load(name: str, data_dir, **options):
    from gfm import data

    return data.load(name, data_dir=data_dir, **options)


@pytest.fixture(scope="module")
def datasets(data_dir):
    # the SMILES loader can stop reading early; the TU / karateclub loaders read whole files
    return {name: _load(name, data_dir, **({"limit": count} if name.startswith("moleculenet/") else {})).graphs[:count]
            for name, count in DEFAULT.items()}


@pytest.fixture(scope="module")
def tokenizer(datasets) -> EulerianTokenizer:
    corpus = [graph for graphs in datasets.values() for graph in graphs]
    return EulerianTokenizer.train(corpus, num_index_tokens=256)


def _assert_round_trips(tokenizer: EulerianTokenizer, name: str, graphs) -> None:
    encoded = tokenizer.encode_batch(graphs, return_node_order=True)
    failures = []
    for index, (graph, tokens) in enumerate(zip(graphs, encoded)):
        difference = graph_difference(graph, tokenizer.decode(tokens), tokens.metadata["node_order"],
                                      tokenizer.continuous_tolerance)
        if difference is not None:
            failures.append(f"{name} graph {index}: {difference}")
    assert not failures, failures[:5]


@pytest.mark.parametrize("name", list(DEFAULT))
def test_dataset_round_trips_exactly(datasets, tokenizer, name) -> None:
    _assert_round_trips(tokenizer, name, datasets[name])


def test_one_vocabulary_spans_the_domains(tokenizer) -> None:
    domains = {schema.domain for schema in tokenizer.vocabulary.schemas}
    assert {"proteins", "molecules", "social"} <= domains
    names = set(tokenizer.vocabulary.tokens)
    assert any(t.startswith("proteins/x_cont[17]:") for t in names)  # ENZYMES' 18 continuous attributes
    assert any(t.startswith("molecules/edge_attr[2]=") for t in names)  # OGB bond columns of Tox21


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tu/Mutagenicity", "karateclub/reddit10k", "moleculenet/tox21", "moleculenet/hiv"])
def test_full_datasets_round_trip_exactly(data_dir, name) -> None:
    graphs = _load(name, data_dir).graphs
    tokenizer = EulerianTokenizer.train(graphs)
    _assert_round_trips(tokenizer, name, graphs)
