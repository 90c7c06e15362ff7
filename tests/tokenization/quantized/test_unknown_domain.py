"""The quantized tokenizer on a graph of a domain outside its training corpus (issue 13, item 6).

It has no per-domain vocabulary, so such a graph always encoded; what is new is that the encoding
says so: ``metadata["generic_schema"]`` and one warning per feature schema.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import barabasi_albert_graph, to_undirected

from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig

TINY = dict(
    structure_dim=8, categorical_width=8, continuous_width=8, hidden_dim=16, code_dim=8, num_layers=1, num_levels=2,
    codebook_size=8, epochs=1, steps_per_epoch=2, vq_warmup_epochs=0, nodes_per_dataset_per_step=32,
    kmeans_sample_per_dataset=32, ppr_top_k=4, max_whole_graph_nodes=200,
)


def _graph(num_nodes: int, seed: int, domain: str, **fields) -> Data:
    torch.manual_seed(seed)
    return Data(edge_index=to_undirected(barabasi_albert_graph(num_nodes, 2)), num_nodes=num_nodes, domain=domain,
                **fields)


@pytest.fixture(scope="module")
def tokenizer() -> QuantizedTokenizer:
    corpus = {"social": [_graph(60, 0, "social")], "molecules": [
        _graph(12, s, "molecules", x=torch.randint(0, 4, (12, 3))) for s in range(4)]}
    return QuantizedTokenizer.train(corpus, QuantizedTokenizerConfig(**TINY), progress=False)


def test_a_training_domain_carries_no_record(tokenizer) -> None:
    assert tokenizer.trained_domains() == {"social", "molecules"}
    assert "generic_schema" not in tokenizer.encode(_graph(30, 5, "social")).metadata


def test_an_unseen_domain_is_encoded_and_recorded(tokenizer, caplog) -> None:
    grid = _graph(30, 7, "power_grid", x=torch.rand(30, 5))
    with caplog.at_level(logging.WARNING, logger="gfm.tokenization.quantized"):
        whole = tokenizer.encode(grid)
        nodes = tokenizer.encode_nodes(grid, [0, 3])
    record = {"domain": "power_grid", "layout": "power_grid|cat0|cont5",
              "written_as": "input space (continuous statistics: own)", "left_out": []}
    assert whole.metadata["generic_schema"] == record
    assert all(seq.metadata["generic_schema"] == record and seq.metadata["target_node"] == 0 for seq in nodes)
    assert caplog.text.count("domain 'power_grid' was not in the training corpus") == 1  # once per feature schema
    assert whole.input_ids.numel() == 2 + 30 * tokenizer.config.num_levels
