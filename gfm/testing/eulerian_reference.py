"""Plain reference implementations for the Eulerian tokenizer: an oracle for tests, a baseline for speed.

* :func:`networkx_walk`: the walk from ``nx.eulerize`` (min-weight matching of odd nodes) and
  ``nx.eulerian_path`` / ``nx.eulerian_circuit``, per connected component, in the same
  :class:`~gfm.tokenization.eulerian.walk.Walk` format as the fast walk.
* :func:`reference_tokens`: writes any walk as tokens one at a time, looking every token up by
  its *string* in the vocabulary; it shares no code with the vectorized writer of
  :class:`~gfm.tokenization.eulerian.EulerianTokenizer`, so equality of the two checks the fast
  path token by token, position by position and link by link.
* :func:`reference_encode`: networkx walk + reference writer, the baseline of
  ``benchmarks/tokenizer_speed.py`` (this is how public Eulerian tokenizers work today).
* :func:`graph_difference`: compares a decoded graph with its source up to the node relabelling
  the encoding reports (``metadata["node_order"]``); ``None`` when they are the same graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Data

from gfm.tokenization.eulerian.graphs import read_graph
from gfm.tokenization.eulerian.tokenizer import (
    EDGE_TYPE_DUPLICATE,
    EDGE_TYPE_EDGE,
    EDGE_TYPE_REVERSE,
    EDGE_TYPE_STEP_TOKEN,
)
from gfm.tokenization.eulerian.vocab import NODE_FIELDS
from gfm.tokenization.eulerian.walk import FLAG_COMPONENT_START, FLAG_DUPLICATE, FLAG_REVERSED, Walk
from gfm.tokenization.tokenized_graph import TokenizedGraph

__all__ = ["networkx_walk", "multigraph_edges", "reference_tokens", "reference_encode", "graph_difference"]


def multigraph_edges(graph: Data, default_domain: str = "generic") -> tuple[int, np.ndarray, np.ndarray, np.ndarray, bool]:
    """The edges the walk runs on: every arc of a directed graph, one entry per undirected pair.

    Returns:
        ``(num_nodes, eu [M], ev [M], entry [M], directed)``; ``entry`` indexes ``edge_index`` columns.
    """
    arrays = read_graph(graph, 0, default_domain, set())
    src, dst = arrays.edge_index
    directed = arrays.schema.directed
    entry = np.array([e for e in range(len(src)) if directed or src[e] <= dst[e]], dtype=np.int64)
    return arrays.num_nodes, src[entry], dst[entry], entry, directed


def networkx_walk(num_nodes: int, eu: np.ndarray, ev: np.ndarray) -> Walk:
    """Eulerian walk by networkx: ``eulerize`` (blossom matching) then ``eulerian_path``.

    Components are walked in order of their smallest node; a component that already has an
    Eulerian path is not eulerized (as the fast walk, which keeps two odd endpoints).
    """
    graph = nx.MultiGraph()
    graph.add_nodes_from(range(num_nodes))
    for e, (u, v) in enumerate(zip(eu.tolist(), ev.tolist())):
        graph.add_edge(u, v, key=e, eid=e)
    nodes, edges, flags = [], [], []
    components = sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: c[0])
    for component in components:
        sub = graph.subgraph(component).copy()
        if sub.number_of_edges() == 0:
            nodes.append(component[0])
            edges.append(-1)
            flags.append(FLAG_COMPONENT_START)
            continue
        if nx.has_eulerian_path(sub):
            walk_graph = sub
            path = list(nx.eulerian_path(sub, keys=True))
        else:
            walk_graph = nx.eulerize(sub)
            path = list(nx.eulerian_circuit(walk_graph, keys=True))
        nodes.append(path[0][0])
        edges.append(-1)
        flags.append(FLAG_COMPONENT_START)
        for u, v, key in path:
            data = walk_graph.edges[u, v, key]
            if "eid" in data:
                e, flag = data["eid"], 0
            else:  # an edge nx.eulerize added: a duplicate of some real edge between u and v
                e, flag = min(d["eid"] for d in graph[u][v].values()), FLAG_DUPLICATE
            if eu[e] != u:
                flag |= FLAG_REVERSED
            nodes.append(v)
            edges.append(e)
            flags.append(flag)
    rank = np.full(num_nodes, -1, dtype=np.int64)
    next_rank = 0
    for v in nodes:
        if rank[v] < 0:
            rank[v] = next_rank
            next_rank += 1
    return Walk(np.asarray(nodes, dtype=np.int64), np.asarray(edges, dtype=np.int64),
                np.asarray(flags, dtype=np.int8), rank)


def _index_strings(label: int, base: int) -> list[str]:
    if label < base:
        return [f"<i:{label}>"]
    digits = []
    while label:
        digits.append(label % base)
        label //= base
    return [f"<ilen:{len(digits)}>"] + [f"<i:{d}>" for d in reversed(digits)]


def _value_strings(domain: str, spec, row: np.ndarray, vocabulary, unknown: str) -> list[str]:
    out = []
    for column, value in enumerate(row.tolist()):
        prefix = f"{domain}/{spec.name}[{column}]"
        if spec.kind == "categorical":
            token = f"{prefix}={int(value)}"
            if token not in vocabulary.token_to_id:
                if unknown != "unk":
                    raise KeyError(f"{token} not in the vocabulary")
                token = "<unk>"
            out.append(token)
            continue
        q = int(round(float(value) * 10**vocabulary.continuous_decimals))
        magnitude, digits = abs(q), []
        while magnitude:
            digits.append(magnitude % vocabulary.continuous_base)
            magnitude //= vocabulary.continuous_base
        head = f"{prefix}:0" if q == 0 else f"{prefix}:{'+' if q > 0 else '-'}{len(digits)}"
        out += [head] + [f"<d:{d}>" for d in reversed(digits)]
    return out


def reference_tokens(
    tokenizer,
    graph: Data,
    walk: Walk,
    *,
    offset: int = 0,
    target_node: int | None = None,
    target_edge: tuple[int, int] | None = None,
    add_special_tokens: bool = True,
    unknown: str = "error",
) -> TokenizedGraph:
    """Write ``walk`` of ``graph`` as base tokens, one token at a time (the format's definition).

    Args:
        tokenizer: an :class:`~gfm.tokenization.eulerian.EulerianTokenizer` (for its vocabulary).
        walk: a walk over :func:`multigraph_edges` of ``graph`` (edge ids index those edges).
        offset: the cyclic index offset.
    """

    vocabulary = tokenizer.vocabulary
    arrays = read_graph(graph, 0, tokenizer.default_domain, set())
    schema = vocabulary.find_schema(arrays.schema)
    if schema is None:
        raise KeyError(f"layout {arrays.schema.token} not in the vocabulary")
    _, _, _, entry, directed = multigraph_edges(graph, tokenizer.default_domain)
    n = arrays.num_nodes
    modulus = max(n, vocabulary.num_index_tokens)
    tokens: list[str] = []
    node_index: list[int] = []
    links: list[tuple[int, int, int]] = []

    def emit(strings: list[str], node: int = -1) -> int:
        start = len(tokens)
        tokens.extend(strings)
        node_index.extend([node] * len(strings))
        return start

    if add_special_tokens:
        emit(["<bos>"])
    emit([schema.token])
    if offset:
        emit(_index_strings(offset, vocabulary.num_index_tokens))
    seen = set()
    previous_head = -1
    for i in range(len(walk.node)):
        v, e, flags = int(walk.node[i]), int(walk.edge[i]), int(walk.flags[i])
        rank = int(walk.rank[v])
        step_start = len(tokens)
        if flags & FLAG_COMPONENT_START:
            if i > 0:
                emit(["<jump>"])
            step_start = None
        elif flags & FLAG_DUPLICATE:
            emit(["<dup>"])
        else:
            if directed:
                emit(["<bwd>" if flags & FLAG_REVERSED else "<fwd>"])
            row = int(entry[e])
            for spec in schema.edge_fields:
                emit(_value_strings(schema.domain, spec, arrays.edge_fields[spec.name][row], vocabulary, unknown))
        step_end = len(tokens)
        if v in seen:
            head = emit(_index_strings((rank + offset) % modulus, vocabulary.num_index_tokens), rank)
        else:
            seen.add(v)
            strings = []
            for spec in schema.node_fields:
                strings += _value_strings(schema.domain, spec, arrays.node_fields[spec.name][v], vocabulary, unknown)
            head = emit(strings or ["<node>"], rank)
        if step_start is not None:
            if flags & FLAG_DUPLICATE:
                links += [(previous_head, head, EDGE_TYPE_DUPLICATE), (head, previous_head, EDGE_TYPE_DUPLICATE)]
            elif directed:
                a, b = (head, previous_head) if flags & FLAG_REVERSED else (previous_head, head)
                links += [(a, b, EDGE_TYPE_EDGE), (b, a, EDGE_TYPE_REVERSE)]
            else:
                links += [(previous_head, head, EDGE_TYPE_EDGE), (head, previous_head, EDGE_TYPE_EDGE)]
            for t in range(step_start, step_end):
                links += [(t, previous_head, EDGE_TYPE_STEP_TOKEN), (previous_head, t, EDGE_TYPE_STEP_TOKEN),
                          (t, head, EDGE_TYPE_STEP_TOKEN), (head, t, EDGE_TYPE_STEP_TOKEN)]
        previous_head = head
    metadata: dict[str, Any] = {}
    if target_node is not None:
        rank = int(walk.rank[target_node])
        emit(["<target_node>"])
        emit(_index_strings((rank + offset) % modulus, vocabulary.num_index_tokens), rank)
        metadata["target_node"] = rank
    if target_edge is not None:
        emit(["<target_edge>"])
        for node in target_edge:
            rank = int(walk.rank[node])
            emit(_index_strings((rank + offset) % modulus, vocabulary.num_index_tokens), rank)
        metadata["target_edge"] = [int(walk.rank[u]) for u in target_edge]
    if add_special_tokens:
        emit(["<eos>"])
    ids = [vocabulary.token_to_id[t] for t in tokens]
    edge_index = torch.tensor([[a for a, _, _ in links], [b for _, b, _ in links]], dtype=torch.long).reshape(2, -1)
    return TokenizedGraph(
        input_ids=torch.tensor(ids, dtype=torch.long),
        node_index=torch.tensor(node_index, dtype=torch.long),
        edge_index=edge_index,
        edge_type=torch.tensor([t for _, _, t in links], dtype=torch.long),
        num_nodes=n,
        domain=schema.domain,
        metadata=metadata,
    )


def reference_encode(tokenizer, graph: Data) -> TokenizedGraph:
    """The baseline: networkx eulerization and walk, then the per-token writer."""
    num_nodes, eu, ev, _, _ = multigraph_edges(graph, tokenizer.default_domain)
    return reference_tokens(tokenizer, graph, networkx_walk(num_nodes, eu, ev))


# ---------------------------------------------------------------------------------------------
# graph comparison
# ---------------------------------------------------------------------------------------------
def _as_2d(value: torch.Tensor) -> np.ndarray:
    array = value.detach().cpu()
    if array.dtype == torch.bfloat16 or array.dtype == torch.float16:
        array = array.float()
    array = array.numpy()
    return array.reshape(-1, 1) if array.ndim == 1 else array


def graph_difference(
    original: Data,
    decoded: Data,
    node_order: Sequence[int],
    tolerance: float,
    default_domain: str = "generic",
) -> str | None:
    """How ``decoded`` differs from ``original`` once nodes are relabelled, or ``None``.

    Args:
        node_order: original node id of each decoded node (``metadata["node_order"]``).
        tolerance: allowed absolute error of continuous values (the tokenizer's
            ``continuous_tolerance``); a relative ``1e-6`` is added for float32 rounding.
    """
    source = read_graph(original, 0, default_domain, set())
    n = source.num_nodes
    if decoded.num_nodes != n:
        return f"num_nodes {decoded.num_nodes} != {n}"
    order = np.asarray(node_order, dtype=np.int64)
    if sorted(order.tolist()) != list(range(n)):
        return "node_order is not a permutation"
    if getattr(decoded, "domain", None) != source.schema.domain:
        return f"domain {getattr(decoded, 'domain', None)!r} != {source.schema.domain!r}"
    if bool(getattr(decoded, "directed", False)) != source.schema.directed:
        return "directed flag differs"

    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and bool(
            np.all(np.abs(a.astype(np.float64) - b.astype(np.float64)) <= tolerance + 1e-6 * np.abs(a.astype(np.float64)))
        )

    def decoded_field(spec, kind: str):
        """``(decoded tensor, None)``, or ``(None, why)`` when it is missing or of another dtype / rank."""
        value, given = getattr(decoded, spec.name, None), getattr(original, spec.name)
        if value is None:
            return None, f"{kind} field {spec.name} missing"
        if value.dtype != given.dtype or value.dim() != given.dim():
            return None, (f"{kind} field {spec.name}: dtype/shape {value.dtype}/{tuple(value.shape)} != "
                          f"{given.dtype}/{tuple(given.shape)}")
        return value, None

    for spec in source.schema.node_fields:
        value, problem = decoded_field(spec, "node")
        if problem:
            return problem
        expected = source.node_fields[spec.name][order]
        got = _as_2d(value)
        if spec.kind == "categorical":
            if not np.array_equal(got.astype(np.int64), expected):
                return f"node field {spec.name} differs"
        elif not close(expected, got):
            return f"node field {spec.name} differs beyond {tolerance}"
    for name in NODE_FIELDS:
        if getattr(original, name, None) is None and getattr(decoded, name, None) is not None:
            return f"decoded has an extra field {name}"

    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    src, dst = source.edge_index
    mine = [rank[src], rank[dst]]
    other = [decoded.edge_index[0].numpy(), decoded.edge_index[1].numpy()]
    if len(mine[0]) != len(other[0]):
        return f"{len(other[0])} edge_index entries != {len(mine[0])}"
    exact_a, exact_b = list(mine), list(other)
    rounded_a, rounded_b, cont_a, cont_b = [], [], [], []
    quantum = 2.0 * max(tolerance, 1e-12)  # 10**-decimals: sort continuous values by their quantized value
    for spec in source.schema.edge_fields:
        value, problem = decoded_field(spec, "edge")
        if problem:
            return problem
        a, b = source.edge_fields[spec.name], _as_2d(value)
        if spec.kind == "categorical":
            exact_a += [a[:, c] for c in range(a.shape[1])]
            exact_b += [b[:, c].astype(np.int64) for c in range(b.shape[1])]
        else:
            rounded_a += [np.rint(a[:, c].astype(np.float64) / quantum) for c in range(a.shape[1])]
            rounded_b += [np.rint(b[:, c].astype(np.float64) / quantum) for c in range(b.shape[1])]
            cont_a.append(a)
            cont_b.append(b)
    order_a = np.lexsort((exact_a + rounded_a)[::-1])
    order_b = np.lexsort((exact_b + rounded_b)[::-1])
    for a, b in zip(exact_a, exact_b):
        if not np.array_equal(np.asarray(a)[order_a], np.asarray(b)[order_b]):
            return "edges (or categorical edge attributes) differ"
    for a, b in zip(cont_a, cont_b):
        if not close(a[order_a], b[order_b]):
            return f"continuous edge attributes differ beyond {tolerance}"
    for name in ("edge_attr", "edge_attr_cont"):
        if getattr(original, name, None) is None and getattr(decoded, name, None) is not None:
            return f"decoded has an extra field {name}"
    return None
