"""Standardized regression heads: loss on the standardized scale, logits in the targets' units."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gfm import GFMConfig, GFMForGraphClassification, collate_tokenized_graphs
from gfm.modeling import GFMConfigError, GFMInputError
from gfm.testing.modeling import random_tokenized_graphs, tiny_gfm_config

MEAN, STD = [60.0, -2.0], [35.0, 0.5]


def paired_models() -> tuple[GFMForGraphClassification, GFMForGraphClassification]:
    plain = GFMForGraphClassification(tiny_gfm_config(num_labels=2, problem_type="regression")).eval()
    scaled_config = GFMConfig.from_dict(plain.config.to_dict())
    scaled_config.regression_target_mean, scaled_config.regression_target_std = MEAN, STD
    scaled = GFMForGraphClassification(scaled_config).eval()
    scaled.load_state_dict(plain.state_dict())
    return plain, scaled


def test_logits_are_rescaled_and_loss_is_standardized() -> None:
    plain, scaled = paired_models()
    batch = collate_tokenized_graphs(random_tokenized_graphs([7, 11, 5], seed=1))
    labels = torch.tensor([[70.0, float("nan")], [20.0, -2.5], [55.0, -1.0]])
    with torch.no_grad():
        raw = plain(**batch).logits
        out = scaled(**batch, labels=labels)
    mean, std = torch.tensor(MEAN), torch.tensor(STD)
    torch.testing.assert_close(out.logits, raw * std + mean)
    standardized = (labels - mean) / std
    observed = ~torch.isnan(labels)
    torch.testing.assert_close(out.loss, F.mse_loss(raw[observed], standardized[observed]))


def test_statistics_survive_save_and_reload(tmp_path) -> None:
    _, scaled = paired_models()
    scaled.save_pretrained(tmp_path)
    again = GFMForGraphClassification.from_pretrained(tmp_path).eval()
    assert again.config.regression_target_mean == MEAN and again.config.regression_target_std == STD
    batch = collate_tokenized_graphs(random_tokenized_graphs([6, 9], seed=2))
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, scaled(**batch).logits)


def test_bad_statistics_are_named_errors() -> None:
    with pytest.raises(GFMConfigError, match="regression_target_mean and regression_target_std go together"):
        tiny_gfm_config(regression_target_mean=[1.0])
    with pytest.raises(GFMConfigError, match="regression_target_mean has 2 values but regression_target_std has 1"):
        tiny_gfm_config(regression_target_mean=[1.0, 2.0], regression_target_std=[1.0])
    with pytest.raises(GFMConfigError, match=r"regression_target_std=\[0.0\] must be finite and > 0"):
        tiny_gfm_config(regression_target_mean=[1.0], regression_target_std=[0.0])
    model = GFMForGraphClassification(
        tiny_gfm_config(num_labels=2, problem_type="regression", regression_target_mean=[0.0], regression_target_std=[1.0])
    )
    with pytest.raises(GFMInputError, match="regression_target_mean has 1 values but the head predicts 2 targets"):
        model(**collate_tokenized_graphs(random_tokenized_graphs([5], seed=3)))
