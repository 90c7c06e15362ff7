"""The union computation graph of a chunk of nodes, for exact chunked inference on huge graphs.

Training batches use the foundation's per-centre ego graphs (``gfm.data.sampling.khop_ego_batch``)
and contexts its ``ppr_topk``. What this module adds, and why: encoding a graph too large for
one full-graph pass needs, for a *chunk* of nodes, the union of their ``num_layers``-hop
computation graphs (shared neighbours computed once), which the per-centre ego graphs of
``gfm.data.sampling`` do not give. Vectorized, deterministic given a ``torch.Generator``.
"""

from __future__ import annotations

import torch

from gfm.data.sampling import build_csr

__all__ = ["NeighborTable", "capped_ego_subgraph", "induced_edges"]


class NeighborTable:
    """Compressed adjacency of an undirected graph for fast neighbour sampling.

    Args:
        edge_index: int64 ``[2, E]`` with both directions of every edge.
        num_nodes: ``N``.
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int) -> None:
        self.num_nodes = int(num_nodes)
        self.edge_index = edge_index
        csr = build_csr(edge_index, self.num_nodes, "out")
        self.col, self.rowptr = csr.col.contiguous(), csr.rowptr
        self.degree = csr.rowptr[1:] - csr.rowptr[:-1]

    def random_neighbor(self, nodes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One uniformly random neighbour per node (``-1`` for isolated nodes): int64 ``[S]``."""
        degree = self.degree[nodes]
        offsets = (
            (torch.rand(nodes.numel(), generator=generator) * degree)
            .long()
            .clamp_max((degree - 1).clamp_min(0))
        )
        picked = (
            self.col[(self.rowptr[nodes] + offsets).clamp_max(max(self.col.numel() - 1, 0))]
            if self.col.numel()
            else nodes
        )
        return torch.where(degree > 0, picked, torch.full_like(nodes, -1))

    def sample_neighbors(
        self, nodes: torch.Tensor, cap: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All neighbours of nodes with degree <= ``cap``; ``cap`` draws with replacement otherwise.

        Returns:
            ``(owner [K], neighbor [K])``: position in ``nodes`` of the node each sampled
            neighbour belongs to, and the neighbour id (repeats possible for capped nodes).
        """
        if nodes.numel() == 0:
            return nodes.new_zeros(0), nodes.new_zeros(0)
        positions = torch.arange(nodes.numel())
        degree = self.degree[nodes]
        small = degree <= cap
        owners, neighbors = [], []
        small_positions = positions[small]
        if small_positions.numel():
            counts = degree[small]
            total = int(counts.sum())
            if total:
                starts = torch.repeat_interleave(self.rowptr[nodes[small]], counts)
                within = torch.arange(total) - torch.repeat_interleave(
                    torch.cumsum(counts, 0) - counts, counts
                )
                owners.append(torch.repeat_interleave(small_positions, counts))
                neighbors.append(self.col[starts + within])
        big_positions = positions[~small]
        if big_positions.numel():
            big = nodes[big_positions]
            offsets = (
                torch.rand(big.numel(), cap, generator=generator) * self.degree[big].unsqueeze(1)
            ).long()
            owners.append(big_positions.repeat_interleave(cap))
            neighbors.append(self.col[(self.rowptr[big].unsqueeze(1) + offsets).reshape(-1)])
        if not owners:
            return nodes.new_zeros(0), nodes.new_zeros(0)
        return torch.cat(owners), torch.cat(neighbors)


def capped_ego_subgraph(
    graph: NeighborTable, seeds: torch.Tensor, num_hops: int, max_neighbors: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sampled ``num_hops``-hop computation graph of ``seeds`` (GraphSAGE-style).

    Hop by hop, every node first reached at the previous hop (the seeds at hop 1) receives
    messages from all its neighbours when it has at most ``max_neighbors`` of them, else from
    ``max_neighbors`` draws with replacement (duplicates merged). Only these sampled edges are
    kept (``neighbour -> node``), so a batch's size is bounded by ``seeds * max_neighbors **
    num_hops`` whatever the hubs; without a cap (``max_neighbors >= max degree``) the seeds'
    outputs of a ``num_hops``-layer GNN equal their full-graph outputs (tested).

    Args:
        graph: the large graph.
        seeds: int64 ``[S]`` distinct seed nodes.
        num_hops: hops to expand (the encoder's layers).
        max_neighbors: neighbour cap per node and hop.
        generator: source of the draws.

    Returns:
        ``(nodes [K], edge_index [2, E'] as positions in nodes (source -> target),
        seed_positions [S])``; ``nodes`` starts with the seeds in their given order.
    """
    position = torch.full((graph.num_nodes,), -1, dtype=torch.long)
    position[seeds] = torch.arange(seeds.numel())
    order = [seeds]
    count = seeds.numel()
    frontier = seeds
    sources, targets = [], []
    for _ in range(num_hops):
        owner, neighbor = graph.sample_neighbors(frontier, max_neighbors, generator)
        if neighbor.numel() == 0:
            break
        new = torch.unique(neighbor[position[neighbor] < 0])
        position[new] = torch.arange(count, count + new.numel())
        count += new.numel()
        order.append(new)
        sources.append(position[neighbor])
        targets.append(position[frontier[owner]])
        frontier = new
        if new.numel() == 0:
            break
    nodes = torch.cat(order)
    if sources:
        keys = torch.unique(torch.cat(sources) * count + torch.cat(targets))  # merge duplicate draws
        edge_index = torch.stack([keys // count, keys % count])
    else:
        edge_index = torch.zeros(2, 0, dtype=torch.long)
    return nodes, edge_index, torch.arange(seeds.numel())


def induced_edges(edge_index: torch.Tensor, nodes: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Edges among ``nodes`` relabelled to positions in ``nodes`` (``nodes`` order kept): ``[2, E']``."""
    position = torch.full((num_nodes,), -1, dtype=torch.long)
    position[nodes] = torch.arange(nodes.numel())
    keep = (position[edge_index[0]] >= 0) & (position[edge_index[1]] >= 0)
    return position[edge_index[:, keep]]
