"""The special tokens every gfm tokenizer shares, defined once.

Both tokenizers start their vocabulary with the same seven tokens, at the same ids:

=====  ===========  ==================================================================
id     token        meaning
=====  ===========  ==================================================================
0      ``<pad>``    padding (``collate_tokenized_graphs`` fills with it)
1      ``<bos>``    start of a sequence
2      ``<eos>``    end of a sequence
3      ``<mask>``   the masked-token objective's replacement
4      ``<sep>``    separator, reserved (no tokenizer writes it today; never masked)
5      ``<jump>``   the walk jumps: the next node is not adjacent to the previous one
6      ``<unk>``    a value the vocabulary has no token for
=====  ===========  ==================================================================

A tokenizer appends its own specials after them (the Eulerian tokenizer adds ``<target_node>``,
``<target_edge>``, ``<dup>``, ``<fwd>``, ``<bwd>``, ``<node>`` at ids 7-12) and lists the whole
tuple in :attr:`SpecialTokensMixin.special_tokens`. These ids are written into saved
tokenizers, corpora and checkpoints: never reorder or insert into :data:`SPECIAL_TOKENS`.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["SPECIAL_TOKENS", "SpecialTokensMixin"]

#: the shared special tokens; a token's id is its position
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<mask>", "<sep>", "<jump>", "<unk>")


class SpecialTokensMixin:
    """``<name>_token_id`` properties of a tokenizer whose vocabulary starts with its special tokens.

    A subclass sets :attr:`special_tokens` to :data:`SPECIAL_TOKENS` followed by its own
    specials; a token's id is its position in that tuple. (No method here ends in ``_token_id``
    except the id properties: the trainer collects every ``*_token_id`` as a never-masked id.)
    """

    #: every special token of the tokenizer, in id order (starts with :data:`SPECIAL_TOKENS`)
    special_tokens: ClassVar[tuple[str, ...]] = SPECIAL_TOKENS

    def special_id(self, token: str) -> int:
        """Id of the special ``token`` (``"<pad>"``, ...).

        Raises:
            KeyError: ``token`` is not one of this tokenizer's special tokens (listed in the message).
        """
        try:
            return self.special_tokens.index(token)
        except ValueError:
            raise KeyError(
                f"{token!r} is not a special token of {type(self).__name__}; its special tokens are "
                f"{list(self.special_tokens)}"
            ) from None

    @property
    def num_special_tokens(self) -> int:
        """Number of special tokens (ids ``0 .. num_special_tokens - 1``)."""
        return len(self.special_tokens)

    @property
    def pad_token_id(self) -> int:
        return self.special_id("<pad>")

    @property
    def bos_token_id(self) -> int:
        return self.special_id("<bos>")

    @property
    def eos_token_id(self) -> int:
        return self.special_id("<eos>")

    @property
    def mask_token_id(self) -> int:
        return self.special_id("<mask>")

    @property
    def sep_token_id(self) -> int:
        return self.special_id("<sep>")

    @property
    def jump_token_id(self) -> int:
        return self.special_id("<jump>")

    @property
    def unk_token_id(self) -> int:
        return self.special_id("<unk>")
