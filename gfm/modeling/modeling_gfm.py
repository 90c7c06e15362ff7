"""The gfm sparse-attention graph transformer and its task heads (transformers style).

Inputs are the batch dict of :mod:`gfm.tokenization.tokenized_graph` (``B`` rows, ``T``
positions, ``H`` hidden size, ``N`` samples); every model's ``forward`` accepts all of its keys
by name plus ``labels`` and ``causal``, so ``model(**batch)`` works for every batch a gfm
collator makes.

Architecture: token embedding (+ quantizer-level embedding, + PPR gate, + projection of
continuous ``node_features``) -> ``num_hidden_layers`` pre-norm blocks (``RMSNorm`` ->
sparse multi-head attention with rotary positions over ``position_ids`` and one learned bias
per link type and head -> residual; ``RMSNorm`` -> SwiGLU -> residual) -> final ``RMSNorm``.
Attention follows the batch's :class:`~gfm.modeling.attention.AttentionPattern`, built once
per forward pass and executed by the backend ``config.attention_backend`` (``"auto"`` picks
per pattern).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from packaging import version
from torch import nn
from transformers import PreTrainedModel
from transformers import __version__ as transformers_version
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput
from transformers.utils import ModelOutput

from gfm.utils.errors import GFMError

from .attention import (
    AttentionPattern,
    build_attention_pattern,
    select_backend,
)
from .attention.backends import AttentionBackend
from .checkpoint_files import (
    CONFIG_NAME,
    WEIGHTS_MANIFEST_NAME,
    GFMCheckpointFileError,
    GFMCorruptWeightsError,
    GFMNonFiniteWeightsError,
    check_finite_weights,
    check_model_folder,
    verify_weights_manifest,
)
from .configuration_gfm import GFMConfig
from .fused_ops import RMSNorm, apply_rotary, rotary_cos_sin

try:  # transformers >= 4.52: layers that transformers' gradient checkpointing wraps
    from transformers.modeling_layers import GradientCheckpointingLayer
except ImportError:  # pragma: no cover - older transformers
    GradientCheckpointingLayer = nn.Module  # type: ignore[misc,assignment]

try:  # transformers >= 5: init functions that respect already-loaded weights
    from transformers import initialization as _init
except ImportError:  # pragma: no cover
    _init = nn.init  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = [
    "GFMCheckpointFileError",
    "GFMCheckpointMismatchError",
    "GFMCorruptWeightsError",
    "GFMNonFiniteWeightsError",
    "GFMInputError",
    "GFMModel",
    "GFMPreTrainedModel",
    "GFMForPretraining",
    "GFMForGraphClassification",
    "GFMForNodeClassification",
    "GFMForEdgePrediction",
    "GFMPretrainingOutput",
    "pool_per_sample",
    "pool_per_node",
    "masked_loss",
    "PROBLEM_TYPE_OF_KIND",
]

_TRANSFORMERS_5 = version.parse(transformers_version).major >= 5


class GFMInputError(GFMError, ValueError):
    """A batch does not fit the model (field, shape, range); the message names the field and the fix."""


class GFMCheckpointMismatchError(GFMError, ValueError):
    """A checkpoint's weights do not fit the config it is loaded with."""


#: parameter prefixes of task heads: a checkpoint of another head (or of the bare backbone) may lack them
_HEAD_PREFIXES = ("lm_head.", "score.")


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------
class GFMEmbeddings(nn.Module):
    """Token embedding plus the optional per-token inputs of the batch.

    ``h = E[input_ids] (+ L[level_ids] where level_ids >= 0) (+ W node_features)``, then
    ``h *= 1 + tanh(a * ppr_weight + c)`` (``a, c`` per hidden unit, zero-initialized, so the gate
    starts as the identity) when ``ppr_weight`` is given.
    """

    def __init__(self, config: GFMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.level_embeddings = (
            nn.Embedding(config.num_code_levels, config.hidden_size) if config.num_code_levels else None
        )
        self.feature_projection = (
            nn.Linear(config.node_feature_dim, config.hidden_size, bias=False) if config.node_feature_dim else None
        )
        if config.use_ppr_gate:
            self.ppr_gate_scale = nn.Parameter(torch.zeros(config.hidden_size))
            self.ppr_gate_shift = nn.Parameter(torch.zeros(config.hidden_size))
        else:
            self.ppr_gate_scale = self.ppr_gate_shift = None

    def forward(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None = None,
        level_ids: torch.Tensor | None = None,
        ppr_weight: torch.Tensor | None = None,
        node_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns ``[B, T, H]``."""
        hidden = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if level_ids is not None:
            if self.level_embeddings is None:
                if bool((level_ids >= 0).any()):
                    raise GFMInputError(
                        "the batch has level_ids (quantized code tokens) but config.num_code_levels=0; "
                        "set num_code_levels to the quantizer's number of levels"
                    )
            else:
                levels = self.config.num_code_levels
                if level_ids.numel() and (int(level_ids.max()) >= levels or int(level_ids.min()) < -1):
                    raise GFMInputError(
                        f"level_ids holds {int(level_ids.max())} (min {int(level_ids.min())}) but "
                        f"config.num_code_levels={levels}; expected -1 (no level) or 0..{levels - 1}"
                    )
                has_level = (level_ids >= 0).unsqueeze(-1).to(hidden.dtype)
                hidden = hidden + self.level_embeddings(level_ids.clamp(min=0)) * has_level
        if node_features is not None:
            if self.feature_projection is None:
                raise GFMInputError(
                    f"the batch has node_features of width {node_features.shape[-1]} but config.node_feature_dim=0; "
                    "set node_feature_dim to the shared input space's width"
                )
            if node_features.shape[-1] != self.config.node_feature_dim:
                raise GFMInputError(
                    f"node_features has width {node_features.shape[-1]} but config.node_feature_dim="
                    f"{self.config.node_feature_dim}; project the graphs with the input space the model was trained with"
                )
            hidden = hidden + self.feature_projection(node_features.to(self.feature_projection.weight.dtype))
        unused: list[torch.Tensor] = []
        if ppr_weight is not None and self.ppr_gate_scale is not None:
            ppr = ppr_weight.to(hidden.dtype).unsqueeze(-1)
            hidden = hidden * (1.0 + torch.tanh(ppr * self.ppr_gate_scale + self.ppr_gate_shift))
        elif self.ppr_gate_scale is not None:
            unused += [self.ppr_gate_scale, self.ppr_gate_shift]
        if node_features is None and self.feature_projection is not None:
            unused.append(self.feature_projection.weight)
        if (level_ids is None or not bool((level_ids >= 0).any())) and self.level_embeddings is not None:
            unused.append(self.level_embeddings.weight)
        if unused:
            # Inputs this batch lacks leave their parameters unused; a zero-valued term keeps them
            # in the autograd graph so DDP / DeepSpeed see every parameter in every step.
            hidden = hidden + 0.0 * sum(p.sum() for p in unused).to(hidden.dtype)
        return hidden


class GFMAttention(nn.Module):
    """Multi-head attention over an :class:`AttentionPattern` with rotary positions and link biases.

    ``link_bias`` ``[num_edge_types + 3, num_heads]`` holds one learned bias per biased link type
    (graph edge types, same node, global, expander) and head; window and self links ("plain")
    have bias zero.
    """

    def __init__(self, config: GFMConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scale = self.head_dim**-0.5
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.v_proj = nn.Linear(hidden, hidden, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.link_bias = nn.Parameter(torch.zeros(config.pattern_options().link_types.num_biased, self.num_heads))

    def forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        pattern: AttentionPattern,
        backend: AttentionBackend,
    ) -> torch.Tensor:
        """``hidden_states`` [B, T, H] -> [B, T, H]."""
        B, T, _ = hidden_states.shape
        shape = (B, T, self.num_heads, self.head_dim)
        query = apply_rotary(self.q_proj(hidden_states).view(shape), cos, sin)
        key = apply_rotary(self.k_proj(hidden_states).view(shape), cos, sin)
        value = self.v_proj(hidden_states).view(shape)
        link_bias = torch.cat([self.link_bias, self.link_bias.new_zeros(1, self.num_heads)])  # + "plain" row
        out = backend.forward(query, key, value, pattern, link_bias, self.scale)
        return self.o_proj(out.reshape(B, T, -1))


class GFMMLP(nn.Module):
    """SwiGLU feed-forward: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, config: GFMConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(hidden_states)) * self.up_proj(hidden_states))


class GFMDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, config: GFMConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = GFMAttention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = GFMMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout) if config.hidden_dropout > 0 else nn.Identity()

    def forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        pattern: AttentionPattern | None = None,
        backend: AttentionBackend | None = None,
    ) -> torch.Tensor:
        """``hidden_states`` [B, T, H] -> [B, T, H] (tensors positional for reentrant checkpointing)."""
        attended = self.self_attn(self.input_layernorm(hidden_states), cos, sin, pattern, backend)
        hidden_states = hidden_states + self.dropout(attended)
        return hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))


# ---------------------------------------------------------------------------------------------
# Pooling (vectorized over samples / nodes)
# ---------------------------------------------------------------------------------------------
def _num_samples(sequence_ids: torch.Tensor, num_nodes: torch.Tensor | None) -> int:
    if num_nodes is not None:
        return int(num_nodes.shape[0])
    return int(sequence_ids.max()) + 1 if sequence_ids.numel() else 0


def pool_per_sample(
    hidden_states: torch.Tensor, sequence_ids: torch.Tensor, num_samples: int, mode: str = "mean"
) -> torch.Tensor:
    """One vector per sample.

    Args:
        hidden_states: ``[B, T, H]``.
        sequence_ids: ``[B, T]`` sample of each position (``-1`` padding).
        num_samples: ``N``; every sample ``0..N-1`` must have at least one token.
        mode: ``"mean"`` over the sample's tokens, ``"first"`` token, or elementwise ``"max"``.

    Returns:
        ``[N, H]``.
    """
    flat_hidden = hidden_states.reshape(-1, hidden_states.shape[-1])
    flat_sample = sequence_ids.reshape(-1)
    valid = (flat_sample >= 0).nonzero().squeeze(1)
    sample = flat_sample[valid]
    counts = torch.bincount(sample, minlength=num_samples)
    if counts.numel() > num_samples:
        raise GFMInputError(
            f"sequence_ids holds sample {int(sample.max())} but the batch has {num_samples} samples (num_nodes)"
        )
    if num_samples and bool((counts == 0).any()):
        missing = int((counts == 0).nonzero()[0, 0])
        raise GFMInputError(f"sample {missing} has no tokens in sequence_ids; every sample needs at least one")
    if mode == "mean":
        sums = flat_hidden.new_zeros(num_samples, flat_hidden.shape[-1]).index_add(0, sample, flat_hidden[valid])
        return sums / counts.unsqueeze(-1).to(sums.dtype)
    if mode == "first":
        first = torch.full((num_samples,), flat_sample.numel(), dtype=torch.long, device=sample.device)
        first = first.scatter_reduce(0, sample, valid, reduce="amin")
        return flat_hidden[first]
    if mode == "max":
        init = flat_hidden.new_full((num_samples, flat_hidden.shape[-1]), float("-inf"))
        index = sample.unsqueeze(-1).expand(-1, flat_hidden.shape[-1])
        return init.scatter_reduce(0, index, flat_hidden[valid], reduce="amax")
    raise GFMInputError(f"unknown pooling mode {mode!r}; expected 'mean', 'first' or 'max'")


def pool_per_node(
    hidden_states: torch.Tensor,
    sequence_ids: torch.Tensor,
    node_index: torch.Tensor,
    sample: torch.Tensor,
    node: torch.Tensor,
) -> torch.Tensor:
    """Mean of the token states that stand for node ``node[m]`` of sample ``sample[m]``.

    Args:
        hidden_states: ``[B, T, H]``.
        sequence_ids / node_index: ``[B, T]`` (see the batch contract).
        sample / node: int64 ``[M]`` the (sample, node) pairs to read.

    Returns:
        ``[M, H]``.

    Raises:
        GFMInputError: a requested node has no token in its sample.
    """
    flat_hidden = hidden_states.reshape(-1, hidden_states.shape[-1])
    flat_sample, flat_node = sequence_ids.reshape(-1), node_index.reshape(-1)
    width = int(max(int(flat_node.max()) if flat_node.numel() else 0, int(node.max()) if node.numel() else 0)) + 1
    has_node = ((flat_sample >= 0) & (flat_node >= 0)).nonzero().squeeze(1)
    token_key = flat_sample[has_node] * width + flat_node[has_node]
    unique_keys, slot = torch.unique(token_key, return_inverse=True)
    sums = flat_hidden.new_zeros(unique_keys.numel(), flat_hidden.shape[-1]).index_add(
        0, slot, flat_hidden[has_node]
    )
    counts = torch.bincount(slot, minlength=unique_keys.numel()).unsqueeze(-1).to(sums.dtype)
    wanted = sample * width + node
    position = torch.searchsorted(unique_keys, wanted).clamp(max=max(unique_keys.numel() - 1, 0))
    found = (unique_keys.numel() > 0) & (node >= 0)
    if unique_keys.numel():
        found = found & (unique_keys[position] == wanted)
    if not bool(found.all()):
        bad = int((~found).nonzero()[0, 0])
        raise GFMInputError(
            f"sample {int(sample[bad])}: node {int(node[bad])} has no token (node_index never equals it); "
            "the target node must be inside the tokenized subgraph"
        )
    return sums[position] / counts[position]


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------
#: the transformers ``problem_type`` (and so the loss) of each per-sample ``TaskSpec.kind``
PROBLEM_TYPE_OF_KIND = {
    "classification": "single_label_classification",
    "multilabel": "multi_label_classification",
    "regression": "regression",
}


def task_loss(logits: torch.Tensor, labels: torch.Tensor, config: GFMConfig) -> torch.Tensor:
    """Loss of ``logits`` [N, C] against ``labels`` by ``config.problem_type`` (inferred as in transformers).

    An unset ``problem_type`` is inferred and written to ``config`` as transformers does; the
    loss is :func:`masked_loss`.
    """
    if config.problem_type is None:
        if logits.shape[-1] == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    return masked_loss(logits, labels, config.problem_type)


def masked_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str) -> torch.Tensor:
    """The loss of a transformers ``problem_type`` with missing labels masked out.

    The one task loss of gfm: the gfm heads and the GNN baselines train with it.

    Args:
        logits: ``[N, C]`` logits (classification, multi-label) or predictions (regression).
        labels: single-label classification: ``[N]`` class ids, a negative id (``-1``,
            ``-100``) or NaN = missing; otherwise float ``[N, C]`` (or anything of ``N * C``
            entries), NaN = missing.
        problem_type: ``"single_label_classification"`` (cross-entropy),
            ``"multi_label_classification"`` (binary cross-entropy with logits) or
            ``"regression"`` (mean squared error); :data:`PROBLEM_TYPE_OF_KIND` maps task kinds.

    Returns:
        The mean loss over observed labels (float32 scalar). A batch whose labels are all
        missing gives a zero loss that still depends on the logits (so distributed training
        sees the same graph on every rank).

    Raises:
        GFMInputError: labels of another sample count or shape, a class id past ``C``, or an
            unknown ``problem_type``.
    """
    num_labels = logits.shape[-1]
    logits = logits.float()
    if problem_type == "single_label_classification":
        flat = labels.reshape(-1)
        if flat.shape[0] != logits.shape[0]:
            raise GFMInputError(f"labels has {flat.shape[0]} entries but there are {logits.shape[0]} samples")
        if flat.dtype.is_floating_point:
            missing = torch.isnan(flat)
            flat = torch.where(missing, torch.full_like(flat, -100), flat).long()
        keep = flat >= 0
        if bool((flat >= num_labels).any()):
            raise GFMInputError(
                f"labels hold class {int(flat.max())} but config.num_labels={num_labels}; set num_labels to the class count"
            )
        if not bool(keep.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits[keep], flat[keep])
    if problem_type not in ("regression", "multi_label_classification"):
        raise GFMInputError(
            f"unknown problem_type {problem_type!r}; expected one of {sorted(set(PROBLEM_TYPE_OF_KIND.values()))}"
        )
    target = labels.to(logits.dtype).reshape(logits.shape[0], -1)
    if target.shape != logits.shape:
        raise GFMInputError(
            f"labels have shape {tuple(labels.shape)} but the head predicts {tuple(logits.shape)}; "
            f"set config.num_labels={target.shape[1]}"
        )
    observed = ~torch.isnan(target)
    if not bool(observed.any()):
        return logits.sum() * 0.0
    if problem_type == "regression":
        return F.mse_loss(logits[observed], target[observed])
    return F.binary_cross_entropy_with_logits(logits[observed], target[observed])


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
def _config_summary(config: GFMConfig) -> str:
    keys = ("num_hidden_layers", "hidden_size", "num_code_levels", "node_feature_dim", "use_ppr_gate")
    return ", ".join(f"{k}={getattr(config, k)}" for k in keys if hasattr(config, k))


def _hub_snapshot_folder(name: str | os.PathLike, kwargs: dict) -> Path | None:
    """The hub-cache folder a hub id was loaded from (its manifest fetched too, when the repo has one)."""
    from transformers.utils import cached_file

    options = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "subfolder", "local_files_only", "proxies")
               if k in kwargs}
    lenient = {"_raise_exceptions_for_missing_entries": False, "_raise_exceptions_for_connection_errors": False}
    config_file = cached_file(str(name), CONFIG_NAME, **options, **lenient)
    if config_file is None:
        return None
    cached_file(str(name), WEIGHTS_MANIFEST_NAME, **options, **lenient)
    return Path(config_file).parent


class GFMPreTrainedModel(PreTrainedModel):
    """Weights initialization, loading and the attributes transformers / accelerate / DeepSpeed read."""

    config_class = GFMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GFMDecoderLayer"]
    _skip_keys_device_placement: list[str] = []
    # Attention runs through gfm's backend registry (config.attention_backend), whose reference and
    # window backends call scaled_dot_product_attention; ``attn_implementation`` is not consulted.
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    # Patterns have data-dependent sizes: no full-graph compile.
    _can_compile_fullgraph = False
    # HF Trainer: our losses are means over the local batch; do not pass num_items_in_batch.
    accepts_loss_kwargs = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """``PreTrainedModel.from_pretrained`` that checks the folder first and the weights after.

        Before loading (see :mod:`gfm.modeling.checkpoint_files`): ``config.json`` is present,
        the weights are safetensors (pickle files such as ``pytorch_model.bin`` are refused,
        never read), every safetensors file is whole and matches ``weights_manifest.json`` when
        the folder has one. After loading: the weights fit the config in both directions and
        every floating-point weight is finite. Hub ids are checked the same way once resolved
        through the hub cache.

        Raises:
            GFMCheckpointFileError: ``config.json`` or the safetensors weights are missing (pickle
                weights are named and refused).
            GFMCorruptWeightsError: a weights file is cut short or differs from its manifest;
                :class:`GFMNonFiniteWeightsError` when weights hold NaN or infinite values.
            GFMCheckpointMismatchError: a backbone weight has another shape than the config
                implies (e.g. ``num_edge_types``, ``hidden_size`` changed), is missing from the
                checkpoint, or is in the checkpoint but not in the model (e.g. ``num_hidden_layers``
                lowered in ``config.json``). Task-head weights (``lm_head``, ``score``) may be
                missing or left over: a pretrained backbone is loaded into a new task head, or a
                task checkpoint into the bare backbone. ``ignore_mismatched_sizes=True`` accepts
                all of these on purpose.
        """
        want_info = kwargs.pop("output_loading_info", False)
        if kwargs.get("use_safetensors") is False:
            raise GFMCheckpointFileError(
                f"{pretrained_model_name_or_path}: use_safetensors=False is not supported; gfm models load "
                "safetensors weights only (pickle-based files can run arbitrary code when read)"
            )
        kwargs["use_safetensors"] = True
        source = pretrained_model_name_or_path
        from_files = source is not None and kwargs.get("state_dict") is None and not kwargs.get("gguf_file")
        local = None
        if from_files and os.path.isdir(source):
            local = Path(source) / kwargs.get("subfolder", "")
            config = kwargs.get("config")
            # AutoModel passes the config it built; when config.json is missing that config is a default one
            check_model_folder(local, need_config=config is None or bool(kwargs.get("_from_auto", False)))
        model, info = cls._load_checked(source, model_args, kwargs)
        if from_files and local is None:  # a hub id, now in the hub cache
            snapshot = _hub_snapshot_folder(source, kwargs)
            if snapshot is not None:
                verify_weights_manifest(snapshot)
        ignore = kwargs.get("ignore_mismatched_sizes", False)
        missing = sorted(k for k in info["missing_keys"] if not k.startswith(_HEAD_PREFIXES))
        if missing and not ignore:
            raise GFMCheckpointMismatchError(
                f"{source}: the checkpoint lacks backbone weights {missing[:6]}"
                f"{' ...' if len(missing) > 6 else ''} that the config requires (e.g. num_hidden_layers, "
                "num_code_levels, node_feature_dim or use_ppr_gate differ from the checkpoint's config.json)"
            )
        unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith(_HEAD_PREFIXES))
        if unexpected and not ignore:
            raise GFMCheckpointMismatchError(
                f"{source}: the checkpoint holds backbone weights the model does not have: {unexpected[:6]}"
                f"{f' and {len(unexpected) - 6} more' if len(unexpected) > 6 else ''}; loading would silently drop "
                f"them. The config ({_config_summary(model.config)}) describes a smaller model than the weights "
                "(was num_hidden_layers, num_code_levels, node_feature_dim or use_ppr_gate edited in config.json?); "
                "restore the checkpoint's own config.json, or pass ignore_mismatched_sizes=True to drop them on purpose"
            )
        check_finite_weights(model.state_dict().items(), str(source))
        return (model, info) if want_info else model

    @classmethod
    def _load_checked(cls, source, model_args, kwargs):
        """``super().from_pretrained`` with loading info; shape mismatches and raw file errors as named errors."""
        from safetensors import SafetensorError

        try:
            return super().from_pretrained(source, *model_args, output_loading_info=True, **kwargs)
        except SafetensorError as err:
            raise GFMCorruptWeightsError(
                f"{source}: the safetensors weights cannot be read ({err}): the file is cut short or damaged; "
                "copy or download the checkpoint again"
            ) from err
        except RuntimeError as err:
            if "ignore_mismatched_sizes" not in str(err):
                raise
            _, info = super().from_pretrained(
                source, *model_args, output_loading_info=True, **{**kwargs, "ignore_mismatched_sizes": True}
            )
            details = "; ".join(
                f"{name}: checkpoint {list(saved)} vs model {list(wanted)}"
                for name, saved, wanted in sorted(info["mismatched_keys"])[:6]
            )
            raise GFMCheckpointMismatchError(
                f"{source}: weights do not match the config ({details}); load the checkpoint "
                "with its own config.json (do not override hidden_size, num_edge_types, num_code_levels, ...) or "
                "pass ignore_mismatched_sizes=True to re-initialize those weights on purpose"
            ) from err
        except OSError as err:
            if "safetensors" not in str(err) or isinstance(err, GFMCheckpointFileError):
                raise
            raise GFMCheckpointFileError(
                f"{source}: no safetensors weights ({err}); gfm models load model.safetensors only and never read "
                "pickle-based weights such as pytorch_model.bin"
            ) from err

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, GFMAttention):
            _init.zeros_(module.link_bias)
        elif isinstance(module, GFMEmbeddings) and module.ppr_gate_scale is not None:
            _init.zeros_(module.ppr_gate_scale)
            _init.zeros_(module.ppr_gate_shift)
        elif isinstance(module, nn.RMSNorm) and module.weight is not None:
            _init.ones_(module.weight)


@dataclass
class GFMPretrainingOutput(ModelOutput):
    """Output of :class:`GFMForPretraining`.

    Attributes:
        loss: mean cross-entropy over positions whose label is not ``-100`` (when labels are given).
        logits: ``[B, T, vocab_size]``.
        hidden_states: per-layer states when ``output_hidden_states=True``.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class GFMModel(GFMPreTrainedModel):
    """The bare transformer: batch dict -> ``last_hidden_state`` [B, T, H]."""

    def __init__(self, config: GFMConfig) -> None:
        super().__init__(config)
        self.embeddings = GFMEmbeddings(config)
        self.layers = nn.ModuleList([GFMDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.embed_tokens = value

    # -- input handling -------------------------------------------------------------------
    def _check_inputs(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        sequence_ids: torch.Tensor | None,
    ) -> tuple[int, int, torch.Tensor]:
        if (input_ids is None) == (inputs_embeds is None):
            raise GFMInputError("pass exactly one of input_ids [B, T] or inputs_embeds [B, T, H]")
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        if len(shape) != 2:
            raise GFMInputError(f"input_ids must be [B, T], got shape {tuple(input_ids.shape)}")
        B, T = shape
        if B == 0 or T == 0:
            raise GFMInputError(
                f"the batch is empty: input_ids has shape {tuple(shape)} ({B} rows of {T} positions); a batch needs at "
                "least one sample with one token (drop empty batches before calling the model)"
            )
        if input_ids is not None and (input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool):
            raise GFMInputError(
                f"input_ids has dtype {input_ids.dtype}; token ids must be an integer tensor (torch.long) as the "
                "tokenizer returns them: do not convert the batch to float (use input_ids.long())"
            )
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if input_ids is not None and input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise GFMInputError(
                    f"input_ids hold {high if high >= self.config.vocab_size else low}, outside the vocabulary "
                    f"[0, {self.config.vocab_size}); use the tokenizer the model was trained with"
                )
        for name, value in (("attention_mask", attention_mask), ("sequence_ids", sequence_ids)):
            if value is not None and tuple(value.shape) != (B, T):
                raise GFMInputError(f"{name} has shape {tuple(value.shape)}, expected [{B}, {T}] like input_ids")
        if sequence_ids is None:
            if attention_mask is None:
                attention_mask = torch.ones(B, T, dtype=torch.long, device=device)
            rows = torch.arange(B, device=device)[:, None].expand(B, T)
            sequence_ids = torch.where(attention_mask.bool(), rows, torch.full_like(rows, -1))
        elif attention_mask is not None and not torch.equal(attention_mask.bool(), sequence_ids >= 0):
            raise GFMInputError(
                "attention_mask and sequence_ids disagree (attention_mask must be 1 exactly where sequence_ids >= 0)"
            )
        return B, T, sequence_ids.long()

    def build_pattern(
        self,
        sequence_ids: torch.Tensor,
        node_index: torch.Tensor | None = None,
        graph_edge_index: torch.Tensor | None = None,
        graph_edge_type: torch.Tensor | None = None,
        causal: bool = False,
    ) -> AttentionPattern:
        """The attention pattern this model uses for a batch (shared by all layers)."""
        return build_attention_pattern(
            sequence_ids,
            self.config.pattern_options(),
            node_index=node_index,
            graph_edge_index=graph_edge_index,
            graph_edge_type=graph_edge_type,
            causal=bool(causal),
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        sequence_ids: torch.Tensor | None = None,
        node_index: torch.Tensor | None = None,
        graph_edge_index: torch.Tensor | None = None,
        graph_edge_type: torch.Tensor | None = None,
        level_ids: torch.Tensor | None = None,
        ppr_weight: torch.Tensor | None = None,
        node_features: torch.Tensor | None = None,
        num_nodes: torch.Tensor | None = None,
        target_node: torch.Tensor | None = None,
        target_edge: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        causal: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        """Encode a batch.

        Args:
            input_ids: int64 ``[B, T]``.
            attention_mask: ``[B, T]`` 1 for real tokens (derived from ``sequence_ids`` if absent).
            position_ids: int64 ``[B, T]`` position inside the sample (derived if absent); must be
                below ``config.max_position_embeddings``.
            sequence_ids: int64 ``[B, T]`` sample of each position, -1 padding (one sample per
                row if absent).
            node_index, graph_edge_index, graph_edge_type: pattern structure (batch contract).
            level_ids, ppr_weight, node_features: optional per-token inputs.
            num_nodes, target_node, target_edge, labels: accepted for ``model(**batch)``; the bare
                model does not use them (the task heads do).
            causal: restrict attention to keys at or before the query (next-token prediction).
            inputs_embeds: ``[B, T, H]`` instead of ``input_ids``.
            output_hidden_states: also return the input of every layer and the final output.
            output_attentions: not supported (sparse attention has no dense weight matrix).

        Returns:
            ``BaseModelOutput(last_hidden_state [B, T, H], hidden_states)``.
        """
        if output_attentions:
            raise GFMInputError("output_attentions=True is not supported: sparse attention has no dense weight matrix")
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        B, T, sequence_ids = self._check_inputs(input_ids, inputs_embeds, attention_mask, sequence_ids)
        pattern = self.build_pattern(sequence_ids, node_index, graph_edge_index, graph_edge_type, bool(causal))
        if position_ids is None:
            position_ids = pattern.local_position.view(B, T).clamp(min=0)
        elif tuple(position_ids.shape) != (B, T):
            raise GFMInputError(f"position_ids has shape {tuple(position_ids.shape)}, expected [{B}, {T}]")
        if position_ids.numel():
            longest = int(position_ids.max())
            if longest >= self.config.max_position_embeddings:
                raise GFMInputError(
                    f"position_ids reach {longest} but config.max_position_embeddings="
                    f"{self.config.max_position_embeddings}: a sample has more tokens than the model accepts; "
                    "sample smaller subgraphs or raise max_position_embeddings (gfm never truncates silently)"
                )
        for name, value in (("node_index", node_index), ("level_ids", level_ids), ("ppr_weight", ppr_weight)):
            if value is not None and tuple(value.shape) != (B, T):
                raise GFMInputError(f"{name} has shape {tuple(value.shape)}, expected [{B}, {T}] like input_ids")
        if node_features is not None and tuple(node_features.shape[:2]) != (B, T):
            raise GFMInputError(f"node_features has shape {tuple(node_features.shape)}, expected [{B}, {T}, F]")

        hidden_states = self.embeddings(input_ids, inputs_embeds, level_ids, ppr_weight, node_features)
        backend = select_backend(self.config.attention_backend, pattern, self.config.head_dim, hidden_states.device)
        cos, sin = rotary_cos_sin(
            position_ids, self.config.head_dim, self.config.rope_theta, hidden_states.dtype, self.config.num_attention_heads
        )
        all_hidden_states: tuple[torch.Tensor, ...] = ()
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states = layer(hidden_states, cos, sin, pattern=pattern, backend=backend)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        if not return_dict:
            return tuple(v for v in (hidden_states, all_hidden_states or None) if v is not None)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states or None)


#: forward arguments of a task head that the backbone consumes
_BACKBONE_ARGUMENTS = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "sequence_ids",
    "node_index",
    "graph_edge_index",
    "graph_edge_type",
    "level_ids",
    "ppr_weight",
    "node_features",
    "causal",
    "inputs_embeds",
    "output_hidden_states",
    "output_attentions",
)


class GFMForPretraining(GFMPreTrainedModel):
    """Backbone + language-model head tied to the token embedding.

    Labels ``[B, T]`` are already aligned to positions (the objective in ``gfm.training`` shifts
    them for next-token prediction or keeps only masked positions); ``-100`` is ignored.
    """

    if _TRANSFORMERS_5:
        _tied_weights_keys = {"lm_head.weight": "model.embeddings.embed_tokens.weight"}
    else:  # pragma: no cover - transformers 4.x
        _tied_weights_keys = ["lm_head.weight"]

    def __init__(self, config: GFMConfig) -> None:
        super().__init__(config)
        self.model = GFMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        sequence_ids: torch.Tensor | None = None,
        node_index: torch.Tensor | None = None,
        graph_edge_index: torch.Tensor | None = None,
        graph_edge_type: torch.Tensor | None = None,
        level_ids: torch.Tensor | None = None,
        ppr_weight: torch.Tensor | None = None,
        node_features: torch.Tensor | None = None,
        num_nodes: torch.Tensor | None = None,
        target_node: torch.Tensor | None = None,
        target_edge: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        causal: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> GFMPretrainingOutput | tuple:
        """Token logits ``[B, T, vocab_size]`` and, with ``labels`` ``[B, T]``, the mean cross-entropy."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            sequence_ids=sequence_ids,
            node_index=node_index,
            graph_edge_index=graph_edge_index,
            graph_edge_type=graph_edge_type,
            level_ids=level_ids,
            ppr_weight=ppr_weight,
            node_features=node_features,
            causal=causal,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            if tuple(labels.shape) != tuple(logits.shape[:2]):
                raise GFMInputError(
                    f"labels have shape {tuple(labels.shape)}, expected {tuple(logits.shape[:2])} (one per position)"
                )
            flat = labels.reshape(-1).long()
            keep = flat != -100
            if bool((flat[keep] < 0).any()) or bool((flat[keep] >= self.config.vocab_size).any()):
                raise GFMInputError(
                    f"labels must be -100 (ignored) or token ids in [0, {self.config.vocab_size}); "
                    f"got values in [{int(flat[keep].min())}, {int(flat[keep].max())}]"
                )
            if bool(keep.any()):
                # ignore_index instead of a boolean gather: the gather copies the [B*T, V] logits and its
                # backward scatters into a zero-filled copy, ~10% of a 4k-token training step on a CPU.
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat, ignore_index=-100)
            else:
                loss = logits.sum() * 0.0
        if not return_dict:
            return tuple(v for v in (loss, logits, outputs.hidden_states) if v is not None)
        return GFMPretrainingOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class _GFMTaskModel(GFMPreTrainedModel):
    """Shared plumbing of the three task heads (backbone, dropout, loss, outputs)."""

    def __init__(self, config: GFMConfig, input_width: int) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = GFMModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.score = nn.Linear(input_width, config.num_labels)
        self.post_init()

    def _finish(
        self,
        features: torch.Tensor,
        labels: torch.Tensor | None,
        outputs: BaseModelOutput,
        return_dict: bool | None,
    ) -> SequenceClassifierOutput | tuple:
        with torch.autocast(features.device.type, enabled=False):  # under autocast too: head, targets, loss in fp32
            logits = self.score(self.dropout(features).float())
        loss = None
        scale = self._target_scale(logits)
        if scale is not None:  # standardized regression: loss on the standardized scale, logits in units
            mean, std = scale
            if labels is not None:
                standardized = (labels.to(logits.dtype).reshape(logits.shape[0], -1) - mean) / std
                loss = task_loss(logits, standardized, self.config)
            logits = logits * std + mean
        elif labels is not None:
            loss = task_loss(logits, labels, self.config)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return tuple(v for v in (loss, logits, outputs.hidden_states) if v is not None)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)

    def _target_scale(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(mean, std)`` ``[num_labels]`` of standardized regression, else ``None``."""
        config = self.config
        if config.regression_target_mean is None or config.problem_type not in (None, "regression"):
            return None
        if len(config.regression_target_mean) != logits.shape[-1]:
            raise GFMInputError(
                f"config.regression_target_mean has {len(config.regression_target_mean)} values but the head "
                f"predicts {logits.shape[-1]} targets; give one mean and std per target"
            )
        config.problem_type = "regression"
        mean = torch.tensor(config.regression_target_mean, dtype=logits.dtype, device=logits.device)
        std = torch.tensor(config.regression_target_std, dtype=logits.dtype, device=logits.device)
        return mean, std

    def _backbone(self, arguments: dict) -> BaseModelOutput:
        """Run the backbone on the backbone's share of a head's ``forward`` arguments."""
        return self.model(**{name: arguments[name] for name in _BACKBONE_ARGUMENTS}, return_dict=True)


class GFMForGraphClassification(_GFMTaskModel):
    """One prediction per sample: tokens pooled by ``sequence_ids`` (``config.classifier_pooling``)."""

    def __init__(self, config: GFMConfig) -> None:
        super().__init__(config, config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        sequence_ids: torch.Tensor | None = None,
        node_index: torch.Tensor | None = None,
        graph_edge_index: torch.Tensor | None = None,
        graph_edge_type: torch.Tensor | None = None,
        level_ids: torch.Tensor | None = None,
        ppr_weight: torch.Tensor | None = None,
        node_features: torch.Tensor | None = None,
        num_nodes: torch.Tensor | None = None,
        target_node: torch.Tensor | None = None,
        target_edge: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        causal: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """Logits ``[N, num_labels]`` (one row per sample) and the loss for ``labels`` ``[N]`` / ``[N, T]``."""
        outputs = self._backbone(locals())
        ids = _sequence_ids_or_rows(sequence_ids, attention_mask, outputs.last_hidden_state)
        pooled = pool_per_sample(
            outputs.last_hidden_state, ids, _num_samples(ids, num_nodes), self.config.classifier_pooling
        )
        return self._finish(pooled, labels, outputs, return_dict)


class GFMForNodeClassification(_GFMTaskModel):
    """One prediction per sample for its ``target_node``: mean of that node's token states."""

    def __init__(self, config: GFMConfig) -> None:
        super().__init__(config, config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        sequence_ids: torch.Tensor | None = None,
        node_index: torch.Tensor | None = None,
        graph_edge_index: torch.Tensor | None = None,
        graph_edge_type: torch.Tensor | None = None,
        level_ids: torch.Tensor | None = None,
        ppr_weight: torch.Tensor | None = None,
        node_features: torch.Tensor | None = None,
        num_nodes: torch.Tensor | None = None,
        target_node: torch.Tensor | None = None,
        target_edge: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        causal: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """Logits ``[N, num_labels]`` for ``target_node`` ``[N]`` and the loss for ``labels`` ``[N]`` / ``[N, T]``."""
        if target_node is None:
            raise GFMInputError(
                "GFMForNodeClassification needs target_node [N] (the node to classify in each sample); "
                "tokenize with metadata={'target_node': i}"
            )
        if node_index is None:
            raise GFMInputError("GFMForNodeClassification needs node_index [B, T] to find the target node's tokens")
        outputs = self._backbone(locals())
        ids = _sequence_ids_or_rows(sequence_ids, attention_mask, outputs.last_hidden_state)
        target = target_node.reshape(-1).long()
        samples = torch.arange(target.numel(), device=target.device)
        node_states = pool_per_node(outputs.last_hidden_state, ids, node_index, samples, target)
        return self._finish(node_states, labels, outputs, return_dict)


class GFMForEdgePrediction(_GFMTaskModel):
    """One prediction per sample for the node pair ``target_edge`` ``[N, 2]``.

    The two node states ``u, v`` (means of their tokens) enter the head as ``[u, v, u * v]``
    (order-aware, so directed relations can be told apart).
    """

    def __init__(self, config: GFMConfig) -> None:
        super().__init__(config, 3 * config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        sequence_ids: torch.Tensor | None = None,
        node_index: torch.Tensor | None = None,
        graph_edge_index: torch.Tensor | None = None,
        graph_edge_type: torch.Tensor | None = None,
        level_ids: torch.Tensor | None = None,
        ppr_weight: torch.Tensor | None = None,
        node_features: torch.Tensor | None = None,
        num_nodes: torch.Tensor | None = None,
        target_node: torch.Tensor | None = None,
        target_edge: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        causal: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """Logits ``[N, num_labels]`` for ``target_edge`` ``[N, 2]`` and the loss for ``labels`` ``[N]``."""
        if target_edge is None or target_edge.dim() != 2 or target_edge.shape[1] != 2:
            shape = None if target_edge is None else tuple(target_edge.shape)
            raise GFMInputError(
                f"GFMForEdgePrediction needs target_edge [N, 2] (the node pair of each sample), got {shape}; "
                "tokenize with metadata={'target_edge': [u, v]}"
            )
        if node_index is None:
            raise GFMInputError("GFMForEdgePrediction needs node_index [B, T] to find the pair's tokens")
        outputs = self._backbone(locals())
        ids = _sequence_ids_or_rows(sequence_ids, attention_mask, outputs.last_hidden_state)
        pair = target_edge.long()
        samples = torch.arange(pair.shape[0], device=pair.device)
        both = pool_per_node(
            outputs.last_hidden_state, ids, node_index, torch.cat([samples, samples]), torch.cat([pair[:, 0], pair[:, 1]])
        )
        u, v = both[: pair.shape[0]], both[pair.shape[0] :]
        return self._finish(torch.cat([u, v, u * v], dim=-1), labels, outputs, return_dict)


def _sequence_ids_or_rows(
    sequence_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, hidden: torch.Tensor
) -> torch.Tensor:
    if sequence_ids is not None:
        return sequence_ids.long()
    B, T = hidden.shape[:2]
    rows = torch.arange(B, device=hidden.device)[:, None].expand(B, T)
    if attention_mask is None:
        return rows
    return torch.where(attention_mask.bool(), rows, torch.full_like(rows, -1))

