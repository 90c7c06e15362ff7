"""Deterministic train/valid/test splits: scaffold, seeded (stratified) random, and link splits.

Sources that ship a split (Planetoid, heterophilous, CoDEx, ogbl-ddi) keep theirs; the others get
one of these, recorded in ``TaskSpec.split`` so a reader knows how the numbers were made.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gfm.utils.seed import torch_generator

__all__ = [
    "seeded_choice",
    "scaffold_split",
    "random_split",
    "stratified_split",
    "indices_to_masks",
    "random_link_split",
    "sample_negative_edges",
]

SPLIT_NAMES = ("train", "valid", "test")


def seeded_choice(n: int, count: int | None, seed: int) -> torch.Tensor:
    """``count`` of the items ``0 .. n-1`` chosen at random with ``seed``, in increasing order.

    Returns:
        int64 ``[min(count, n)]`` sorted indices; every index when ``count`` is ``None`` or ``>= n``.
    """
    if count is None or count >= n:
        return torch.arange(n)
    if count < 0:
        raise ValueError(f"seeded_choice: cannot choose {count} items; give a count >= 0 (or None for all)")
    return torch.randperm(n, generator=torch_generator(seed))[:count].sort().values


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def scaffold_split(scaffolds: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, torch.Tensor]:
    """Deterministic Bemis-Murcko scaffold split (the MoleculeNet / OGB convention).

    Molecules sharing a scaffold stay in one split. Scaffold groups are ordered largest first
    (ties: the group whose first molecule comes first), then train is filled up to its fraction,
    then valid, and the rest is test. No randomness: the same input gives the same split.

    Args:
        scaffolds: scaffold SMILES of each molecule, ``[n]``.
        fractions: train/valid/test fractions.

    Returns:
        ``{"train"|"valid"|"test": int64 [n_split]}`` sorted indices.
    """
    train_frac, valid_frac, _ = _check_fractions(fractions)
    groups: dict[str, list[int]] = {}
    for index, scaffold in enumerate(scaffolds):
        groups.setdefault(scaffold, []).append(index)
    ordered = sorted(groups.values(), key=lambda members: (-len(members), members[0]))
    n = len(scaffolds)
    train_cut, valid_cut = train_frac * n, (train_frac + valid_frac) * n
    parts: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for members in ordered:
        if len(parts["train"]) + len(members) <= train_cut:
            parts["train"].extend(members)
        elif len(parts["train"]) + len(parts["valid"]) + len(members) <= valid_cut:
            parts["valid"].extend(members)
        else:
            parts["test"].extend(members)
    return {name: torch.tensor(sorted(idx), dtype=torch.long) for name, idx in parts.items()}


def random_split(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random split of ``n`` items; returns sorted int64 indices per split."""
    train_frac, valid_frac, _ = _check_fractions(fractions)
    perm = torch.randperm(n, generator=torch_generator(seed))
    n_train, n_valid = int(round(train_frac * n)), int(round(valid_frac * n))
    pieces = (perm[:n_train], perm[n_train : n_train + n_valid], perm[n_train + n_valid :])
    return {name: torch.sort(piece).values for name, piece in zip(SPLIT_NAMES, pieces)}


def stratified_split(
    labels: torch.Tensor, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, torch.Tensor]:
    """Seeded split keeping class proportions; items labelled ``-1`` go to no split.

    Args:
        labels: int64 ``[n]`` class ids (``-1`` = unlabelled).

    Returns:
        ``{"train"|"valid"|"test": int64 sorted indices}``.
    """
    train_frac, valid_frac, _ = _check_fractions(fractions)
    generator = torch_generator(seed)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in SPLIT_NAMES}
    for cls in torch.unique(labels[labels >= 0]).tolist():
        members = (labels == cls).nonzero().view(-1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        n_train = int(round(train_frac * members.numel()))
        n_valid = int(round(valid_frac * members.numel()))
        parts["train"].append(members[:n_train])
        parts["valid"].append(members[n_train : n_train + n_valid])
        parts["test"].append(members[n_train + n_valid :])
    return {
        name: torch.sort(torch.cat(pieces)).values if pieces else torch.empty(0, dtype=torch.long)
        for name, pieces in parts.items()
    }


def indices_to_masks(splits: dict[str, torch.Tensor], num_nodes: int) -> dict[str, torch.Tensor]:
    """``{"train": idx, ...}`` -> ``{"train_mask": bool [N], "val_mask": ..., "test_mask": ...}``."""
    keys = {"train": "train_mask", "valid": "val_mask", "test": "test_mask"}
    masks = {}
    for split, key in keys.items():
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[splits[split]] = True
        masks[key] = mask
    return masks


def sample_negative_edges(
    num_nodes: int,
    num_samples: int,
    forbidden: torch.Tensor,
    generator: torch.Generator,
    directed: bool = False,
) -> torch.Tensor:
    """Sample ``num_samples`` distinct node pairs that are not in ``forbidden`` and not self-loops.

    Small graphs enumerate every candidate pair; large ones draw in vectorized rounds and reject
    collisions. Undirected pairs are returned as ``(min, max)``.

    Args:
        num_nodes: ``N``.
        num_samples: pairs wanted.
        forbidden: int64 ``[2, F]`` existing edges (either direction is forbidden when undirected).
        generator: seeded generator (determinism).
        directed: sample ordered pairs.

    Returns:
        int64 ``[2, num_samples]``.

    Raises:
        ValueError: when the graph has fewer non-edges than ``num_samples``.
    """
    src, dst = forbidden[0], forbidden[1]
    if not directed:
        src, dst = torch.minimum(src, dst), torch.maximum(src, dst)
    forbidden_keys = torch.unique(src * num_nodes + dst)
    if num_nodes * num_nodes <= 4_000_000:
        candidates = torch.arange(num_nodes * num_nodes)
        rows, cols = candidates // num_nodes, candidates % num_nodes
        keep = rows < cols if not directed else rows != cols
        candidates = candidates[keep]
        candidates = candidates[~torch.isin(candidates, forbidden_keys)]
        if candidates.numel() < num_samples:
            raise ValueError(
                f"cannot sample {num_samples} negative pairs: the graph has only {candidates.numel()} non-edges"
            )
        chosen = candidates[torch.randperm(candidates.numel(), generator=generator)[:num_samples]]
    else:
        chosen_list: list[torch.Tensor] = []
        taken = forbidden_keys
        have = 0
        while have < num_samples:
            draw = 2 * (num_samples - have) + 16
            rows = torch.randint(num_nodes, (draw,), generator=generator)
            cols = torch.randint(num_nodes, (draw,), generator=generator)
            if not directed:
                rows, cols = torch.minimum(rows, cols), torch.maximum(rows, cols)
            keys = rows * num_nodes + cols
            keys = keys[(rows != cols) & ~torch.isin(keys, taken)]
            # keep first occurrences in draw order (deterministic de-duplication)
            unique, inverse = torch.unique(keys, return_inverse=True)
            first = torch.full((unique.numel(),), keys.numel(), dtype=torch.long).scatter_reduce(
                0, inverse, torch.arange(keys.numel()), reduce="amin"
            )
            keys = keys[torch.sort(first).values][: num_samples - have]
            chosen_list.append(keys)
            taken = torch.cat([taken, keys])
            have += keys.numel()
        chosen = torch.cat(chosen_list)
    return torch.stack([chosen // num_nodes, chosen % num_nodes])


def random_link_split(
    edge_index: torch.Tensor,
    num_nodes: int,
    fractions: Sequence[float] = (0.85, 0.05, 0.10),
    seed: int = 0,
    directed: bool = False,
) -> tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
    """Seeded link split: hold out edges for valid/test and sample as many negatives for each.

    Each undirected edge (both of its directions) goes wholly to one split. Self-loops stay in
    training.

    Args:
        edge_index: int64 ``[2, E]``; undirected graphs list both directions.
        num_nodes: ``N``.
        fractions: train/valid/test fractions of the (undirected) edges.
        seed: split seed.
        directed: treat each ordered pair as its own edge.

    Returns:
        ``(train_edge_mask bool [E], edge_splits)`` where ``edge_splits`` follows the contract:
        ``{"train"|"valid"|"test": {"edge_index": [2, E_s], "neg_edge_index": [2, E_s]}}``
        (no negatives for train; undirected positives listed once as ``(min, max)``).
    """
    train_frac, valid_frac, _ = _check_fractions(fractions)
    generator = torch_generator(seed)
    src, dst = edge_index[0], edge_index[1]
    if directed:
        keys = src * num_nodes + dst
    else:
        keys = torch.minimum(src, dst) * num_nodes + torch.maximum(src, dst)
    self_loop = src == dst
    pair_keys, pair_of_edge = torch.unique(keys, return_inverse=True)
    pair_is_loop = torch.zeros(pair_keys.numel(), dtype=torch.bool)
    pair_is_loop[pair_of_edge[self_loop]] = True
    candidates = (~pair_is_loop).nonzero().view(-1)
    perm = candidates[torch.randperm(candidates.numel(), generator=generator)]
    n_valid = int(round(valid_frac * perm.numel()))
    n_test = perm.numel() - int(round(train_frac * perm.numel())) - n_valid
    split_of_pair = torch.zeros(pair_keys.numel(), dtype=torch.long)  # 0 train, 1 valid, 2 test
    split_of_pair[perm[:n_valid]] = 1
    split_of_pair[perm[n_valid : n_valid + n_test]] = 2
    train_edge_mask = split_of_pair[pair_of_edge] == 0
    edge_splits: dict[str, dict[str, torch.Tensor]] = {}
    train_pairs = pair_keys[split_of_pair == 0]
    edge_splits["train"] = {"edge_index": torch.stack([train_pairs // num_nodes, train_pairs % num_nodes])}
    negatives = sample_negative_edges(num_nodes, n_valid + n_test, edge_index, generator, directed=directed)
    for code, split, lo, hi in ((1, "valid", 0, n_valid), (2, "test", n_valid, n_valid + n_test)):
        pairs = pair_keys[split_of_pair == code]
        edge_splits[split] = {
            "edge_index": torch.stack([pairs // num_nodes, pairs % num_nodes]),
            "neg_edge_index": negatives[:, lo:hi].contiguous(),
        }
    return train_edge_mask, edge_splits
