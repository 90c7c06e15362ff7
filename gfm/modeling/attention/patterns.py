"""Attention patterns: which query position attends to which key position, built per batch.

An :class:`AttentionPattern` is built once per forward pass from the batch dict of
:mod:`gfm.tokenization.tokenized_graph` and shared by every layer. Positions are *flat*:
``row * T + column`` over a ``[B, T]`` batch (``N = B * T`` positions), the same convention as
``graph_edge_index``. Every link joins two positions of the **same sample** (equal
``sequence_ids``); padding positions (``sequence_ids == -1``) have no links at all, so their
rows are empty and every backend returns zeros for them.

Components (each switched by :class:`PatternOptions`, composed by union):

``graph edges``
    ``graph_edge_index`` [2, P] (src, dst): the token at ``dst`` (query) attends to the token at
    ``src`` (key), as in PyG's ``source_to_target`` flow. Undirected graphs list both
    directions. The link type is ``graph_edge_type`` (one learned bias per type and head).
``expander``
    A random ``d``-regular expander made of ``d / 2`` random Hamiltonian cycles over the positions
    of each sample; each cycle links every position with its successor and predecessor. The
    cycle order comes from a 64-bit integer hash of ``(seed, cycle, offset in sample, sample
    length)``, so the expander of a sample depends only on ``(seed, length)``: the same graph gets
    the same expander in every batch and every epoch with no cache and no Python loop.
``global tokens``
    The first ``k`` positions of every sample (tokenizers put ``<bos>`` and other special
    tokens there) are global: they attend to every position of their sample and every position
    attends to them. We use existing positions rather than extra virtual slots so that the batch
    layout, pooling and every backend stay unchanged.
``sliding window``
    ``window`` is the total width (Longformer's convention): a query attends to keys at most
    ``window // 2`` positions away inside its sample.
``same node``
    Positions of one sample whose ``node_index`` is equal (and not ``-1``) attend to each other
    (a node revisited by a walk, a node's several quantizer levels).
``self``
    Every real position attends to itself.

Causal mode (next-token prediction) keeps only links whose key is at or before its query.

When two components produce the same (query, key) link it is kept once with the type of
highest priority: graph edge types, then same-node, global, expander, and the un-biased
"plain" type of window and self links. Link types index a per-layer bias table
``[num_link_types, num_heads]`` (see :class:`LinkTypes`); the plain type's row is always zero.

Window-shaped patterns (only window, global and self links) are executed without ever
materializing their links (block-gather SDPA); everything else is materialized once per batch
as a sorted COO / CSR list (:meth:`AttentionPattern.links`, :meth:`AttentionPattern.csr`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gfm.utils.errors import GFMError

__all__ = [
    "AttentionPattern",
    "AttentionPatternError",
    "CSRLinks",
    "LinkTypes",
    "PatternOptions",
    "build_attention_pattern",
]


class AttentionPatternError(GFMError, ValueError):
    """The structure fields of a batch cannot form a valid attention pattern; the message says why."""


@dataclass(frozen=True)
class LinkTypes:
    """Integer ids of link types for a model with ``num_edge_types`` graph edge types.

    ``0 .. num_edge_types - 1`` are graph edge types, then ``same_node``, ``global_token``,
    ``expander`` and ``plain`` (window and self links). A smaller id has higher priority when two
    components produce the same link. Only the first ``num_biased`` types carry a learned bias;
    ``plain`` always has bias zero.
    """

    num_edge_types: int

    @property
    def same_node(self) -> int:
        return self.num_edge_types

    @property
    def global_token(self) -> int:
        return self.num_edge_types + 1

    @property
    def expander(self) -> int:
        return self.num_edge_types + 2

    @property
    def plain(self) -> int:
        return self.num_edge_types + 3

    @property
    def num_biased(self) -> int:
        return self.num_edge_types + 3

    @property
    def num_types(self) -> int:
        return self.num_edge_types + 4


@dataclass(frozen=True)
class PatternOptions:
    """Which components a pattern has (read from ``GFMConfig`` by the model).

    Attributes:
        graph_edges: include ``graph_edge_index`` links.
        num_edge_types: number of graph edge types (``graph_edge_type`` must be below it).
        expander_degree: even degree ``d`` of the random expander (0 = none).
        expander_seed: seed of the expander hash.
        num_global_tokens: the first ``k`` positions of each sample are global (0 = none).
        window: total sliding-window width; radius ``window // 2`` (0 = none).
        same_node: link positions of one sample that stand for the same node.
        self_links: every real position attends to itself.
    """

    graph_edges: bool = True
    num_edge_types: int = 1
    expander_degree: int = 0
    expander_seed: int = 0
    num_global_tokens: int = 0
    window: int = 0
    same_node: bool = True
    self_links: bool = True

    def __post_init__(self) -> None:
        if self.num_edge_types < 1:
            raise AttentionPatternError(f"num_edge_types must be >= 1, got {self.num_edge_types}")
        if self.expander_degree < 0 or self.expander_degree % 2:
            raise AttentionPatternError(
                f"expander_degree must be a non-negative even number (d/2 random cycles), got {self.expander_degree}"
            )
        if self.num_global_tokens < 0:
            raise AttentionPatternError(f"num_global_tokens must be >= 0, got {self.num_global_tokens}")
        if self.window < 0:
            raise AttentionPatternError(f"window must be >= 0, got {self.window}")

    @property
    def window_radius(self) -> int:
        return self.window // 2

    @property
    def link_types(self) -> LinkTypes:
        return LinkTypes(self.num_edge_types)


@dataclass
class CSRLinks:
    """Materialized links sorted by (query, key), with row pointers.

    Attributes:
        row_pointer: int64 ``[N + 1]``; the links of query ``i`` are ``row_pointer[i]:row_pointer[i+1]``.
        query: int64 ``[nnz]`` flat query position of each link (non-decreasing).
        key: int64 ``[nnz]`` flat key position of each link.
        link_type: int64 ``[nnz]`` link type id (see :class:`LinkTypes`).
    """

    row_pointer: torch.Tensor
    query: torch.Tensor
    key: torch.Tensor
    link_type: torch.Tensor
    _chunks: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict, repr=False)

    @property
    def num_links(self) -> int:
        return int(self.query.numel())

    def row_chunks(self, max_links: int) -> list[tuple[int, int, int, int]]:
        """Split rows into consecutive chunks of about ``max_links`` links each.

        Returns:
            ``(row_start, row_end, link_start, link_end)`` tuples; a chunk never splits a row,
            so a row longer than ``max_links`` forms a chunk of its own.
        """
        cached = self._chunks.get(max_links)
        if cached is not None:
            return cached
        num_rows = self.row_pointer.numel() - 1
        nnz = self.num_links
        if nnz == 0:
            chunks: list[tuple[int, int, int, int]] = []
        elif nnz <= max_links:
            chunks = [(0, num_rows, 0, nnz)]
        else:
            targets = torch.arange(max_links, nnz, max_links, dtype=torch.long, device=self.row_pointer.device)
            cuts = torch.searchsorted(self.row_pointer, targets, right=True) - 1
            bounds = torch.cat([cuts.new_zeros(1), cuts, cuts.new_full((1,), num_rows)]).unique_consecutive()
            bounds_list = bounds.tolist()
            link_bounds = self.row_pointer[bounds].tolist()
            chunks = [
                (bounds_list[i], bounds_list[i + 1], link_bounds[i], link_bounds[i + 1])
                for i in range(len(bounds_list) - 1)
                if link_bounds[i + 1] > link_bounds[i]
            ]
        self._chunks[max_links] = chunks
        return chunks


@dataclass
class AttentionPattern:
    """The attention pattern of one batch (``B`` rows of ``T`` positions, ``N = B * T``).

    Attributes:
        num_rows: ``B``.
        row_length: ``T``.
        causal: keys restricted to positions at or before their query.
        options: the components (see :class:`PatternOptions`).
        sample_rank: int64 ``[N]`` dense index of each position's sample in order of first
            appearance (``0 .. S-1``), ``-1`` at padding.
        sample_start: int64 ``[S]`` flat position of each sample's first token.
        sample_length: int64 ``[S]`` number of tokens of each sample.
        local_position: int64 ``[N]`` offset of each position inside its sample, ``-1`` at padding.
        explicit_query / explicit_key / explicit_type: int64 ``[M]`` links of the components
            that are always materialized (graph edges, expander, same node), causal-filtered,
            possibly with duplicates.
        backend_cache: structures a backend derives from the pattern once per batch and reuses
            in every layer (e.g. block SDPA's block plan), keyed by the backend's own tuple.
    """

    num_rows: int
    row_length: int
    causal: bool
    options: PatternOptions
    sample_rank: torch.Tensor
    sample_start: torch.Tensor
    sample_length: torch.Tensor
    local_position: torch.Tensor
    explicit_query: torch.Tensor
    explicit_key: torch.Tensor
    explicit_type: torch.Tensor
    _links: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    _csr: CSRLinks | None = field(default=None, repr=False)
    backend_cache: dict[tuple, object] = field(default_factory=dict, repr=False)

    # -- derived views ------------------------------------------------------------------------
    @property
    def num_positions(self) -> int:
        return self.num_rows * self.row_length

    @property
    def num_samples(self) -> int:
        return int(self.sample_start.numel())

    @property
    def device(self) -> torch.device:
        return self.sample_rank.device

    @property
    def link_types(self) -> LinkTypes:
        return self.options.link_types

    @property
    def is_valid(self) -> torch.Tensor:
        """bool ``[N]``: the position holds a real token."""
        return self.sample_rank >= 0

    @property
    def is_global(self) -> torch.Tensor:
        """bool ``[N]``: the position is one of its sample's global tokens."""
        return (self.local_position >= 0) & (self.local_position < self.options.num_global_tokens)

    @property
    def window_radius(self) -> int:
        return self.options.window_radius

    @property
    def has_explicit_links(self) -> bool:
        return self.explicit_query.numel() > 0

    @property
    def is_window_shaped(self) -> bool:
        """Only window, global and self links (what the block-gather SDPA backend executes)."""
        return not self.has_explicit_links and self.window_radius > 0

    # -- materialization ----------------------------------------------------------------------
    def links(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every link, deduplicated and sorted by (query, key).

        Returns:
            ``(query [nnz], key [nnz], link_type [nnz])`` int64 flat positions and type ids.
        """
        if self._links is None:
            self._links = _materialize_links(self)
        return self._links

    def csr(self) -> CSRLinks:
        """The links of :meth:`links` with row pointers over all ``N`` query positions."""
        if self._csr is None:
            query, key, link_type = self.links()
            counts = torch.bincount(query, minlength=self.num_positions)
            row_pointer = torch.zeros(self.num_positions + 1, dtype=torch.long, device=query.device)
            torch.cumsum(counts, 0, out=row_pointer[1:])
            self._csr = CSRLinks(row_pointer=row_pointer, query=query, key=key, link_type=link_type)
        return self._csr

    def num_links_estimate(self) -> int:
        """Number of links without materializing window links (exact up to duplicates)."""
        total = int(self.explicit_query.numel())
        valid = int(self.is_valid.sum())
        if self.options.self_links:
            total += valid
        radius = self.window_radius
        if radius:
            total += valid * (radius + 1 if self.causal else 2 * radius + 1)
        k = self.options.num_global_tokens
        if k:
            total += 2 * k * int(self.sample_length.sum())
        return total


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------
def build_attention_pattern(
    sequence_ids: torch.Tensor,
    options: PatternOptions,
    node_index: torch.Tensor | None = None,
    graph_edge_index: torch.Tensor | None = None,
    graph_edge_type: torch.Tensor | None = None,
    causal: bool = False,
) -> AttentionPattern:
    """Build the attention pattern of a batch, vectorized over all samples (no Python loop).

    Args:
        sequence_ids: int64 ``[B, T]`` sample of each position, ``-1`` at padding. Each sample
            must occupy one contiguous span of one row (both gfm collators guarantee it).
        options: which components to include.
        node_index: int64 ``[B, T]`` graph node of each position, ``-1`` for none (same-node links).
        graph_edge_index: int64 ``[2, P]`` (src, dst) flat positions ``row * T + column``.
        graph_edge_type: int64 ``[P]`` type of each graph edge, below ``options.num_edge_types``.
        causal: keep only links whose key is at or before its query.

    Returns:
        The :class:`AttentionPattern`.

    Raises:
        AttentionPatternError: a field has the wrong shape, an index is out of range, an edge
            joins two samples or touches padding, or a sample is split.
    """
    if sequence_ids.dim() != 2:
        raise AttentionPatternError(f"sequence_ids must be [B, T], got shape {tuple(sequence_ids.shape)}")
    num_rows, row_length = sequence_ids.shape
    device = sequence_ids.device
    num_positions = num_rows * row_length
    flat_sequence = sequence_ids.reshape(-1).long()
    if num_positions and int(flat_sequence.min()) < -1:
        raise AttentionPatternError("sequence_ids holds values below -1 (-1 marks padding)")

    sample_rank, sample_start, sample_length, local_position = _sample_layout(flat_sequence, row_length)
    link_types = options.link_types
    queries: list[torch.Tensor] = []
    keys: list[torch.Tensor] = []
    types: list[torch.Tensor] = []

    if options.graph_edges and graph_edge_index is not None and graph_edge_index.numel():
        src, dst, edge_type = _checked_graph_edges(
            graph_edge_index, graph_edge_type, sample_rank, num_rows, row_length, options.num_edge_types
        )
        queries.append(dst)
        keys.append(src)
        types.append(edge_type)
    elif graph_edge_type is not None and graph_edge_index is None:
        raise AttentionPatternError("graph_edge_type is given without graph_edge_index")

    if options.same_node and node_index is not None:
        if node_index.shape != sequence_ids.shape:
            raise AttentionPatternError(
                f"node_index has shape {tuple(node_index.shape)}, expected {tuple(sequence_ids.shape)} like sequence_ids"
            )
        q, k = _same_node_links(node_index.reshape(-1).long(), sample_rank)
        queries.append(q)
        keys.append(k)
        types.append(torch.full_like(q, link_types.same_node))

    if options.expander_degree:
        q, k = _expander_links(
            sample_rank, sample_start, sample_length, local_position, options.expander_degree, options.expander_seed
        )
        queries.append(q)
        keys.append(k)
        types.append(torch.full_like(q, link_types.expander))

    if queries:
        query, key, link_type = torch.cat(queries), torch.cat(keys), torch.cat(types)
        if causal:
            keep = key <= query
            query, key, link_type = query[keep], key[keep], link_type[keep]
    else:
        query = key = link_type = torch.zeros(0, dtype=torch.long, device=device)

    return AttentionPattern(
        num_rows=num_rows,
        row_length=row_length,
        causal=bool(causal),
        options=options,
        sample_rank=sample_rank,
        sample_start=sample_start,
        sample_length=sample_length,
        local_position=local_position,
        explicit_query=query,
        explicit_key=key,
        explicit_type=link_type,
    )


def _sample_layout(
    flat_sequence: torch.Tensor, row_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank, start, length and in-sample offset of every position (see :class:`AttentionPattern`)."""
    device = flat_sequence.device
    num_positions = flat_sequence.numel()
    valid = flat_sequence >= 0
    position = torch.arange(num_positions, device=device)
    previous = torch.cat([flat_sequence.new_full((1,), -2), flat_sequence[:-1]])
    is_start = valid & ((position % max(row_length, 1) == 0) | (flat_sequence != previous))
    sample_start = position[is_start]
    num_distinct = int(torch.unique(flat_sequence[valid]).numel()) if bool(valid.any()) else 0
    if sample_start.numel() != num_distinct:
        starts_per_id = torch.bincount(flat_sequence[is_start], minlength=int(flat_sequence.max()) + 1)
        split = int((starts_per_id > 1).nonzero()[0, 0])
        raise AttentionPatternError(
            f"sample {split} (sequence_ids == {split}) occupies more than one contiguous span; every sample must "
            "be one run of positions inside one row, as collate_tokenized_graphs / pack_tokenized_graphs produce"
        )
    rank = torch.cumsum(is_start.long(), 0) - 1
    sample_rank = torch.where(valid, rank, torch.full_like(rank, -1))
    sample_length = torch.bincount(sample_rank[valid], minlength=sample_start.numel())
    safe_rank = sample_rank.clamp(min=0)
    local_position = torch.where(valid, position - sample_start[safe_rank] if sample_start.numel() else position, -1)
    return sample_rank, sample_start, sample_length, local_position


def _checked_graph_edges(
    graph_edge_index: torch.Tensor,
    graph_edge_type: torch.Tensor | None,
    sample_rank: torch.Tensor,
    num_rows: int,
    row_length: int,
    num_edge_types: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    num_positions = num_rows * row_length
    if graph_edge_index.dim() != 2 or graph_edge_index.shape[0] != 2:
        raise AttentionPatternError(
            f"graph_edge_index must be [2, P] flat positions, got shape {tuple(graph_edge_index.shape)}"
        )
    if graph_edge_index.dtype.is_floating_point or graph_edge_index.dtype == torch.bool:
        raise AttentionPatternError(f"graph_edge_index must hold integers, got {graph_edge_index.dtype}")
    edges = graph_edge_index.long()
    low, high = int(edges.min()), int(edges.max())
    if low < 0 or high >= num_positions:
        bad = int(((edges < 0) | (edges >= num_positions)).any(0).nonzero()[0, 0])
        raise AttentionPatternError(
            f"graph_edge_index[:, {bad}] = {edges[:, bad].tolist()} is out of range: the batch has {num_rows} rows x "
            f"{row_length} positions = {num_positions} flat positions (row * T + column); build the batch with "
            "collate_tokenized_graphs / pack_tokenized_graphs"
        )
    src, dst = edges[0], edges[1]
    src_rank, dst_rank = sample_rank[src], sample_rank[dst]
    on_padding = (src_rank < 0) | (dst_rank < 0)
    if bool(on_padding.any()):
        bad = int(on_padding.nonzero()[0, 0])
        raise AttentionPatternError(
            f"graph_edge_index[:, {bad}] = {edges[:, bad].tolist()} touches a padding position (sequence_ids == -1)"
        )
    crossing = src_rank != dst_rank
    if bool(crossing.any()):
        bad = int(crossing.nonzero()[0, 0])
        raise AttentionPatternError(
            f"graph_edge_index[:, {bad}] = {edges[:, bad].tolist()} joins two different samples; attention never "
            "crosses sequence_ids"
        )
    if graph_edge_type is None:
        edge_type = torch.zeros_like(src)
    else:
        if graph_edge_type.shape != (edges.shape[1],):
            raise AttentionPatternError(
                f"graph_edge_type has shape {tuple(graph_edge_type.shape)}, expected [{edges.shape[1]}] "
                "(one type per graph_edge_index column)"
            )
        edge_type = graph_edge_type.long()
        if edge_type.numel() and (int(edge_type.min()) < 0 or int(edge_type.max()) >= num_edge_types):
            raise AttentionPatternError(
                f"graph_edge_type holds {int(edge_type.max())} (min {int(edge_type.min())}) but the model has "
                f"num_edge_types={num_edge_types}; raise config.num_edge_types or remap the edge types"
            )
    return src, dst, edge_type


def _expand_ranges(owner: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each ``i``, pairs ``(owner[i], j)`` for ``j`` in ``[low[i], high[i])``; empty ranges allowed."""
    counts = (high - low).clamp(min=0)
    total = int(counts.sum())
    if total == 0:
        empty = owner.new_zeros(0)
        return empty, empty
    repeated_owner = torch.repeat_interleave(owner, counts)
    starts = torch.cumsum(counts, 0) - counts
    offset = torch.arange(total, device=owner.device) - torch.repeat_interleave(starts, counts)
    return repeated_owner, torch.repeat_interleave(low, counts) + offset


def _same_node_links(flat_node: torch.Tensor, sample_rank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered pairs of distinct positions with equal (sample, node), node >= 0."""
    if flat_node.numel() and int(flat_node.min()) < -1:
        raise AttentionPatternError("node_index holds values below -1 (-1 means 'no node')")
    has_node = (flat_node >= 0) & (sample_rank >= 0)
    positions = has_node.nonzero().squeeze(1)
    if positions.numel() == 0:
        empty = positions.new_zeros(0)
        return empty, empty
    group_key = sample_rank[positions] * (int(flat_node.max()) + 1) + flat_node[positions]
    order = torch.argsort(group_key, stable=True)
    sorted_positions, sorted_key = positions[order], group_key[order]
    _, group_of, group_size = torch.unique_consecutive(sorted_key, return_inverse=True, return_counts=True)
    group_start = torch.cumsum(group_size, 0) - group_size
    shared = group_size[group_of] > 1
    members = shared.nonzero().squeeze(1)
    low = group_start[group_of[members]]
    owner, key_slot = _expand_ranges(members, low, low + group_size[group_of[members]])
    query, key = sorted_positions[owner], sorted_positions[key_slot]
    distinct = query != key
    return query[distinct], key[distinct]


_MASK_31 = (1 << 31) - 1
_HASH_MULTIPLIERS = (0x5BD1E995 & _MASK_31, 0x27D4EB2F, 0x165667B1)


def _hash31(value: torch.Tensor) -> torch.Tensor:
    """Integer hash of int64 tensors onto ``[0, 2**31)`` (multiply-xorshift rounds).

    Every product stays below ``2**62``, so the result is exact and identical on every device
    (no reliance on signed-overflow wrapping).
    """
    value = value & _MASK_31
    for multiplier in _HASH_MULTIPLIERS:
        value = (value * multiplier) & _MASK_31
        value = value ^ (value >> 15)
    return value


def _expander_links(
    sample_rank: torch.Tensor,
    sample_start: torch.Tensor,
    sample_length: torch.Tensor,
    local_position: torch.Tensor,
    degree: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Links of ``degree / 2`` random Hamiltonian cycles per sample (both directions)."""
    valid = (sample_rank >= 0).nonzero().squeeze(1)
    if valid.numel() == 0:
        empty = valid.new_zeros(0)
        return empty, empty
    rank = sample_rank[valid]
    length = sample_length[rank]
    offset = local_position[valid]
    # positions are grouped by sample already (samples are contiguous spans in flat order), and
    # each sample's group starts at its rank-th slot of ``valid``:
    group_start = torch.cumsum(sample_length, 0) - sample_length
    slot_start = group_start[rank]
    queries, keys = [], []
    for cycle in range(degree // 2):  # a loop over cycles (d/2 of them), never over graphs
        salt = _hash31(torch.tensor([seed * 1_000_003 + cycle], dtype=torch.long, device=valid.device))
        hashed = _hash31(_hash31(offset + salt) ^ _hash31(length + salt))
        sort_key = (rank << 31) | hashed
        order = torch.argsort(sort_key, stable=True)  # a random order inside each sample
        cycle_positions = valid[order]
        slot = torch.arange(valid.numel(), device=valid.device)
        successor = slot_start + (slot - slot_start + 1) % length
        query, key = cycle_positions, cycle_positions[successor]
        distinct = query != key
        queries += [query[distinct], key[distinct]]
        keys += [key[distinct], query[distinct]]
    return torch.cat(queries), torch.cat(keys)


def _structured_links(pattern: AttentionPattern) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Window, global and self links (materialized only for backends that need a link list)."""
    queries, keys, types = [], [], []
    link_types = pattern.link_types
    valid = pattern.is_valid.nonzero().squeeze(1)
    rank = pattern.sample_rank[valid]
    start = pattern.sample_start[rank]
    end = start + pattern.sample_length[rank]
    if pattern.options.self_links:
        queries.append(valid)
        keys.append(valid)
        types.append(torch.full_like(valid, link_types.plain))
    radius = pattern.window_radius
    if radius:
        low = torch.maximum(start, valid - radius)
        high = valid + 1 if pattern.causal else torch.minimum(end, valid + radius + 1)
        q, k = _expand_ranges(valid, low, high)
        queries.append(q)
        keys.append(k)
        types.append(torch.full_like(q, link_types.plain))
    if pattern.options.num_global_tokens:
        is_global = pattern.is_global[valid]
        global_positions = valid[is_global]
        g_start, g_end = start[is_global], end[is_global]
        q, k = _expand_ranges(global_positions, g_start, g_end)  # a global token attends to its sample
        queries += [q, k]  # ... and its sample attends to it
        keys += [k, q]
        types += [torch.full_like(q, link_types.global_token)] * 2
    if pattern.causal and queries:
        for i in range(len(queries)):
            keep = keys[i] <= queries[i]
            queries[i], keys[i], types[i] = queries[i][keep], keys[i][keep], types[i][keep]
    return queries, keys, types


def _materialize_links(pattern: AttentionPattern) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    queries, keys, types = _structured_links(pattern)
    query = torch.cat([pattern.explicit_query, *queries])
    key = torch.cat([pattern.explicit_key, *keys])
    link_type = torch.cat([pattern.explicit_type, *types])
    if query.numel() == 0:
        return query, key, link_type
    num_positions = pattern.num_positions
    num_types = pattern.link_types.num_types
    if num_positions * num_positions * num_types >= 2**62:
        raise AttentionPatternError(
            f"batch of {num_positions} positions is too large to index links in int64; use smaller batches"
        )
    # Sort by (query, key, type) in one int64 key; the first of each (query, key) run has the
    # smallest type id, i.e. the highest priority.
    combined = (query * num_positions + key) * num_types + link_type
    combined, _ = torch.sort(combined)
    pair = combined // num_types
    first = torch.ones_like(pair, dtype=torch.bool)
    first[1:] = pair[1:] != pair[:-1]
    pair, kept_type = pair[first], combined[first] % num_types
    return pair // num_positions, pair % num_positions, kept_type
