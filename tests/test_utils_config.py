"""YAML -> dataclass configs: overrides, type conversion, named errors (shared by the recipes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gfm.pipelines.zero_shot import ZeroShotConfigError, load_zero_shot_config
from gfm.utils.config import load_yaml, load_yaml_dataclass


class ExampleConfigError(ValueError):
    pass


@dataclass
class ExampleConfig:
    dataset: str
    seeds: list[int] = field(default_factory=lambda: [0])
    learning_rate: float = 1e-3


def test_values_overrides_and_types(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: tu/PROTEINS\nseeds: [0, 1]\nlearning_rate: 3e-4\n")
    config = load_yaml_dataclass(path, ExampleConfig, {"seeds": [5]}, ExampleConfigError)
    assert config == ExampleConfig(dataset="tu/PROTEINS", seeds=[5], learning_rate=3e-4)
    assert isinstance(config.learning_rate, float)


def test_unknown_key_and_non_mapping_are_named(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: x\nlearnig_rate: 0.1\n")
    with pytest.raises(ExampleConfigError, match=r"c.yaml: unknown config key 'learnig_rate'; did you mean 'learning_rate'\?"):
        load_yaml_dataclass(path, ExampleConfig, error_class=ExampleConfigError)
    path.write_text("- a\n- b\n")
    with pytest.raises(ExampleConfigError, match="c.yaml: an example config is a YAML mapping of keys to values"):
        load_yaml_dataclass(path, ExampleConfig, error_class=ExampleConfigError, what="an example config")


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
    with pytest.raises(ExampleConfigError, match="config key 'learning_rate' must be a number, got 'fast'"):
        load_yaml_dataclass(path, ExampleConfig, error_class=ExampleConfigError)


def test_recipe_parser_lists_every_key_and_keeps_overrides() -> None:
    from gfm.utils.config import config_argument_parser

    parser = config_argument_parser(ExampleConfig, "example recipe", "YAML config")
    assert "learning_rate:" in parser.format_help() and "seeds:" in parser.format_help()
    args, rest = parser.parse_known_args(["--config", "c.yaml", "--seeds", "[1]"])
    assert args.config == "c.yaml" and rest == ["--seeds", "[1]"]


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
