"""The recipe ``pretrain/run_pretraining.py``: command line, overrides, printed summary."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from gfm.testing.paths import source_root
from gfm.testing.training import base_config, reset_accelerate_state, write_config, write_run_inputs
from gfm.training import ConfigError, UnknownConfigKeyError
from gfm.utils.config import parse_overrides

RECIPE = source_root() / "pretrain" / "run_pretraining.py"


@pytest.fixture(scope="module")
def recipe() -> dict:
    return runpy.run_path(str(RECIPE), run_name="recipe")


def test_help_lists_every_option_with_its_documentation(recipe: dict, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        recipe["main"](["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps help text
    for key in ("mixture_weights", "global_batch_rows", "deepspeed_config", "resume_from_checkpoint", "objectives",
                "stop_after_steps", "zero3_init", "local_rank"):
        assert f"--{key} " in text
    assert "Sampling weight per domain" in text and "default: 'cosine'" in text
    assert "PretrainingArguments: The loop" in text


def test_unquoted_no_in_a_config_file_and_yes_for_a_flag(tmp_path: Path) -> None:
    from gfm.training import load_config

    inputs = write_run_inputs(tmp_path)
    config = write_config(tmp_path / "c.yaml", base_config(tmp_path, *inputs))
    text = config.read_text()
    config.write_text(text + "\nmixed_precision: no\n" if "mixed_precision" not in text else text)
    assert load_config(config).training.mixed_precision == "no"
    with pytest.raises(ConfigError, match="'overwrite_output_dir' must be true or false, got 'yes'"):
        load_config(config, {"overwrite_output_dir": parse_overrides(["--x", "yes"])["x"]})


def test_recipe_trains_prints_summary_and_accepts_local_rank(recipe: dict, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    inputs = write_run_inputs(tmp_path)
    config = write_config(tmp_path / "c.yaml", base_config(tmp_path, *inputs))
    reset_accelerate_state()
    summary = recipe["main"](["--config", str(config), "--local_rank", "0", "--max_steps", "4"])
    reset_accelerate_state()
    assert summary["steps"] == 4
    out = capsys.readouterr().out
    assert "exported model + tokenizer" in out
    assert re.search(r"^\| eval +\| next_token/alpha +\|", out, re.M)
    with pytest.raises(UnknownConfigKeyError, match="unknown config key 'max_stepz'; did you mean 'max_steps'"):
        recipe["main"](["--config", str(config), "--max_stepz", "4"])
