"""QuantizedTokenizer on real data: several domains in, an unseen feature width out."""

from __future__ import annotations

import pytest
import torch

import gfm.data
from gfm.tokenization.input_space import feature_schema_key
from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig

pytestmark = pytest.mark.data

TINY_REAL = dict(
    structure_dim=8,
    categorical_width=16,
    continuous_width=16,
    hidden_dim=32,
    code_dim=16,
    num_levels=2,
    codebook_size=32,
    epochs=2,
    steps_per_epoch=3,
    nodes_per_dataset_per_step=128,
    large_graph_min_nodes=1000,
    kmeans_sample_per_dataset=256,
    ppr_top_k=8,
)


@pytest.fixture(scope="module")
def real_tokenizer(data_dir):
    proteins = gfm.data.load("tu/PROTEINS", data_dir)
    proteins.graphs = proteins.graphs[:60]
    cora = gfm.data.load("planetoid/cora", data_dir)  # 2,708 nodes: trained by ego subgraphs here
    corpus = {"tu/PROTEINS": proteins, "planetoid/cora": cora}
    return QuantizedTokenizer.train(corpus, QuantizedTokenizerConfig(**TINY_REAL), progress=False)


def test_real_corpus_statistics_cover_both_domains(real_tokenizer):
    stats = real_tokenizer.corpus_statistics
    assert [d["dataset"] for d in stats["datasets"]] == ["tu/PROTEINS", "planetoid/cora"]
    assert stats["levels"][0]["num_domains"] == 2
    assert all(level["used"] > 0 for level in stats["levels"])


def test_unseen_heterophilous_width_encodes_without_retraining(real_tokenizer, data_dir):
    chameleon = gfm.data.load("hetero/chameleon", data_dir).graphs[0]
    assert chameleon.x.shape[1] == 2325
    assert feature_schema_key(chameleon) not in real_tokenizer.projector.continuous_stats
    codes = real_tokenizer.node_codes(chameleon)
    assert codes.shape == (chameleon.num_nodes, real_tokenizer.config.num_levels)
    sequences = real_tokenizer.encode_nodes(chameleon, [0, 10, 100])
    for sequence in sequences:
        sequence.validate(vocab_size=real_tokenizer.vocab_size)
    assert torch.equal(real_tokenizer.node_codes(chameleon), codes)


def test_directed_knowledge_graph_is_symmetrized(real_tokenizer, data_dir):
    codex = gfm.data.load("kg/codex-m", data_dir).graphs[0]
    assert bool(codex.directed)
    sequence = real_tokenizer.encode(codex, target_node=3).validate(vocab_size=real_tokenizer.vocab_size)
    assert sequence.edge_index.shape[1] % real_tokenizer.config.num_levels == 0
