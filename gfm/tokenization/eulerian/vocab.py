"""Vocabulary of the Eulerian tokenizer: token layout, graph schemas and attribute encoding.

Token ids are laid out in blocks (``tokens`` in ``eulerian_vocab.json`` lists every one):

==========================  ==============================================================
block                       tokens
==========================  ==============================================================
special                     ``<pad> <bos> <eos> <mask> <sep> <jump> <unk> <target_node>
                            <target_edge> <dup> <fwd> <bwd> <node>``
node index                  ``<i:0> .. <i:V-1>`` (``V = num_index_tokens``)
index length                ``<ilen:2> .. <ilen:K>``: a label ``>= V`` is written as
                            ``<ilen:k>`` followed by ``k`` base-``V`` digits ``<i:d>``
digits                      ``<d:0> .. <d:B-1>`` base-``B`` digits of continuous values
                            (only when some field is continuous)
graph schema                one per layout seen in training, e.g.
                            ``<graph:molecules|x=int64[9]|edge_attr=int64[3]>``
categorical values          ``{domain}/{field}[{column}]={value}`` for every value seen
continuous heads            ``{domain}/{field}[{column}]:0``, ``:+k``, ``:-k``: sign and the
                            number ``k`` of base-``B`` digits that follow
==========================  ==============================================================

A *schema* fixes which attribute fields a graph has (``x``, ``x_cont``, ``edge_attr``,
``edge_attr_cont``), their kind (integer dtype: categorical; floating: continuous), dtype,
width and whether the graph is directed. Every sequence names its schema in its second token,
so decoding restores the exact layout; attribute tokens are namespaced by domain, field and
column, so one vocabulary serves every domain.

A continuous value ``v`` is stored as the integer ``q = round(v * 10**decimals)``: the head
token gives the sign and digit count, then the base-``B`` digits of ``|q|`` (most significant
first). Decoding gives ``q / 10**decimals``, within ``0.5 * 10**-decimals`` of ``v``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from gfm.utils.errors import GFMError

from ..base import TokenizerLoadError, check_known_keys, check_version
from ..special_tokens import SPECIAL_TOKENS

__all__ = [
    "EULERIAN_SPECIAL_TOKENS",
    "NODE_FIELDS",
    "EDGE_FIELDS",
    "FieldSpec",
    "GraphSchema",
    "EulerianVocabulary",
    "VocabularyError",
    "VOCABULARY_FORMAT",
    "VOCABULARY_VERSIONS",
    "UnknownValueError",
    "KIND_SPECIAL",
    "KIND_INDEX",
    "KIND_INDEX_LENGTH",
    "KIND_DIGIT",
    "KIND_SCHEMA",
    "KIND_CATEGORICAL",
    "KIND_CONTINUOUS_HEAD",
]

#: the Eulerian vocabulary's special tokens (ids 0-12): the shared ones (0-6, ``special_tokens``)
#: then the walk's own. Saved vocabularies record these ids: append, never reorder.
EULERIAN_SPECIAL_TOKENS: tuple[str, ...] = SPECIAL_TOKENS + (
    "<target_node>",
    "<target_edge>",
    "<dup>",
    "<fwd>",
    "<bwd>",
    "<node>",
)
NODE_FIELDS = ("x", "x_cont")
EDGE_FIELDS = ("edge_attr", "edge_attr_cont")

# token kinds (decode dispatches on them)
KIND_SPECIAL = 0
KIND_INDEX = 1
KIND_INDEX_LENGTH = 2
KIND_DIGIT = 3
KIND_SCHEMA = 4
KIND_CATEGORICAL = 5
KIND_CONTINUOUS_HEAD = 6

_INT64_LIMIT = 2**62  # |q| must stay well inside int64

#: ``format`` of ``eulerian_vocab.json`` and the ``version`` values this gfm reads (the last one it writes)
VOCABULARY_FORMAT = "gfm-eulerian-vocabulary"
VOCABULARY_VERSIONS: tuple[int, ...] = (1,)
#: keys of ``eulerian_vocab.json`` (the tokenizer adds ``settings`` and ``merges``) and of its nested entries
VOCABULARY_KEYS = ("format", "version", "num_index_tokens", "continuous_decimals", "continuous_base", "schemas",
                   "categorical", "tokens", "settings", "merges")
_SCHEMA_KEYS = ("domain", "directed", "node_fields", "edge_fields")
_CATEGORICAL_KEYS = ("domain", "field", "columns")


class VocabularyError(GFMError, ValueError):
    """A graph or a value cannot be written with this vocabulary (named in the message)."""


class UnknownValueError(VocabularyError):
    """A categorical attribute value (or a schema) was not seen when the vocabulary was trained."""


@dataclass(frozen=True)
class FieldSpec:
    """One attribute field of a schema.

    Attributes:
        name: ``"x"``, ``"x_cont"``, ``"edge_attr"`` or ``"edge_attr_cont"``.
        kind: ``"categorical"`` (integer or bool dtype) or ``"continuous"`` (floating dtype).
        dtype: numpy dtype name of the source tensor, restored by decode.
        width: number of columns (1 for a 1-D field).
        vector: ``True`` when the source tensor was 1-D (``[N]`` rather than ``[N, 1]``).
    """

    name: str
    kind: str
    dtype: str
    width: int
    vector: bool = False

    def describe(self) -> str:
        return f"{self.name}={self.dtype}" + ("" if self.vector else f"[{self.width}]")


@dataclass(frozen=True)
class GraphSchema:
    """The attribute layout of a graph: domain, direction and its node / edge fields."""

    domain: str
    directed: bool
    node_fields: tuple[FieldSpec, ...]
    edge_fields: tuple[FieldSpec, ...]

    @property
    def token(self) -> str:
        parts = [self.domain] + (["directed"] if self.directed else [])
        parts += [f.describe() for f in self.node_fields + self.edge_fields]
        return "<graph:" + "|".join(parts) + ">"

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "directed": self.directed,
            "node_fields": [asdict(f) for f in self.node_fields],
            "edge_fields": [asdict(f) for f in self.edge_fields],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> GraphSchema:
        return cls(
            domain=str(payload["domain"]),
            directed=bool(payload["directed"]),
            node_fields=tuple(FieldSpec(**f) for f in payload["node_fields"]),
            edge_fields=tuple(FieldSpec(**f) for f in payload["edge_fields"]),
        )


def check_vocabulary_keys(source: str, payload: dict[str, Any]) -> None:
    """Raise :class:`TokenizerLoadError` naming the first key of a vocabulary file this gfm does not write."""
    check_known_keys(source, payload, VOCABULARY_KEYS)
    field_keys = [f.name for f in fields(FieldSpec)]
    for i, schema in enumerate(payload.get("schemas") or []):
        check_known_keys(source, schema, _SCHEMA_KEYS, f"schemas[{i}]")
        for group in ("node_fields", "edge_fields"):
            for j, spec in enumerate(schema.get(group) or []):
                check_known_keys(source, spec, field_keys, f"schemas[{i}].{group}[{j}]")
    for i, entry in enumerate(payload.get("categorical") or []):
        check_known_keys(source, entry, _CATEGORICAL_KEYS, f"categorical[{i}]")


def _digits_needed(bound: int, base: int) -> int:
    """Number of base-``base`` digits of ``bound``."""
    k = 1
    while base**k <= bound:
        k += 1
    return k


class EulerianVocabulary:
    """Token ids, schemas and the vectorized attribute / number encoders.

    Args:
        schemas: every graph layout the tokenizer accepts.
        categorical_values: ``{(domain, field): [sorted values of column 0, column 1, ...]}``.
        num_index_tokens: ``V``, node-index tokens; larger labels take several tokens.
        continuous_decimals: decimal places kept of continuous values.
        continuous_base: ``B``, the base of continuous digits.
    """

    def __init__(
        self,
        schemas: Iterable[GraphSchema],
        categorical_values: dict[tuple[str, str], Sequence[Sequence[int]]],
        num_index_tokens: int = 512,
        continuous_decimals: int = 4,
        continuous_base: int = 1000,
    ) -> None:
        if num_index_tokens < 2:
            raise VocabularyError(f"num_index_tokens must be at least 2, got {num_index_tokens}")
        if continuous_base < 2:
            raise VocabularyError(f"continuous_base must be at least 2, got {continuous_base}")
        if not 0 <= continuous_decimals <= 12:
            raise VocabularyError(f"continuous_decimals must lie in [0, 12], got {continuous_decimals}")
        self.num_index_tokens = int(num_index_tokens)
        self.continuous_decimals = int(continuous_decimals)
        self.continuous_base = int(continuous_base)
        self.schemas: list[GraphSchema] = sorted(set(schemas), key=lambda s: s.token)
        tokens: list[str] = list(EULERIAN_SPECIAL_TOKENS)
        kinds: list[int] = [KIND_SPECIAL] * len(EULERIAN_SPECIAL_TOKENS)
        payload: list[int] = list(range(len(EULERIAN_SPECIAL_TOKENS)))

        self.index_base = len(tokens)
        tokens += [f"<i:{i}>" for i in range(self.num_index_tokens)]
        kinds += [KIND_INDEX] * self.num_index_tokens
        payload += list(range(self.num_index_tokens))
        self.max_index_digits = _digits_needed(2**63 - 1, self.num_index_tokens)
        self.index_length_base = len(tokens)
        tokens += [f"<ilen:{k}>" for k in range(2, self.max_index_digits + 1)]
        kinds += [KIND_INDEX_LENGTH] * (self.max_index_digits - 1)
        payload += list(range(2, self.max_index_digits + 1))

        continuous_keys = sorted(
            {
                (s.domain, f.name, column)
                for s in self.schemas
                for f in s.node_fields + s.edge_fields
                if f.kind == "continuous"
                for column in range(f.width)
            }
        )
        self.max_value_digits = _digits_needed(_INT64_LIMIT, self.continuous_base)
        self.digit_base = len(tokens)
        if continuous_keys:
            tokens += [f"<d:{d}>" for d in range(self.continuous_base)]
            kinds += [KIND_DIGIT] * self.continuous_base
            payload += list(range(self.continuous_base))

        self.schema_base = len(tokens)
        self.schema_index = {s: i for i, s in enumerate(self.schemas)}
        tokens += [s.token for s in self.schemas]
        kinds += [KIND_SCHEMA] * len(self.schemas)
        payload += list(range(len(self.schemas)))

        # categorical: ((domain, field) -> per column (sorted int64 values, first token id))
        self.categorical: dict[tuple[str, str], list[tuple[np.ndarray, int]]] = {}
        self.categorical_keys: list[tuple[str, str, int]] = []  # payload index -> (domain, field, column)
        self.categorical_value_of = []  # token offset -> value (decode)
        for (domain, name), columns in sorted(categorical_values.items()):
            tables = []
            for column, values in enumerate(columns):
                values = np.unique(np.asarray(values, dtype=np.int64))
                tables.append((values, len(tokens)))
                key_index = len(self.categorical_keys)
                self.categorical_keys.append((domain, name, column))
                tokens += [f"{domain}/{name}[{column}]={int(v)}" for v in values]
                kinds += [KIND_CATEGORICAL] * len(values)
                payload += [key_index] * len(values)
                self.categorical_value_of += [int(v) for v in values]
            self.categorical[(domain, name)] = tables
        self._categorical_first = len(tokens) - len(self.categorical_value_of)

        # continuous heads: 1 + 2K tokens per column: ":0", ":+1".. ":+K", ":-1".. ":-K"
        self.continuous: dict[tuple[str, str], list[int]] = {}
        self.continuous_keys: list[tuple[str, str, int]] = []
        for domain, name, column in continuous_keys:
            self.continuous.setdefault((domain, name), []).append(len(tokens))
            key_index = len(self.continuous_keys)
            self.continuous_keys.append((domain, name, column))
            prefix = f"{domain}/{name}[{column}]"
            tokens += [f"{prefix}:0"]
            tokens += [f"{prefix}:+{k}" for k in range(1, self.max_value_digits + 1)]
            tokens += [f"{prefix}:-{k}" for k in range(1, self.max_value_digits + 1)]
            kinds += [KIND_CONTINUOUS_HEAD] * (1 + 2 * self.max_value_digits)
            payload += [key_index] * (1 + 2 * self.max_value_digits)

        self.tokens = tokens
        if len(set(tokens)) != len(tokens):
            seen: set[str] = set()
            duplicate = next(t for t in tokens if t in seen or seen.add(t))  # type: ignore[func-returns-value]
            raise VocabularyError(
                f"two vocabulary entries are both written {duplicate!r}; a domain name must not contain '|', "
                "'/', '[' or '='"
            )
        self.kind = np.asarray(kinds, dtype=np.int8)
        self.payload = np.asarray(payload, dtype=np.int64)
        self.token_to_id = {t: i for i, t in enumerate(tokens)}
        for i, name in enumerate(EULERIAN_SPECIAL_TOKENS):
            setattr(self, name.strip("<>") + "_id", i)
        self._schema_by_key = {self.schema_key(s): s for s in self.schemas}
        self._dense = {key: self._dense_table(tables) for key, tables in self.categorical.items()}

    @staticmethod
    def _dense_table(tables: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Direct lookup of every column of a field: ``lut[clip(v + shift, low, high)]``, ``-1`` for unseen.

        Column ``c`` owns ``lut[low[c]:high[c] + 1]``, covering its values ``min-1 .. max+1``; the
        two end slots hold ``-1`` so clipping maps every out-of-range value to "unseen". ``None``
        (binary search instead) when a column's value range is wider than 65,536.
        """
        shift, low, high, parts = [], [], [], []
        cursor = 0
        for values, first in tables:
            if len(values) == 0 or int(values[-1]) - int(values[0]) > 65536:
                return None
            span = int(values[-1]) - int(values[0]) + 1
            lut = np.full(span + 2, -1, dtype=np.int64)
            lut[values - values[0] + 1] = first + np.arange(len(values))
            shift.append(cursor + 1 - int(values[0]))
            low.append(cursor)
            high.append(cursor + span + 1)
            parts.append(lut)
            cursor += span + 2
        return (np.asarray(shift, dtype=np.int64), np.asarray(low, dtype=np.int64),
                np.asarray(high, dtype=np.int64), np.concatenate(parts))

    # ------------------------------------------------------------------ identity and I/O
    def __len__(self) -> int:
        return len(self.tokens)

    @staticmethod
    def schema_key(schema: GraphSchema) -> tuple:
        return (schema.domain, schema.directed, schema.node_fields, schema.edge_fields)

    def find_schema(self, schema: GraphSchema) -> GraphSchema | None:
        return self._schema_by_key.get(self.schema_key(schema))

    def schema_token_id(self, schema: GraphSchema) -> int:
        return self.schema_base + self.schema_index[schema]

    def to_json(self) -> dict[str, Any]:
        categorical = []
        for (domain, name), tables in sorted(self.categorical.items()):
            categorical.append(
                {"domain": domain, "field": name, "columns": [values.tolist() for values, _ in tables]}
            )
        return {
            "format": VOCABULARY_FORMAT,
            "version": VOCABULARY_VERSIONS[-1],
            "num_index_tokens": self.num_index_tokens,
            "continuous_decimals": self.continuous_decimals,
            "continuous_base": self.continuous_base,
            "schemas": [s.to_json() for s in self.schemas],
            "categorical": categorical,
            "tokens": self.tokens,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any], source: str = "vocabulary") -> EulerianVocabulary:
        """Rebuild a vocabulary written by :meth:`to_json` and check the file against it.

        Raises:
            VocabularyError: not a gfm Eulerian vocabulary, or a malformed entry.
            TokenizerLoadError: a key this gfm does not write (named with its closest known key), a
                ``version`` this gfm does not read, special tokens at other ids than the fixed ones,
                or a token list that differs from the one the schemas and values give.
        """
        if not isinstance(payload, dict) or payload.get("format") != VOCABULARY_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise VocabularyError(f"{source}: not a gfm Eulerian vocabulary (format={found!r})")
        check_version(source, "version", payload.get("version"), VOCABULARY_VERSIONS)
        check_vocabulary_keys(source, payload)
        tokens = payload.get("tokens")
        if isinstance(tokens, list):
            stored = tokens[: len(EULERIAN_SPECIAL_TOKENS)]
            moved = [(i, t) for i, t in enumerate(stored) if t != EULERIAN_SPECIAL_TOKENS[i]]
            if moved:
                parts = [f"token id {moved[0][0]} is {moved[0][1]!r} but this gfm's special token at id {moved[0][0]} "
                         f"is {EULERIAN_SPECIAL_TOKENS[moved[0][0]]!r}"]
                parts += [f"id {i} is {t!r} but this gfm's is {EULERIAN_SPECIAL_TOKENS[i]!r}" for i, t in moved[1:]]
                raise TokenizerLoadError(
                    f"{source}: " + "; ".join(parts) + ". The special token ids are fixed "
                    "(EULERIAN_SPECIAL_TOKENS in gfm/tokenization/eulerian/vocab.py) and written into every corpus and "
                    "checkpoint made with the tokenizer: restore the token list, or save the tokenizer again"
                )
        try:
            vocabulary = cls(
                schemas=[GraphSchema.from_json(s) for s in payload["schemas"]],
                categorical_values={(c["domain"], c["field"]): c["columns"] for c in payload["categorical"]},
                num_index_tokens=payload["num_index_tokens"],
                continuous_decimals=payload["continuous_decimals"],
                continuous_base=payload["continuous_base"],
            )
        except (KeyError, TypeError) as err:
            raise VocabularyError(f"{source}: missing or malformed entry {err}; save the tokenizer again") from err
        if tokens != vocabulary.tokens:
            raise VocabularyError(
                f"{source}: the stored token list does not match the one rebuilt from its schemas and values "
                "(the file was edited or written by an incompatible version); save the tokenizer again"
            )
        return vocabulary

    def fingerprint(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    # ------------------------------------------------------------------ encoders (vectorized)
    def categorical_tokens(
        self, domain: str, name: str, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of a categorical field.

        Args:
            values: int64 ``[R, C]``.

        Returns:
            ``(ids [R, C], known [R, C] bool)``; unknown entries hold ``unk_id``.
        """
        tables = self.categorical.get((domain, name))
        rows, width = values.shape
        dense = self._dense.get((domain, name))
        if dense is not None and width <= len(dense[0]):
            shift, low, high, lut = dense
            slots = values + shift[:width]
            np.clip(slots, low[:width], high[:width], out=slots)
            ids = lut[slots]
            known = ids >= 0
            if not known.all():
                ids[~known] = self.unk_id  # type: ignore[attr-defined]
            return ids, known
        ids = np.empty((rows, width), dtype=np.int64)
        known = np.ones((rows, width), dtype=bool)
        for column in range(width):
            if tables is None or column >= len(tables):
                ids[:, column] = self.unk_id  # type: ignore[attr-defined]
                known[:, column] = False
                continue
            keys, first = tables[column]
            column_values = values[:, column]
            where = np.searchsorted(keys, column_values)
            np.minimum(where, len(keys) - 1, out=where)
            ok = keys[where] == column_values if len(keys) else np.zeros(rows, dtype=bool)
            ids[:, column] = np.where(ok, first + where, self.unk_id)  # type: ignore[attr-defined]
            known[:, column] = ok
        return ids, known

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """``round(values * 10**decimals)`` as int64 (``values`` finite and in range)."""
        return np.rint(values.astype(np.float64) * (10.0**self.continuous_decimals)).astype(np.int64)

    def max_continuous_magnitude(self) -> float:
        return _INT64_LIMIT / 10.0**self.continuous_decimals

    def continuous_tokens(self, domain: str, name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of a continuous field, row by row.

        Args:
            values: float ``[R, F]``, finite, ``|v| < max_continuous_magnitude()``.

        Returns:
            ``(lengths [R], flat)``: row ``r`` is written by ``flat[sum(lengths[:r]):][:lengths[r]]``
            (per column: one head token then its digits).
        """
        heads = self.continuous[(domain, name)]
        rows, width = values.shape
        q = self.quantize(values).reshape(-1)  # row-major: row, then column
        magnitude = np.abs(q)
        base = self.continuous_base
        digits = np.zeros(q.shape, dtype=np.int64)
        power = 1
        for _ in range(self.max_value_digits):
            digits += magnitude >= power
            power *= base
        head_offset = np.where(q > 0, digits, np.where(q < 0, self.max_value_digits + digits, 0))
        head_first = np.tile(np.asarray(heads[:width], dtype=np.int64), rows)
        per_value = 1 + digits
        starts = np.cumsum(per_value) - per_value
        flat = np.empty(int(per_value.sum()), dtype=np.int64)
        flat[starts] = head_first + head_offset
        if digits.any():
            owner = np.repeat(np.arange(len(q)), digits)
            within = np.arange(len(owner)) - np.repeat(np.cumsum(digits) - digits, digits)
            exponent = digits[owner] - 1 - within
            value = (magnitude[owner] // (np.int64(base) ** exponent)) % base
            flat[starts[owner] + 1 + within] = self.digit_base + value
        lengths = per_value.reshape(rows, width).sum(axis=1)
        return lengths, flat

    def index_tokens(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of node labels: one ``<i:L>`` below ``V``, else ``<ilen:k>`` and ``k`` digits.

        Args:
            labels: int64 ``[R]`` non-negative.

        Returns:
            ``(lengths [R], flat)``.
        """
        base = self.num_index_tokens
        small = labels < base
        if small.all():
            return np.ones(len(labels), dtype=np.int64), self.index_base + labels
        digits = np.ones(len(labels), dtype=np.int64)
        power = base
        for _ in range(self.max_index_digits - 1):
            digits += labels >= power
            power *= base
        lengths = np.where(small, 1, 1 + digits)
        starts = np.cumsum(lengths) - lengths
        flat = np.empty(int(lengths.sum()), dtype=np.int64)
        flat[starts[small]] = self.index_base + labels[small]
        large = np.nonzero(~small)[0]
        flat[starts[large]] = self.index_length_base + digits[large] - 2
        owner = np.repeat(large, digits[large])
        within = np.arange(len(owner)) - np.repeat(np.cumsum(digits[large]) - digits[large], digits[large])
        exponent = digits[owner] - 1 - within
        flat[starts[owner] + 1 + within] = self.index_base + (labels[owner] // (np.int64(base) ** exponent)) % base
        return lengths, flat

    def categorical_value(self, token_id: int) -> int:
        return self.categorical_value_of[token_id - self._categorical_first]
