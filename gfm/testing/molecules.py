"""Real molecules for tokenizer tests: RDKit's NCI sample (``Data/NCI/first_5K.smi``), no data folder needed."""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.utils import from_smiles

from gfm.data.packaged import rdkit_nci_files

__all__ = ["nci_molecules"]


def nci_molecules(count: int, skip: int = 0, *, with_edges: bool = False) -> list[Data]:
    """The first ``count`` molecules of the NCI file after ``skip`` lines, as ``from_smiles`` graphs.

    Molecules without atoms are left out (and, with ``with_edges``, those without bonds); each graph
    gets ``domain="molecules"`` and its SMILES as ``name``. Fewer than ``count`` only if the file ends.
    """
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    smi_path, _ = rdkit_nci_files()
    graphs = []
    for line in smi_path.read_text().splitlines()[skip:]:
        if len(graphs) == count:
            break
        smiles = line.split()[0]
        graph = from_smiles(smiles)
        if not graph.num_nodes or (with_edges and not graph.edge_index.shape[1]):
            continue
        graph.domain = "molecules"
        graph.name = smiles
        graphs.append(graph)
    return graphs
