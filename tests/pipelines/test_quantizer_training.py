"""gfm.pipelines.quantizer_training (the library side of tokenizers/train_quantizer.py) on packaged graphs."""

from __future__ import annotations

import re

import pytest

from gfm.pipelines.quantizer_training import TrainQuantizerArguments, format_quantizer_report, train_quantizer
from gfm.tokenization.quantized import QuantizedTokenizerConfig
from gfm.utils.config import ConfigError

TINY = QuantizedTokenizerConfig(
    structure_dim=8, categorical_width=16, continuous_width=16, hidden_dim=32, num_layers=2, code_dim=16,
    num_levels=2, codebook_size=16, epochs=2, steps_per_epoch=2, vq_warmup_epochs=1,
    nodes_per_dataset_per_step=64, kmeans_sample_per_dataset=64, ppr_top_k=4, seed=0,
)


def _arguments(tmp_path, **overrides) -> TrainQuantizerArguments:
    settings = dict(datasets=["packaged/karate", "packaged/les-miserables"], output_dir=str(tmp_path / "tok"),
                    probe_node_dataset="packaged/karate", probe_graph_dataset=None, unseen_dataset="packaged/davis",
                    progress=False)
    settings.update(overrides)
    return TrainQuantizerArguments(**settings)


def test_trains_saves_reloads_and_reports_every_table(tmp_path):
    report = train_quantizer(TINY, _arguments(tmp_path))
    assert report.identical and report.reload[-1] == "yes"
    assert (tmp_path / "tok" / "tokenizer_config.json").is_file()
    assert [stage for stage, _ in report.timings] == [
        "load corpus", "train (input space + epochs)", "linear probes", "encode unseen dataset", "reload + re-encode",
        "total",
    ]
    assert report.unseen[:3] == ["packaged/davis", report.unseen[1], "no"]  # a schema the training never saw
    assert len(report.probes) == 2 and all(row[0] == "packaged/karate" for row in report.probes)
    text = format_quantizer_report(report)
    for title in ("Training corpus", "Training log", "Codebook usage on the training corpus", "Linear probes",
                  "Unseen feature width", "Save / reload / re-encode", "Wall time"):
        assert title in text
    assert re.search(r"^\| packaged/les-miserables +\| social +\| 1 +\|", text, re.M)


def test_output_dir_with_a_tokenizer_is_refused_without_overwrite(tmp_path):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"already holds a tokenizer; set overwrite_output_dir: true"):
        train_quantizer(TINY, _arguments(tmp_path))


def test_unseen_dataset_in_the_training_corpus_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unseen_dataset 'packaged/karate' is in the training datasets"):
        train_quantizer(TINY, _arguments(tmp_path, unseen_dataset="packaged/karate"))
