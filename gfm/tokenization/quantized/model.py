"""The quantized tokenizer's network: GNN encoder, residual VQ and self-supervised heads.

:class:`GraphEncoder` maps shared input-space vectors (:mod:`gfm.tokenization.input_space`)
to latents; :class:`QuantizerNetwork` adds the residual codebook and the heads of the
self-supervised losses, each weighted and switchable (:class:`LossWeights`):

``reconstruction``
    Masked-feature reconstruction (GraphMAE): a fraction ``mask_rate`` of the loss nodes get a
    learned mask vector as input; their quantized latents are decoded back to the clean input
    vectors and scored with the scaled cosine error ``(1 - cos)^gamma``. The clean pass's
    quantized latents are also decoded (weight ``reconstruct_visible_weight``) so that the codes
    used at inference carry each node's own input.
``latent``
    Latent prediction: a predictor maps the masked pass's quantized latents of masked nodes to
    the latents an EMA copy of the encoder computes on the clean graph (scaled cosine error,
    stop-gradient target; BGRL / GraphMAE2 style).
``dgi``
    Deep Graph Infomax: a bilinear discriminator separates (node latent, graph summary) pairs
    of the clean graph from those of a corrupted graph whose input rows are shuffled.
``link``
    Link reconstruction from quantized latents: observed edges against random same-graph
    pairs (binary cross-entropy), so structure-only graphs still teach.
``commitment``
    The quantizer's commitment loss (sum over levels).

Codebook updates (EMA, dead-code reset) see only the clean pass, the distribution the codes
are computed on at inference; the masked pass quantizes with frozen codebooks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATv2Conv, GINConv

from .rvq import QuantizerOutput, ResidualCodebook

__all__ = ["GraphEncoder", "QuantizerNetwork", "TrainingBatch", "LossWeights", "scaled_cosine_error"]

LOSS_NAMES = ("reconstruction", "latent", "dgi", "link", "commitment")


def scaled_cosine_error(prediction: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean of ``(1 - cos(prediction_i, target_i)) ** gamma`` over rows (GraphMAE's SCE).

    Args:
        prediction / target: float ``[M, F]``. Rows of zeros count as cosine 0.
    """
    if prediction.shape[0] == 0:
        return prediction.sum() * 0.0
    cosine = F.cosine_similarity(prediction, target, dim=1, eps=1e-8)
    return (1.0 - cosine).clamp_min(0.0).pow(gamma).mean()


@dataclass
class LossWeights:
    """Weight of each self-supervised term; a weight of 0 switches the term off (not computed)."""

    reconstruction: float = 1.0
    latent: float = 1.0
    dgi: float = 0.5
    link: float = 0.5
    commitment: float = 1.0

    def enabled(self) -> list[str]:
        return [name for name in LOSS_NAMES if getattr(self, name) > 0]


@dataclass
class TrainingBatch:
    """One mini-batch: a disjoint union of whole small graphs and ego subgraphs of large ones.

    Attributes:
        x: float ``[N, D]`` shared input-space vectors.
        edge_index: int64 ``[2, E]`` (both directions of every edge).
        graph_ids: int64 ``[N]`` which source graph of the batch each node belongs to.
        loss_nodes: int64 ``[M]`` nodes the node-level losses and the quantizer see (all nodes
            of whole graphs, the seed nodes of ego subgraphs), sorted by ``graph_ids``.
        link_pairs: int64 ``[2, P]`` observed edges between loss nodes, as positions in
            ``loss_nodes``.
        num_graphs: number of source graphs in the batch.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    graph_ids: torch.Tensor
    loss_nodes: torch.Tensor
    link_pairs: torch.Tensor
    num_graphs: int


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))


class GraphEncoder(nn.Module):
    """Input projection, ``num_layers`` pre-norm residual GNN blocks, output projection.

    ``h <- h + dropout(GELU(conv(LayerNorm(h))))`` per block, with ``conv`` a PyG ``GINConv``
    (learned epsilon; ``aggr="mean"`` by default so neighbour caps of ego-subgraph sampling do
    not change a node's scale; the input space carries the degree) or ``GATv2Conv``. The output
    is layer-normalized so the quantizer sees latents of a stable scale.

    Args:
        input_dim: ``D`` (shared input space width).
        hidden_dim: ``H``.
        output_dim: latent width ``d``.
        num_layers: message-passing blocks (receptive field in hops).
        conv: ``"gin"`` or ``"gat"``.
        aggr: aggregation of ``GINConv`` (``"mean"``, ``"sum"``, ``"max"``).
        gat_heads: attention heads of ``GATv2Conv`` (``hidden_dim`` must divide by it).
        dropout: dropout after each block.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 128,
        output_dim: int = 64,
        num_layers: int = 3,
        conv: str = "gin",
        aggr: str = "mean",
        gat_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if conv not in ("gin", "gat"):
            raise ValueError(f"GraphEncoder: conv={conv!r}; use 'gin' or 'gat'")
        if conv == "gat" and hidden_dim % gat_heads:
            raise ValueError(
                f"GraphEncoder: hidden_dim={hidden_dim} must be divisible by gat_heads={gat_heads}"
            )
        self.num_layers = num_layers
        self.input_projection = nn.Linear(input_dim, hidden_dim)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(num_layers))
        if conv == "gin":
            self.convs = nn.ModuleList(
                GINConv(_mlp(hidden_dim, hidden_dim, hidden_dim), train_eps=True, aggr=aggr)
                for _ in range(num_layers)
            )
        else:
            self.convs = nn.ModuleList(
                GATv2Conv(hidden_dim, hidden_dim // gat_heads, heads=gat_heads) for _ in range(num_layers)
            )
        self.dropout = nn.Dropout(dropout)
        self.output_norm = nn.LayerNorm(hidden_dim)
        self.output_projection = nn.Linear(hidden_dim, output_dim)
        self.latent_norm = nn.LayerNorm(output_dim, elementwise_affine=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``x`` float ``[N, D]``, ``edge_index`` int64 ``[2, E]`` -> latents float ``[N, d]``."""
        h = self.input_projection(x)
        for norm, conv in zip(self.norms, self.convs):
            h = h + self.dropout(F.gelu(conv(norm(h), edge_index)))
        return self.latent_norm(self.output_projection(self.output_norm(h)))


class QuantizerNetwork(nn.Module):
    """Encoder + residual codebook + the heads of the self-supervised losses.

    Only :attr:`encoder` and :attr:`quantizer` determine the codes; the heads and the EMA
    target encoder exist for training.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 128,
        code_dim: int = 64,
        num_layers: int = 3,
        conv: str = "gin",
        aggr: str = "mean",
        gat_heads: int = 4,
        dropout: float = 0.1,
        num_levels: int = 3,
        codebook_size: int = 256,
        codebook_decay: float = 0.8,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 2.0,
        use_cosine_sim: bool = False,
        commitment_weight: float = 0.25,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.code_dim = code_dim
        self.encoder = GraphEncoder(
            input_dim, hidden_dim, code_dim, num_layers, conv, aggr, gat_heads, dropout
        )
        self.quantizer = ResidualCodebook(
            code_dim,
            num_levels=num_levels,
            codebook_size=codebook_size,
            decay=codebook_decay,
            kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,
            use_cosine_sim=use_cosine_sim,
            commitment_weight=commitment_weight,
        )
        self.mask_vector = nn.Parameter(torch.zeros(input_dim))
        self.decoder = _mlp(code_dim, hidden_dim, input_dim)
        self.predictor = _mlp(code_dim, hidden_dim, code_dim)
        self.link_projection = nn.Linear(code_dim, code_dim)
        self.dgi_weight = nn.Parameter(torch.empty(code_dim, code_dim))
        nn.init.xavier_uniform_(self.dgi_weight)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)

    # -- inference --------------------------------------------------------------------------
    def inference_state_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes that determine the codes (hashed into the tokenizer identity)."""
        return ("encoder.", "quantizer.")

    @torch.no_grad()
    def latents(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Eval-mode latents ``[N, d]``."""
        was_training = self.training
        self.eval()
        try:
            return self.encoder(x, edge_index)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def codes(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Eval-mode codes int64 ``[N, L]`` of every node of a graph."""
        return self.quantizer.encode(self.latents(x, edge_index))

    # -- training ---------------------------------------------------------------------------
    @torch.no_grad()
    def update_target(self, decay: float) -> None:
        """EMA step of the target encoder towards the online encoder."""
        for target, online in zip(self.target_encoder.parameters(), self.encoder.parameters()):
            target.mul_(decay).add_(online.detach(), alpha=1.0 - decay)
        for target, online in zip(self.target_encoder.buffers(), self.encoder.buffers()):
            target.copy_(online)

    def _quantize(self, latents: torch.Tensor, quantize: bool, update: bool) -> QuantizerOutput:
        if not quantize:
            levels = self.quantizer.num_levels
            return QuantizerOutput(
                latents, torch.zeros(latents.shape[0], levels, dtype=torch.long), latents.new_zeros(levels)
            )
        return self.quantizer(latents, update=update)

    def training_losses(
        self,
        batch: TrainingBatch,
        weights: LossWeights,
        generator: torch.Generator,
        quantize: bool = True,
        mask_rate: float = 0.3,
        sce_gamma: float = 2.0,
        reconstruct_visible_weight: float = 0.5,
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """Weighted sum of the enabled losses on one batch.

        Args:
            batch: see :class:`TrainingBatch`.
            weights: per-term weights (0 = off).
            generator: the source of every random choice (masks, corruption, negatives).
            quantize: ``False`` during warm-up (latents pass through unquantized).
            mask_rate: fraction of loss nodes masked for reconstruction / latent prediction.
            sce_gamma: exponent of the scaled cosine error.
            reconstruct_visible_weight: weight of decoding the clean pass's codes.

        Returns:
            ``(total loss, {term: value}, codes [M, L] of the clean pass)``.
        """
        x, edge_index, loss_nodes = batch.x, batch.edge_index, batch.loss_nodes
        terms: dict[str, torch.Tensor] = {}
        enabled = set(weights.enabled())
        num_loss = loss_nodes.numel()

        clean_latents = self.encoder(x, edge_index)[loss_nodes]
        clean = self._quantize(clean_latents, quantize, update=True)
        if "commitment" in enabled and quantize:
            terms["commitment"] = clean.commitment.sum()

        masked_local = torch.rand(num_loss, generator=generator) < mask_rate
        if num_loss and not bool(masked_local.any()):
            masked_local[torch.randint(num_loss, (1,), generator=generator)] = True
        if {"reconstruction", "latent"} & enabled:
            masked_nodes = loss_nodes[masked_local]
            masked_x = x.clone()
            masked_x[masked_nodes] = self.mask_vector.to(x.dtype)
            masked = self._quantize(self.encoder(masked_x, edge_index)[loss_nodes], quantize, update=False)
            if "reconstruction" in enabled:
                loss = scaled_cosine_error(
                    self.decoder(masked.quantized[masked_local]), x[masked_nodes], sce_gamma
                )
                if reconstruct_visible_weight > 0:
                    loss = loss + reconstruct_visible_weight * scaled_cosine_error(
                        self.decoder(clean.quantized), x[loss_nodes], sce_gamma
                    )
                terms["reconstruction"] = loss
            if "latent" in enabled:
                with torch.no_grad():
                    self.target_encoder.eval()  # targets without dropout
                    target = self.target_encoder(x, edge_index)[masked_nodes]
                prediction = self.predictor(masked.quantized[masked_local])
                terms["latent"] = scaled_cosine_error(prediction, target, sce_gamma)

        graph_ids = batch.graph_ids[loss_nodes]
        if "dgi" in enabled:
            permutation = torch.randperm(x.shape[0], generator=generator)
            corrupted_latents = self.encoder(x[permutation], edge_index)[loss_nodes]
            sums = clean_latents.new_zeros(batch.num_graphs, clean_latents.shape[1]).index_add_(
                0, graph_ids, clean_latents
            )
            counts = torch.bincount(graph_ids, minlength=batch.num_graphs).clamp_min(1).unsqueeze(1)
            summary = torch.sigmoid(sums / counts)[graph_ids]
            positive = ((clean_latents @ self.dgi_weight) * summary).sum(dim=1)
            negative = ((corrupted_latents @ self.dgi_weight) * summary).sum(dim=1)
            terms["dgi"] = F.binary_cross_entropy_with_logits(
                torch.cat([positive, negative]),
                torch.cat([torch.ones_like(positive), torch.zeros_like(negative)]),
            )

        if "link" in enabled and batch.link_pairs.shape[1] > 0:
            pairs = batch.link_pairs
            # Negatives: the same sources paired with random loss nodes of their own graph.
            counts = torch.bincount(graph_ids, minlength=batch.num_graphs)
            starts = torch.cumsum(counts, 0) - counts
            source_graph = graph_ids[pairs[0]]
            offsets = (torch.rand(pairs.shape[1], generator=generator) * counts[source_graph]).long()
            negatives = starts[source_graph] + offsets.clamp_max(counts[source_graph] - 1)
            projected = self.link_projection(clean.quantized)
            scale = projected.shape[1] ** -0.5
            positive = (projected[pairs[0]] * projected[pairs[1]]).sum(dim=1) * scale
            negative = (projected[pairs[0]] * projected[negatives]).sum(dim=1) * scale
            terms["link"] = F.binary_cross_entropy_with_logits(
                torch.cat([positive, negative]),
                torch.cat([torch.ones_like(positive), torch.zeros_like(negative)]),
            )

        total = sum((getattr(weights, name) * value for name, value in terms.items()), x.new_zeros(()))
        return total, {name: float(value.detach()) for name, value in terms.items()}, clean.codes
