"""Categorical values a vocabulary must hold whatever sample of a dataset it is trained on.

:meth:`EulerianTokenizer.train <gfm.tokenization.eulerian.EulerianTokenizer.train>` gives a token
to every categorical value its training graphs hold. When those graphs are a seeded sample of a
larger dataset (ego graphs of one knowledge graph, a few hundred of a dataset's graphs), another
seed's sample holds values this one lacked, and encoding it fails (``UnknownValueError``): a
tokenizer trained on the seed-0 ego graphs of CoDEx-M saw 34 of its 51 relations. The functions
here read the values of the *whole* dataset, to pass as ``train(declared_values=...)``:

* every value of every integer (categorical) column of ``x``, ``x_cont``, ``edge_attr`` and
  ``edge_attr_cont`` over all of the dataset's graphs;
* for a graph with ``relation_names`` (a knowledge graph: ``edge_attr[:, 0]`` holds relation ids),
  every relation id ``0 .. len(relation_names) - 1``, including relations that occur only in the
  validation or test triples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from .vocab import EDGE_FIELDS, NODE_FIELDS

__all__ = ["dataset_categorical_values", "merge_categorical_values"]

DeclaredValues = dict[tuple[str, str], list[list[int]]]


def _columns(value: torch.Tensor) -> np.ndarray | None:
    """The integer columns of a categorical field as int64 ``[rows, width]``; ``None`` if not categorical."""
    if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex() or value.dim() not in (1, 2):
        return None
    array = value.detach().cpu().to(torch.int64).numpy()
    return array.reshape(-1, 1) if array.ndim == 1 else array


def dataset_categorical_values(
    graphs: Iterable[Data], domain: str | None = None, default_domain: str = "generic"
) -> DeclaredValues:
    """Every categorical value of a dataset, per ``(domain, field)`` and column.

    Args:
        graphs: all of the dataset's graphs (not a sample of them).
        domain: the domain every graph is tokenized under (what ``gfm.training.corpus`` sets on the
            pretraining view: the dataset's domain); ``None`` reads each graph's ``domain``.
        default_domain: the domain of graphs without one (as the tokenizer's ``default_domain``).

    Returns:
        ``{(domain, field): [sorted values of column 0, of column 1, ...]}``, the layout of
        ``EulerianTokenizer.train(declared_values=...)``; a knowledge graph's ``edge_attr`` column 0
        covers ``range(len(relation_names))``.
    """
    found: dict[tuple[str, str], list[list[np.ndarray]]] = {}
    for graph in graphs:
        graph_domain = domain or str(getattr(graph, "domain", None) or default_domain)
        for name in NODE_FIELDS + EDGE_FIELDS:
            array = _columns(getattr(graph, name, None))
            if array is None:
                continue
            columns = found.setdefault((graph_domain, name), [])
            columns.extend([] for _ in range(array.shape[1] - len(columns)))
            for column in range(array.shape[1]):
                columns[column].append(np.unique(array[:, column]))
        relations = getattr(graph, "relation_names", None)
        if relations is not None and _columns(getattr(graph, "edge_attr", None)) is not None:
            columns = found.setdefault((graph_domain, "edge_attr"), [])
            if not columns:
                columns.append([])
            columns[0].append(np.arange(len(relations), dtype=np.int64))
    return {
        key: [np.unique(np.concatenate(parts)).tolist() if parts else [] for parts in columns]
        for key, columns in found.items()
    }


def merge_categorical_values(*mappings: Mapping[tuple[str, str], Sequence[Sequence[int]]]) -> DeclaredValues:
    """The union of several ``declared_values`` mappings, column by column (sorted, without repeats)."""
    merged: dict[tuple[str, str], list[set[int]]] = {}
    for mapping in mappings:
        for key, columns in mapping.items():
            known = merged.setdefault(key, [])
            known.extend(set() for _ in range(len(columns) - len(known)))
            for column, values in enumerate(columns):
                known[column].update(int(v) for v in values)
    return {key: [sorted(values) for values in columns] for key, columns in merged.items()}
