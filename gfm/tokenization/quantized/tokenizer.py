"""``QuantizedTokenizer``: every node becomes ``L`` hierarchical codes learned by self-supervision.

Pipeline (see ``docs/tokenizers_quantized.md``)::

    Data --GraphInputProjector--> x [N, D] --GraphEncoder--> z [N, d] --residual VQ--> codes [N, L]
                                                              \\-- self-supervised heads (training)

* The shared input space (:mod:`gfm.tokenization.input_space`) gives every graph the same
  width ``D`` whatever its features, so one encoder serves every domain and unseen widths.
* :meth:`QuantizedTokenizer.train` trains the encoder and the codebooks on a multi-domain
  corpus: every step mixes all datasets (whole small graphs, capped ego subgraphs of large
  ones), with a tqdm bar and a log of every loss term.
* :meth:`QuantizedTokenizer.encode` turns a graph into a :class:`TokenizedGraph`: a whole small
  graph, or (``target_node=i``) node ``i`` with its personalized-PageRank top-k context.

Vocabulary: the shared special tokens ``<pad> <bos> <eos> <mask> <sep> <jump> <unk>``
(:mod:`gfm.tokenization.special_tokens`) take ids 0-6,
then code ``c`` of level ``l`` has id ``7 + l * C + c``; ``vocab_size = 7 + L * C``.

Sequence layout (``K`` nodes, ``L`` levels)::

    <bos> n0.l0 n0.l1 .. n0.l(L-1) n1.l0 .. n(K-1).l(L-1) <eos>

``node_index`` gives each code token its node (local to the sequence, the centre node first in
a context sequence, so ``metadata["target_node"] == 0``); ``level_ids`` its level;
``ppr_weight`` its node's PPR score from the centre (context sequences only). Token-level edges
join the level-``l`` tokens of two adjacent nodes, for every level ``l``, in both directions,
with ``edge_type = l``: each level of the hierarchy sees the graph's structure, and the model
learns one attention bias per level. Tokens of the same node are not linked here (the model's
attention pattern links them through ``node_index``).
"""

from __future__ import annotations

import logging
import math
import os
import time
import typing
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch_geometric.data import Data
from tqdm.auto import tqdm

from gfm.data.sampling import CSRGraph, build_csr, khop_ego_batch, ppr_topk
from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_write_bytes

from ..base import (
    TOKENIZER_CONFIG_NAME,
    GraphTokenizer,
    TokenizerLoadError,
    check_known_keys,
    check_special_ids,
    check_version,
    content_hash,
    read_tokenizer_config,
)
from ..input_space import (
    INPUT_SPACE_FILE,
    GraphInputProjector,
    InputSpaceConfig,
    InputSpaceError,
    feature_schema_key,
    graph_display_name,
)
from ..special_tokens import SPECIAL_TOKENS, SpecialTokensMixin
from ..tokenized_graph import TokenizedGraph
from .evaluation import codebook_statistics
from .model import LossWeights, QuantizerNetwork, TrainingBatch
from .sampling import NeighborTable, capped_ego_subgraph

__all__ = [
    "QuantizedTokenizer",
    "QuantizedTokenizerConfig",
    "QuantizedTokenizerError",
    "CorpusPart",
    "normalize_corpus",
    "SPECIAL_TOKENS",
    "QUANTIZER_WEIGHTS_FILE",
]

logger = logging.getLogger(__name__)

QUANTIZER_WEIGHTS_FILE = "quantizer.safetensors"
_FORMAT_VERSION = 1
# Settings that change speed or memory only, never the tokens: left out of the content hash.
_NOT_HASHED = ("cache_size", "inference_full_graph_max_nodes", "inference_batch_nodes")


# -- what tokenizer_config.json holds (from_pretrained refuses anything else) ----------------------
#: ``format_version`` values this gfm reads (the last one it writes)
_FORMAT_VERSIONS: tuple[int, ...] = (_FORMAT_VERSION,)
_FILES = {"weights": QUANTIZER_WEIGHTS_FILE, "input_space": INPUT_SPACE_FILE}
#: special token -> the ``tokenizer_config.json`` key recording its id
_ID_KEYS = {"<pad>": "pad_token_id", "<bos>": "bos_token_id", "<eos>": "eos_token_id", "<mask>": "mask_token_id"}
_CONFIG_KEYS = ("tokenizer_class", "content_hash", "vocab_size", "format_version", "config", "input_space_hash",
                "input_space", "special_tokens", "files", "training_log", "corpus_statistics", *_ID_KEYS.values())


class QuantizedTokenizerError(GFMError, ValueError):
    """Bad input to the quantized tokenizer (corpus, graph, argument); the message names it."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class QuantizedTokenizerConfig:
    """Every setting of the quantized tokenizer (one flat dataclass: YAML via ``HfArgumentParser``).

    Input-space settings mirror :class:`~gfm.tokenization.input_space.InputSpaceConfig`.
    """

    # --- shared input space -------------------------------------------------------------
    structure_dim: int = field(default=32, metadata=_help("columns of the structure channel (low-rank SVD)"))
    smoothing_hops: int = field(
        default=2, metadata=_help("parameter-free smoothing hops of the structure channel")
    )
    categorical_width: int = field(default=32, metadata=_help("buckets of the hashed categorical block"))
    continuous_width: int = field(default=64, metadata=_help("width of the continuous block (PCA)"))
    exact_eigen_max_nodes: int = field(
        default=512, metadata=_help("exact eigh up to this size, randomized SVD above")
    )
    svd_niter: int = field(default=4, metadata=_help("subspace iterations of torch.svd_lowrank"))
    svd_oversample: int = field(default=8, metadata=_help("oversampling of torch.svd_lowrank"))
    std_floor: float = field(default=1e-3, metadata=_help("floor of a continuous column's scale"))
    clip_value: float = field(default=5.0, metadata=_help("clip of the continuous block"))
    max_fit_nodes: int = field(default=200_000, metadata=_help("nodes sampled to fit one feature schema"))
    # --- encoder -------------------------------------------------------------------------
    conv: str = field(default="gin", metadata=_help("'gin' or 'gat'"))
    aggr: str = field(
        default="mean", metadata=_help("GIN aggregation: mean (robust to neighbour caps), sum, max")
    )
    hidden_dim: int = field(default=128, metadata=_help("encoder width"))
    num_layers: int = field(default=2, metadata=_help("message-passing layers (= ego-subgraph hops)"))
    gat_heads: int = field(default=4, metadata=_help("heads of GATv2Conv"))
    dropout: float = field(default=0.0, metadata=_help("dropout in the encoder"))
    code_dim: int = field(default=64, metadata=_help("latent width quantized by the codebooks"))
    # --- residual VQ ---------------------------------------------------------------------
    num_levels: int = field(default=3, metadata=_help("quantizer levels L"))
    codebook_size: int = field(default=256, metadata=_help("codes per level C"))
    codebook_decay: float = field(default=0.8, metadata=_help("EMA decay of the codebooks"))
    kmeans_init: bool = field(default=True, metadata=_help("k-means initialization after warm-up"))
    kmeans_iters: int = field(default=10, metadata=_help("k-means iterations"))
    threshold_ema_dead_code: float = field(
        default=2.0, metadata=_help("EMA usage below which a code is reset")
    )
    use_cosine_sim: bool = field(default=False, metadata=_help("quantize by cosine similarity"))
    commitment_weight: float = field(default=0.25, metadata=_help("commitment weight inside the quantizer"))
    # --- losses (weight 0 switches a term off) --------------------------------------------
    reconstruction_weight: float = field(default=1.0, metadata=_help("masked-feature reconstruction (SCE)"))
    latent_weight: float = field(default=1.0, metadata=_help("latent prediction vs the EMA target encoder"))
    dgi_weight: float = field(default=0.5, metadata=_help("DGI mutual information"))
    link_weight: float = field(default=0.5, metadata=_help("link reconstruction"))
    commitment_loss_weight: float = field(default=1.0, metadata=_help("the quantizer's commitment loss"))
    mask_rate: float = field(default=0.3, metadata=_help("fraction of nodes masked"))
    sce_gamma: float = field(default=2.0, metadata=_help("exponent of the scaled cosine error"))
    reconstruct_visible_weight: float = field(
        default=0.5, metadata=_help("also decode the clean pass's codes")
    )
    target_decay: float = field(default=0.99, metadata=_help("EMA decay of the target encoder"))
    # --- training ------------------------------------------------------------------------
    epochs: int = field(default=10, metadata=_help("training epochs"))
    steps_per_epoch: int = field(
        default=0, metadata=_help("0: enough steps to visit the largest dataset once")
    )
    vq_warmup_epochs: int = field(
        default=1, metadata=_help("epochs without quantization before k-means init")
    )
    nodes_per_dataset_per_step: int = field(
        default=512, metadata=_help("loss nodes from every dataset per step")
    )
    large_graph_min_nodes: int = field(default=5000, metadata=_help("larger graphs train by ego subgraphs"))
    ego_max_neighbors: int = field(default=5, metadata=_help("neighbour cap per hop of ego subgraphs"))
    kmeans_sample_per_dataset: int = field(
        default=2048, metadata=_help("latents per dataset for k-means init")
    )
    learning_rate: float = field(default=1e-3, metadata=_help("AdamW learning rate"))
    weight_decay: float = field(default=1e-5, metadata=_help("AdamW weight decay"))
    warmup_ratio: float = field(default=0.05, metadata=_help("linear learning-rate warm-up fraction"))
    grad_clip: float = field(default=1.0, metadata=_help("gradient norm clip (0: off)"))
    seed: int = field(default=0, metadata=_help("seed of everything random"))
    # --- sequences -----------------------------------------------------------------------
    ppr_top_k: int = field(
        default=16, metadata=_help("context neighbours of a node sequence (besides the node)")
    )
    ppr_alpha: float = field(default=0.15, metadata=_help("PPR restart probability"))
    max_whole_graph_nodes: int = field(default=1024, metadata=_help("largest graph encoded whole"))
    add_node_features: bool = field(default=False, metadata=_help("attach input-space vectors to tokens"))
    inference_full_graph_max_nodes: int = field(
        default=200_000, metadata=_help("above: encode by ego chunks")
    )
    inference_batch_nodes: int = field(
        default=32_768, metadata=_help("nodes per encoder pass over many graphs")
    )
    cache_size: int = field(
        default=8, metadata=_help("graphs whose codes are cached for repeated encode calls")
    )

    def __post_init__(self) -> None:
        if self.num_levels < 1 or self.codebook_size < 2:
            raise QuantizedTokenizerError("num_levels must be >= 1 and codebook_size >= 2")
        if not 0.0 <= self.mask_rate < 1.0:
            raise QuantizedTokenizerError(f"mask_rate must be in [0, 1), got {self.mask_rate}")
        if self.ppr_top_k < 0 or self.max_whole_graph_nodes < 1:
            raise QuantizedTokenizerError("ppr_top_k must be >= 0 and max_whole_graph_nodes >= 1")
        if self.epochs < 0 or self.vq_warmup_epochs < 0 or self.nodes_per_dataset_per_step < 2:
            raise QuantizedTokenizerError(
                "epochs/vq_warmup_epochs must be >= 0, nodes_per_dataset_per_step >= 2"
            )

    def input_space_config(self) -> InputSpaceConfig:
        names = {f.name for f in fields(InputSpaceConfig)} - {"seed"}
        return InputSpaceConfig(**{name: getattr(self, name) for name in names}, seed=self.seed)

    def loss_weights(self) -> LossWeights:
        return LossWeights(
            reconstruction=self.reconstruction_weight,
            latent=self.latent_weight,
            dgi=self.dgi_weight,
            link=self.link_weight,
            commitment=self.commitment_loss_weight,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> QuantizedTokenizerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(payload) - known
        if unknown:
            raise QuantizedTokenizerError(f"unknown QuantizedTokenizerConfig settings {sorted(unknown)}")
        return cls(**dict(payload))


_CONFIG_FIELDS = tuple(f.name for f in fields(QuantizedTokenizerConfig))


def _check_config_types(path: Path, entry: Mapping[str, Any]) -> None:
    """Raise :class:`TokenizerLoadError` naming the first ``config`` value of the wrong JSON type."""
    hints = typing.get_type_hints(QuantizedTokenizerConfig)
    for key, value in entry.items():
        kind = hints[key]
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            article = "an" if kind.__name__[0] in "aeiou" else "a"
            raise TokenizerLoadError(
                f"{path}: 'config.{key}' is {value!r} (a {type(value).__name__}); expected {article} {kind.__name__}. "
                "Restore the value or save the tokenizer again"
            )


# ----------------------------------------------------------------------------------------
# corpus
# ----------------------------------------------------------------------------------------
@dataclass
class CorpusPart:
    """One dataset of the training corpus.

    Attributes:
        name: dataset name (``"tu/PROTEINS"``), used in logs and statistics.
        domain: domain tag (``graph.domain`` wins when a graph sets it).
        graphs: the graphs.
    """

    name: str
    domain: str
    graphs: list[Data]


def _as_part(name: str, item: Any) -> CorpusPart:
    if isinstance(item, Data):
        graphs = [item]
    elif hasattr(item, "graphs"):
        graphs = list(item.graphs)
    elif isinstance(item, Iterable):
        graphs = list(item)
    else:
        raise QuantizedTokenizerError(
            f"corpus entry {name!r}: expected a GraphDataset, a Data or a list of Data"
        )
    for index, graph in enumerate(graphs):
        if not isinstance(graph, Data):
            raise QuantizedTokenizerError(
                f"corpus entry {name!r}: item {index} is a {type(graph).__name__}, expected torch_geometric Data"
            )
    if not graphs:
        raise QuantizedTokenizerError(
            f"corpus entry {name!r} holds no graphs; drop it or load the dataset again"
        )
    domain = getattr(item, "domain", None) or getattr(graphs[0], "domain", None) or "unknown"
    return CorpusPart(name=str(getattr(item, "name", None) or name), domain=str(domain), graphs=graphs)


def normalize_corpus(corpus: Any) -> list[CorpusPart]:
    """Accept a ``GraphDataset``, a ``Data``, a list of either, or ``{name: dataset | [Data]}``.

    A flat list of ``Data`` is split into one part per domain. Raises
    :class:`QuantizedTokenizerError` for an empty corpus or an empty part.
    """
    if corpus is None:
        raise QuantizedTokenizerError(
            "empty corpus: got None; pass a GraphDataset, a list of Data or a dict of them"
        )
    if isinstance(corpus, Data) or hasattr(corpus, "graphs"):
        parts = [_as_part("corpus", corpus)]
    elif isinstance(corpus, Mapping):
        parts = [_as_part(str(name), item) for name, item in corpus.items()]
    elif isinstance(corpus, Iterable):
        items = list(corpus)
        if items and all(isinstance(item, Data) for item in items):
            by_domain: dict[str, list[Data]] = {}
            for graph in items:
                by_domain.setdefault(str(getattr(graph, "domain", None) or "unknown"), []).append(graph)
            parts = [
                CorpusPart(name=domain, domain=domain, graphs=graphs) for domain, graphs in by_domain.items()
            ]
        else:
            parts = [_as_part(f"corpus[{index}]", item) for index, item in enumerate(items)]
    else:
        raise QuantizedTokenizerError(f"corpus: unsupported type {type(corpus).__name__}")
    if not parts:
        raise QuantizedTokenizerError(
            "empty corpus: no datasets to train on; pass at least one graph (e.g. gfm.data.load('tu/PROTEINS'))"
        )
    return parts


def _graph_label(graph: Data, index: int, part: CorpusPart) -> str:
    return f"{graph_display_name(graph)} (item {index} of {part.name})"


# ----------------------------------------------------------------------------------------
# per-graph state (inputs, edges, codes) and its cache
# ----------------------------------------------------------------------------------------
@dataclass
class _GraphState:
    inputs: torch.Tensor  # float [N, D]
    edges: torch.Tensor  # int64 [2, E] undirected, simple
    codes: torch.Tensor  # int64 [N, L]
    num_nodes: int
    csr: CSRGraph | None = None  # traversal structure for PPR, built on first use

    def traversal(self) -> CSRGraph:
        if self.csr is None:
            self.csr = build_csr(self.edges, self.num_nodes)
        return self.csr


def _tensor_signature(graph: Data) -> tuple:
    """Identity of a graph's tensors, including torch's in-place version counters."""
    parts = []
    for key in ("edge_index", "x", "x_cont"):
        value = getattr(graph, key, None)
        if isinstance(value, torch.Tensor):
            parts.append((key, value.data_ptr(), value._version, tuple(value.shape), str(value.dtype)))
    parts.append(("num_nodes", graph.num_nodes, bool(getattr(graph, "directed", False))))
    parts.append(("schema", getattr(graph, "feature_schema", None), getattr(graph, "domain", None)))
    return tuple(parts)


# ----------------------------------------------------------------------------------------
# mini-batches for training
# ----------------------------------------------------------------------------------------
@dataclass
class _PreparedGraph:
    inputs: torch.Tensor  # [N, D]
    edges: torch.Tensor  # [2, E]
    csr: CSRGraph | None  # built on first use (graphs sampled by seeds)

    @property
    def num_nodes(self) -> int:
        return int(self.inputs.shape[0])


@dataclass
class _Unit:
    """A whole graph (``seeds is None``) or a seed chunk of a large graph."""

    graph: int
    seeds: torch.Tensor | None


class _PartSampler:
    """Cycles through one dataset's graphs / seed chunks in a seeded shuffled order."""

    def __init__(self, prepared: list[_PreparedGraph], budget: int, generator: torch.Generator):
        self.prepared = prepared
        self.budget = budget
        self.generator = generator
        self.items: list[_Unit] = []
        self.cursor = 0

    def _refill(self) -> None:
        items: list[_Unit] = []
        for index, graph in enumerate(self.prepared):
            if graph.num_nodes > self.budget:
                permutation = torch.randperm(graph.num_nodes, generator=self.generator)
                chunk = max(1, self.budget // 2)
                items.extend(
                    _Unit(index, permutation[s : s + chunk]) for s in range(0, graph.num_nodes, chunk)
                )
            else:
                items.append(_Unit(index, None))
        order = torch.randperm(len(items), generator=self.generator).tolist()
        self.items = [items[i] for i in order]
        self.cursor = 0

    def next_units(self, budget: int | None = None) -> list[_Unit]:
        budget = budget or self.budget
        units, taken = [], 0
        while taken < budget:
            if self.cursor >= len(self.items):
                self._refill()
            unit = self.items[self.cursor]
            self.cursor += 1
            units.append(unit)
            taken += self.prepared[unit.graph].num_nodes if unit.seeds is None else 2 * unit.seeds.numel()
            if unit.seeds is not None:
                break
        return units


def _random_neighbors(csr: CSRGraph, nodes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One uniformly random neighbour of each node, ``-1`` for isolated nodes: int64 ``[S]``."""
    degree = csr.degree[nodes]
    offsets = (
        (torch.rand(nodes.numel(), generator=generator) * degree).long().clamp_max((degree - 1).clamp_min(0))
    )
    if csr.col.numel() == 0:
        return torch.full_like(nodes, -1)
    picked = csr.col[(csr.rowptr[nodes] + offsets).clamp_max(csr.col.numel() - 1)]
    return torch.where(degree > 0, picked, torch.full_like(nodes, -1))


def _total_loss_nodes(prepared: list[_PreparedGraph]) -> int:
    return sum(g.num_nodes for g in prepared)


# ----------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------
class QuantizedTokenizer(SpecialTokensMixin, GraphTokenizer):
    """Residual-VQ graph tokenizer over a shared input space (see the module docstring).

    Build one with :meth:`train` or :meth:`from_pretrained`; ``QuantizedTokenizer(config)``
    gives an untrained tokenizer (random encoder, codebooks not initialized: encoding raises).
    """

    special_tokens = SPECIAL_TOKENS

    def __init__(
        self,
        config: QuantizedTokenizerConfig | None = None,
        projector: GraphInputProjector | None = None,
        network: QuantizerNetwork | None = None,
    ) -> None:
        self.config = config or QuantizedTokenizerConfig()
        self.projector = projector or GraphInputProjector(self.config.input_space_config())
        if self.projector.output_dim != self.config.input_space_config().output_dim:
            raise QuantizedTokenizerError(
                f"projector width {self.projector.output_dim} does not match the config's input space "
                f"({self.config.input_space_config().output_dim})"
            )
        self.network = network or self._build_network(self.config, self.projector.output_dim)
        self.network.eval()
        self.training_log: list[dict[str, Any]] = []
        #: codebook usage over the training corpus, filled by :meth:`train` (saved with the tokenizer)
        self.corpus_statistics: dict[str, Any] = {}
        self._hash: str | None = None
        self._cache: OrderedDict[int, tuple[weakref.ref, tuple, _GraphState]] = OrderedDict()
        self._generic_logged: set[str] = set()

    @staticmethod
    def _build_network(config: QuantizedTokenizerConfig, input_dim: int) -> QuantizerNetwork:
        return QuantizerNetwork(
            input_dim=input_dim,
            hidden_dim=config.hidden_dim,
            code_dim=config.code_dim,
            num_layers=config.num_layers,
            conv=config.conv,
            aggr=config.aggr,
            gat_heads=config.gat_heads,
            dropout=config.dropout,
            num_levels=config.num_levels,
            codebook_size=config.codebook_size,
            codebook_decay=config.codebook_decay,
            kmeans_init=config.kmeans_init,
            kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.threshold_ema_dead_code,
            use_cosine_sim=config.use_cosine_sim,
            commitment_weight=config.commitment_weight,
        )

    # -- vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + self.config.num_levels * self.config.codebook_size

    def code_token_id(self, level: int | torch.Tensor, code: int | torch.Tensor) -> int | torch.Tensor:
        """Vocabulary id of ``code`` at ``level``."""
        return len(SPECIAL_TOKENS) + level * self.config.codebook_size + code

    def token_to_level_code(self, token_id: int) -> tuple[int, int]:
        """Inverse of :meth:`code_token_id`; raises for special or out-of-range ids."""
        offset = int(token_id) - len(SPECIAL_TOKENS)
        if offset < 0 or token_id >= self.vocab_size:
            raise QuantizedTokenizerError(
                f"token id {token_id} is not a code id (codes are 7..{self.vocab_size - 1})"
            )
        return divmod(offset, self.config.codebook_size)

    def get_vocab(self) -> dict[str, int]:
        vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
        for level in range(self.config.num_levels):
            for code in range(self.config.codebook_size):
                vocab[f"<L{level}_{code}>"] = int(self.code_token_id(level, code))
        return vocab

    # -- identity -------------------------------------------------------------------------------
    def _inference_tensors(self) -> dict[str, torch.Tensor]:
        prefixes = self.network.inference_state_prefixes()
        return {k: v for k, v in self.network.state_dict().items() if k.startswith(prefixes)}

    @property
    def content_hash(self) -> str:
        """SHA-256 of the config, the encoder and codebooks, and the projector's statistics."""
        if self._hash is None:
            tensors = self._inference_tensors()
            config = {k: v for k, v in self.config.to_dict().items() if k not in _NOT_HASHED}
            blobs = [
                name.encode() + tensors[name].detach().contiguous().numpy().tobytes()
                for name in sorted(tensors)
            ]
            self._hash = content_hash(
                {
                    "config": config,
                    "input_space": self.projector.content_hash,
                    "format_version": _FORMAT_VERSION,
                },
                *blobs,
            )
        return self._hash

    def _invalidate(self) -> None:
        self._hash = None
        self._cache.clear()

    def clear_cache(self) -> None:
        """Forget cached per-graph codes (needed only after mutating a graph's tensors in place
        through a path torch's version counter does not see, e.g. writes to ``tensor.data``)."""
        self._cache.clear()

    # ------------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        corpus: Any,
        config: QuantizedTokenizerConfig | None = None,
        progress: bool = True,
        **overrides: Any,
    ) -> QuantizedTokenizer:
        """Train a tokenizer on a multi-domain corpus.

        Args:
            corpus: a ``GraphDataset``, a ``Data``, a list of either, or ``{name: dataset}``
                (see :func:`normalize_corpus`).
            config: settings; ``overrides`` replace individual fields.
            progress: show tqdm bars.

        Returns:
            the trained tokenizer; ``tokenizer.training_log`` holds one dict per epoch with the
            mean of every loss term, the steps, the seconds and the per-level code usage.
        """
        config = config or QuantizedTokenizerConfig()
        if overrides:
            config = QuantizedTokenizerConfig.from_dict({**config.to_dict(), **overrides})
        parts = normalize_corpus(corpus)
        torch.manual_seed(config.seed)  # the library's k-means / dead-code draws use the global RNG
        generator = torch.Generator().manual_seed(config.seed)
        projector = GraphInputProjector(config.input_space_config())
        projector.fit(
            (graph for part in parts for graph in part.graphs),
            names=(
                _graph_label(graph, index, part) for part in parts for index, graph in enumerate(part.graphs)
            ),
        )
        tokenizer = cls(config, projector)
        tokenizer._train(parts, generator, progress)
        tokenizer._invalidate()
        return tokenizer

    def _prepare(self, parts: list[CorpusPart], progress: bool) -> list[list[_PreparedGraph]]:
        prepared: list[list[_PreparedGraph]] = []
        total = sum(len(part.graphs) for part in parts)
        bar = tqdm(total=total, desc="input space", disable=not progress, leave=False)
        for part in parts:
            graphs = []
            for index, graph in enumerate(part.graphs):
                label = _graph_label(graph, index, part)
                inputs, edges = self.projector.transform_with_edges(graph, name=label)
                graphs.append(_PreparedGraph(inputs, edges, None))
                bar.update(1)
            prepared.append(graphs)
        bar.close()
        return prepared

    def _make_batch(
        self, prepared: list[list[_PreparedGraph]], units: list[list[_Unit]], generator: torch.Generator
    ) -> TrainingBatch:
        """Disjoint union of every part's units (see :class:`TrainingBatch`).

        * a whole graph (``unit.seeds is None``): every node is a loss node, every edge a link pair;
        * seeds of a graph of at most ``large_graph_min_nodes`` nodes: the whole graph is
          encoded, the loss nodes are the seeds plus one random neighbour of each (the link
          pairs);
        * seeds of a larger graph: the same loss nodes, encoded on the union of their capped
          ``num_layers``-hop ego graphs from ``gfm.data.sampling.khop_ego_batch`` (each loss
          node sees at least its own sampled ego graph; shared nodes are computed once).
        """
        config = self.config
        xs, edges, graph_ids, loss_nodes, link_pairs = [], [], [], [], []
        node_offset, loss_offset, graph_id = 0, 0, 0
        max_pairs_factor = 4
        for part_index, part_units in enumerate(units):
            for unit in part_units:
                graph = prepared[part_index][unit.graph]
                if unit.seeds is None:
                    n = graph.num_nodes
                    x, e = graph.inputs, graph.edges
                    local_loss = torch.arange(n)
                    pairs = e[:, e[0] < e[1]]
                    if pairs.shape[1] > max_pairs_factor * n:
                        keep = torch.randperm(pairs.shape[1], generator=generator)[: max_pairs_factor * n]
                        pairs = pairs[:, keep.sort().values]
                else:
                    if graph.csr is None:
                        graph.csr = build_csr(graph.edges, graph.num_nodes)
                    seeds = unit.seeds
                    partners = _random_neighbors(graph.csr, seeds, generator)
                    has_partner = partners >= 0
                    centres = torch.unique(torch.cat([seeds, partners[has_partner]]))
                    position = torch.full((graph.num_nodes,), -1, dtype=torch.long)
                    position[centres] = torch.arange(centres.numel())
                    pairs = torch.stack([position[seeds[has_partner]], position[partners[has_partner]]])
                    if graph.num_nodes <= config.large_graph_min_nodes:
                        n = graph.num_nodes
                        x, e = graph.inputs, graph.edges
                        local_loss = centres
                    else:
                        ego = khop_ego_batch(
                            graph.edges,
                            graph.num_nodes,
                            centres,
                            num_hops=config.num_layers,
                            max_neighbors=config.ego_max_neighbors,
                            seed=int(torch.randint(2**31 - 1, (1,), generator=generator)),
                            csr=graph.csr,
                            out_csr=graph.csr,
                        )
                        # Merge the per-centre ego graphs into their union (shared nodes and
                        # edges once): a centre keeps at least its own sampled neighbourhood.
                        ego_of_edge = torch.repeat_interleave(
                            torch.arange(centres.numel()), ego.edge_ptr.diff()
                        )
                        global_edges = ego.nodes[ego.edge_index + ego.node_ptr[ego_of_edge]]
                        nodes = torch.unique(ego.nodes)
                        n = nodes.numel()
                        keys = torch.unique(
                            torch.searchsorted(nodes, global_edges[0]) * n
                            + torch.searchsorted(nodes, global_edges[1])
                        )
                        x = graph.inputs[nodes]
                        e = torch.stack([keys // n, keys % n])
                        local_loss = torch.searchsorted(nodes, centres)
                xs.append(x)
                edges.append(e + node_offset)
                graph_ids.append(torch.full((n,), graph_id, dtype=torch.long))
                loss_nodes.append(local_loss + node_offset)
                link_pairs.append(pairs + loss_offset)
                node_offset += n
                loss_offset += local_loss.numel()
                graph_id += 1
        return TrainingBatch(
            x=torch.cat(xs),
            edge_index=torch.cat(edges, dim=1),
            graph_ids=torch.cat(graph_ids),
            loss_nodes=torch.cat(loss_nodes),
            link_pairs=torch.cat(link_pairs, dim=1),
            num_graphs=graph_id,
        )

    @torch.no_grad()
    def _initialize_codebooks(self, prepared: list[list[_PreparedGraph]], generator: torch.Generator) -> None:
        """k-means init of every level on latents sampled evenly from every dataset."""
        config = self.config
        samples = []
        for part_index, graphs in enumerate(prepared):
            sampler = _PartSampler(graphs, config.kmeans_sample_per_dataset, generator)
            collected, count = [], 0
            limit = min(config.kmeans_sample_per_dataset, _total_loss_nodes(graphs))
            while count < limit:
                units = [[] for _ in prepared]
                units[part_index] = sampler.next_units(limit - count)
                batch = self._make_batch(prepared, units, generator)
                latents = self.network.latents(batch.x, batch.edge_index)[batch.loss_nodes]
                collected.append(latents)
                count += latents.shape[0]
            samples.append(torch.cat(collected)[:limit])
        sample = torch.cat(samples)
        self.network.quantizer.initialize(sample, seed=config.seed)
        logger.info(
            "quantizer: k-means initialized %d levels on %d latents", config.num_levels, sample.shape[0]
        )

    def _train(self, parts: list[CorpusPart], generator: torch.Generator, progress: bool) -> None:
        config = self.config
        started = time.perf_counter()
        prepared = self._prepare(parts, progress)
        logger.info(
            "quantizer training corpus: %s",
            ", ".join(
                f"{p.name} ({len(p.graphs)} graphs, {_total_loss_nodes(g)} nodes)"
                for p, g in zip(parts, prepared)
            ),
        )
        budget = config.nodes_per_dataset_per_step
        samplers = [_PartSampler(g, budget, generator) for g in prepared]
        steps_per_epoch = config.steps_per_epoch or max(
            1, max(math.ceil(_total_loss_nodes(g) / budget) for g in prepared)
        )
        network = self.network
        trainable = [p for name, p in network.named_parameters() if not name.startswith("target_encoder.")]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        total_steps = max(1, config.epochs * steps_per_epoch)
        from transformers import get_cosine_schedule_with_warmup

        scheduler = get_cosine_schedule_with_warmup(
            optimizer, int(config.warmup_ratio * total_steps), total_steps
        )
        weights = config.loss_weights()
        if not weights.enabled():
            raise QuantizedTokenizerError("every loss weight is 0: enable at least one loss term")
        network.train()
        network.target_encoder.load_state_dict(network.encoder.state_dict())
        quantize = False
        for epoch in range(config.epochs):
            if not quantize and epoch >= config.vq_warmup_epochs:
                network.eval()
                self._initialize_codebooks(prepared, generator)
                network.train()
                quantize = True
            epoch_started = time.perf_counter()
            sums: dict[str, float] = {}
            usage = torch.zeros(config.num_levels, config.codebook_size, dtype=torch.long)
            bar = tqdm(
                range(steps_per_epoch),
                desc=f"quantizer epoch {epoch + 1}/{config.epochs}",
                disable=not progress,
            )
            for _ in bar:
                units = [sampler.next_units() for sampler in samplers]
                batch = self._make_batch(prepared, units, generator)
                loss, terms, codes = network.training_losses(
                    batch,
                    weights,
                    generator,
                    quantize=quantize,
                    mask_rate=config.mask_rate,
                    sce_gamma=config.sce_gamma,
                    reconstruct_visible_weight=config.reconstruct_visible_weight,
                )
                if not torch.isfinite(loss):
                    raise QuantizedTokenizerError(
                        f"quantizer training: loss became {float(loss)} at epoch {epoch + 1} ({terms}); "
                        "lower learning_rate or check the corpus for extreme feature values"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                network.update_target(config.target_decay)
                terms["total"] = float(loss.detach())
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value
                if quantize:
                    for level in range(config.num_levels):
                        usage[level] += torch.bincount(codes[:, level], minlength=config.codebook_size)
                bar.set_postfix({name: f"{value:.3f}" for name, value in terms.items()})
            bar.close()
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "steps": steps_per_epoch,
                "quantized": quantize,
                "seconds": round(time.perf_counter() - epoch_started, 3),
                **{name: value / steps_per_epoch for name, value in sums.items()},
            }
            if quantize:
                record["utilization"] = [
                    float((usage[level] > 0).double().mean()) for level in range(config.num_levels)
                ]
            self.training_log.append(record)
            logger.info(
                "quantizer epoch %d/%d: %s",
                epoch + 1,
                config.epochs,
                ", ".join(
                    f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in record.items()
                    if k != "epoch"
                ),
            )
        if not quantize:
            network.eval()
            self._initialize_codebooks(prepared, generator)
        network.eval()
        self.corpus_statistics = self._corpus_statistics(parts, prepared)
        for level in self.corpus_statistics["levels"]:
            logger.info(
                "quantizer level %d on the corpus: %d/%d codes used (%.1f%%), perplexity %.1f, "
                "%d codes shared by >= 2 domains, %d by all %d",
                level["level"],
                level["used"],
                level["codebook_size"],
                100 * level["utilization"],
                level["perplexity"],
                level["shared_by_two"],
                level["shared_by_all"],
                level["num_domains"],
            )
        logger.info("quantizer training finished in %.1f s", time.perf_counter() - started)

    @torch.no_grad()
    def _corpus_statistics(
        self, parts: list[CorpusPart], prepared: list[list[_PreparedGraph]]
    ) -> dict[str, Any]:
        """Codebook usage over every node of the training corpus (codes as ``encode`` gives them)."""
        codes, domains, per_dataset = [], [], []
        budget = self.config.inference_batch_nodes
        for part, graphs in zip(parts, prepared):
            part_codes, chunk, chunk_nodes = [], [], 0
            for position, graph in enumerate(graphs):
                chunk.append(graph)
                chunk_nodes += graph.num_nodes
                if chunk_nodes >= budget or position == len(graphs) - 1:
                    offsets = torch.tensor([0] + [g.num_nodes for g in chunk]).cumsum(0)
                    union_edges = torch.cat([g.edges + offsets[i] for i, g in enumerate(chunk)], dim=1)
                    part_codes.append(self.network.codes(torch.cat([g.inputs for g in chunk]), union_edges))
                    chunk, chunk_nodes = [], 0
            part_codes = torch.cat(part_codes)
            codes.append(part_codes)
            domains.extend([part.domain] * int(part_codes.shape[0]))
            per_dataset.append(
                {
                    "dataset": part.name,
                    "domain": part.domain,
                    "nodes": int(part_codes.shape[0]),
                    "distinct_codes": [
                        int(part_codes[:, lv].unique().numel()) for lv in range(part_codes.shape[1])
                    ],
                }
            )
        levels = codebook_statistics(torch.cat(codes), self.config.codebook_size, domains)
        return {"levels": [asdict(level) for level in levels], "datasets": per_dataset, "nodes": len(domains)}

    # ------------------------------------------------------------------------------------------
    # encoding
    # ------------------------------------------------------------------------------------------
    def _check_ready(self) -> None:
        if not self.network.quantizer.initialized:
            raise QuantizedTokenizerError(
                "this QuantizedTokenizer is untrained (codebooks not initialized); use QuantizedTokenizer.train(corpus) "
                "or QuantizedTokenizer.from_pretrained(directory)"
            )

    @torch.no_grad()
    def _codes_by_ego_chunks(
        self, inputs: torch.Tensor, edges: torch.Tensor, chunk_size: int
    ) -> torch.Tensor:
        """Codes computed chunk by chunk on exact ``num_layers``-hop ego subgraphs (no cap).

        With ``num_layers`` message-passing layers a node's latent depends only on its
        ``num_layers``-hop neighbourhood, so this equals the full-graph result (tested).
        """
        num_nodes = inputs.shape[0]
        csr = NeighborTable(edges, num_nodes)
        generator = torch.Generator().manual_seed(0)
        no_cap = max(int(csr.degree.max()) if num_nodes else 0, 1)
        out = torch.empty(num_nodes, self.config.num_levels, dtype=torch.long)
        for start in range(0, num_nodes, chunk_size):
            seeds = torch.arange(start, min(start + chunk_size, num_nodes))
            nodes, sub_edges, seed_positions = capped_ego_subgraph(
                csr, seeds, self.config.num_layers, no_cap, generator
            )
            out[seeds] = self.network.codes(inputs[nodes], sub_edges)[seed_positions]
        return out

    def _cached_state(self, graph: Data) -> _GraphState | None:
        cached = self._cache.get(id(graph))
        if cached is not None and cached[0]() is graph and cached[1] == _tensor_signature(graph):
            self._cache.move_to_end(id(graph))
            return cached[2]
        return None

    def _store_state(self, graph: Data, state: _GraphState) -> None:
        if self.config.cache_size <= 0:
            return
        self._cache[id(graph)] = (weakref.ref(graph), _tensor_signature(graph), state)
        self._cache.move_to_end(id(graph))
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    def _graph_states(
        self, graphs: Sequence[Data], names: Sequence[str | None] | None = None
    ) -> list[_GraphState]:
        """Input-space vectors, edges and codes of many graphs.

        Projection is per graph; the encoder and the quantizer run once on the disjoint union
        of up to ``inference_batch_nodes`` nodes (a node's codes do not depend on the other
        graphs of the union: message passing never crosses graphs, and equality with one graph
        at a time is tested). Graphs above ``inference_full_graph_max_nodes`` nodes are encoded
        alone, chunk by chunk on exact ego subgraphs.
        """
        self._check_ready()
        states: list[_GraphState | None] = [None] * len(graphs)
        pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        for index, graph in enumerate(graphs):
            cached = self._cached_state(graph)
            if cached is not None:
                states[index] = cached
                continue
            inputs, edges = self.projector.transform_with_edges(
                graph, None if names is None else names[index]
            )
            pending.append((index, inputs, edges))
        limit = self.config.inference_full_graph_max_nodes
        chunk: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        chunk_nodes = 0

        def flush() -> None:
            nonlocal chunk, chunk_nodes
            if not chunk:
                return
            offsets = torch.tensor([0] + [inputs.shape[0] for _, inputs, _ in chunk]).cumsum(0)
            union_inputs = torch.cat([inputs for _, inputs, _ in chunk])
            union_edges = torch.cat([edges + offsets[i] for i, (_, _, edges) in enumerate(chunk)], dim=1)
            codes = self.network.codes(union_inputs, union_edges)
            for i, (index, inputs, edges) in enumerate(chunk):
                state = _GraphState(
                    inputs, edges, codes[offsets[i] : offsets[i + 1]].clone(), inputs.shape[0]
                )
                states[index] = state
                self._store_state(graphs[index], state)
            chunk, chunk_nodes = [], 0

        for index, inputs, edges in pending:
            num_nodes = inputs.shape[0]
            if num_nodes > limit:
                codes = self._codes_by_ego_chunks(inputs, edges, chunk_size=4096)
                states[index] = _GraphState(inputs, edges, codes, num_nodes)
                self._store_state(graphs[index], states[index])
                continue
            if chunk_nodes + num_nodes > self.config.inference_batch_nodes:
                flush()
            chunk.append((index, inputs, edges))
            chunk_nodes += num_nodes
        flush()
        return states  # type: ignore[return-value]

    def _graph_state(self, graph: Data, name: str | None = None) -> _GraphState:
        return self._graph_states([graph], None if name is None else [name])[0]

    def node_codes_many(self, graphs: Sequence[Data]) -> list[torch.Tensor]:
        """:meth:`node_codes` of many graphs, encoded in batches (see :meth:`_graph_states`)."""
        return [state.codes.clone() for state in self._graph_states(list(graphs))]

    def node_codes(self, graph: Data, name: str | None = None) -> torch.Tensor:
        """int64 ``[N, L]``: the code of every node at every level (without vocabulary offsets)."""
        return self._graph_state(graph, name).codes.clone()

    def encode(
        self,
        graph: Data,
        target_node: int | None = None,
        add_node_features: bool | None = None,
        name: str | None = None,
    ) -> TokenizedGraph:
        """Tokenize a whole small graph, or node ``target_node`` with its PPR top-k context.

        Args:
            graph: a ``Data``.
            target_node: ``None`` for the whole graph (at most ``max_whole_graph_nodes`` nodes);
                an int for the centre node of a context sequence (``metadata["target_node"] == 0``,
                its local index; ``metadata["center_node"]`` is its id in ``graph``).
            add_node_features: attach the input-space vector of each token's node
                (``config.add_node_features`` when ``None``).
            name: how to call the graph in error messages.
        """
        if target_node is None:
            return self.encode_batch([graph], add_node_features=add_node_features, names=[name])[0]
        return self.encode_nodes(graph, [target_node], add_node_features=add_node_features, name=name)[0]

    def encode_batch(
        self,
        graphs: Iterable[Data],
        target_node: int | None = None,
        add_node_features: bool | None = None,
        names: Sequence[str | None] | None = None,
    ) -> list[TokenizedGraph]:
        """:meth:`encode` of many graphs; whole graphs are encoded in batches (same tokens)."""
        graphs = list(graphs)
        if target_node is not None:
            return [
                self.encode_nodes(g, [target_node], add_node_features, None if names is None else names[i])[0]
                for i, g in enumerate(graphs)
            ]
        for index, graph in enumerate(graphs):
            num_nodes = int(graph.num_nodes or 0)
            if num_nodes > self.config.max_whole_graph_nodes:
                label = graph_display_name(graph, None if names is None else names[index])
                raise QuantizedTokenizerError(
                    f"{label}: {num_nodes} nodes is more than max_whole_graph_nodes="
                    f"{self.config.max_whole_graph_nodes}; encode node contexts with encode(graph, target_node=i) "
                    "(or encode_nodes) or raise max_whole_graph_nodes"
                )
        with_features = self.config.add_node_features if add_node_features is None else add_node_features
        states = self._graph_states(graphs, names)
        return [
            self._sequence(state, torch.arange(state.num_nodes), None, with_features, graph, metadata={})
            for graph, state in zip(graphs, states)
        ]

    def encode_nodes(
        self,
        graph: Data,
        nodes: Sequence[int] | torch.Tensor | None = None,
        add_node_features: bool | None = None,
        name: str | None = None,
    ) -> list[TokenizedGraph]:
        """Context sequences of many centre nodes at once (codes and PPR computed in one go).

        Args:
            nodes: centre node ids (all nodes when ``None``).
        """
        label = graph_display_name(graph, name)
        state = self._graph_state(graph, name)
        with_features = self.config.add_node_features if add_node_features is None else add_node_features
        centres = (
            torch.arange(state.num_nodes)
            if nodes is None
            else torch.as_tensor(nodes, dtype=torch.long).reshape(-1)
        )
        if centres.numel() and (int(centres.min()) < 0 or int(centres.max()) >= state.num_nodes):
            bad = int(centres[(centres < 0) | (centres >= state.num_nodes)][0])
            raise QuantizedTokenizerError(
                f"{label}: target_node={bad} is outside the graph's nodes [0, {state.num_nodes})"
            )
        neighbors, weights = self._ppr(state, centres)
        out = []
        for row, centre in enumerate(centres.tolist()):
            context, context_weights = self._context(centre, neighbors[row], weights[row])
            out.append(
                self._sequence(
                    state,
                    context,
                    context_weights,
                    with_features,
                    graph,
                    metadata={"target_node": 0, "center_node": centre, "context_nodes": context.tolist()},
                )
            )
        return out

    def trained_domains(self) -> set[str]:
        """The domains of the training corpus (empty for a tokenizer saved without corpus statistics)."""
        return {str(entry.get("domain")) for entry in (self.corpus_statistics.get("datasets") or [])}

    def _generic_schema_record(self, graph: Data) -> dict[str, Any] | None:
        """``None`` for a graph of a training domain, else what the generic path did (logged once per layout).

        The quantized tokenizer has no per-domain vocabulary: every graph goes through the shared
        input space, so a graph of an unseen domain is encoded like any other. The record says how
        its features were read: the structure channel always; categorical columns hashed (an unseen
        value is hashed like a seen one, never ``<unk>``); continuous columns with the statistics
        fitted for its feature schema, else with the graph's own (``"own"``).
        """
        domains = self.trained_domains()
        domain = str(getattr(graph, "domain", None) or "unknown")
        if not domains or domain in domains:
            return None
        key = feature_schema_key(graph)
        x, x_cont = getattr(graph, "x", None), getattr(graph, "x_cont", None)
        has_continuous = any(isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() for t in (x, x_cont))
        if not has_continuous:
            statistics = "none"
        else:
            statistics = "fitted" if key in self.projector.continuous_stats else "own"
        record = {"domain": domain, "layout": key, "written_as": f"input space (continuous statistics: {statistics})",
                  "left_out": []}
        if key not in self._generic_logged:
            self._generic_logged.add(key)
            logger.warning(
                "%s: domain %r was not in the training corpus (domains: %s); encoded through the shared input space "
                "(feature schema %r, continuous statistics: %s); TokenizedGraph.metadata['generic_schema'] records it",
                graph_display_name(graph), domain, sorted(domains), key, statistics,
            )
        return record

    def _ppr(self, state: _GraphState, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ppr_topk(
            state.edges,
            state.num_nodes,
            centres,
            k=self.config.ppr_top_k + 1,
            alpha=self.config.ppr_alpha,
            exclude_self=False,
            csr=state.traversal(),
        )

    def _context(
        self, centre: int, neighbors: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre first (with its own PPR score), then up to ``ppr_top_k`` others by decreasing score.

        When the PPR routine does not list the centre itself, its weight is ``ppr_alpha`` (the
        restart mass, a lower bound of a node's score for itself).
        """
        valid = neighbors >= 0
        neighbors, weights = neighbors[valid], weights[valid].float()
        is_centre = neighbors == centre
        if bool(is_centre.any()):
            centre_weight = weights[is_centre][:1]
        else:
            centre_weight = torch.tensor([self.config.ppr_alpha], dtype=torch.float32)
        others = neighbors[~is_centre][: self.config.ppr_top_k]
        other_weights = weights[~is_centre][: self.config.ppr_top_k]
        return torch.cat([torch.tensor([centre]), others]), torch.cat([centre_weight, other_weights])

    @staticmethod
    def _local_edges(state: _GraphState, nodes: torch.Tensor, whole: bool) -> torch.Tensor:
        """Edges among ``nodes`` as positions in ``nodes``: int64 ``[2, E']``.

        A whole graph keeps its edges; a context gathers its nodes' neighbour lists from the
        graph's CSR (cost follows their degrees, not the graph's size) and keeps the pairs whose
        both ends are in the context, ordered by (source position, target id).
        """
        if whole:
            return state.edges
        csr = state.traversal()
        counts = csr.degree[nodes]
        owner = torch.repeat_interleave(torch.arange(nodes.numel()), counts)
        within = torch.arange(owner.numel()) - (torch.cumsum(counts, 0) - counts)[owner]
        neighbors = csr.col[csr.rowptr[nodes][owner] + within]
        sorted_nodes, order = torch.sort(nodes)
        slot = torch.searchsorted(sorted_nodes, neighbors).clamp_max(nodes.numel() - 1)
        inside = sorted_nodes[slot] == neighbors
        return torch.stack([owner[inside], order[slot[inside]]])

    def _sequence(
        self,
        state: _GraphState,
        nodes: torch.Tensor,
        node_weights: torch.Tensor | None,
        with_features: bool,
        graph: Data,
        metadata: dict[str, Any],
    ) -> TokenizedGraph:
        """Build the token sequence of ``nodes`` (global ids in ``graph``, in sequence order)."""
        levels = self.config.num_levels
        k = nodes.numel()
        codes = state.codes[nodes]  # [K, L]
        level_grid = torch.arange(levels).expand(k, levels)
        code_ids = self.code_token_id(level_grid, codes).reshape(-1)
        input_ids = torch.cat(
            [torch.tensor([self.bos_token_id]), code_ids, torch.tensor([self.eos_token_id])]
        )
        node_index = torch.cat(
            [torch.tensor([-1]), torch.arange(k).repeat_interleave(levels), torch.tensor([-1])]
        )
        level_ids = torch.cat([torch.tensor([-1]), level_grid.reshape(-1), torch.tensor([-1])])
        local_edges = self._local_edges(state, nodes, whole=node_weights is None)  # [2, E'] both directions
        # Position of node j's level-l token: 1 + j * L + l.
        token_edges = (
            1 + local_edges.unsqueeze(0) * levels + torch.arange(levels).view(levels, 1, 1)
        ).permute(1, 0, 2)
        edge_index = token_edges.reshape(2, -1)
        edge_type = torch.arange(levels).repeat_interleave(local_edges.shape[1])
        ppr_weight = None
        if node_weights is not None:
            ppr_weight = torch.cat([torch.zeros(1), node_weights.repeat_interleave(levels), torch.zeros(1)])
        record = self._generic_schema_record(graph)
        if record is not None:
            metadata = {**metadata, "generic_schema": record}
        node_features = None
        if with_features:
            features = state.inputs[nodes].repeat_interleave(levels, dim=0)
            pad = features.new_zeros(1, features.shape[1])
            node_features = torch.cat([pad, features, pad])
        return TokenizedGraph(
            input_ids=input_ids,
            node_index=node_index,
            edge_index=edge_index,
            edge_type=edge_type,
            num_nodes=k,
            level_ids=level_ids,
            ppr_weight=ppr_weight,
            node_features=node_features,
            domain=getattr(graph, "domain", None),
            metadata=metadata,
        )

    # ------------------------------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``tokenizer_config.json``, ``quantizer.safetensors`` and ``input_space.safetensors``.

        Other files in the directory (a model's ``config.json`` / ``model.safetensors``) are
        left alone.
        """
        self._check_ready()
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in self.network.state_dict().items()}
        payload = safetensors_save(state, metadata={"format": "pt", "content_hash": self.content_hash})
        atomic_write_bytes(directory / QUANTIZER_WEIGHTS_FILE, payload)
        projector_tmp = directory / (INPUT_SPACE_FILE + ".tmp")
        self.projector.save(projector_tmp)
        os.replace(projector_tmp, directory / INPUT_SPACE_FILE)
        self._write_tokenizer_config(
            directory,
            {
                "format_version": _FORMAT_VERSION,
                "config": self.config.to_dict(),
                "input_space_hash": self.projector.content_hash,
                "input_space": self.projector.describe(),
                "special_tokens": list(SPECIAL_TOKENS),
                "bos_token_id": self.bos_token_id,
                "eos_token_id": self.eos_token_id,
                "mask_token_id": self.mask_token_id,
                "files": {"weights": QUANTIZER_WEIGHTS_FILE, "input_space": INPUT_SPACE_FILE},
                "training_log": self.training_log,
                "corpus_statistics": self.corpus_statistics,
            },
        )
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> QuantizedTokenizer:
        """Load a tokenizer written by :meth:`save_pretrained`; every mismatch is an error.

        Raises:
            TokenizerLoadError: missing files, another tokenizer class, a key this gfm does not
                write (named with its closest known key), a ``format_version`` it does not read, a
                config value of the wrong type, special-token ids other than the fixed ones, a
                projector whose settings or hash do not match the config (``input_space.safetensors``
                from another tokenizer), weights that do not fit, or a content-hash mismatch. Each
                message names the file and the fix.
        """
        if kwargs:
            raise TokenizerLoadError(f"{directory}: unexpected from_pretrained arguments {sorted(kwargs)}")
        directory = Path(directory)
        saved = read_tokenizer_config(directory)
        config_path = directory / TOKENIZER_CONFIG_NAME
        if saved.get("tokenizer_class") != cls.__name__:
            raise TokenizerLoadError(
                f"{directory}: holds a {saved.get('tokenizer_class')!r}, not a {cls.__name__}; "
                "load it with AutoGraphTokenizer.from_pretrained"
            )
        check_known_keys(config_path, saved, _CONFIG_KEYS)
        check_version(config_path, "format_version", saved.get("format_version"), _FORMAT_VERSIONS)
        cls._check_config_ids(config_path, saved)
        files = saved.get("files")
        if files is not None:
            check_known_keys(config_path, files, _FILES, "files")
            for key, name in _FILES.items():
                if key in files and files[key] != name:
                    raise TokenizerLoadError(
                        f"{config_path}: 'files.{key}' is {files[key]!r} but this gfm reads {name!r}; rename the "
                        f"file back to {name} and restore the entry, or save the tokenizer again"
                    )
        if "config" not in saved:
            raise TokenizerLoadError(f"{config_path}: no 'config' entry; the file is damaged, save the tokenizer again")
        check_known_keys(config_path, saved["config"], _CONFIG_FIELDS, "config")
        _check_config_types(config_path, saved["config"])
        try:
            config = QuantizedTokenizerConfig.from_dict(saved["config"])
        except (TypeError, QuantizedTokenizerError) as err:
            raise TokenizerLoadError(f"{config_path}: bad 'config' entry ({err}); restore it or save the tokenizer "
                                     "again") from err
        projector_path = directory / INPUT_SPACE_FILE
        try:
            projector = GraphInputProjector.load(projector_path)
        except InputSpaceError as err:
            raise TokenizerLoadError(f"{directory}: {err}") from err
        if asdict(projector.config) != asdict(config.input_space_config()):
            raise TokenizerLoadError(
                f"{projector_path}: projector settings {asdict(projector.config)} do not match the tokenizer config's "
                f"input space {asdict(config.input_space_config())}; the file belongs to another tokenizer — "
                "save this tokenizer again or copy its own input_space.safetensors"
            )
        if projector.content_hash != saved.get("input_space_hash"):
            raise TokenizerLoadError(
                f"{projector_path}: projector hash {projector.content_hash[:12]}... does not match the "
                f"{saved.get('input_space_hash', '')[:12]}... recorded in tokenizer_config.json; the projector's "
                "fitted statistics belong to another tokenizer — save this tokenizer again"
            )
        weights_path = directory / QUANTIZER_WEIGHTS_FILE
        if not weights_path.is_file():
            raise TokenizerLoadError(
                f"{weights_path}: missing; save the tokenizer again with save_pretrained"
            )
        with safe_open(str(weights_path), framework="pt") as handle:
            state = {name: handle.get_tensor(name) for name in handle.keys()}
        tokenizer = cls(config, projector)
        try:
            tokenizer.network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise TokenizerLoadError(f"{weights_path}: weights do not fit the config ({err})") from err
        tokenizer.network.eval()
        tokenizer.training_log = list(saved.get("training_log") or [])
        tokenizer.corpus_statistics = dict(saved.get("corpus_statistics") or {})
        tokenizer._invalidate()
        if tokenizer.content_hash != saved.get("content_hash"):
            raise TokenizerLoadError(
                f"{directory}: content hash {tokenizer.content_hash[:12]}... differs from the "
                f"{str(saved.get('content_hash'))[:12]}... in tokenizer_config.json; a file was changed or "
                "mixed from another tokenizer — save the tokenizer again"
            )
        if "vocab_size" in saved and saved["vocab_size"] != tokenizer.vocab_size:
            raise TokenizerLoadError(
                f"{config_path}: 'vocab_size' is {saved['vocab_size']!r} but the config gives {tokenizer.vocab_size} "
                f"(7 special tokens + num_levels x codebook_size): the file was edited; restore the value or save "
                "the tokenizer again"
            )
        return tokenizer

    @classmethod
    def _check_config_ids(cls, config_path: Path, saved: dict[str, Any]) -> None:
        """Special-token ids recorded in ``tokenizer_config.json`` must be the fixed shared ones."""
        expected = {name: i for i, name in enumerate(SPECIAL_TOKENS)}
        found: dict[str, tuple[str, Any]] = {}
        for token, key in _ID_KEYS.items():
            if key in saved:
                found[token] = (key, saved[key])
        recorded = saved.get("special_tokens")
        if recorded is not None:
            if not isinstance(recorded, list) or any(token not in expected for token in recorded):
                raise TokenizerLoadError(
                    f"{config_path}: 'special_tokens' is {recorded!r}; this gfm writes {list(SPECIAL_TOKENS)} there "
                    "(a token's id is its position): restore it or save the tokenizer again"
                )
            for position, token in enumerate(recorded):
                if position != expected[token] or token not in found:
                    found[token] = ("special_tokens", position)
        check_special_ids(config_path, found, expected, cls.__name__)
