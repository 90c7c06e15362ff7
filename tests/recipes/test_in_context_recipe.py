"""pretrain/run_fewshot_pretraining.py: --help lists every key, the shipped YAML loads, overrides take effect,
and a corpus naming an evaluation graph is refused through the command line."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest

from gfm.data.corpus import EvaluationGraphLeakError
from gfm.testing.paths import source_root
from gfm.training.episodes import FewshotPretrainConfig

REPO = source_root()


def recipe():
    name = "recipe_run_fewshot_pretraining"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "pretrain/run_fewshot_pretraining.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_help_lists_every_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        recipe().main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(FewshotPretrainConfig):
        assert f"--{f.name} " in text


def test_shipped_config_loads_and_overrides_take_effect():
    (config,), _ = recipe().parser().parse_config(["--config", str(REPO / "configs/fewshot/pretrain.yaml"),
                                                   "--max_steps", "1234"])
    assert config.max_steps == 1234 and config.validation_datasets == ["planetoid/cora"]


def test_an_evaluation_graph_on_the_command_line_is_refused(tmp_path):
    with pytest.raises(EvaluationGraphLeakError, match="'hetero/texas' reads 'hetero/texas'"):
        recipe().main(["--config", str(REPO / "configs/fewshot/pretrain.yaml"), "--datasets",
                       "[planetoid/pubmed, hetero/texas]", "--output_dir", str(tmp_path / "run")])
