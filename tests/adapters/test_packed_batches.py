"""Packed task batches (``TaskSampleEncoder.batches(pack=True)``) against the padded reference.

Packing puts several samples in one row; attention, positions and pooling stay per sample
through ``sequence_ids``, so every sample's output must equal the padded batch's (one sample per
row) up to float rounding, in values and in gradients, for graph and node tasks, on real molecules
and a real social graph.
"""

from __future__ import annotations

import pytest
import torch

from gfm.adapters.encoding import SamplingConfig, TaskSampleEncoder
from gfm.adapters.heads import load_pretrained_for_task
from gfm.adapters.task_data import build_task_items
from gfm.adapters.training import TrainingConfig, predict, train_task_model
from gfm.data.dataset import GraphDataset
from gfm.testing.checkpoints import save_tiny_checkpoint
from gfm.tokenization.tokenized_graph import TokenizedGraphError


@pytest.fixture(scope="module")
def molecules():
    """The first 160 molecules of at most 30 atoms in RDKit's NCI set (TPSA regression), split 120 / 20 / 20."""
    from gfm.data.registry import load

    full = load("packaged/nci5k")
    graphs = [graph for graph in full.graphs if graph.num_nodes <= 30][:160]
    splits = {"train": torch.arange(0, 120), "valid": torch.arange(120, 140), "test": torch.arange(140, 160)}
    return GraphDataset("test/nci160", "molecules", full.task, graphs, splits=splits)


@pytest.fixture(scope="module")
def molecule_checkpoint(tmp_path_factory, molecules):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("mol") / "tiny", molecules.graphs, max_position_embeddings=512)


@pytest.fixture(scope="module")
def karate_checkpoint(tmp_path_factory, karate):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("karate") / "tiny", karate.graphs)


def _positions(encoder, samples, batch_size, pack):
    return sum(batch["input_ids"].numel() for _, batch in encoder.batches(samples, batch_size, pack=pack))


def test_packed_graph_batches_equal_padded_on_real_molecules(molecule_checkpoint, molecules):
    model, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
    encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
    samples = encoder.graph_samples(molecules.graphs)
    lengths = torch.tensor([len(s) for s in samples])
    assert lengths.min() < lengths.max() / 3  # real molecules of very different sizes

    padded = predict(model, encoder, samples, batch_size=32, pack=False)
    packed = predict(model, encoder, samples, batch_size=32, pack=True)
    assert packed.shape == padded.shape == (len(samples), 1)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    # the same samples per batch, far fewer positions
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
    for (ids_a, batch_a), (ids_b, batch_b) in zip(
        encoder.batches(samples, 32, order, pack=False), encoder.batches(samples, 32, order, pack=True)
    ):
        assert ids_a == ids_b
        assert batch_b["input_ids"].shape[1] == model.config.max_position_embeddings
        assert int(batch_b["attention_mask"].sum()) == int(batch_a["attention_mask"].sum())
    padded_positions, packed_positions = (_positions(encoder, samples, 32, pack) for pack in (False, True))
    assert packed_positions < 0.8 * padded_positions, (packed_positions, padded_positions)


def test_packed_gradients_equal_padded(molecule_checkpoint, molecules):
    model, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
    encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
    samples = encoder.graph_samples(molecules.graphs[:40])
    targets = torch.stack([g.y.reshape(-1)[:1].float() for g in molecules.graphs[:40]])
    gradients = []
    for pack in (False, True):
        model.zero_grad(set_to_none=True)
        _, batch = next(encoder.batches(samples, 40, pack=pack))
        model(**batch, labels=targets).loss.backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys() and len(gradients[0]) > 10
    for name in gradients[0]:
        torch.testing.assert_close(gradients[1][name], gradients[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_packed_node_batches_equal_padded_on_karate(karate_checkpoint, karate):
    model, tokenizer = load_pretrained_for_task(karate_checkpoint, karate.task)
    encoder = TaskSampleEncoder(tokenizer, SamplingConfig(num_hops=2, max_neighbors=6),
                                max_length=model.config.max_position_embeddings)
    samples = encoder.node_samples(karate.graphs[0], torch.arange(int(karate.graphs[0].num_nodes)))
    _, batch = next(encoder.batches(samples, 34, pack=True))
    assert batch["input_ids"].shape[0] < 34  # several ego graphs share a row
    torch.testing.assert_close(predict(model, encoder, samples, 16, pack=True),
                               predict(model, encoder, samples, 16, pack=False), atol=1e-5, rtol=1e-5)


def test_training_with_packing_follows_the_padded_run(molecule_checkpoint, molecules):
    """Same seed, same samples per step: the loss curves and the selected test score agree."""
    outcomes = []
    for pack in (False, True):
        torch.manual_seed(0)  # the new head's initialization
        model, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
        encoder = TaskSampleEncoder(tokenizer, max_length=model.config.max_position_embeddings)
        items = build_task_items(molecules, encoder)
        config = TrainingConfig(epochs=2, batch_size=16, learning_rate=3e-3, pack_sequences=pack)
        outcomes.append(train_task_model(model, encoder, items, config, seed=0))
    padded, packed = outcomes
    assert len(padded.train_losses) == len(packed.train_losses) == 2 * 8
    torch.testing.assert_close(torch.tensor(packed.train_losses), torch.tensor(padded.train_losses), rtol=1e-3, atol=1e-4)
    assert padded.best_step == packed.best_step
    assert packed.test == pytest.approx(padded.test, rel=1e-3)


def test_a_sample_longer_than_the_row_is_refused_not_cut(molecule_checkpoint, molecules):
    _, tokenizer = load_pretrained_for_task(molecule_checkpoint, molecules.task)
    encoder = TaskSampleEncoder(tokenizer, max_length=512)
    samples = encoder.graph_samples(molecules.graphs[:8])
    longest = max(len(s) for s in samples)
    encoder.max_length = longest - 1
    with pytest.raises(TokenizedGraphError, match=rf"has {longest} tokens, more than max_length={longest - 1}.*never truncates"):
        next(encoder.batches(samples, 8, pack=True))
