"""gfm's one config path: YAML -> dataclasses, overrides, type conversion, named errors (shared by the recipes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pytest

from gfm.pipelines.zero_shot import ZeroShotConfigError, load_zero_shot_config
from gfm.utils.config import (
    ConfigArgumentParser,
    ConfigError,
    UnknownConfigKeyError,
    coerce_value,
    load_config_dataclasses,
    load_yaml,
    load_yaml_dataclass,
    parse_overrides,
)
from gfm.utils.errors import GFMError


@dataclass
class ExampleConfig:
    """An example recipe's data options."""

    dataset: str = field(metadata={"help": "registry name"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "one run per seed"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})


@dataclass
class ExampleRunArguments:
    """An example recipe's run options."""

    output_dir: str = field(default="runs/x", metadata={"help": "where 100% of the output goes"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier run"})
    weights: dict[str, float] = field(default_factory=dict, metadata={"help": "weight per domain"})
    precision: str = field(default="no", metadata={"help": "no or bf16", "choices": ("no", "bf16")})
    max_items: Optional[int] = field(default=None, metadata={"help": "cap"})


def test_config_error_is_a_gfm_error_and_a_value_error() -> None:
    assert issubclass(ConfigError, GFMError) and issubclass(ConfigError, ValueError)
    assert issubclass(UnknownConfigKeyError, ConfigError)
    assert ZeroShotConfigError is ConfigError  # one class per meaning; the old name stays importable


def test_values_overrides_and_types(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: tu/PROTEINS\nseeds: [0, 1]\nlearning_rate: 3e-4\n")
    config = load_yaml_dataclass(path, ExampleConfig, {"seeds": [5]})
    assert config == ExampleConfig(dataset="tu/PROTEINS", seeds=[5], learning_rate=3e-4)
    assert isinstance(config.learning_rate, float)


def test_several_dataclasses_from_one_file(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: x\nlearning_rate: '1e-2'\noverwrite: true\nweights: {a: 2}\nmax_items: 3.0\n")
    config, run = load_config_dataclasses((ExampleConfig, ExampleRunArguments), path, {"precision": "bf16"})
    assert config == ExampleConfig(dataset="x", learning_rate=0.01)
    assert run == ExampleRunArguments(overwrite=True, weights={"a": 2.0}, precision="bf16", max_items=3)
    assert isinstance(run.weights["a"], float) and isinstance(run.max_items, int)


def test_unknown_key_names_its_source_and_the_close_match(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: x\nlearnig_rate: 0.1\n")
    with pytest.raises(UnknownConfigKeyError, match=r"c.yaml: unknown config key 'learnig_rate'; did you mean 'learning_rate'\?"):
        load_yaml_dataclass(path, ExampleConfig)
    path.write_text("dataset: x\n")
    with pytest.raises(UnknownConfigKeyError, match=r"^command line: unknown config key 'sedes'; did you mean 'seeds'\?") as info:
        load_yaml_dataclass(path, ExampleConfig, {"sedes": [1]})
    assert "c.yaml" not in str(info.value)  # a command-line typo never blames the file


def test_non_mapping_missing_file_malformed_yaml_and_required_key(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="c.yaml: a config file is a YAML mapping of key: value, got a list"):
        load_yaml_dataclass(path, ExampleConfig)
    with pytest.raises(ConfigError, match=r"config file .*absent.yaml does not exist"):
        load_yaml_dataclass(tmp_path / "absent.yaml", ExampleConfig)
    path.write_text("dataset: x\nseeds: [0, 1\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml, line 3, column \d+: malformed YAML: .*flow sequence"):
        load_yaml_dataclass(path, ExampleConfig)
    path.write_text("seeds: [1]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: config key 'dataset' is required \(registry name\)"):
        load_yaml_dataclass(path, ExampleConfig)


def test_zero_shot_loader_names_unknown_keys(tmp_path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text("datasets: [packaged/karate]\nseed: [0]\n")
    with pytest.raises(ZeroShotConfigError, match="unknown config key 'seed'; did you mean 'seeds'"):
        load_zero_shot_config(path)


def test_exponent_without_dot_is_a_number_and_text_is_refused(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: x\nlearning_rate: 1e-3\n")
    assert load_yaml_dataclass(path, ExampleConfig).learning_rate == 1e-3
    path.write_text("dataset: x\nlearning_rate: fast\n")
    with pytest.raises(ConfigError, match="c.yaml: config key 'learning_rate' must be a number, got 'fast'"):
        load_yaml_dataclass(path, ExampleConfig)
    with pytest.raises(ConfigError, match="command line: config key 'seeds\\[1\\]' must be an integer, got 'b'"):
        load_yaml_dataclass(path, ExampleConfig, {"learning_rate": 1, "seeds": [1, "b"]})


def test_coercion_rules() -> None:
    assert coerce_value("k", "12", int) == 12 and coerce_value("k", 2**60, int) == 2**60
    assert coerce_value("k", None, Optional[int]) is None
    for value, annotation, message in [
        (1.5, int, "must be an integer, got 1.5"), (True, int, "must be an integer, got True"),
        ("yes", bool, "must be true or false, got 'yes'"), (3, str, "must be a string, got 3"),
        (None, int, "must not be empty"), ("x", list[int], "must be a list"), (float("inf"), float, "must be finite"),
    ]:
        with pytest.raises(ConfigError, match=message):
            coerce_value("k", value, annotation)


def test_overrides_are_yaml_scalars() -> None:
    assert parse_overrides(["--max_steps", "20", "--learning-rate=3e-4", "--mixture_weights", "{a: 2, b: 1}",
                            "--report_to", "[csv]"]) == {
        "max_steps": 20, "learning_rate": 3e-4, "mixture_weights": {"a": 2, "b": 1}, "report_to": ["csv"]}
    # YAML 1.2 scalars: "no" stays a word (YAML 1.1 would make it False and the string field refuse it)
    assert parse_overrides(["--mixed_precision", "no", "--overwrite_output_dir", "true"]) == {
        "mixed_precision": "no", "overwrite_output_dir": True}
    with pytest.raises(ConfigError, match="command line: --max_steps needs a value"):
        parse_overrides(["--max_steps"])
    with pytest.raises(ConfigError, match="command line: expected --key value, got 'oops'"):
        parse_overrides(["oops"])
    with pytest.raises(ConfigError, match=r"command line --seeds '\[0, 1', line 1, column \d+: malformed YAML"):
        parse_overrides(["--seeds", "[0, 1"])


def test_argument_parser_lists_every_key_and_reads_overrides(tmp_path) -> None:
    parser = ConfigArgumentParser((ExampleConfig, ExampleRunArguments), prog="example.py", description="example")
    text = parser.format_help()
    for key in ("dataset", "seeds", "learning_rate", "output_dir", "overwrite", "weights", "precision", "max_items"):
        assert f"--{key}" in text
    assert "AdamW learning rate [float, default: 0.001]" in text and "where 100% of the output goes" in text
    assert "ExampleRunArguments" in text and "An example recipe's run options." in text
    path = tmp_path / "c.yaml"
    path.write_text("dataset: x\noutput_dir: runs/a\n")
    (config, run), options = parser.parse_config(
        ["--config", str(path), "--seeds", "[1, 2]", "--overwrite", "--output-dir", "2024", "--weights={a: 1}"])
    assert config.seeds == [1, 2] and run.overwrite is True and run.weights == {"a": 1.0}
    assert run.output_dir == "2024"  # a text key keeps its text even where YAML would read a number
    assert options.config == str(path)
    # a command-line typo is named as such, with its close match; prefixes are not guessed
    with pytest.raises(UnknownConfigKeyError, match="command line: unknown config key 'learning_rat'; did you mean 'learning_rate'"):
        parser.parse_config(["--config", str(path), "--learning_rat", "0.1"])
    with pytest.raises(ConfigError, match="command line: config key 'precision': 'fp8' is not one of"):
        parser.parse_config(["--config", str(path), "--precision", "fp8"])
    with pytest.raises(ConfigError, match="unexpected argument 'stray'"):
        parser.parse_config(["--config", str(path), "stray"])


def test_lazy_exports_load_on_access_and_name_unknown_attributes() -> None:
    import gfm.data
    import gfm.evaluation

    assert gfm.data.load.__module__ == "gfm.data.registry" and "load" in dir(gfm.data)
    assert callable(gfm.evaluation.roc_auc)
    with pytest.raises(AttributeError, match="module 'gfm.evaluation' has no attribute 'nope'"):
        gfm.evaluation.nope  # noqa: B018


def test_yaml_loader_reads_yaml_1_2_booleans_and_floats() -> None:
    assert load_yaml("a: no\nb: yes\nc: off\nd: true\ne: FALSE\nf: 3e-4\ng: -1E5\nh: 1.5\ni: 12\nj: 'true'") == {
        "a": "no", "b": "yes", "c": "off", "d": True, "e": False, "f": 3e-4, "g": -1e5, "h": 1.5, "i": 12, "j": "true"
    }
    assert load_yaml("") is None
