"""A tiny gfm model overfits a handful of real molecules (Tox21), with each kind of token sequence."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gfm import (
    GFMConfig,
    GFMForGraphClassification,
    GFMForPretraining,
    TokenizedGraph,
    collate_tokenized_graphs,
)
from gfm.testing.modeling import tiny_gfm_config

NUM_MOLECULES = 8
BOS, MASK, ATOM_OFFSET = 1, 3, 8
BOND_TYPES = {1: 0, 2: 1, 3: 2, 12: 3}  # from_smiles bond type column: single, double, triple, aromatic


def tox21_molecules(data_dir) -> list[Data]:
    """The first molecules of MoleculeNet Tox21 (12 binary assays, NaN = not measured)."""
    try:
        from gfm.data import load
    except ImportError:  # the data layer's package export is not there yet
        from gfm.data.registry import load
    dataset = load("moleculenet/tox21", data_dir=data_dir, limit=NUM_MOLECULES)
    graphs = list(dataset.graphs[:NUM_MOLECULES])
    assert len(graphs) == NUM_MOLECULES
    return graphs


def hand_built_sequence(molecule: Data) -> TokenizedGraph:
    """``<bos>`` then one token per atom (its atomic number), bonds as typed position links."""
    atomic_number = molecule.x[:, 0].clamp(max=119)
    num_atoms = int(molecule.num_nodes)
    bond = molecule.edge_attr[:, 0].tolist()
    return TokenizedGraph(
        input_ids=torch.cat([torch.tensor([BOS]), ATOM_OFFSET + atomic_number]),
        node_index=torch.cat([torch.tensor([-1]), torch.arange(num_atoms)]),
        edge_index=molecule.edge_index + 1,
        edge_type=torch.tensor([BOND_TYPES.get(int(b), 4) for b in bond], dtype=torch.long),
        num_nodes=num_atoms,
    ).validate()


def masked_token_batch(sequences: list[TokenizedGraph], mask_token_id: int, pad_token_id: int) -> tuple[dict, torch.Tensor]:
    """Mask every 4th token after the first (fixed positions), labels only there."""
    batch = collate_tokenized_graphs(sequences, pad_token_id=pad_token_id)
    chosen = (batch["position_ids"] % 4 == 2) & (batch["attention_mask"] == 1)
    labels = torch.where(chosen, batch["input_ids"], torch.full_like(batch["input_ids"], -100))
    batch["input_ids"] = torch.where(chosen, torch.full_like(batch["input_ids"], mask_token_id), batch["input_ids"])
    return batch, labels


def train(model: torch.nn.Module, batch: dict, labels: torch.Tensor, steps: int, lr: float = 3e-3) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def small_config(vocab_size: int, **overrides) -> GFMConfig:
    """The tiny config with room to overfit a few molecules (hidden 64, long positions, 5 edge types)."""
    settings = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, max_position_embeddings=1024,
                    num_edge_types=5)
    settings.update(overrides)
    return tiny_gfm_config(**settings)


@pytest.mark.data
def test_overfits_hand_built_molecule_sequences(data_dir) -> None:
    torch.manual_seed(0)
    molecules = tox21_molecules(data_dir)
    sequences = [hand_built_sequence(m) for m in molecules]
    labels = torch.cat([m.y for m in molecules]).float()  # [8, 12] with NaN
    assert bool(torch.isnan(labels).any()), "the check needs missing labels"

    classifier = GFMForGraphClassification(
        small_config(128, num_labels=12, problem_type="multi_label_classification")
    )
    losses = train(classifier, collate_tokenized_graphs(sequences), labels, steps=120)
    assert losses[-1] < 0.02 < losses[0]

    pretraining = GFMForPretraining(small_config(128))
    batch, token_labels = masked_token_batch(sequences, MASK, pad_token_id=0)
    losses = train(pretraining, batch, token_labels, steps=150)
    assert losses[-1] < 0.05 and losses[0] > 2.0


@pytest.mark.data
def test_overfits_eulerian_tokenizer_sequences(data_dir) -> None:
    eulerian = pytest.importorskip("gfm.tokenization.eulerian", reason="EulerianTokenizer not available")
    torch.manual_seed(0)
    molecules = tox21_molecules(data_dir)[:4]  # Eulerian sequences are ~10x longer than hand-built ones
    tokenizer = eulerian.EulerianTokenizer.train(molecules)
    sequences = tokenizer.encode_batch(molecules)
    num_edge_types = int(max(int(s.edge_type.max()) for s in sequences if s.edge_type.numel())) + 1
    model = GFMForPretraining(
        small_config(
            tokenizer.vocab_size,
            num_edge_types=max(num_edge_types, 5),
            pad_token_id=tokenizer.pad_token_id,
            tokenizer_class=type(tokenizer).__name__,
            tokenizer_hash=tokenizer.content_hash,
        )
    )
    batch, labels = masked_token_batch(sequences, tokenizer.mask_token_id, tokenizer.pad_token_id)
    losses = train(model, batch, labels, steps=100)
    assert losses[-1] < 0.05 and losses[0] > 2.0


@pytest.mark.data
@pytest.mark.slow
def test_overfits_quantized_tokenizer_sequences(data_dir) -> None:
    quantized = pytest.importorskip("gfm.tokenization.quantized", reason="QuantizedTokenizer not available")
    torch.manual_seed(0)
    molecules = tox21_molecules(data_dir)
    tokenizer = quantized.QuantizedTokenizer.train(
        molecules, epochs=2, progress=False, codebook_size=16, num_levels=2, hidden_dim=32, code_dim=16
    )
    sequences = [tokenizer.encode(m) for m in molecules]
    assert all(s.level_ids is not None for s in sequences)
    num_levels = int(max(int(s.level_ids.max()) for s in sequences)) + 1
    feature_width = sequences[0].node_features.shape[1] if sequences[0].node_features is not None else 0
    labels = torch.cat([m.y for m in molecules]).float()
    model = GFMForGraphClassification(
        small_config(
            tokenizer.vocab_size,
            num_code_levels=num_levels,
            node_feature_dim=feature_width,
            num_labels=12,
            problem_type="multi_label_classification",
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    losses = train(model, collate_tokenized_graphs(sequences, pad_token_id=tokenizer.pad_token_id), labels, steps=150)
    assert losses[-1] < 0.02 < losses[0]
