"""The recipe ``tokenizers/train_quantizer.py`` runs end to end on packaged data (no data folder)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gfm.testing.paths import source_root

ROOT = source_root()


@pytest.mark.slow
def test_tiny_recipe_prints_every_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GFM_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tokenizers" / "train_quantizer.py"),
            "--config",
            str(ROOT / "configs" / "tokenizers" / "quantized_tiny.yaml"),
            "--output-dir",
            str(tmp_path / "tok"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for title in (
        "Codebook usage on the training corpus",
        "Linear probes",
        "Unseen feature width",
        "Save / reload / re-encode",
        "Wall time",
    ):
        assert title in result.stdout
    assert "| yes             |" in result.stdout.split("Save / reload / re-encode")[1]
    assert (tmp_path / "tok" / "tokenizer_config.json").is_file()
    assert not (ROOT / "tokenizers" / "__init__.py").exists()
