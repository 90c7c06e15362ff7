"""GFMModel and its heads: batches from the collators, causality, packing, save/load, heads, losses, errors."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

import gfm
from gfm import (
    GFMConfig,
    GFMForEdgePrediction,
    GFMForGraphClassification,
    GFMForNodeClassification,
    GFMForPretraining,
    GFMModel,
    TokenizedGraph,
    collate_tokenized_graphs,
    pack_tokenized_graphs,
)
from gfm.modeling import GFMCheckpointMismatchError, GFMConfigError, GFMInputError
from gfm.modeling.attention import UnknownAttentionBackendError, UnsupportedPatternError
from gfm.modeling.modeling_gfm import pool_per_node, pool_per_sample
from gfm.testing.modeling import TINY_VOCAB, random_tokenized_graphs, tiny_gfm_config


def sample_states(batch: dict, hidden: torch.Tensor, sample: int) -> torch.Tensor:
    mask = batch["sequence_ids"] == sample
    rows, columns = mask.nonzero(as_tuple=True)
    order = torch.argsort(batch["position_ids"][rows, columns])
    return hidden[rows[order], columns[order]]


# ---------------------------------------------------------------------------------------------
# forward, packing, causality, backends
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "csr", "dense"])
def test_packed_and_padded_batches_give_the_same_states(backend: str) -> None:
    torch.manual_seed(0)
    model = GFMModel(tiny_gfm_config(attention_backend=backend, attention_window=4)).eval()
    samples = random_tokenized_graphs([9, 17, 4, 12, 1], seed=1)
    padded = collate_tokenized_graphs(samples)
    packed = pack_tokenized_graphs(samples, token_budget=24)
    assert packed["input_ids"].shape[0] < len(samples)
    with torch.no_grad():
        a = model(**padded).last_hidden_state
        b = model(**packed).last_hidden_state
    for i in range(len(samples)):
        torch.testing.assert_close(sample_states(padded, a, i), sample_states(packed, b, i), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "backend, overrides",
    [
        ("dense", {}),
        ("csr", {}),
        ("block_sdpa", dict(attention_window=6, attention_expander_degree=0, attention_graph_edges=False,
                            attention_same_node=False, attention_num_global_tokens=2)),
    ],
)
def test_causal_outputs_ignore_later_tokens(backend: str, overrides: dict) -> None:
    torch.manual_seed(0)
    model = GFMForPretraining(tiny_gfm_config(attention_backend=backend, **overrides)).eval()
    samples = random_tokenized_graphs([15, 11], seed=2)
    batch = pack_tokenized_graphs(samples, token_budget=30)
    with torch.no_grad():
        before = model(**batch, causal=True).logits
        changed = dict(batch, input_ids=batch["input_ids"].clone())
        cut = 7  # change every token of sample 0 from in-sample position 7 on
        sample_zero = (batch["sequence_ids"] == 0) & (batch["position_ids"] >= cut)
        changed["input_ids"][sample_zero] = (changed["input_ids"][sample_zero] + 5) % TINY_VOCAB
        after = model(**changed, causal=True).logits
        non_causal = model(**changed, causal=False).logits
    earlier = (batch["sequence_ids"] == 0) & (batch["position_ids"] < cut)
    unaffected = earlier | (batch["sequence_ids"] == 1)
    torch.testing.assert_close(after[unaffected], before[unaffected], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(after[sample_zero], before[sample_zero])
    assert not torch.allclose(non_causal[earlier], before[earlier]), "non-causal attention must see later tokens"


def test_every_batch_key_is_accepted_and_optional_inputs_matter() -> None:
    torch.manual_seed(0)
    config = tiny_gfm_config(num_code_levels=2, node_feature_dim=5)
    samples = random_tokenized_graphs([8, 13, 6], seed=3, extras=True)
    batch = collate_tokenized_graphs(samples)
    assert {"level_ids", "ppr_weight", "node_features", "target_node", "target_edge", "num_nodes"} <= set(batch)
    for cls in (GFMModel, GFMForPretraining, GFMForGraphClassification, GFMForNodeClassification, GFMForEdgePrediction):
        model = cls(config).eval()
        labels = {
            GFMModel: None,
            GFMForPretraining: batch["input_ids"],
            GFMForGraphClassification: torch.tensor([0, 1, 0]),
            GFMForNodeClassification: torch.tensor([1, 0, 1]),
            GFMForEdgePrediction: torch.tensor([1, 1, 0]),
        }[cls]
        out = model(**batch, labels=labels)
        if labels is not None:
            assert torch.isfinite(out.loss)
    model = GFMModel(config).eval()
    for parameter in (model.embeddings.ppr_gate_scale, model.embeddings.ppr_gate_shift):
        torch.nn.init.normal_(parameter)
    with torch.no_grad():
        full = model(**batch).last_hidden_state
        for key in ("level_ids", "ppr_weight", "node_features"):
            without = model(**{k: v for k, v in batch.items() if k != key}).last_hidden_state
            assert not torch.allclose(full, without), f"{key} has no effect"


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = GFMForPretraining(tiny_gfm_config())
    batch = collate_tokenized_graphs(random_tokenized_graphs([10, 7], seed=4))

    def gradients() -> list[torch.Tensor]:
        model.zero_grad()
        model(**batch, labels=batch["input_ids"]).loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    model.train()
    plain = gradients()
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    checkpointed = gradients()
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_bf16_autocast_trains_close_to_fp32() -> None:
    torch.manual_seed(0)
    model = GFMForPretraining(tiny_gfm_config())
    batch = collate_tokenized_graphs(random_tokenized_graphs([10, 7], seed=5))
    reference = model(**batch, labels=batch["input_ids"]).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - reference.item()) < 0.05
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_seeded_construction_is_deterministic() -> None:
    batch = collate_tokenized_graphs(random_tokenized_graphs([10, 7], seed=6))
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        outputs.append(GFMForPretraining(tiny_gfm_config()).eval()(**batch).logits)
    assert torch.equal(outputs[0], outputs[1])


# ---------------------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------------------
def test_save_pretrained_then_auto_classes_reload_bit_identical(tmp_path) -> None:
    torch.manual_seed(0)
    batch = collate_tokenized_graphs(random_tokenized_graphs([9, 14], seed=7))
    pretraining = GFMForPretraining(tiny_gfm_config(tokenizer_class="EulerianTokenizer", tokenizer_hash="ab" * 32)).eval()
    with torch.no_grad():
        for layer in pretraining.model.layers:
            layer.self_attn.link_bias.normal_()  # non-zero biases must survive too
    pretraining.save_pretrained(tmp_path / "pretraining")
    files = sorted(os.listdir(tmp_path / "pretraining"))
    assert files == ["config.json", "model.safetensors"], files

    config = AutoConfig.from_pretrained(tmp_path / "pretraining")
    assert isinstance(config, GFMConfig) and config.tokenizer_hash == "ab" * 32
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path / "pretraining").eval()
    assert isinstance(reloaded, GFMForPretraining)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embeddings.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, pretraining(**batch).logits)
        backbone = AutoModel.from_pretrained(tmp_path / "pretraining").eval()
        assert isinstance(backbone, GFMModel)
        assert torch.equal(backbone(**batch).last_hidden_state, pretraining.model(**batch).last_hidden_state)

    classifier = GFMForGraphClassification(tiny_gfm_config(num_labels=3)).eval()
    classifier.save_pretrained(tmp_path / "classifier")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "classifier").eval()
    assert isinstance(again, GFMForGraphClassification)
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, classifier(**batch).logits)


def test_checkpoint_config_mismatch_is_a_named_error(tmp_path) -> None:
    GFMModel(tiny_gfm_config()).save_pretrained(tmp_path)
    with pytest.raises(GFMCheckpointMismatchError, match=r"link_bias: checkpoint \[6, 4\] vs model \[9, 4\]"):
        AutoModel.from_pretrained(tmp_path, config=tiny_gfm_config(num_edge_types=6))
    with pytest.raises(GFMCheckpointMismatchError, match="lacks backbone weights.*level_embeddings"):
        AutoModel.from_pretrained(tmp_path, config=tiny_gfm_config(num_code_levels=3))
    head = GFMForNodeClassification.from_pretrained(tmp_path)  # a new task head on a pretrained backbone is fine
    assert isinstance(head, GFMForNodeClassification)


# ---------------------------------------------------------------------------------------------
# heads and losses
# ---------------------------------------------------------------------------------------------
def test_pooling_matches_per_sample_loops() -> None:
    torch.manual_seed(0)
    batch = pack_tokenized_graphs(random_tokenized_graphs([9, 17, 4, 12], seed=8), token_budget=24)
    hidden = torch.randn(*batch["input_ids"].shape, 6)
    pooled = {mode: pool_per_sample(hidden, batch["sequence_ids"], 4, mode) for mode in ("mean", "first", "max")}
    for i in range(4):
        states = sample_states(batch, hidden, i)
        torch.testing.assert_close(pooled["mean"][i], states.mean(0))
        torch.testing.assert_close(pooled["first"][i], states[0])
        torch.testing.assert_close(pooled["max"][i], states.max(0).values)
    samples, nodes = torch.tensor([0, 1, 2, 3, 1]), torch.tensor([0, 1, 1, 0, 0])
    node_states = pool_per_node(hidden, batch["sequence_ids"], batch["node_index"], samples, nodes)
    for m, (s, n) in enumerate(zip(samples.tolist(), nodes.tolist())):
        mask = (batch["sequence_ids"] == s) & (batch["node_index"] == n)
        torch.testing.assert_close(node_states[m], hidden[mask].mean(0))
    with pytest.raises(GFMInputError, match="sample 0: node 99 has no token"):
        pool_per_node(hidden, batch["sequence_ids"], batch["node_index"], torch.tensor([0]), torch.tensor([99]))


@pytest.mark.parametrize(
    "problem_type, labels",
    [
        ("multi_label_classification", torch.tensor([[1.0, float("nan")], [float("nan"), 0.0], [0.0, 1.0]])),
        ("regression", torch.tensor([[0.5, float("nan")], [float("nan"), -1.0], [2.0, 0.0]])),
        ("single_label_classification", torch.tensor([1, -100, 0])),
    ],
)
def test_missing_labels_are_masked_out_of_losses(problem_type: str, labels: torch.Tensor) -> None:
    torch.manual_seed(0)
    config = tiny_gfm_config(num_labels=2, problem_type=problem_type)
    model = GFMForGraphClassification(config).eval()
    batch = collate_tokenized_graphs(random_tokenized_graphs([8, 5, 11], seed=9))
    out = model(**batch, labels=labels)
    logits = out.logits
    if problem_type == "single_label_classification":
        expected = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    else:
        observed = ~torch.isnan(labels)
        loss_fn = (
            torch.nn.functional.mse_loss
            if problem_type == "regression"
            else torch.nn.functional.binary_cross_entropy_with_logits
        )
        expected = loss_fn(logits[observed], labels[observed])
    torch.testing.assert_close(out.loss, expected)
    everything_missing = torch.full_like(labels, float("nan") if labels.is_floating_point() else -100)
    empty = model(**batch, labels=everything_missing).loss
    assert empty.item() == 0.0 and empty.requires_grad


def test_node_and_edge_heads_read_their_target_nodes() -> None:
    torch.manual_seed(0)
    batch = collate_tokenized_graphs(random_tokenized_graphs([9, 12], seed=10))
    model = GFMForNodeClassification(tiny_gfm_config(num_labels=3)).eval()
    with torch.no_grad():
        hidden = model.model(**batch).last_hidden_state
        expected = model.score(pool_per_node(hidden, batch["sequence_ids"], batch["node_index"],
                                             torch.arange(2), batch["target_node"]))
        torch.testing.assert_close(model(**batch).logits, expected)
        swapped = dict(batch, target_node=1 - batch["target_node"])
        assert not torch.allclose(model(**swapped).logits, expected)
    edge_model = GFMForEdgePrediction(tiny_gfm_config(num_labels=1)).eval()
    out = edge_model(**batch, labels=torch.tensor([0.5, float("nan")]))
    assert out.logits.shape == (2, 1) and torch.isfinite(out.loss)
    with pytest.raises(GFMInputError, match=r"needs target_edge \[N, 2\]"):
        edge_model(**{k: v for k, v in batch.items() if k != "target_edge"})
    with pytest.raises(GFMInputError, match=r"needs target_node \[N\]"):
        model(**{k: v for k, v in batch.items() if k != "target_node"})


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_fail_with_named_errors() -> None:
    torch.manual_seed(0)
    model = GFMForPretraining(tiny_gfm_config(max_position_embeddings=16))
    batch = collate_tokenized_graphs(random_tokenized_graphs([20, 5], seed=11))
    with pytest.raises(GFMInputError, match=r"position_ids reach 19 but config.max_position_embeddings=16"):
        model(**batch)
    short = collate_tokenized_graphs(random_tokenized_graphs([10, 5], seed=11))
    flat_positions = short["input_ids"].numel()
    with pytest.raises(ValueError, match=rf"graph_edge_index\[:, 0\] = \[{flat_positions}, 0\] is out of range"):
        model(**dict(short, graph_edge_index=torch.tensor([[flat_positions], [0]]), graph_edge_type=torch.tensor([0])))
    with pytest.raises(ValueError, match="graph_edge_type holds 7 .* num_edge_types=3"):
        model(**dict(short, graph_edge_type=torch.full_like(short["graph_edge_type"], 7)))
    with pytest.raises(GFMInputError, match=r"input_ids hold 40, outside the vocabulary \[0, 40\)"):
        model(**dict(short, input_ids=torch.full_like(short["input_ids"], TINY_VOCAB)))
    with pytest.raises(GFMInputError, match="node_features of width 5 but config.node_feature_dim=0"):
        model(**dict(short, node_features=torch.zeros(*short["input_ids"].shape, 5)))
    with pytest.raises(GFMInputError, match="level_ids .* but config.num_code_levels=0"):
        model(**dict(short, level_ids=torch.zeros_like(short["input_ids"])))
    with pytest.raises(GFMInputError, match="labels must be -100 .* token ids in"):
        model(**short, labels=torch.full_like(short["input_ids"], TINY_VOCAB + 3))
    with pytest.raises(UnknownAttentionBackendError, match="unknown attention backend 'fast'.*auto, block_sdpa, csr, dense, flex"):
        tiny_gfm_config(attention_backend="fast")
    forced = GFMModel(tiny_gfm_config(attention_backend="block_sdpa"))
    with pytest.raises(UnsupportedPatternError, match="block_sdpa.*cannot run this pattern"):
        forced(**short)
    with pytest.raises(GFMConfigError, match="attention_expander_degree must be a non-negative even"):
        tiny_gfm_config(attention_expander_degree=3)
    with pytest.raises(GFMConfigError, match="not divisible by num_attention_heads"):
        tiny_gfm_config(hidden_size=30)


def test_package_exports_and_registration() -> None:
    assert gfm.GFMConfig is GFMConfig and gfm.GFMForEdgePrediction is GFMForEdgePrediction
    assert isinstance(AutoConfig.for_model("gfm"), GFMConfig)
    assert type(AutoModel.from_config(tiny_gfm_config())) is GFMModel
    assert type(gfm.AutoModelForNodeClassification.from_config(tiny_gfm_config(num_labels=3))) is GFMForNodeClassification
    assert type(gfm.AutoModelForEdgePrediction.from_config(tiny_gfm_config())) is GFMForEdgePrediction


@pytest.mark.parametrize(
    ("head", "auto_name"),
    [(GFMForNodeClassification, "AutoModelForNodeClassification"), (GFMForEdgePrediction, "AutoModelForEdgePrediction")],
)
def test_node_and_edge_heads_reload_through_gfm_auto_classes(tmp_path, head, auto_name: str) -> None:
    torch.manual_seed(0)
    model = head(tiny_gfm_config(num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    reloaded = getattr(gfm, auto_name).from_pretrained(tmp_path).eval()
    assert type(reloaded) is head
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name
    with pytest.raises(ValueError, match="Unrecognized configuration class"):
        getattr(gfm, auto_name).from_config(AutoConfig.for_model("bert"))


def test_graph_positional_encodings_enter_through_node_features() -> None:
    from torch_geometric.transforms import AddRandomWalkPE
    from torch_geometric.utils import from_smiles

    from gfm.data.positional_encoding import graph_positional_encoding
    from gfm.tokenization.positional_encoding import add_positional_encoding

    molecule = from_smiles("c1ccccc1CC(=O)O")  # 10 atoms
    encoding = graph_positional_encoding(molecule, laplacian_k=12, random_walk_steps=4, seed=3)
    assert encoding.shape == (10, 16)
    assert torch.equal(encoding, graph_positional_encoding(molecule, laplacian_k=12, random_walk_steps=4, seed=3))
    assert torch.equal(encoding[:, 9:12], torch.zeros(10, 3)), "a 10-node graph has only 9 non-trivial eigenvectors"
    random_walk = AddRandomWalkPE(4, attr_name="pe")(molecule.clone()).pe
    torch.testing.assert_close(encoding[:, 12:], random_walk)
    gram = encoding[:, :9].T @ encoding[:, :9]  # orthonormal eigenvectors (any signs)
    torch.testing.assert_close(gram, torch.eye(9), atol=1e-4, rtol=1e-4)

    num_atoms = int(molecule.num_nodes)
    tokens = TokenizedGraph(
        input_ids=torch.arange(num_atoms + 1) % TINY_VOCAB,
        node_index=torch.cat([torch.tensor([-1]), torch.arange(num_atoms)]),
        edge_index=molecule.edge_index + 1,
        num_nodes=num_atoms,
    )
    with_encoding = add_positional_encoding(tokens, encoding)
    assert with_encoding.node_features.shape == (num_atoms + 1, 16)
    assert torch.equal(with_encoding.node_features[0], torch.zeros(16))  # <bos> stands for no node
    assert torch.equal(with_encoding.node_features[1:], encoding)
    model = GFMModel(tiny_gfm_config(node_feature_dim=16)).eval()
    with torch.no_grad():
        out = model(**collate_tokenized_graphs([with_encoding])).last_hidden_state
        plain = model(**collate_tokenized_graphs([tokens])).last_hidden_state
    assert not torch.allclose(out, plain)
