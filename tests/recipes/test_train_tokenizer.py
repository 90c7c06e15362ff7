"""The recipe ``tokenizers/train_tokenizer.py`` on packaged molecules: table, saved tokenizer, declared values, bad keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gfm.data.molecules import molecules_to_graphs
from gfm.testing.paths import source_root
from gfm.tokenization import AutoGraphTokenizer

RECIPE = source_root() / "tokenizers" / "train_tokenizer.py"


def _config(tmp_path: Path, **extra: object) -> Path:
    lines = [
        "datasets: [packaged/nci5k]",
        "max_graphs_per_dataset: 120",
        f"output_dir: {tmp_path / 'tokenizer'}",
        "cache_dir: null",
        "merges: bpe",
        "num_merges: 40",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    path = tmp_path / "tokenizer.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(config: Path) -> subprocess.CompletedProcess:
    # a subprocess, as a user runs it: the recipe's dataclass lives in the script (HfArgumentParser
    # resolves its annotations through the script's module, which runpy would not register)
    return subprocess.run([sys.executable, str(RECIPE), "--config", str(config)], capture_output=True, text=True,
                          timeout=600)


def test_recipe_trains_saves_and_declares_every_molecule_value(tmp_path: Path) -> None:
    finished = _run(_config(tmp_path))
    assert finished.returncode == 0, finished.stderr[-3000:]
    out = finished.stdout
    assert "| packaged/nci5k | 120" in out and "compression" in out
    tokenizer = AutoGraphTokenizer.from_pretrained(tmp_path / "tokenizer")
    (selenium,), *_ = molecules_to_graphs(["C[Se]C[N+](C)(C)C"])
    tokens = tokenizer.encode(selenium)  # unknown="error" by default: would raise on an unseen value
    assert tokenizer.unk_token_id not in tokens.input_ids.tolist()

    (tmp_path / "narrow").mkdir()
    assert _run(_config(tmp_path / "narrow", all_molecule_values="false")).returncode == 0
    narrow = AutoGraphTokenizer.from_pretrained(tmp_path / "narrow" / "tokenizer")
    assert narrow.vocabulary.tokens != tokenizer.vocabulary.tokens
    assert len(narrow.vocabulary) < len(tokenizer.vocabulary)


def test_recipe_names_an_unknown_key(tmp_path: Path) -> None:
    finished = _run(_config(tmp_path, num_mergez=5))
    assert finished.returncode != 0
    assert "unknown config key 'num_mergez'; did you mean 'num_merges'" in finished.stderr
