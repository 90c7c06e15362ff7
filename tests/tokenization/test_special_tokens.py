"""The special tokens both tokenizers share are defined once, at the ids saved tokenizers already use."""

from __future__ import annotations

import pytest
from torch_geometric.utils import from_smiles

from gfm.tokenization import GraphTokenizer, TokenizerLoadError
from gfm.tokenization.eulerian import EULERIAN_SPECIAL_TOKENS, EulerianTokenizer
from gfm.tokenization.quantized import QuantizedTokenizer, QuantizedTokenizerConfig
from gfm.tokenization.special_tokens import SPECIAL_TOKENS
from gfm.utils.errors import GFMError

# The ids every saved tokenizer, corpus and checkpoint holds: never change them.
SHARED_IDS = {"pad": 0, "bos": 1, "eos": 2, "mask": 3, "sep": 4, "jump": 5, "unk": 6}


@pytest.fixture(scope="module")
def eulerian() -> EulerianTokenizer:
    graphs = [from_smiles(s) for s in ("CCO", "c1ccccc1O", "CC(=O)N")]
    return EulerianTokenizer.train(graphs)


def test_shared_tokens_are_the_prefix_of_both_vocabularies(eulerian) -> None:
    assert SPECIAL_TOKENS == ("<pad>", "<bos>", "<eos>", "<mask>", "<sep>", "<jump>", "<unk>")
    assert EULERIAN_SPECIAL_TOKENS == SPECIAL_TOKENS + (
        "<target_node>", "<target_edge>", "<dup>", "<fwd>", "<bwd>", "<node>"
    )
    assert eulerian.vocabulary.tokens[:13] == list(EULERIAN_SPECIAL_TOKENS)
    quantized = QuantizedTokenizer(QuantizedTokenizerConfig(num_levels=2, codebook_size=4))
    assert list(quantized.get_vocab())[:7] == list(SPECIAL_TOKENS)
    assert quantized.code_token_id(0, 0) == 7 and quantized.num_special_tokens == 7
    assert eulerian.num_special_tokens == 13


def test_token_ids_are_unchanged(eulerian) -> None:
    quantized = QuantizedTokenizer(QuantizedTokenizerConfig(num_levels=2, codebook_size=4))
    for tokenizer in (eulerian, quantized):
        assert {name: getattr(tokenizer, f"{name}_token_id") for name in SHARED_IDS} == SHARED_IDS
    assert (eulerian.target_node_token_id, eulerian.target_edge_token_id, eulerian.duplicate_token_id) == (7, 8, 9)
    encoded = eulerian.encode(from_smiles("CCO"))
    assert encoded.input_ids[0] == 1 and encoded.input_ids[-1] == 2


def test_tokenizer_class_names_are_the_saved_ones(eulerian, tmp_path) -> None:
    """Directories saved before tokenizers became packages name these classes; they must still resolve."""
    assert GraphTokenizer._registry["EulerianTokenizer"] is EulerianTokenizer
    assert GraphTokenizer._registry["QuantizedTokenizer"] is QuantizedTokenizer
    config = (eulerian.save_pretrained(tmp_path / "tok") / "tokenizer_config.json").read_text()
    assert '"tokenizer_class": "EulerianTokenizer"' in config


def test_an_unknown_special_token_is_named(eulerian) -> None:
    with pytest.raises(KeyError, match=r"'<cls>' is not a special token of EulerianTokenizer; its special tokens are "
                                       r"\['<pad>', '<bos>'"):
        eulerian.special_id("<cls>")


def test_tokenization_errors_are_gfm_errors(tmp_path) -> None:
    from gfm.tokenization import AutoGraphTokenizer

    with pytest.raises(GFMError, match=r"no tokenizer_config.json; this is not a gfm tokenizer directory") as error:
        AutoGraphTokenizer.from_pretrained(tmp_path)
    assert isinstance(error.value, TokenizerLoadError) and isinstance(error.value, ValueError)
