"""Pretraining configuration: YAML files parsed into four dataclasses.

A config file is one flat YAML mapping (the keys of :class:`ModelArguments`,
:class:`DataArguments`, :class:`ObjectiveArguments` and :class:`PretrainingArguments` together;
comments group them in the shipped files). It is read by gfm's one config path,
:func:`gfm.utils.config.load_config_dataclasses` (YAML 1.2 scalars, an unknown key named with
its source and closest valid spelling, every value type-checked naming its key). Every option
is documented in its field's ``metadata["help"]``; ``python pretrain/run_pretraining.py --help``
prints them all.

Command-line overrides (``--key value``) are parsed as YAML scalars and merged over the file,
so ``--max_steps 20`` or ``--mixture_weights '{molecules: 2.0, social: 1.0}'`` work.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gfm.utils.config import COMMAND_LINE, ConfigError, check_fields, load_config_dataclasses

__all__ = [
    "ModelArguments",
    "DataArguments",
    "ObjectiveArguments",
    "PretrainingArguments",
    "PretrainConfig",
    "ARGUMENT_CLASSES",
    "load_config",
    "OBJECTIVE_NAMES",
    "MASK_SCHEDULES",
]

OBJECTIVE_NAMES = ("next_token", "masked_token", "masked_code")
MASK_SCHEDULES = ("constant", "uniform", "cosine")
MIXED_PRECISION_CHOICES = ("no", "bf16", "fp16", "auto")
REPORT_CHOICES = ("csv", "tensorboard")


class _Validated:
    """Mixin: type-check and convert every field after construction (naming the key), then cross-field checks.

    The loaders check values before construction too (naming the file or the command line);
    this keeps an instance built directly in code, ``PretrainingArguments(max_steps="ten")``, as
    strict.
    """

    def __post_init__(self) -> None:
        check_fields(self)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (overridden by subclasses)."""


@dataclass
class ModelArguments(_Validated):
    """Which model to train and how it is built."""

    model_type: str = field(
        default="gfm",
        metadata={"help": "Model type registered with transformers' AutoConfig (gfm's is 'gfm'). "
                  "The model class is AutoModelForPreTraining of that type."},
    )
    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "Start from this pretrained checkpoint directory (or hub id) instead of a random "
                  "initialization; model_config must then be empty."},
    )
    model_config: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Keyword arguments of the model config (GFMConfig: hidden_size, num_hidden_layers, "
                  "num_attention_heads, intermediate_size, ...). vocab_size and the special token ids come "
                  "from the tokenizer; giving a different vocab_size is an error."},
    )
    zero3_init: bool = field(
        default=False,
        metadata={"help": "Under DeepSpeed ZeRO-3, build the model already partitioned (deepspeed.zero.Init) so "
                  "it is never whole in one process's memory. Off: built whole, then partitioned, which "
                  "gives the same initial weights as a run without ZeRO-3."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass to save memory."}
    )


@dataclass
class DataArguments(_Validated):
    """Where the tokenized corpus comes from and how it is sampled, bucketed and packed."""

    tokenizer_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "Directory of the trained gfm tokenizer (tokenizer_config.json inside), e.g. the "
                  "output of tokenizers/train_tokenizer.py. Saved beside the exported model."},
    )
    tokenized_corpus: Optional[str] = field(
        default=None,
        metadata={"help": "Directory of the tokenized corpus: an HF datasets Arrow cache of "
                  "TokenizedGraph.to_dict() rows (written by tokenizers/train_tokenizer.py or by gfm on first "
                  "use). When unset, `datasets` are tokenized once into `cache_dir`."},
    )
    datasets: list[str] = field(
        default_factory=list,
        metadata={"help": "gfm.data registry names to tokenize when tokenized_corpus is unset "
                  "(e.g. ['moleculenet/hiv', 'tu/PROTEINS'])."},
    )
    data_dir: Optional[str] = field(
        default=None, metadata={"help": "Real data folder for `datasets` (default: the GFM_DATA_DIR variable)."}
    )
    max_graphs_per_dataset: Optional[int] = field(
        default=None,
        metadata={"help": "Tokenize at most this many graphs of each dataset (seeded choice); unset = all."},
    )
    ego_num_hops: int = field(
        default=2, metadata={"help": "Datasets made of one large graph contribute k-hop ego graphs with this k."}
    )
    ego_max_neighbors: int = field(
        default=8, metadata={"help": "Ego graphs keep at most this many neighbours per node and hop (seeded choice)."}
    )
    max_feature_width: int = field(
        default=32,
        metadata={"help": "Continuous attribute tables wider than this many columns are left out of the Eulerian "
                  "pretraining view (reported in the log and gfm_corpus.json)."},
    )
    cache_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Where gfm writes the tokenized corpus it builds from `datasets` "
                  "(default: <output_dir>/../tokenized_cache)."},
    )
    mixture_weights: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "Sampling weight per domain ({molecules: 2.0, social: 1.0, ...}). Empty: every "
                  "training graph once per epoch. When given, every domain of the corpus must be listed "
                  "(weight 0 leaves it out); a domain the corpus does not have is an error."},
    )
    samples_per_epoch: Optional[int] = field(
        default=None,
        metadata={"help": "Graphs drawn per epoch under mixture_weights (default: the training set size)."},
    )
    max_length: int = field(
        default=512,
        metadata={"help": "Positions per packed row (the token budget T). Several graphs share a row without "
                  "attending to each other; a graph longer than this is an error (never truncated)."},
    )
    drop_long_sequences: bool = field(
        default=False,
        metadata={"help": "Leave graphs longer than max_length out of training (counted in the log) "
                  "instead of stopping with an error."},
    )
    bucket_window: int = field(
        default=32,
        metadata={"help": "Length bucketing: the epoch's draws are cut into windows of this many global batches' "
                  "worth of graphs; each window is packed longest-first into rows, and its rows are dealt at "
                  "random into global batches (leftover rows wait for the next window)."},
    )
    eval_fraction: float = field(
        default=0.05, metadata={"help": "Fraction of each domain's graphs held back for evaluation."}
    )
    eval_max_per_domain: int = field(
        default=128, metadata={"help": "At most this many held-back graphs per domain (keeps evaluation fast)."}
    )
    held_out_corpus: Optional[str] = field(
        default=None,
        metadata={"help": "A second tokenized corpus (same tokenizer) never trained on, evaluated at every eval "
                  "step and logged as split `held_out` (e.g. MOSES's scaffold-split test molecules, "
                  "runs/corpora/moses-test-scaffolds)."},
    )
    held_out_max_graphs: int = field(
        default=2048,
        metadata={"help": "Graphs of held_out_corpus evaluated per domain (a fixed choice seeded by the domain name)."},
    )

    def validate(self) -> None:
        if self.max_length < 2:
            raise ConfigError(f"config key 'max_length' must be at least 2, got {self.max_length}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ConfigError(f"config key 'eval_fraction' must be in [0, 1), got {self.eval_fraction}")
        if self.bucket_window < 1:
            raise ConfigError(f"config key 'bucket_window' must be at least 1, got {self.bucket_window}")
        if self.held_out_max_graphs < 1:
            raise ConfigError(f"config key 'held_out_max_graphs' must be at least 1, got {self.held_out_max_graphs}")
        if self.held_out_corpus is not None and self.tokenized_corpus is not None and (
            Path(self.held_out_corpus).resolve() == Path(self.tokenized_corpus).resolve()
        ):
            raise ConfigError(
                f"config key 'held_out_corpus' ({self.held_out_corpus}) is the training corpus; a held-out loss needs "
                "graphs the run never trains on (e.g. a corpus of moses/test_scaffolds)"
            )
        for domain, weight in self.mixture_weights.items():
            if weight < 0:
                raise ConfigError(f"config key 'mixture_weights': weight of domain {domain!r} is negative ({weight})")
        if self.mixture_weights and not any(w > 0 for w in self.mixture_weights.values()):
            raise ConfigError("config key 'mixture_weights': every weight is 0; give at least one domain a weight")


@dataclass
class ObjectiveArguments(_Validated):
    """What the model learns to predict."""

    objectives: dict[str, float] = field(
        default_factory=lambda: {"next_token": 1.0},
        metadata={"help": "Objective name -> loss weight. Names: next_token (causal, labels shifted inside "
                  "each packed graph), masked_token (whole nodes masked, every occurrence together), "
                  "masked_code (quantized tokens: a node's code tokens masked, predicted per level). Several "
                  "objectives are summed with these weights, each on its own forward pass."},
    )
    mask_schedule: str = field(
        default="cosine",
        metadata={"help": "How each graph's mask ratio is drawn: constant (= mask_ratio_max), uniform "
                  "(min + (max-min)*u) or cosine (min + (max-min)*cos(pi*u/2), MaskGIT-style), u ~ U(0,1).",
                  "choices": MASK_SCHEDULES},
    )
    mask_ratio_min: float = field(default=0.15, metadata={"help": "Smallest mask ratio the schedule gives."})
    mask_ratio_max: float = field(default=0.5, metadata={"help": "Largest mask ratio the schedule gives."})

    def validate(self) -> None:
        if not self.objectives:
            raise ConfigError("config key 'objectives' is empty; name at least one of " + ", ".join(OBJECTIVE_NAMES))
        for name, weight in self.objectives.items():
            if name not in OBJECTIVE_NAMES:
                close = difflib.get_close_matches(name, OBJECTIVE_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"config key 'objectives': unknown objective {name!r}{hint} (known: {list(OBJECTIVE_NAMES)})")
            if weight <= 0:
                raise ConfigError(f"config key 'objectives': weight of {name!r} must be positive, got {weight}")
        if not 0.0 < self.mask_ratio_min <= self.mask_ratio_max <= 1.0:
            raise ConfigError(
                f"mask ratios must satisfy 0 < mask_ratio_min <= mask_ratio_max <= 1, got "
                f"{self.mask_ratio_min} and {self.mask_ratio_max}"
            )


@dataclass
class PretrainingArguments(_Validated):
    """The loop: batch geometry, optimizer, schedule, precision, distribution, checkpoints, logging."""

    output_dir: str = field(
        default="runs/pretrain",
        metadata={"help": "Run folder: checkpoints/, metrics.csv, tensorboard/, plots/, final/ go here."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start afresh even though output_dir holds checkpoints of an earlier run "
                  "(they are deleted). Without it, such a folder is an error unless resuming."},
    )
    resume_from_checkpoint: Optional[str] = field(
        default=None,
        metadata={"help": "'latest' (newest complete checkpoint in output_dir/checkpoints) or a checkpoint "
                  "directory. The checkpoint's run config must match this one."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of initialization, sampling, masking and dropout."})
    world_size: int = field(
        default=1,
        metadata={"help": "Number of processes this run expects. Checked at startup against the processes the "
                  "launcher actually started, so a launcher that silently runs one process is caught."},
    )
    micro_batch_rows: int = field(
        default=4, metadata={"help": "Packed rows of max_length positions per process per forward pass."}
    )
    global_batch_rows: int = field(
        default=16,
        metadata={"help": "Packed rows per optimizer step over all processes. Gradient accumulation steps = "
                  "global_batch_rows / (micro_batch_rows * world_size), which must be a whole number, so "
                  "the same config follows the same trajectory on any number of processes."},
    )
    max_steps: int = field(default=1000, metadata={"help": "Optimizer steps to train."})
    stop_after_steps: Optional[int] = field(
        default=None,
        metadata={"help": "End this process after this many optimizer steps with a checkpoint, although the "
                  "schedule spans max_steps (for time-limited jobs); resume with resume_from_checkpoint: latest."},
    )
    learning_rate: float = field(default=3e-4, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW weight decay (not applied to biases, norms and embeddings)."}
    )
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    lr_scheduler_type: str = field(
        default="cosine",
        metadata={"help": "Schedule from transformers.get_scheduler: linear, cosine, constant_with_warmup, ...",
                  "choices": ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                              "constant_with_warmup", "inverse_sqrt", "cosine_with_min_lr",
                              "warmup_stable_decay")},
    )
    warmup_steps: int = field(default=0, metadata={"help": "Linear warmup steps (overrides warmup_ratio when > 0)."})
    warmup_ratio: float = field(default=0.0, metadata={"help": "Warmup as a fraction of max_steps."})
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Clip the global gradient norm to this value (0 disables clipping)."}
    )
    max_nonfinite_steps: int = field(
        default=1,
        metadata={"help": "Stop with TrainingDivergedError once this many optimizer steps in a row had a NaN or "
                  "infinite loss (1: at the first one). No checkpoint is written while the loss is not finite, "
                  "and non-finite weights are never exported. Raise it only for fp16 runs whose loss scaler "
                  "skips overflowing steps, so the weights stay finite."},
    )
    mixed_precision: str = field(
        default="no",
        metadata={"help": "no, bf16, fp16, or auto (bf16 on a GPU that supports it or on a CPU with native "
                          "bfloat16 matmuls, AVX-512 BF16 / AMX; otherwise no).",
                  "choices": MIXED_PRECISION_CHOICES},
    )
    deepspeed_config: Optional[str] = field(
        default=None,
        metadata={"help": "DeepSpeed JSON (configs/deepspeed/zero{1,2,3}.json, zero2_offload.json) for runs "
                  "started with `python` or the `deepspeed` launcher; under `accelerate launch` the "
                  "accelerate YAML names it instead."},
    )
    logging_steps: int = field(default=10, metadata={"help": "Write metrics every this many optimizer steps."})
    eval_steps: int = field(
        default=0,
        metadata={"help": "Evaluate on the held-back graphs every this many steps (0: only before the first "
                  "and after the last step)."},
    )
    save_steps: int = field(default=0, metadata={"help": "Write a checkpoint every this many steps (0: never)."})
    save_total_limit: int = field(default=2, metadata={"help": "Keep only the newest this many checkpoints."})
    export_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Where the consolidated save_pretrained model + tokenizer + training_summary.json go "
                  "(default: <output_dir>/final)."},
    )
    report_to: list[str] = field(
        default_factory=lambda: ["csv", "tensorboard"],
        metadata={"help": "Metric sinks: csv (metrics.csv), tensorboard (tensorboard/).", "choices": REPORT_CHOICES},
    )
    plot: bool = field(default=True, metadata={"help": "Write PNG loss / learning-rate curves at the end."})
    progress_bar: bool = field(default=True, metadata={"help": "Show a tqdm bar with tokens/s, loss, lr."})
    torch_num_threads: Optional[int] = field(
        default=None, metadata={"help": "torch.set_num_threads per process (unset: torch's default)."}
    )

    def validate(self) -> None:
        for key in ("world_size", "micro_batch_rows", "global_batch_rows", "max_steps", "save_total_limit",
                    "max_nonfinite_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{key}' must be at least 1, got {getattr(self, key)}")
        for key in ("logging_steps", "eval_steps", "save_steps", "warmup_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key '{key}' must be non-negative, got {getattr(self, key)}")
        if self.global_batch_rows % (self.micro_batch_rows * self.world_size):
            raise ConfigError(
                f"global_batch_rows={self.global_batch_rows} is not a multiple of micro_batch_rows * world_size = "
                f"{self.micro_batch_rows} * {self.world_size}; pick sizes that divide so gradient accumulation "
                "is a whole number of micro-batches"
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"config key 'warmup_ratio' must be in [0, 1), got {self.warmup_ratio}")
        if self.learning_rate <= 0:
            raise ConfigError(f"config key 'learning_rate' must be positive, got {self.learning_rate}")

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.global_batch_rows // (self.micro_batch_rows * self.world_size)

    @property
    def num_warmup_steps(self) -> int:
        return self.warmup_steps if self.warmup_steps > 0 else math.ceil(self.warmup_ratio * self.max_steps)


ARGUMENT_CLASSES = (ModelArguments, DataArguments, ObjectiveArguments, PretrainingArguments)

#: how an unknown-key message points at the list of keys.
HELP_HINT = "`python pretrain/run_pretraining.py --help` lists every key"

#: keys that may change between a run and its resumption (paths, logging, cadence, reporting).
RESUMABLE_KEYS = frozenset(
    {
        "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "logging_steps", "eval_steps",
        "save_steps", "save_total_limit", "export_dir", "report_to", "plot", "progress_bar",
        "torch_num_threads", "tokenizer_name_or_path", "tokenized_corpus", "data_dir", "cache_dir",
        "deepspeed_config", "model_name_or_path", "stop_after_steps", "max_nonfinite_steps",
        "held_out_corpus", "held_out_max_graphs",
    }
)


@dataclass
class PretrainConfig:
    """The four argument groups of one pretraining run."""

    model: ModelArguments
    data: DataArguments
    objective: ObjectiveArguments
    training: PretrainingArguments
    source: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """Flat dict of every key (the same layout as the YAML file)."""
        out: dict[str, Any] = {}
        for group in (self.model, self.data, self.objective, self.training):
            out.update(dataclasses.asdict(group))
        return out

    def identity(self) -> dict[str, Any]:
        """The keys that determine the training trajectory (what a resumed run must share).

        Paths and logging cadence are left out (``RESUMABLE_KEYS``); the trainer adds the
        tokenizer's content hash, the corpus fingerprint and the distributed layout.
        """
        return {k: v for k, v in sorted(self.to_dict().items()) if k not in RESUMABLE_KEYS}



def load_config(path: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None) -> PretrainConfig:
    """Read a YAML config (plus command-line overrides) into a :class:`PretrainConfig`.

    The one config path of every recipe (:func:`gfm.utils.config.load_config_dataclasses`) over
    the four argument groups.

    Raises:
        UnknownConfigKeyError: a key no dataclass defines (named with its source and close match).
        ConfigError: malformed YAML, a value of the wrong type or out of range (named).
    """
    model, data, objective, training = load_config_dataclasses(ARGUMENT_CLASSES, path, overrides, help_hint=HELP_HINT)
    source = str(path) if path is not None else COMMAND_LINE
    return PretrainConfig(model=model, data=data, objective=objective, training=training, source=source)
