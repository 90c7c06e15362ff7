"""Task items -> token sequences -> batches, for any gfm tokenizer.

One :class:`TaskSampleEncoder` serves every task level:

- graph tasks: each graph is tokenized whole;
- node tasks: each target node's ego graph (``gfm.data.sampling.EgoGraphSampler``) is
  tokenized with ``target_node`` (the centre, local index 0); the tokenizer records the
  node's position label in ``metadata["target_node"]`` and the collator carries it into the
  batch, where ``GFMForNodeClassification`` pools that node's token states;
- edge tasks: the union of the two endpoints' ego graphs, the pair itself removed, tokenized
  with ``target_edge`` (tokenizers that cannot mark a pair, such as the quantized one, encode
  the subgraph whole and the pair's local ids are written into ``metadata["target_edge"]``,
  which is exact because a whole-graph encoding keeps local node ids).

Attributes. ``attributes="tokens"`` lets the tokenizer write node / edge attributes as
tokens (molecules, proteins); ``"drop"`` removes them first (structure only, or graphs whose
wide float features no token vocabulary covers, e.g. Cora's 1,433 word columns). When the model
takes continuous inputs (``config.node_feature_dim > 0``) and the tokenizer attaches none,
every token gets its node's vector from the shared input space (``GraphInputProjector``),
computed once on the whole graph the task may see.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from gfm.tokenization.tokenized_graph import TokenizedGraph, collate_tokenized_graphs, pack_tokenized_graphs
from gfm.utils.errors import GFMError

__all__ = ["SamplingConfig", "TaskSampleEncoder", "EncodingError", "ATTRIBUTE_KEYS", "LONG_SEQUENCES", "ego_setting_counts",
           "describe_ego_setting"]

logger = logging.getLogger(__name__)

#: node / edge attribute fields of the Data contract (docs/CONTRACTS.md section 1)
ATTRIBUTE_KEYS = ("x", "x_cont", "edge_attr", "edge_attr_cont", "x_observed")
#: what happens to a node's ego graph longer than the model's context: shrink it, or leave it (the batch raises)
LONG_SEQUENCES = ("fit", "error")


class EncodingError(GFMError, ValueError):
    """A task item cannot be turned into a model input (tokenizer / model mismatch, length...)."""


@dataclass
class SamplingConfig:
    """How node and edge tasks on a large graph become small graphs.

    Attributes:
        method: ``"khop"`` (k-hop ego graph with a neighbour cap) or ``"ppr"`` (top-k PPR).
        num_hops / max_neighbors: k-hop parameters.
        ppr_k: PPR ego size.
        seed: sampling seed (the same seed gives the same subgraphs).
        attributes: ``"tokens"`` (tokenizer writes attributes) or ``"drop"`` (structure only).
        max_feature_width: continuous attribute tables wider than this are left out, as in the
            pretraining view of ``gfm.training.corpus`` (a 1,433-column bag of words would be
            thousands of tokens per node); ``None`` keeps every table.
        unknown: tokenizers that support it (Eulerian): ``"unk"`` writes a categorical value the
            vocabulary never saw as ``<unk>`` (the tokenizer counts them), ``"error"`` raises.
        max_length: raise when a sequence is longer (never truncated); ``None`` = the model's
            ``max_position_embeddings``.
        long_sequences: node tasks: ``"fit"`` (default) shrinks an ego graph that tokenizes to more
            than ``max_length`` tokens until it fits (see :meth:`TaskSampleEncoder.node_samples`),
            recorded per node in ``metadata["ego"]`` and counted by :func:`ego_setting_counts`;
            ``"error"`` leaves it as sampled, so the batch builder raises.
    """

    method: str = "khop"
    num_hops: int = 2
    max_neighbors: int | None = 8
    ppr_k: int = 32
    seed: int = 0
    attributes: str = "tokens"
    max_feature_width: int | None = 32
    unknown: str = "unk"
    max_length: int | None = None
    long_sequences: str = "fit"

    def __post_init__(self) -> None:
        if self.attributes not in ("tokens", "drop"):
            raise EncodingError(f"SamplingConfig.attributes={self.attributes!r}; use 'tokens' or 'drop'")
        if self.long_sequences not in LONG_SEQUENCES:
            raise EncodingError(f"SamplingConfig.long_sequences={self.long_sequences!r}; use one of {list(LONG_SEQUENCES)}")
        if self.unknown not in ("unk", "error"):
            raise EncodingError(f"SamplingConfig.unknown={self.unknown!r}; use 'unk' or 'error'")


def _tokenizer_input(graph: Data, attributes: str, max_feature_width: int | None = None) -> tuple[Data, list[str]]:
    """The fields a tokenizer may read: a new ``Data`` with the structure, the attribute
    tables and ``domain`` / ``directed`` / ``name``, so the sampler's bookkeeping (``n_id``,
    ``hop``, ``target_*``), labels and split masks never reach a tokenizer.

    With ``attributes="tokens"``, continuous tables wider than ``max_feature_width`` are left
    out (the pretraining view); with ``"drop"`` every attribute is. ``x_observed`` (which rows
    of ``x`` are real) is read by no tokenizer and is not passed on.

    Returns:
        The graph to tokenize and the names of the wide tables left out.
    """
    left_out: list[str] = []
    out = Data(edge_index=graph.edge_index, num_nodes=int(graph.num_nodes))
    keys = ATTRIBUTE_KEYS if attributes == "tokens" else ()
    for key in (*keys, "domain", "directed", "name"):
        value = getattr(graph, key, None)
        if value is None or key == "x_observed":
            continue
        if (
            max_feature_width is not None
            and isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and value.dim() == 2
            and value.shape[1] > max_feature_width
        ):
            left_out.append(f"{key}[{value.shape[1]} columns]")
            continue
        out[key] = value
    return out, left_out


class TaskSampleEncoder:
    """Tokenize graph / node / edge task items and collate them into model batches.

    Args:
        tokenizer: a gfm ``GraphTokenizer``.
        sampling: subgraph sampling and attribute handling.
        node_feature_dim: the model's ``config.node_feature_dim`` (0 = no continuous inputs).
        projector: a fitted ``GraphInputProjector`` (from the tokenizer directory) when the
            model takes continuous inputs the tokenizer does not attach.
        max_length: the model's ``max_position_embeddings``, used when
            ``sampling.max_length`` is ``None``; batches longer than this raise (never truncated).

    Tokenization goes through :meth:`_encode_many`: one ``encode_batch`` call with per-graph
    targets when the tokenizer supports it (the Eulerian tokenizer's vectorized path), else one
    ``encode`` per graph; both give the same sequences (``tests/adapters/test_adaptation.py``).
    """

    def __init__(
        self,
        tokenizer,
        sampling: SamplingConfig | None = None,
        node_feature_dim: int = 0,
        projector=None,
        max_length: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.sampling = sampling or SamplingConfig()
        self.node_feature_dim = int(node_feature_dim)
        self.projector = projector
        self.max_length = self.sampling.max_length or max_length
        parameters = inspect.signature(tokenizer.encode).parameters
        self._marks_edges = "target_edge" in parameters
        self._node_order = "return_node_order" in parameters
        self._takes_unknown = "unknown" in parameters
        batch_parameters = inspect.signature(tokenizer.encode_batch).parameters
        self._batched_targets = "target_node" in batch_parameters and "target_edge" in batch_parameters
        self._reported_left_out = False
        if self.node_feature_dim and projector is None and not self._tokenizer_attaches_features():
            raise EncodingError(
                f"the model takes node_features of width {self.node_feature_dim} but the tokenizer "
                f"({type(tokenizer).__name__}) attaches none and no input-space projector was given; "
                "load the projector saved beside the tokenizer"
            )

    def _tokenizer_attaches_features(self) -> bool:
        config = getattr(self.tokenizer, "config", None)
        return bool(getattr(config, "add_node_features", False))

    # -- node features from the shared input space -----------------------------------------
    def _projected(self, graph: Data) -> torch.Tensor | None:
        if not self.node_feature_dim or self._tokenizer_attaches_features():
            return None
        features = self.projector.transform(graph)
        if features.shape[1] != self.node_feature_dim:
            raise EncodingError(
                f"the input-space projector gives {features.shape[1]} columns but the model's "
                f"node_feature_dim is {self.node_feature_dim}; use the projector saved with this model's tokenizer"
            )
        return features

    def _attach(self, sample: TokenizedGraph, features: torch.Tensor | None, node_ids: torch.Tensor) -> TokenizedGraph:
        """Give every token its node's input-space vector (zeros for tokens without a node)."""
        if features is None:
            return sample
        order = sample.metadata.pop("node_order", None)
        local = sample.node_index.clone()
        has_node = local >= 0
        if order is not None:
            local[has_node] = torch.as_tensor(order, dtype=torch.long)[local[has_node]]
        vectors = torch.zeros(len(sample), features.shape[1])
        vectors[has_node] = features[node_ids[local[has_node]]]
        sample.node_features = vectors
        return sample

    def _prepare(self, graph: Data) -> Data:
        graph, left_out = _tokenizer_input(graph, self.sampling.attributes, self.sampling.max_feature_width)
        if left_out and not self._reported_left_out:
            logger.warning(
                "continuous attribute tables wider than max_feature_width=%s are left out of the token stream "
                "(as in pretraining): %s", self.sampling.max_feature_width, ", ".join(left_out),
            )
            self._reported_left_out = True
        return graph

    def _encode_many(
        self,
        graphs: Sequence[Data],
        target_node: Sequence[int] | None = None,
        target_edge: Sequence[tuple[int, int]] | None = None,
    ) -> list[TokenizedGraph]:
        """Tokenize ``graphs`` with optional per-graph targets.

        Uses the tokenizer's batched ``encode_batch`` when it takes per-graph targets (the
        Eulerian tokenizer's vectorized path); otherwise one ``encode`` call per graph.
        """
        prepared = [self._prepare(graph) for graph in graphs]
        kwargs: dict = {}
        if self.node_feature_dim and self._node_order and not self._tokenizer_attaches_features():
            kwargs["return_node_order"] = True
        if self._takes_unknown:
            kwargs["unknown"] = self.sampling.unknown
        if self._batched_targets:
            if target_node is not None:
                kwargs["target_node"] = list(target_node)
            if target_edge is not None:
                kwargs["target_edge"] = list(target_edge)
            return self.tokenizer.encode_batch(prepared, **kwargs)
        out = []
        for index, graph in enumerate(prepared):
            targets = dict(kwargs)
            if target_node is not None:
                targets["target_node"] = target_node[index]
            if target_edge is not None:
                targets["target_edge"] = target_edge[index]
            out.append(self.tokenizer.encode(graph, **targets))
        return out

    # -- task items ----------------------------------------------------------------------------
    def graph_samples(self, graphs: Sequence[Data]) -> list[TokenizedGraph]:
        """One sequence per whole graph."""
        samples = self._encode_many(graphs)
        return [
            self._attach(sample, self._projected(graph), torch.arange(int(graph.num_nodes)))
            for sample, graph in zip(samples, graphs)
        ]

    def _sampler(self, graph: Data, setting: dict[str, int | None] | None = None):
        from gfm.data.sampling import EgoGraphSampler

        s = self.sampling
        setting = setting or self.configured_setting()
        return EgoGraphSampler(
            graph, method=s.method, num_hops=setting.get("num_hops", s.num_hops),
            max_neighbors=setting.get("max_neighbors", s.max_neighbors), ppr_k=setting.get("ppr_k", s.ppr_k),
            seed=s.seed,
        )

    def configured_setting(self) -> dict[str, int | None]:
        """The ego-graph size the sampling config asks for: ``{"num_hops", "max_neighbors"}`` or ``{"ppr_k"}``."""
        s = self.sampling
        if s.method == "ppr":
            return {"ppr_k": s.ppr_k}
        return {"num_hops": s.num_hops, "max_neighbors": s.max_neighbors}

    def fit_ladder(self, graph: Data) -> list[dict[str, int | None]]:
        """Smaller ego-graph settings tried in order for a node whose ego graph is too long.

        k-hop: fewer neighbours per hop first (the cap halved down to 1; no cap starts from the
        graph's largest degree), then one hop fewer with the full cap again, and so on down to
        one hop; the last resort is the centre alone (0 hops). PPR: ``ppr_k`` halved down to 1.
        Deterministic: the ladder depends on the config and the graph only, and the first
        setting whose sequence fits is kept.
        """
        s = self.sampling
        if s.method == "ppr":
            ladder, k = [], s.ppr_k
            while k > 1:
                k //= 2
                ladder.append({"ppr_k": k})
            return ladder
        cap = s.max_neighbors
        if cap is None:
            num_nodes = int(graph.num_nodes)
            degree = torch.bincount(graph.edge_index[0], minlength=num_nodes) if graph.edge_index.numel() else None
            cap = max(1, int(degree.max())) if degree is not None and num_nodes else 1
        caps = []
        while cap >= 1:
            caps.append(cap)
            cap //= 2
        ladder = []
        for hops in range(s.num_hops, 0, -1):
            for m in caps:
                if hops == s.num_hops and m == caps[0]:
                    continue  # the configured setting itself (no cap = a cap at the largest degree)
                ladder.append({"num_hops": hops, "max_neighbors": m})
        ladder.append({"num_hops": 0, "max_neighbors": 0})
        return ladder

    def node_samples(self, graph: Data, nodes: torch.Tensor) -> list[TokenizedGraph]:
        """One sequence per target node: its ego graph with ``target_node`` marked.

        With ``sampling.long_sequences="fit"`` and a ``max_length``, a node whose ego graph
        tokenizes to more than ``max_length`` tokens is sampled again with the settings of
        :meth:`fit_ladder` until it fits; ``metadata["ego"]`` of its sequence records the
        setting used (sequences without it used :meth:`configured_setting`). A node that does
        not fit even alone is an :class:`EncodingError`.

        Args:
            graph: the whole graph the task may read.
            nodes: int64 ``[S]`` target nodes.
        """
        nodes = torch.as_tensor(nodes, dtype=torch.long).view(-1)
        features = self._projected(graph)
        samples = self._node_samples_with(graph, nodes, features, None)
        if self.sampling.long_sequences != "fit" or self.max_length is None:
            return samples
        too_long = [i for i, sample in enumerate(samples) if len(sample) > self.max_length]
        if not too_long:
            return samples
        first_lengths = {i: len(samples[i]) for i in too_long}
        for setting in self.fit_ladder(graph):
            redone = self._node_samples_with(graph, nodes[too_long], features, setting)
            remaining = []
            for i, sample in zip(too_long, redone):
                if len(sample) <= self.max_length:
                    sample.metadata["ego"] = dict(setting)
                    samples[i] = sample
                else:
                    remaining.append(i)
            too_long = remaining
            if not too_long:
                break
        if too_long:
            node = int(nodes[too_long[0]])
            raise EncodingError(
                f"{getattr(graph, 'name', None) or 'graph'}: node {node} tokenizes to {len(samples[too_long[0]])} tokens "
                f"even without neighbours, more than max_length={self.max_length}; its attributes alone are too long: "
                "use attributes='drop' or a model with more positions"
            )
        counts = ego_setting_counts(samples, self.configured_setting())
        logger.info(
            "%s: %d of %d ego graphs were longer than max_length=%d tokens (longest %d) and were shrunk to fit: %s",
            getattr(graph, "name", None) or "graph", len(first_lengths), len(samples), self.max_length,
            max(first_lengths.values()), ", ".join(f"{k}: {v}" for k, v in counts.items()),
        )
        return samples

    def _node_samples_with(self, graph: Data, nodes: torch.Tensor, features, setting) -> list[TokenizedGraph]:
        egos = list(self._sampler(graph, setting).node_samples(nodes, labels=torch.zeros(int(graph.num_nodes))))
        samples = self._encode_many(egos, target_node=[0] * len(egos))  # the centre is local node 0
        return [self._attach(sample, features, ego.n_id) for sample, ego in zip(samples, egos)]

    def edge_samples(self, graph: Data, pairs: torch.Tensor) -> list[TokenizedGraph]:
        """One sequence per node pair ``pairs`` int64 ``[2, P]`` (the pair's own edge removed)."""
        features = self._projected(graph)
        subs = list(self._sampler(graph).edge_samples(pairs))
        local_pairs = [tuple(int(t) for t in sub.target_edge.view(-1)) for sub in subs]
        if self._marks_edges:
            samples = self._encode_many(subs, target_edge=local_pairs)
        else:
            samples = self._encode_many(subs)
            for sample, pair in zip(samples, local_pairs):
                sample.metadata["target_edge"] = list(pair)
        return [self._attach(sample, features, sub.n_id) for sample, sub in zip(samples, subs)]

    # -- batching ------------------------------------------------------------------------------
    def batches(
        self,
        samples: Sequence[TokenizedGraph],
        batch_size: int,
        order: Sequence[int] | None = None,
        pack: bool = False,
    ) -> Iterator[tuple[list[int], dict]]:
        """Yield ``(indices, batch)`` over ``samples`` in ``order`` (default: as given).

        Every batch holds the ``batch_size`` samples ``indices`` (the last one fewer). With
        ``pack=False`` each sample is one row padded to the batch's longest sample
        (``[batch_size, longest]``); with ``pack=True`` the same samples are packed first-fit into
        rows of ``max_length`` positions (``[rows, max_length]``, the longest sample when
        ``max_length`` is unset), each sample keeping its ``sequence_ids`` so that attention,
        positions and pooling stay per sample. Both layouts give the same outputs per sample up to
        float rounding (``tests/adapters/test_packed_batches.py``); packing skips the padding
        positions, which are most of a padded batch when lengths vary (molecules: about 3/4).
        """
        order = list(range(len(samples))) if order is None else list(order)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            chunk = [samples[i] for i in chosen]
            if pack:
                budget = self.max_length if self.max_length is not None else max(len(sample) for sample in chunk)
                batch = pack_tokenized_graphs(chunk, token_budget=budget, pad_token_id=pad)
            else:
                batch = collate_tokenized_graphs(chunk, pad_token_id=pad, max_length=self.max_length)
            yield chosen, batch


def describe_ego_setting(setting: dict[str, int | None]) -> str:
    """``"2 hops x 8 neighbours"``, ``"1 hops x all neighbours"``, ``"centre only"`` or ``"ppr top-16"``."""
    if "ppr_k" in setting:
        return f"ppr top-{setting['ppr_k']}"
    if not setting.get("num_hops"):
        return "centre only"
    cap = setting.get("max_neighbors")
    return f"{setting['num_hops']} hops x {'all' if cap is None else cap} neighbours"


def ego_setting_counts(samples: Sequence[TokenizedGraph], configured: dict[str, int | None]) -> dict[str, int]:
    """How many node sequences used each ego-graph setting: ``{"2 hops x 8 neighbours": 31, ...}``.

    Sequences that were shrunk to fit the context carry their setting in ``metadata["ego"]``;
    the others used ``configured`` (``TaskSampleEncoder.configured_setting()``). Largest first.
    """
    counts: dict[str, int] = {}
    order: dict[str, tuple] = {}
    for sample in samples:
        setting = sample.metadata.get("ego") or configured
        key = describe_ego_setting(setting)
        counts[key] = counts.get(key, 0) + 1
        size = setting.get("ppr_k", 0) or 0, setting.get("num_hops", 0) or 0, setting.get("max_neighbors") or 10**9
        order[key] = size
    return {key: counts[key] for key in sorted(counts, key=lambda k: order[k], reverse=True)}
