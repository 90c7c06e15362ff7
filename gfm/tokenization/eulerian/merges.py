"""Learned merges over a base token stream with SentencePiece (BPE or unigram).

SentencePiece segments text, so each base token id becomes one private-use Unicode character
(``chr(0xE000 + id)``, continuing in plane 15 past 6,400 ids) and a sequence becomes a string
without spaces (SentencePiece never merges across spaces). Training uses
``add_dummy_prefix=False``, ``character_coverage=1.0`` and the identity normalization, and adds
every alphabet character as a one-character sentence so that no base token can ever become
``<unk>``: segmentation is then exactly invertible.

A piece of one character is its base token; a longer piece gets a new id after the base
vocabulary (``base_vocab_size + j``) and expands back to its base ids. The SentencePiece model
is stored as bytes (``eulerian_merges.model`` in a tokenizer directory) together with the
expected expansion of every merged id, so a model that does not belong to its vocabulary is
detected on load.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable, Sequence

import numpy as np
import sentencepiece as spm

from gfm.utils.errors import GFMError

__all__ = ["LearnedMerges", "MergesError", "ids_to_text", "text_to_ids"]

logger = logging.getLogger(__name__)

_FIRST_PLANE_SIZE = 0xF8FF - 0xE000 + 1  # 6400 private-use code points in the BMP
_SECOND_PLANE_START = 0xF0000
_MAX_BASE_VOCAB = _FIRST_PLANE_SIZE + 0xFFFE


class MergesError(GFMError, ValueError):
    """Merges that cannot be trained, loaded or applied (the message names the mismatch)."""


def ids_to_text(ids: np.ndarray) -> str:
    """Base ids ``[L]`` -> a string of ``L`` private-use characters."""
    ids = np.asarray(ids, dtype=np.int64)
    points = np.where(ids < _FIRST_PLANE_SIZE, 0xE000 + ids, _SECOND_PLANE_START + ids - _FIRST_PLANE_SIZE)
    return points.astype("<u4").tobytes().decode("utf-32-le")


def text_to_ids(text: str) -> np.ndarray:
    """Inverse of :func:`ids_to_text`."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
    return np.where(
        points >= _SECOND_PLANE_START, points - _SECOND_PLANE_START + _FIRST_PLANE_SIZE, points - 0xE000
    )


class LearnedMerges:
    """A trained SentencePiece model over base ids, with its merged-id table.

    Args:
        model: the serialized SentencePiece model.
        base_vocab_size: size ``B`` of the base vocabulary the model was trained on.
        model_type: ``"bpe"`` or ``"unigram"`` (recorded, as the trainer was told).

    Attributes:
        pieces: base-id expansion of every merged id ``B + j`` (pieces longer than one token).
        model_type: ``"bpe"`` or ``"unigram"``.
    """

    def __init__(self, model: bytes, base_vocab_size: int, model_type: str = "bpe") -> None:
        self.model = bytes(model)
        self.base_vocab_size = int(base_vocab_size)
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(self.model)
        except Exception as err:  # sentencepiece raises RuntimeError / OSError variants
            raise MergesError(f"the merges model is not a valid SentencePiece model ({err})") from err
        self.processor = processor
        size = processor.get_piece_size()
        piece_token = np.full(size, -1, dtype=np.int64)
        piece_length = np.zeros(size, dtype=np.int64)
        self.pieces: list[tuple[int, ...]] = []
        for sp_id in range(size):
            if processor.is_unknown(sp_id) or processor.is_control(sp_id):
                continue
            ids = text_to_ids(processor.id_to_piece(sp_id))
            if len(ids) == 0 or ids.min() < 0 or ids.max() >= self.base_vocab_size:
                raise MergesError(
                    f"merges piece {sp_id} spells base ids {ids.tolist()} outside the base vocabulary of "
                    f"{self.base_vocab_size} tokens: the merges model does not match this vocabulary; retrain "
                    "the merges with this vocabulary"
                )
            piece_length[sp_id] = len(ids)
            if len(ids) == 1:
                piece_token[sp_id] = int(ids[0])
            else:
                piece_token[sp_id] = self.base_vocab_size + len(self.pieces)
                self.pieces.append(tuple(int(i) for i in ids))
        self.piece_token = piece_token
        self.piece_length = piece_length
        self.model_type = model_type
        # expansion table of every id (base ids expand to themselves)
        lengths = np.concatenate(
            [
                np.ones(self.base_vocab_size, dtype=np.int64),
                np.asarray([len(p) for p in self.pieces], dtype=np.int64),
            ]
        )
        self.expansion_ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.expansion_ptr[1:])
        flat = [np.arange(self.base_vocab_size, dtype=np.int64)] + [
            np.asarray(p, dtype=np.int64) for p in self.pieces
        ]
        self.expansion = np.concatenate(flat)

    @property
    def num_merged(self) -> int:
        return len(self.pieces)

    @property
    def vocab_size(self) -> int:
        return self.base_vocab_size + self.num_merged

    def sha256(self) -> str:
        return hashlib.sha256(self.model).hexdigest()

    # ---------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        sequences: Iterable[np.ndarray],
        base_vocab_size: int,
        alphabet: Sequence[int],
        model_type: str = "bpe",
        num_merges: int = 8000,
        max_piece_length: int = 64,
        num_threads: int = 1,
    ) -> LearnedMerges:
        """Train merges on base-id sequences.

        Args:
            sequences: base-id arrays (the part of each sequence merges apply to).
            base_vocab_size: ``B``; every id is below it.
            alphabet: every base id that may ever be segmented (each is kept as a piece).
            model_type: ``"bpe"`` or ``"unigram"``.
            num_merges: pieces to learn on top of the alphabet (a soft limit: a small corpus
                may support fewer).
            max_piece_length: longest piece, in base tokens.
        """
        if model_type not in ("bpe", "unigram"):
            raise MergesError(f"merges model_type must be 'bpe' or 'unigram', got {model_type!r}")
        if base_vocab_size > _MAX_BASE_VOCAB:
            raise MergesError(
                f"a base vocabulary of {base_vocab_size} ids is larger than the {_MAX_BASE_VOCAB} "
                "private-use characters available to SentencePiece"
            )
        alphabet = sorted({int(a) for a in alphabet})
        alphabet_text = [ids_to_text(np.asarray([a])) for a in alphabet]

        def sentences() -> Iterable[str]:
            for sequence in sequences:
                if len(sequence):
                    yield ids_to_text(sequence)
            yield from alphabet_text  # every base token at least once, alone: never <unk>

        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences()),
            model_writer=writer,
            model_type=model_type,
            vocab_size=len(alphabet) + 1 + int(num_merges),
            hard_vocab_limit=False,
            character_coverage=1.0,
            add_dummy_prefix=False,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            split_by_unicode_script=False,
            split_by_number=False,
            split_by_whitespace=False,
            split_digits=False,
            max_sentencepiece_length=int(max_piece_length),
            max_sentence_length=1 << 30,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            unk_id=0,
            num_threads=int(num_threads),
            minloglevel=2,
        )
        merges = cls(writer.getvalue(), base_vocab_size, model_type)
        logger.info(
            "trained %s merges: %d pieces over %d base tokens", model_type, merges.num_merged, len(alphabet)
        )
        return merges

    # ---------------------------------------------------------------------------- apply
    def segment(self, sequences: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Segment base-id sequences.

        Returns:
            Per sequence ``(ids [P], lengths [P])``: merged ids and how many base tokens each covers.
        """
        encoded = self.processor.encode([ids_to_text(s) for s in sequences], out_type=int)
        out = []
        for sequence, sp_ids in zip(sequences, encoded):
            sp_ids = np.asarray(sp_ids, dtype=np.int64)
            ids = self.piece_token[sp_ids] if len(sp_ids) else np.zeros(0, dtype=np.int64)
            if len(ids) and ids.min() < 0:
                position = int(np.argmin(ids))
                raise MergesError(
                    f"merges segmentation produced <unk> at piece {position} of a sequence with base ids "
                    f"{np.asarray(sequence)[:20].tolist()}...: the merges model does not cover this vocabulary"
                )
            out.append((ids, self.piece_length[sp_ids]))
        return out

    def expand(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merged ids ``[P]`` -> ``(base ids [L], lengths [P])``; ids must be below :attr:`vocab_size`."""
        ids = np.asarray(ids, dtype=np.int64)
        lengths = self.expansion_ptr[ids + 1] - self.expansion_ptr[ids]
        starts = self.expansion_ptr[ids]
        offsets = np.cumsum(lengths) - lengths
        gather = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
        return self.expansion[gather], lengths
