"""The sharded molecule corpus: rows equal the tokenizer's output, workers write the same bytes, a re-run
reuses the shards, an interrupted build resumes, and bad input (unparsable rows, a wrong column, an
empty shard, another tokenizer, other options) is refused or recorded by name."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rdkit import Chem

from gfm.data.molecules import molecules_to_graphs
from gfm.data.packaged import rdkit_nci_files
from gfm.data.smiles_corpus import SmilesColumnError, canonical_smiles
from gfm.testing.paths import source_root
from gfm.training.data import BatchPlan, TokenizedCorpus, build_micro_batch
from gfm.training.errors import CorpusError, VocabularyMismatchError
from gfm.training.molecule_corpus import (
    CorpusTokenizerMismatchError,
    ShardError,
    UnparsableSmilesError,
    build_molecule_corpus,
    corpus_column,
    load_molecule_corpus,
    open_molecule_table,
    read_manifest,
    sequence_lengths,
    train_molecule_tokenizer,
)
from gfm.utils.io import sha256_file

NUM = 240


def nci_lines(count: int) -> list[str]:
    smi_path, _ = rdkit_nci_files()
    return smi_path.read_text().splitlines()[:count]


@pytest.fixture(scope="module")
def smiles_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("smiles") / "nci240.smi"
    path.write_text("\n".join(nci_lines(NUM)) + "\n")
    return path


@pytest.fixture(scope="module")
def tokenizer(smiles_file: Path):
    tokenizer, graphs = train_molecule_tokenizer(smiles_file, sample_size=NUM, num_merges=60, num_workers=1)
    assert len(graphs) == NUM
    return tokenizer


@pytest.fixture(scope="module")
def built(smiles_file: Path, tokenizer, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "nci"
    build_molecule_corpus(smiles_file, tokenizer, folder, shard_size=64, chunk_size=25, num_workers=0, progress=False)
    return folder


def fresh_copy(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(built, target)
    return target


def test_rows_are_exactly_what_the_tokenizer_writes(built: Path, smiles_file: Path, tokenizer) -> None:
    manifest = read_manifest(built)
    assert manifest["totals"] == {"source_rows": NUM, "rows": NUM, "skipped": 0, "excluded": 0, "shards": 4,
                                  "tokens": manifest["totals"]["tokens"]}
    assert [s["rows"] for s in manifest["shards"]] == [64, 64, 64, 48]
    assert [(s["first_line"], s["last_line"]) for s in manifest["shards"]] == [(1, 64), (65, 128), (129, 192), (193, 240)]
    assert manifest["tokenizer"]["hash"] == tokenizer.content_hash
    assert manifest["source"]["sha256"] == sha256_file(smiles_file) and manifest["options"]["shard_size"] == 64
    smiles = [line.split("\t")[0] for line in nci_lines(NUM)]
    graphs, _, _, _ = molecules_to_graphs(smiles, num_workers=1)
    expected = tokenizer.encode_batch(graphs)
    corpus = load_molecule_corpus(built, tokenizer=tokenizer, checksums=True)
    assert len(corpus) == NUM and corpus.domain_names == ["molecules"]
    stored = corpus.graphs(list(range(NUM)))
    assert all(a.equals(b) for a, b in zip(stored, expected))
    assert sum(len(s) for s in expected) == manifest["totals"]["tokens"]
    table = open_molecule_table(built)
    assert table["smiles"] == smiles and table["source_line"] == list(range(1, NUM + 1))
    assert table["canonical_smiles"] == [canonical_smiles(s) for s in smiles]
    assert [x for batch in corpus_column(built, "canonical_smiles", batch_size=50) for x in batch] == table["canonical_smiles"]


def test_the_pretraining_path_opens_the_folder_memory_mapped(built: Path, tokenizer) -> None:
    import datasets

    loaded = datasets.load_from_disk(str(built))
    assert loaded.num_rows == NUM and "input_ids" in loaded.column_names
    corpus = TokenizedCorpus.load(built, eval_fraction=0.05)  # what `tokenized_corpus: <folder>` runs
    corpus.check_vocabulary(tokenizer.vocab_size, tokenizer.content_hash)
    assert len(corpus.eval_rows) == 12 and len(corpus.train_rows) == NUM - 12
    plan = BatchPlan(corpus, row_length=256, global_batch_rows=2, seed=0)
    batch, domains = build_micro_batch(corpus, plan.batch_at(0, 0).shard(0, 0, 1, 2), 256, tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 2 and domains.tolist() == [0] * len(domains)


def test_worker_processes_write_the_same_bytes_and_a_rerun_reuses_every_shard(
        built: Path, smiles_file: Path, tokenizer, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "parallel"
    build = build_molecule_corpus(smiles_file, tokenizer, folder, shard_size=64, chunk_size=25, num_workers=2,
                                  progress=True)
    assert build.built_shards == [0, 1, 2, 3] and build.reused_shards == []
    assert "mol/s" in capsys.readouterr().err  # the progress bar
    for shard in read_manifest(built)["shards"]:
        assert sha256_file(folder / shard["file"]) == shard["sha256"]
    assert build.peak_rss_bytes >= build.peak_pss_bytes > 0 and build.manifest["build"]["num_workers"] == 2
    times = {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.arrow")}
    again = build_molecule_corpus(smiles_file, tokenizer, folder, shard_size=64, chunk_size=25, num_workers=2,
                                  progress=False)
    assert again.built_shards == [] and again.reused_shards == [0, 1, 2, 3] and again.rows == NUM
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.arrow")} == times


def test_an_interrupted_build_resumes_and_rebuilds_only_the_damaged_shards(
        built: Path, smiles_file: Path, tokenizer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = fresh_copy(built, tmp_path)
    original = {s["file"]: s["sha256"] for s in read_manifest(built)["shards"]}
    # what a kill leaves: no manifest, a half-written shard, a shard without its record, an emptied shard
    (folder / "manifest.json").unlink()
    (folder / ".shard-00003.arrow.tmp-12345").write_bytes(b"partial")
    (folder / "shard-00002.json").unlink()
    (folder / "shard-00001.arrow").write_bytes(b"")
    with pytest.raises(CorpusError, match=r"holds 4 shards but no manifest\.json: a build was interrupted; run "
                                          r"build_molecule_corpus again with the same arguments to finish it"):
        load_molecule_corpus(folder)
    with caplog.at_level(logging.WARNING, logger="gfm.training.molecule_corpus"):
        resumed = build_molecule_corpus(smiles_file, tokenizer, folder, shard_size=64, chunk_size=25, num_workers=0,
                                        progress=False)
    assert resumed.built_shards == [1, 2] and resumed.reused_shards == [0, 3]
    assert "rebuilding shard-00001.arrow (the shard file is empty (0 bytes))" in caplog.text
    assert "rebuilding shard-00002.arrow (no shard record)" in caplog.text
    assert not list(folder.glob(".shard-*"))
    assert {s["file"]: s["sha256"] for s in resumed.manifest["shards"]} == original


def test_an_empty_or_changed_shard_is_refused_when_loading(built: Path, tmp_path: Path) -> None:
    folder = fresh_copy(built, tmp_path)
    (folder / "shard-00001.arrow").write_bytes(b"")
    advice = "run build_molecule_corpus again with the same arguments (it rebuilds only the damaged shards)"
    with pytest.raises(ShardError) as info:
        load_molecule_corpus(folder)
    assert str(info.value).startswith(
        f"{folder}: shard shard-00001.arrow is empty (0 bytes) but the manifest records 64 molecules (source lines "
        f"65-128); {advice}")
    with pytest.raises(CorpusError, match="damaged"):  # the trainer's path names the folder too
        TokenizedCorpus.load(folder)
    import pyarrow as pa

    schema = pa.ipc.open_stream(pa.memory_map(str(built / "shard-00000.arrow"))).schema
    with pa.OSFile(str(folder / "shard-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, schema):
        pass  # a valid stream without molecules
    with pytest.raises(ShardError, match=r"shard shard-00001\.arrow has \d+ bytes but the manifest records \d+; it was "
                                         r"changed or cut short"):
        load_molecule_corpus(folder)
    (folder / "shard-00002.arrow").unlink()
    shutil.copy(built / "shard-00001.arrow", folder / "shard-00001.arrow")
    with pytest.raises(ShardError, match=r"shard shard-00002\.arrow is missing \(64 molecules recorded\)"):
        load_molecule_corpus(folder)


def test_a_folder_of_another_tokenizer_is_refused_naming_both_hashes(built: Path, smiles_file: Path, tokenizer,
                                                                      tmp_path: Path) -> None:
    other, _ = train_molecule_tokenizer(smiles_file, sample_size=NUM, num_merges=30, num_workers=1)
    assert other.content_hash != tokenizer.content_hash
    folder = fresh_copy(built, tmp_path)
    with pytest.raises(CorpusTokenizerMismatchError) as info:
        build_molecule_corpus(smiles_file, other, folder, shard_size=64, num_workers=0, progress=False)
    assert str(info.value) == (
        f"{folder} holds a molecule corpus written by tokenizer {tokenizer.content_hash[:16]}, but this build uses "
        f"tokenizer {other.content_hash[:16]}; a corpus holds the token ids of one tokenizer. Write to another "
        "output_dir, delete the folder, or pass overwrite=True to replace it")
    with pytest.raises(CorpusTokenizerMismatchError, match=rf"{folder} was written by tokenizer "
                                                           rf"{tokenizer.content_hash[:16]}, not by tokenizer "
                                                           rf"{other.content_hash[:16]} given here"):
        load_molecule_corpus(folder, tokenizer=other)
    with pytest.raises(VocabularyMismatchError, match=f"tokenizer {tokenizer.content_hash[:12]}, but the run uses "
                                                      f"tokenizer {other.content_hash[:12]}"):
        TokenizedCorpus.load(folder).check_vocabulary(other.vocab_size, other.content_hash)
    # an interrupted build of another tokenizer (shard records only) is refused too
    (folder / "manifest.json").unlink()
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(CorpusTokenizerMismatchError, match=tokenizer.content_hash[:16]):
        build_molecule_corpus(smiles_file, other, folder, shard_size=64, num_workers=0, progress=False)
    replaced = build_molecule_corpus(smiles_file, other, folder, shard_size=64, num_workers=0, progress=False,
                                     overwrite=True)
    assert replaced.built_shards == [0, 1, 2, 3] and replaced.manifest["tokenizer"]["hash"] == other.content_hash


def test_other_options_in_the_same_folder_are_refused(built: Path, smiles_file: Path, tokenizer, tmp_path: Path) -> None:
    folder = fresh_copy(built, tmp_path)
    with pytest.raises(CorpusError, match=r"built from another source or with other options \(options\.shard_size: 64 "
                                          r"-> 32\); write to another output_dir"):
        build_molecule_corpus(smiles_file, tokenizer, folder, shard_size=32, chunk_size=25, num_workers=0,
                              progress=False)


def test_unparsable_rows_are_counted_with_their_lines_and_too_many_stop_the_build(
        tokenizer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = nci_lines(60)
    lines.insert(9, "C1CC(notamolecule")  # line 10
    lines.insert(29, "")  # line 30: an empty row inside the file
    lines.insert(49, "[Xx]")  # line 50
    path = tmp_path / "bad.smi"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UnparsableSmilesError) as info:
        build_molecule_corpus(path, tokenizer, tmp_path / "strict", shard_size=100, num_workers=0, progress=False)
    assert str(info.value).startswith(
        "shard-00000.arrow (source lines 1-63): 3 of 63 rows cannot be parsed or tokenized (first: line 10, "
        "'C1CC(notamolecule': RDKit cannot parse this SMILES), more than max_skipped_fraction=0.01. Is the SMILES "
        "column right?")
    with caplog.at_level(logging.WARNING, logger="gfm.training.molecule_corpus"):
        build = build_molecule_corpus(path, tokenizer, tmp_path / "lenient", shard_size=25, num_workers=0,
                                      progress=False, max_skipped_fraction=0.2)
    assert build.manifest["totals"]["rows"] == 60 and build.manifest["totals"]["skipped"] == 3
    assert build.manifest["skipped"] == [
        {"line": 10, "smiles": "C1CC(notamolecule", "reason": "RDKit cannot parse this SMILES"},
        {"line": 30, "smiles": "", "reason": "empty SMILES"},
        {"line": 50, "smiles": "[Xx]", "reason": "RDKit cannot parse this SMILES"},
    ]
    assert [s["skipped"] for s in build.manifest["shards"]] == [1, 2, 0]
    assert "at lines 30 (empty SMILES), 50 (RDKit cannot parse this SMILES)" in caplog.text
    assert 10 not in open_molecule_table(build.directory)["source_line"]


def test_a_wrong_column_is_refused_before_anything_is_written(tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "mols.csv"
    path.write_text("name,structure\n" + "".join(f"m{i},{line.split()[0]}\n" for i, line in enumerate(nci_lines(10))))
    with pytest.raises(SmilesColumnError, match=r"mols\.csv: no column 'SMILES' \(the SMILES column expected\); the "
                                                r"header has 2 columns: \['name', 'structure'\]"):
        build_molecule_corpus(path, tokenizer, tmp_path / "out", column="SMILES", num_workers=0, progress=False)
    assert not (tmp_path / "out").exists()
    build = build_molecule_corpus(path, tokenizer, tmp_path / "out", column="structure", num_workers=0, progress=False)
    assert build.rows == 10 and open_molecule_table(build.directory)["source_line"] == list(range(2, 12))


def test_an_exclusion_list_leaves_molecules_out_and_records_them(smiles_file: Path, tokenizer, tmp_path: Path) -> None:
    smiles = [line.split("\t")[0] for line in nci_lines(NUM)]
    # written in another (random) atom order: the list holds canonical forms, the file its own
    chosen = {7: smiles[6], 100: smiles[99], 240: smiles[239]}
    listed = [Chem.MolToSmiles(Chem.MolFromSmiles(s), doRandom=True) for s in chosen.values()]
    listed_file = tmp_path / "exclude.txt"
    listed_file.write_text("\n".join(listed) + "\n")
    build = build_molecule_corpus(smiles_file, tokenizer, tmp_path / "out", shard_size=64, num_workers=0,
                                  progress=False, exclude=listed_file)
    assert build.rows == NUM - 3 and build.manifest["totals"]["excluded"] == 3
    assert build.manifest["excluded"] == [{"line": line, "smiles": text} for line, text in chosen.items()]
    assert build.manifest["exclude"]["count"] == 3
    kept = set(open_molecule_table(build.directory)["source_line"])
    assert not kept & set(chosen) and len(kept) == NUM - 3
    # an iterable of the same molecules in canonical form is the same list: same build key, shards reused
    again = build_molecule_corpus(smiles_file, tokenizer, tmp_path / "out", shard_size=64, num_workers=0,
                                  progress=False, exclude=[canonical_smiles(s) for s in chosen.values()])
    assert again.built_shards == []


def test_tokens_per_molecule_with_and_without_merges(smiles_file: Path, tokenizer) -> None:
    graphs, _, _, _ = molecules_to_graphs([line.split("\t")[0] for line in nci_lines(50)], num_workers=1)
    lengths = sequence_lengths(tokenizer, graphs, batch_size=16)
    assert lengths["base"].tolist() == [len(s) for s in tokenizer.encode_batch(graphs, use_merges=False)]
    assert lengths["merged"].tolist() == [len(s) for s in tokenizer.encode_batch(graphs)]
    assert (lengths["merged"] < lengths["base"]).all()


@pytest.mark.slow
def test_a_killed_build_process_resumes_where_it_stopped(smiles_file: Path, tokenizer, built: Path,
                                                         tmp_path: Path) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer.save_pretrained(tokenizer_dir)
    folder = tmp_path / "killed"
    script = (
        "import sys, time\n"
        "from gfm.training import molecule_corpus as m\n"
        "original = m._build_shard\n"
        "def slow(task):\n"
        "    record = original(task)\n"
        "    time.sleep(2)\n"
        "    return record\n"
        "m._build_shard = slow\n"
        f"m.build_molecule_corpus({str(smiles_file)!r}, {str(tokenizer_dir)!r}, {str(folder)!r}, shard_size=64, "
        "chunk_size=25, num_workers=0, progress=False)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(source_root()))
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 240
    while not (folder / "shard-00001.json").is_file():
        assert process.poll() is None and time.time() < deadline, "the build ended before it could be killed"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (folder / "manifest.json").exists()
    resumed = build_molecule_corpus(smiles_file, tokenizer_dir, folder, shard_size=64, chunk_size=25, num_workers=0,
                                    progress=False)
    assert resumed.reused_shards[:2] == [0, 1] and 3 in resumed.built_shards
    assert [s["sha256"] for s in resumed.manifest["shards"]] == [s["sha256"] for s in read_manifest(built)["shards"]]


@pytest.mark.slow
def test_the_corpus_benchmark_runs_and_prints_its_tables() -> None:
    finished = subprocess.run([sys.executable, str(source_root() / "benchmarks" / "molecule_corpus.py"), "--quick",
                               "--workers", "0,2"], env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                              text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "| build, in-process " in finished.stdout and "| build, 2 workers " in finished.stdout
    assert "shards reused" in finished.stdout and "| with merges " in finished.stdout
