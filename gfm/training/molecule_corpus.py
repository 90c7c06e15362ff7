"""A tokenized molecule corpus of any size: streamed SMILES, parallel workers, Arrow shards, a manifest.

``build_molecule_corpus(source, tokenizer, output_dir)`` turns a SMILES file (a named corpus such
as ``moses/train``, or any CSV / ``.smi`` file; :mod:`gfm.data.smiles_corpus`) into a folder
that pretraining reads memory-mapped::

    output_dir/
      manifest.json          source (path, size, mtime, SHA-256), tokenizer hash, options, every
                             shard's rows / bytes / SHA-256, every skipped or excluded row by line
      shard-00000.arrow ...  TokenizedGraph rows (+ smiles, source_line, canonical_smiles), one
      shard-00000.json ...   shard per ``shard_size`` source rows, each with its own record
      tokenizer/             the tokenizer that wrote the corpus (save_pretrained)
      exclude.txt            the exclusion list (stereo-free canonical SMILES), when one is given
      gfm_corpus.json, state.json, dataset_info.json
                             so that ``datasets.load_from_disk`` and the pretraining config key
                             ``tokenized_corpus`` open the folder as one memory-mapped table

How it runs. The parent process reads the file as a stream (never the whole file) and cuts it
into shards of ``shard_size`` rows; ``num_workers`` processes (``concurrent.futures`` with at
most ``num_workers + 1`` shards in flight) parse each shard with RDKit, featurize it
(:func:`gfm.data.molecules.molecules_to_graphs`), tokenize it with the Eulerian tokenizer and
stream it to Arrow in record batches of ``chunk_size`` molecules. A shard is written under a
temporary name and renamed when complete, then its record (``shard-*.json``) is written the same
way; the manifest is written last. Memory is therefore bounded by ``num_workers + 1`` shards of
SMILES text in the parent plus one record batch per worker, whatever the corpus size.

A re-run with the same source, tokenizer and options reuses every shard that exists and verifies
(size and SHA-256 against its record), so a killed build resumes where it stopped and a finished
one costs only the verification. A tqdm bar (``mininterval`` 10 s off a terminal) shows
molecules/s; the peak memory of the parent and its workers (RSS and PSS, sampled every half
second) is recorded in the manifest.

Bad input is refused by name: a wrong SMILES column (:class:`gfm.data.smiles_corpus.SmilesColumnError`,
columns found vs expected); unparsable rows are counted, logged with their line numbers and
recorded in the manifest, and more than ``max_skipped_fraction`` of a shard is an error
(:class:`UnparsableSmilesError`); an empty or damaged shard is rebuilt by the next build and
refused by :func:`load_molecule_corpus` (:class:`ShardError`); a folder written by another
tokenizer is refused naming both hashes (:class:`CorpusTokenizerMismatchError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gfm.data.smiles_corpus import (
    SmilesChunk,
    SmilesSource,
    iter_smiles_chunks,
    resolve_smiles_source,
    sample_smiles,
    source_identity,
    stereo_free_canonical,
    unique_canonical,
)
from gfm.utils.errors import GFMError
from gfm.utils.hardware import cpu_model_name
from gfm.utils.io import atomic_write_json, atomic_write_text, sha256_file

from .data import CORPUS_METADATA_NAME, TokenizedCorpus
from .errors import CorpusError

__all__ = [
    "MOLECULE_CORPUS_VERSION",
    "MANIFEST_NAME",
    "MoleculeCorpusBuild",
    "ShardError",
    "CorpusTokenizerMismatchError",
    "UnparsableSmilesError",
    "build_molecule_corpus",
    "load_molecule_corpus",
    "open_molecule_table",
    "read_manifest",
    "corpus_column",
    "train_molecule_tokenizer",
    "sequence_lengths",
]

logger = logging.getLogger(__name__)

#: bump when the rows this module writes change for the same source, tokenizer and options
MOLECULE_CORPUS_VERSION = 1
MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "gfm-molecule-corpus"
_SHARD_NAME = "shard-{:05d}"
_SHARD_PATTERN = re.compile(r"^shard-(\d{5})\.(arrow|json)$")


class ShardError(CorpusError):
    """A shard of a molecule corpus is missing, empty or does not match its record."""


class CorpusTokenizerMismatchError(CorpusError):
    """A molecule corpus folder was written by another tokenizer than the one given."""


class UnparsableSmilesError(CorpusError):
    """Too many rows of a SMILES file cannot be parsed (a wrong column or a damaged file?)."""


# ---------------------------------------------------------------------------------------------
# Arrow rows
# ---------------------------------------------------------------------------------------------
def _schema(canonical: bool) -> Any:
    import pyarrow as pa

    columns = [
        ("input_ids", pa.list_(pa.int32())),
        ("node_index", pa.list_(pa.int32())),
        ("edge_index", pa.list_(pa.list_(pa.int32()))),
        ("edge_type", pa.list_(pa.int32())),
        ("num_nodes", pa.int32()),
        ("domain", pa.string()),
        ("smiles", pa.string()),
        ("source_line", pa.int64()),
    ]
    if canonical:
        columns.append(("canonical_smiles", pa.string()))
    return pa.schema(columns)


def _list_array(arrays: list[np.ndarray]) -> Any:
    """``[n]`` int arrays -> Arrow ``list<int32>`` (one flat buffer + offsets, no Python lists)."""
    import pyarrow as pa

    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(arrays).astype(np.int32) if arrays else np.zeros(0, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.int32()))


def _record_batch(sequences: list, smiles: list[str], lines: list[int], canonical: list[str] | None, schema: Any) -> Any:
    """TokenizedGraphs (+ their SMILES, file lines, canonical SMILES) -> one Arrow record batch.

    ``edge_index`` is stored as the ``[[src...], [dst...]]`` nesting of ``TokenizedGraph.to_dict``.
    """
    import pyarrow as pa

    edge_index = [s.edge_index.numpy() for s in sequences]
    pairs = np.fromiter((e.shape[1] for e in edge_index), dtype=np.int64, count=len(edge_index))
    inner = np.zeros(2 * len(edge_index) + 1, dtype=np.int32)
    np.cumsum(np.repeat(pairs, 2), out=inner[1:])
    flat = np.concatenate([e.reshape(-1) for e in edge_index]).astype(np.int32) if edge_index else np.zeros(0, np.int32)
    nested = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 2 * len(edge_index) + 1, 2, dtype=np.int32)),
        pa.ListArray.from_arrays(pa.array(inner), pa.array(flat, type=pa.int32())),
    )
    columns = [
        _list_array([s.input_ids.numpy() for s in sequences]),
        _list_array([s.node_index.numpy() for s in sequences]),
        nested,
        _list_array([s.edge_type.numpy() for s in sequences]),
        pa.array([s.num_nodes for s in sequences], type=pa.int32()),
        pa.array([s.domain for s in sequences], type=pa.string()),
        pa.array(smiles, type=pa.string()),
        pa.array(lines, type=pa.int64()),
    ]
    if canonical is not None:
        columns.append(pa.array(canonical, type=pa.string()))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


# ---------------------------------------------------------------------------------------------
# workers
# ---------------------------------------------------------------------------------------------
@dataclass
class _ShardTask:
    index: int
    path: str
    first_row: int
    lines: list[int]
    smiles: list[str]
    key: str


_WORKER: dict[str, Any] = {}


def _init_worker(tokenizer_dir: str, exclude_path: str | None, options: dict[str, Any], counter: Any) -> None:
    """Load the tokenizer (and the exclusion list) once per worker process."""
    from rdkit import RDLogger

    from gfm.tokenization.eulerian import EulerianTokenizer

    RDLogger.DisableLog("rdApp.*")
    with contextlib.suppress(Exception):  # one thread per worker: the workers are the parallelism
        import torch

        torch.set_num_threads(1)
    _WORKER.clear()
    _WORKER["tokenizer"] = EulerianTokenizer.from_pretrained(tokenizer_dir)
    exclude: set[str] = set()
    if exclude_path is not None:
        exclude = {line for line in Path(exclude_path).read_text().splitlines() if line}
    _WORKER["exclude"] = exclude
    _WORKER["options"] = options
    _WORKER["counter"] = counter


def _screen(smiles: list[str], lines: list[int], canonical: bool, exclude: set[str]):
    """Parse each SMILES once to get its canonical form and apply the exclusion list.

    Returns ``(positions kept, canonical forms of the kept, skipped records, excluded records)``.
    """
    from rdkit import Chem

    kept: list[int] = []
    forms: list[str] = []
    skipped: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    for position, text in enumerate(smiles):
        if not text.strip():
            skipped.append({"line": lines[position], "smiles": text, "reason": "empty SMILES"})
            continue
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            skipped.append({"line": lines[position], "smiles": text, "reason": "RDKit cannot parse this SMILES"})
            continue
        if mol.GetNumAtoms() == 0:
            skipped.append({"line": lines[position], "smiles": text, "reason": "the molecule has no atoms"})
            continue
        form = Chem.MolToSmiles(mol)
        if exclude and stereo_free_canonical(form) in exclude:
            excluded.append({"line": lines[position], "smiles": text})
            continue
        kept.append(position)
        forms.append(form)
    return kept, (forms if canonical else None), skipped, excluded


def _encode(graphs: list, lines: list[int], texts: list[str]) -> tuple[list, list[int], list[dict[str, Any]]]:
    """Tokenize; a chunk that fails is retried graph by graph so one bad molecule is named, not the chunk."""
    tokenizer = _WORKER["tokenizer"]
    try:
        return tokenizer.encode_batch(graphs), list(range(len(graphs))), []
    except (GFMError, ValueError, KeyError) as err:
        logger.debug("chunk failed to tokenize (%s); retrying one molecule at a time", err)
    sequences, kept, failed = [], [], []
    for position, graph in enumerate(graphs):
        try:
            sequences.append(tokenizer.encode(graph))
            kept.append(position)
        except (GFMError, ValueError, KeyError) as err:
            failed.append({"line": lines[position], "smiles": texts[position], "reason": f"cannot tokenize: {err}"})
    return sequences, kept, failed


def _build_shard(task: _ShardTask) -> dict[str, Any]:
    """Parse, featurize and tokenize one shard; write it atomically; return its record."""
    import pyarrow as pa

    from gfm.data.molecules import molecules_to_graphs

    options = _WORKER["options"]
    counter = _WORKER["counter"]
    canonical = bool(options["canonical"])
    schema = _schema(canonical)
    path = Path(task.path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    rows = tokens = 0
    skipped: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    chunk_size = int(options["chunk_size"])
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for start in range(0, len(task.smiles), chunk_size):
                texts = task.smiles[start : start + chunk_size]
                lines = task.lines[start : start + chunk_size]
                forms = None
                if canonical or _WORKER["exclude"]:
                    kept, forms, bad, out = _screen(texts, lines, canonical, _WORKER["exclude"])
                    skipped.extend(bad)
                    excluded.extend(out)
                    texts = [texts[i] for i in kept]
                    lines = [lines[i] for i in kept]
                graphs, positions, _, bad = molecules_to_graphs(
                    texts, domain=options["domain"], num_workers=1, chunk_size=max(len(texts), 1)
                )
                skipped.extend({"line": lines[p], "smiles": t, "reason": r} for p, t, r in bad)
                positions = positions.tolist()
                texts = [texts[p] for p in positions]
                lines = [lines[p] for p in positions]
                if forms is not None:
                    forms = [forms[p] for p in positions]
                if graphs:
                    sequences, done, failed = _encode(graphs, lines, texts)
                    skipped.extend(failed)
                    if len(done) != len(graphs):
                        texts = [texts[p] for p in done]
                        lines = [lines[p] for p in done]
                        forms = None if forms is None else [forms[p] for p in done]
                    if sequences:
                        writer.write_batch(_record_batch(sequences, texts, lines, forms, schema))
                        rows += len(sequences)
                        tokens += sum(len(s) for s in sequences)
                if counter is not None:
                    with counter.get_lock():
                        counter.value += len(task.smiles[start : start + chunk_size])
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        record = {
            "index": task.index,
            "file": path.name,
            "key": task.key,
            "rows": rows,
            "tokens": tokens,
            "source_rows": len(task.smiles),
            "first_row": task.first_row,
            "first_line": task.lines[0] if task.lines else None,
            "last_line": task.lines[-1] if task.lines else None,
            "bytes": tmp.stat().st_size,
            "sha256": sha256_file(tmp),
            "skipped": sorted(skipped, key=lambda r: r["line"]),
            "excluded": sorted(excluded, key=lambda r: r["line"]),
        }
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    atomic_write_json(path.with_suffix(".json"), record)
    return record


# ---------------------------------------------------------------------------------------------
# the build
# ---------------------------------------------------------------------------------------------
@dataclass
class MoleculeCorpusBuild:
    """What :func:`build_molecule_corpus` did.

    Attributes:
        directory: the corpus folder.
        manifest: the manifest written (also ``directory / "manifest.json"``).
        seconds: wall time of this call.
        built_shards / reused_shards: shard indices written now / reused from an earlier run.
        peak_rss_bytes: highest sum of resident memory of the parent and its workers, sampled.
        peak_pss_bytes: the same as proportional set size (shared pages divided among the
            processes that share them, so forked copies are not counted twice).
    """

    directory: Path
    manifest: dict[str, Any]
    seconds: float
    built_shards: list[int] = field(default_factory=list)
    reused_shards: list[int] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peak_pss_bytes: int = 0

    @property
    def rows(self) -> int:
        return int(self.manifest["totals"]["rows"])


class _MemoryMonitor:
    """Samples the RSS / PSS of this process and its children (psutil) and keeps the peaks."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak_rss = 0
        self.peak_pss = 0
        self.sample()

    def sample(self) -> None:
        import psutil

        rss = pss = 0
        for process in [self.process, *self.process.children(recursive=True)]:
            try:
                info = process.memory_full_info()
            except (psutil.Error, OSError):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)


def _load_tokenizer(tokenizer: Any) -> Any:
    if isinstance(tokenizer, (str, os.PathLike)):
        from gfm.tokenization.eulerian import EulerianTokenizer

        return EulerianTokenizer.from_pretrained(tokenizer)
    return tokenizer


def _existing_records(directory: Path) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]]]:
    """The folder's manifest (if any) and the shard records that parse."""
    manifest = None
    if (directory / MANIFEST_NAME).is_file():
        try:
            manifest = json.loads((directory / MANIFEST_NAME).read_text())
        except (OSError, ValueError) as err:
            logger.warning("%s: unreadable manifest (%s); it will be written again", directory / MANIFEST_NAME, err)
    records: dict[int, dict[str, Any]] = {}
    if directory.is_dir():
        for path in sorted(directory.glob("shard-*.json")):
            try:
                record = json.loads(path.read_text())
                records[int(record["index"])] = record
            except (OSError, ValueError, KeyError, TypeError) as err:
                logger.warning("%s: unreadable shard record (%s); the shard will be rebuilt", path, err)
    return manifest, records


def _check_same_tokenizer(directory: Path, tokenizer_hash: str, manifest: dict | None, records: dict[int, dict]) -> None:
    """Refuse a folder written by another tokenizer (manifest, shard records or its tokenizer copy)."""
    found: set[str] = set()
    if manifest is not None and manifest.get("tokenizer", {}).get("hash"):
        found.add(manifest["tokenizer"]["hash"])
    copy = directory / "tokenizer"
    if (copy / "tokenizer_config.json").is_file():
        with contextlib.suppress(Exception):
            from gfm.tokenization.eulerian import EulerianTokenizer

            found.add(EulerianTokenizer.from_pretrained(copy).content_hash)
    found.update(r["tokenizer_hash"] for r in records.values() if r.get("tokenizer_hash"))
    other = sorted(found - {tokenizer_hash})
    if other:
        raise CorpusTokenizerMismatchError(
            f"{directory} holds a molecule corpus written by tokenizer {', '.join(h[:16] for h in other)}, but this "
            f"build uses tokenizer {tokenizer_hash[:16]}; a corpus holds the token ids of one tokenizer. Write to another "
            "output_dir, delete the folder, or pass overwrite=True to replace it"
        )


def _check_same_build(directory: Path, build: dict[str, Any], manifest: dict | None) -> None:
    """Refuse a folder written from another source or with other options (same tokenizer)."""
    if manifest is None or manifest.get("key") == build["key"]:
        return
    differences = []
    for section in ("source", "options"):
        old, new = manifest.get(section, {}), build[section]
        for name in sorted(set(old) | set(new)):
            if name in ("path", "mtime_ns", "name"):
                continue
            if old.get(name) != new.get(name):
                differences.append(f"{section}.{name}: {old.get(name)!r} -> {new.get(name)!r}")
    if manifest.get("version") != build["version"]:
        differences.append(f"version: {manifest.get('version')!r} -> {build['version']!r}")
    shown = "; ".join(differences[:6]) or "the build key differs"
    raise CorpusError(
        f"{directory} holds a molecule corpus built from another source or with other options ({shown}); write to "
        "another output_dir, delete the folder, or pass overwrite=True to replace it"
    )


def _shard_verifies(directory: Path, record: dict[str, Any] | None, key: str, chunk: SmilesChunk) -> str | None:
    """``None`` when the shard can be reused, else why not (logged)."""
    if record is None:
        return "no shard record"
    path = directory / record.get("file", "")
    if record.get("key") != key:
        return "written with another build key"
    if record.get("first_row") != chunk.first_row or record.get("source_rows") != len(chunk):
        return "covers other source rows"
    if not path.is_file():
        return "the shard file is missing"
    size = path.stat().st_size
    if size == 0:
        return "the shard file is empty (0 bytes)"
    if size != record.get("bytes"):
        return f"the shard file has {size} bytes, its record {record.get('bytes')}"
    if sha256_file(path) != record.get("sha256"):
        return "the shard file's SHA-256 differs from its record"
    return None


def _build_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def build_molecule_corpus(
    source: str | os.PathLike | SmilesSource,
    tokenizer: Any,
    output_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    column: str | int | None = None,
    shard_size: int = 50_000,
    chunk_size: int = 1_000,
    num_workers: int = 2,
    limit: int | None = None,
    canonical: bool = True,
    exclude: Iterable[str] | str | os.PathLike | None = None,
    domain: str = "molecules",
    max_skipped_fraction: float = 0.01,
    overwrite: bool = False,
    progress: bool = True,
) -> MoleculeCorpusBuild:
    """Tokenize a SMILES file into ``output_dir`` as Arrow shards (see the module docstring).

    Args:
        source: a named corpus (``"moses/train"``) or a CSV / ``.smi`` path.
        tokenizer: an :class:`~gfm.tokenization.eulerian.EulerianTokenizer` or its directory.
        output_dir: the corpus folder (created; reused when it holds the same build).
        data_dir: data folder for named corpora (default ``GFM_DATA_DIR``).
        column: the SMILES column (CSV header name; ``.smi`` field index).
        shard_size: source rows per shard (and per worker task).
        chunk_size: molecules per record batch inside a shard (bounds a worker's memory).
        num_workers: worker processes; ``0`` runs everything in this process.
        limit: read only the first ``limit`` rows of the file.
        canonical: store RDKit's canonical SMILES of each molecule (``canonical_smiles`` column;
            the leakage check reads it).
        exclude: SMILES to leave out (an iterable, or a file with one per line), compared by
            stereo-free canonical form (stereoisomers of a listed molecule go too); each excluded
            row is recorded by line in the manifest.
        domain: the ``domain`` of every row.
        max_skipped_fraction: a shard with a larger share of unparsable rows is an error.
        overwrite: replace a folder written by another tokenizer or with other options.
        progress: show the tqdm bar.

    Returns:
        :class:`MoleculeCorpusBuild` (folder, manifest, time, peak memory, built / reused shards).
    """
    from filelock import FileLock, Timeout

    started = time.perf_counter()
    if shard_size < 1 or chunk_size < 1:
        raise CorpusError(f"shard_size and chunk_size must be >= 1, got {shard_size} and {chunk_size}")
    source = resolve_smiles_source(source, data_dir=data_dir, column=column)
    tokenizer = _load_tokenizer(tokenizer)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(output_dir / ".build.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as err:
        raise CorpusError(
            f"{output_dir}: another build of this corpus is running (it holds {output_dir / '.build.lock'}); wait for it "
            "to finish, or write to another output_dir"
        ) from err
    try:
        return _build_locked(source, tokenizer, output_dir, started, shard_size=shard_size, chunk_size=chunk_size,
                             num_workers=num_workers, limit=limit, canonical=canonical, exclude=exclude, domain=domain,
                             max_skipped_fraction=max_skipped_fraction, overwrite=overwrite, progress=progress)
    finally:
        lock.release()


def _exclusion_list(exclude: Iterable[str] | str | os.PathLike | None) -> list[str] | None:
    if exclude is None:
        return None
    if isinstance(exclude, (str, os.PathLike)):
        path = Path(exclude)
        if not path.is_file():
            raise CorpusError(f"exclusion list {path} does not exist; write one stereo-free canonical SMILES per line")
        items = path.read_text().splitlines()
    else:
        items = list(exclude)
    forms, unparsable = unique_canonical((item.strip() for item in items if item.strip()), isomeric=False)
    if unparsable:
        raise CorpusError(
            f"the exclusion list holds {len(unparsable)} SMILES RDKit cannot parse (first: {unparsable[0]!r}); "
            "list one parsable SMILES per line"
        )
    return sorted(forms)


def _build_locked(source: SmilesSource, tokenizer: Any, output_dir: Path, started: float, **options: Any) -> MoleculeCorpusBuild:
    num_workers = int(options["num_workers"])
    exclusion = _exclusion_list(options["exclude"])
    exclude_record = None
    if exclusion is not None:
        text = "\n".join(exclusion) + ("\n" if exclusion else "")
        exclude_record = {"file": "exclude.txt", "count": len(exclusion),
                          "sha256": hashlib.sha256(text.encode()).hexdigest()}
    identity = source_identity(source.path)
    build = {
        "version": MOLECULE_CORPUS_VERSION,
        "source": {**source.describe(), **identity},
        "options": {"shard_size": options["shard_size"], "chunk_size": options["chunk_size"], "limit": options["limit"],
                    "canonical": bool(options["canonical"]), "domain": options["domain"], "exclude": exclude_record},
    }
    key_payload = {"version": MOLECULE_CORPUS_VERSION, "tokenizer": tokenizer.content_hash,
                   "source": {k: build["source"][k] for k in ("column", "kind", "delimiter", "size", "sha256")},
                   "options": build["options"]}
    build["key"] = _build_key(key_payload)
    manifest, records = _existing_records(output_dir)
    if options["overwrite"]:
        for path in output_dir.iterdir():
            if path.name != ".build.lock":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        manifest, records = None, {}
    _check_same_tokenizer(output_dir, tokenizer.content_hash, manifest, records)
    _check_same_build(output_dir, build, manifest)
    for leftover in output_dir.glob(".shard-*.tmp-*"):  # a killed build's partial shards
        leftover.unlink(missing_ok=True)
    for path in (MANIFEST_NAME, CORPUS_METADATA_NAME, "state.json", "dataset_info.json"):
        # the folder is not a complete corpus until the build below finishes
        (output_dir / path).unlink(missing_ok=True)
    tokenizer_dir = output_dir / "tokenizer"
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        tmp = output_dir / ".tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, tokenizer_dir)
    exclude_path = None
    if exclusion is not None:
        exclude_path = output_dir / "exclude.txt"
        atomic_write_text(exclude_path, "\n".join(exclusion) + ("\n" if exclusion else ""))
    worker_options = {"canonical": bool(options["canonical"]), "chunk_size": int(options["chunk_size"]),
                      "domain": options["domain"]}
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    counter = context.Value("q", 0)
    init_args = (str(tokenizer_dir), None if exclude_path is None else str(exclude_path), worker_options, counter)

    from tqdm.auto import tqdm

    on_tty = sys.stderr.isatty()
    bar = tqdm(total=options["limit"], desc=f"tokenizing {source.name}", unit="mol", unit_scale=True,
               disable=not options["progress"], mininterval=0.5 if on_tty else 10.0, file=sys.stderr)
    monitor = _MemoryMonitor()
    results: dict[int, dict[str, Any]] = {}
    built: list[int] = []
    reused: list[int] = []
    done_rows = 0  # source rows of finished shards (reused or built)

    def refresh() -> None:
        monitor.sample()
        bar.n = done_rows + counter.value
        bar.refresh() if on_tty else bar.update(0)

    def finish(record: dict[str, Any]) -> None:
        nonlocal done_rows
        record["tokenizer_hash"] = tokenizer.content_hash
        results[record["index"]] = record
        built.append(record["index"])
        _check_skipped(output_dir / record["file"], record, options["max_skipped_fraction"])
        with counter.get_lock():
            counter.value -= record["source_rows"]
        done_rows += record["source_rows"]

    pool = None
    if num_workers > 0:
        pool = ProcessPoolExecutor(num_workers, mp_context=context, initializer=_init_worker, initargs=init_args)
    else:
        _init_worker(*init_args)
    pending: dict[Future, int] = {}
    try:
        for index, chunk in enumerate(iter_smiles_chunks(source, options["shard_size"], options["limit"])):
            path = output_dir / f"{_SHARD_NAME.format(index)}.arrow"
            why = _shard_verifies(output_dir, records.get(index), build["key"], chunk)
            if why is None:
                results[index] = records[index]
                reused.append(index)
                done_rows += len(chunk)
                refresh()
                continue
            if index in records or path.exists():
                logger.warning("%s: rebuilding %s (%s)", output_dir, path.name, why)
            task = _ShardTask(index, str(path), chunk.first_row, chunk.lines, chunk.smiles, build["key"])
            if pool is None:
                finish(_with_hash(_build_shard(task), tokenizer.content_hash, output_dir))
                refresh()
                continue
            while len(pending) > num_workers:
                _wait_some(pending, finish, refresh, tokenizer.content_hash, output_dir)
            pending[pool.submit(_build_shard, task)] = index
        while pending:
            _wait_some(pending, finish, refresh, tokenizer.content_hash, output_dir)
        refresh()
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    _remove_stale_shards(output_dir, len(results))
    seconds = time.perf_counter() - started
    manifest = _write_manifest(output_dir, source, tokenizer, build, results, exclude_record)
    manifest["build"] = {
        "seconds": round(seconds, 2),
        "molecules_per_second": round(sum(results[i]["source_rows"] for i in built) / max(seconds, 1e-9), 1),
        "num_workers": num_workers,
        "built_shards": len(built),
        "reused_shards": len(reused),
        "peak_rss_bytes": monitor.peak_rss,
        "peak_pss_bytes": monitor.peak_pss,
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write_json(output_dir / MANIFEST_NAME, manifest)
    totals = manifest["totals"]
    logger.info(
        "%s: %d molecules in %d shards (%d built, %d reused), %d skipped, %d excluded, %.0f s, peak memory %.0f MB "
        "(PSS %.0f MB) over the parent and %d workers",
        output_dir, totals["rows"], len(results), len(built), len(reused), totals["skipped"], totals["excluded"], seconds,
        monitor.peak_rss / 2**20, monitor.peak_pss / 2**20, num_workers,
    )
    return MoleculeCorpusBuild(output_dir, manifest, seconds, sorted(built), sorted(reused), monitor.peak_rss,
                               monitor.peak_pss)


def _with_hash(record: dict[str, Any], tokenizer_hash: str, output_dir: Path) -> dict[str, Any]:
    """Add the tokenizer hash to a shard record and write it again (the worker does not know the hash)."""
    record["tokenizer_hash"] = tokenizer_hash
    atomic_write_json(output_dir / record["file"].replace(".arrow", ".json"), record)
    return record


def _wait_some(pending: dict[Future, int], finish, refresh, tokenizer_hash: str, output_dir: Path) -> None:
    done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
    for future in done:
        pending.pop(future)
        finish(_with_hash(future.result(), tokenizer_hash, output_dir))
    refresh()


def _check_skipped(path: Path, record: dict[str, Any], max_fraction: float) -> None:
    skipped = record["skipped"]
    if not skipped:
        return
    lines = ", ".join(f"{r['line']} ({r['reason']})" for r in skipped[:5])
    logger.warning("%s: skipped %d of %d rows that cannot be parsed or tokenized, at lines %s%s; the manifest lists all",
                   path.name, len(skipped), record["source_rows"], lines, " ..." if len(skipped) > 5 else "")
    if len(skipped) > max_fraction * record["source_rows"]:
        raise UnparsableSmilesError(
            f"{path.name} (source lines {record['first_line']}-{record['last_line']}): {len(skipped)} of "
            f"{record['source_rows']} rows cannot be parsed or tokenized (first: line {skipped[0]['line']}, "
            f"{skipped[0]['smiles']!r}: {skipped[0]['reason']}), more than max_skipped_fraction={max_fraction}. Is the "
            f"SMILES column right? Fix the file, or raise max_skipped_fraction to keep going (every skipped row is "
            f"recorded in {path.with_suffix('.json').name})"
        )


def _remove_stale_shards(output_dir: Path, num_shards: int) -> None:
    """Shards beyond the last one of this build (a longer earlier build with the same key cannot exist,
    but a ``limit`` change leaves none either: the key differs). Defensive cleanup of numbering gaps."""
    for path in output_dir.iterdir():
        match = _SHARD_PATTERN.match(path.name)
        if match and int(match.group(1)) >= num_shards:
            logger.warning("%s: removing %s, beyond the %d shards of this build", output_dir, path.name, num_shards)
            path.unlink()


def _write_manifest(output_dir: Path, source: SmilesSource, tokenizer: Any, build: dict[str, Any],
                    results: dict[int, dict[str, Any]], exclude_record: dict | None) -> dict[str, Any]:
    """Write state.json / dataset_info.json (datasets' layout), gfm_corpus.json and return the manifest."""
    import datasets

    shards = [results[i] for i in sorted(results)]
    shard_summaries = [{k: r[k] for k in ("index", "file", "rows", "tokens", "source_rows", "first_row", "first_line",
                                          "last_line", "bytes", "sha256")} | {"skipped": len(r["skipped"]),
                                                                              "excluded": len(r["excluded"])}
                       for r in shards]
    skipped = [row for r in shards for row in r["skipped"]]
    excluded = [row for r in shards for row in r["excluded"]]
    totals = {
        "source_rows": sum(r["source_rows"] for r in shards),
        "rows": sum(r["rows"] for r in shards),
        "tokens": sum(r["tokens"] for r in shards),
        "skipped": len(skipped),
        "excluded": len(excluded),
        "shards": len(shards),
    }
    schema = _schema(build["options"]["canonical"])
    features = datasets.Features.from_arrow_schema(schema)
    atomic_write_json(output_dir / "dataset_info.json", {
        "citation": "", "description": f"gfm molecule corpus of {source.name}", "features": features.to_dict(),
        "homepage": "", "license": "",
    })
    atomic_write_json(output_dir / "state.json", {
        "_data_files": [{"filename": r["file"]} for r in shards],
        "_fingerprint": build["key"][:16],
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    })
    atomic_write_json(output_dir / CORPUS_METADATA_NAME, {
        "tokenizer_class": type(tokenizer).__name__,
        "tokenizer_hash": tokenizer.content_hash,
        "datasets": [{"name": source.name, "kind": "smiles", "domain": build["options"]["domain"], "graphs": totals["rows"],
                      "tokens": totals["tokens"], "skipped": totals["skipped"], "excluded": totals["excluded"]}],
        "options": build["options"],
        "version": MOLECULE_CORPUS_VERSION,
        "format": FORMAT_NAME,
    })
    return {
        "format": FORMAT_NAME,
        "version": MOLECULE_CORPUS_VERSION,
        "key": build["key"],
        "source": build["source"],
        "tokenizer": {"class": type(tokenizer).__name__, "hash": tokenizer.content_hash,
                      "vocab_size": tokenizer.vocab_size, "directory": "tokenizer"},
        "options": build["options"],
        "exclude": exclude_record,
        "totals": totals,
        "shards": shard_summaries,
        "skipped": skipped,
        "excluded": excluded,
    }


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a finished molecule corpus, or a :class:`CorpusError` saying what the folder is."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        partial = sorted(directory.glob("shard-*.arrow")) if directory.is_dir() else []
        state = (f"it holds {len(partial)} shards but no {MANIFEST_NAME}: a build was interrupted; run "
                 "build_molecule_corpus again with the same arguments to finish it") if partial else (
                 f"no {MANIFEST_NAME}: build it with build_molecule_corpus (tokenizers/build_molecule_corpus.py)")
        raise CorpusError(f"{directory} is not a finished molecule corpus: {state}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path} is damaged ({err}); run build_molecule_corpus again with the same arguments") from err
    if manifest.get("format") != FORMAT_NAME:
        raise CorpusError(f"{path} is not a gfm molecule corpus manifest (format {manifest.get('format')!r})")
    return manifest


def _count_rows(path: Path) -> int:
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_stream(source)
        return sum(batch.num_rows for batch in reader)


def _verify_shards(directory: Path, manifest: dict[str, Any], checksums: bool) -> None:
    advice = ("run build_molecule_corpus again with the same arguments (it rebuilds only the damaged shards), or delete "
              f"{directory} and build it again")
    for shard in manifest["shards"]:
        path = directory / shard["file"]
        if not path.is_file():
            raise ShardError(f"{directory}: shard {shard['file']} is missing ({shard['rows']} molecules recorded); {advice}")
        size = path.stat().st_size
        if size == 0:
            raise ShardError(
                f"{directory}: shard {shard['file']} is empty (0 bytes) but the manifest records {shard['rows']} molecules "
                f"(source lines {shard['first_line']}-{shard['last_line']}); {advice}"
            )
        if size != shard["bytes"]:
            raise ShardError(
                f"{directory}: shard {shard['file']} has {size} bytes but the manifest records {shard['bytes']}; it was "
                f"changed or cut short; {advice}"
            )
        try:
            rows = _count_rows(path)
        except Exception as err:  # pyarrow raises several types for a garbled stream
            raise ShardError(f"{directory}: shard {shard['file']} is not a readable Arrow stream ({err}); {advice}") from err
        if rows != shard["rows"]:
            what = "holds no molecules" if rows == 0 else f"holds {rows} molecules"
            raise ShardError(
                f"{directory}: shard {shard['file']} {what} but the manifest records {shard['rows']} (source lines "
                f"{shard['first_line']}-{shard['last_line']}); {advice}"
            )
        if checksums and sha256_file(path) != shard["sha256"]:
            raise ShardError(f"{directory}: shard {shard['file']}'s SHA-256 differs from the manifest's; {advice}")


def open_molecule_table(directory: str | os.PathLike, *, tokenizer: Any = None, checksums: bool = False) -> Any:
    """The corpus as one memory-mapped ``datasets.Dataset`` (shards concatenated, nothing copied).

    Args:
        tokenizer: when given (instance or directory), the corpus must have been written by it.
        checksums: also verify every shard's SHA-256 (reads every byte once).

    Raises:
        CorpusError: not a finished corpus; :class:`ShardError`: a shard missing, empty or changed;
        :class:`CorpusTokenizerMismatchError`: written by another tokenizer.
    """
    import datasets

    directory = Path(directory)
    manifest = read_manifest(directory)
    if tokenizer is not None:
        wanted = _load_tokenizer(tokenizer).content_hash
        if manifest["tokenizer"]["hash"] != wanted:
            raise CorpusTokenizerMismatchError(
                f"{directory} was written by tokenizer {manifest['tokenizer']['hash'][:16]}, not by tokenizer "
                f"{wanted[:16]} given here; use the tokenizer in {directory / 'tokenizer'} or rebuild the corpus with "
                "this one (into another output_dir)"
            )
    _verify_shards(directory, manifest, checksums)
    if not manifest["shards"]:
        raise CorpusError(f"{directory}: the corpus has no shards (its source had no rows)")
    tables = [datasets.Dataset.from_file(str(directory / shard["file"])) for shard in manifest["shards"]]
    return tables[0] if len(tables) == 1 else datasets.concatenate_datasets(tables)


def load_molecule_corpus(directory: str | os.PathLike, *, tokenizer: Any = None, checksums: bool = False,
                         **corpus_kwargs: Any) -> TokenizedCorpus:
    """Open a molecule corpus for pretraining: a :class:`TokenizedCorpus` over the memory-mapped shards.

    ``corpus_kwargs`` go to :class:`TokenizedCorpus` (``eval_fraction``, ``eval_max_per_domain``).
    The pretraining config key ``tokenized_corpus`` may also point at the folder directly.
    """
    directory = Path(directory)
    table = open_molecule_table(directory, tokenizer=tokenizer, checksums=checksums)
    metadata = json.loads((directory / CORPUS_METADATA_NAME).read_text())
    return TokenizedCorpus(table, name=str(directory), metadata=metadata, **corpus_kwargs)


def corpus_column(directory: str | os.PathLike, column: str, batch_size: int = 100_000):
    """Yield a column of the corpus in batches (Python lists), shard by shard, without loading it whole."""
    import pyarrow as pa

    directory = Path(directory)
    manifest = read_manifest(directory)
    for shard in manifest["shards"]:
        with pa.memory_map(str(directory / shard["file"])) as source:
            reader = pa.ipc.open_stream(source)
            if column not in reader.schema.names:
                hint = " (build the corpus with canonical=True)" if column == "canonical_smiles" else ""
                raise CorpusError(f"{directory}: the corpus has no column {column!r}{hint}; it has {reader.schema.names}")
            for batch in reader:
                values = batch.column(column)
                for start in range(0, len(values), batch_size):
                    yield values.slice(start, batch_size).to_pylist()


# ---------------------------------------------------------------------------------------------
# a tokenizer for a SMILES corpus
# ---------------------------------------------------------------------------------------------
def train_molecule_tokenizer(
    source: str | os.PathLike | SmilesSource,
    *,
    data_dir: str | os.PathLike | None = None,
    column: str | int | None = None,
    sample_size: int = 50_000,
    seed: int = 0,
    merges: str | None = "bpe",
    num_merges: int = 8000,
    max_piece_length: int = 64,
    num_index_tokens: int = 512,
    num_workers: int | None = None,
):
    """An Eulerian tokenizer for a SMILES corpus, trained on a seeded sample of it.

    Every value of the RDKit atom / bond features gets a token
    (``declared_values=molecule_feature_values()``, as ``configs/tokenizers/eulerian_molecules.yaml``
    does), so any molecule the featurizer accepts encodes without ``<unk>``, in or out of the
    sample; the merges (SentencePiece ``merges``) are learned on the sample's base sequences.

    Returns:
        ``(tokenizer, graphs)``: the tokenizer and the sample's graphs (to measure lengths).
    """
    from gfm.data.molecules import molecule_feature_values, molecules_to_graphs
    from gfm.tokenization.eulerian import EulerianTokenizer

    source = resolve_smiles_source(source, data_dir=data_dir, column=column)
    sample = sample_smiles(source, sample_size, seed=seed)
    graphs, _, _, skipped = molecules_to_graphs(sample.smiles, num_workers=num_workers)
    if skipped:
        logger.warning("tokenizer sample of %s: %d of %d SMILES skipped (first at line %d: %s)", source.name,
                       len(skipped), len(sample), sample.lines[skipped[0][0]], skipped[0][2])
    if not graphs:
        raise UnparsableSmilesError(f"{source.name}: none of the {len(sample)} sampled SMILES could be parsed")
    tokenizer = EulerianTokenizer.train(
        graphs, num_index_tokens=num_index_tokens, merges=merges, num_merges=num_merges,
        max_piece_length=max_piece_length, declared_values=molecule_feature_values(), default_domain="molecules",
    )
    return tokenizer, graphs


def sequence_lengths(tokenizer: Any, graphs: list, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Tokens per molecule without merges (``base``) and with them (``merged``; = base without merges), int64 [G]."""
    base, merged = [], []
    for start in range(0, len(graphs), batch_size):
        chunk = graphs[start : start + batch_size]
        base.extend(len(s) for s in tokenizer.encode_batch(chunk, use_merges=False))
        if tokenizer.merges is not None:
            merged.extend(len(s) for s in tokenizer.encode_batch(chunk))
    base_array = np.asarray(base, dtype=np.int64)
    return {"base": base_array, "merged": np.asarray(merged, dtype=np.int64) if merged else base_array}
