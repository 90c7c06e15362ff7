"""Data shipped inside installed packages: the embedded default corpus (no data folder needed).

- ``packaged/nci5k``: RDKit's ``Data/NCI/first_5K.smi`` (4,999 NCI molecules); task: graph
  regression of the topological polar surface area from RDKit's ``first_5k.tpsa.csv`` (Ertl TPSA
  computed with Daylight tools), scaffold split.
- ``packaged/karate``: Zachary's karate club (networkx); node classification of which club each
  member joined after the split ("Mr. Hi" = 0, "Officer" = 1); edge weight as float ``edge_attr``.
- ``packaged/les-miserables``: character co-appearance in *Les Misérables* (networkx); link
  prediction (which characters appear together), co-appearance count as float ``edge_attr``.
- ``packaged/florentine``: marriage ties among Renaissance Florentine families; link prediction.
- ``packaged/davis``: Davis' southern women attending 14 social events (bipartite); link
  prediction of attendance, the side (woman = 0, event = 1) as categorical ``x``.

Small graphs without a given split get seeded splits (``seed`` option), recorded in the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from .dataset import DataFormatError, GraphDataset, TaskSpec
from .molecules import molecules_to_graphs
from .registry import DatasetSource, register
from .splits import indices_to_masks, random_link_split, scaffold_split, stratified_split

__all__ = ["rdkit_nci_files", "networkx_graph_to_data", "PACKAGED_NAMES"]

logger = logging.getLogger(__name__)


def rdkit_nci_files() -> tuple[Path, Path]:
    """``(first_5K.smi, first_5k.tpsa.csv)`` inside the installed RDKit (``RDConfig.RDDataDir``)."""
    from rdkit import RDConfig

    folder = Path(RDConfig.RDDataDir) / "NCI"
    return folder / "first_5K.smi", folder / "first_5k.tpsa.csv"


def _load_nci5k(name: str, data_dir: Path | None, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> GraphDataset:
    smi_path, tpsa_path = rdkit_nci_files()
    records = [line.split("\t") for line in smi_path.read_text().splitlines() if line.strip()]
    smiles = [r[0] for r in records]
    tpsa_lines = [line for line in tpsa_path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if len(tpsa_lines) != len(smiles):
        raise DataFormatError(
            f"{tpsa_path}: {len(tpsa_lines)} TPSA rows but {smi_path.name} has {len(smiles)} molecules; the RDKit data files disagree"
        )
    tpsa = np.empty(len(smiles), dtype=np.float64)
    for number, (line, smi) in enumerate(zip(tpsa_lines, smiles)):
        tpsa_smiles, _, value = line.rpartition(",")
        if tpsa_smiles != smi:
            raise DataFormatError(f"{tpsa_path}: row {number + 1} is {tpsa_smiles!r} but {smi_path.name} has {smi!r}")
        tpsa[number] = float(value)
    graphs, kept, scaffolds, skipped = molecules_to_graphs(smiles, scaffolds=True)
    if skipped:
        logger.warning(
            "%s: skipped %d of %d SMILES that RDKit cannot parse or featurize (lines %s); they are listed in dataset.skipped",
            name, len(skipped), len(smiles), ", ".join(str(p + 1) for p, _, _ in skipped[:10]),
        )
    for graph, position in zip(graphs, kept.tolist()):
        graph.y = torch.tensor([[tpsa[position]]], dtype=torch.float32)
        graph.nci_id = records[position][1] if len(records[position]) > 1 else ""
    task = TaskSpec(
        level="graph", kind="regression", num_classes=None, num_targets=1, target_names=["tpsa"], metric="mae",
        description="predict the topological polar surface area (TPSA, Å²) of each NCI molecule",
        split=f"deterministic Bemis-Murcko scaffold split {tuple(fractions)}",
    )
    return GraphDataset(
        name=name, domain="molecules", task=task, graphs=graphs, splits=scaffold_split(scaffolds, fractions),
        skipped=[{"line": p + 1, "item": t, "reason": r} for p, t, r in skipped],
        info={"source_file": str(smi_path), "target_file": str(tpsa_path)},
    )


def networkx_graph_to_data(graph, weight: str | None = None) -> tuple[Data, list[str]]:
    """Convert an undirected networkx graph to ``Data`` with both edge directions, nodes in graph order.

    Returns:
        ``(data, node_names)``; ``data.edge_attr`` is float32 ``[E, 1]`` when ``weight`` is given.
    """
    nodes = list(graph.nodes())
    index = {node: i for i, node in enumerate(nodes)}
    src, dst, weights = [], [], []
    for u, v, attributes in graph.edges(data=True):
        w = float(attributes.get(weight, 1.0)) if weight else 1.0
        src.extend((index[u], index[v]))
        dst.extend((index[v], index[u]))
        weights.extend((w, w))
    edge_index = torch.tensor([src, dst], dtype=torch.long)
    order = torch.argsort(edge_index[0] * len(nodes) + edge_index[1])
    data = Data(edge_index=edge_index[:, order], num_nodes=len(nodes))
    if weight:
        data.edge_attr = torch.tensor(weights, dtype=torch.float32).view(-1, 1)[order]
    return data, [str(n) for n in nodes]


def _networkx_version_file() -> Path:
    import networkx

    return Path(networkx.__file__)


def _load_karate(name: str, data_dir: Path | None, seed: int = 0, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> GraphDataset:
    import networkx as nx

    graph = nx.karate_club_graph()
    data, names = networkx_graph_to_data(graph, weight="weight")
    clubs = ["Mr. Hi", "Officer"]
    data.y = torch.tensor([clubs.index(graph.nodes[n]["club"]) for n in graph.nodes()], dtype=torch.long)
    for key, mask in indices_to_masks(stratified_split(data.y, fractions, seed), data.num_nodes).items():
        data[key] = mask
    data.domain, data.name, data.node_names = "social", "karate", names
    task = TaskSpec(
        level="node", kind="classification", num_classes=2, num_targets=1, target_names=["club"], metric="accuracy",
        class_names=clubs, description="which club each karate-club member joined after the split (Mr. Hi or the Officer)",
        split=f"seeded stratified {tuple(fractions)} node split (seed={seed})",
    )
    return GraphDataset(name=name, domain="social", task=task, graphs=[data], info={"source": "networkx.karate_club_graph"})


def _link_dataset(
    name: str, data: Data, names: list[str], description: str, seed: int, fractions: Sequence[float], source: str
) -> GraphDataset:
    train_mask, edge_splits = random_link_split(data.edge_index, int(data.num_nodes), fractions, seed)
    data.edge_index = data.edge_index[:, train_mask]
    if data.edge_attr is not None:
        data.edge_attr = data.edge_attr[train_mask]
    data.domain, data.name, data.node_names = "social", name.split("/", 1)[1], names
    task = TaskSpec(
        level="edge", kind="link", num_classes=None, num_targets=1, target_names=["link"], metric="roc_auc",
        description=description,
        split=f"seeded random link split {tuple(fractions)} (seed={seed}), one sampled non-edge per held-out edge",
    )
    return GraphDataset(name=name, domain="social", task=task, graphs=[data], edge_splits=edge_splits, info={"source": source})


def _load_les_miserables(name: str, data_dir: Path | None, seed: int = 0, fractions: Sequence[float] = (0.85, 0.05, 0.10)) -> GraphDataset:
    import networkx as nx

    data, names = networkx_graph_to_data(nx.les_miserables_graph(), weight="weight")
    return _link_dataset(
        name, data, names, "predict which characters of Les Misérables appear in a chapter together", seed, fractions,
        "networkx.les_miserables_graph",
    )


def _load_florentine(name: str, data_dir: Path | None, seed: int = 0, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> GraphDataset:
    import networkx as nx

    data, names = networkx_graph_to_data(nx.florentine_families_graph())
    return _link_dataset(
        name, data, names, "predict marriage ties between Renaissance Florentine families", seed, fractions,
        "networkx.florentine_families_graph",
    )


def _load_davis(name: str, data_dir: Path | None, seed: int = 0, fractions: Sequence[float] = (0.85, 0.05, 0.10)) -> GraphDataset:
    import networkx as nx

    graph = nx.davis_southern_women_graph()
    data, names = networkx_graph_to_data(graph)
    data.x = torch.tensor([[graph.nodes[n]["bipartite"]] for n in graph.nodes()], dtype=torch.long)
    return _link_dataset(
        name, data, names, "predict which social events each of Davis' southern women attended (bipartite x: 0 woman, 1 event)",
        seed, fractions, "networkx.davis_southern_women_graph",
    )


def _nci_files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    return list(rdkit_nci_files())


def _networkx_files(name: str, data_dir: Path | None, options: dict) -> list[Path]:
    return [_networkx_version_file()]


_PACKAGED: dict[str, tuple[Callable[..., GraphDataset], Callable[..., list[Path]], str]] = {
    "nci5k": (_load_nci5k, _nci_files, "RDKit Data/NCI/first_5K.smi: TPSA regression of 4,999 molecules"),
    "karate": (_load_karate, _networkx_files, "networkx karate club: node classification by club"),
    "les-miserables": (_load_les_miserables, _networkx_files, "networkx Les Misérables co-appearance: link prediction"),
    "florentine": (_load_florentine, _networkx_files, "networkx Florentine families marriages: link prediction"),
    "davis": (_load_davis, _networkx_files, "networkx Davis southern women events: bipartite link prediction"),
}

for _key, (_loader, _file_fn, _description) in _PACKAGED.items():
    register(
        DatasetSource(
            name=f"packaged/{_key}", loader=_loader, files=_file_fn, needs_data_dir=False, description=_description
        )
    )

PACKAGED_NAMES = tuple(f"packaged/{key}" for key in _PACKAGED)
