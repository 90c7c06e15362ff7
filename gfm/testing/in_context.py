"""Small builders the in-context few-shot tests share: seeded block-model graphs, a tiny episodic run."""

from __future__ import annotations

from pathlib import Path

import torch
from torch_geometric.data import Data

from gfm.modeling.in_context import InContextConfig, prepare_graph
from gfm.training.episodes import EpisodeGraph, FewshotPretrainConfig, _pseudo_labellings

__all__ = ["block_model_graph", "tiny_fewshot_config", "small_model_config", "episode_graphs"]


def block_model_graph(num_classes: int, per_class: int, seed: int, homophily: bool = True,
                      features: int = 12, noise: float = 1.5) -> tuple[Data, torch.Tensor]:
    """A seeded stochastic block model with noisy class-mean features; returns ``(graph, labels [N])``.

    ``homophily``: edges mostly inside classes (0.25 vs 0.02), else mostly across (0.02 vs 0.12).
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    n = labels.numel()
    same = labels[:, None] == labels[None, :]
    inside, across = (0.25, 0.02) if homophily else (0.02, 0.12)
    probability = torch.where(same, torch.tensor(inside), torch.tensor(across))
    upper = torch.triu(torch.rand(n, n, generator=generator) < probability, diagonal=1)
    means = torch.randn(num_classes, features, generator=generator)
    x = means[labels] + noise * torch.randn(n, features, generator=generator)
    return Data(edge_index=(upper | upper.T).nonzero().T.contiguous(), num_nodes=n, x=x), labels


def tiny_fewshot_config(tmp_path: Path, **overrides) -> FewshotPretrainConfig:
    """A run of 60 steps of two small episodes each, one checkpoint every 20 steps."""
    settings = dict(datasets=["synthetic/a", "synthetic/b"], output_dir=str(Path(tmp_path) / "run"), max_steps=60,
                    episodes_per_step=2, learning_rate=3e-3, warmup_steps=5, max_classes=5, max_k=10,
                    num_queries=32, hidden_size=32, num_layers=1, num_heads=4, eval_every=0, checkpoint_every=20,
                    log_every=0, ssl_clusterings=2)
    settings.update(overrides)
    return FewshotPretrainConfig(**settings)


def small_model_config(config: FewshotPretrainConfig) -> InContextConfig:
    """``config``'s model with narrow node inputs (fast on small graphs)."""
    model_config = config.model_config()
    model_config.node_inputs.update(structure_dim=8, continuous_width=8, categorical_width=4, evidence_feature_rank=16,
                                    evidence_structure_rank=16)
    return model_config


def episode_graphs(config: FewshotPretrainConfig) -> list[EpisodeGraph]:
    """Two block-model graphs (one homophilous, one heterophilous), each with and without features."""
    model_config = small_model_config(config)
    graphs = []
    for index, (classes, homophily) in enumerate([(5, True), (4, False)]):
        data, labels = block_model_graph(classes, 30, seed=index, homophily=homophily)
        for use_features in (True, False):
            prepared = prepare_graph(data, use_features, model_config, f"synthetic/{index}{use_features}")
            graphs.append(EpisodeGraph(prepared.name, prepared, labels, _pseudo_labellings(prepared, 2, index)))
    return graphs
