"""Eulerian-sequence graph tokenizer: lossless, batched, with optional learned merges.

A graph becomes a walk that traverses every edge (see :mod:`gfm.tokenization.eulerian.walk`):
each connected component is made (semi-)Eulerian by duplicating the fewest spanning-tree edges
that fix the parity of its odd-degree nodes (linear time), Hierholzer's algorithm finds the
trail, and components are chained with ``<jump>``. The walk is written as tokens
(vocabulary in :mod:`gfm.tokenization.eulerian.vocab`)::

    <bos> <graph:SCHEMA> [offset] VISIT (STEP VISIT)* (<jump> VISIT (STEP VISIT)*)* [targets] <eos>

* ``VISIT`` of a node seen for the first time: its attribute tokens, field by field
  (``x`` then ``x_cont``; categorical columns one token each, continuous columns a head token
  and digits), or ``<node>`` when the schema has no node attributes. New nodes are numbered
  implicitly in order of first visit, so they need no index token.
* ``VISIT`` of a node seen before: its index label ``(rank + offset) mod max(V, n)`` as ``<i:L>``,
  or ``<ilen:k>`` and ``k`` base-``V`` digits when ``L >= V`` (never a collision).
* ``STEP`` along a real edge: ``<fwd>``/``<bwd>`` (directed graphs: traversed along or against
  the arc), then the edge's attribute tokens (nothing at all for an undirected graph without
  edge attributes). A step along an eulerization duplicate is the single token ``<dup>``, so
  decoding tells duplicates from real parallel edges.
* ``offset``: an index label right after the schema token, present only when a random cyclic
  index offset is drawn (augmentation; ``random_offset=True``).
* targets: ``<target_node> LABEL`` and/or ``<target_edge> LABEL LABEL`` before ``<eos>``; the
  relabelled ids are also in ``metadata["target_node"]`` / ``metadata["target_edge"]``.

``TokenizedGraph`` fields (docs/CONTRACTS.md):

* ``node_index``: the node's first-visit rank for every token of a visit (attribute tokens of a
  new node and all tokens of a multi-token index included) and for the label tokens of the
  target suffix; ``-1`` for special, schema, offset, direction, ``<dup>`` and edge-attribute
  tokens.
* ``edge_index`` / ``edge_type``: links between token positions, with the *head* of a visit being
  its first token. :data:`EDGE_TYPE_EDGE` joins the heads of two consecutive visits along a real
  edge (both directions for undirected graphs; for directed graphs the arc direction, and
  :data:`EDGE_TYPE_REVERSE` back); :data:`EDGE_TYPE_DUPLICATE` joins the heads around a
  ``<dup>`` step (both directions); :data:`EDGE_TYPE_STEP_TOKEN` joins every token of a step
  (direction, edge attributes, ``<dup>``) with both heads, both ways. Positions of the same node
  are not linked explicitly: they share ``node_index``.
* With learned merges a merged token may cover several nodes: its ``node_index`` is the first
  node it covers (``-1`` if none), base links are mapped to the merged positions (links inside
  one merged token disappear, duplicates are removed), and :data:`EDGE_TYPE_MERGED_NODE` links
  join every two positions that cover a common node unless both already carry it as
  ``node_index``. Every node therefore stays reachable by graph attention; a node that only
  appears inside merged tokens has no position of its own (node-level tasks mark their target
  with ``target_node``, whose label tokens always carry it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from gfm.utils.errors import GFMError
from gfm.utils.io import atomic_write_bytes, atomic_write_json

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
from ..special_tokens import SpecialTokensMixin
from ..tokenized_graph import TokenizedGraph
from .graphs import (
    GraphArrays,
    GraphInputError,
    PreparedBatch,
    prepare_batch,
    read_graph,
    schema_from_signature,
)
from .kernel import emit_tokens_c, load_kernel, walk_batch_c
from .merges import LearnedMerges, MergesError
from .vocab import (
    EULERIAN_SPECIAL_TOKENS,
    KIND_CATEGORICAL,
    KIND_CONTINUOUS_HEAD,
    KIND_DIGIT,
    KIND_INDEX,
    KIND_INDEX_LENGTH,
    KIND_SCHEMA,
    NODE_FIELDS,
    EulerianVocabulary,
    GraphSchema,
    UnknownValueError,
    VocabularyError,
)
from .walk import FLAG_COMPONENT_START, FLAG_DUPLICATE, FLAG_REVERSED, SplitMix64, walk_batch_python

__all__ = [
    "EulerianTokenizer",
    "EulerianDecodeError",
    "GraphInputError",
    "UnknownValueError",
    "EDGE_TYPE_EDGE",
    "EDGE_TYPE_REVERSE",
    "EDGE_TYPE_DUPLICATE",
    "EDGE_TYPE_STEP_TOKEN",
    "EDGE_TYPE_MERGED_NODE",
    "VOCAB_FILE",
    "MERGES_FILE",
]

logger = logging.getLogger(__name__)

EDGE_TYPE_EDGE = 0
EDGE_TYPE_REVERSE = 1
EDGE_TYPE_DUPLICATE = 2
EDGE_TYPE_STEP_TOKEN = 3
EDGE_TYPE_MERGED_NODE = 4

VOCAB_FILE = "eulerian_vocab.json"
MERGES_FILE = "eulerian_merges.model"

_OFFSET_SALT = 0x6F66667365745F73  # separates the offset draw from the walk's random stream
_DEFAULT_BATCH = 512  # graphs per vectorized pass (measured fastest on molecules)
# specials that never occur inside the part of a sequence merges apply to
_OUTSIDE_MERGES = ("<pad>", "<bos>", "<eos>", "<mask>", "<sep>", "<target_node>", "<target_edge>")

# -- what tokenizer_config.json and eulerian_vocab.json hold (from_pretrained refuses anything else) --
#: ``format_version`` values of ``tokenizer_config.json`` this gfm reads (the last one it writes);
#: files written before the key existed are version 1
_FORMAT_VERSIONS: tuple[int, ...] = (1,)
_EDGE_TYPES = {"edge": EDGE_TYPE_EDGE, "reverse": EDGE_TYPE_REVERSE, "duplicate": EDGE_TYPE_DUPLICATE,
               "step_token": EDGE_TYPE_STEP_TOKEN, "merged_node": EDGE_TYPE_MERGED_NODE}
_SETTINGS_KEYS = ("default_domain", "random_index_offset", "unknown", "add_special_tokens")
#: special token -> the ``tokenizer_config.json`` key recording its id
_ID_KEYS = {"<pad>": "pad_token_id", "<bos>": "bos_token_id", "<eos>": "eos_token_id", "<mask>": "mask_token_id",
            "<sep>": "sep_token_id", "<jump>": "jump_token_id", "<unk>": "unk_token_id",
            "<target_node>": "target_node_token_id", "<target_edge>": "target_edge_token_id"}
_CONFIG_KEYS = ("tokenizer_class", "content_hash", "vocab_size", "format_version", "vocab_file", "merges_file",
                "base_vocab_size", "special_tokens", "edge_types", *_ID_KEYS.values(), *_SETTINGS_KEYS)
_MERGES_RECORD_KEYS = ("model_type", "sha256", "base_vocab_size", "pieces")


#: ``Data.domain`` of a graph decoded from a sequence written with ``<unk>`` as its schema (the
#: generic path of a tokenizer without a generic schema): structure only
UNKNOWN_DOMAIN = "unknown"


class EulerianDecodeError(GFMError, ValueError):
    """A token sequence is not a valid Eulerian sequence; the message gives position and reason."""


@dataclass
class _EncodedBatch:
    """Base-token output of a batch, flat with per-graph offsets (positions are global)."""

    ids: np.ndarray  # [T]
    node_index: np.ndarray  # [T]
    token_ptr: np.ndarray  # [G+1]
    link_src: np.ndarray  # [P] local positions
    link_dst: np.ndarray  # [P]
    link_type: np.ndarray  # [P]
    link_ptr: np.ndarray  # [G+1]
    prefix_specials: np.ndarray  # [G] tokens before the merge-able body (<bos>)
    suffix_length: np.ndarray  # [G] tokens after the body (targets, <eos>)
    num_nodes: np.ndarray  # [G]
    domains: list[str]
    metadata: list[dict[str, Any]]


def _offsets(counts: np.ndarray) -> np.ndarray:
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _segments(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices ``starts[i] .. starts[i] + lengths[i] - 1`` for every ``i``, concatenated."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def _concat_rows(blocks: list[tuple[np.ndarray, np.ndarray]], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise concatenation of ``(lengths [R], flat)`` blocks: row ``r`` = block 0 row r, block 1 row r..."""
    if len(blocks) == 1:
        return blocks[0]
    lengths = np.zeros(rows, dtype=np.int64)
    for block_lengths, _ in blocks:
        lengths += block_lengths
    flat = np.empty(int(lengths.sum()), dtype=np.int64)
    row_start = np.cumsum(lengths) - lengths
    filled = np.zeros(rows, dtype=np.int64)
    for block_lengths, block_flat in blocks:
        owner = np.repeat(np.arange(rows), block_lengths)
        within = np.arange(len(block_flat)) - np.repeat(np.cumsum(block_lengths) - block_lengths, block_lengths)
        flat[row_start[owner] + filled[owner] + within] = block_flat
        filled += block_lengths
    return lengths, flat


def emit_tokens_numpy(
    segment_ptr: np.ndarray,
    segment_start: np.ndarray,
    segment_length: np.ndarray,
    segment_node: np.ndarray,
    pool: np.ndarray,
    pool_node: np.ndarray,
    visit_ptr: np.ndarray,
    visit_flags: np.ndarray,
    directed_graph: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Write the tokens and position links of a batch from its segments (vectorized numpy).

    Graph ``g`` owns segments ``segment_ptr[g]:segment_ptr[g+1]``: its prefix, three per visit
    (step lead, edge attributes, the visit itself) and its suffix; a segment copies
    ``segment_length`` tokens of ``pool`` from ``segment_start``. Its tokens stand for node
    ``segment_node`` (``-1``: none), or, where that is ``-2``, for ``pool_node`` at the same pool
    positions (``pool_node`` covers the start of the pool, which holds the per-graph suffixes).
    :func:`~gfm.tokenization.eulerian.kernel.emit_tokens_c` is the same in C (tested equal).

    Returns:
        ``(ids [T], node_index [T], token_ptr [G+1], link_src [P], link_dst [P], link_type [P],
        link_ptr [G+1])`` with link positions local to each graph.
    """
    num_graphs = len(visit_ptr) - 1
    visits = np.diff(visit_ptr)
    visit_graph = np.repeat(np.arange(num_graphs), visits)
    local_visit = np.arange(len(visit_graph)) - visit_ptr[visit_graph]
    slot = segment_ptr[visit_graph] + 1 + 3 * local_visit
    flags = visit_flags.astype(np.int64)
    starts_component = (flags & FLAG_COMPONENT_START) != 0
    duplicate = (flags & FLAG_DUPLICATE) != 0
    reversed_step = (flags & FLAG_REVERSED) != 0
    real = ~starts_component & ~duplicate
    directed = directed_graph.astype(bool)[visit_graph]
    out_start = np.cumsum(segment_length) - segment_length
    gather = _segments(segment_start, segment_length)
    ids = pool[gather]
    node_index = np.repeat(segment_node, segment_length)
    from_pool = np.nonzero(node_index == -2)[0]
    node_index[from_pool] = pool_node[gather[from_pool]]
    token_ptr = np.append(out_start[segment_ptr[:-1]], len(ids)).astype(np.int64)

    # -- links between token positions ---------------------------------------------------------
    head = out_start[slot + 2]
    step = np.nonzero(~starts_component)[0]
    previous_head, current_head = head[step - 1], head[step]
    step_token_start = out_start[slot[step]]
    step_token_count = segment_length[slot[step]] + segment_length[slot[step] + 1]
    step_graph = visit_graph[step]
    links_per_step = 2 + 4 * step_token_count
    link_offset = np.cumsum(links_per_step) - links_per_step
    total_links = int(links_per_step.sum())
    link_src = np.empty(total_links, dtype=np.int64)
    link_dst = np.empty(total_links, dtype=np.int64)
    link_type = np.empty(total_links, dtype=np.int64)
    step_directed = directed[step]
    swap = step_directed & real[step] & reversed_step[step]
    first = np.where(swap, current_head, previous_head)
    second = np.where(swap, previous_head, current_head)
    step_duplicate = duplicate[step]
    link_src[link_offset], link_dst[link_offset] = first, second
    link_type[link_offset] = np.where(step_duplicate, EDGE_TYPE_DUPLICATE, EDGE_TYPE_EDGE)
    link_src[link_offset + 1], link_dst[link_offset + 1] = second, first
    link_type[link_offset + 1] = np.where(
        step_duplicate, EDGE_TYPE_DUPLICATE, np.where(step_directed, EDGE_TYPE_REVERSE, EDGE_TYPE_EDGE)
    )
    owner = np.repeat(np.arange(len(step)), step_token_count)
    if len(owner):
        within = np.arange(len(owner)) - np.repeat(np.cumsum(step_token_count) - step_token_count, step_token_count)
        token = step_token_start[owner] + within
        at = link_offset[owner] + 2 + 4 * within
        before, after = previous_head[owner], current_head[owner]
        link_src[at], link_dst[at] = token, before
        link_src[at + 1], link_dst[at + 1] = before, token
        link_src[at + 2], link_dst[at + 2] = token, after
        link_src[at + 3], link_dst[at + 3] = after, token
        for k in range(4):
            link_type[at + k] = EDGE_TYPE_STEP_TOKEN
    link_graph = np.repeat(step_graph, links_per_step)
    link_src -= token_ptr[link_graph]
    link_dst -= token_ptr[link_graph]
    link_ptr = _offsets(np.bincount(step_graph, weights=links_per_step, minlength=num_graphs).astype(np.int64))

    return ids, node_index, token_ptr, link_src, link_dst, link_type, link_ptr


class EulerianTokenizer(SpecialTokensMixin, GraphTokenizer):
    """Lossless Eulerian-walk tokenizer (see the module docstring for the sequence format).

    Build one with :meth:`train`; load one with :meth:`from_pretrained`.

    Args:
        vocabulary: the trained :class:`EulerianVocabulary`.
        merges: optional :class:`LearnedMerges` over the base tokens.
        default_domain: domain of graphs that carry no ``domain`` attribute.
        random_index_offset: default of ``encode(random_offset=...)``.
        unknown: default of ``encode(unknown=...)``: ``"error"`` or ``"unk"``.
        add_special_tokens: default of ``encode(add_special_tokens=...)`` (``<bos>``/``<eos>``).
        backend: ``"auto"`` (C kernel when it builds, else Python), ``"c"`` or ``"python"``; all
            give identical output.
    """

    special_tokens = EULERIAN_SPECIAL_TOKENS

    def __init__(
        self,
        vocabulary: EulerianVocabulary,
        merges: LearnedMerges | None = None,
        *,
        default_domain: str = "generic",
        random_index_offset: bool = False,
        unknown: str = "error",
        add_special_tokens: bool = True,
        backend: str = "auto",
    ) -> None:
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
        if backend not in ("auto", "c", "python"):
            raise ValueError(f"backend must be 'auto', 'c' or 'python', got {backend!r}")
        if merges is not None and merges.base_vocab_size != len(vocabulary):
            raise MergesError(
                f"the merges were trained on a base vocabulary of {merges.base_vocab_size} tokens but this "
                f"vocabulary has {len(vocabulary)}: the merges do not match the vocabulary; retrain them"
            )
        self.vocabulary = vocabulary
        self.merges = merges
        self.default_domain = default_domain
        self.random_index_offset = bool(random_index_offset)
        self.unknown = unknown
        self.add_special_tokens = bool(add_special_tokens)
        self.backend = backend
        self.unknown_value_count = 0  # categorical values written as <unk> so far (unknown="unk")
        self._unknown_in_call = 0
        self._warned_fields: set[str] = set()
        self._generic_logged: set[tuple[str, str]] = set()  # (layout, schema written) the generic path logged
        self._hash: str | None = None
        # id(schema read from a graph) -> (that schema, the schema it is written with, its token id, None for an
        # exact match or the generic path's record); holding the schema keeps its id from being reused
        self._schema_cache: dict[int, tuple[GraphSchema, GraphSchema, int, dict[str, Any] | None]] = {}

    # ------------------------------------------------------------------ ids and identity
    @property
    def base_vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def vocab_size(self) -> int:
        return self.merges.vocab_size if self.merges is not None else self.base_vocab_size

    @property
    def target_node_token_id(self) -> int:
        return self.special_id("<target_node>")

    @property
    def target_edge_token_id(self) -> int:
        return self.special_id("<target_edge>")

    @property
    def duplicate_token_id(self) -> int:
        return self.special_id("<dup>")

    @property
    def continuous_tolerance(self) -> float:
        """Largest decode error of a continuous value: ``0.5 * 10**-continuous_decimals``."""
        return 0.5 * 10.0 ** (-self.vocabulary.continuous_decimals)

    def _settings(self) -> dict[str, Any]:
        return {
            "default_domain": self.default_domain,
            "random_index_offset": self.random_index_offset,
            "unknown": self.unknown,
            "add_special_tokens": self.add_special_tokens,
        }

    def _merges_record(self) -> dict[str, Any] | None:
        if self.merges is None:
            return None
        return {
            "model_type": self.merges.model_type,
            "sha256": self.merges.sha256(),
            "base_vocab_size": self.merges.base_vocab_size,
            "pieces": [list(p) for p in self.merges.pieces],
        }

    @property
    def content_hash(self) -> str:
        if self._hash is None:
            payload = {"vocabulary": self.vocabulary.to_json(), "settings": self._settings(),
                       "merges": self._merges_record()}
            blobs = (self.merges.model,) if self.merges is not None else ()
            self._hash = content_hash(payload, *blobs)
        return self._hash

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Readable token strings; a merged token shows its base tokens joined by spaces in ``⟨⟩``."""
        tokens = self.vocabulary.tokens
        out = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id < len(tokens):
                out.append(tokens[token_id])
            elif self.merges is not None and token_id < self.vocab_size:
                piece = self.merges.pieces[token_id - len(tokens)]
                out.append("⟨" + " ".join(tokens[i] for i in piece) + "⟩")
            else:
                out.append(f"<invalid:{token_id}>")
        return out

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        graphs: Iterable[Data],
        *,
        num_index_tokens: int = 512,
        continuous_decimals: int = 4,
        continuous_base: int = 1000,
        merges: str | None = None,
        num_merges: int = 8000,
        max_piece_length: int = 64,
        merges_max_graphs: int | None = None,
        default_domain: str = "generic",
        random_index_offset: bool = False,
        unknown: str = "error",
        add_special_tokens: bool = True,
        backend: str = "auto",
        declared_values: Mapping[tuple[str, str], Sequence[Sequence[int]]] | None = None,
    ) -> EulerianTokenizer:
        """Build the vocabulary from a corpus (any mix of domains), optionally with merges.

        Args:
            graphs: the training graphs; every schema and categorical value seen becomes a token.
            declared_values: ``{(domain, field): [values of column 0, values of column 1, ...]}``,
                categorical values to give tokens even where the corpus lacks them (e.g.
                ``gfm.data.molecules.molecule_feature_values()`` for ``("molecules", "x")``), so
                graphs of the same domain from other datasets need no ``<unk>``. Only pairs
                whose domain and field occur in the corpus are used, up to the widest such field.
            num_index_tokens: ``V``, single-token node labels (larger labels use several tokens).
            continuous_decimals: decimal places kept of continuous attributes (the declared precision).
            continuous_base: base of the digit tokens of continuous values.
            merges: ``None``, ``"bpe"`` or ``"unigram"``: learn SentencePiece merges on the
                canonical (unseeded) base sequences of ``graphs``.
            num_merges: merged tokens to learn (a soft limit).
            max_piece_length: longest merged token, in base tokens.
            merges_max_graphs: train merges on at most this many graphs (the first ones).

        Returns:
            The trained tokenizer.
        """
        warned: set[str] = set()
        schemas: set[GraphSchema] = set()
        pending: dict[tuple[str, str], list[np.ndarray]] = {}
        values: dict[tuple[str, str], list[np.ndarray]] = {}
        graph_list: list[Data] | None = [] if merges is not None else None
        pending_rows = 0

        def flush() -> None:
            for key, arrays in pending.items():
                width = max(a.shape[1] for a in arrays)
                known = values.setdefault(key, [])
                known.extend(np.zeros(0, dtype=np.int64) for _ in range(width - len(known)))
                for column in range(width):
                    parts = [a[:, column] for a in arrays if a.shape[1] > column] + [known[column]]
                    known[column] = np.unique(np.concatenate(parts))
            pending.clear()

        count = 0
        for index, graph in enumerate(graphs):
            arrays = read_graph(graph, index, default_domain, warned)
            schemas.add(arrays.schema)
            for spec in arrays.schema.node_fields + arrays.schema.edge_fields:
                if spec.kind != "categorical":
                    continue
                fields = arrays.node_fields if spec.name in NODE_FIELDS else arrays.edge_fields
                pending.setdefault((arrays.schema.domain, spec.name), []).append(fields[spec.name])
                pending_rows += len(fields[spec.name])
            if pending_rows > 2_000_000:
                flush()
                pending_rows = 0
            if graph_list is not None:
                graph_list.append(graph)
            count += 1
        flush()
        if count == 0:
            raise ValueError("EulerianTokenizer.train: got no graphs; pass the training corpus")
        # the generic schema: structure only under default_domain, for graphs of a layout or domain
        # the corpus never showed (encode(unknown="unk"); see _resolve_schema)
        schemas.update(GraphSchema(default_domain, directed, (), ()) for directed in (False, True))
        for key, columns in (declared_values or {}).items():
            if key not in values:
                continue  # no graph of this domain has this field: its tokens would never be read
            known = values[key]
            for column, declared in enumerate(columns[: len(known)]):  # columns the corpus's layouts have
                known[column] = np.unique(np.concatenate([known[column], np.asarray(declared, dtype=np.int64)]))
        vocabulary = EulerianVocabulary(
            schemas,
            {key: [v.tolist() for v in columns] for key, columns in values.items()},
            num_index_tokens=num_index_tokens,
            continuous_decimals=continuous_decimals,
            continuous_base=continuous_base,
        )
        tokenizer = cls(
            vocabulary,
            default_domain=default_domain,
            random_index_offset=random_index_offset,
            unknown=unknown,
            add_special_tokens=add_special_tokens,
            backend=backend,
        )
        logger.info(
            "Eulerian vocabulary: %d tokens, %d schemas, from %d graphs", len(vocabulary), len(vocabulary.schemas), count
        )
        if merges is not None:
            assert graph_list is not None
            sample = graph_list[:merges_max_graphs] if merges_max_graphs else graph_list
            bodies = []
            for start in range(0, len(sample), _DEFAULT_BATCH):
                chunk = sample[start : start + _DEFAULT_BATCH]
                batch = tokenizer._encode_base(
                    chunk, seeds=[None] * len(chunk), target_nodes=None, target_edges=None, random_offset=False,
                    unknown="error", add_special_tokens=True, return_node_order=False, index_offset=start,
                )
                bodies.extend(tokenizer._bodies(batch))
            outside = {EULERIAN_SPECIAL_TOKENS.index(t) for t in _OUTSIDE_MERGES}
            alphabet = [i for i in range(len(vocabulary)) if i not in outside]
            tokenizer.merges = LearnedMerges.train(
                bodies,
                base_vocab_size=len(vocabulary),
                alphabet=alphabet,
                model_type=merges,
                num_merges=num_merges,
                max_piece_length=max_piece_length,
            )
            tokenizer._hash = None
        return tokenizer

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        graph: Data,
        *,
        seed: int | None = None,
        target_node: int | None = None,
        target_edge: tuple[int, int] | None = None,
        random_offset: bool | None = None,
        unknown: str | None = None,
        add_special_tokens: bool | None = None,
        use_merges: bool = True,
        return_node_order: bool = False,
    ) -> TokenizedGraph:
        """Tokenize one graph.

        Args:
            graph: a PyG ``Data`` (see docs/CONTRACTS.md for the field conventions).
            seed: ``None`` for the canonical walk; an integer for a seeded random walk (the same
                seed always gives the same sequence).
            target_node: mark this node (original id) for a node task: appends
                ``<target_node> LABEL`` and sets ``metadata["target_node"]`` to its new index.
            target_edge: mark the pair ``(u, v)`` (original ids; need not be an edge) likewise.
            random_offset: draw a random cyclic offset for the node labels (augmentation).
            unknown: ``"error"`` (default) or ``"unk"``: write unseen categorical values as
                ``<unk>`` and count them (``self.unknown_value_count``, one warning per call).
            add_special_tokens: ``<bos>`` / ``<eos>`` around the sequence.
            use_merges: apply the learned merges (when the tokenizer has them).
            return_node_order: put ``metadata["node_order"]``: the original id of each new index.

        Returns:
            The :class:`TokenizedGraph`.
        """
        return self.encode_batch(
            [graph],
            seed=seed,
            target_node=None if target_node is None else [target_node],
            target_edge=None if target_edge is None else [target_edge],
            random_offset=random_offset,
            unknown=unknown,
            add_special_tokens=add_special_tokens,
            use_merges=use_merges,
            return_node_order=return_node_order,
        )[0]

    def encode_batch(
        self,
        graphs: Iterable[Data],
        *,
        seed: int | Sequence[int | None] | None = None,
        target_node: Sequence[int | None] | None = None,
        target_edge: Sequence[tuple[int, int] | None] | None = None,
        random_offset: bool | None = None,
        unknown: str | None = None,
        add_special_tokens: bool | None = None,
        use_merges: bool = True,
        return_node_order: bool = False,
        batch_size: int = _DEFAULT_BATCH,
    ) -> list[TokenizedGraph]:
        """Tokenize many graphs at once (vectorized; the fast path). Arguments as in :meth:`encode`,
        with ``seed`` either one value for every graph or one per graph, and per-graph target lists."""
        graphs = list(graphs)
        count = len(graphs)
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed)] * count
        else:  # one seed per graph (list, array, tensor)
            seeds = [None if s is None else int(s) for s in seed]
        if len(seeds) != count:
            raise ValueError(f"encode_batch: got {len(seeds)} seeds for {count} graphs")
        for name, targets in (("target_node", target_node), ("target_edge", target_edge)):
            if targets is not None and len(targets) != count:
                raise ValueError(f"encode_batch: got {len(targets)} {name} entries for {count} graphs")
        unknown = self.unknown if unknown is None else unknown
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
        random_offset = self.random_index_offset if random_offset is None else bool(random_offset)
        specials = self.add_special_tokens if add_special_tokens is None else bool(add_special_tokens)
        out: list[TokenizedGraph] = []
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            encoded = self._encode_base(
                graphs[start:stop],
                seeds=seeds[start:stop],
                target_nodes=None if target_node is None else list(target_node[start:stop]),
                target_edges=None if target_edge is None else list(target_edge[start:stop]),
                random_offset=random_offset,
                unknown=unknown,
                add_special_tokens=specials,
                return_node_order=return_node_order,
                index_offset=start,
            )
            if use_merges and self.merges is not None:
                out.extend(self._merge(encoded))
            else:
                out.extend(self._split(encoded))
        return out

    # -- the base stream, batched -------------------------------------------------------------
    def _use_kernel(self) -> bool:
        return self.backend == "c" or (self.backend == "auto" and load_kernel() is not None)

    def _walk(self, prepared: PreparedBatch, seeds: list[int | None]):
        if self._use_kernel():
            seed_array = np.fromiter(((s or 0) & 0xFFFFFFFFFFFFFFFF for s in seeds), dtype=np.uint64, count=len(seeds))
            randomize = np.fromiter((s is not None for s in seeds), dtype=np.uint8, count=len(seeds))
            return walk_batch_c(prepared.node_ptr, prepared.edge_ptr, prepared.eu, prepared.ev, seed_array, randomize)
        return walk_batch_python(prepared.node_ptr, prepared.edge_ptr, prepared.eu, prepared.ev, seeds)

    def _index_label_tokens(self, label: int) -> list[int]:
        vocabulary = self.vocabulary
        base = vocabulary.num_index_tokens
        if label < base:
            return [vocabulary.index_base + label]
        digits = []
        while label:
            digits.append(vocabulary.index_base + label % base)
            label //= base
        return [vocabulary.index_length_base + len(digits) - 2] + digits[::-1]

    def _attribute_blocks(
        self,
        graphs: list[GraphArrays],
        schema: GraphSchema,
        members: list[int],
        rows_ptr: np.ndarray,
        selected: np.ndarray | None,
        node_level: bool,
        unknown: str,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Token blocks ``(lengths [R], flat)`` of the node (or edge) rows of one schema group.

        ``selected`` picks rows of the group's concatenated rows (edges: the kept entries).
        """
        specs = schema.node_fields if node_level else schema.edge_fields
        if not specs:
            return None
        vocabulary = self.vocabulary
        blocks = []
        for spec in specs:
            parts = [(graphs[i].node_fields if node_level else graphs[i].edge_fields)[spec.name] for i in members]
            values = np.concatenate(parts) if len(parts) > 1 else parts[0]
            if selected is not None:
                values = values[selected]
            if spec.kind == "categorical":
                ids, known = vocabulary.categorical_tokens(schema.domain, spec.name, values)
                if not known.all():
                    self._unknown_values(graphs, members, rows_ptr, selected, spec.name, values, known, unknown, schema)
                blocks.append((np.full(len(values), spec.width, dtype=np.int64), ids.reshape(-1)))
            else:
                blocks.append(vocabulary.continuous_tokens(schema.domain, spec.name, values))
        return _concat_rows(blocks, len(blocks[0][0]))

    def _unknown_values(self, graphs, members, rows_ptr, selected, name, values, known, unknown, schema) -> None:
        missing = np.argwhere(~known)
        if unknown == "unk":
            self.unknown_value_count += len(missing)
            self._unknown_in_call += len(missing)
            source_rows = missing[:, 0] if selected is None else selected[missing[:, 0]]
            member = np.searchsorted(rows_ptr, source_rows, side="right") - 1
            np.add.at(self._unknown_per_graph, np.asarray(members, dtype=np.int64)[member], 1)
            return
        row, column = (int(v) for v in missing[0])
        source_row = int(selected[row]) if selected is not None else row
        member = int(np.searchsorted(rows_ptr, source_row, side="right") - 1)
        local = source_row - int(rows_ptr[member])
        graph = graphs[members[member]]
        what = "node" if name in NODE_FIELDS else "edge index entry"
        seen = self.vocabulary.categorical.get((schema.domain, name))
        hint = "" if seen is None or column >= len(seen) else f" (seen: {seen[column][0][:12].tolist()}...)"
        raise UnknownValueError(
            f"{graph.label}: {name}[{local}, {column}] = {int(values[row, column])} ({what} {local}) was not seen "
            f"when the vocabulary was trained for domain '{schema.domain}'{hint}; retrain the tokenizer on data "
            "that covers it, or encode with unknown='unk' to write <unk> (counted)"
        )

    def _encode_base(
        self,
        graphs: list[Data],
        *,
        seeds: list[int | None],
        target_nodes: list[int | None] | None,
        target_edges: list[tuple[int, int] | None] | None,
        random_offset: bool,
        unknown: str,
        add_special_tokens: bool,
        return_node_order: bool,
        index_offset: int = 0,
    ) -> _EncodedBatch:
        """Base tokens of a batch, vectorized over all its graphs.

        Stages: read and validate every graph (:mod:`gfm.tokenization.eulerian.graphs`); walk
        them (C kernel or Python, :mod:`gfm.tokenization.eulerian.walk`); write the attribute
        tokens of every node and kept edge entry per schema group into a token *pool*; describe
        each sequence as *segments* of that pool (per graph a prefix, three per visit, a
        suffix); copy the segments and add the position links (:func:`emit_tokens_numpy` or its
        C twin). ``index_offset`` is the batch's position in the caller's list (error messages).
        """
        vocabulary = self.vocabulary
        self._unknown_in_call = 0
        self._unknown_per_graph = np.zeros(len(graphs), dtype=np.int64)
        metadata: list[dict[str, Any]] = [{} for _ in range(len(graphs))]
        generic: list[int] = []
        arrays = [read_graph(g, index_offset + i, self.default_domain, self._warned_fields) for i, g in enumerate(graphs)]
        domains = [a.schema.domain for a in arrays]  # the graphs' own, also on the generic path
        schema_ids = np.empty(len(arrays), dtype=np.int64)
        cache = self._schema_cache
        for i, a in enumerate(arrays):
            hit = cache.get(id(a.schema))
            if hit is None or hit[0] is not a.schema:
                hit = cache[id(a.schema)] = (a.schema, *self._resolve_schema(a.schema))
            if hit[3] is not None:  # the generic path
                if unknown == "error":
                    raise UnknownValueError(self._unknown_schema_message(a))
                metadata[i]["generic_schema"] = dict(hit[3])
                generic.append(i)
            a.schema = hit[1]
            schema_ids[i] = hit[2]
        notes = sorted({(metadata[i]["generic_schema"]["layout"], metadata[i]["generic_schema"]["written_as"])
                        for i in generic})
        if notes:
            new_notes = [note for note in notes if note not in self._generic_logged]
            self._generic_logged.update(new_notes)
            (logger.warning if new_notes else logger.debug)(
                "%d graph(s) of a layout the vocabulary never saw were encoded through the generic path (%s); "
                "TokenizedGraph.metadata['generic_schema'] says what was written and what was left out",
                len(generic), "; ".join(f"{layout} -> {written}" for layout, written in notes),
            )
        prepared = prepare_batch(arrays, vocabulary.max_continuous_magnitude(), vocabulary.continuous_decimals)
        num_graphs = len(arrays)
        node_ptr, raw_ptr, edge_ptr = prepared.node_ptr, prepared.raw_ptr, prepared.edge_ptr
        num_nodes = np.diff(node_ptr)
        total_nodes = int(node_ptr[-1])

        visit_ptr, visit_node, visit_edge, visit_flags, rank_local = self._walk(prepared, seeds)
        visits = np.diff(visit_ptr)
        visit_graph = np.repeat(np.arange(num_graphs), visits)
        global_node = node_ptr[visit_graph] + visit_node
        rank = rank_local  # [total_nodes], local ranks

        # -- attribute blocks: nodes and kept edge entries, per schema group ----------------------
        node_lengths = np.ones(total_nodes, dtype=np.int64)
        node_start = np.zeros(total_nodes, dtype=np.int64)
        node_parts: list[np.ndarray] = []
        edge_lengths = np.zeros(int(raw_ptr[-1]), dtype=np.int64)  # per edge_index entry (kept ones filled)
        edge_start = np.zeros_like(edge_lengths)
        edge_parts: list[np.ndarray] = []
        node_cursor = edge_cursor = 0
        single = len(prepared.groups) == 1
        if not single:
            # kept edge entries grouped by schema (stable), and each graph's first row in its group
            entry_graph = np.repeat(np.arange(num_graphs), np.diff(edge_ptr))
            group_of_graph = np.empty(num_graphs, dtype=np.int64)
            raw_row_offset = np.empty(num_graphs, dtype=np.int64)
            for index, members in enumerate(prepared.groups.values()):
                group_of_graph[members] = index
                raw_row_offset[members] = _offsets(np.diff(raw_ptr)[members])[:-1]
            entry_group = group_of_graph[entry_graph]
            entry_order = np.argsort(entry_group, kind="stable")
            entry_group_ptr = _offsets(np.bincount(entry_group, minlength=len(prepared.groups)))
        for index, (schema, members) in enumerate(prepared.groups.items()):
            if single:
                group_nodes = np.arange(total_nodes, dtype=np.int64)
            else:
                group_nodes = np.concatenate([np.arange(node_ptr[i], node_ptr[i + 1]) for i in members])
            member_rows = _offsets(num_nodes[members])
            blocks = self._attribute_blocks(arrays, schema, members, member_rows, None, node_level=True, unknown=unknown)
            if blocks is None:
                lengths = np.ones(len(group_nodes), dtype=np.int64)
                flat = np.full(len(group_nodes), vocabulary.token_to_id["<node>"], dtype=np.int64)
            else:
                lengths, flat = blocks
            node_lengths[group_nodes] = lengths
            node_start[group_nodes] = node_cursor + np.cumsum(lengths) - lengths
            node_parts.append(flat)
            node_cursor += len(flat)
            if schema.edge_fields:
                if single:
                    entries = prepared.edge_entry
                    selected = entries
                    raw_rows_ptr = raw_ptr
                else:
                    kept = entry_order[entry_group_ptr[index] : entry_group_ptr[index + 1]]
                    entries = prepared.edge_entry[kept]
                    owner = entry_graph[kept]
                    selected = entries - raw_ptr[owner] + raw_row_offset[owner]
                    raw_rows_ptr = _offsets(np.diff(raw_ptr)[members])
                edge_blocks = self._attribute_blocks(arrays, schema, members, raw_rows_ptr, selected, node_level=False,
                                                     unknown=unknown)
                assert edge_blocks is not None
                lengths, flat = edge_blocks
                edge_lengths[entries] = lengths
                edge_start[entries] = edge_cursor + np.cumsum(lengths) - lengths
                edge_parts.append(flat)
                edge_cursor += len(flat)
        if self._unknown_in_call:
            logger.warning(
                "%d categorical attribute value(s) unseen in training were written as <unk> "
                "(%d so far with this tokenizer)", self._unknown_in_call, self.unknown_value_count,
            )

        # -- offsets, prefix and suffix per graph -----------------------------------------------
        modulus = np.maximum(num_nodes, vocabulary.num_index_tokens)
        offsets = np.zeros(num_graphs, dtype=np.int64)
        if random_offset:
            fresh = np.random.default_rng()
            for g in range(num_graphs):
                if num_nodes[g] == 0:
                    continue
                if seeds[g] is None:
                    offsets[g] = int(fresh.integers(0, modulus[g]))
                else:
                    offsets[g] = SplitMix64(seeds[g] ^ _OFFSET_SALT).below(int(modulus[g]))
        for g in np.nonzero(self._unknown_per_graph)[0].tolist():
            metadata[g]["unknown_values"] = int(self._unknown_per_graph[g])
        simple = target_nodes is None and target_edges is None and not return_node_order and not offsets.any()
        if simple:  # the common case, vectorized: [<bos>] <graph:...> ... [<eos>]
            specials = 1 if add_special_tokens else 0
            prefix = np.stack([np.full(num_graphs, self.bos_token_id), schema_ids], axis=1)[:, 1 - specials :]
            prefix_tokens = prefix.reshape(-1)
            prefix_lengths = np.full(num_graphs, 1 + specials, dtype=np.int64)
            suffix_tokens = np.full(num_graphs * specials, self.eos_token_id, dtype=np.int64)
            suffix_nodes = np.full(num_graphs * specials, -1, dtype=np.int64)
            suffix_lengths = np.full(num_graphs, specials, dtype=np.int64)
        else:
            prefix_tokens, prefix_lengths, suffix_tokens, suffix_nodes, suffix_lengths = self._prefix_suffix(
                arrays, schema_ids, offsets, modulus, rank, node_ptr, target_nodes, target_edges,
                add_special_tokens, return_node_order, metadata,
            )

        # -- the pool every segment copies from ---------------------------------------------------
        constants = np.array([self.jump_token_id, self.duplicate_token_id,
                              vocabulary.token_to_id["<fwd>"], vocabulary.token_to_id["<bwd>"]], dtype=np.int64)
        node_flat = np.concatenate(node_parts) if node_parts else np.zeros(0, dtype=np.int64)
        edge_flat = np.concatenate(edge_parts) if edge_parts else np.zeros(0, dtype=np.int64)
        is_new = np.zeros(len(global_node), dtype=bool)
        first_visit = np.empty(total_nodes, dtype=np.int64)
        first_visit[global_node[::-1]] = np.arange(len(global_node) - 1, -1, -1)
        is_new[first_visit] = True
        revisit = np.nonzero(~is_new)[0]
        revisit_rank = rank[global_node[revisit]]
        revisit_graph = visit_graph[revisit]
        labels = (revisit_rank + offsets[revisit_graph]) % modulus[revisit_graph]
        index_lengths, index_flat = vocabulary.index_tokens(labels)

        pool_parts = [constants, prefix_tokens, suffix_tokens, node_flat, edge_flat, index_flat]
        pool_ptr = _offsets(np.fromiter((len(p) for p in pool_parts), dtype=np.int64, count=len(pool_parts)))
        pool = np.concatenate(pool_parts)
        # node of each suffix token (the pool's start: constants, prefixes, suffixes)
        pool_node = np.concatenate([np.full(int(pool_ptr[2]), -1, dtype=np.int64), suffix_nodes])
        JUMP, DUP, FWD, BWD = 0, 1, 2, 3  # noqa: N806 - positions in the constants block
        prefix_start = pool_ptr[1] + _offsets(prefix_lengths)[:-1]
        suffix_start = pool_ptr[2] + _offsets(suffix_lengths)[:-1]

        # -- segments: per graph [prefix] + per visit [step-lead, edge block, visit] + [suffix] ----
        segments_per_graph = 2 + 3 * visits
        segment_ptr = _offsets(segments_per_graph)
        segment_start = np.zeros(int(segment_ptr[-1]), dtype=np.int64)
        segment_length = np.zeros(int(segment_ptr[-1]), dtype=np.int64)
        segment_node = np.full(int(segment_ptr[-1]), -1, dtype=np.int64)
        if (suffix_nodes >= 0).any():
            segment_node[segment_ptr[1:] - 1] = -2
        segment_start[segment_ptr[:-1]] = prefix_start
        segment_length[segment_ptr[:-1]] = prefix_lengths
        segment_start[segment_ptr[1:] - 1] = suffix_start
        segment_length[segment_ptr[1:] - 1] = suffix_lengths
        local_visit = np.arange(len(visit_graph)) - visit_ptr[visit_graph]
        slot = segment_ptr[visit_graph] + 1 + 3 * local_visit
        flags = visit_flags.astype(np.int64)
        starts_component = (flags & FLAG_COMPONENT_START) != 0
        duplicate = (flags & FLAG_DUPLICATE) != 0
        reversed_step = (flags & FLAG_REVERSED) != 0
        real = ~starts_component & ~duplicate
        directed = np.fromiter((a.schema.directed for a in arrays), dtype=bool, count=num_graphs)[visit_graph]
        lead = np.full(len(visit_graph), -1, dtype=np.int64)
        lead[starts_component & (local_visit > 0)] = JUMP
        lead[duplicate] = DUP
        lead[real & directed] = np.where(reversed_step[real & directed], BWD, FWD)
        has_lead = lead >= 0
        segment_start[slot[has_lead]] = lead[has_lead]
        segment_length[slot[has_lead]] = 1
        if len(edge_flat):
            entry = prepared.edge_entry[edge_ptr[visit_graph[real]] + visit_edge[real]]
            segment_start[slot[real] + 1] = pool_ptr[4] + edge_start[entry]
            segment_length[slot[real] + 1] = edge_lengths[entry]
        new_visits = np.nonzero(is_new)[0]
        segment_start[slot[new_visits] + 2] = pool_ptr[3] + node_start[global_node[new_visits]]
        segment_length[slot[new_visits] + 2] = node_lengths[global_node[new_visits]]
        segment_node[slot + 2] = rank[global_node]
        segment_start[slot[revisit] + 2] = pool_ptr[5] + np.cumsum(index_lengths) - index_lengths
        segment_length[slot[revisit] + 2] = index_lengths

        directed_graph = np.fromiter((a.schema.directed for a in arrays), dtype=np.uint8, count=num_graphs)
        emit = emit_tokens_c if self._use_kernel() else emit_tokens_numpy
        ids, node_index, token_ptr, link_src, link_dst, link_type, link_ptr = emit(
            segment_ptr, segment_start, segment_length, segment_node, pool, pool_node, visit_ptr, visit_flags,
            directed_graph,
        )

        return _EncodedBatch(
            ids=ids,
            node_index=node_index,
            token_ptr=token_ptr,
            link_src=link_src,
            link_dst=link_dst,
            link_type=link_type,
            link_ptr=link_ptr,
            prefix_specials=np.full(num_graphs, 1 if add_special_tokens else 0, dtype=np.int64),
            suffix_length=suffix_lengths,
            num_nodes=num_nodes,
            domains=domains,
            metadata=metadata,
        )

    def _prefix_suffix(self, arrays, schema_ids, offsets, modulus, rank, node_ptr, target_nodes, target_edges,
                       add_special_tokens, return_node_order, metadata):
        """Per-graph prefix (``<bos>``, schema, offset) and suffix (targets, ``<eos>``) tokens, one graph at a time."""
        num_graphs = len(arrays)
        num_nodes = np.diff(node_ptr)
        prefix_tokens: list[int] = []
        prefix_lengths = np.empty(num_graphs, dtype=np.int64)
        suffix_tokens: list[int] = []
        suffix_nodes: list[int] = []
        suffix_lengths = np.empty(num_graphs, dtype=np.int64)
        bos, eos = self.bos_token_id, self.eos_token_id
        for g in range(num_graphs):
            before = len(prefix_tokens)
            if add_special_tokens:
                prefix_tokens.append(bos)
            prefix_tokens.append(schema_ids[g])
            if offsets[g]:
                prefix_tokens.extend(self._index_label_tokens(int(offsets[g])))
            prefix_lengths[g] = len(prefix_tokens) - before
            before = len(suffix_tokens)
            n = int(num_nodes[g])
            base = int(node_ptr[g])
            if target_nodes is not None and target_nodes[g] is not None:
                node = self._check_target(arrays[g], target_nodes[g], "target_node")
                label = self._index_label_tokens(int((rank[base + node] + offsets[g]) % modulus[g]))
                suffix_tokens.append(self.target_node_token_id)
                suffix_tokens.extend(label)
                suffix_nodes.append(-1)
                suffix_nodes.extend([int(rank[base + node])] * len(label))
                metadata[g]["target_node"] = int(rank[base + node])
            if target_edges is not None and target_edges[g] is not None:
                pair = target_edges[g]
                if len(pair) != 2:
                    raise ValueError(f"{arrays[g].label}: target_edge must be a pair (u, v), got {pair!r}")
                u = self._check_target(arrays[g], pair[0], "target_edge")
                v = self._check_target(arrays[g], pair[1], "target_edge")
                suffix_tokens.append(self.target_edge_token_id)
                suffix_nodes.append(-1)
                for node in (u, v):
                    label = self._index_label_tokens(int((rank[base + node] + offsets[g]) % modulus[g]))
                    suffix_tokens.extend(label)
                    suffix_nodes.extend([int(rank[base + node])] * len(label))
                metadata[g]["target_edge"] = [int(rank[base + u]), int(rank[base + v])]
            if add_special_tokens:
                suffix_tokens.append(eos)
                suffix_nodes.append(-1)
            suffix_lengths[g] = len(suffix_tokens) - before
            if return_node_order:
                order = np.empty(n, dtype=np.int64)
                order[rank[base : base + n]] = np.arange(n)
                metadata[g]["node_order"] = order.tolist()
            if offsets[g]:
                metadata[g]["index_offset"] = int(offsets[g])
        return (
            np.asarray(prefix_tokens, dtype=np.int64),
            prefix_lengths,
            np.asarray(suffix_tokens, dtype=np.int64),
            np.asarray(suffix_nodes, dtype=np.int64),
            suffix_lengths,
        )

    @staticmethod
    def _check_target(arrays: GraphArrays, node: Any, what: str) -> int:
        try:
            node = int(node)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{arrays.label}: {what} must be a node id, got {node!r}") from err
        if not 0 <= node < arrays.num_nodes:
            raise ValueError(
                f"{arrays.label}: {what} {node} is not a node id: the graph has {arrays.num_nodes} nodes"
            )
        return node

    def _unknown_schema_message(self, arrays: GraphArrays) -> str:
        schema = arrays.schema
        same_domain = [s.token for s in self.vocabulary.schemas if s.domain == schema.domain]
        known = (
            f"known layouts for domain '{schema.domain}': {same_domain}"
            if same_domain
            else f"the vocabulary has no domain '{schema.domain}' (known: "
            f"{sorted({s.domain for s in self.vocabulary.schemas})})"
        )
        return (
            f"{arrays.label}: its layout {schema.token} was not seen when the vocabulary was trained; {known}. "
            "Encode with unknown='unk' to write it through the generic path (recorded in "
            "metadata['generic_schema']), retrain the tokenizer with graphs of this layout, or convert the graph's "
            "fields to a known one"
        )

    def _resolve_schema(self, schema: GraphSchema) -> tuple[GraphSchema, int, dict[str, Any] | None]:
        """The vocabulary schema a graph of layout ``schema`` is written with, its token id, and
        ``None`` (an exact match) or the generic path's record.

        The generic path (``unknown="unk"``), first match wins:

        1. the same fields and direction under ``default_domain`` (attribute values are then written
           with that domain's tokens, unseen ones as ``<unk>``);
        2. the graph's own domain, structure only (no attribute field);
        3. ``default_domain``, structure only: the *generic schema* every tokenizer trained by this
           gfm holds (``<graph:generic>``, ``<graph:generic|directed>``);
        4. none of them in the vocabulary (tokenizers saved before the generic schema existed):
           ``<unk>`` in the schema position, structure only.

        Fields the chosen schema lacks are not written as tokens; the record names them
        (``left_out``) so nothing disappears unannounced.
        """
        vocabulary = self.vocabulary
        known = vocabulary.find_schema(schema)
        if known is not None:
            return known, vocabulary.schema_token_id(known), None
        directed = schema.directed
        candidates = [
            GraphSchema(self.default_domain, directed, schema.node_fields, schema.edge_fields),
            GraphSchema(schema.domain, directed, (), ()),
            GraphSchema(self.default_domain, directed, (), ()),
        ]
        target, token_id = None, self.unk_token_id
        for candidate in candidates:
            target = vocabulary.find_schema(candidate)
            if target is not None:
                token_id = vocabulary.schema_token_id(target)
                break
        if target is None:
            target = schema_from_signature((schema.domain, directed, (), ()))
        kept = {spec.describe() for spec in target.node_fields + target.edge_fields}
        left_out = [spec.describe() for spec in schema.node_fields + schema.edge_fields if spec.describe() not in kept]
        record = {
            "domain": schema.domain,
            "layout": schema.token,
            "written_as": vocabulary.tokens[token_id],
            "left_out": left_out,
        }
        return target, token_id, record

    def _bodies(self, batch: _EncodedBatch) -> list[np.ndarray]:
        """The part of each base sequence merges apply to (schema token to the end of the walk)."""
        out = []
        for g in range(len(batch.num_nodes)):
            start = batch.token_ptr[g] + batch.prefix_specials[g]
            stop = batch.token_ptr[g + 1] - batch.suffix_length[g]
            out.append(batch.ids[start:stop])
        return out

    def _split(self, batch: _EncodedBatch) -> list[TokenizedGraph]:
        """One :class:`TokenizedGraph` per graph; its tensors are views into the batch's arrays."""
        token_sizes = np.diff(batch.token_ptr).tolist()
        link_sizes = np.diff(batch.link_ptr).tolist()
        ids = torch.from_numpy(batch.ids).split(token_sizes)
        node_index = torch.from_numpy(batch.node_index).split(token_sizes)
        links = torch.from_numpy(np.stack([batch.link_src, batch.link_dst])).split(link_sizes, dim=1)
        types = torch.from_numpy(batch.link_type).split(link_sizes)
        return [
            TokenizedGraph(
                input_ids=ids[g],
                node_index=node_index[g],
                edge_index=links[g],
                edge_type=types[g],
                num_nodes=num_nodes,
                domain=batch.domains[g],
                metadata=batch.metadata[g],
            )
            for g, num_nodes in enumerate(batch.num_nodes.tolist())
        ]

    def _merge(self, batch: _EncodedBatch) -> list[TokenizedGraph]:
        """Apply the learned merges to a base batch and remap node indices and links."""
        assert self.merges is not None
        bodies = self._bodies(batch)
        segmented = self.merges.segment(bodies)
        num_graphs = len(batch.num_nodes)
        unit_ids, unit_lengths, unit_counts = [], [], np.empty(num_graphs, dtype=np.int64)
        for g in range(num_graphs):
            start = batch.token_ptr[g]
            prefix = batch.prefix_specials[g]
            suffix = batch.suffix_length[g]
            ids, lengths = segmented[g]
            suffix_ids = batch.ids[batch.token_ptr[g + 1] - suffix : batch.token_ptr[g + 1]]
            unit_ids += [batch.ids[start : start + prefix], ids, suffix_ids]
            unit_lengths += [np.ones(prefix, dtype=np.int64), lengths, np.ones(suffix, dtype=np.int64)]
            unit_counts[g] = prefix + len(ids) + suffix
        merged_ids = np.concatenate(unit_ids)
        lengths = np.concatenate(unit_lengths)
        total = len(batch.ids)
        unit_of = np.repeat(np.arange(len(merged_ids)), lengths)
        unit_start = np.cumsum(lengths) - lengths
        marked = np.where(batch.node_index >= 0, np.arange(total), total)
        first = np.minimum.reduceat(marked, unit_start) if len(unit_start) else np.zeros(0, dtype=np.int64)
        merged_node = np.where(first < total, batch.node_index[np.minimum(first, total - 1)], -1)
        unit_ptr = _offsets(unit_counts)
        unit_graph = np.repeat(np.arange(num_graphs), unit_counts)

        # base links -> merged positions (global), without links inside one merged token
        link_graph = np.repeat(np.arange(num_graphs), np.diff(batch.link_ptr))
        src = unit_of[batch.link_src + batch.token_ptr[link_graph]]
        dst = unit_of[batch.link_dst + batch.token_ptr[link_graph]]
        keep = src != dst
        src, dst, kinds = src[keep], dst[keep], batch.link_type[keep]

        # positions that cover a common node (beyond sharing node_index)
        covered = np.nonzero(batch.node_index >= 0)[0]
        width = int(batch.num_nodes.max()) + 1 if num_graphs else 1
        pairs = np.unique(unit_of[covered] * width + batch.node_index[covered])
        pair_unit, pair_node = pairs // width, pairs % width
        order = np.lexsort((pair_unit, pair_node, unit_graph[pair_unit]))
        pair_unit, pair_node = pair_unit[order], pair_node[order]
        group_key = unit_graph[pair_unit] * width + pair_node
        boundaries = np.flatnonzero(np.diff(group_key)) + 1
        group_start = np.concatenate([[0], boundaries]).astype(np.int64)
        group_size = np.diff(np.append(group_start, len(group_key)))
        element_group = np.repeat(np.arange(len(group_start)), group_size)
        repeats = group_size[element_group]
        left = np.repeat(np.arange(len(pair_unit)), repeats)
        right = group_start[element_group[left]] + (
            np.arange(len(left)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        )
        left_unit, right_unit, node = pair_unit[left], pair_unit[right], pair_node[left]
        extra = (left_unit != right_unit) & ~((merged_node[left_unit] == node) & (merged_node[right_unit] == node))
        src = np.concatenate([src, left_unit[extra]])
        dst = np.concatenate([dst, right_unit[extra]])
        kinds = np.concatenate([kinds, np.full(int(extra.sum()), EDGE_TYPE_MERGED_NODE, dtype=np.int64)])
        key = np.unique((src * len(merged_ids) + dst) * 8 + kinds)
        kinds = key % 8
        src, dst = (key // 8) // len(merged_ids), (key // 8) % len(merged_ids)
        graph_of_link = unit_graph[src]
        link_ptr = _offsets(np.bincount(graph_of_link, minlength=num_graphs).astype(np.int64))
        src = src - unit_ptr[graph_of_link]
        dst = dst - unit_ptr[graph_of_link]
        merged = _EncodedBatch(
            ids=merged_ids,
            node_index=merged_node,
            token_ptr=unit_ptr,
            link_src=src,
            link_dst=dst,
            link_type=kinds,
            link_ptr=link_ptr,
            prefix_specials=batch.prefix_specials,
            suffix_length=batch.suffix_length,
            num_nodes=batch.num_nodes,
            domains=batch.domains,
            metadata=batch.metadata,
        )
        return self._split(merged)

    # ------------------------------------------------------------------ decoding
    def decode(
        self,
        sequence: TokenizedGraph | Sequence[int] | torch.Tensor | np.ndarray,
        *,
        unk_value: int = -1,
        strict: bool = True,
    ) -> Data:
        """Rebuild the graph from a token sequence (merged or base ids; trailing ``<pad>`` allowed).

        Nodes come back numbered by first visit (``metadata["node_order"]`` of the encoding maps
        them to the original ids); categorical attributes are exact, continuous ones within
        :attr:`continuous_tolerance`; undirected edges come back in both directions; targets
        come back as ``data.target_node`` / ``data.target_edge``.

        A sequence that starts with ``<bos>`` must end with ``<eos>``: one that stops early (cut
        to a ``max_length``, a generation that did not finish) is an error naming where it ended,
        how many tokens and nodes and edges were read, and what was expected next. A sequence
        encoded with ``add_special_tokens=False`` has no end marker, so only a cut inside a node,
        an edge or a multi-token index is detected there.

        Args:
            sequence: a :class:`TokenizedGraph` or its ``input_ids`` as any integer sequence.
            unk_value: value written for a categorical ``<unk>``.
            strict: ``False``: a sequence that ends early gives the graph read before the cut (every
                node, edge and target read completely; a part cut in the middle is left out), with
                ``data.partial = True`` and a logged warning; a complete one gives
                ``data.partial = False``. Malformed sequences are errors either way.

        Raises:
            EulerianDecodeError: the sequence is malformed, or (``strict=True``) ends early; the
                message gives the position and the reason.
        """
        if isinstance(sequence, TokenizedGraph):
            sequence = sequence.input_ids
        ids = np.asarray(sequence.tolist() if isinstance(sequence, torch.Tensor) else sequence, dtype=np.int64)
        if ids.ndim != 1:
            raise EulerianDecodeError(f"decode takes one sequence of ids, got shape {ids.shape}")
        while len(ids) and ids[-1] == self.pad_token_id:
            ids = ids[:-1]
        bad = np.nonzero((ids < 0) | (ids >= self.vocab_size))[0]
        if len(bad):
            raise EulerianDecodeError(
                f"position {int(bad[0])}: id {int(ids[bad[0]])} is outside the vocabulary [0, {self.vocab_size})"
            )
        given = len(ids)
        position_of = None
        if self.merges is not None and len(ids) and ids.max() >= self.base_vocab_size:
            ids, lengths = self.merges.expand(ids)
            position_of = np.repeat(np.arange(len(lengths)), lengths)
        return _Decoder(self, ids, position_of, unk_value, strict=strict, given=given).run()

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``eulerian_vocab.json``, ``eulerian_merges.model`` (with merges) and ``tokenizer_config.json``."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {**self.vocabulary.to_json(), "settings": self._settings(), "merges": self._merges_record()}
        atomic_write_json(directory / VOCAB_FILE, payload)
        if self.merges is not None:
            atomic_write_bytes(directory / MERGES_FILE, self.merges.model)
        elif (directory / MERGES_FILE).exists():
            (directory / MERGES_FILE).unlink()
        extra = {
            "format_version": _FORMAT_VERSIONS[-1],
            "vocab_file": VOCAB_FILE,
            "merges_file": MERGES_FILE if self.merges is not None else None,
            "base_vocab_size": self.base_vocab_size,
            "special_tokens": {name: EULERIAN_SPECIAL_TOKENS.index(name) for name in EULERIAN_SPECIAL_TOKENS},
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "mask_token_id": self.mask_token_id,
            "sep_token_id": self.sep_token_id,
            "jump_token_id": self.jump_token_id,
            "unk_token_id": self.unk_token_id,
            "target_node_token_id": self.target_node_token_id,
            "target_edge_token_id": self.target_edge_token_id,
            "edge_types": dict(_EDGE_TYPES),
            **self._settings(),
        }
        self._write_tokenizer_config(directory, extra)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> EulerianTokenizer:
        """Load a tokenizer written by :meth:`save_pretrained`; ``kwargs`` override constructor settings
        (``backend``, ``unknown``, ...) after the files were checked against their content hash.

        Raises:
            TokenizerLoadError: a missing or damaged file; a key this gfm does not write (named with
                its closest known key); a ``format_version`` / ``version`` this gfm does not read;
                special-token ids other than the fixed ones; settings in ``tokenizer_config.json``
                that differ from the vocabulary file's; merges that do not match the vocabulary; a
                content hash that differs from the files'. Each message names the file and the fix.
        """
        directory = Path(directory)
        config = read_tokenizer_config(directory)
        config_path = directory / TOKENIZER_CONFIG_NAME
        if config.get("tokenizer_class") != cls.__name__:
            raise TokenizerLoadError(
                f"{directory}: holds a {config.get('tokenizer_class')!r}, not an {cls.__name__}; "
                "load it with AutoGraphTokenizer.from_pretrained"
            )
        check_known_keys(config_path, config, _CONFIG_KEYS)
        check_version(config_path, "format_version", config.get("format_version", 1), _FORMAT_VERSIONS)
        cls._check_config_ids(config_path, config)
        vocab_path = directory / config.get("vocab_file", VOCAB_FILE)
        if not vocab_path.is_file():
            raise TokenizerLoadError(f"{directory}: missing {vocab_path.name}; save the tokenizer again")
        try:
            payload = json.loads(vocab_path.read_text())
        except json.JSONDecodeError as err:
            raise TokenizerLoadError(f"{vocab_path}: not valid JSON ({err}); save the tokenizer again") from err
        try:
            vocabulary = EulerianVocabulary.from_json(payload, str(vocab_path))
        except VocabularyError as err:
            raise TokenizerLoadError(str(err)) from err
        settings = payload.get("settings", {})
        check_known_keys(vocab_path, settings, _SETTINGS_KEYS, "settings")
        record = payload.get("merges")
        merges = None
        if record is not None:
            check_known_keys(vocab_path, record, _MERGES_RECORD_KEYS, "merges")
            merges_path = directory / (config.get("merges_file") or MERGES_FILE)
            if not merges_path.is_file():
                raise TokenizerLoadError(
                    f"{directory}: the vocabulary declares learned merges but {merges_path.name} is missing"
                )
            model = merges_path.read_bytes()
            try:
                merges = LearnedMerges(model, len(vocabulary), record.get("model_type", "bpe"))
            except MergesError as err:
                raise TokenizerLoadError(f"{merges_path}: {err}") from err
            if merges.base_vocab_size != record.get("base_vocab_size") or merges.sha256() != record.get("sha256") or [
                list(p) for p in merges.pieces
            ] != record.get("pieces"):
                raise TokenizerLoadError(
                    f"{merges_path}: the merges model does not match the vocabulary in {vocab_path.name} "
                    "(different SentencePiece model or pieces than the ones recorded at save time); save the "
                    "tokenizer again or retrain the merges"
                )
        elif (directory / MERGES_FILE).is_file():
            raise TokenizerLoadError(
                f"{directory}: found {MERGES_FILE} but the vocabulary records no merges: the merges do not "
                "match this vocabulary; remove the file or save the tokenizer again"
            )
        try:
            tokenizer = cls(vocabulary, merges, **settings)
        except ValueError as err:
            raise TokenizerLoadError(f"{vocab_path}: 'settings': {err}; restore the value or save the tokenizer "
                                     "again") from err
        for key in _SETTINGS_KEYS:
            if key in config and key in settings and config[key] != settings[key]:
                raise TokenizerLoadError(
                    f"{config_path}: {key!r} is {config[key]!r} but {vocab_path.name} (which decides) has "
                    f"{settings[key]!r}: the two files disagree, so one was edited and the edit would be ignored. "
                    f"To load with another setting, pass it: EulerianTokenizer.from_pretrained(directory, "
                    f"{key}={config[key]!r}); otherwise restore {settings[key]!r} in {config_path.name}"
                )
        stored = config.get("content_hash")
        if stored != tokenizer.content_hash:
            raise TokenizerLoadError(
                f"{directory}: content hash {tokenizer.content_hash[:12]}... of the files differs from the one in "
                f"tokenizer_config.json ({str(stored)[:12]}...): the files were changed after saving; save again"
            )
        for key, value in (("vocab_size", tokenizer.vocab_size), ("base_vocab_size", tokenizer.base_vocab_size)):
            if key in config and config[key] != value:
                raise TokenizerLoadError(
                    f"{config_path}: {key!r} is {config[key]!r} but the vocabulary in {vocab_path.name} has {value} "
                    "tokens: the file was edited; restore the value or save the tokenizer again"
                )
        return cls(vocabulary, merges, **{**settings, **kwargs}) if kwargs else tokenizer

    @classmethod
    def _check_config_ids(cls, config_path: Path, config: dict[str, Any]) -> None:
        """Special-token ids and link types recorded in ``tokenizer_config.json`` must be the fixed ones."""
        expected = {name: i for i, name in enumerate(EULERIAN_SPECIAL_TOKENS)}
        found: dict[str, tuple[str, Any]] = {}
        for token, key in _ID_KEYS.items():
            if key in config:
                found[token] = (key, config[key])
        recorded = config.get("special_tokens")
        if recorded is not None:
            check_known_keys(config_path, recorded, EULERIAN_SPECIAL_TOKENS, "special_tokens")
            for token, value in recorded.items():
                if value != expected[token] or token not in found:
                    found[token] = ("special_tokens", value)
        check_special_ids(config_path, found, expected, cls.__name__)
        types = config.get("edge_types")
        if types is not None and types != _EDGE_TYPES:
            raise TokenizerLoadError(
                f"{config_path}: 'edge_types' is {types!r} but this gfm's link types are {_EDGE_TYPES} (fixed, "
                "written into every corpus); restore them or save the tokenizer again"
            )


class _Truncated(EulerianDecodeError):
    """The sequence ends where more tokens were expected; ``short`` is the message without the advice."""

    def __init__(self, message: str, short: str) -> None:
        super().__init__(message)
        self.short = short


_CUT_ADVICE = "decode(..., strict=False) returns the graph read so far, marked graph.partial = True"


class _Decoder:
    """One pass over a base id sequence (see the module docstring for the grammar).

    ``given`` is the number of ids the caller passed (merged ids count once), for messages. With
    ``strict=False`` a sequence that ends early gives the graph of the nodes, edges and targets
    read completely before the cut (:meth:`mark` records that state after every complete part).
    """

    def __init__(self, tokenizer: EulerianTokenizer, ids: np.ndarray, position_of: np.ndarray | None, unk_value: int,
                 strict: bool = True, given: int | None = None):
        vocabulary = tokenizer.vocabulary
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.ids = ids.tolist()
        self.kind = vocabulary.kind[ids].tolist()
        self.payload = vocabulary.payload[ids].tolist()
        self.position_of = position_of
        self.unk_value = unk_value
        self.strict = strict
        self.given = len(self.ids) if given is None else given
        self.special = {name: EULERIAN_SPECIAL_TOKENS.index(name) for name in EULERIAN_SPECIAL_TOKENS}
        self.partial = False
        self.offset = 0
        self.count = 0
        self.visits: list[tuple[str, int, int, int]] = []
        self.steps: list[tuple[int, bool, bool, int]] = []  # (visit index, duplicate, against arc, position)
        self.targets: dict[str, list[tuple[int, int, int]]] = {}
        self.node_values: dict[str, list] = {}
        self.edge_values: dict[str, list] = {}
        self.state = "start"  # what was read last: "start" (schema, offset), "walk" (a visit), "targets"
        self._mark: tuple | None = None

    # -- helpers ------------------------------------------------------------------------------
    def where(self, position: int) -> str:
        if self.position_of is None:
            return f"position {position}"
        if position >= len(self.position_of):
            return f"the end of the sequence (base token {position})"
        return f"position {int(self.position_of[position])} (base token {position})"

    def name(self, position: int) -> str:
        if position >= len(self.ids):
            return "the end of the sequence"
        return repr(self.vocabulary.tokens[self.ids[position]])

    def read_so_far(self) -> str:
        edges = sum(1 for step in self.steps if not step[1])
        return f"{self.count} node{'' if self.count == 1 else 's'} and {edges} edge{'' if edges == 1 else 's'} read"

    def expected(self) -> str:
        """What may follow the last complete part (for the message of a sequence without ``<eos>``)."""
        schema = self.schema
        node = "<node>" if not schema.node_fields else "a new node's attribute tokens"
        if self.state == "targets":
            return "<target_node>, <target_edge> or <eos>"
        if self.state == "start":
            return f"the first node ({node}), <target_node>, <target_edge> or <eos>"
        if schema.directed:
            step = "<fwd> or <bwd> (the next edge)"
        elif schema.edge_fields:
            spec = schema.edge_fields[0]
            step = f"the next edge's attribute tokens ({schema.domain}/{spec.name}[0]...)"
        else:
            step = f"the next node ({node} or a node index <i:..>)"
        return f"{step}, <dup>, <jump>, <target_node>, <target_edge> or <eos>"

    def cut(self, position: int, short: str, advice: str) -> None:
        """Raise :class:`_Truncated`: the sequence ends at ``position`` where more was expected."""
        short = f"{self.where(position)}: {short}"
        raise _Truncated(f"{short}{advice}", short)

    def fail(self, position: int, reason: str) -> None:
        if position >= len(self.ids):
            self.cut(position, f"{reason} (after {self.given} tokens, {self.read_so_far()})",
                     f": the sequence was cut short (truncated to a max_length?); decode the whole sequence, or "
                     f"{_CUT_ADVICE}")
        raise EulerianDecodeError(f"{self.where(position)}: {reason}")

    def mark(self, state: str | None = None) -> None:
        """Record the state after a complete part (what ``strict=False`` returns if the sequence ends next)."""
        if state is not None:
            self.state = state
        self._mark = (len(self.visits), self.count, {k: len(v) for k, v in self.node_values.items()},
                      {k: len(v) for k, v in self.edge_values.items()}, len(self.steps), dict(self.targets),
                      self.offset, self.state)

    def restore(self) -> None:
        assert self._mark is not None
        visits, self.count, nodes, edges, steps, self.targets, self.offset, self.state = self._mark
        del self.visits[visits:]
        del self.steps[steps:]
        for values, lengths in ((self.node_values, nodes), (self.edge_values, edges)):
            for key, length in lengths.items():
                del values[key][length:]

    def read_index(self, p: int) -> tuple[int, int]:
        kind = self.kind[p]
        if kind == KIND_INDEX:
            return self.payload[p], p + 1
        digits = self.payload[p]
        label = 0
        for q in range(p + 1, p + 1 + digits):
            if q >= len(self.ids) or self.kind[q] != KIND_INDEX:
                self.fail(q, f"expected digit {q - p} of {digits} of a multi-token node index, got {self.name(q)}")
            label = label * self.vocabulary.num_index_tokens + self.payload[q]
        return label, p + 1 + digits

    def read_fields(self, p: int, specs, record: dict[str, list]) -> int:
        vocabulary = self.vocabulary
        domain = self.schema.domain
        for spec in specs:
            row = []
            for column in range(spec.width):
                if p >= len(self.ids):
                    self.fail(p, f"the sequence ends inside {domain}/{spec.name}[{column}]")
                if spec.kind == "categorical":
                    if self.ids[p] == self.special["<unk>"]:
                        row.append(self.unk_value)
                    elif self.kind[p] == KIND_CATEGORICAL and vocabulary.categorical_keys[self.payload[p]] == (
                        domain, spec.name, column
                    ):
                        row.append(vocabulary.categorical_value(self.ids[p]))
                    else:
                        self.fail(p, f"expected a value of {domain}/{spec.name}[{column}], got {self.name(p)}")
                    p += 1
                else:
                    if not (
                        self.kind[p] == KIND_CONTINUOUS_HEAD
                        and vocabulary.continuous_keys[self.payload[p]] == (domain, spec.name, column)
                    ):
                        self.fail(p, f"expected a value of {domain}/{spec.name}[{column}], got {self.name(p)}")
                    offset = self.ids[p] - vocabulary.continuous[(domain, spec.name)][column]
                    k = vocabulary.max_value_digits
                    digits, sign = (offset, 1) if offset <= k else (offset - k, -1)
                    magnitude = 0
                    for q in range(p + 1, p + 1 + digits):
                        if q >= len(self.ids) or self.kind[q] != KIND_DIGIT:
                            self.fail(q, f"expected digit {q - p} of {digits} of {domain}/{spec.name}[{column}], "
                                         f"got {self.name(q)}")
                        magnitude = magnitude * vocabulary.continuous_base + self.payload[q]
                    row.append(sign * magnitude)
                    p += 1 + digits
            record[spec.name].append(row)
        return p

    def read_visit(self, p: int, must_be_new: bool) -> int:
        if p >= len(self.ids):
            self.fail(p, "the sequence ends where a node was expected")
        kind = self.kind[p]
        if kind in (KIND_INDEX, KIND_INDEX_LENGTH):
            if must_be_new:
                self.fail(p, "a component must start at a new node, got a node index")
            label, q = self.read_index(p)
            if self.offset == 0 and label >= self.count:  # without an offset a label is the rank itself
                self.fail(p, f"node index {label} refers to node {label}, which is not visited before it "
                             f"({self.count} nodes so far)")
            self.visits.append(("label", label, p, self.count))
            return q
        if self.schema.node_fields:
            q = self.read_fields(p, self.schema.node_fields, self.node_values)
        elif self.ids[p] == self.special["<node>"]:
            q = p + 1
        else:
            self.fail(p, f"expected a node (<node> or a node index), got {self.name(p)}")
        self.visits.append(("new", self.count, p, self.count))
        self.count += 1
        return q

    def resolve(self, label: int, position: int, seen: int) -> int:
        """First-visit rank of an index label read at ``position`` when ``seen`` nodes were known."""
        if self.partial and self.offset:
            # the labels wrap at max(V, n), and n is unknown in a cut sequence: only unwrapped labels resolve
            if label < self.offset:
                raise EulerianDecodeError(
                    f"{self.where(position)}: node index {label} is below the index offset {self.offset}, so it "
                    "wraps around modulo the graph's node count, which the cut-off rest of the sequence held; a cut "
                    "sequence with an index offset (random_offset=True) cannot be decoded in part: decode the whole "
                    "sequence"
                )
            rank = label - self.offset
        else:
            rank = (label - self.offset) % self.modulus
        if rank >= seen:
            self.fail(position, f"node index {label} refers to node {rank}, which is not visited before it "
                                f"({seen} nodes so far)")
        return rank

    # -- the grammar --------------------------------------------------------------------------
    def run(self) -> Data:
        ids, special = self.ids, self.special
        end = len(ids)
        p = 0
        starts_with_bos = p < end and ids[p] == special["<bos>"]
        if starts_with_bos:
            p += 1
        if p >= end:
            raise EulerianDecodeError(
                f"{self.where(p)}: expected a graph schema token (<graph:...>), got the end of the sequence: "
                f"{self.given} token(s) hold no graph to decode"
            )
        if ids[p] == special["<unk>"]:
            # the generic path of a layout no schema of the vocabulary covers: structure only; the
            # graph is directed iff a step carries a direction token
            directed = bool(np.isin(ids[p + 1 :], [special["<fwd>"], special["<bwd>"]]).any())
            self.schema = schema = GraphSchema(UNKNOWN_DOMAIN, directed, (), ())
        elif self.kind[p] != KIND_SCHEMA:
            self.fail(p, f"expected a graph schema token (<graph:...>), got {self.name(p)}")
        else:
            self.schema = schema = self.vocabulary.schemas[self.payload[p]]
        p += 1
        self.node_values = {spec.name: [] for spec in schema.node_fields}
        self.edge_values = {spec.name: [] for spec in schema.edge_fields}
        self.mark()
        offset_position = p
        stop_tokens = {special["<eos>"], special["<target_node>"], special["<target_edge>"]}
        fwd, bwd, dup, jump = special["<fwd>"], special["<bwd>"], special["<dup>"], special["<jump>"]
        cut: _Truncated | None = None
        try:
            if p < end and self.kind[p] in (KIND_INDEX, KIND_INDEX_LENGTH):
                self.offset, p = self.read_index(p)
                self.mark()
            if p < end and ids[p] not in stop_tokens:
                p = self.read_visit(p, must_be_new=True)
                self.mark("walk")
                while p < end and ids[p] not in stop_tokens:
                    token = ids[p]
                    step_position = p
                    if token == jump:
                        p = self.read_visit(p + 1, must_be_new=True)
                        self.mark()
                        continue
                    if token == dup:
                        p = self.read_visit(p + 1, must_be_new=False)
                        self.steps.append((len(self.visits) - 1, True, False, step_position))
                        self.mark()
                        continue
                    against = False
                    if schema.directed:
                        if token not in (fwd, bwd):
                            self.fail(p, f"expected <fwd>, <bwd>, <dup> or <jump> in a directed graph, got "
                                         f"{self.name(p)}")
                        against = token == bwd
                        p += 1
                    elif token in (fwd, bwd):
                        self.fail(p, "direction token in an undirected graph (its schema is not directed)")
                    p = self.read_fields(p, schema.edge_fields, self.edge_values)
                    p = self.read_visit(p, must_be_new=False)
                    self.steps.append((len(self.visits) - 1, False, against, step_position))
                    self.mark()
            while p < end and ids[p] in (special["<target_node>"], special["<target_edge>"]):
                key = "target_node" if ids[p] == special["<target_node>"] else "target_edge"
                p += 1
                labels = []
                for _ in range(1 if key == "target_node" else 2):
                    if p >= end or self.kind[p] not in (KIND_INDEX, KIND_INDEX_LENGTH):
                        self.fail(p, f"expected a node index after <{key}>, got {self.name(p)}")
                    label, q = self.read_index(p)
                    labels.append((label, p, self.count))
                    p = q
                self.targets[key] = labels
                self.mark("targets")
            ended = p < end and ids[p] == special["<eos>"]
            if ended:
                p += 1
            if p < end:
                self.fail(p, f"unexpected {self.name(p)} after the end of the walk")
            if starts_with_bos and not ended:
                self.cut(p, f"the sequence ends after {self.given} tokens without <eos> ({self.read_so_far()}); "
                            f"expected {self.expected()}",
                         f"; a sequence that starts with <bos> ends with <eos>: this one was cut short (truncated to "
                         f"a max_length?); decode the whole sequence, or {_CUT_ADVICE}")
        except _Truncated as err:
            if self.strict:
                raise
            cut = err
            self.restore()
            self.partial = True

        # resolve labels to first-visit ranks
        num_nodes = self.count
        self.modulus = max(num_nodes, self.vocabulary.num_index_tokens)
        if self.offset >= self.modulus and not self.partial:
            self.fail(offset_position, f"index offset {self.offset} is not below {self.modulus}")
        visit_rank = [v[1] if v[0] == "new" else self.resolve(v[1], v[2], v[3]) for v in self.visits]
        real_pairs: set[tuple[int, int]] = set()
        sources, targets_ = [], []
        for visit, duplicate, against, _ in self.steps:
            a, b = visit_rank[visit - 1], visit_rank[visit]
            if duplicate:
                continue
            if against:
                a, b = b, a
            sources.append(a)
            targets_.append(b)
            real_pairs.add((min(a, b), max(a, b)))
        for visit, duplicate, _, position in self.steps:
            # in a cut sequence the real edge a <dup> step doubles may lie beyond the cut
            if duplicate and not self.partial:
                a, b = visit_rank[visit - 1], visit_rank[visit]
                if (min(a, b), max(a, b)) not in real_pairs:
                    self.fail(position, f"<dup> step between nodes {a} and {b}, but the sequence has no real edge "
                                        "between them")
        data = self.build(num_nodes, sources, targets_, self.targets)
        if not self.strict:
            data.partial = self.partial
        if cut is not None:
            logger.warning("decode(strict=False): %s; returning the %s before it (graph.partial = True)",
                           cut.short, self.read_so_far())
        return data

    def build(self, num_nodes: int, sources: list[int], targets: list[int], marks: dict) -> Data:
        schema, vocabulary = self.schema, self.vocabulary
        scale = 10.0**vocabulary.continuous_decimals
        src = np.asarray(sources, dtype=np.int64)
        dst = np.asarray(targets, dtype=np.int64)
        edge_rows = np.arange(len(src))
        if not schema.directed:
            loop = src == dst
            src, dst, edge_rows = (
                np.concatenate([src, dst[~loop]]),
                np.concatenate([dst, src[~loop]]),
                np.concatenate([edge_rows, edge_rows[~loop]]),
            )
        order = np.lexsort((dst, src))
        src, dst, edge_rows = src[order], dst[order], edge_rows[order]
        data = Data(edge_index=torch.from_numpy(np.stack([src, dst])).long(), num_nodes=num_nodes)

        def tensor(spec, rows: list, count: int, select: np.ndarray | None = None) -> torch.Tensor:
            if spec.kind == "categorical":
                array = np.asarray(rows, dtype=np.int64).reshape(count, spec.width)
            else:
                array = np.asarray(rows, dtype=np.float64).reshape(count, spec.width) / scale
            if select is not None:
                array = array[select]
            value = torch.from_numpy(np.ascontiguousarray(array)).to(getattr(torch, spec.dtype))
            return value.reshape(-1) if spec.vector else value

        for spec in schema.node_fields:
            data[spec.name] = tensor(spec, self.node_values[spec.name], num_nodes)
        for spec in schema.edge_fields:
            data[spec.name] = tensor(spec, self.edge_values[spec.name], len(sources), edge_rows)
        data.domain = schema.domain
        if schema.directed:
            data.directed = True
        for key, labels in marks.items():
            ranks = [self.resolve(label, position, self.count) for label, position, _ in labels]
            data[key] = ranks[0] if key == "target_node" else ranks
        return data
