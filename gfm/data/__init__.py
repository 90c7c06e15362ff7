"""Data layer: loaders per source format, the dataset registry, samplers and the corpus cache.

Entry points (see ``docs/data.md``)::

    gfm.data.load(name, data_dir=None, cache_dir=None, **options) -> GraphDataset
    gfm.data.available(data_dir=None) -> list[str]
    gfm.data.load_edge_list(edges_path, nodes_path=None, ...) -> GraphDataset
    gfm.data.Corpus(names, domain_weights=..., cache_dir=...)
    gfm.data.ppr_topk(edge_index, num_nodes, seeds, k, alpha=0.15) -> (neighbors, weights)
    gfm.data.EgoGraphSampler(data, method="khop" | "ppr")
    gfm.data.holdout_link_split(data, name) / link_split_from_dataset(dataset) -> LinkSplit

Names are imported lazily on first access (RDKit, HF datasets and pandas load only when used).
"""

from __future__ import annotations

from gfm.utils.lazy import lazy_exports

_LAZY_EXPORTS: dict[str, str] = {
    # contract
    "TaskSpec": "gfm.data.dataset",
    "GraphDataset": "gfm.data.dataset",
    "validate_graph": "gfm.data.dataset",
    "validate_graphs": "gfm.data.dataset",
    "validate_dataset": "gfm.data.dataset",
    "GraphValidationError": "gfm.data.dataset",
    "DataFormatError": "gfm.data.dataset",
    "DataNotFoundError": "gfm.data.dataset",
    "UnknownDatasetError": "gfm.data.dataset",
    # registry
    "load": "gfm.data.registry",
    "available": "gfm.data.registry",
    "register": "gfm.data.registry",
    "DatasetSource": "gfm.data.registry",
    "cache_key": "gfm.data.registry",
    "input_files": "gfm.data.registry",
    "DATA_DIR_ENV": "gfm.data.registry",
    # loaders usable on any folder / file
    "load_edge_list": "gfm.data.edge_list",
    "load_tu_folder": "gfm.data.tu",
    "load_smiles_csv": "gfm.data.moleculenet",
    "load_planetoid_raw": "gfm.data.planetoid",
    "load_heterophilous_npz": "gfm.data.heterophilous",
    "load_triples_folder": "gfm.data.kg",
    "molecules_to_graphs": "gfm.data.molecules",
    # Arrow cache and rows
    "save_graph_dataset": "gfm.data.arrow",
    "load_graph_dataset": "gfm.data.arrow",
    "ArrowGraphDataset": "gfm.data.arrow",
    "graph_to_row": "gfm.data.arrow",
    "row_to_graph": "gfm.data.arrow",
    "graphs_equal": "gfm.data.arrow",
    "datasets_equal": "gfm.data.arrow",
    "write_rows": "gfm.data.arrow",
    "read_rows": "gfm.data.arrow",
    "RowDataset": "gfm.data.arrow",
    # corpus
    "Corpus": "gfm.data.corpus",
    # the held-out evaluation graphs no pretraining corpus may read
    "EVALUATION_GRAPHS": "gfm.data.corpus",
    "EvaluationGraphLeakError": "gfm.data.corpus",
    "check_pretraining_datasets": "gfm.data.corpus",
    # link-prediction splits without leakage
    "LinkSplit": "gfm.data.link_splits",
    "LeakageError": "gfm.data.link_splits",
    "LinkSplitError": "gfm.data.link_splits",
    "link_split_from_dataset": "gfm.data.link_splits",
    "holdout_link_split": "gfm.data.link_splits",
    # per-node positional encodings of a whole graph
    "graph_positional_encoding": "gfm.data.positional_encoding",
    # sampling
    "ppr_topk": "gfm.data.sampling",
    "ppr_push": "gfm.data.sampling",
    "khop_ego_batch": "gfm.data.sampling",
    "ppr_ego_batch": "gfm.data.sampling",
    "EgoGraphSampler": "gfm.data.sampling",
    "EgoBatch": "gfm.data.sampling",
    "build_csr": "gfm.data.sampling",
}

__all__ = list(_LAZY_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_EXPORTS)
