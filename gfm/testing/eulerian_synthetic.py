"""Seeded random graphs for the Eulerian tokenizer's benchmark, fuzzing and property tests.

* :func:`molecule_like_graphs`: 20-30 nodes, maximum degree 4, a few rings, with OGB-style
  categorical atom (9 columns) and bond (3 columns) attributes as ``from_smiles`` gives.
* :func:`random_graph`: anything the tokenizer must handle: no nodes, isolated nodes, self-loops,
  parallel edges, several components, directed graphs, and every attribute layout of
  :data:`NODE_LAYOUTS` x :data:`EDGE_LAYOUTS` (categorical int64 / int32 / bool, 1-D, continuous
  float32 / float64, categorical plus continuous).
* :func:`covering_graphs`: one graph per layout holding every categorical value
  :func:`random_graph` can draw, so a tokenizer trained on them accepts every random graph.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch_geometric.data import Data

__all__ = [
    "NODE_LAYOUTS",
    "EDGE_LAYOUTS",
    "DOMAINS",
    "CATEGORICAL_VALUES",
    "molecule_like_graph",
    "molecule_like_graphs",
    "random_graph",
    "covering_graphs",
]

# (kind, width, dtype) per field; a layout is a tuple of fields, first x / edge_attr, then *_cont
NODE_LAYOUTS: tuple[tuple, ...] = (
    (),
    (("x", "categorical", 3, "int64"),),
    (("x", "categorical", 0, "int64"),),  # width 0: a 1-D tensor [N]
    (("x", "categorical", 2, "int32"),),
    (("x", "categorical", 2, "bool"),),
    (("x", "continuous", 2, "float32"),),
    (("x", "continuous", 1, "float64"),),
    (("x", "categorical", 2, "int64"), ("x_cont", "continuous", 2, "float32")),
)
EDGE_LAYOUTS: tuple[tuple, ...] = (
    (),
    (("edge_attr", "categorical", 2, "int64"),),
    (("edge_attr", "categorical", 0, "int64"),),
    (("edge_attr", "continuous", 1, "float32"),),
    (("edge_attr", "categorical", 1, "int64"), ("edge_attr_cont", "continuous", 2, "float32")),
)
DOMAINS = ("alpha", "beta")
CATEGORICAL_VALUES = np.arange(-2, 6)


def _values(rng: np.random.Generator, rows: int, kind: str, width: int, dtype: str) -> torch.Tensor:
    columns = max(width, 1)
    if kind == "categorical":
        if dtype == "bool":
            array = rng.integers(0, 2, (rows, columns)).astype(bool)
        else:
            array = rng.choice(CATEGORICAL_VALUES, (rows, columns)).astype(dtype)
    else:
        scale = 10.0 ** rng.integers(-3, 5, (rows, columns))
        array = rng.normal(size=(rows, columns)) * scale
        array[rng.random((rows, columns)) < 0.2] = 0.0
        array = array.astype(dtype)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.reshape(-1) if width == 0 else tensor


def random_graph(
    rng: np.random.Generator,
    max_nodes: int = 12,
    node_layout: int | None = None,
    edge_layout: int | None = None,
    directed: bool | None = None,
) -> Data:
    """A random graph (see the module docstring); layouts index :data:`NODE_LAYOUTS` / :data:`EDGE_LAYOUTS`."""
    n = int(rng.integers(0, 3)) if rng.random() < 0.1 else int(rng.integers(0, max_nodes + 1))
    directed = bool(rng.random() < 0.3) if directed is None else directed
    node_layout = int(rng.integers(len(NODE_LAYOUTS))) if node_layout is None else node_layout
    edge_layout = int(rng.integers(len(EDGE_LAYOUTS))) if edge_layout is None else edge_layout
    m = int(rng.integers(0, 2 * n + 3)) if n else 0
    src = rng.integers(0, n, m) if n else np.zeros(0, dtype=np.int64)
    dst = rng.integers(0, n, m) if n else np.zeros(0, dtype=np.int64)
    if m and rng.random() < 0.3:  # extra parallel copies and self-loops
        extra = rng.integers(0, m, int(rng.integers(1, 4)))
        src, dst = np.concatenate([src, src[extra]]), np.concatenate([dst, dst[extra]])
        loops = rng.integers(0, n, int(rng.integers(0, 3)))
        src, dst = np.concatenate([src, loops]), np.concatenate([dst, loops])
    m = len(src)
    edge_fields = {name: _values(rng, m, kind, width, dtype) for name, kind, width, dtype in EDGE_LAYOUTS[edge_layout]}
    if not directed:
        reverse = src != dst
        index = np.concatenate([np.arange(m), np.nonzero(reverse)[0]])
        src, dst = np.concatenate([src, dst[reverse]]), np.concatenate([dst, src[reverse]])
        edge_fields = {k: v[torch.from_numpy(index)] for k, v in edge_fields.items()}
    permutation = rng.permutation(len(src))
    edge_index = torch.from_numpy(np.stack([src, dst])[:, permutation].astype(np.int64)).reshape(2, -1)
    data = Data(edge_index=edge_index, num_nodes=n)
    for name, value in edge_fields.items():
        data[name] = value[torch.from_numpy(permutation)]
    for name, kind, width, dtype in NODE_LAYOUTS[node_layout]:
        data[name] = _values(rng, n, kind, width, dtype)
    data.domain = DOMAINS[int(rng.integers(len(DOMAINS)))]
    if directed:
        data.directed = True
    return data


def covering_graphs() -> list[Data]:
    """One graph per (domain, direction, node layout, edge layout) with every categorical value."""
    values = len(CATEGORICAL_VALUES)
    graphs = []
    for domain, directed, node_layout, edge_layout in itertools.product(
        DOMAINS, (False, True), NODE_LAYOUTS, EDGE_LAYOUTS
    ):
        n = values
        src = np.arange(n)
        dst = (src + 1) % n
        if not directed:
            src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
        data = Data(edge_index=torch.from_numpy(np.stack([src, dst]).astype(np.int64)), num_nodes=n)
        for fields, rows in ((node_layout, n), (edge_layout, len(src))):
            for name, kind, width, dtype in fields:
                columns = max(width, 1)
                if kind == "categorical":
                    column = np.resize(CATEGORICAL_VALUES if dtype != "bool" else np.array([0, 1]), rows)
                    if not directed and rows == len(src) and fields is edge_layout:
                        column = np.concatenate([column[: rows // 2], column[: rows // 2]])
                    array = np.repeat(column[:, None], columns, axis=1).astype(dtype)
                else:
                    array = np.zeros((rows, columns), dtype=dtype)
                tensor = torch.from_numpy(np.ascontiguousarray(array))
                data[name] = tensor.reshape(-1) if width == 0 else tensor
        data.domain = domain
        if directed:
            data.directed = True
        graphs.append(data)
    return graphs


def molecule_like_graph(
    rng: np.random.Generator, min_nodes: int = 20, max_nodes: int = 30, max_degree: int = 4, max_rings: int = 3
) -> Data:
    """A random tree of maximum degree ``max_degree`` closed into 1..``max_rings`` rings, with atom/bond columns."""
    n = int(rng.integers(min_nodes, max_nodes + 1))
    degree = np.zeros(n, dtype=np.int64)
    edges: list[tuple[int, int]] = []
    for v in range(1, n):
        candidates = np.nonzero(degree[:v] < max_degree - 1)[0]
        u = int(candidates[rng.integers(len(candidates))]) if len(candidates) else int(rng.integers(v))
        edges.append((u, v))
        degree[u] += 1
        degree[v] += 1
    existing = set(edges)
    for _ in range(int(rng.integers(1, max_rings + 1))):
        for _attempt in range(20):
            u, v = (int(a) for a in rng.integers(0, n, 2))
            if u != v and degree[u] < max_degree and degree[v] < max_degree and (min(u, v), max(u, v)) not in existing:
                edges.append((min(u, v), max(u, v)))
                existing.add((min(u, v), max(u, v)))
                degree[u] += 1
                degree[v] += 1
                break
    atomic = rng.choice(np.array([6, 6, 6, 6, 6, 7, 7, 8, 8, 9, 16, 17]), n)
    aromatic = (rng.random(n) < 0.3).astype(np.int64)
    x = np.stack(
        [
            atomic,
            np.zeros(n, dtype=np.int64),  # chirality
            degree,
            np.full(n, 5) + (rng.random(n) < 0.03) * rng.choice(np.array([-1, 1]), n),  # formal charge index
            np.clip(4 - degree - aromatic, 0, 3),  # hydrogens
            np.zeros(n, dtype=np.int64),  # radicals
            np.where(aromatic == 1, 3, rng.integers(2, 5, n)),  # hybridization
            aromatic,
            (rng.random(n) < 0.4).astype(np.int64),  # in ring
        ],
        axis=1,
    ).astype(np.int64)
    pairs = np.asarray(edges, dtype=np.int64)
    bond = rng.choice(np.array([1, 1, 1, 2, 12]), len(pairs))
    bond_attr = np.stack(
        [bond, np.zeros(len(pairs), dtype=np.int64), (bond != 1).astype(np.int64)], axis=1
    ).astype(np.int64)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((dst, src))
    return Data(
        x=torch.from_numpy(x),
        edge_index=torch.from_numpy(np.stack([src[order], dst[order]])),
        edge_attr=torch.from_numpy(np.concatenate([bond_attr, bond_attr])[order]),
        num_nodes=n,
        domain="molecules",
    )


def molecule_like_graphs(num_graphs: int, seed: int = 0, **kwargs) -> list[Data]:
    """``num_graphs`` seeded :func:`molecule_like_graph` s."""
    rng = np.random.default_rng(seed)
    return [molecule_like_graph(rng, **kwargs) for _ in range(num_graphs)]
