"""The pretraining loop: accelerate (+ DeepSpeed ZeRO 1/2/3) around a gfm model.

Read :meth:`Pretrainer.run` top to bottom; it is the whole story:

0. the run folder: ``output_dir`` / ``export_dir`` must be writable directories (checked before
   anything is loaded), and the main process holds ``<output_dir>/run.lock`` for the whole run
   (:mod:`gfm.training.run_lock`), so a second run in the same folder fails at once.
1. ``setup``: the accelerator (DeepSpeed plugin if asked, gloo on CPU) and a check that the
   processes actually running are the ones the config promised; the tokenizer, the corpus
   and the model, each checked against the others; the optimizer and schedule; the resume
   point. Every bad input fails here, before a single step.
2. ``train``: for each global batch (a pure function of ``(epoch, index)``), every process
   builds its ``gradient_accumulation_steps`` micro-batches, the objectives' labels, and the
   global number of targets per objective (one all-reduce), so that each micro-batch's loss
   is scaled to make the step's gradient the gradient of the *global* token-mean loss,
   independent of how graphs were spread over processes and micro-batches.
   A step whose loss is not finite stops the run (:class:`TrainingDivergedError`, after
   ``max_nonfinite_steps`` such steps in a row) and is never checkpointed.
3. periodic evaluation (per-domain loss on held-back graphs), metrics, atomic checkpoints.
4. ``export``: consolidated ``save_pretrained`` weights (gathered from ZeRO-3 shards), checked
   to be finite, with ``weights_manifest.json`` (SHA-256), the tokenizer beside them,
   ``training_summary.json``, PNG curves.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from gfm.utils.extensions import release_stale_build_locks
from gfm.utils.io import atomic_directory, atomic_write_json

from .checkpointing import (
    check_resume_identity,
    latest_verified_checkpoint,
    list_checkpoints,
    restore_rng_state,
    save_training_state,
    verify_checkpoint,
)
from .config import PretrainConfig
from .data import BatchPlan, TokenizedCorpus, build_micro_batch, eval_micro_batches
from .errors import (
    CheckpointError,
    ConfigError,
    NoUsableCheckpointError,
    OutputDirError,
    OutputDirInUseError,
    TrainingDivergedError,
    UnknownConfigKeyError,
    VocabularyMismatchError,
    WorldSizeError,
)
from .objectives import (
    ObjectiveBatch,
    build_objective_batches,
    code_cross_entropy,
    level_token_ranges,
    sample_key,
    token_cross_entropy,
)
from .run_lock import RunLock
from .tracking import MetricsWriter, plot_metrics

__all__ = ["Pretrainer", "run_pretraining", "special_token_ids"]

logger = logging.getLogger(__name__)

SPECIAL_TOKEN_NAMES = ("pad", "bos", "eos", "mask", "sep", "jump", "unk", "cls")
EVAL_EPOCH = -1  # key space of the held-back graphs' masks (fixed for the whole run)

#: ``factory(config, tokenizer, corpus_model_settings) -> model``; the settings are model-config
#: values the corpus implies (``num_code_levels``, ``node_feature_dim``).
ModelFactory = Callable[[PretrainConfig, Any, Mapping[str, Any]], torch.nn.Module]


def load_tokenizer_classes() -> None:
    """Import gfm's tokenizer modules so ``AutoGraphTokenizer`` knows their classes."""
    import importlib

    for module in ("gfm.tokenization.eulerian", "gfm.tokenization.quantized"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a tokenizer kind that is not installed
            logger.debug("tokenizer module %s not available: %s", module, err)


def special_token_ids(tokenizer: Any) -> list[int]:
    """Ids that masking never touches: ``<pad> <bos> <eos> <mask> <sep> <jump> <unk>`` and the like."""
    names = set(SPECIAL_TOKEN_NAMES) | {n[: -len("_token_id")] for n in dir(type(tokenizer)) if n.endswith("_token_id")}
    # only integer attributes: ``QuantizedTokenizer.code_token_id`` is a method, not a special id
    ids = {getattr(tokenizer, f"{name}_token_id", None) for name in names}
    ids.update(getattr(tokenizer, "all_special_ids", None) or [])
    return sorted(int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool))


@dataclass
class MicroBatch:
    """One process's share of a global batch for one forward/backward."""

    rows: list[int]
    sample_domains: torch.Tensor  # [N] domain id per graph
    objective_batches: list[ObjectiveBatch]
    num_tokens: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resolve_mixed_precision(value: str) -> str:
    """``"auto"``: bf16 on a GPU that supports it, or on a CPU run whose CPU multiplies bfloat16
    natively (AVX-512 BF16 / AMX: bf16 matmuls ~2x faster than float32); otherwise ``"no"``."""
    if value != "auto":
        return value
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    from gfm.utils.hardware import cpu_bf16_instructions

    return "bf16" if cpu_bf16_instructions() else "no"


class Pretrainer:
    """Pretrain a gfm model on a tokenized multi-domain corpus (see module docstring).

    Args:
        config: the parsed run configuration.
        model_factory: builds the model from ``(config, tokenizer)``; default
            ``AutoModelForPreTraining.from_config`` of ``model_type`` (or ``from_pretrained`` of
            ``model_name_or_path``).
    """

    def __init__(self, config: PretrainConfig, model_factory: ModelFactory | None = None) -> None:
        self.config = config
        self.model_factory = model_factory or build_model
        self.output_dir = Path(config.training.output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"

    # -----------------------------------------------------------------------------------------
    # 1. setup
    # -----------------------------------------------------------------------------------------
    def setup_accelerator(self) -> None:
        """Create the accelerator and check the world size the launcher really gave us."""
        from accelerate import Accelerator, DeepSpeedPlugin
        from accelerate.utils import InitProcessGroupKwargs

        training = self.config.training
        if training.torch_num_threads:
            torch.set_num_threads(training.torch_num_threads)
        ds_file = training.deepspeed_config
        launched_with_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        if launched_with_deepspeed:
            env_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
            if not env_file:
                raise ConfigError(
                    "accelerate launch selected DeepSpeed without a deepspeed_config_file; name one of "
                    "configs/deepspeed/*.json in the accelerate YAML (deepspeed_config: deepspeed_config_file)"
                )
            if ds_file and Path(ds_file).resolve() != Path(env_file).resolve():
                raise ConfigError(
                    f"deepspeed_config={ds_file} in the run config differs from {env_file} in the accelerate "
                    "config; name the DeepSpeed JSON in one place only"
                )
            ds_file = env_file
        plugin = None
        self.mixed_precision = _resolve_mixed_precision(training.mixed_precision)
        if ds_file:
            if os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes"):
                raise ConfigError(
                    "ACCELERATE_USE_CPU is set together with a DeepSpeed config: accelerate would silently run "
                    "without DeepSpeed. Unset it (use_cpu: false in the accelerate YAML); gloo is chosen on CPU"
                )
            plugin = DeepSpeedPlugin(hf_ds_config=self._deepspeed_config(Path(ds_file)))
            release_stale_build_locks()  # else a build killed earlier makes deepspeed.initialize wait forever
            for key, default in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
                os.environ.setdefault(key, default)  # a plain `python` run: no MPI discovery
            os.environ.setdefault("MASTER_PORT", str(_free_port()))
        # DeepSpeed on CPU needs gloo named explicitly (else a batch-size assertion fails); passing a
        # backend to a non-distributed run makes accelerate look for a process group that is not there.
        handlers = [InitProcessGroupKwargs(backend="gloo")] if plugin is not None and not torch.cuda.is_available() else []
        self.accelerator = Accelerator(
            gradient_accumulation_steps=training.gradient_accumulation_steps,
            mixed_precision=self.mixed_precision,
            deepspeed_plugin=plugin,
            kwargs_handlers=handlers,
            step_scheduler_with_optimizer=False,  # else accelerate steps the schedule once per process
            cpu=plugin is None and not torch.cuda.is_available(),
        )
        accelerator = self.accelerator
        self.uses_deepspeed = accelerator.distributed_type.name == "DEEPSPEED"
        if plugin is not None and not self.uses_deepspeed:
            raise ConfigError(
                f"a DeepSpeed config ({ds_file}) was given but accelerate runs as {accelerator.distributed_type}; "
                "DeepSpeed was silently disabled (ACCELERATE_USE_CPU?)"
            )
        self.zero_stage = plugin.zero_stage if self.uses_deepspeed else None
        self.world_size = accelerator.num_processes
        self.rank = accelerator.process_index
        self.is_main_process = accelerator.is_main_process
        launcher_world = os.environ.get("WORLD_SIZE")
        logger.info(
            "process %d of %d (config world_size=%d, launcher WORLD_SIZE=%s, %s%s, mixed precision %s)",
            self.rank, self.world_size, training.world_size, launcher_world, accelerator.distributed_type.name,
            f" ZeRO-{self.zero_stage}" if self.uses_deepspeed else "", self.mixed_precision,
        )
        if launcher_world is not None and int(launcher_world) != self.world_size:
            raise WorldSizeError(
                f"the launcher started WORLD_SIZE={launcher_world} processes but this one runs alone "
                f"({accelerator.distributed_type.name}, {self.world_size} process): they would train unsynchronized "
                "copies. On CPU use an accelerate config with distributed_type MULTI_CPU or DEEPSPEED "
                "(configs/accelerate/)"
            )
        if self.world_size != training.world_size:
            raise WorldSizeError(
                f"the config promises world_size={training.world_size} processes but {self.world_size} are running "
                f"({accelerator.distributed_type.name}). The launcher did not start what was asked (e.g. "
                "`accelerate launch --cpu --num_processes 2` silently runs one process); launch with "
                "configs/accelerate/*.yaml, or set world_size to the number you launch"
            )

    def _deepspeed_config(self, path: Path) -> dict[str, Any]:
        """Load a DeepSpeed JSON and fill its 'auto' batch/clipping/precision values from the run config."""
        if not path.is_file():
            raise ConfigError(f"deepspeed_config {path} does not exist; shipped ones are in configs/deepspeed/")
        ds = json.loads(path.read_text())
        training = self.config.training
        wanted = {
            "train_micro_batch_size_per_gpu": training.micro_batch_rows,
            "gradient_accumulation_steps": training.gradient_accumulation_steps,
            "gradient_clipping": training.max_grad_norm,
        }
        for key, value in wanted.items():
            current = ds.get(key, "auto")
            if current != "auto" and current != value:
                raise ConfigError(
                    f"{path}: {key}={current} contradicts the run config ({value}); set it to \"auto\" so gfm fills it"
                )
            ds[key] = value
        if "train_batch_size" in ds and ds["train_batch_size"] != "auto":
            raise ConfigError(f"{path}: set train_batch_size to \"auto\" (gfm derives it from global_batch_rows)")
        ds.pop("train_batch_size", None)
        for precision in ("bf16", "fp16"):
            section = ds.setdefault(precision, {})
            if section.get("enabled", "auto") == "auto":
                section["enabled"] = self.mixed_precision == precision
        if "optimizer" in ds or "scheduler" in ds:
            raise ConfigError(
                f"{path}: remove 'optimizer'/'scheduler'; gfm passes torch AdamW and the transformers schedule "
                "(learning_rate, lr_scheduler_type, warmup_* in the run config)"
            )
        zero = ds.setdefault("zero_optimization", {})
        if zero.get("stage") == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = True  # export gathers full weights
        return ds

    def setup_data(self) -> None:
        """Tokenizer, corpus (checked against each other), batch plan and held-back batches."""
        from gfm.tokenization.base import AutoGraphTokenizer

        data = self.config.data
        load_tokenizer_classes()
        if data.tokenizer_name_or_path is None:
            raise ConfigError("config key 'tokenizer_name_or_path' is required: the directory of a trained tokenizer")
        self.tokenizer = AutoGraphTokenizer.from_pretrained(data.tokenizer_name_or_path)
        if data.tokenized_corpus is not None:
            corpus_path = Path(data.tokenized_corpus)
        elif data.datasets:
            from .corpus import build_tokenized_corpus

            with self.accelerator.main_process_first():
                corpus_path = build_tokenized_corpus(
                    data.datasets,
                    self.tokenizer,
                    cache_dir=data.cache_dir or (self.output_dir.parent / "tokenized_cache"),
                    data_dir=data.data_dir,
                    max_graphs_per_dataset=data.max_graphs_per_dataset,
                    seed=self.config.training.seed,
                    ego_num_hops=data.ego_num_hops,
                    ego_max_neighbors=data.ego_max_neighbors,
                    max_feature_width=data.max_feature_width,
                )
        else:
            raise ConfigError("set tokenized_corpus (an Arrow cache directory) or datasets (registry names)")
        self.corpus = TokenizedCorpus.load(
            corpus_path, eval_fraction=data.eval_fraction, eval_max_per_domain=data.eval_max_per_domain
        )
        self.corpus.check_vocabulary(self.tokenizer.vocab_size, self.tokenizer.content_hash)
        objectives = self.config.objective.objectives
        if "masked_code" in objectives and not self.corpus.has_level_ids:
            raise ConfigError(
                f"objective masked_code needs quantized tokens but {self.corpus.name} has no level_ids; use a "
                "QuantizedTokenizer corpus or the masked_token objective"
            )
        self.mask_token_id = getattr(self.tokenizer, "mask_token_id", None)
        if any(name != "next_token" for name in objectives) and self.mask_token_id is None:
            raise ConfigError(f"objectives {list(objectives)} need a <mask> token; the tokenizer has none")
        self.special_ids = special_token_ids(self.tokenizer)
        self.domain_names = self.corpus.domain_names
        training = self.config.training
        self.plan = BatchPlan(
            self.corpus,
            row_length=data.max_length,
            global_batch_rows=training.global_batch_rows,
            seed=training.seed,
            mixture_weights=data.mixture_weights,
            samples_per_epoch=data.samples_per_epoch,
            bucket_window=data.bucket_window,
            drop_long_sequences=data.drop_long_sequences,
        )
        self.eval_batches = eval_micro_batches(self.corpus, data.max_length, training.micro_batch_rows)
        self.held_out_corpus: TokenizedCorpus | None = None
        self.held_out_batches: list[list[int]] = []
        if data.held_out_corpus is not None:
            # every row is a candidate; the first held_out_max_graphs of a seeded order per domain are evaluated
            self.held_out_corpus = TokenizedCorpus.load(
                data.held_out_corpus, eval_fraction=1.0, eval_max_per_domain=data.held_out_max_graphs
            )
            self.held_out_corpus.check_vocabulary(self.tokenizer.vocab_size, self.tokenizer.content_hash)
            self.held_out_batches = eval_micro_batches(self.held_out_corpus, data.max_length, training.micro_batch_rows)
            logger.info("held-out corpus %s: %d graphs evaluated in %d micro-batches", self.held_out_corpus.name,
                        len(self.held_out_corpus.eval_rows), len(self.held_out_batches))
        self.num_levels = self._count_levels() if self.corpus.has_level_ids else 0
        self.level_ranges = level_token_ranges(self.tokenizer, self.num_levels) if "masked_code" in objectives else None
        # model inputs the corpus implies (the model config must agree)
        self.corpus_model_settings = {"num_code_levels": self.num_levels,
                                      "node_feature_dim": self.corpus.node_feature_width}
        if self.accelerator.is_main_process:
            for domain, counts in self.corpus.domain_summary().items():
                logger.info("domain %-18s %7d train graphs %10d tokens %5d held back", domain,
                            counts["train_graphs"], counts["train_tokens"], counts["eval_graphs"])

    def _count_levels(self) -> int:
        import pyarrow.compute as pc

        table = self.corpus.dataset.data.table
        maximum = pc.max(pc.list_flatten(table.column("level_ids"))).as_py()
        return int(maximum) + 1 if maximum is not None else 0

    def run_identity(self) -> dict[str, Any]:
        """What a resumed run must share with the run that wrote the checkpoint."""
        identity = dict(self.config.identity())
        identity["tokenizer_hash"] = self.tokenizer.content_hash
        identity["corpus_fingerprint"] = self.corpus.fingerprint()
        identity["distributed_type"] = self.accelerator.distributed_type.name
        if self.uses_deepspeed:
            identity["zero_stage"] = self.zero_stage
            identity["deepspeed_world_size"] = self.world_size
        return identity

    def find_resume_checkpoint(self) -> Path | None:
        """Resolve ``resume_from_checkpoint`` and check it belongs to this config (before any model work)."""
        training = self.config.training
        existing = list_checkpoints(self.checkpoint_root)
        request = training.resume_from_checkpoint
        if request is None:
            if existing and not training.overwrite_output_dir:
                raise CheckpointError(
                    f"{self.output_dir} already holds checkpoints ({existing[-1].name}); set resume_from_checkpoint: "
                    "latest to continue that run, overwrite_output_dir: true to start over, or another output_dir"
                )
            if existing and self.accelerator.is_main_process:
                shutil.rmtree(self.checkpoint_root)
            self.accelerator.wait_for_everyone()
            return None
        if request == "latest":
            checkpoint, failures = latest_verified_checkpoint(self.checkpoint_root)
            if checkpoint is None and failures:
                listing = "; ".join(f"{path.name}: {reason.removeprefix(f'{path}: ')}" for path, reason in failures)
                raise NoUsableCheckpointError(
                    f"resume_from_checkpoint=latest: {len(failures)} checkpoint(s) in {self.checkpoint_root} and none "
                    f"verifies ({listing}). Nothing was deleted. Restore a checkpoint from a backup, resume from a "
                    "directory with resume_from_checkpoint: <path>, or start over with overwrite_output_dir: true "
                    "(deletes them) or in another output_dir"
                )
            if checkpoint is None:
                logger.info("resume_from_checkpoint=latest: no checkpoint in %s yet; starting fresh", self.checkpoint_root)
                return None
        else:
            checkpoint = Path(request)
            if not checkpoint.is_dir():
                raise CheckpointError(f"resume_from_checkpoint={request}: no such checkpoint directory")
        state = verify_checkpoint(checkpoint)
        check_resume_identity(checkpoint, state, self.run_identity())
        self.resume_state = state
        return checkpoint

    def setup_model(self) -> None:
        """Seeded model, vocabulary checks, gradient checkpointing, AdamW, schedule, accelerate.prepare."""
        from transformers import get_scheduler

        training = self.config.training
        set_seed(training.seed)
        model = self.model_factory(self.config, self.tokenizer, self.corpus_model_settings)
        vocab = self.tokenizer.vocab_size
        embeddings = model.get_input_embeddings().num_embeddings
        if getattr(model.config, "vocab_size", vocab) != vocab or embeddings != vocab:
            raise VocabularyMismatchError(
                f"the model's vocabulary ({model.config.vocab_size} ids, {embeddings} embeddings) does not match the "
                f"tokenizer's ({vocab} ids, {type(self.tokenizer).__name__} {self.tokenizer.content_hash[:12]}); "
                "pretrain with the tokenizer the model was built for, or build the model from this tokenizer"
            )
        recorded_hash = getattr(model.config, "tokenizer_hash", None)
        if recorded_hash and recorded_hash != self.tokenizer.content_hash:
            raise VocabularyMismatchError(
                f"the model was trained with tokenizer {recorded_hash[:12]} but tokenizer_name_or_path holds "
                f"{self.tokenizer.content_hash[:12]}; use the tokenizer saved beside the model"
            )
        model.config.tokenizer_class = type(self.tokenizer).__name__
        model.config.tokenizer_hash = self.tokenizer.content_hash
        if self.config.model.gradient_checkpointing:
            if not getattr(model, "supports_gradient_checkpointing", False):
                raise ConfigError(f"{type(model).__name__} does not support gradient checkpointing")
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # Under ZeRO-3, transformers builds the model inside deepspeed.zero.Init: parameters are
        # already partitioned (shape [0]) and their real shape is in ``ds_shape``.
        def full_shape(parameter: torch.nn.Parameter) -> torch.Size:
            return getattr(parameter, "ds_shape", parameter.shape)

        decay = [p for p in model.parameters() if p.requires_grad and len(full_shape(p)) >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and len(full_shape(p)) < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": training.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=training.learning_rate,
            betas=(training.adam_beta1, training.adam_beta2),
            eps=training.adam_epsilon,
        )
        scheduler = get_scheduler(
            training.lr_scheduler_type,
            optimizer,
            num_warmup_steps=training.num_warmup_steps,
            num_training_steps=training.max_steps,
        )
        self.num_parameters = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)

    # -----------------------------------------------------------------------------------------
    # 2. one micro-batch, one step
    # -----------------------------------------------------------------------------------------
    def micro_batch(self, rows: Sequence[int], epoch: int, corpus: TokenizedCorpus | None = None) -> MicroBatch:
        """Pack ``rows`` of ``corpus`` (default: the training corpus) and build every objective's inputs and
        labels (keys fixed per graph draw)."""
        data, objective = self.config.data, self.config.objective
        batch, sample_domains = build_micro_batch(corpus or self.corpus, rows, data.max_length, self.tokenizer.pad_token_id)
        keys = [sample_key(self.config.training.seed, epoch, row) for row in rows]
        objective_batches = build_objective_batches(
            batch, keys, objective.objectives, self.mask_token_id, self.special_ids,
            objective.mask_schedule, objective.mask_ratio_min, objective.mask_ratio_max,
        )
        device = self.accelerator.device
        for ob in objective_batches:
            ob.inputs = {k: v.to(device) for k, v in ob.inputs.items()}
            ob.labels = ob.labels.to(device)
        return MicroBatch(list(rows), sample_domains.to(device), objective_batches, int(batch["attention_mask"].sum()))

    def forward_losses(self, micro: MicroBatch) -> list[torch.Tensor]:
        """Per-position losses [B, T] of each objective (one forward pass per objective)."""
        losses = []
        for ob in micro.objective_batches:
            outputs = self.model(**ob.inputs, causal=ob.causal)
            if ob.name == "masked_code" and self.level_ranges is not None:
                losses.append(code_cross_entropy(outputs.logits, ob.labels, ob.inputs["level_ids"], self.level_ranges))
            else:
                losses.append(token_cross_entropy(outputs.logits, ob.labels))
        return losses

    def accumulate_stats(self, micro: MicroBatch, losses: Sequence[torch.Tensor], stats: torch.Tensor,
                         level_stats: torch.Tensor | None) -> None:
        """Add per (objective, domain) loss sums and target counts into ``stats`` [O, D, 2]."""
        num_domains = stats.shape[1]
        for o, (ob, loss) in enumerate(zip(micro.objective_batches, losses)):
            target = ob.labels != -100
            sequence_ids = ob.inputs["sequence_ids"]
            domain = micro.sample_domains[sequence_ids.clamp(min=0)][target]
            stats[o, :, 0] += torch.bincount(domain, weights=loss.detach()[target].double(), minlength=num_domains)
            stats[o, :, 1] += torch.bincount(domain, minlength=num_domains).double()
            if ob.name == "masked_code" and level_stats is not None:
                levels = ob.inputs["level_ids"][target].clamp(min=0)
                level_stats[:, 0] += torch.bincount(levels, weights=loss.detach()[target].double(), minlength=self.num_levels)
                level_stats[:, 1] += torch.bincount(levels, minlength=self.num_levels).double()

    def train_step(self, epoch: int, index: int) -> dict[str, Any]:
        """One optimizer step on global batch ``(epoch, index)``; returns its reduced statistics."""
        training = self.config.training
        accumulation = training.gradient_accumulation_steps
        global_batch = self.plan.batch_at(epoch, index)
        micro_batches = []
        for micro_step in range(accumulation):
            rows = global_batch.shard(micro_step, self.rank, self.world_size, training.micro_batch_rows)
            micro_batches.append(self.micro_batch(rows, epoch))
        names = list(self.config.objective.objectives)
        weights = list(self.config.objective.objectives.values())
        # Global number of targets per objective over all micro-batches of all processes.
        counts = torch.tensor([[sum(m.objective_batches[o].num_targets for m in micro_batches)] for o in range(len(names))],
                              dtype=torch.float64, device=self.accelerator.device)
        counts = self.accelerator.reduce(counts, reduction="sum").view(-1)
        scale = self.world_size * accumulation  # undone by DDP/ZeRO averaging and accumulation scaling
        stats = torch.zeros(len(names), len(self.domain_names), 2, dtype=torch.float64, device=self.accelerator.device)
        level_stats = torch.zeros(max(self.num_levels, 1), 2, dtype=torch.float64, device=self.accelerator.device)
        tokens = 0
        grad_norm = None
        self.model.train()
        for micro in micro_batches:
            with self.accelerator.accumulate(self.model):
                losses = self.forward_losses(micro)
                loss = sum(
                    weights[o] * losses[o].sum() * (scale / max(float(counts[o]), 1.0)) for o in range(len(names))
                )
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients and training.max_grad_norm > 0:
                    grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), training.max_grad_norm)
                self.optimizer.step()
                if self.accelerator.sync_gradients:
                    self.scheduler.step()
                self.optimizer.zero_grad()
            self.accumulate_stats(micro, losses, stats, level_stats)
            tokens += micro.num_tokens
        reduced = self.accelerator.reduce(
            torch.cat([stats.view(-1), level_stats.view(-1), torch.tensor([float(tokens)], dtype=torch.float64,
                                                                           device=stats.device)]),
            reduction="sum",
        )
        stats = reduced[: stats.numel()].view_as(stats).cpu()
        level_stats = reduced[stats.numel() : stats.numel() + level_stats.numel()].view_as(level_stats).cpu()
        step_loss = sum(w * float(stats[o, :, 0].sum()) / max(float(stats[o, :, 1].sum()), 1.0)
                        for o, w in enumerate(weights))
        return {
            "loss": step_loss,
            "stats": stats,
            "level_stats": level_stats,
            "tokens": int(reduced[-1]),
            "grad_norm": None if grad_norm is None else float(grad_norm),
        }

    # -----------------------------------------------------------------------------------------
    # 3. evaluation
    # -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, held_out: bool = False) -> dict[str, float]:
        """Per-domain losses of every objective on the held-back graphs of the training corpus, or with
        ``held_out`` on the chosen graphs of ``held_out_corpus`` (all processes take part)."""
        corpus = self.held_out_corpus if held_out else self.corpus
        batches = self.held_out_batches if held_out else self.eval_batches
        if corpus is None or not batches:
            return {}
        names = list(self.config.objective.objectives)
        stats = torch.zeros(len(names), len(corpus.domain_names), 2, dtype=torch.float64, device=self.accelerator.device)
        level_stats = torch.zeros(max(self.num_levels, 1), 2, dtype=torch.float64, device=self.accelerator.device)
        mine = batches[self.rank :: self.world_size]
        rounds = math.ceil(len(batches) / self.world_size)
        self.model.eval()
        for i in range(rounds):
            # Every process runs the same number of forwards (ZeRO-3 gathers weights collectively).
            real = i < len(mine)
            micro = self.micro_batch(mine[i] if real else batches[0], EVAL_EPOCH, corpus)
            losses = self.forward_losses(micro)
            if real:
                self.accumulate_stats(micro, losses, stats, level_stats)
        self.model.train()
        reduced = self.accelerator.reduce(torch.cat([stats.view(-1), level_stats.view(-1)]), reduction="sum").cpu()
        stats = reduced[: stats.numel()].view_as(stats)
        level_stats = reduced[stats.numel() :].view_as(level_stats)
        return self.loss_metrics(stats, level_stats, corpus.domain_names)

    def loss_metrics(self, stats: torch.Tensor, level_stats: torch.Tensor,
                     domain_names: Sequence[str] | None = None) -> dict[str, float]:
        """``loss``, ``loss/<objective>``, ``loss/<objective>/<domain>``, ``loss/masked_code/level<k>``."""
        out: dict[str, float] = {}
        total = 0.0
        for o, (name, weight) in enumerate(self.config.objective.objectives.items()):
            count = float(stats[o, :, 1].sum())
            mean = float(stats[o, :, 0].sum()) / count if count else float("nan")
            out[f"loss/{name}"] = mean
            total += weight * mean
            for d, domain in enumerate(self.domain_names if domain_names is None else domain_names):
                if stats[o, d, 1] > 0:
                    out[f"loss/{name}/{domain}"] = float(stats[o, d, 0] / stats[o, d, 1])
            if name == "masked_code":
                for level in range(self.num_levels):
                    if level_stats[level, 1] > 0:
                        out[f"loss/masked_code/level{level}"] = float(level_stats[level, 0] / level_stats[level, 1])
        out["loss"] = total
        return out

    # -----------------------------------------------------------------------------------------
    # 4. export
    # -----------------------------------------------------------------------------------------
    def consolidated_state_dict(self) -> dict[str, torch.Tensor]:
        """Full fp32 weights on the main process (collective: every process must call it)."""
        accelerator = self.accelerator
        if self.uses_deepspeed and self.mixed_precision in ("bf16", "fp16"):
            # The module holds 16-bit weights; the fp32 masters live in the ZeRO optimizer.
            from deepspeed.utils import safe_get_full_fp32_param

            unwrapped = accelerator.unwrap_model(self.model)
            state = {}
            for name, parameter in unwrapped.named_parameters():
                full = safe_get_full_fp32_param(parameter)
                state[name] = full.detach().cpu().clone() if full is not None else parameter.detach().float().cpu()
            for name, buffer in unwrapped.named_buffers():
                state[name] = buffer.detach().cpu().clone()
            return state
        return accelerator.get_state_dict(self.model)

    def export(self, summary: Mapping[str, Any]) -> Path:
        """``save_pretrained`` directory with the tokenizer beside it and ``training_summary.json``.

        The weights are checked first: non-finite weights are never exported
        (:class:`TrainingDivergedError`, on every process). ``weights_manifest.json`` beside them
        records their SHA-256, which every gfm loader verifies.
        """
        from gfm.modeling.checkpoint_files import (
            GFMNonFiniteWeightsError,
            check_finite_weights,
            write_weights_manifest,
        )

        export_dir = Path(self.config.training.export_dir or self.output_dir / "final")
        state_dict = self.consolidated_state_dict()
        problem = None
        if self.accelerator.is_main_process:
            try:
                check_finite_weights(state_dict.items(), "the trained model")
            except GFMNonFiniteWeightsError as err:
                problem = f"{err}. Nothing was exported to {export_dir}"
        problem = self._agree(problem)
        if problem is not None:
            raise TrainingDivergedError(problem)
        if self.accelerator.is_main_process:
            unwrapped = self.accelerator.unwrap_model(self.model)
            with atomic_directory(export_dir, overwrite=True) as tmp:
                unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
                write_weights_manifest(tmp)
                self.tokenizer.save_pretrained(tmp)
                atomic_write_json(tmp / "training_summary.json", summary)
            logger.info("exported model + tokenizer to %s", export_dir)
        self.accelerator.wait_for_everyone()
        return export_dir

    # -----------------------------------------------------------------------------------------
    # the run folder
    # -----------------------------------------------------------------------------------------
    def check_output_dirs(self) -> None:
        """``output_dir`` (and ``export_dir``) must be directories this process can write, or creatable.

        Runs before the accelerator, the tokenizer and the corpus, so a bad path costs nothing.

        Raises:
            OutputDirError: naming the key, the path and what is in the way.
        """
        training = self.config.training
        for key, value in (("output_dir", training.output_dir), ("export_dir", training.export_dir)):
            if value:
                _check_writable_directory(Path(value), key)

    def acquire_run_lock(self) -> RunLock | None:
        """The main process takes ``<output_dir>/run.lock``; every process fails if it could not.

        Raises:
            OutputDirInUseError: another run holds the folder (its pid, host and start time named).
        """
        lock, problem = None, None
        if self.accelerator.is_main_process:
            try:
                lock = RunLock(self.output_dir).acquire()
            except OutputDirInUseError as err:
                problem = str(err)
        problem = self._agree(problem)
        if problem is not None:
            raise OutputDirInUseError(problem)
        return lock

    def _agree(self, problem: str | None) -> str | None:
        """The main process's verdict on every process (a collective when several run)."""
        if self.world_size > 1:
            from accelerate.utils import broadcast_object_list

            box = [problem]
            broadcast_object_list(box, from_process=0)
            problem = box[0]
        return problem

    # -----------------------------------------------------------------------------------------
    # the run
    # -----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Set up, train ``max_steps`` optimizer steps, evaluate, checkpoint, export; return the summary."""
        from tqdm.auto import tqdm

        started = time.perf_counter()
        self.resume_state: dict[str, Any] | None = None
        self.check_output_dirs()  # before anything is loaded
        self.setup_accelerator()
        import torch.distributed as dist

        lock = None
        try:
            lock = self.acquire_run_lock()
            summary = self._run(started, tqdm)
        except BaseException:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()  # no barrier: another process may not get there
            raise
        finally:
            if lock is not None:
                lock.release()
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # gloo aborts at exit 10-35% of the time without an orderly shutdown
            dist.destroy_process_group()
        return summary

    def _run(self, started: float, tqdm: Any) -> dict[str, Any]:
        training = self.config.training
        accelerator = self.accelerator
        self.setup_data()
        checkpoint = self.find_resume_checkpoint()
        self.setup_model()
        step, epoch, index, tokens_seen = 0, 0, 0, 0
        first_metrics: dict[str, dict[str, list[float]]] = {"train": {}, "eval": {}}
        if checkpoint is not None:
            accelerator.load_state(str(checkpoint))
            restore_rng_state(json.loads((checkpoint / f"rng_state_{self.rank}.json").read_text()))
            state = self.resume_state
            step, epoch, index = state["step"], state["next_epoch"], state["next_index"]
            tokens_seen = state["tokens_seen"]
            first_metrics = state["first_metrics"]
            logger.info("resumed from %s: step %d, epoch %d, batch %d", checkpoint, step, epoch, index)
        writer = None
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.output_dir / "config.json", self.config.to_dict())
            writer = MetricsWriter(self.output_dir, training.report_to, resume_step=step if checkpoint else None)
        logger.info(
            "model: %s, %.2fM parameters; %d steps of %d rows x %d positions (%d micro-batches of %d rows on each of "
            "%d processes); objectives %s", type(accelerator.unwrap_model(self.model)).__name__,
            self.num_parameters / 1e6, training.max_steps, training.global_batch_rows, self.config.data.max_length,
            training.gradient_accumulation_steps, training.micro_batch_rows, self.world_size,
            dict(self.config.objective.objectives),
        )

        last_metrics: dict[str, dict[str, list[float]]] = {"train": {}, "eval": {}}

        def log(split: str, at: int, values: Mapping[str, float]) -> None:
            for name, value in values.items():
                first_metrics.setdefault(split, {}).setdefault(name, [at, value])
                last_metrics.setdefault(split, {})[name] = [at, value]
            if writer is not None:
                writer.write(at, split, values)

        if checkpoint is None:
            log("eval", 0, self.evaluate())
            if self.held_out_corpus is not None:
                log("held_out", 0, self.evaluate(held_out=True))
        window = self._new_window()
        bar = tqdm(total=training.max_steps, initial=step, disable=not (accelerator.is_main_process and training.progress_bar),
                   desc="pretraining", unit="step", dynamic_ncols=True)
        positions = self.plan.positions(epoch, index)
        last_step = min(training.max_steps, training.stop_after_steps or training.max_steps)
        saved_at = None
        last_finite: tuple[int, float] | None = None  # (step, loss) of the newest finite step
        nonfinite_streak = 0
        while step < last_step:
            epoch, index = next(positions)
            result = self.train_step(epoch, index)
            step += 1
            # the step loss is reduced over every process, so every process takes the same branch
            if math.isfinite(result["loss"]):
                last_finite, nonfinite_streak = (step, result["loss"]), 0
            else:
                nonfinite_streak += 1
                if nonfinite_streak >= training.max_nonfinite_steps:
                    if writer is not None:
                        writer.write(step, "train", {"loss": result["loss"]})
                        writer.close()
                    raise TrainingDivergedError(self._divergence_message(
                        f"the loss is {result['loss']} at step {step} ({nonfinite_streak} step(s) in a row, "
                        f"max_nonfinite_steps={training.max_nonfinite_steps})", last_finite, saved_at))
                logger.warning("step %d: loss is %s (%d of max_nonfinite_steps=%d in a row)", step, result["loss"],
                               nonfinite_streak, training.max_nonfinite_steps)
            tokens_seen += result["tokens"]
            window["stats"] += result["stats"]
            window["level_stats"] += result["level_stats"]
            window["tokens"] += result["tokens"]
            window["losses"].append(result["loss"])
            if result["grad_norm"] is not None:
                window["grad_norms"].append(result["grad_norm"])
            bar.update(1)
            if step % max(training.logging_steps, 1) == 0 or step == training.max_steps:
                elapsed = time.perf_counter() - window["start"]
                values = self.loss_metrics(window["stats"], window["level_stats"])
                values["loss"] = sum(window["losses"]) / len(window["losses"])
                values["lr"] = self.scheduler.get_last_lr()[0]
                values["tokens_per_second"] = window["tokens"] / max(elapsed, 1e-9)
                values["tokens_seen"] = float(tokens_seen)
                if window["grad_norms"]:
                    values["grad_norm"] = sum(window["grad_norms"]) / len(window["grad_norms"])
                log("train", step, values)
                domains = " ".join(
                    f"{d[:10]}={values[k]:.3f}" for d in self.domain_names
                    for k in [f"loss/{next(iter(self.config.objective.objectives))}/{d}"] if k in values
                )
                bar.set_postfix_str(f"loss={values['loss']:.4f} lr={values['lr']:.2e} "
                                    f"tok/s={values['tokens_per_second']:.0f} | {domains}")
                window = self._new_window()
            paused = time.perf_counter()  # evaluation and checkpoints do not count against tokens/s
            if training.eval_steps and step % training.eval_steps == 0 and step != training.max_steps:
                log("eval", step, self.evaluate())
                if self.held_out_corpus is not None:
                    log("held_out", step, self.evaluate(held_out=True))
            due = (training.save_steps and step % training.save_steps == 0) or step == last_step < training.max_steps
            if due and nonfinite_streak:
                logger.warning("step %d: no checkpoint while the loss is not finite (it would hold diverged weights and "
                               "rotate out good ones)", step)
            elif due:
                self._check_weights_finite(step, last_finite, saved_at)
                save_training_state(
                    accelerator, self.checkpoint_root, step,
                    {"next_epoch": epoch, "next_index": index + 1, "tokens_seen": tokens_seen,
                     "identity": self.run_identity(), "first_metrics": first_metrics},
                    keep_last=training.save_total_limit,
                )
                saved_at = step
            window["start"] += time.perf_counter() - paused
        bar.close()
        if step < training.max_steps:
            logger.info("stopped after step %d of %d (stop_after_steps); checkpoint %s; continue with "
                        "resume_from_checkpoint: latest", step, training.max_steps, saved_at)
            if writer is not None:
                writer.close()
            return {"steps": step, "stopped_early": True, "checkpoint_step": saved_at}
        log("eval", step, self.evaluate())
        if self.held_out_corpus is not None:
            log("held_out", step, self.evaluate(held_out=True))
        summary = self._summary(step, tokens_seen, started, first_metrics, last_metrics)
        summary["export_dir"] = str(self.export(summary))
        if accelerator.is_main_process:
            writer.close()
            if training.plot and writer.csv_path is not None:
                summary["plots"] = [str(p) for p in plot_metrics(writer.csv_path, self.output_dir / "plots")]
            atomic_write_json(self.output_dir / "training_summary.json", summary)
            falling = [v["last"] < v["first"] for v in summary["losses"]["eval"].values()]
            logger.info("done: %d steps, %d tokens, %.0f s; held-back loss fell in %d of %d (objective, domain) pairs",
                        step, tokens_seen, summary["wall_seconds"], sum(falling), len(falling))
        return summary

    def _check_weights_finite(self, step: int, last_finite: tuple[int, float] | None, saved_at: int | None) -> None:
        """Before a checkpoint: every process checks its (ZeRO: local shard of the) weights; any NaN/inf stops the run.

        A step's loss is computed before its update, so the update of the last finite step can
        still leave non-finite weights; such a checkpoint must never be written (it would also
        rotate out the good ones).
        """
        model = self.accelerator.unwrap_model(self.model)
        bad = [name for name, parameter in model.named_parameters()
               if not bool(torch.isfinite(getattr(parameter, "ds_tensor", parameter).detach()).all())]
        count = torch.tensor([float(len(bad))], dtype=torch.float64, device=self.accelerator.device)
        if float(self.accelerator.reduce(count, reduction="sum")) > 0:
            named = f" ({', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''})" if bad else ""
            raise TrainingDivergedError(self._divergence_message(
                f"the weights hold NaN or infinite values after the update of step {step}{named}; no checkpoint "
                "was written for it", last_finite, saved_at))

    def _divergence_message(self, what: str, last_finite: tuple[int, float] | None, saved_at: int | None) -> str:
        training = self.config.training
        before = (f"the last finite loss was {last_finite[1]:.6g} at step {last_finite[0]}" if last_finite
                  else "no step since the run started (or resumed) had a finite loss")
        checkpoint = (f"the newest checkpoint is of step {saved_at}" if saved_at is not None
                      else "this run wrote no checkpoint")
        return (
            f"training diverged: {what}; {before}. Nothing was exported and {checkpoint}. Lower learning_rate "
            f"(now {training.learning_rate:g}), enable gradient clipping (max_grad_norm, now {training.max_grad_norm:g}) "
            "or add warmup_steps, then start again or resume from an earlier checkpoint"
        )

    def _new_window(self) -> dict[str, Any]:
        num_objectives = len(self.config.objective.objectives)
        return {
            "stats": torch.zeros(num_objectives, len(self.domain_names), 2, dtype=torch.float64),
            "level_stats": torch.zeros(max(self.num_levels, 1), 2, dtype=torch.float64),
            "tokens": 0,
            "losses": [],
            "grad_norms": [],
            "start": time.perf_counter(),
        }

    def _summary(self, step: int, tokens_seen: int, started: float, first: Mapping[str, Any],
                 last: Mapping[str, Any]) -> dict[str, Any]:
        losses: dict[str, dict[str, dict[str, float]]] = {}
        for split in ("eval", "train", "held_out"):
            if split not in last:
                continue
            losses[split] = {}
            for name, (last_step, last_value) in last[split].items():
                if not name.startswith("loss/") or name.count("/") != 2 or name not in first[split]:
                    continue
                first_step, first_value = first[split][name]
                losses[split][name] = {"first": first_value, "last": last_value,
                                       "first_step": first_step, "last_step": last_step}
        return {
            "steps": step,
            "tokens_seen": tokens_seen,
            "wall_seconds": time.perf_counter() - started,
            "world_size": self.world_size,
            "distributed_type": self.accelerator.distributed_type.name,
            "zero_stage": self.zero_stage,
            "mixed_precision": self.mixed_precision,
            "num_parameters": self.num_parameters,
            "tokenizer_class": type(self.tokenizer).__name__,
            "tokenizer_hash": self.tokenizer.content_hash,
            "corpus": {"path": self.corpus.name, "domains": self.corpus.domain_summary()},
            "objectives": dict(self.config.objective.objectives),
            "config": self.config.to_dict(),
            "losses": losses,
        }


def _check_writable_directory(path: Path, key: str) -> None:
    """Raise :class:`OutputDirError` unless ``path`` is (or can be created as) a directory we can write in."""
    import tempfile

    if path.exists() and not path.is_dir():
        raise OutputDirError(
            f"{key}={path} is a file, not a directory; the run writes its checkpoints, metrics and model there. "
            f"Choose another {key} or move the file away"
        )
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(
            f"{key}={path} cannot be created: {existing} is a file, not a directory. Choose another {key}"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        where = "" if existing == path else f" (it does not exist yet, and {existing} is where it would be created)"
        raise OutputDirError(
            f"{key}={path} is not writable{where}: {err.strerror or err}. Choose a folder you can write to or fix "
            "its permissions"
        ) from err


def build_model(config: PretrainConfig, tokenizer: Any, corpus_settings: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The default model factory: ``AutoModelForPreTraining`` of ``model_type`` sized by ``model_config``.

    ``vocab_size`` and the special token ids come from the tokenizer, and the inputs the corpus
    carries (``num_code_levels`` for quantized tokens, ``node_feature_dim`` for continuous
    per-token features) from ``corpus_settings``, for config classes that have those fields;
    a ``model_config`` value contradicting them is an error, and a ``model_config`` key the
    model's config class does not define is an :class:`UnknownConfigKeyError`.
    """
    import difflib
    import inspect

    from transformers import MODEL_FOR_PRETRAINING_MAPPING, AutoConfig, AutoModelForPreTraining

    import gfm.modeling  # noqa: F401  (registers the gfm classes with the Auto classes)

    model_args = config.model
    if model_args.model_name_or_path:
        if model_args.model_config:
            raise ConfigError("set model_name_or_path or model_config, not both")
        if Path(model_args.model_name_or_path).is_dir():
            from gfm.hub import verify_weight_files

            # config.json present, safetensors only, weights whole and matching their manifest
            verify_weight_files(model_args.model_name_or_path)
        return AutoModelForPreTraining.from_pretrained(model_args.model_name_or_path)
    try:
        config_class = AutoConfig.for_model(model_args.model_type).__class__
    except ValueError as err:
        raise ConfigError(f"model_type {model_args.model_type!r} is not registered with transformers ({err})") from err
    known = set(config_class().to_dict()) | set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}
    for key in model_args.model_config:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UnknownConfigKeyError(f"model_config: unknown key '{key}' for {config_class.__name__}{hint}")
    kwargs = dict(model_args.model_config)
    vocab = tokenizer.vocab_size
    if kwargs.get("vocab_size", vocab) != vocab:
        raise VocabularyMismatchError(
            f"model_config.vocab_size={kwargs['vocab_size']} but the tokenizer has {vocab} ids; drop vocab_size "
            "from model_config (it is taken from the tokenizer) or use the tokenizer it was meant for"
        )
    kwargs["vocab_size"] = vocab
    for name in ("pad", "bos", "eos", "mask"):
        token_id = getattr(tokenizer, f"{name}_token_id", None)
        key = f"{name}_token_id"
        if token_id is None or (key not in known and name == "mask"):
            continue
        if key in kwargs and kwargs[key] != token_id:
            raise VocabularyMismatchError(f"model_config.{key}={kwargs[key]} but the tokenizer's is {token_id}")
        kwargs[key] = token_id
    for key, value in (corpus_settings or {}).items():
        if key not in known or not value:
            continue
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(f"model_config.{key}={kwargs[key]} but the corpus needs {value}; drop it from model_config")
        kwargs[key] = value
    model_config = AutoConfig.for_model(model_args.model_type, **kwargs)
    if model_args.zero3_init:
        # from_config builds the model inside deepspeed.zero.Init when ZeRO-3 is on: never whole in memory
        return AutoModelForPreTraining.from_config(model_config)
    # Whole on every process, partitioned by accelerate.prepare: the same initial weights as a
    # run without ZeRO-3 (zero.Init draws its random initialization differently).
    return MODEL_FOR_PRETRAINING_MAPPING[type(model_config)](model_config)


def run_pretraining(config: PretrainConfig, model_factory: ModelFactory | None = None) -> dict[str, Any] | None:
    """Pretrain as configured; returns the training summary on the main process (``None`` on others).

    The summary is also written to ``<output_dir>/training_summary.json`` and beside the
    exported model.
    """
    trainer = Pretrainer(config, model_factory=model_factory)
    summary = trainer.run()
    return summary if trainer.is_main_process else None

