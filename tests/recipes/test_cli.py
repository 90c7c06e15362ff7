"""The five recipes share one command line: --help lists every key, --key value overrides a shipped YAML,
every shipped YAML loads, and bad input is one named message (file or command line, close match, key)."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gfm.testing.paths import source_root
from gfm.utils.config import ConfigError, UnknownConfigKeyError, load_config_dataclasses

REPO = source_root()
RECIPES = {
    "train_tokenizer": "tokenizers/train_tokenizer.py",
    "train_quantizer": "tokenizers/train_quantizer.py",
    "run_pretraining": "pretrain/run_pretraining.py",
    "run_finetuning": "finetune/run_finetuning.py",
    "run_zero_shot": "finetune/run_zero_shot.py",
}
#: recipe -> (glob of its shipped YAML files, one shipped file, an override and the value it must give)
SHIPPED = {
    "train_tokenizer": ("tokenizers/eulerian_*.yaml", "tokenizers/eulerian_tiny.yaml", ["--num_merges", "123"], ("num_merges", 123)),
    "train_quantizer": ("tokenizers/quantized_*.yaml", "tokenizers/quantized_tiny.yaml", ["--codebook_size", "16"], ("codebook_size", 16)),
    "run_pretraining": ("pretrain/*.yaml", "pretrain/tiny.yaml", ["--max_steps", "2"], ("max_steps", 2)),
    "run_finetuning": ("finetune/*.yaml", "finetune/tiny.yaml", ["--learning-rate", "3e-4"], ("learning_rate", 3e-4)),
    "run_zero_shot": ("zero_shot/*.yaml", "zero_shot/planetoid.yaml", ["--seeds", "[4, 5]"], ("seeds", [4, 5])),
}


def load_recipe(name: str) -> ModuleType:
    """Import a recipe script as a module (registered, so its dataclasses' annotations resolve)."""
    module_name = f"recipe_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / RECIPES[name])
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.mark.parametrize("name", list(RECIPES))
def test_help_lists_every_key_of_every_dataclass(name: str, capsys: pytest.CaptureFixture) -> None:
    recipe = load_recipe(name)
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    classes = recipe.parser().dataclass_types
    assert classes
    for cls in classes:
        assert f"{cls.__name__}:" in text
        for f in dataclasses.fields(cls):
            assert f"--{f.name} " in text, f"{name}: --{f.name} missing from --help"
            documentation = " ".join(f.metadata.get("help", "").split())
            assert documentation[:40] in text, f"{name}: help of {f.name} missing"


@pytest.mark.parametrize("name", list(RECIPES))
def test_override_of_a_shipped_config_takes_effect(name: str) -> None:
    recipe = load_recipe(name)
    _, shipped, override, (key, expected) = SHIPPED[name]
    configs, options = recipe.parser().parse_config(["--config", str(REPO / "configs" / shipped), *override])
    values = {f.name: getattr(c, f.name) for c in configs for f in dataclasses.fields(c)}
    assert values[key] == expected and type(values[key]) is type(expected)
    assert options.config == str(REPO / "configs" / shipped)
    # without the override the file's value (or the default) stands
    configs, _ = recipe.parser().parse_config(["--config", str(REPO / "configs" / shipped)])
    assert {f.name: getattr(c, f.name) for c in configs for f in dataclasses.fields(c)}[key] != expected


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_shipped_yaml_loads(name: str) -> None:
    pattern = SHIPPED[name][0]
    paths = sorted((REPO / "configs").glob(pattern))
    assert paths, pattern
    classes = load_recipe(name).parser().dataclass_types
    for path in paths:
        configs = load_config_dataclasses(classes, path)
        assert len(configs) == len(classes)


def test_finetuning_and_zero_shot_run_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # real runs through main: the overrides replace the shipped file's checkpoint, dataset and methods
    finetune = load_recipe("run_finetuning")
    results = finetune.main(["--config", str(REPO / "configs/finetune/tiny.yaml"), "--pretrained", "null",
                             "--methods", "[controls, gnn]", "--gnn_epochs", "3", "--output_dir", str(tmp_path / "ft")])
    assert {r.method for r in results} == {"gcn", "label_propagation", "svd_probe"} and all(r.seed == 0 for r in results)
    assert (tmp_path / "ft" / "tiny.md").is_file()
    zero_shot = load_recipe("run_zero_shot")
    results = zero_shot.main(["--config", str(REPO / "configs/zero_shot/planetoid.yaml"), "--pretrained", "null",
                              "--datasets", "[packaged/karate]", "--link_accesses", "[]", "--seeds", "[3]",
                              "--labels_per_class", "[2]", "--svd_rank", "8", "--output_dir", str(tmp_path / "zs")])
    assert results and {r.seed for r in results} == {3} and {r.task for r in results} == {"packaged/karate"}
    assert (tmp_path / "zs" / "planetoid.md").is_file()
    capsys.readouterr()


def test_tokenizer_recipe_runs_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = load_recipe("train_tokenizer")
    assert recipe.main(["--config", str(REPO / "configs/tokenizers/eulerian_tiny.yaml"),
                        "--datasets", "[packaged/karate, packaged/florentine]", "--merges", "null", "--cache_dir", "null",
                        "--output_dir", str(tmp_path / "tok")]) == 0
    out = capsys.readouterr().out
    assert "| packaged/karate " in out and "merges: none" in out and "not written (cache_dir unset)" in out
    assert (tmp_path / "tok" / "tokenizer_config.json").is_file()


# ---------------------------------------------------------------------------------------------
# bad input: one named message
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def zero_shot_config(tmp_path: Path) -> Path:
    path = tmp_path / "zs.yaml"
    path.write_text("datasets: [packaged/karate]\nseeds: [0]\n")
    return path


def test_unknown_key_in_the_file_names_the_file_and_the_close_match(zero_shot_config: Path) -> None:
    zero_shot_config.write_text(zero_shot_config.read_text() + "svd_rnak: 8\n")
    with pytest.raises(UnknownConfigKeyError, match=rf"^{zero_shot_config}: unknown config key 'svd_rnak'; did you mean 'svd_rank'\?"):
        load_recipe("run_zero_shot").parser().parse_config(["--config", str(zero_shot_config)])


def test_unknown_key_on_the_command_line_blames_the_command_line(zero_shot_config: Path) -> None:
    with pytest.raises(UnknownConfigKeyError, match=r"^command line: unknown config key 'svd_rnak'; did you mean 'svd_rank'\?") as info:
        load_recipe("run_zero_shot").parser().parse_config(["--config", str(zero_shot_config), "--svd_rnak", "8"])
    assert str(zero_shot_config) not in str(info.value)
    assert "(`python finetune/run_zero_shot.py --help` lists every key)" in str(info.value)
    with pytest.raises(UnknownConfigKeyError, match="command line: unknown config key 'max_step'; did you mean 'max_steps'"):
        load_recipe("run_pretraining").parser().parse_config(
            ["--config", str(REPO / "configs/pretrain/tiny.yaml"), "--max_step", "2"])  # no prefix guessing


def test_malformed_yaml_names_the_file_and_line(zero_shot_config: Path) -> None:
    zero_shot_config.write_text("datasets: [packaged/karate\nseeds: [0]\n")
    with pytest.raises(ConfigError, match=rf"^{zero_shot_config}, line 2, column \d+: malformed YAML: .*line 1"):
        load_recipe("run_zero_shot").parser().parse_config(["--config", str(zero_shot_config)])


def test_wrong_type_names_the_key_and_its_source(zero_shot_config: Path) -> None:
    recipe = load_recipe("run_zero_shot")
    with pytest.raises(ConfigError, match=r"^command line: config key 'svd_rank' must be an integer, got 'big'"):
        recipe.parser().parse_config(["--config", str(zero_shot_config), "--svd_rank", "big"])
    zero_shot_config.write_text(zero_shot_config.read_text() + "batch_size: 1.5\n")
    with pytest.raises(ConfigError, match=rf"^{zero_shot_config}: config key 'batch_size' must be an integer, got 1.5"):
        recipe.parser().parse_config(["--config", str(zero_shot_config)])


def test_a_recipe_prints_a_gfm_error_as_one_message_and_exits_2(zero_shot_config: Path) -> None:
    zero_shot_config.write_text(zero_shot_config.read_text() + "sed: 1\n")
    finished = subprocess.run([sys.executable, str(REPO / RECIPES["run_zero_shot"]), "--config", str(zero_shot_config)],
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 2
    assert finished.stderr.strip() == (f"run_zero_shot.py: error: UnknownConfigKeyError: {zero_shot_config}: unknown "
                                       "config key 'sed'; did you mean 'seeds'? (`python finetune/run_zero_shot.py --help` lists every key)")
    assert finished.stdout == ""
