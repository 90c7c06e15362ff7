"""Build a tokenized pretraining corpus from registry datasets (tokenized once, cached as Arrow).

This is the path taken when a run config lists ``datasets`` instead of a ready
``tokenized_corpus``: every dataset is loaded with :func:`gfm.data.load`; graph-level datasets
contribute their graphs, and datasets made of one large graph (node / edge tasks: citation,
social, knowledge-graph, biomedical, web graphs) contribute k-hop ego graphs of seeded random
centre nodes (:class:`gfm.data.sampling.EgoGraphSampler`). The graphs are tokenized with the
run's tokenizer and written as ``TokenizedGraph.to_dict()`` rows (the layout the tokenizer
recipes write) with a ``gfm_corpus.json`` beside them (tokenizer hash, sources, counts,
anything left out). The directory name is a hash of everything that determines its content,
so a second run reuses it and a changed option builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from gfm.data.arrow import batched, save_row_batches
from gfm.utils.io import atomic_directory, atomic_write_json

from .data import CORPUS_METADATA_NAME
from .errors import CorpusError

__all__ = ["corpus_graphs", "build_tokenized_corpus", "read_corpus_table", "CORPUS_VERSION"]

logger = logging.getLogger(__name__)

#: bump when the graphs this module produces change for the same options
CORPUS_VERSION = 1
_KEEP_KEYS = ("edge_index", "x", "x_cont", "edge_attr", "edge_attr_cont", "directed")


def _pretraining_view(graph: Data, domain: str, max_feature_width: int, dropped: dict[str, int]) -> Data:
    """Structure and attributes only (no labels, masks, ids or task markers).

    Continuous attribute tables wider than ``max_feature_width`` columns are left out (a
    1,433-column bag of words would become thousands of tokens per node); each omission is
    counted in ``dropped`` and reported.
    """
    out = Data(num_nodes=int(graph.num_nodes))
    for key in _KEEP_KEYS:
        value = getattr(graph, key, None)
        if value is None:
            continue
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() == 2 and value.shape[1] > max_feature_width:
            dropped[key] = dropped.get(key, 0) + 1
            continue
        out[key] = value
    out.domain = domain
    return out


def corpus_graphs(
    name: str,
    data_dir: str | os.PathLike | None,
    max_graphs: int | None,
    seed: int,
    ego_num_hops: int = 2,
    ego_max_neighbors: int = 8,
    max_feature_width: int = 32,
) -> tuple[list[Data], dict[str, Any]]:
    """The pretraining graphs of one registry dataset, and a record of how they were made.

    Args:
        name: registry name (``"tu/PROTEINS"``, ``"planetoid/cora"``, ...).
        data_dir: data folder (default ``GFM_DATA_DIR``).
        max_graphs: at most this many graphs / ego graphs (seeded choice); ``None`` = all.
        seed: choice and ego sampling seed.
        ego_num_hops / ego_max_neighbors: ego graphs of single-graph datasets.
        max_feature_width: continuous attribute tables wider than this are left out.

    Raises:
        EvaluationGraphLeakError: ``name`` is (or reads) a held-out evaluation graph
            (``gfm.data.corpus.EVALUATION_GRAPHS``).
    """
    from gfm.data import registry
    from gfm.data.corpus import check_pretraining_datasets
    from gfm.data.sampling import EgoGraphSampler

    check_pretraining_datasets([name], data_dir)  # a held-out evaluation graph is never read here
    dataset = registry.load(name, data_dir=data_dir)
    generator = torch.Generator().manual_seed(seed)
    dropped: dict[str, int] = {}
    record: dict[str, Any] = {"name": name, "domain": dataset.domain, "level": dataset.task.level}
    if len(dataset.graphs) == 1 and dataset.task.level in ("node", "edge"):
        big = dataset.graphs[0]
        num_nodes = int(big.num_nodes)
        count = num_nodes if max_graphs is None else min(max_graphs, num_nodes)
        centres = torch.randperm(num_nodes, generator=generator)[:count].sort().values
        sampler = EgoGraphSampler(big, method="khop", num_hops=ego_num_hops, max_neighbors=ego_max_neighbors, seed=seed)
        graphs = [_pretraining_view(g, dataset.domain, max_feature_width, dropped) for g in sampler.node_samples(centres)]
        record.update(kind="ego graphs", source_nodes=num_nodes, num_hops=ego_num_hops, max_neighbors=ego_max_neighbors)
    else:
        count = len(dataset.graphs) if max_graphs is None else min(max_graphs, len(dataset.graphs))
        chosen = torch.randperm(len(dataset.graphs), generator=generator)[:count].sort().values.tolist()
        graphs = [_pretraining_view(dataset.graphs[i], dataset.domain, max_feature_width, dropped) for i in chosen]
        record.update(kind="graphs", source_graphs=len(dataset.graphs))
    record["graphs"] = len(graphs)
    if dropped:
        record["left_out_wide_attributes"] = dropped
        logger.warning(
            "%s: continuous attribute tables wider than %d columns left out of the pretraining view: %s",
            name, max_feature_width, dropped,
        )
    return graphs, record


def _rebuild_advice(path: Path, metadata: dict[str, Any]) -> str:
    sources = [str(record.get("name")) for record in metadata.get("datasets", []) if isinstance(record, dict)]
    built_from = f"it was tokenized from {', '.join(sources)}; " if sources else ""
    return (
        f"{built_from}delete the folder {path} and build it again from the source datasets: rerun "
        "tokenizers/train_tokenizer.py with cache_dir set, or a pretraining run whose config lists `datasets` "
        "(it tokenizes them into cache_dir)"
    )


def read_corpus_table(path: str | os.PathLike) -> Any:
    """Open a tokenized corpus directory (``datasets.load_from_disk``, memory-mapped) or fail by name.

    A truncated or garbled Arrow file, a damaged ``gfm_corpus.json``, or fewer rows than that file
    records (a copy cut short at a record boundary) is a :class:`CorpusError` naming the folder
    and how to rebuild it. A corpus whose ``gfm_corpus.json`` lists a held-out evaluation graph
    among its sources is an ``EvaluationGraphLeakError`` (``gfm.data.corpus.EVALUATION_GRAPHS``).

    Returns:
        the ``datasets.Dataset`` (or ``DatasetDict``) as stored.
    """
    import datasets
    import pyarrow as pa

    path = Path(path)
    metadata: dict[str, Any] = {}
    metadata_path = path / CORPUS_METADATA_NAME
    if metadata_path.is_file():
        try:
            metadata = json.loads(metadata_path.read_text())
            if not isinstance(metadata, dict):
                raise ValueError(f"a JSON {type(metadata).__name__}, not an object")
        except (OSError, ValueError) as err:
            raise CorpusError(
                f"the tokenized corpus {path} is damaged ({CORPUS_METADATA_NAME}: {err}); {_rebuild_advice(path, {})}"
            ) from err
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as err:
        raise CorpusError(
            f"{path} is not a datasets save_to_disk directory ({err}); point tokenized_corpus at a folder written by "
            "tokenizers/train_tokenizer.py, or set `datasets` so gfm tokenizes them into cache_dir"
        ) from err
    except (OSError, ValueError, KeyError, EOFError, pa.ArrowException) as err:
        raise CorpusError(
            f"the tokenized corpus {path} is damaged ({type(err).__name__}: {err}); {_rebuild_advice(path, metadata)}"
        ) from err
    sources = [str(r["name"]) for r in metadata.get("datasets", []) if isinstance(r, dict) and "name" in r]
    if sources:
        from gfm.data.corpus import check_pretraining_datasets

        check_pretraining_datasets(
            sources, config_key="tokenized_corpus", where=f"the tokenized corpus {path}",
            fix="tokenize a new corpus from a `datasets` list without them (tokenizers/train_tokenizer.py, or a "
            "pretraining config that lists `datasets`) and point tokenized_corpus at it",
        )
    recorded = [record.get("graphs") for record in metadata.get("datasets", []) if isinstance(record, dict)]
    if recorded and all(isinstance(count, int) for count in recorded):
        rows = sum(len(part) for part in loaded.values()) if isinstance(loaded, datasets.DatasetDict) else len(loaded)
        if rows != sum(recorded):
            raise CorpusError(
                f"the tokenized corpus {path} holds {rows} rows but its {CORPUS_METADATA_NAME} records {sum(recorded)} "
                f"graphs: the folder is incomplete (a copy cut short?); {_rebuild_advice(path, metadata)}"
            )
    return loaded


def _cache_key(names: Sequence[str], tokenizer_hash: str, options: dict[str, Any], data_dir: str | None) -> str:
    from gfm.data import registry

    payload = {
        "version": CORPUS_VERSION,
        "datasets": list(names),
        "tokenizer": tokenizer_hash,
        "options": options,
        # the data layer's key covers the input files (sizes, times) and its loader version
        "sources": {name: registry.cache_key(name, data_dir) for name in names},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def build_tokenized_corpus(
    names: Sequence[str],
    tokenizer: Any,
    cache_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    max_graphs_per_dataset: int | None = None,
    seed: int = 0,
    ego_num_hops: int = 2,
    ego_max_neighbors: int = 8,
    max_feature_width: int = 32,
) -> Path:
    """Tokenize the graphs of ``names`` once into ``cache_dir/tokenized-<hash>``; return the directory.

    Reuses an existing directory with the same hash (same datasets, input files, options and
    tokenizer). The directory appears atomically: an interrupted build leaves nothing behind
    that a later run could mistake for a complete corpus.

    Raises:
        EvaluationGraphLeakError: ``names`` lists a held-out evaluation graph (checked before a
            cached corpus is reused).
    """
    from gfm.data.corpus import check_pretraining_datasets

    data_dir = str(data_dir) if data_dir is not None else os.environ.get("GFM_DATA_DIR")
    check_pretraining_datasets(names, data_dir, config_key="datasets")
    options = {"max_graphs_per_dataset": max_graphs_per_dataset, "seed": seed, "ego_num_hops": ego_num_hops,
               "ego_max_neighbors": ego_max_neighbors, "max_feature_width": max_feature_width}
    key = _cache_key(names, tokenizer.content_hash, options, data_dir)
    target = Path(cache_dir) / f"tokenized-{key[:16]}"
    if (target / CORPUS_METADATA_NAME).is_file():
        read_corpus_table(target)  # a damaged folder is named here, not handed on to training
        logger.info("reusing tokenized corpus %s", target)
        return target
    records = []

    def rows() -> Iterator[dict[str, Any]]:
        for name in names:
            graphs, record = corpus_graphs(name, data_dir, max_graphs_per_dataset, seed, ego_num_hops,
                                           ego_max_neighbors, max_feature_width)
            tokens = 0
            for start in range(0, len(graphs), 512):
                for sequence in tokenizer.encode_batch(graphs[start : start + 512]):
                    tokens += len(sequence)
                    yield sequence.to_dict()
            record["tokens"] = tokens
            records.append(record)
            logger.info("tokenized %s: %d graphs, %d tokens", name, record["graphs"], tokens)

    with atomic_directory(target, overwrite=True) as tmp, tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        # streamed in batches of 1,024 sequences: memory stays bounded by one batch
        save_row_batches(batched(rows(), 1024), tmp, Path(scratch), fingerprint=key)
        atomic_write_json(tmp / CORPUS_METADATA_NAME, {
            "tokenizer_class": type(tokenizer).__name__, "tokenizer_hash": tokenizer.content_hash,
            "datasets": records, "options": options, "version": CORPUS_VERSION,
        })
    return target
