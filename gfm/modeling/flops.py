"""Model FLOPs of a gfm training step: the counting of :mod:`gfm.utils.flops` with a model's sizes and a batch's pattern.

A gfm step's attention work is its sparse pattern's links (deduplicated (query, key) pairs,
every link type counted), not ``T^2``: that is what makes a graph's attention cheap, and what
its MFU is measured on. Example::

    pattern = model.model.build_pattern(sequence_ids, node_index, graph_edge_index, graph_edge_type, causal)
    flops = gfm_training_flops(model.config, pattern)       # StepFlops: .linear, .attention, .total
    mfu = flops.total / step_seconds / peak.weighted         # peak: gfm.utils.flops.measure_matmul_peak
"""

from __future__ import annotations

from gfm.utils.flops import StepFlops, training_gemm_shapes, training_step_flops

from .attention import AttentionPattern
from .configuration_gfm import GFMConfig

__all__ = ["gfm_gemm_shapes", "gfm_training_flops", "pattern_links"]


def pattern_links(pattern: AttentionPattern) -> int:
    """(query, key) pairs the pattern's attention computes per layer (deduplicated, all rows)."""
    return int(pattern.links()[0].numel())


def gfm_training_flops(config: GFMConfig, pattern: AttentionPattern, with_node_features: bool = False) -> StepFlops:
    """Model FLOPs of one training step of a gfm model with an LM head over the batch of ``pattern``.

    Args:
        config: the model's config (sizes).
        pattern: the batch's attention pattern; its real (non-padding) positions are the tokens.
        with_node_features: the batch carries ``node_features`` (adds the input projection's
            ``4 * node_feature_dim * hidden_size`` FLOPs per token).
    """
    projection = config.node_feature_dim * config.hidden_size if with_node_features else 0
    return training_step_flops(
        tokens=int(pattern.is_valid.sum()),
        attention_links=pattern_links(pattern),
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        intermediate_size=config.intermediate_size,
        vocab_size=config.vocab_size,
        input_projection_weights=projection,
    )


def gfm_gemm_shapes(config: GFMConfig, tokens: int):
    """The linear layers' GEMMs of a training step over ``tokens`` tokens (for ``measure_matmul_peak``)."""
    return training_gemm_shapes(
        tokens, config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    )
