"""Stand-ins for the training tests: a tiny model, a tiny tokenizer and hand-built corpora.

The loop machinery (objectives, batching, resume, distribution) is tested against these so that
its tests stay fast and independent of the real model; the real ``GFMForPretraining`` and the
real tokenizers are exercised by the ``data``-marked tests and the recipe runs.

Importing this module registers ``gfm-test-tiny`` with transformers' Auto classes and
``TinyGraphTokenizer`` with gfm's tokenizer registry (subprocess drivers import it first, see
:func:`driver_command`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from gfm.testing.paths import source_root
from gfm.tokenization.base import GraphTokenizer, content_hash, read_tokenizer_config
from gfm.tokenization.tokenized_graph import TokenizedGraph
from gfm.training.tracking import read_metrics

PYTHON = sys.executable
NUM_SPECIAL = 7  # <pad> <bos> <eos> <mask> <sep> <jump> <unk>


class TinyConfig(PretrainedConfig):
    model_type = "gfm-test-tiny"

    def __init__(self, vocab_size: int = 32, hidden_size: int = 16, dropout: float = 0.1, **kwargs: Any) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.dropout = dropout
        super().__init__(**kwargs)


class TinyModelForPretraining(PreTrainedModel):
    """Embedding + one neighbour-mixing layer + LM head; never mixes positions of different samples.

    Causal: position ``t`` sees ``t`` and ``t - 1`` of its own sample; bidirectional also ``t + 1``.
    Every position's output depends only on its own sample, so packing never changes it.
    """

    config_class = TinyConfig
    base_model_prefix = "tiny"
    supports_gradient_checkpointing = True
    _no_split_modules: list[str] = []

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.previous = nn.Linear(config.hidden_size, config.hidden_size)
        self.following = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def forward(self, input_ids, sequence_ids, causal: bool = False, labels=None, **kwargs):  # noqa: ANN001
        hidden = self.embed(input_ids)
        same_prev = (sequence_ids[:, 1:] == sequence_ids[:, :-1]).unsqueeze(-1)
        prev = torch.zeros_like(hidden)
        prev[:, 1:] = torch.where(same_prev, hidden[:, :-1], torch.zeros_like(hidden[:, :-1]))
        mixed = hidden + self.previous(prev)
        if not causal:
            following = torch.zeros_like(hidden)
            following[:, :-1] = torch.where(same_prev, hidden[:, 1:], torch.zeros_like(hidden[:, 1:]))
            mixed = mixed + self.following(following)
        logits = self.head(self.dropout(torch.tanh(self.norm(mixed))))
        return MaskedLMOutput(logits=logits)


AutoConfig.register("gfm-test-tiny", TinyConfig, exist_ok=True)
AutoModel.register(TinyConfig, TinyModelForPretraining, exist_ok=True)
AutoModelForPreTraining.register(TinyConfig, TinyModelForPretraining, exist_ok=True)


class TinyGraphTokenizer(GraphTokenizer):
    """A fixed vocabulary: 7 special tokens, then ``num_symbols`` symbols (enough for hand-built corpora)."""

    def __init__(self, num_symbols: int = 25) -> None:
        self.num_symbols = num_symbols
        self.bos_token_id, self.eos_token_id, self.mask_token_id = 1, 2, 3
        self.sep_token_id, self.jump_token_id, self.unk_token_id = 4, 5, 6

    @property
    def vocab_size(self) -> int:
        return NUM_SPECIAL + self.num_symbols

    @property
    def pad_token_id(self) -> int:
        return 0

    @property
    def content_hash(self) -> str:
        return content_hash({"tiny": self.num_symbols})

    def encode(self, graph: Any, **kwargs: Any) -> TokenizedGraph:
        nodes = int(graph.num_nodes)
        ids = [self.bos_token_id] + [NUM_SPECIAL + n % self.num_symbols for n in range(nodes)] + [self.eos_token_id]
        return TokenizedGraph(input_ids=ids, node_index=[-1, *range(nodes), -1], edge_index=torch.zeros(2, 0),
                              num_nodes=nodes, domain=getattr(graph, "domain", None))

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._write_tokenizer_config(directory, {"num_symbols": self.num_symbols})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> TinyGraphTokenizer:
        return cls(num_symbols=read_tokenizer_config(directory)["num_symbols"])


def make_graph(rng: torch.Generator, domain: str, style: int, num_symbols: int = 25, quantized: bool = False) -> TokenizedGraph:
    """A learnable sequence: nodes revisited in a walk, domain-specific symbol pattern.

    ``style`` picks the pattern (step of the progression), so each domain has its own statistics.
    """
    num_nodes = int(torch.randint(3, 9, (1,), generator=rng))
    walk_length = int(torch.randint(num_nodes, 2 * num_nodes + 2, (1,), generator=rng))
    walk = [int(torch.randint(0, num_nodes, (1,), generator=rng))]
    for _ in range(walk_length - 1):
        walk.append((walk[-1] + 1 + int(torch.randint(0, 2, (1,), generator=rng))) % num_nodes)
    offset = int(torch.randint(0, num_symbols, (1,), generator=rng))
    ids, nodes, levels = [1], [-1], [-1]
    for node in walk:
        symbol = NUM_SPECIAL + (offset + style * node) % num_symbols
        if quantized:
            for level in range(2):
                ids.append(NUM_SPECIAL + (symbol + 7 * level) % num_symbols)
                nodes.append(node)
                levels.append(level)
        else:
            ids.append(symbol)
            nodes.append(node)
            levels.append(-1)
            if node % 3 == 0:  # a node-less "edge attribute" token
                ids.append(NUM_SPECIAL + (symbol + 1) % num_symbols)
                nodes.append(-1)
                levels.append(-1)
    ids.append(2)
    nodes.append(-1)
    levels.append(-1)
    length = len(ids)
    edges = torch.stack([torch.arange(1, length - 2), torch.arange(2, length - 1)]) if length > 3 else torch.zeros(2, 0)
    return TokenizedGraph(
        input_ids=ids, node_index=nodes, edge_index=edges, num_nodes=num_nodes, domain=domain,
        level_ids=levels if quantized else None,
    )


def write_corpus(directory: Path, graphs_per_domain: int = 60, domains: tuple[str, ...] = ("alpha", "beta", "gamma"),
                 seed: int = 0, quantized: bool = False, tokenizer_hash: str | None = None) -> Path:
    """Save a hand-built corpus as the tokenizer recipe does (Arrow rows of ``to_dict()``)."""
    import datasets

    rng = torch.Generator().manual_seed(seed)
    rows = []
    for style, domain in enumerate(domains, start=1):
        for _ in range(graphs_per_domain):
            rows.append(make_graph(rng, domain, style, quantized=quantized).to_dict())
    dataset = datasets.Dataset.from_list(rows)
    dataset.save_to_disk(str(directory))
    if tokenizer_hash is not None:
        (directory / "gfm_corpus.json").write_text(json.dumps({"tokenizer_hash": tokenizer_hash}))
    return directory


def write_run_inputs(root: Path, quantized: bool = False, graphs_per_domain: int = 60) -> tuple[Path, Path]:
    """Tokenizer directory + corpus directory under ``root``."""
    tokenizer = TinyGraphTokenizer()
    tokenizer_dir = tokenizer.save_pretrained(root / "tokenizer")
    corpus_dir = write_corpus(root / "corpus", quantized=quantized, graphs_per_domain=graphs_per_domain,
                              tokenizer_hash=tokenizer.content_hash)
    return tokenizer_dir, corpus_dir


def base_config(root: Path, tokenizer_dir: Path, corpus_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A small run config (as a dict of YAML keys) on the stand-ins."""
    values = {
        "model_type": "gfm-test-tiny",
        "model_config": {"hidden_size": 16},
        "tokenizer_name_or_path": str(tokenizer_dir),
        "tokenized_corpus": str(corpus_dir),
        "max_length": 48,
        "eval_fraction": 0.1,
        "output_dir": str(root / "run"),
        "micro_batch_rows": 2,
        "global_batch_rows": 4,
        "max_steps": 6,
        "learning_rate": 0.01,
        "warmup_steps": 1,
        "logging_steps": 1,
        "report_to": ["csv"],
        "plot": False,
        "progress_bar": False,
        "torch_num_threads": 1,
        "seed": 3,
    }
    values.update(overrides)
    return values


def write_config(path: Path, values: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def driver_command(config_path: Path, *extra: str) -> list[str]:
    """``python -c`` that registers the stand-ins, then runs the recipe (as `python pretrain/...` would)."""
    recipe = source_root() / "pretrain" / "run_pretraining.py"
    code = (
        "import sys, runpy; import gfm.testing.training; "
        f"sys.argv = ['run_pretraining.py', '--config', {str(config_path)!r}, *{list(extra)!r}]; "
        f"runpy.run_path({str(recipe)!r}, run_name='__main__')"
    )
    return [PYTHON, "-c", code]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a driver subprocess: one thread, offline, the source tree importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(source_root()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "gfm" / "torch_extensions"))
    env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0"})
    env.update(extra)
    return env


def metric_by_step(run_dir: Path, metric: str = "loss", split: str = "train") -> dict[int, float]:
    """``{step: value}`` of one metric of a finished run, read from ``run_dir/metrics.csv``."""
    return {r["step"]: r["value"] for r in read_metrics(run_dir / "metrics.csv") if r["split"] == split and r["metric"] == metric}


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide singletons so one pytest process can run several trainings."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    PartialState._reset_state()
