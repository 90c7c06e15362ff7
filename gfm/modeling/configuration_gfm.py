"""Configuration of the gfm sparse-attention graph transformer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig

from gfm.utils.errors import GFMError

from .checkpoint_files import CONFIG_NAME, GFMCheckpointFileError

logger = logging.getLogger(__name__)

__all__ = ["GFMConfig", "GFMConfigError"]

_POOLING_MODES = ("mean", "first", "max")
_PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


class GFMConfigError(GFMError, ValueError):
    """An inconsistent ``GFMConfig``; the message names the field and the fix."""


class GFMConfig(PretrainedConfig):
    r"""Configuration of :class:`~gfm.modeling.modeling_gfm.GFMModel` and its task heads.

    Field names follow ``transformers`` (``LlamaConfig``) where a field exists there.

    Transformer:
        vocab_size: token ids are in ``[0, vocab_size)`` (the tokenizer's ``vocab_size``).
        hidden_size / num_hidden_layers / num_attention_heads: the usual; ``hidden_size`` must be
            divisible by ``num_attention_heads`` and the head size must be even (rotary).
        intermediate_size: SwiGLU width; default ``ceil(8/3 * hidden_size / 64) * 64``.
        hidden_act: activation of the SwiGLU gate (``"silu"``).
        max_position_embeddings: largest ``position_ids`` + 1 accepted (positions restart per sample).
        rms_norm_eps: epsilon of the pre-norm ``RMSNorm``.
        rope_theta: rotary base over ``position_ids``.
        initializer_range: std of the normal initialization.
        hidden_dropout: dropout on each residual branch.
        pad_token_id / bos_token_id / eos_token_id / tie_word_embeddings: as in transformers
            (the pretraining LM head is tied to the token embedding by default).

    Attention pattern (see :mod:`gfm.modeling.attention.patterns`):
        attention_graph_edges: attend along ``graph_edge_index`` links (per-type learned bias).
        num_edge_types: number of ``graph_edge_type`` values.
        attention_expander_degree: even degree of the random expander per sample (0 = off).
        attention_expander_seed: seed of the expander (deterministic per sample length).
        attention_num_global_tokens: the first ``k`` positions of each sample are global.
        attention_window: total sliding-window width (radius ``window // 2``; 0 = off).
        attention_same_node: link positions that stand for the same node.
        attention_self_links: every position attends to itself.
        attention_backend: ``"auto"``, ``"csr"``, ``"block_sdpa"``, ``"flex"`` or ``"dense"``.

    Inputs:
        num_code_levels: quantizer levels of a ``QuantizedTokenizer`` (``level_ids`` in
            ``[0, num_code_levels)``); each level adds a learned embedding. Code tokens are ids
            of the shared vocabulary, so the token embedding covers them. 0 = no levels.
        use_ppr_gate: scale token embeddings by a learned gate of ``ppr_weight`` when given.
        node_feature_dim: width ``F`` of ``node_features`` (shared input space, plus any graph
            positional encodings appended by :func:`gfm.tokenization.positional_encoding.add_positional_encoding`);
            0 = the model takes no continuous inputs.

    Tokenizer record (checked by loaders, e.g. ``gfm.hub``):
        tokenizer_class: class name of the tokenizer the model was trained with.
        tokenizer_hash: that tokenizer's ``content_hash``.

    Task heads:
        num_labels / problem_type: as in transformers (``"regression"``,
            ``"single_label_classification"``, ``"multi_label_classification"``).
        classifier_pooling: how graph classification pools a sample's tokens
            (``"mean"``, ``"first"`` or ``"max"``).
        classifier_dropout: dropout before the task heads.
        regression_target_mean / regression_target_std: per-target statistics of the training
            labels (lists of ``num_labels`` floats) for ``problem_type="regression"``. When set,
            the head predicts standardized targets, the loss is taken on that scale and the
            logits come back in the targets' own units (``raw * std + mean``); the statistics are
            saved with the config, so an exported model predicts in original units.
    """

    model_type = "gfm"

    def __init__(
        self,
        vocab_size: int = 1024,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        hidden_act: str = "silu",
        max_position_embeddings: int = 4096,
        rms_norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
        initializer_range: float = 0.02,
        hidden_dropout: float = 0.0,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        tie_word_embeddings: bool = True,
        attention_graph_edges: bool = True,
        num_edge_types: int = 8,
        attention_expander_degree: int = 4,
        attention_expander_seed: int = 0,
        attention_num_global_tokens: int = 1,
        attention_window: int = 0,
        attention_same_node: bool = True,
        attention_self_links: bool = True,
        attention_backend: str = "auto",
        num_code_levels: int = 0,
        use_ppr_gate: bool = True,
        node_feature_dim: int = 0,
        tokenizer_class: str | None = None,
        tokenizer_hash: str | None = None,
        classifier_pooling: str = "mean",
        classifier_dropout: float = 0.0,
        regression_target_mean: list[float] | None = None,
        regression_target_std: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        if intermediate_size is None:
            intermediate_size = -(-int(8 * hidden_size / 3) // 64) * 64
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = hidden_act
        self.max_position_embeddings = int(max_position_embeddings)
        self.rms_norm_eps = float(rms_norm_eps)
        self.rope_theta = float(rope_theta)
        self.initializer_range = float(initializer_range)
        self.hidden_dropout = float(hidden_dropout)
        self.attention_graph_edges = bool(attention_graph_edges)
        self.num_edge_types = int(num_edge_types)
        self.attention_expander_degree = int(attention_expander_degree)
        self.attention_expander_seed = int(attention_expander_seed)
        self.attention_num_global_tokens = int(attention_num_global_tokens)
        self.attention_window = int(attention_window)
        self.attention_same_node = bool(attention_same_node)
        self.attention_self_links = bool(attention_self_links)
        self.attention_backend = attention_backend
        self.num_code_levels = int(num_code_levels)
        self.use_ppr_gate = bool(use_ppr_gate)
        self.node_feature_dim = int(node_feature_dim)
        self.tokenizer_class = tokenizer_class
        self.tokenizer_hash = tokenizer_hash
        self.classifier_pooling = classifier_pooling
        self.classifier_dropout = float(classifier_dropout)
        self.regression_target_mean = None if regression_target_mean is None else [float(v) for v in regression_target_mean]
        self.regression_target_std = None if regression_target_std is None else [float(v) for v in regression_target_std]
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        self.validate_gfm()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs: Any):
        """``PretrainedConfig.from_pretrained`` that refuses a model folder without ``config.json``.

        transformers silently returns a default config for such a folder (and ``AutoConfig`` a
        misleading "no model_type" error); a default config would then meet weights of another size.

        Raises:
            GFMCheckpointFileError: ``pretrained_model_name_or_path`` is a directory without ``config.json``.
        """
        folder = Path(str(pretrained_model_name_or_path)) / kwargs.get("subfolder", "")
        if folder.is_dir() and not (folder / CONFIG_NAME).is_file():
            raise GFMCheckpointFileError(
                f"{folder}: {CONFIG_NAME} is missing in this directory; a gfm model folder needs the {CONFIG_NAME} "
                "written by save_pretrained beside its weights: copy it back from where the checkpoint came from, "
                "or save the model again"
            )
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def validate_gfm(self) -> None:
        """Check gfm's fields; raise :class:`GFMConfigError` naming the field and the fix."""
        from gfm.modeling.attention.backends import attention_backend_names, get_backend

        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        for name in (*positive, "max_position_embeddings", "num_edge_types"):
            if getattr(self, name) < 1:
                raise GFMConfigError(f"GFMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise GFMConfigError(
                f"GFMConfig.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}"
            )
        if self.head_dim % 2:
            raise GFMConfigError(f"head size hidden_size / num_attention_heads = {self.head_dim} must be even (rotary)")
        if self.attention_expander_degree < 0 or self.attention_expander_degree % 2:
            raise GFMConfigError(
                f"GFMConfig.attention_expander_degree must be a non-negative even number (d/2 random cycles), "
                f"got {self.attention_expander_degree}"
            )
        for name in ("attention_num_global_tokens", "attention_window", "num_code_levels", "node_feature_dim"):
            if getattr(self, name) < 0:
                raise GFMConfigError(f"GFMConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.attention_backend not in attention_backend_names():
            get_backend(self.attention_backend)  # raises UnknownAttentionBackendError listing the names
        if self.classifier_pooling not in _POOLING_MODES:
            raise GFMConfigError(
                f"GFMConfig.classifier_pooling={self.classifier_pooling!r}; expected one of {_POOLING_MODES}"
            )
        if (self.regression_target_mean is None) != (self.regression_target_std is None):
            raise GFMConfigError(
                "GFMConfig.regression_target_mean and regression_target_std go together: set both or neither"
            )
        if self.regression_target_std is not None:
            if len(self.regression_target_mean) != len(self.regression_target_std):
                raise GFMConfigError(
                    f"GFMConfig.regression_target_mean has {len(self.regression_target_mean)} values but "
                    f"regression_target_std has {len(self.regression_target_std)}; give one per target"
                )
            if not all(v > 0 and v == v and v != float("inf") for v in self.regression_target_std):
                raise GFMConfigError(
                    f"GFMConfig.regression_target_std={self.regression_target_std} must be finite and > 0 "
                    "(a constant target has nothing to learn; drop it or use std 1.0)"
                )
        if self.problem_type is not None and self.problem_type not in _PROBLEM_TYPES:
            raise GFMConfigError(f"GFMConfig.problem_type={self.problem_type!r}; expected one of {_PROBLEM_TYPES}")
        if self.hidden_act != "silu":
            raise GFMConfigError(f"GFMConfig.hidden_act={self.hidden_act!r}: only 'silu' (SwiGLU) is implemented")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise GFMConfigError(
                f"GFMConfig.pad_token_id={self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})"
            )

    def pattern_options(self):
        """The :class:`~gfm.modeling.attention.patterns.PatternOptions` of this config."""
        from gfm.modeling.attention.patterns import PatternOptions

        return PatternOptions(
            graph_edges=self.attention_graph_edges,
            num_edge_types=self.num_edge_types,
            expander_degree=self.attention_expander_degree,
            expander_seed=self.attention_expander_seed,
            num_global_tokens=self.attention_num_global_tokens,
            window=self.attention_window,
            same_node=self.attention_same_node,
            self_links=self.attention_self_links,
        )
