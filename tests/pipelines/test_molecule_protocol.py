"""The molecule transfer protocol: the protocol's view of a dataset (metric, cap, single-class tasks), the
fingerprint baselines, the runner with its resume and gfm hooks, the recipes, and the leakage check
with the exclusion list that removes the test molecules from a pretraining corpus."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from gfm.data.moleculenet import load_smiles_csv
from gfm.data.packaged import rdkit_nci_files
from gfm.data.smiles_corpus import canonical_smiles, split_smiles, stereo_free_canonical
from gfm.evaluation.fingerprints import (
    FingerprintConfig,
    FingerprintError,
    ecfp_bits,
    train_fingerprint_model,
)
from gfm.evaluation.metrics import roc_auc
from gfm.evaluation.reports import RunResult
from gfm.pipelines.molecule_benchmark import (
    MoleculeBenchmarkConfig,
    format_benchmark_tables,
    format_pretraining_gain,
    protocol_dataset,
    run_molecule_benchmark,
    split_facts,
)
from gfm.pipelines.molecule_corpus import (
    MoleculeCorpusArguments,
    count_leakage,
    format_corpus_report,
    leakage_exclusion_list,
    protocol_test_smiles,
    run_molecule_corpus,
)
from gfm.testing.paths import source_root
from gfm.utils.config import ConfigError, load_config_dataclasses

#: molecules with scaffolds the NCI head lacks, at the end of the file: the scaffold split puts
#: the last singleton scaffold groups into test
SPECIAL = ["C[C@H](N)C1CCCCCCCCC1", "OC(=O)C1CCCCCCCCCCC1", "NC1CCCCCCCCCCCC1"]


def nci(count: int) -> tuple[list[str], list[float]]:
    smi_path, tpsa_path = rdkit_nci_files()
    smiles = [line.split("\t")[0] for line in smi_path.read_text().splitlines()[:count]]
    tpsa = [float(line.rsplit(",", 1)[1]) for line in tpsa_path.read_text().splitlines()
            if line.strip() and not line.startswith("#")][:count]
    return smiles, tpsa


def write_toy_csv(path: Path, count: int = 400) -> Path:
    """Three binary tasks: polar (TPSA above the median), large (> 15 atoms, a quarter unmeasured),
    and a task whose test labels hold one class."""
    smiles, tpsa = nci(count)
    smiles, tpsa = smiles + SPECIAL, tpsa + [26.0, 37.3, 26.0]
    median = float(np.median(tpsa))
    lines = ["smiles,polar,large,rare"]
    for index, (text, value) in enumerate(zip(smiles, tpsa)):
        atoms = Chem.MolFromSmiles(text).GetNumAtoms()
        large = "" if index % 4 == 3 else str(int(atoms > 15))
        rare = str(int(index % 50 == 0 and index < 200))
        lines.append(f"{text},{int(value > median)},{large},{rare}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = write_toy_csv(tmp_path_factory.mktemp("toy") / "toy.csv")
    return load_smiles_csv(path, "toy", kind="multilabel", metric="prc_auc", num_workers=1)


def test_the_protocol_view_caps_train_only_and_counts_single_class_tasks(toy) -> None:
    view = protocol_dataset(toy, "roc_auc", cap=100, cap_seed=3)
    assert view.task.metric == "roc_auc" and toy.task.metric == "prc_auc"  # the source is not changed
    train = view.splits["train"].tolist()
    assert len(train) == 100 and train == sorted(train) and set(train) <= set(toy.splits["train"].tolist())
    assert train == protocol_dataset(toy, "roc_auc", cap=100, cap_seed=3).splits["train"].tolist()
    assert train != protocol_dataset(toy, "roc_auc", cap=100, cap_seed=4).splits["train"].tolist()
    for split in ("valid", "test"):  # never cut
        assert torch.equal(view.splits[split], toy.splits[split])
    assert protocol_dataset(toy, cap=10_000).splits["train"].tolist() == toy.splits["train"].tolist()
    facts = split_facts(view, cap=100)
    assert (facts.train, facts.train_available, facts.tasks, facts.cap) == (100, len(toy.splits["train"]), 3, 100)
    test_rare = torch.stack([toy.graphs[i].y.view(-1)[2] for i in toy.splits["test"].tolist()])
    assert test_rare.unique().numel() == 1  # the 'rare' task has one class in test: skipped and counted
    assert facts.single_class_test_tasks == 1 and facts.single_class_valid_tasks == 1


def test_the_literature_split_is_recomputed_from_the_smiles(toy) -> None:
    from gfm.data.scaffold_protocol import hu_scaffold_split

    view = protocol_dataset(toy, "roc_auc", split="hu2020")
    expected = hu_scaffold_split([g.name for g in toy.graphs])
    assert all(torch.equal(view.splits[k], expected[k]) for k in ("train", "valid", "test"))
    assert view.task.split.startswith("Hu et al. 2020 scaffold split") and not torch.equal(view.splits["test"],
                                                                                          toy.splits["test"])
    capped = protocol_dataset(toy, "roc_auc", cap=50, split="hu2020")
    assert split_facts(capped).train_available == len(expected["train"]) and len(capped.splits["train"]) == 50
    with pytest.raises(ConfigError, match=r"split='random'; use 'hu2020' or 'registry'"):
        protocol_dataset(toy, split="random")


def test_ecfp_bits_are_rdkit_morgan_bits_and_unparsable_smiles_are_named() -> None:
    smiles, _ = nci(40)
    bits = ecfp_bits(smiles, radius=2, num_bits=1024)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    for row, text in zip(bits, smiles):
        reference = np.zeros(1024, dtype=np.uint8)
        DataStructs.ConvertToNumpyArray(generator.GetFingerprint(Chem.MolFromSmiles(text)), reference)
        assert np.array_equal(row, reference)
    assert bits.dtype == np.uint8 and bits.sum() > 0
    with pytest.raises(FingerprintError, match=r"toy: molecule 1 \('C1CC\('\) cannot be parsed by RDKit; give parsable SMILES$"):
        ecfp_bits(["CCO", "C1CC("], name="toy")


def test_fingerprint_baselines_learn_and_select_on_validation(toy) -> None:
    view = protocol_dataset(toy, "roc_auc")
    config = FingerprintConfig(num_bits=1024, lr_c_grid=[0.01, 1.0], rf_num_trees=30)
    lr = [train_fingerprint_model(view, "fingerprint_lr", config, seed) for seed in (0, 1)]
    assert lr[0].test == lr[1].test and lr[0].valid == max(lr[0].valid_curve)  # deterministic; best C chosen
    assert lr[0].extra["selected_C"] == config.lr_c_grid[lr[0].selected_step] and len(lr[0].valid_curve) == 2
    rf = train_fingerprint_model(view, "fingerprint_rf", config, seed=0)
    assert rf.metric == "roc_auc" and rf.role == "baseline" and rf.extra["train_molecules"] == len(view.splits["train"])
    for run in (lr[0], rf):
        assert 0.7 < run.test <= 1.0, run  # fingerprints see polarity and size
    regression = dataclasses.replace(toy, task=dataclasses.replace(toy.task, kind="regression", metric="mae"))
    with pytest.raises(FingerprintError, match=r"toy: the fingerprint baselines score binary graph tasks \(one or "
                                               r"several\), got graph regression \(3 targets\)"):
        train_fingerprint_model(regression, "fingerprint_lr", config, 0)


def test_roc_auc_masks_missing_labels_and_skips_single_class_tasks() -> None:
    y = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, float("nan"), 0.0]])
    scores = torch.tensor([[0.9, 5.0, 0.1], [0.2, 0.8, 0.2], [0.7, 0.1, 0.3], [0.4, -5.0, 0.4]])
    assert roc_auc(y, scores) == pytest.approx((1.0 + 1.0) / 2)  # task 2 (all 0) skipped, NaN rows ignored


def test_the_runner_appends_every_run_and_resumes(toy, tmp_path: Path) -> None:
    config = MoleculeBenchmarkConfig(datasets=["toy"], methods=["fingerprint_lr", "gin"], seeds=[0, 1], split="registry",
                                     output_dir=str(tmp_path), max_train_molecules={"toy": 150}, fingerprint_bits=512,
                                     lr_c_grid=[0.1], gin_epochs=2, gin_hidden_channels=16, gin_num_layers=2)
    runs, facts = run_molecule_benchmark(config, datasets={"toy": toy})
    assert sorted((r.method, r.seed) for r in runs) == [("fingerprint_lr", 0), ("fingerprint_lr", 1), ("gin", 0), ("gin", 1)]
    assert all(r.metric == "roc_auc" and r.extra["train_molecules"] == 150 for r in runs)
    assert facts[0].train == 150 and facts[0].single_class_test_tasks == 1
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(line)["dataset"] for line in lines} == {"toy"}
    again, _ = run_molecule_benchmark(config, datasets={"toy": toy})
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 4
    assert sorted(r.test for r in again) == sorted(r.test for r in runs)
    changed = dataclasses.replace(config, gin_epochs=3)  # only the GIN runs depend on it
    run_molecule_benchmark(changed, datasets={"toy": toy})
    assert [json.loads(line)["method"] for line in (tmp_path / "runs.jsonl").read_text().splitlines()[4:]] == ["gin", "gin"]
    # the cap is not part of a method's settings: a run recorded under another cap is repeated
    recapped = dataclasses.replace(config, methods=["fingerprint_lr"], seeds=[0], max_train_molecules={"toy": 120})
    rerun, recapped_facts = run_molecule_benchmark(recapped, datasets={"toy": toy})
    assert recapped_facts[0].train == 120 and rerun[0].extra["train_molecules"] == 120
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 7
    again, _ = run_molecule_benchmark(recapped, datasets={"toy": toy})  # now both caps are on record
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 7 and again[0].test == rerun[0].test
    table = format_benchmark_tables(runs, facts)
    assert "| fingerprint_lr |" in table and "| gin            |" in table and "mean (all)" in table
    assert "150 (cap; of" in table and "| 1 / 1 " in table


def test_the_gfm_methods_run_through_the_finetuning_runner(toy, tmp_path: Path) -> None:
    from gfm.testing.checkpoints import save_tiny_checkpoint

    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", toy.graphs[:200], hidden_size=32, num_hidden_layers=1)
    config = MoleculeBenchmarkConfig(datasets=["toy"], methods=["full", "scratch"], seeds=[0], pretrained=str(checkpoint),
                                     output_dir=str(tmp_path / "out"), max_train_molecules={"toy": 64}, epochs=1,
                                     max_steps=2, batch_size=16)
    runs, _ = run_molecule_benchmark(config, datasets={"toy": toy})
    assert sorted(r.method for r in runs) == ["full", "scratch"]
    assert all(r.metric == "roc_auc" and math.isfinite(r.test) and r.extra["train_molecules"] == 64 for r in runs)
    assert len((tmp_path / "out" / "runs.jsonl").read_text().splitlines()) == 2


def test_the_pretraining_gain_is_paired_by_seed_and_judged_against_the_spread() -> None:
    def run(task, method, seed, test):
        return RunResult(method=method, task=task, metric="roc_auc", seed=seed, test=test)

    runs = [run("a", "scratch", s, t) for s, t in enumerate([0.70, 0.71, 0.72])]
    runs += [run("a", "full", s, t) for s, t in enumerate([0.80, 0.81, 0.82])]  # +10, stds 1 + 1: above
    runs += [run("b", "scratch", s, t) for s, t in enumerate([0.70, 0.60, 0.80])]
    runs += [run("b", "full", s, t) for s, t in enumerate([0.72, 0.62, 0.82])]  # +2 < 10 + 10: level
    runs += [run("c", "scratch", s, 0.9) for s in range(2)] + [run("c", "full", s, 0.5) for s in range(2)]
    runs += [run("a", "lora", 0, 0.75), run("a", "gin", 0, 0.99)]
    text = format_pretraining_gain(runs, ["a", "b", "c"])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines()
            if line.startswith("| full") or line.startswith("| lora")}
    assert rows["full"][0] == "+10.0 (+10.0 ± 0.0; **above**)"
    assert rows["full"][1] == "+2.0 (+2.0 ± 0.0; level)"
    assert rows["full"][2] == "-40.0 (-40.0 ± 0.0; **below**)"
    assert rows["full"][3] == "1 above, 1 level, 1 below"
    assert rows["lora"] == ["+5.0 (+5.0; one seed)", "—", "—", "0 above, 0 level, 0 below"]
    assert "gin" not in text
    assert format_pretraining_gain([r for r in runs if r.method != "scratch"], ["a"]) == ""


def test_config_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"methods \['mlp'\] are unknown; choose from \['fingerprint_lr', "):
        MoleculeBenchmarkConfig(methods=["mlp"])
    with pytest.raises(ConfigError, match=r"methods \['lora'\] need `pretrained`"):
        MoleculeBenchmarkConfig(methods=["gin", "lora"])
    with pytest.raises(ConfigError, match=r"max_train_molecules names \['moleculenet/bace'\], which are not in datasets"):
        MoleculeBenchmarkConfig(datasets=["moleculenet/hiv"], max_train_molecules={"moleculenet/bace": 10})


def test_the_recipes_read_their_shipped_configs() -> None:
    root = source_root()
    (benchmark,) = load_config_dataclasses((MoleculeBenchmarkConfig,),
                                           root / "configs/finetune/protocols/moleculenet_scaffold.yaml")
    assert benchmark.methods == ["fingerprint_lr", "fingerprint_rf", "gin"] and len(benchmark.datasets) == 6
    assert benchmark.seeds == [0, 1, 2] and benchmark.max_train_molecules == {"moleculenet/hiv": 10000,
                                                                              "moleculenet/muv": 10000}
    (cpu,) = load_config_dataclasses((MoleculeBenchmarkConfig,),
                                     root / "configs/finetune/protocols/moleculenet_scaffold_cpu.yaml")
    assert cpu.datasets == sorted(benchmark.datasets, key=cpu.datasets.index) and cpu.split == benchmark.split
    assert cpu.epochs == 5 and cpu.pack_sequences and set(cpu.methods) >= {"full", "lora", "scratch", "gin"}
    assert cpu.max_train_molecules == {"moleculenet/hiv": 5000, "moleculenet/muv": 5000}
    (corpus,) = load_config_dataclasses((MoleculeCorpusArguments,), root / "configs/tokenizers/moses_corpus.yaml")
    assert corpus.source == "moses/train" and corpus.num_merges == 8000 and len(corpus.leakage_check) == 6


# ---------------------------------------------------------------------------------------------
# leakage
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_data_dir(tmp_path_factory) -> Path:
    """A data folder whose moleculenet/clintox.csv holds NCI molecules and the SPECIAL ones at its end."""
    folder = tmp_path_factory.mktemp("data")
    smiles, _ = nci(300)
    rows = ["smiles,FDA_APPROVED,CT_TOX"] + [f"{s},{i % 2},{(i // 2) % 2}" for i, s in enumerate(smiles + SPECIAL)]
    (folder / "moleculenet").mkdir()
    (folder / "moleculenet" / "clintox.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_leakage_is_counted_by_canonical_smiles_and_the_exclusion_list_removes_it(fake_data_dir: Path,
                                                                                   tmp_path: Path) -> None:
    test = split_smiles("moleculenet/clintox", "test", data_dir=fake_data_dir)
    assert set(SPECIAL) <= set(test) and len(test) == 31
    pretraining, _ = nci(120)  # 120 molecules of which none is a test molecule ...
    pretraining = [s for s in pretraining if s not in test][:100]
    nci_test = [s for s in test if s not in SPECIAL][:2]
    # ... plus two NCI test molecules and one special one in another atom order, and the other stereoisomer of one
    leaked = [Chem.MolToSmiles(Chem.MolFromSmiles(s), doRandom=True) for s in (*nci_test, SPECIAL[1])]
    source = tmp_path / "pretraining.smi"
    source.write_text("\n".join(pretraining + leaked + ["C[C@@H](N)C1CCCCCCCCC1"]) + "\n")
    args = MoleculeCorpusArguments(source=str(source), data_dir=str(fake_data_dir), output_dir=str(tmp_path / "corpus"),
                                   tokenizer_output_dir=str(tmp_path / "tok"), tokenizer_sample_size=104,
                                   num_merges=30, shard_size=40, num_workers=0, progress=False,
                                   leakage_check=["moleculenet/clintox"], test_split="registry", length_sample=50)
    report = run_molecule_corpus(args)
    (count,) = report.leakage
    assert (count.dataset, count.test_molecules, count.unparsable) == ("moleculenet/clintox", 31, 0)
    assert count.exact == 3 and count.stereo_free == 4  # the stereoisomer matches only without stereo
    assert json.loads((tmp_path / "corpus" / "leakage.json").read_text())[0]["stereo_free"] == 4
    text = format_corpus_report(report)
    assert "| moleculenet/clintox | 31 " in text and "| without merges " in text and "trained now" in text
    # the filter list: the corpus built without the test molecules has none of them
    exclusion = leakage_exclusion_list(["moleculenet/clintox"], data_dir=fake_data_dir, split="registry")
    assert len(exclusion) == 31 and stereo_free_canonical(canonical_smiles(SPECIAL[0])) in exclusion
    clean = run_molecule_corpus(dataclasses.replace(args, output_dir=str(tmp_path / "clean"),
                                                    exclude_test_sets=["moleculenet/clintox"]))
    assert not clean.tokenizer_trained  # same sample options: the tokenizer is reused
    assert clean.build.manifest["totals"]["excluded"] == 4 and clean.build.rows == 100
    assert [row["line"] for row in clean.build.manifest["excluded"]] == [101, 102, 103, 104]
    assert [(c.exact, c.stereo_free) for c in count_leakage(clean.build.directory, ["moleculenet/clintox"],
                                                            fake_data_dir, "registry")] == [(0, 0)]
    # the protocol's own split has other test molecules: the special ones train there, and the early
    # NCI molecules of the corpus are its test molecules
    hu_test = protocol_test_smiles("moleculenet/clintox", fake_data_dir)
    assert len(hu_test) == 31 and not set(SPECIAL) & set(hu_test) and set(hu_test) <= set(pretraining)
    (hu_count,) = count_leakage(report.build.directory, ["moleculenet/clintox"], fake_data_dir)
    assert (hu_count.test_molecules, hu_count.exact, hu_count.stereo_free) == (31, 31, 31)
