"""In-context few-shot node classification: a model that reads the support set, no gradient step.

Design (GraphAny's closed-form channels + a PRODIGY-like episode transformer):

1. **Whole graph, once** (label-free, :mod:`gfm.tokenization.node_inputs`): the universal node
   vectors ``[N, D]`` and ``M`` evidence channels (``B, ÂB, Â²B, (I-Â)B, (I-Â)²B`` for a feature
   base and a spectral base, plus the role block), :class:`PreparedGraph`.
2. **Evidence, per episode** (:func:`episode_evidence`, no parameter): for every variant ``v`` —
   a ridge regression from each channel to the one-hot support labels at each of
   ``ridge_strengths`` (closed form, dual), the cosine to each class's prototype in each channel,
   and label propagation of the support labels over ``Â`` — a score ``s_v(q, c)`` for every query
   ``q`` and class ``c``. Each is centred over classes and divided by a scale measured on the
   support set only, so a query's evidence never depends on the other queries. Each variant also
   gets a **descriptor** from closed-form leave-one-out predictions on the support set (LOO
   accuracy, its gap to the best variant, the LOO margin): how well that channel explains the
   labels of *this* graph.
3. **Episode transformer** (:class:`InContextModel`): tokens are ``C`` class tokens (the mean of
   their support nodes' embeddings: no identity of their own), ``S`` support tokens (node
   embedding + its class token) and ``Q`` query tokens. Context tokens (classes and supports)
   attend to each other; each query attends to the context and to itself only, so queries are
   independent (the batched path equals a loop over queries, :meth:`InContextModel.forward_reference`).
4. **Class logits, one function shared across classes**: ``logit(q, c) = tau * sum_v a_v z_v(q, c)
   + g(h_q, h_c, z(q, c))`` where ``a = softmax_v(f(descriptor_v, variant embedding))`` is a learned
   attention over channels computed from the support set alone (GraphAny's idea, width- and
   class-order-free), and ``g`` a small MLP of the query and class tokens and of the evidence
   vector. No term sees a class id, so renaming or reordering classes only permutes the score
   columns, and any number of classes works.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data
from transformers import PretrainedConfig, PreTrainedModel

from gfm.tokenization.node_inputs import (
    EVIDENCE_CHANNELS,
    NodeInputConfig,
    evidence_channels,
    normalized_adjacency_csr,
    universal_node_inputs,
)
from gfm.utils.errors import GFMError

__all__ = [
    "InContextError",
    "InContextConfig",
    "PreparedGraph",
    "prepare_graph",
    "Evidence",
    "episode_evidence",
    "InContextOutput",
    "InContextModel",
    "variant_names",
]

logger = logging.getLogger(__name__)

#: descriptor columns of a variant: LOO accuracy, gap to the best variant, LOO margin, available
NUM_DESCRIPTORS = 4


class InContextError(GFMError, ValueError):
    """Bad episode input: support labels, classes, node ids; the message names the field and the fix."""


class InContextConfig(PretrainedConfig):
    r"""Configuration of :class:`InContextModel`.

    Args:
        node_inputs: :class:`~gfm.tokenization.node_inputs.NodeInputConfig` as a dict.
        hidden_size / num_layers / num_heads / mlp_ratio: the episode transformer.
        ridge_strengths: ridge strengths (fraction of the support Gram's trace / n) of the ridge variants.
        propagation_steps / propagation_alpha: label propagation ``Y <- alpha Â Y + (1 - alpha) Y0``.
        propagation_probes: supports whose exact leave-one-out propagation describes the propagation variant.
        evidence_temperature: initial ``tau`` of the channel-attention term.
        selection_sharpness: initial weight of a variant's leave-one-out accuracy gap to the best variant in its
            attention score (at initialization the attention is a soft leave-one-out selection, as the
            linear-GNN control's hard one); learned. 0 disables the prior.
        pair_term: add the learned pair function ``g`` of query and class tokens (off: channel attention only).
    """

    model_type = "gfm_in_context"

    def __init__(
        self,
        node_inputs: dict | None = None,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_ratio: int = 2,
        ridge_strengths: list[float] | tuple[float, ...] = (0.01, 0.1, 1.0),
        propagation_steps: int = 10,
        propagation_alpha: float = 0.9,
        propagation_probes: int = 48,
        evidence_temperature: float = 2.0,
        selection_sharpness: float = 20.0,
        pair_term: bool = True,
        initializer_range: float = 0.02,
        **kwargs,
    ) -> None:
        self.node_inputs = dict(node_inputs or NodeInputConfig().to_dict())
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.mlp_ratio = int(mlp_ratio)
        self.ridge_strengths = [float(s) for s in ridge_strengths]
        self.propagation_steps = int(propagation_steps)
        self.propagation_alpha = float(propagation_alpha)
        self.propagation_probes = int(propagation_probes)
        self.evidence_temperature = float(evidence_temperature)
        self.selection_sharpness = float(selection_sharpness)
        self.pair_term = bool(pair_term)
        self.initializer_range = float(initializer_range)
        if self.hidden_size % self.num_heads:
            raise InContextError(f"InContextConfig: hidden_size={self.hidden_size} is not divisible by num_heads="
                                 f"{self.num_heads}; pick a multiple")
        super().__init__(**kwargs)

    def node_input_config(self) -> NodeInputConfig:
        return NodeInputConfig(**self.node_inputs)

    @property
    def node_input_dim(self) -> int:
        return self.node_input_config().output_dim

    @property
    def num_variants(self) -> int:
        return len(variant_names(self))


def variant_names(config: InContextConfig) -> list[str]:
    """Names of the evidence variants, in the order of the evidence tensors' last axis."""
    names = [f"ridge{s:g}:{c}" for c in EVIDENCE_CHANNELS for s in config.ridge_strengths]
    names += [f"proto:{c}" for c in EVIDENCE_CHANNELS]
    return names + ["label_propagation"]


@dataclass
class PreparedGraph:
    """What the model needs of one graph, computed once under an access level.

    Attributes:
        vectors: float32 ``[N, D]`` universal node vectors.
        channels: ``{channel: [N, F]}`` evidence channels present (:data:`EVIDENCE_CHANNELS` subset).
        adjacency: sparse CSR ``[N, N]`` ``Â``.
        has_features: the feature channels exist.
        name: the graph in messages.
    """

    vectors: torch.Tensor
    channels: dict[str, torch.Tensor]
    adjacency: torch.Tensor
    has_features: bool
    name: str = "graph"

    @property
    def num_nodes(self) -> int:
        return int(self.vectors.shape[0])


def prepare_graph(graph: Data, use_features: bool, config: InContextConfig, name: str = "graph") -> PreparedGraph:
    """Node vectors, evidence channels and ``Â`` of ``graph`` (label-free; reuse across support draws)."""
    node_config = config.node_input_config()
    inputs = universal_node_inputs(graph, use_features, node_config, name)
    adjacency = normalized_adjacency_csr(graph)
    roles = inputs.vectors[:, inputs.slices["roles"]]
    channels = evidence_channels(graph, use_features, node_config, adjacency=adjacency, roles=roles)
    return PreparedGraph(inputs.vectors, channels, adjacency, "feat:X" in channels, name)


@dataclass
class Evidence:
    """Per-episode evidence.

    Attributes:
        query: float32 ``[Q, C, V]`` standardized scores ``z_v(q, c)`` (0 for unavailable variants).
        descriptors: float32 ``[V, NUM_DESCRIPTORS]``.
        mask: bool ``[V]`` variant available (its channel exists in this graph).
    """

    query: torch.Tensor
    descriptors: torch.Tensor
    mask: torch.Tensor


def check_episode(num_nodes: int, support_index: torch.Tensor, support_labels: torch.Tensor,
                  query_index: torch.Tensor, num_classes: int, name: str) -> None:
    """Raise :class:`InContextError` naming the field and the fix for a malformed episode."""
    if support_index.shape != support_labels.shape or support_index.dim() != 1:
        raise InContextError(f"{name}: support_index {tuple(support_index.shape)} and support_labels "
                             f"{tuple(support_labels.shape)} must be two [S] vectors; pass one label per support node")
    for field, index in (("support_index", support_index), ("query_index", query_index)):
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_nodes):
            raise InContextError(f"{name}: {field} holds node {int(index.max()) if int(index.max()) >= num_nodes else int(index.min())} "
                                 f"outside the graph's {num_nodes} nodes (ids 0..{num_nodes - 1}); pass nodes of this graph")
    if num_classes < 2:
        raise InContextError(f"{name}: {num_classes} class(es); in-context classification needs at least two "
                             "(with one, every node gets it): evaluate a task with two or more classes")
    if support_labels.numel() and (int(support_labels.min()) < 0 or int(support_labels.max()) >= num_classes):
        raise InContextError(f"{name}: support_labels must be class ids 0..{num_classes - 1}, got "
                             f"{sorted(set(support_labels.tolist()))[:8]}; relabel the support set compactly")
    counts = torch.bincount(support_labels, minlength=num_classes)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().view(-1).tolist()
        raise InContextError(f"{name}: class(es) {missing} of 0..{num_classes - 1} have no support node, so the model "
                             "cannot build their class token; give every class at least one labelled node or drop "
                             "the class from the task")


def _ridge_variants(matrix: torch.Tensor, support_index: torch.Tensor, targets: torch.Tensor,
                    query_index: torch.Tensor, strengths: list[float]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Query scores ``[Q, C]`` and LOO support predictions ``[S, C]`` of ridge fits at each strength (float64)."""
    support = matrix[support_index].double()
    mean = support.mean(dim=0)
    centred = support - mean
    target_mean = targets.mean(dim=0)
    targets_c = targets - target_mean
    gram = centred @ centred.T
    values, vectors = torch.linalg.eigh(gram)
    values = values.clamp(min=0)
    cross = (matrix[query_index].double() - mean) @ centred.T  # [Q, S]
    n = support.shape[0]
    trace = float(values.sum()) / max(n, 1)
    queries, loos = [], []
    projected = vectors.T @ targets_c
    for strength in strengths:
        penalty = strength * trace + 1e-12
        alpha = vectors @ (projected / (values + penalty)[:, None])
        queries.append(cross @ alpha + target_mean)
        smoother = (vectors * (values / (values + penalty))) @ vectors.T + 1.0 / n
        fitted = smoother @ targets
        leverage = smoother.diagonal().clamp(max=1 - 1e-9)
        loos.append(targets - (targets - fitted) / (1 - leverage)[:, None])
    return queries, loos


def _prototype_variant(matrix: torch.Tensor, support_index: torch.Tensor, support_labels: torch.Tensor,
                       query_index: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine to class prototypes: query scores ``[Q, C]`` and leave-one-out support scores ``[S, C]``."""
    rows = F.normalize(matrix[support_index].double(), dim=1)
    sums = torch.zeros(num_classes, rows.shape[1], dtype=torch.float64).index_add_(0, support_labels, rows)
    counts = torch.bincount(support_labels, minlength=num_classes).double()
    queries = F.normalize(matrix[query_index].double(), dim=1) @ F.normalize(sums, dim=1).T
    # leave one out: the own class's prototype without the node itself (no prototype left: score 0)
    loo = rows @ F.normalize(sums, dim=1).T
    own = sums[support_labels] - rows
    own_score = (rows * F.normalize(own, dim=1)).sum(dim=1)
    own_score = torch.where(counts[support_labels] > 1, own_score, torch.zeros_like(own_score))
    loo[torch.arange(rows.shape[0]), support_labels] = own_score
    return queries, loo


def _propagate(adjacency: torch.Tensor, seeds: torch.Tensor, steps: int, alpha: float) -> torch.Tensor:
    """``Y <- alpha Â Y + (1 - alpha) Y0`` for ``steps`` steps from ``Y0 = seeds`` ``[N, C]``."""
    out = seeds
    for _ in range(steps):
        out = alpha * (adjacency @ out) + (1 - alpha) * seeds
    return out


def _probe_order(support_index: torch.Tensor) -> torch.Tensor:
    """A fixed pseudo-random order of the supports from their node ids only (never labels or input order)."""
    keys = (support_index * 2654435761 + 97) % 2147483647
    return torch.argsort(keys * (support_index.max() + 1) + support_index)


def _propagation_variant(graph: PreparedGraph, support_index: torch.Tensor, targets: torch.Tensor,
                         query_index: torch.Tensor, steps: int, alpha: float,
                         probes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Label propagation read at the queries ``[Q, C]``, and exact leave-one-out predictions at up to ``probes``
    supports ``[P, C]`` with their positions ``[P]``.

    Propagation is linear in the seeds, so the prediction for support ``i`` from the other supports is
    ``Y_i - P_ii y_i`` with ``P_ii`` the mass its own seed sends back to it; ``P_ii`` is computed exactly by
    propagating the indicator of each probed support (cost ``probes`` propagations, so a subset chosen from
    the node ids alone stands for the support set on large ones)."""
    adjacency = graph.adjacency
    seeds = torch.zeros(adjacency.shape[0], targets.shape[1])
    seeds[support_index] = targets.float()
    out = _propagate(adjacency, seeds, steps, alpha)
    chosen = _probe_order(support_index)[:probes]
    indicator = torch.zeros(adjacency.shape[0], chosen.numel())
    indicator[support_index[chosen], torch.arange(chosen.numel())] = 1.0
    own = _propagate(adjacency, indicator, steps, alpha)[support_index[chosen], torch.arange(chosen.numel())]
    loo = out[support_index[chosen]].double() - own.double()[:, None] * targets[chosen]
    return out[query_index].double(), loo, chosen


def _standardize(query: torch.Tensor, loo: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``loo`` ``[S', C]`` holds leave-one-out predictions of the supports whose classes are ``labels`` ``[S']``."""
    """Centre over classes, scale by the support set's LOO spread; descriptor of the variant."""
    loo_c = loo - loo.mean(dim=1, keepdim=True)
    scale = loo_c.pow(2).mean().sqrt().clamp(min=1e-6)
    z = (query - query.mean(dim=1, keepdim=True)) / scale
    z_loo = loo_c / scale
    rows = torch.arange(loo.shape[0])
    own = z_loo[rows, labels]
    other = z_loo.clone()
    other[rows, labels] = -math.inf
    accuracy = (loo.argmax(dim=1) == labels).double().mean()
    margin = (own - other.max(dim=1).values).clamp(-5, 5).mean()
    return z.clamp(-10, 10), torch.stack([accuracy, margin])


def episode_evidence(graph: PreparedGraph, support_index: torch.Tensor, support_labels: torch.Tensor,
                     query_index: torch.Tensor, num_classes: int, config: InContextConfig) -> Evidence:
    """The parameter-free evidence of one episode (see the module docstring), variants in :func:`variant_names` order.

    Args:
        graph: :func:`prepare_graph` output.
        support_index / support_labels: int64 ``[S]`` labelled nodes and their classes ``0..C-1``.
        query_index: int64 ``[Q]`` nodes to score.
        num_classes: ``C``.
    """
    support_index = torch.as_tensor(support_index, dtype=torch.long).view(-1)
    support_labels = torch.as_tensor(support_labels, dtype=torch.long).view(-1)
    query_index = torch.as_tensor(query_index, dtype=torch.long).view(-1)
    check_episode(graph.num_nodes, support_index, support_labels, query_index, num_classes, graph.name)
    targets = F.one_hot(support_labels, num_classes).double()
    num_query = query_index.numel()
    strengths = config.ridge_strengths
    scores, descriptors, mask = [], [], []

    def add(query: torch.Tensor | None, loo: torch.Tensor | None) -> None:
        if query is None:
            scores.append(torch.zeros(num_query, num_classes, dtype=torch.float64))
            descriptors.append(torch.zeros(2, dtype=torch.float64))
            mask.append(False)
            return
        z, stats = _standardize(query, loo, support_labels)
        scores.append(z)
        descriptors.append(stats)
        mask.append(True)

    for channel in EVIDENCE_CHANNELS:
        matrix = graph.channels.get(channel)
        if matrix is None:
            for _ in strengths:
                add(None, None)
            continue
        for query, loo in zip(*_ridge_variants(matrix, support_index, targets, query_index, strengths)):
            add(query, loo)
    for channel in EVIDENCE_CHANNELS:
        matrix = graph.channels.get(channel)
        add(*(_prototype_variant(matrix, support_index, support_labels, query_index, num_classes)
              if matrix is not None else (None, None)))
    query, loo, probed = _propagation_variant(graph, support_index, targets, query_index, config.propagation_steps,
                                              config.propagation_alpha, config.propagation_probes)
    z, stats = _standardize(query, loo, support_labels[probed])
    scores.append(z)
    descriptors.append(stats)
    mask.append(True)
    mask_t = torch.tensor(mask)
    stats = torch.stack(descriptors)  # [V, 2]: accuracy, margin
    best = stats[mask_t, 0].max() if mask_t.any() else torch.tensor(0.0, dtype=torch.float64)
    desc = torch.stack([stats[:, 0], stats[:, 0] - best, stats[:, 1], mask_t.double()], dim=1)
    desc[~mask_t] = 0
    return Evidence(query=torch.stack(scores, dim=2).float(), descriptors=desc.float(), mask=mask_t)


@dataclass
class InContextOutput:
    """``logits`` float ``[Q, C]``; ``loss`` (cross-entropy, when labels were given); ``variant_weights`` ``[V]``."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    variant_weights: torch.Tensor | None = None


class _Block(nn.Module):
    """Pre-norm attention + MLP; context attends to context, each query to the context and itself."""

    def __init__(self, hidden: int, heads: int, ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, ratio * hidden), nn.GELU(), nn.Linear(ratio * hidden, hidden))

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        shape = (x.shape[0], self.heads, x.shape[1] // self.heads)
        return q.reshape(shape).transpose(0, 1), k.reshape(shape).transpose(0, 1), v.reshape(shape).transpose(0, 1)

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = x + self.out(attended.transpose(0, 1).reshape(x.shape[0], -1))
        return x + self.mlp(self.norm2(x))

    def update_context(self, context: torch.Tensor) -> torch.Tensor:
        """Context tokens ``[T, H]`` attending to each other (full attention, no order)."""
        cq, ck, cv = self._split(context)  # [h, T, d]
        return self._finish(context, torch.softmax(cq @ ck.transpose(1, 2) * cq.shape[-1] ** -0.5, dim=-1) @ cv)

    def forward(self, context: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``context`` ``[T, H]``, ``queries`` ``[Q, H]`` -> the same shapes (batched path)."""
        _, ck, cv = self._split(context)  # [h, T, d]
        scale = ck.shape[-1] ** -0.5
        new_context = self.update_context(context)
        qq, qk, qv = self._split(queries)  # [h, Q, d]
        to_context = qq @ ck.transpose(1, 2) * scale  # [h, Q, T]
        to_self = (qq * qk).sum(dim=-1, keepdim=True) * scale  # [h, Q, 1]
        weights = torch.softmax(torch.cat([to_context, to_self], dim=-1), dim=-1)
        attended = weights[..., :-1] @ cv + weights[..., -1:] * qv
        return new_context, self._finish(queries, attended)

    def forward_one_query(self, context: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Reference for one query ``[1, H]``: plain attention over the keys ``[context; query]``."""
        keys_from = torch.cat([context, query], dim=0)
        _, k, v = self._split(keys_from)
        q, _, _ = self._split(query)
        weights = torch.softmax(q @ k.transpose(1, 2) * q.shape[-1] ** -0.5, dim=-1)
        return self._finish(query, weights @ v)


class InContextModel(PreTrainedModel):
    """The in-context few-shot classifier (see the module docstring); saved and loaded as any gfm model."""

    config_class = InContextConfig
    base_model_prefix = "in_context"
    main_input_name = "query_vectors"

    def __init__(self, config: InContextConfig) -> None:
        super().__init__(config)
        hidden, variants = config.hidden_size, config.num_variants
        self.node_in = nn.Sequential(nn.Linear(config.node_input_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.class_in = nn.Linear(hidden, hidden)
        self.label_in = nn.Linear(hidden, hidden)
        self.type_embedding = nn.Embedding(3, hidden)  # class, support, query
        self.blocks = nn.ModuleList(_Block(hidden, config.num_heads, config.mlp_ratio) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(hidden)
        self.variant_embedding = nn.Embedding(variants, hidden)
        self.variant_score = nn.Sequential(nn.Linear(NUM_DESCRIPTORS + hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.query_proj = nn.Linear(hidden, hidden)
        self.class_proj = nn.Linear(hidden, hidden)
        self.pair = nn.Sequential(nn.Linear(hidden + variants, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(config.evidence_temperature)))
        self.sharpness = nn.Parameter(torch.tensor(float(config.selection_sharpness)))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, self.config.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, self.config.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    # ---------------------------------------------------------------------------------------
    def _context(self, support_vectors: torch.Tensor, support_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Context tokens ``[C + S, H]``: class tokens (mean of their supports) then support tokens."""
        support = self.node_in(support_vectors)
        counts = torch.bincount(support_labels, minlength=num_classes).clamp(min=1).to(support.dtype)
        means = torch.zeros(num_classes, support.shape[1], dtype=support.dtype).index_add(0, support_labels, support)
        classes = self.class_in(means / counts[:, None]) + self.type_embedding.weight[0]
        supports = support + self.label_in(classes[support_labels]) + self.type_embedding.weight[1]
        return torch.cat([classes, supports], dim=0)

    def _variant_weights(self, evidence: Evidence) -> torch.Tensor:
        features = torch.cat([evidence.descriptors, self.variant_embedding.weight], dim=1)
        raw = self.variant_score(features).squeeze(-1) + self.sharpness * evidence.descriptors[:, 1]
        return torch.softmax(raw.masked_fill(~evidence.mask, -1e9), dim=0)

    def _logits(self, queries: torch.Tensor, classes: torch.Tensor, evidence: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        """``[Q, C]`` from query tokens ``[Q, H]``, class tokens ``[C, H]``, evidence ``[Q, C, V]``."""
        pair = self.query_proj(queries)[:, None, :] * self.class_proj(classes)[None, :, :]
        learned = self.pair(torch.cat([pair, evidence], dim=-1)).squeeze(-1) * float(self.config.pair_term)
        return self.log_temperature.exp() * (evidence @ weights) + learned

    def forward(self, support_vectors: torch.Tensor, support_labels: torch.Tensor, query_vectors: torch.Tensor,
                evidence: Evidence, num_classes: int, labels: torch.Tensor | None = None) -> InContextOutput:
        """Class scores of the queries (batched path).

        Args:
            support_vectors: float ``[S, D]`` node vectors of the supports.
            support_labels: int64 ``[S]`` in ``0..C-1`` (every class present).
            query_vectors: float ``[Q, D]``.
            evidence: :func:`episode_evidence` for these supports and queries.
            num_classes: ``C``.
            labels: optional int64 ``[Q]`` query classes for the cross-entropy loss.

        Returns:
            :class:`InContextOutput` with ``logits`` ``[Q, C]``.
        """
        context = self._context(support_vectors, support_labels, num_classes)
        queries = self.node_in(query_vectors) + self.type_embedding.weight[2]
        for block in self.blocks:
            context, queries = block(context, queries)
        context, queries = self.final_norm(context), self.final_norm(queries)
        weights = self._variant_weights(evidence)
        logits = self._logits(queries, context[:num_classes], evidence.query, weights)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return InContextOutput(logits=logits, loss=loss, variant_weights=weights)

    @torch.no_grad()
    def forward_reference(self, support_vectors: torch.Tensor, support_labels: torch.Tensor,
                          query_vectors: torch.Tensor, evidence: Evidence, num_classes: int) -> torch.Tensor:
        """The slow obvious path: one query at a time, each through every layer; ``[Q, C]`` logits."""
        context0 = self._context(support_vectors, support_labels, num_classes)
        contexts = [context0]
        for block in self.blocks:
            contexts.append(block.update_context(contexts[-1]))
        weights = self._variant_weights(evidence)
        rows = []
        for q in range(query_vectors.shape[0]):
            token = self.node_in(query_vectors[q : q + 1]) + self.type_embedding.weight[2]
            for block, context in zip(self.blocks, contexts[:-1]):
                token = block.forward_one_query(context, token)
            classes = self.final_norm(contexts[-1])[:num_classes]
            logit = []
            for c in range(num_classes):
                pair = self.query_proj(self.final_norm(token))[0] * self.class_proj(classes[c])
                learned = self.pair(torch.cat([pair, evidence.query[q, c]]))[0] * float(self.config.pair_term)
                logit.append(self.log_temperature.exp() * (evidence.query[q, c] @ weights) + learned)
            rows.append(torch.stack(logit))
        return torch.stack(rows)

    # ---------------------------------------------------------------------------------------
    def episode_logits(self, graph: PreparedGraph, support_index: torch.Tensor, support_labels: torch.Tensor,
                       query_index: torch.Tensor, num_classes: int, labels: torch.Tensor | None = None) -> InContextOutput:
        """Evidence + forward for one episode on a prepared graph."""
        evidence = episode_evidence(graph, support_index, support_labels, query_index, num_classes, self.config)
        return self(graph.vectors[support_index], torch.as_tensor(support_labels).long(), graph.vectors[query_index],
                    evidence, num_classes, labels)

    @torch.no_grad()
    def predict(self, graph: PreparedGraph, support_index: torch.Tensor, support_labels: torch.Tensor,
                num_classes: int, query_index: torch.Tensor | None = None, chunk_size: int = 4096) -> torch.Tensor:
        """Class scores ``[Q, C]`` of ``query_index`` (every node by default), no gradient step, in chunks."""
        query_index = torch.arange(graph.num_nodes) if query_index is None else torch.as_tensor(query_index).long()
        was_training = self.training
        self.eval()
        try:
            parts = [self.episode_logits(graph, support_index, support_labels, query_index[i : i + chunk_size],
                                         num_classes).logits for i in range(0, query_index.numel(), chunk_size)]
        finally:
            self.train(was_training)
        return torch.cat(parts, dim=0)
