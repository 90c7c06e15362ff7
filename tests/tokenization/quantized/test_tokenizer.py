"""QuantizedTokenizer: training, sequences, vocabulary, save/load, determinism and bad input.

Every test uses a tiny configuration trained in seconds on small synthetic graphs of several
kinds (categorical "molecules", a feature-less "social" graph, a "protein" set with categorical
plus continuous columns, and a graph large enough to be trained by ego subgraphs).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import barabasi_albert_graph, to_undirected

from gfm.data.sampling import ppr_topk
from gfm.tokenization import AutoGraphTokenizer, TokenizerLoadError
from gfm.tokenization.input_space import InputSpaceError
from gfm.tokenization.quantized import (
    QUANTIZER_WEIGHTS_FILE,
    SPECIAL_TOKENS,
    QuantizedTokenizer,
    QuantizedTokenizerConfig,
    QuantizedTokenizerError,
)
from gfm.tokenization.quantized.sampling import NeighborTable, capped_ego_subgraph

TINY = dict(
    structure_dim=8,
    categorical_width=8,
    continuous_width=8,
    hidden_dim=32,
    code_dim=16,
    num_layers=2,
    num_levels=2,
    codebook_size=16,
    epochs=2,
    steps_per_epoch=3,
    vq_warmup_epochs=1,
    nodes_per_dataset_per_step=64,
    large_graph_min_nodes=150,
    kmeans_sample_per_dataset=64,
    ppr_top_k=6,
    max_whole_graph_nodes=200,
)


def _ring_molecule(seed: int) -> Data:
    generator = torch.Generator().manual_seed(seed)
    n = 6 + seed % 7
    ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    return Data(
        x=torch.randint(0, 6, (n, 9), generator=generator),
        edge_index=to_undirected(ring),
        num_nodes=n,
        domain="molecules",
    )


def _protein(seed: int) -> Data:
    generator = torch.Generator().manual_seed(100 + seed)
    n = 10 + seed % 5
    torch.manual_seed(seed)
    edge_index = to_undirected(barabasi_albert_graph(n, 2))
    return Data(
        x=torch.randint(0, 3, (n, 1), generator=generator),
        x_cont=torch.rand(n, 1, generator=generator) * 30,
        edge_index=edge_index,
        num_nodes=n,
        domain="proteins",
    )


def _social(num_nodes: int = 400, seed: int = 0) -> Data:
    torch.manual_seed(seed)
    return Data(
        edge_index=to_undirected(barabasi_albert_graph(num_nodes, 3)), num_nodes=num_nodes, domain="social"
    )


def _citation(num_nodes: int = 120, width: int = 50, seed: int = 1) -> Data:
    torch.manual_seed(seed)
    edge_index = to_undirected(barabasi_albert_graph(num_nodes, 2))
    x = (torch.rand(num_nodes, width) < 0.1).float()
    return Data(x=x, edge_index=edge_index, num_nodes=num_nodes, domain="citation")


def _corpus() -> dict[str, list[Data]]:
    return {
        "molecules": [_ring_molecule(s) for s in range(12)],
        "proteins": [_protein(s) for s in range(10)],
        "social": [_social()],
        "citation": [_citation()],
    }


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[Data]]:
    return _corpus()


@pytest.fixture(scope="module")
def tokenizer(corpus) -> QuantizedTokenizer:
    return QuantizedTokenizer.train(corpus, QuantizedTokenizerConfig(**TINY), progress=False)


def test_vocabulary_layout(tokenizer):
    config = tokenizer.config
    assert tokenizer.vocab_size == len(SPECIAL_TOKENS) + config.num_levels * config.codebook_size
    ids = [
        tokenizer.pad_token_id,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.mask_token_id,
        tokenizer.sep_token_id,
        tokenizer.jump_token_id,
        tokenizer.unk_token_id,
    ]
    assert ids == list(range(7))
    assert tokenizer.code_token_id(1, 3) == 7 + config.codebook_size + 3
    assert tokenizer.token_to_level_code(7 + config.codebook_size + 3) == (1, 3)
    with pytest.raises(QuantizedTokenizerError, match="not a code id"):
        tokenizer.token_to_level_code(tokenizer.mask_token_id)
    vocab = tokenizer.get_vocab()
    assert len(vocab) == tokenizer.vocab_size and sorted(vocab.values()) == list(range(tokenizer.vocab_size))


def test_training_logs_every_enabled_term(tokenizer):
    log = tokenizer.training_log
    assert [record["epoch"] for record in log] == [1, 2]
    assert not log[0]["quantized"] and log[1]["quantized"]
    for term in ("reconstruction", "latent", "dgi", "link"):
        assert all(term in record for record in log)
    assert "commitment" in log[1] and "commitment" not in log[0]  # no quantizer during warm-up
    assert len(log[1]["utilization"]) == tokenizer.config.num_levels


def test_whole_graph_sequence_layout(tokenizer, corpus):
    graph = corpus["molecules"][3]
    levels = tokenizer.config.num_levels
    tokenized = tokenizer.encode(graph).validate(vocab_size=tokenizer.vocab_size)
    n = graph.num_nodes
    assert len(tokenized) == 2 + n * levels
    assert (
        tokenized.input_ids[0] == tokenizer.bos_token_id and tokenized.input_ids[-1] == tokenizer.eos_token_id
    )
    assert tokenized.node_index.tolist() == [-1] + [j for j in range(n) for _ in range(levels)] + [-1]
    assert tokenized.level_ids.tolist() == [-1] + list(range(levels)) * n + [-1]
    assert tokenized.ppr_weight is None and tokenized.num_nodes == n
    codes = tokenizer.node_codes(graph)
    expected = [
        int(tokenizer.code_token_id(level, codes[j, level])) for j in range(n) for level in range(levels)
    ]
    assert tokenized.input_ids[1:-1].tolist() == expected
    # level-l tokens of adjacent nodes are linked, edge_type = l, both directions
    pairs = set(
        zip(tokenized.edge_index[0].tolist(), tokenized.edge_index[1].tolist(), tokenized.edge_type.tolist())
    )
    for u, v in graph.edge_index.t().tolist():
        for level in range(levels):
            assert (1 + u * levels + level, 1 + v * levels + level, level) in pairs
    assert len(pairs) == graph.edge_index.shape[1] * levels


def test_node_context_sequence(tokenizer, corpus):
    graph = corpus["social"][0]
    levels = tokenizer.config.num_levels
    tokenized = tokenizer.encode(graph, target_node=17).validate(vocab_size=tokenizer.vocab_size)
    meta = tokenized.metadata
    assert meta["target_node"] == 0 and meta["center_node"] == 17 and meta["context_nodes"][0] == 17
    k = len(meta["context_nodes"])
    assert k == tokenizer.config.ppr_top_k + 1 and tokenized.num_nodes == k
    assert tokenized.node_index[1 : 1 + levels].tolist() == [0] * levels
    node_weights = tokenized.ppr_weight[1:-1:levels]
    assert torch.all(node_weights[1:-1] >= node_weights[2:])  # neighbours by decreasing PPR
    codes = tokenizer.node_codes(graph)
    for j, node in enumerate(meta["context_nodes"]):
        assert tokenized.input_ids[1 + j * levels].item() == tokenizer.code_token_id(0, codes[node, 0]).item()
    batched = tokenizer.encode_nodes(graph, [17, 3])
    assert batched[0].equals(tokenized)
    with pytest.raises(QuantizedTokenizerError, match="target_node=400 is outside the graph's nodes"):
        tokenizer.encode(graph, target_node=400)


def test_node_features_and_batching(tokenizer, corpus):
    graph = corpus["proteins"][0]
    tokenized = tokenizer.encode(graph, add_node_features=True)
    inputs = tokenizer.projector.transform(graph)
    levels = tokenizer.config.num_levels
    assert tokenized.node_features.shape == (len(tokenized), tokenizer.projector.output_dim)
    assert torch.count_nonzero(tokenized.node_features[0]) == 0
    assert torch.equal(tokenized.node_features[1 + 2 * levels], inputs[2])
    batch = tokenizer(corpus["molecules"][:3], return_tensors="pt")
    assert batch["input_ids"].shape[0] == 3 and "level_ids" in batch
    assert int(batch["num_nodes"][1]) == corpus["molecules"][1].num_nodes
    contexts = tokenizer([corpus["social"][0]] * 2, target_node=5, return_tensors="pt")
    assert contexts["target_node"].tolist() == [0, 0] and "ppr_weight" in contexts


def test_ego_chunk_reference_equals_full_graph(tokenizer, corpus):
    graph = corpus["social"][0]
    state = tokenizer._graph_state(graph)
    chunked = tokenizer._codes_by_ego_chunks(state.inputs, state.edges, chunk_size=37)
    assert torch.equal(chunked, tokenizer.network.codes(state.inputs, state.edges))


def test_sampled_subgraph_without_cap_gives_exact_latents(tokenizer, corpus):
    graph = corpus["social"][0]
    state = tokenizer._graph_state(graph)
    csr = NeighborTable(state.edges, graph.num_nodes)
    seeds = torch.tensor([0, 5, 99, 250])
    nodes, edges, positions = capped_ego_subgraph(
        csr, seeds, tokenizer.config.num_layers, int(csr.degree.max()), torch.Generator().manual_seed(0)
    )
    full = tokenizer.network.latents(state.inputs, state.edges)[seeds]
    sampled = tokenizer.network.latents(state.inputs[nodes], edges)[positions]
    assert torch.allclose(full, sampled, atol=1e-5)
    capped_nodes, capped_edges, _ = capped_ego_subgraph(csr, seeds, 2, 3, torch.Generator().manual_seed(0))
    assert torch.bincount(capped_edges[1], minlength=capped_nodes.numel())[: seeds.numel()].max() <= 3


def test_library_quantizer_matches_reference_search(tokenizer, corpus):
    graph = corpus["citation"][0]
    state = tokenizer._graph_state(graph)
    latents = tokenizer.network.latents(state.inputs, state.edges)
    assert torch.equal(tokenizer.network.quantizer.reference_codes(latents), state.codes)


def test_context_is_the_ppr_top_k(tokenizer, corpus):
    graph = corpus["social"][0]
    k = tokenizer.config.ppr_top_k
    neighbors, weights = ppr_topk(graph.edge_index, graph.num_nodes, torch.tensor([11]), k=k, alpha=0.15)
    tokenized = tokenizer.encode(graph, target_node=11)
    assert tokenized.metadata["context_nodes"] == [11, *neighbors[0].tolist()]
    levels = tokenizer.config.num_levels
    assert torch.allclose(tokenized.ppr_weight[1 + levels : -1 : levels], weights[0])


def test_save_reload_reencode_identical(tokenizer, corpus, tmp_path):
    directory = tokenizer.save_pretrained(tmp_path / "tok")
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["input_space.safetensors", "quantizer.safetensors", "tokenizer_config.json"]
    loaded = QuantizedTokenizer.from_pretrained(directory)
    auto = AutoGraphTokenizer.from_pretrained(directory)
    assert isinstance(auto, QuantizedTokenizer)
    assert loaded.content_hash == tokenizer.content_hash == auto.content_hash
    for graphs in corpus.values():
        for graph in graphs[:3]:
            assert torch.equal(loaded.node_codes(graph), tokenizer.node_codes(graph))
    assert loaded.encode(corpus["social"][0], target_node=9).equals(
        tokenizer.encode(corpus["social"][0], target_node=9)
    )
    # a model checkpoint in the same folder is left alone
    (directory / "config.json").write_text("{}")
    tokenizer.save_pretrained(directory)
    assert (directory / "config.json").read_text() == "{}"


def test_seeded_training_is_deterministic(corpus, tokenizer):
    again = QuantizedTokenizer.train(corpus, QuantizedTokenizerConfig(**TINY), progress=False)
    assert again.content_hash == tokenizer.content_hash
    assert again.training_log[-1]["total"] == tokenizer.training_log[-1]["total"]
    other = QuantizedTokenizer.train(corpus, QuantizedTokenizerConfig(**{**TINY, "seed": 1}), progress=False)
    assert other.content_hash != tokenizer.content_hash


def test_projector_mismatch_on_load_is_an_error(tokenizer, corpus, tmp_path):
    directory = tokenizer.save_pretrained(tmp_path / "a")
    other_corpus = {**corpus, "proteins": [_protein(s + 50) for s in range(4)]}
    other = QuantizedTokenizer.train(other_corpus, QuantizedTokenizerConfig(**TINY), progress=False)
    other_dir = other.save_pretrained(tmp_path / "b")
    shutil.copy(other_dir / "input_space.safetensors", directory / "input_space.safetensors")
    with pytest.raises(TokenizerLoadError, match="projector hash .* does not match"):
        QuantizedTokenizer.from_pretrained(directory)
    wider = QuantizedTokenizer(QuantizedTokenizerConfig(**{**TINY, "structure_dim": 4}))
    wider.projector.save(directory / "input_space.safetensors")
    with pytest.raises(TokenizerLoadError, match="projector settings .* do not match"):
        QuantizedTokenizer.from_pretrained(directory)


def test_tampered_weights_are_detected(tokenizer, tmp_path):
    from safetensors.torch import load_file, save_file

    directory = tokenizer.save_pretrained(tmp_path / "tok")
    state = load_file(directory / QUANTIZER_WEIGHTS_FILE)
    key = next(k for k in state if k.startswith("encoder."))
    state[key] = state[key] + 1.0
    save_file(state, directory / QUANTIZER_WEIGHTS_FILE)
    with pytest.raises(TokenizerLoadError, match="content hash .* differs"):
        QuantizedTokenizer.from_pretrained(directory)


def test_empty_corpus_is_an_error():
    for empty in ([], {}, None):
        with pytest.raises(QuantizedTokenizerError, match="empty corpus"):
            QuantizedTokenizer.train(empty, QuantizedTokenizerConfig(**TINY), progress=False)
    with pytest.raises(QuantizedTokenizerError, match="corpus entry 'proteins' holds no graphs"):
        QuantizedTokenizer.train({"proteins": []}, QuantizedTokenizerConfig(**TINY), progress=False)


def test_non_finite_features_are_named(tokenizer, corpus):
    bad = _citation()
    bad.x[7, 3] = float("nan")
    bad.name = "paper-graph"
    with pytest.raises(
        InputSpaceError, match="graph 'paper-graph'.*field 'x' holds a NaN value at node 7, column 3"
    ):
        tokenizer.encode(bad, target_node=0)
    bad.x[7, 3] = float("inf")
    with pytest.raises(InputSpaceError, match=r"item 0 of citation.*infinite value at node 7"):
        QuantizedTokenizer.train({"citation": [bad]}, QuantizedTokenizerConfig(**TINY), progress=False)


def test_graph_without_edges_encodes_with_no_token_links(tokenizer):
    graph = Data(x=torch.randint(0, 6, (4, 9)), edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=4)
    tokenized = tokenizer.encode(graph).validate(vocab_size=tokenizer.vocab_size)
    assert tokenized.edge_index.shape == (2, 0) and len(tokenized) == 2 + 4 * tokenizer.config.num_levels
    context = tokenizer.encode(graph, target_node=2)
    assert context.metadata["context_nodes"] == [2]  # an isolated node's context is itself


def test_unseen_feature_width_encodes_without_retraining(tokenizer):
    graph = _citation(num_nodes=90, width=77, seed=5)  # width 77 never seen in training
    graph.domain = "web"
    tokenized = tokenizer.encode(graph, target_node=4).validate(vocab_size=tokenizer.vocab_size)
    assert len(tokenized) == 2 + (tokenizer.config.ppr_top_k + 1) * tokenizer.config.num_levels


def test_limits_and_untrained_tokenizer(tokenizer, corpus):
    big = _social(300)
    with pytest.raises(QuantizedTokenizerError, match="300 nodes is more than max_whole_graph_nodes=200"):
        tokenizer.encode(big)
    untrained = QuantizedTokenizer(QuantizedTokenizerConfig(**TINY))
    with pytest.raises(QuantizedTokenizerError, match="untrained"):
        untrained.encode(corpus["molecules"][0])


def test_cache_sees_in_place_changes(tokenizer):
    graph = _citation(seed=7)
    before = tokenizer.node_codes(graph)
    graph.x.mul_(0.0)  # in-place: torch's version counter changes, the cache must notice
    after = tokenizer.node_codes(graph)
    fresh = tokenizer.node_codes(graph.clone())
    assert torch.equal(after, fresh) and not torch.equal(before, after)


def test_each_loss_term_can_be_switched_off(corpus):
    only_link = {
        **TINY,
        "epochs": 1,
        "vq_warmup_epochs": 0,
        "reconstruction_weight": 0.0,
        "latent_weight": 0.0,
        "dgi_weight": 0.0,
        "commitment_loss_weight": 0.0,
    }
    tok = QuantizedTokenizer.train(corpus, QuantizedTokenizerConfig(**only_link), progress=False)
    record = tok.training_log[0]
    assert "link" in record and not {"reconstruction", "latent", "dgi", "commitment"} & set(record)
    nothing = {**only_link, "link_weight": 0.0}
    with pytest.raises(QuantizedTokenizerError, match="every loss weight is 0"):
        QuantizedTokenizer.train(corpus, QuantizedTokenizerConfig(**nothing), progress=False)


def test_batched_encoding_equals_one_graph_at_a_time(tokenizer, corpus):
    graphs = corpus["molecules"] + corpus["proteins"] + [corpus["citation"][0]]
    tokenizer.clear_cache()
    batched = tokenizer.node_codes_many(graphs)
    sequences = tokenizer.encode_batch(graphs[:5])
    for graph, codes in zip(graphs, batched):
        tokenizer.clear_cache()
        assert torch.equal(tokenizer.node_codes(graph), codes)
    for graph, sequence in zip(graphs[:5], sequences):
        tokenizer.clear_cache()
        assert tokenizer.encode(graph).equals(sequence)


def test_corpus_statistics_match_the_encoded_corpus(tokenizer, corpus, tmp_path):
    from gfm.tokenization.quantized.evaluation import codebook_statistics

    codes, domains = [], []
    for name, graphs in corpus.items():
        for graph in graphs:
            codes.append(tokenizer.node_codes(graph))
            domains += [name] * graph.num_nodes
    expected = codebook_statistics(torch.cat(codes), tokenizer.config.codebook_size, domains)
    recorded = tokenizer.corpus_statistics
    assert recorded["nodes"] == len(domains)
    assert [level["used"] for level in recorded["levels"]] == [level.used for level in expected]
    assert [level["shared_by_two"] for level in recorded["levels"]] == [level.shared_by_two for level in expected]
    assert [d["dataset"] for d in recorded["datasets"]] == list(corpus)
    loaded = QuantizedTokenizer.from_pretrained(tokenizer.save_pretrained(tmp_path / "tok"))
    assert loaded.corpus_statistics == recorded


def test_context_edges_match_the_induced_subgraph_reference(tokenizer, corpus):
    from gfm.tokenization.quantized.sampling import induced_edges

    graph = corpus["social"][0]
    state = tokenizer._graph_state(graph)
    for centre in (0, 17, 123, 399):
        context = torch.tensor(tokenizer.encode(graph, target_node=centre).metadata["context_nodes"])
        fast = tokenizer._local_edges(state, context, whole=False)
        reference = induced_edges(state.edges, context, graph.num_nodes)
        assert sorted(map(tuple, fast.t().tolist())) == sorted(map(tuple, reference.t().tolist()))


def test_cosine_codebooks_match_the_reference_reload_and_repeat(corpus, tmp_path):
    """The shipped multi-domain config quantizes by cosine similarity: same guarantees as Euclidean."""
    config = QuantizedTokenizerConfig(**{**TINY, "use_cosine_sim": True})
    cosine = QuantizedTokenizer.train(corpus, config, progress=False)
    graph = corpus["citation"][0]
    state = cosine._graph_state(graph)
    latents = cosine.network.latents(state.inputs, state.edges)
    assert torch.equal(cosine.network.quantizer.reference_codes(latents), state.codes)
    norms = torch.stack([book.norm(dim=1) for book in cosine.network.quantizer.codebooks])
    torch.testing.assert_close(norms, torch.ones_like(norms))
    again = QuantizedTokenizer.train(corpus, config, progress=False)
    assert again.content_hash == cosine.content_hash
    loaded = QuantizedTokenizer.from_pretrained(cosine.save_pretrained(tmp_path / "cosine"))
    assert loaded.config.use_cosine_sim
    for graphs in corpus.values():
        assert torch.equal(loaded.node_codes(graphs[0]), cosine.node_codes(graphs[0]))


# -- the recipe's linear probes (gfm.tokenization.quantized.evaluation) ------------------------
def _probe_dataset(name: str, graphs: list[Data], level: str, splits=None):
    from gfm.data.dataset import GraphDataset, TaskSpec

    task = TaskSpec(level=level, kind="classification", num_classes=2, num_targets=1, target_names=["y"],
                    metric="accuracy")
    return GraphDataset(name=name, domain=graphs[0].domain, task=task, graphs=graphs, splits=splits or {})


def test_node_probe_reads_separable_labels_from_raw_features(tokenizer):
    from gfm.tokenization.quantized.evaluation import PROBE_TABLE_HEADER, node_probe

    graph = _citation(num_nodes=200, seed=3)
    graph.y = graph.x[:, 0].long()  # a label the raw features state outright
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    for key, part in (("train_mask", order[:120]), ("val_mask", order[120:160]), ("test_mask", order[160:])):
        mask = torch.zeros(200, dtype=torch.bool)
        mask[part] = True
        setattr(graph, key, mask)
    results = node_probe(tokenizer, _probe_dataset("toy/citation", [graph], "node"), seed=0)
    assert [r.split for r in results] == ["public", "random 60/20/20 (seed 0)"]
    for result in results:
        assert result.raw_features == 1.0  # the label is a raw feature column
        assert 0.0 <= result.codes <= 1.0 and 0.0 <= result.random_codes <= 1.0
        row = result.as_row()
        assert len(row) == len(PROBE_TABLE_HEADER) and row[:2] == ["toy/citation", result.split]
        assert row[5] == pytest.approx(100 * (result.codes - result.raw_features))
        assert row[6] == ("yes" if row[5] >= -5 else "NO")
    again = node_probe(tokenizer, _probe_dataset("toy/citation", [graph], "node"), seed=0)
    assert again == results  # deterministic: full-batch L-BFGS, seeded split and random codes


def test_graph_probe_uses_the_dataset_split_or_a_seeded_random_one(tokenizer, corpus):
    from gfm.tokenization.quantized.evaluation import graph_probe

    graphs = [g.clone() for g in corpus["molecules"] + corpus["molecules"]]
    for index, graph in enumerate(graphs):
        graph.y = torch.tensor([index % 2])
    random_split = graph_probe(tokenizer, _probe_dataset("toy/molecules", graphs, "graph"), seed=1)
    assert random_split.split == "random 80/10/10 (seed 1) (mean-pooled)"
    splits = {"train": torch.arange(16), "valid": torch.arange(16, 20), "test": torch.arange(20, 24)}
    given = graph_probe(tokenizer, _probe_dataset("toy/molecules", graphs, "graph", splits), seed=1)
    assert given.split == "dataset split (mean-pooled)" and given.dataset == "toy/molecules"
    for value in (given.raw_features, given.codes, given.random_codes):
        assert 0.0 <= value <= 1.0


def test_probes_name_what_the_dataset_lacks(tokenizer, corpus):
    from gfm.tokenization.quantized.evaluation import ProbeError, graph_probe, node_probe
    from gfm.utils.errors import GFMError

    unlabelled = _probe_dataset("toy/unlabelled", [_citation()], "node")
    with pytest.raises(ProbeError, match=r"node probe on 'toy/unlabelled': graph 0 needs one integer label per node "
                                         r"in y \(shape \[120\]\), got y of shape None; pick a node-classification"):
        node_probe(tokenizer, unlabelled)
    graphs = [g.clone() for g in corpus["molecules"]]
    for graph in graphs:
        graph.y = torch.tensor([0])
    graphs[3].y = torch.tensor([0, 1])
    with pytest.raises(ProbeError, match=r"graph probe on 'toy/two': graph 3 needs exactly one label in y, got \(2,\)"):
        graph_probe(tokenizer, _probe_dataset("toy/two", graphs, "graph"))
    graphs[3].y = torch.tensor([1])
    partial = _probe_dataset("toy/partial", graphs, "graph", {"train": torch.arange(8), "test": torch.arange(8, 12)})
    with pytest.raises(ProbeError, match=r"its split has \['test', 'train'\] but lacks \['valid'\]") as error:
        graph_probe(tokenizer, partial)
    assert isinstance(error.value, GFMError) and isinstance(error.value, ValueError)
