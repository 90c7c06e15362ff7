"""TU Dortmund raw text format (``tu/<folder>``): PROTEINS, ENZYMES, AIDS, Mutagenicity, and any
other folder in that format.

Files of a dataset ``DS`` (in ``<data_dir>/tudataset/DS/raw/`` or ``<data_dir>/tudataset/DS/``):

- ``DS_A.txt``: one edge ``i, j`` per line, 1-based global node ids (both directions listed);
- ``DS_graph_indicator.txt``: one line per node, the 1-based graph id (non-decreasing);
- ``DS_graph_labels.txt`` (classification) or ``DS_graph_attributes.txt`` (regression): one line per graph;
- optional ``DS_node_labels.txt`` -> int64 ``x`` (categorical, raw ids kept),
  ``DS_node_attributes.txt`` -> float32 ``x_cont`` (or ``x`` when there are no node labels),
  ``DS_edge_labels.txt`` -> int64 ``edge_attr``, ``DS_edge_attributes.txt`` -> float32
  ``edge_attr_cont`` (or ``edge_attr`` when there are no edge labels).

Chemical TU datasets (AIDS, Mutagenicity, ...) ship ``DS_label_readme.txt`` mapping node label ids
to element symbols and edge label ids to bond valences. With ``chemistry="auto"`` (default) such
labels are rewritten into the convention of molecules parsed from SMILES
(``torch_geometric.utils.from_smiles``): ``x[:, 0]`` = atomic number and ``edge_attr[:, 0]`` =
bond-type index (1 single, 2 double, 3 triple), so the same atom or bond gets the same token in
every molecular dataset; ``chemistry="raw"`` keeps the source's ids.

Graph labels are mapped to class ids ``0..C-1`` in sorted order of the raw values
(``TaskSpec.class_names`` keeps the raw values). The source ships no split: gfm uses a seeded
stratified 80/10/10 split (``seed`` option).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from ._text import count_lines, read_numeric_lines
from .dataset import DataFormatError, GraphDataset, TaskSpec
from .registry import DatasetSource, register
from .splits import random_split, stratified_split

__all__ = ["load_tu_folder", "TU_DOMAINS", "read_label_readme"]

logger = logging.getLogger(__name__)

#: Domain of well-known TU datasets; others default to "other" (override with ``domain=``).
TU_DOMAINS = {
    "PROTEINS": "proteins",
    "PROTEINS_full": "proteins",
    "ENZYMES": "proteins",
    "DD": "proteins",
    "AIDS": "molecules",
    "Mutagenicity": "molecules",
    "MUTAG": "molecules",
    "NCI1": "molecules",
    "NCI109": "molecules",
    "PTC_MR": "molecules",
    "BZR": "molecules",
    "COX2": "molecules",
    "DHFR": "molecules",
    "IMDB-BINARY": "social",
    "IMDB-MULTI": "social",
    "REDDIT-BINARY": "social",
    "COLLAB": "social",
}

_FIX = "The TU files of one dataset must describe the same nodes/edges/graphs; re-export the folder."


def _file(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}_{suffix}.txt"


def _raw_folder(data_dir: Path, name: str) -> Path:
    base = data_dir / "tudataset" / name
    return base / "raw" if (base / "raw").is_dir() else base


def _discover(data_dir: Path) -> list[str]:
    root = data_dir / "tudataset"
    if not root.is_dir():
        return []
    names = []
    for folder in sorted(root.iterdir()):
        raw = folder / "raw" if (folder / "raw").is_dir() else folder
        if (raw / f"{folder.name}_A.txt").is_file():
            names.append(f"tu/{folder.name}")
    return names


def _files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    folder_name = name.split("/", 1)[1]
    folder = _raw_folder(data_dir, folder_name)
    required = [_file(folder, folder_name, s) for s in ("A", "graph_indicator")]
    labels, attributes = _file(folder, folder_name, "graph_labels"), _file(folder, folder_name, "graph_attributes")
    required.append(attributes if attributes.exists() and not labels.exists() else labels)
    optional = [
        _file(folder, folder_name, s)
        for s in ("node_labels", "node_attributes", "edge_labels", "edge_attributes")
        if _file(folder, folder_name, s).exists()
    ]
    return required + optional


def _check_lines(path: Path, expected: int, reference: Path, what: str) -> None:
    have = count_lines(path)
    if have != expected:
        first_bad = min(have, expected) + 1
        raise DataFormatError(
            f"{path}: {have} lines but {reference.name} implies {expected} ({what}); the files disagree from "
            f"line {first_bad} on. {_FIX}"
        )


def read_label_readme(path: Path) -> dict[str, dict[int, str]]:
    """Parse a TU ``DS_label_readme.txt`` into ``{"node": {id: text}, "edge": {id: text}}``.

    Only the maps of the first component of the node and edge label sections are read.
    """
    maps: dict[str, dict[int, str]] = {}
    section: str | None = None
    for line in path.read_text(encoding="latin1").splitlines():
        lowered = line.strip().lower()
        if lowered.startswith("node labels were converted"):
            section = "node"
        elif lowered.startswith("edge labels were converted"):
            section = "edge"
        elif lowered.startswith(("class labels", "node attributes", "edge attributes")):
            section = None
        elif section and line.strip() and line.strip()[0].isdigit():
            key, _, value = line.strip().partition("\t")
            if value.strip() and key.strip().isdigit():
                maps.setdefault(section, {})[int(key)] = value.strip()
    return maps


def _chemical_maps(readme: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Lookup arrays label id -> atomic number and label id -> bond-type index, when the readme
    describes chemistry (every node label an element symbol, every edge label a valence 1-3)."""
    from rdkit import Chem

    maps = read_label_readme(readme)
    table = Chem.GetPeriodicTable()
    # symbol -> atomic number from the table itself (asking RDKit for an unknown symbol logs a trace)
    elements = {table.GetElementSymbol(number): number for number in range(1, 119)}
    atoms = None
    node_map = maps.get("node", {})
    if node_map:
        if not all(symbol in elements for symbol in node_map.values()):
            return None, None  # not element symbols: not a chemistry readme
        numbers = {key: elements[symbol] for key, symbol in node_map.items()}
        atoms = np.zeros(max(numbers) + 1, dtype=np.int64)
        for key, number in numbers.items():
            atoms[key] = number
    bonds = None
    edge_map = maps.get("edge", {})
    if edge_map and all(v in {"1", "2", "3"} for v in edge_map.values()):
        bonds = np.zeros(max(edge_map) + 1, dtype=np.int64)
        for key, valence in edge_map.items():
            bonds[key] = int(valence)  # from_smiles bond_type index: 1 single, 2 double, 3 triple
    return atoms, bonds


def load_tu_folder(
    folder: str | Path,
    dataset_name: str | None = None,
    domain: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    chemistry: str = "auto",
) -> GraphDataset:
    """Read one TU-format folder into a :class:`GraphDataset` (graph classification/regression).

    Args:
        folder: the folder holding ``<DS>_A.txt`` etc. (``DS`` = the folder name, or the parent's
            name when the folder is called ``raw``).
        dataset_name: registry name for messages (default ``"tu/<DS>"``).
        domain: domain tag; default from :data:`TU_DOMAINS`, else ``"other"``.
        seed: seed of the stratified split.
        fractions: train/valid/test fractions.
        chemistry: ``"auto"`` rewrites element/valence labels described by ``DS_label_readme.txt``
            into atomic numbers / bond-type indices (as molecules from SMILES); ``"raw"`` keeps ids.

    Raises:
        DataFormatError: mismatched line counts, ids out of range, edges across graphs,
            non-numeric values; each names the file and line.
    """
    folder = Path(folder)
    prefix = folder.parent.name if folder.name == "raw" else folder.name
    dataset_name = dataset_name or f"tu/{prefix}"
    if domain is None:
        domain = TU_DOMAINS.get(prefix, "other")
        if prefix not in TU_DOMAINS:
            logger.warning("%s: unknown TU dataset, domain set to 'other' (pass domain=... to tag it)", dataset_name)

    indicator_path = _file(folder, prefix, "graph_indicator")
    adjacency_path = _file(folder, prefix, "A")
    graph_of_node = read_numeric_lines(indicator_path, np.int64, "one graph id per node")[:, 0]
    num_nodes_total = graph_of_node.shape[0]
    if num_nodes_total and (graph_of_node.min() < 1 or (np.diff(graph_of_node) < 0).any()):
        bad = int(np.nonzero(graph_of_node < 1)[0][0]) if graph_of_node.min() < 1 else int(np.nonzero(np.diff(graph_of_node) < 0)[0][0]) + 1
        raise DataFormatError(
            f"{indicator_path}: line {bad + 1} holds graph id {int(graph_of_node[bad])}; graph ids must be >= 1 and "
            f"non-decreasing (the nodes of a graph are consecutive). {_FIX}"
        )

    labels_path, attributes_path = _file(folder, prefix, "graph_labels"), _file(folder, prefix, "graph_attributes")
    regression = not labels_path.exists() and attributes_path.exists()
    targets_path = attributes_path if regression else labels_path
    targets = read_numeric_lines(targets_path, np.float64 if regression else np.int64, "one line per graph")
    num_graphs = targets.shape[0]
    if num_nodes_total and graph_of_node.max() > num_graphs:
        line = int(np.nonzero(graph_of_node > num_graphs)[0][0]) + 1
        raise DataFormatError(
            f"{indicator_path}: line {line} refers to graph {int(graph_of_node[line - 1])} but {targets_path.name} has "
            f"{num_graphs} lines (one per graph). {_FIX}"
        )

    edges = read_numeric_lines(adjacency_path, np.int64, "one edge 'i, j' per line")
    if edges.size and edges.shape[1] != 2:
        raise DataFormatError(f"{adjacency_path}: lines must hold two node ids 'i, j', found {edges.shape[1]} values")
    edges = edges.reshape(-1, 2)
    if edges.size and (edges.min() < 1 or edges.max() > num_nodes_total):
        line = int(np.nonzero(((edges < 1) | (edges > num_nodes_total)).any(1))[0][0]) + 1
        raise DataFormatError(
            f"{adjacency_path}: line {line} refers to node {edges[line - 1].tolist()} but {indicator_path.name} has "
            f"{num_nodes_total} lines (one per node, ids are 1-based). {_FIX}"
        )
    edges = edges - 1
    edge_graph = graph_of_node[edges[:, 0]] if edges.size else np.zeros(0, dtype=np.int64)
    if edges.size and (edge_graph != graph_of_node[edges[:, 1]]).any():
        line = int(np.nonzero(edge_graph != graph_of_node[edges[:, 1]])[0][0]) + 1
        raise DataFormatError(
            f"{adjacency_path}: line {line} joins nodes of different graphs "
            f"({int(graph_of_node[edges[line - 1, 0]])} and {int(graph_of_node[edges[line - 1, 1]])}). {_FIX}"
        )

    node_fields: dict[str, np.ndarray] = {}
    edge_fields: dict[str, np.ndarray] = {}
    optional = (
        ("node_labels", np.int64, num_nodes_total, indicator_path, "one line per node", node_fields),
        ("node_attributes", np.float64, num_nodes_total, indicator_path, "one line per node", node_fields),
        ("edge_labels", np.int64, edges.shape[0], adjacency_path, "one line per edge of the A file", edge_fields),
        ("edge_attributes", np.float64, edges.shape[0], adjacency_path, "one line per edge of the A file", edge_fields),
    )
    for suffix, dtype, expected, reference, what, target in optional:
        path = _file(folder, prefix, suffix)
        if path.exists():
            _check_lines(path, expected, reference, what)
            target[suffix] = read_numeric_lines(path, dtype, what)

    for suffix, table in list(node_fields.items()) + list(edge_fields.items()):
        if table.dtype == np.int64 and table.size and table.min() < 0:
            shift = np.minimum(table.min(0), 0)
            logger.warning("%s: %s holds negative ids; shifting columns by %s so ids start at 0", dataset_name, suffix, (-shift).tolist())
            table -= shift
    if chemistry not in ("auto", "raw"):
        raise ValueError(f"{dataset_name}: chemistry={chemistry!r}; use 'auto' or 'raw'")
    readme = _file(folder, prefix, "label_readme")
    if chemistry == "auto" and readme.exists():
        atoms, bonds = _chemical_maps(readme)
        for suffix, lookup, what in (("node_labels", atoms, "atomic numbers"), ("edge_labels", bonds, "bond types")):
            table = node_fields.get(suffix) if suffix == "node_labels" else edge_fields.get(suffix)
            if lookup is None or table is None:
                continue
            if table[:, 0].max() >= lookup.shape[0]:
                raise DataFormatError(
                    f"{_file(folder, prefix, suffix)}: label {int(table[:, 0].max())} is not in {readme.name}; "
                    "pass chemistry='raw' to keep the raw ids"
                )
            table[:, 0] = lookup[table[:, 0]]
            logger.info("%s: %s mapped to %s via %s", dataset_name, suffix, what, readme.name)
    x, x_cont = _pick_fields(node_fields.get("node_labels"), node_fields.get("node_attributes"))
    edge_attr, edge_attr_cont = _pick_fields(edge_fields.get("edge_labels"), edge_fields.get("edge_attributes"))

    # Graph targets.
    if regression:
        task = TaskSpec(
            level="graph", kind="regression", num_classes=None, num_targets=targets.shape[1],
            target_names=[f"attribute_{i}" for i in range(targets.shape[1])], metric="mae",
            description=f"predict the {targets.shape[1]} graph attribute(s) of each {prefix} graph",
            split=f"seeded random {fractions} split (seed={seed}); the source ships none",
        )
        y_all = torch.as_tensor(targets, dtype=torch.float32).unsqueeze(1)
    else:
        if targets.shape[1] != 1:
            raise DataFormatError(f"{targets_path}: expected one label per line, found {targets.shape[1]} values")
        raw_values, class_ids = np.unique(targets[:, 0], return_inverse=True)
        task = TaskSpec(
            level="graph", kind="classification", num_classes=int(len(raw_values)), num_targets=1,
            target_names=["graph_label"], metric="accuracy", class_names=[str(v) for v in raw_values.tolist()],
            description=f"classify each {prefix} graph into one of {len(raw_values)} classes "
            f"(raw labels {raw_values.tolist()} -> class ids 0..{len(raw_values) - 1})",
            split=f"seeded stratified {tuple(fractions)} split (seed={seed}); the source ships none",
        )
        y_all = torch.as_tensor(class_ids, dtype=torch.long).view(-1, 1)

    # Split the global arrays per graph (edges sorted by graph, stable so file order is kept).
    nodes_per_graph = np.bincount(graph_of_node - 1, minlength=num_graphs) if num_nodes_total else np.zeros(num_graphs, dtype=np.int64)
    node_offsets = np.concatenate([[0], np.cumsum(nodes_per_graph)])
    order = np.argsort(edge_graph, kind="stable")
    order_t = torch.from_numpy(order)
    edges, edge_graph = edges[order], edge_graph[order]
    edges_per_graph = np.bincount(edge_graph - 1, minlength=num_graphs) if edges.size else np.zeros(num_graphs, dtype=np.int64)
    local_edges = torch.from_numpy((edges - node_offsets[edge_graph - 1][:, None]).T.copy()) if edges.size else torch.zeros((2, 0), dtype=torch.long)
    edge_sizes = edges_per_graph.tolist()
    node_sizes = nodes_per_graph.tolist()
    pieces = {
        "edge_index": torch.split(local_edges, edge_sizes, dim=1),
        "x": _split(x, node_sizes),
        "x_cont": _split(x_cont, node_sizes),
        "edge_attr": _split(edge_attr[order_t] if edge_attr is not None else None, edge_sizes),
        "edge_attr_cont": _split(edge_attr_cont[order_t] if edge_attr_cont is not None else None, edge_sizes),
    }
    graphs = []
    for g in range(num_graphs):
        data = Data(edge_index=pieces["edge_index"][g].clone(), num_nodes=int(node_sizes[g]))
        for key in ("x", "x_cont", "edge_attr", "edge_attr_cont"):
            if pieces[key] is not None:
                data[key] = pieces[key][g].clone()
        data.y = y_all[g].clone()
        data.domain = domain
        data.name = str(g + 1)
        graphs.append(data)
    if task.kind == "classification":
        splits = stratified_split(y_all.view(-1), fractions, seed)
    else:
        splits = random_split(num_graphs, fractions, seed)
    return GraphDataset(
        name=dataset_name,
        domain=domain,
        task=task,
        graphs=graphs,
        splits=splits,
        info={"source_folder": str(folder), "format": "TU raw text", "files": sorted(p.name for p in folder.glob(f"{prefix}_*.txt"))},
    )


def _pick_fields(labels: np.ndarray | None, attributes: np.ndarray | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(categorical, continuous) following the contract: categorical in the main field when present."""
    cat = torch.from_numpy(labels) if labels is not None else None
    cont = torch.from_numpy(attributes.astype(np.float32)) if attributes is not None else None
    if cat is None:
        return cont, None
    return cat, cont


def _split(tensor: torch.Tensor | None, sizes: list[int]) -> tuple[torch.Tensor, ...] | None:
    return None if tensor is None else torch.split(tensor, sizes, dim=0)


def _load(
    name: str,
    data_dir: Path | None,
    domain: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    chemistry: str = "auto",
) -> GraphDataset:
    folder_name = name.split("/", 1)[1]
    return load_tu_folder(_raw_folder(data_dir, folder_name), dataset_name=name, domain=domain, seed=seed, fractions=tuple(fractions), chemistry=chemistry)


register(
    DatasetSource(
        name="tu/",
        loader=_load,
        files=_files,
        discover=_discover,
        description="TU-format folders live in <data_dir>/tudataset/<DS>/raw/<DS>_A.txt, ...",
        examples=("tu/PROTEINS", "tu/ENZYMES", "tu/AIDS", "tu/Mutagenicity"),
    )
)
