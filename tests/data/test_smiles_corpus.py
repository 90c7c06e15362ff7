"""SMILES files read as a stream: line numbers as a user counts them, columns checked by name, named
corpora, seeded samples, canonical and stereo-free forms, the test molecules of a split."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from rdkit import Chem

from gfm.data.dataset import DataFormatError, DataNotFoundError, UnknownDatasetError
from gfm.data.packaged import rdkit_nci_files
from gfm.data.smiles_corpus import (
    SMILES_CORPORA,
    SmilesColumnError,
    canonical_smiles,
    iter_smiles,
    iter_smiles_chunks,
    resolve_smiles_source,
    sample_smiles,
    source_identity,
    split_smiles,
    stereo_free_canonical,
)


def nci_smiles(count: int) -> list[str]:
    smi_path, _ = rdkit_nci_files()
    return [line.split("\t")[0] for line in smi_path.read_text().splitlines()[:count]]


def test_csv_rows_carry_the_line_they_start_on_blank_lines_and_empty_cells_included(tmp_path: Path) -> None:
    path = tmp_path / "mols.csv.gz"
    text = 'id,SMILES,note\n1,CCO,a\n\n2,,b\n3,c1ccccc1,"two\nlines"\n4,CC(=O)O,c\n\n'
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    source = resolve_smiles_source(path, column="SMILES")
    assert source.kind == "csv" and source.column == "SMILES"
    # line 3 is blank inside the file (a row without a SMILES, never dropped); the quoted note of
    # the c1ccccc1 row spans lines 5-6, so the next row starts on line 7; the trailing blank line is no row
    assert list(iter_smiles(source)) == [(2, "CCO"), (3, ""), (4, ""), (5, "c1ccccc1"), (7, "CC(=O)O")]
    chunks = list(iter_smiles_chunks(source, 2))
    assert [(c.first_row, c.lines, c.smiles) for c in chunks] == [
        (0, [2, 3], ["CCO", ""]), (2, [4, 5], ["", "c1ccccc1"]), (4, [7], ["CC(=O)O"])]
    assert [len(c) for c in iter_smiles_chunks(source, 2, limit=3)] == [2, 1]


def test_smi_files_have_no_header_and_a_field_index(tmp_path: Path) -> None:
    smi_path, _ = rdkit_nci_files()
    source = resolve_smiles_source(smi_path)
    assert source.kind == "smi" and source.column == 0
    first = list(zip(range(3), iter_smiles(source)))
    expected = [line.split("\t")[0] for line in smi_path.read_text().splitlines()[:3]]
    assert [row for _, row in first] == [(1, expected[0]), (2, expected[1]), (3, expected[2])]
    names = tmp_path / "named.smi"
    names.write_text("CCO ethanol\n\nc1ccccc1 benzene\n")
    assert list(iter_smiles(resolve_smiles_source(names, column=1))) == [(1, "ethanol"), (2, ""), (3, "benzene")]
    with pytest.raises(SmilesColumnError, match=r"named\.smi: a \.smi file has no header, so its SMILES column is "
                                                r"a field index \(0 = first field\), got 'SMILES'; pass column=0"):
        resolve_smiles_source(names, column="SMILES")


def test_a_wrong_column_lists_the_columns_found_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mols.csv"
    path.write_text("id,Smiles,activity\n1,CCO,0\n")
    with pytest.raises(SmilesColumnError) as info:
        resolve_smiles_source(path, column="SMILES")
    assert str(info.value) == (f"{path}: no column 'SMILES' (the SMILES column expected); the header has 3 columns: "
                               "['id', 'Smiles', 'activity']; 'Smiles' differs only in case: pass column='Smiles'")
    with pytest.raises(SmilesColumnError, match=r"no column 'smile' .* did you mean 'Smiles'\? pass column=<the column "
                                                r"holding the SMILES>"):
        resolve_smiles_source(path, column="smile")
    # no column given: 'smiles' in any case is found, otherwise the columns are listed
    assert resolve_smiles_source(path).column == "Smiles"
    other = tmp_path / "other.csv"
    other.write_text("id,structure\n1,CCO\n")
    with pytest.raises(SmilesColumnError, match=r"other\.csv: no SMILES column: expected a column named 'smiles' "
                                                r"\(any case\), the header has 2 columns: \['id', 'structure'\]; "
                                                r"pass column=<the column holding the SMILES>"):
        resolve_smiles_source(other)
    assert list(iter_smiles(resolve_smiles_source(other, column="structure"))) == [(2, "CCO")]
    with pytest.raises(SmilesColumnError, match="column index 5 is out of range: the header has 2 columns"):
        resolve_smiles_source(other, column=5)


def test_empty_missing_and_unknown_sources_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(DataFormatError, match=r"empty\.csv: the file is empty; a SMILES CSV holds a header line"):
        resolve_smiles_source(empty)
    with pytest.raises(DataNotFoundError, match=r"SMILES file '.*nothing\.csv' does not exist"):
        resolve_smiles_source(tmp_path / "nothing.csv")
    with pytest.raises(UnknownDatasetError, match=r"unknown SMILES corpus 'moses/trian': did you mean 'moses/train'"):
        resolve_smiles_source("moses/trian")
    with pytest.raises(DataNotFoundError, match=r"moses/train: missing file .*moses/train\.csv\.gz"):
        resolve_smiles_source("moses/train", data_dir=tmp_path)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DataFormatError, match=r"broken\.csv\.gz: not a readable text file"):
        resolve_smiles_source(broken)


@pytest.mark.data
def test_named_moses_corpora_resolve_in_the_data_folder(data_dir: Path) -> None:
    assert set(SMILES_CORPORA) == {"moses/train", "moses/test", "moses/test_scaffolds"}
    for name in SMILES_CORPORA:
        source = resolve_smiles_source(name, data_dir=data_dir)
        assert source.column == "SMILES" and source.path.is_file() and source.name == name
    first = next(iter_smiles_chunks(resolve_smiles_source("moses/test", data_dir=data_dir), 5))
    assert first.lines == [2, 3, 4, 5, 6] and all(Chem.MolFromSmiles(s) is not None for s in first.smiles)


def test_a_seeded_sample_is_uniform_in_file_order_and_repeatable(tmp_path: Path) -> None:
    path = tmp_path / "numbers.smi"
    path.write_text("".join(f"C{'C' * (i % 7)} m{i}\n" for i in range(2000)))
    source = resolve_smiles_source(path)
    one, two, other = sample_smiles(source, 300, seed=1), sample_smiles(source, 300, seed=1), sample_smiles(source, 300, seed=2)
    assert one.lines == two.lines and one.lines != other.lines
    assert len(one) == 300 and one.lines == sorted(set(one.lines))
    assert min(one.lines) < 400 and max(one.lines) > 1600  # drawn from the whole file, not its head
    assert sample_smiles(source, 5000).lines == list(range(1, 2001))  # a sample larger than the file is the file


def test_canonical_forms_compare_molecules_written_differently() -> None:
    assert canonical_smiles("OCC") == canonical_smiles("C(O)C") == "CCO"
    assert canonical_smiles("not a molecule") is None and canonical_smiles("") is None
    isomeric = canonical_smiles("C[C@H](N)C(=O)O")
    assert "@" in isomeric and isomeric != canonical_smiles("CC(N)C(=O)O")
    assert stereo_free_canonical(isomeric) == canonical_smiles("CC(N)C(=O)O") == canonical_smiles(isomeric, isomeric=False)
    deuterated = canonical_smiles("[2H]C")  # isotopes are isomeric marks too
    assert stereo_free_canonical(deuterated) == canonical_smiles("[2H]C", isomeric=False) != deuterated
    for text in nci_smiles(200):
        form = canonical_smiles(text)
        if form is not None:  # without marks the isomeric form is already stereo-free
            assert stereo_free_canonical(form) == canonical_smiles(text, isomeric=False)


def test_source_identity_changes_with_the_content(tmp_path: Path) -> None:
    path = tmp_path / "a.smi"
    path.write_text("CCO\n")
    first = source_identity(path)
    path.write_text("CCN\n")
    second = source_identity(path)
    assert first["size"] == second["size"] and first["sha256"] != second["sha256"]
    assert "sha256" not in source_identity(path, hash_contents=False)


@pytest.mark.data
def test_split_smiles_are_the_test_molecules_the_loader_scores(data_dir: Path) -> None:
    from gfm.data.registry import load

    dataset = load("moleculenet/clintox", data_dir=data_dir)
    test = split_smiles("moleculenet/clintox", "test", data_dir=data_dir)
    assert test == [dataset.graphs[i].name for i in dataset.splits["test"].tolist()]
    assert len(test) == 148
    with pytest.raises(DataFormatError, match=r"moleculenet/clintox: no split 'dev'; it has \['test', 'train', 'valid'\]"):
        split_smiles("moleculenet/clintox", "dev", data_dir=data_dir)
