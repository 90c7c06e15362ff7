"""Nothing silently wrong in the tokenizers: each case a new user hit, reproduced, with its message.

1. a truncated token sequence decoded silently into part of the graph;
2. edited tokenizer files (an unknown key, ``version: 99``, changed special-token ids) gave a raw
   ``TypeError`` or were silently ignored;
3. a knowledge-graph tokenizer trained on the seed-0 sample failed on relations another seed's
   sample holds;
4. graphs larger than the index vocabulary and categorical values unseen in training.

The rules are in docs/reliability.md ("Tokenizers") and the tokenizer pages.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from gfm.testing.eulerian_reference import graph_difference
from gfm.tokenization import AutoGraphTokenizer, TokenizerLoadError
from gfm.tokenization.eulerian import VOCAB_FILE, EulerianDecodeError, EulerianTokenizer, UnknownValueError
from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig
from gfm.utils.errors import GFMError


def _cycle(n: int, **fields) -> Data:
    ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    return Data(edge_index=to_undirected(ring), num_nodes=n, **fields)


# ---------------------------------------------------------------------------------------------
# 1. a truncated sequence
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain() -> EulerianTokenizer:
    """Graphs without attributes: ``<bos> <graph:generic> <node> <node> ... <eos>``."""
    return EulerianTokenizer.train([_cycle(5)])


@pytest.fixture(scope="module")
def molecules_tokenizer() -> EulerianTokenizer:
    graph = _cycle(6, x=torch.arange(12).view(6, 2) % 4, domain="molecules")
    graph.edge_attr = torch.ones(graph.edge_index.shape[1], 1, dtype=torch.long)
    return EulerianTokenizer.train([graph])


def test_a_truncated_sequence_is_an_error_saying_where_it_ended(plain) -> None:
    ids = plain.encode(_cycle(5)).input_ids.tolist()
    assert len(ids) == 9 and ids[0] == plain.bos_token_id and ids[-1] == plain.eos_token_id
    with pytest.raises(EulerianDecodeError) as error:
        plain.decode(ids[:4])  # <bos> <graph> <node> <node>: 2 of 5 nodes, 1 of 5 edges
    message = str(error.value)
    assert message.startswith("position 4: the sequence ends after 4 tokens without <eos> (2 nodes and 1 edge read)")
    assert "expected the next node (<node> or a node index <i:..>), <dup>, <jump>, <target_node>, <target_edge> or <eos>" in message
    assert "a sequence that starts with <bos> ends with <eos>: this one was cut short" in message
    assert "decode(..., strict=False) returns the graph read so far, marked graph.partial = True" in message


def test_a_sequence_cut_inside_a_node_names_the_field_and_the_advice(molecules_tokenizer) -> None:
    graph = _cycle(6, x=torch.arange(12).view(6, 2) % 4, domain="molecules")
    graph.edge_attr = torch.ones(graph.edge_index.shape[1], 1, dtype=torch.long)
    ids = molecules_tokenizer.encode(graph).input_ids.tolist()
    with pytest.raises(EulerianDecodeError) as error:
        molecules_tokenizer.decode(ids[:6])  # <bos> <graph> x0 x1 <edge> x0 | x1 missing
    message = str(error.value)
    assert message.startswith("position 6: the sequence ends inside molecules/x[1] (after 6 tokens, 1 node and 0 edges read)")
    assert "decode(..., strict=False)" in message


def test_strict_false_returns_the_partial_graph_marked_and_logged(plain, molecules_tokenizer, caplog) -> None:
    graph = _cycle(5)
    encoded = plain.encode(graph, return_node_order=True)
    ids = encoded.input_ids.tolist()
    with caplog.at_level(logging.WARNING, logger="gfm.tokenization.eulerian.tokenizer"):
        partial = plain.decode(ids[:4], strict=False)
    assert partial.partial is True
    assert partial.num_nodes == 2 and partial.edge_index.tolist() == [[0, 1], [1, 0]]
    assert "the sequence ends after 4 tokens without <eos>" in caplog.text
    assert "returning the 2 nodes and 1 edge read before it (graph.partial = True)" in caplog.text
    # a complete sequence is not partial, and is the whole graph
    whole = plain.decode(ids, strict=False)
    assert whole.partial is False
    assert graph_difference(graph, whole, encoded.metadata["node_order"], 0.0) is None
    # cut inside a node: that node is left out, attributes of the others are exact
    with_attributes = _cycle(6, x=torch.arange(12).view(6, 2) % 4, domain="molecules")
    with_attributes.edge_attr = torch.ones(with_attributes.edge_index.shape[1], 1, dtype=torch.long)
    tokens = molecules_tokenizer.encode(with_attributes, return_node_order=True)
    cut = molecules_tokenizer.decode(tokens.input_ids[:9], strict=False)  # node 2 cut after x[0]
    order = tokens.metadata["node_order"]
    assert cut.partial is True and cut.num_nodes == 2
    assert torch.equal(cut.x, with_attributes.x[order[:2]])
    assert cut.edge_attr.tolist() == [[1], [1]]


def test_strict_decoding_keeps_complete_sequences_and_ones_without_special_tokens(plain) -> None:
    graph = _cycle(5)
    bare = plain.encode(graph, add_special_tokens=False, return_node_order=True)
    assert plain.bos_token_id not in bare.input_ids.tolist()
    decoded = plain.decode(bare)  # no <bos>, so no <eos> to require
    assert graph_difference(graph, decoded, bare.metadata["node_order"], 0.0) is None
    padded = plain.encode(graph).input_ids.tolist() + [plain.pad_token_id] * 3
    assert plain.decode(padded).num_nodes == 5


def test_a_truncated_merged_sequence_names_the_base_position() -> None:
    graphs = [_cycle(n) for n in range(3, 12)]
    merged = EulerianTokenizer.train(graphs, merges="bpe", num_merges=20, max_piece_length=6)
    encoded = merged.encode(_cycle(9))
    ids = encoded.input_ids.tolist()
    assert any(i >= merged.base_vocab_size for i in ids)
    with pytest.raises(EulerianDecodeError, match=r"the end of the sequence \(base token \d+\): the sequence ends "
                                                   r"after \d+ tokens without <eos>"):
        merged.decode(ids[:-1])
    partial = merged.decode(ids[:-1], strict=False)
    assert partial.partial is True and partial.num_nodes == 9


def test_a_cut_sequence_with_an_index_offset_resolves_only_unwrapped_labels() -> None:
    """Labels wrap at max(V, n) and n is in the cut-off part: a wrapped label is an error, never a guess."""
    tokenizer = EulerianTokenizer.train([_cycle(2)], num_index_tokens=8)
    pairs = torch.combinations(torch.arange(6)).T
    graph = Data(edge_index=to_undirected(pairs), num_nodes=6)
    encoded = tokenizer.encode(graph, seed=2, random_offset=True, return_node_order=True)
    offset = encoded.metadata["index_offset"]
    ids = encoded.input_ids.tolist()
    labels = [(k, tokenizer.vocabulary.payload[i]) for k, i in enumerate(ids)
              if k > 2 and tokenizer.convert_ids_to_tokens([i])[0].startswith("<i:")]
    wrapped = next(k for k, label in labels if label < offset)
    before = tokenizer.decode(ids[:wrapped], strict=False)
    assert before.partial is True and before.num_nodes >= 1
    with pytest.raises(EulerianDecodeError, match=rf"node index \d+ is below the index offset {offset}, so it wraps "
                                                   r"around .* cannot be decoded in part: decode the whole sequence"):
        tokenizer.decode(ids[: wrapped + 1], strict=False)
    whole = tokenizer.decode(ids, strict=False)
    assert whole.partial is False
    assert graph_difference(graph, whole, encoded.metadata["node_order"], 0.0) is None


# ---------------------------------------------------------------------------------------------
# 2. edited tokenizer files
# ---------------------------------------------------------------------------------------------
def _edit(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload, indent=2))


@pytest.fixture()
def eulerian_dir(tmp_path, molecules_tokenizer) -> Path:
    return molecules_tokenizer.save_pretrained(tmp_path / "eulerian")


def test_eulerian_unknown_keys_name_file_key_and_close_match(eulerian_dir) -> None:
    config = eulerian_dir / "tokenizer_config.json"
    _edit(config, lambda c: c.update(vocab_flie="eulerian_vocab.json"))
    with pytest.raises(TokenizerLoadError) as error:
        EulerianTokenizer.from_pretrained(eulerian_dir)
    message = str(error.value)
    assert f"{config}: unknown key 'vocab_flie' (did you mean 'vocab_file'?)" in message
    assert "remove it or correct its spelling" in message
    _edit(config, lambda c: c.pop("vocab_flie"))
    EulerianTokenizer.from_pretrained(eulerian_dir)

    vocab = eulerian_dir / VOCAB_FILE
    _edit(vocab, lambda v: v["settings"].update(unknwon="unk"))  # before: a raw TypeError from __init__
    with pytest.raises(TokenizerLoadError, match=rf"{vocab}: unknown key 'unknwon' in 'settings' \(did you mean "
                                                  r"'unknown'\?\)"):
        EulerianTokenizer.from_pretrained(eulerian_dir)
    _edit(vocab, lambda v: v["settings"].pop("unknwon"))
    # the first schema with node fields (the generic schemas <graph:generic...> have none and may sort first)
    first = next(i for i, schema in enumerate(json.loads(vocab.read_text())["schemas"]) if schema["node_fields"])
    _edit(vocab, lambda v: v["schemas"][first]["node_fields"][0].update(widht=3))
    with pytest.raises(TokenizerLoadError, match=rf"unknown key 'widht' in 'schemas\[{first}\].node_fields\[0\]' \(did "
                                                  r"you mean 'width'\?\)"):
        EulerianTokenizer.from_pretrained(eulerian_dir)


def test_eulerian_settings_of_a_wrong_value_are_named(eulerian_dir) -> None:
    vocab = eulerian_dir / VOCAB_FILE
    _edit(vocab, lambda v: v["settings"].update(unknown="ignore"))
    with pytest.raises(TokenizerLoadError, match=rf"{vocab}: 'settings': unknown must be 'error' or 'unk', got "
                                                  r"'ignore'"):
        EulerianTokenizer.from_pretrained(eulerian_dir)


def test_eulerian_setting_edited_in_the_config_is_not_silently_ignored(eulerian_dir) -> None:
    config = eulerian_dir / "tokenizer_config.json"
    _edit(config, lambda c: c.update(unknown="unk"))
    with pytest.raises(TokenizerLoadError) as error:
        EulerianTokenizer.from_pretrained(eulerian_dir)
    message = str(error.value)
    assert f"{config}: 'unknown' is 'unk' but {VOCAB_FILE} (which decides) has 'error'" in message
    assert "EulerianTokenizer.from_pretrained(directory, unknown='unk')" in message


def test_eulerian_unsupported_versions_say_which_this_gfm_reads(eulerian_dir) -> None:
    vocab = eulerian_dir / VOCAB_FILE
    _edit(vocab, lambda v: v.update(version=99))  # before: loaded without a word
    with pytest.raises(TokenizerLoadError) as error:
        EulerianTokenizer.from_pretrained(eulerian_dir)
    message = str(error.value)
    assert f"{vocab}: 'version' is 99; this gfm reads version 1 of this file" in message
    assert "upgrade gfm" in message and "save the tokenizer again" in message
    _edit(vocab, lambda v: v.update(version=1))
    config = eulerian_dir / "tokenizer_config.json"
    assert json.loads(config.read_text())["format_version"] == 1
    _edit(config, lambda c: c.update(format_version=99))
    with pytest.raises(TokenizerLoadError, match=rf"{config}: 'format_version' is 99; this gfm reads format_version 1"):
        EulerianTokenizer.from_pretrained(eulerian_dir)
    _edit(config, lambda c: c.pop("format_version"))  # written before the key existed: version 1
    EulerianTokenizer.from_pretrained(eulerian_dir)


def test_eulerian_edited_special_ids_name_expected_and_found(eulerian_dir) -> None:
    config = eulerian_dir / "tokenizer_config.json"
    _edit(config, lambda c: c.update(eos_token_id=5))  # before: silently ignored
    with pytest.raises(TokenizerLoadError) as error:
        AutoGraphTokenizer.from_pretrained(eulerian_dir)
    message = str(error.value)
    assert f"{config}: special token '<eos>' has id 5 in 'eos_token_id', but this gfm's EulerianTokenizer uses id 2" in message
    assert "special token ids are fixed" in message
    _edit(config, lambda c: c.update(eos_token_id=2))
    _edit(config, lambda c: c["special_tokens"].update({"<bos>": 2, "<eos>": 1}))
    with pytest.raises(TokenizerLoadError, match=r"special token '<bos>' has id 2 in 'special_tokens', but this gfm's "
                                                  r"EulerianTokenizer uses id 1; '<eos>' has id 1 .* uses id 2"):
        EulerianTokenizer.from_pretrained(eulerian_dir)
    _edit(config, lambda c: c["special_tokens"].update({"<bos>": 1, "<eos>": 2}))
    vocab = eulerian_dir / VOCAB_FILE

    def swap(v):
        v["tokens"][1], v["tokens"][2] = v["tokens"][2], v["tokens"][1]

    _edit(vocab, swap)
    with pytest.raises(TokenizerLoadError, match=rf"{vocab}: token id 1 is '<eos>' but this gfm's special token at id 1 "
                                                  r"is '<bos>'; id 2 is '<bos>' .* is '<eos>'"):
        EulerianTokenizer.from_pretrained(eulerian_dir)


@pytest.fixture(scope="module")
def quantized() -> QuantizedTokenizer:
    graphs = [_cycle(n, x=torch.arange(n).view(-1, 1) % 3, domain="molecules") for n in range(4, 9)]
    config = QuantizedTokenizerConfig(
        structure_dim=4, categorical_width=4, continuous_width=4, hidden_dim=8, code_dim=4, num_layers=1,
        num_levels=2, codebook_size=4, epochs=1, steps_per_epoch=1, vq_warmup_epochs=0,
        nodes_per_dataset_per_step=8, kmeans_sample_per_dataset=8, ppr_top_k=2,
    )
    return QuantizedTokenizer.train(graphs, config, progress=False)


def test_quantized_unknown_keys_versions_and_special_ids(quantized, tmp_path) -> None:
    directory = quantized.save_pretrained(tmp_path / "quantized")
    config = directory / "tokenizer_config.json"
    _edit(config, lambda c: c.update(trainig_log=[]))
    with pytest.raises(TokenizerLoadError, match=rf"{config}: unknown key 'trainig_log' \(did you mean "
                                                  r"'training_log'\?\)"):
        QuantizedTokenizer.from_pretrained(directory)
    _edit(config, lambda c: c.pop("trainig_log"))
    _edit(config, lambda c: c["config"].update(hiden_dim=16))
    with pytest.raises(TokenizerLoadError, match=rf"{config}: unknown key 'hiden_dim' in 'config' \(did you mean "
                                                  r"'hidden_dim'\?\)"):
        QuantizedTokenizer.from_pretrained(directory)
    _edit(config, lambda c: c["config"].pop("hiden_dim"))
    _edit(config, lambda c: c["config"].update(hidden_dim="big"))  # before: a raw TypeError building the network
    with pytest.raises(TokenizerLoadError, match=rf"{config}: 'config.hidden_dim' is 'big' \(a str\); expected an int"):
        QuantizedTokenizer.from_pretrained(directory)
    _edit(config, lambda c: c["config"].update(hidden_dim=8))
    _edit(config, lambda c: c.update(format_version=99))
    with pytest.raises(TokenizerLoadError) as error:
        QuantizedTokenizer.from_pretrained(directory)
    message = str(error.value)
    assert f"{config}: 'format_version' is 99; this gfm reads format_version 1" in message
    assert "upgrade gfm" in message
    _edit(config, lambda c: c.update(format_version=1))
    _edit(config, lambda c: c.update(eos_token_id=7))
    with pytest.raises(TokenizerLoadError, match=r"special token '<eos>' has id 7 in 'eos_token_id', but this gfm's "
                                                  r"QuantizedTokenizer uses id 2"):
        QuantizedTokenizer.from_pretrained(directory)
    _edit(config, lambda c: c.update(eos_token_id=2))
    _edit(config, lambda c: c.update(special_tokens=["<pad>", "<eos>", "<bos>", "<mask>", "<sep>", "<jump>", "<unk>"]))
    with pytest.raises(TokenizerLoadError, match=r"special token '<bos>' has id 2 in 'special_tokens', but this gfm's "
                                                  r"QuantizedTokenizer uses id 1"):
        QuantizedTokenizer.from_pretrained(directory)
    _edit(config, lambda c: c.update(special_tokens=["<pad>", "<bos>", "<eos>", "<mask>", "<sep>", "<jump>", "<unk>"]))
    loaded = QuantizedTokenizer.from_pretrained(directory)
    assert loaded.content_hash == quantized.content_hash


def test_quantized_input_space_file_versions_and_keys(quantized, tmp_path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    directory = quantized.save_pretrained(tmp_path / "quantized")
    path = directory / "input_space.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}

    def rewrite(change) -> None:
        meta = json.loads(metadata["gfm_input_space"])
        change(meta)
        save_file(tensors, str(path), metadata={**metadata, "gfm_input_space": json.dumps(meta)})

    rewrite(lambda meta: meta.update(format_version=99))
    with pytest.raises(TokenizerLoadError, match=rf"{path}: 'format_version' is 99; this gfm reads format_version 1 of "
                                                  r"this file. A newer gfm wrote it \(upgrade gfm"):
        QuantizedTokenizer.from_pretrained(directory)
    rewrite(lambda meta: meta["config"].update(structure_dm=4))
    with pytest.raises(TokenizerLoadError, match=r"unknown input-space setting 'structure_dm' \(did you mean "
                                                  r"'structure_dim'\?\)"):
        QuantizedTokenizer.from_pretrained(directory)


def test_load_errors_are_gfm_errors(eulerian_dir) -> None:
    _edit(eulerian_dir / VOCAB_FILE, lambda v: v.update(version=99))
    with pytest.raises(GFMError):
        AutoGraphTokenizer.from_pretrained(eulerian_dir)


# ---------------------------------------------------------------------------------------------
# 3. a knowledge-graph tokenizer and another seed's sample
# ---------------------------------------------------------------------------------------------
def _write_kg(folder: Path) -> int:
    """A CoDEx-format folder whose relation 9 is on one training edge and relation 10 only in test."""
    folder.mkdir(parents=True)
    train, valid, test = [], [], []
    for i in range(60):
        train.append(f"e{i}\tr{i % 4}\te{(i + 1) % 60}")
        train.append(f"e{i}\tr{4 + i % 3}\te{(i + 7) % 60}")
    train.append("e30\tr9\te31")
    valid.append("e1\tr7\te2")
    test.append("e3\tr10\te40")
    test.append("e3\tr8\te41")
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    return 11  # r0 .. r10


def test_a_kg_tokenizer_covers_every_relation_whatever_the_sample(tmp_path) -> None:
    from gfm.data import load
    from gfm.pipelines.tokenizer_training import TokenizerTrainingArguments, train_tokenizer
    from gfm.training.corpus import corpus_graphs

    num_relations = _write_kg(tmp_path / "codex" / "tiny")
    dataset = load("kg/tiny", data_dir=tmp_path)
    assert len(dataset.graphs[0].relation_names) == num_relations
    args = TokenizerTrainingArguments(
        datasets=["kg/tiny"], data_dir=str(tmp_path), output_dir=str(tmp_path / "tok"), cache_dir=None,
        max_graphs_per_dataset=3, ego_num_hops=1, ego_max_neighbors=2, seed=0,
    )
    sample, _ = corpus_graphs("kg/tiny", tmp_path, 3, 0, 1, 2)
    seen = torch.cat([g.edge_attr.view(-1) for g in sample]).unique().tolist()
    assert len(seen) < num_relations  # the seed-0 sample lacks relations
    tokenizer = train_tokenizer(args).tokenizer
    for r in range(num_relations):
        assert f"knowledge_graph/edge_attr[0]={r}" in tokenizer.vocabulary.token_to_id
    for seed in range(1, 6):
        graphs, _ = corpus_graphs("kg/tiny", tmp_path, 20, seed, 2, 4)
        encoded = tokenizer.encode_batch(graphs)  # before: UnknownValueError on a relation seed 0 never drew
        assert tokenizer.unk_token_id not in torch.cat([t.input_ids for t in encoded]).tolist()
    assert EulerianTokenizer.from_pretrained(tmp_path / "tok").content_hash == tokenizer.content_hash


def test_dataset_values_declare_every_categorical_value_and_relation() -> None:
    from gfm.tokenization.eulerian import dataset_categorical_values, merge_categorical_values

    graph = Data(
        edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.tensor([[2], [0]]), num_nodes=3,
        x=torch.tensor([[5, 1], [7, 1], [5, 0]]), x_cont=torch.zeros(3, 2), directed=True,
        relation_names=["a", "b", "c", "d"],
    )
    other = Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=1, x=torch.tensor([[9, 3]]),
                 edge_attr=torch.zeros(0, 1, dtype=torch.long), directed=True)
    values = dataset_categorical_values([graph, other], domain="knowledge_graph")
    assert values == {
        ("knowledge_graph", "x"): [[5, 7, 9], [0, 1, 3]],
        ("knowledge_graph", "edge_attr"): [[0, 1, 2, 3]],
    }
    assert merge_categorical_values(values, {("knowledge_graph", "x"): [[1], [0], [4]]}) == {
        ("knowledge_graph", "x"): [[1, 5, 7, 9], [0, 1, 3], [4]],
        ("knowledge_graph", "edge_attr"): [[0, 1, 2, 3]],
    }


@pytest.mark.data
def test_codex_tokenizer_encodes_another_seeds_sample(data_dir, tmp_path) -> None:
    """The user's case: kg/codex-m, max_graphs_per_dataset 20 at seed 0, then the seed-1 sample."""
    from gfm.pipelines.tokenizer_training import TokenizerTrainingArguments, train_tokenizer
    from gfm.training.corpus import corpus_graphs

    args = TokenizerTrainingArguments(datasets=["kg/codex-m"], data_dir=str(data_dir), output_dir=str(tmp_path / "t"),
                                      cache_dir=None, max_graphs_per_dataset=20, ego_max_neighbors=6, seed=0)
    tokenizer = train_tokenizer(args).tokenizer
    graphs, _ = corpus_graphs("kg/codex-m", data_dir, 20, 1, 2, 6)
    tokenizer.encode_batch(graphs)  # before: edge_attr[34, 0] = 3 was not seen
    relations = [t for t in tokenizer.vocabulary.tokens if t.startswith("knowledge_graph/edge_attr[0]=")]
    assert len(relations) == 51


# ---------------------------------------------------------------------------------------------
# 4. more nodes than index tokens; values never seen in training
# ---------------------------------------------------------------------------------------------
def test_more_nodes_than_index_tokens_round_trip_with_multi_token_labels() -> None:
    tokenizer = EulerianTokenizer.train([_cycle(3)], num_index_tokens=2)
    graph = _cycle(40)
    graph.edge_index = torch.cat([graph.edge_index, to_undirected(torch.tensor([[0, 5, 17], [33, 38, 2]]))], dim=1)
    encoded = tokenizer.encode(graph, return_node_order=True, seed=4, random_offset=True)
    names = tokenizer.convert_ids_to_tokens(encoded.input_ids.tolist())
    assert any(name.startswith("<ilen:") for name in names)  # labels >= 2 take several tokens, never collide
    assert graph_difference(graph, tokenizer.decode(encoded), encoded.metadata["node_order"], 0.0) is None


def test_an_unseen_categorical_value_is_named_or_written_as_unk(molecules_tokenizer, caplog) -> None:
    graph = _cycle(6, x=torch.arange(12).view(6, 2) % 4, domain="molecules")
    graph.edge_attr = torch.ones(graph.edge_index.shape[1], 1, dtype=torch.long)
    graph.x[3, 1] = 42
    with pytest.raises(UnknownValueError, match=r"x\[3, 1\] = 42 \(node 3\) was not seen when the vocabulary was "
                                                 r"trained for domain 'molecules'.*unknown='unk'"):
        molecules_tokenizer.encode(graph)
    tokenizer = EulerianTokenizer(molecules_tokenizer.vocabulary)
    with caplog.at_level(logging.WARNING, logger="gfm.tokenization.eulerian.tokenizer"):
        encoded = tokenizer.encode(graph, unknown="unk")
    assert "1 categorical attribute value(s) unseen in training were written as <unk>" in caplog.text
    assert tokenizer.unknown_value_count == 1
    assert encoded.input_ids.tolist().count(tokenizer.unk_token_id) == 1
    assert tokenizer.decode(encoded, unk_value=-7).x.view(-1).tolist().count(-7) == 1
