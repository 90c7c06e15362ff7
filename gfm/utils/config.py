"""One configuration path for every recipe: a YAML file plus ``--key value`` overrides, read into dataclasses.

Every recipe (``tokenizers/``, ``pretrain/``, ``finetune/``) describes its options as fields of
one or more dataclasses, each field documented in ``metadata["help"]``, and reads them the way
transformers' ``run_clm.py`` does with ``HfArgumentParser``: one parser over a tuple of
dataclasses, one instance of each back::

    parser = ConfigArgumentParser((QuantizedTokenizerConfig, TrainQuantizerArguments), description=...)
    (config, args), options = parser.parse_config(argv)  # --config FILE, then --key value overrides

The same path serves library callers without a command line (:func:`load_config_dataclasses`).
What it guarantees:

- YAML 1.2 scalars (:func:`load_yaml`): PyYAML implements YAML 1.1, where an unquoted ``no`` /
  ``yes`` / ``on`` / ``off`` is a boolean and ``3e-4`` (no dot) a string, so ``mixed_precision:
  no`` would reach the config as ``False``. Here only ``true`` / ``false`` are booleans and every
  YAML 1.2 float is a number. Command-line values are YAML scalars too (``--seeds '[0, 1]'``).
- An unknown key is an :class:`UnknownConfigKeyError` naming where it came from (the file, or
  the command line: a command-line typo never blames the file) and the closest valid key.
- Every value is checked against its field's type (and ``metadata["choices"]``) and converted
  (``3e-4`` written as text becomes a float); a wrong type names the key and its source.
- Malformed YAML names the file, the line and the column.
- ``--help`` lists every key of every dataclass with its type, default and help text.

All of these raise :class:`ConfigError` (a :class:`~gfm.utils.errors.GFMError` and a ``ValueError``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import math
import os
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gfm.utils.errors import GFMError

__all__ = [
    "COMMAND_LINE",
    "ConfigArgumentParser",
    "ConfigError",
    "UnknownConfigKeyError",
    "check_fields",
    "coerce_value",
    "load_config_dataclasses",
    "load_yaml",
    "load_yaml_dataclass",
    "parse_overrides",
    "read_config_file",
]

T = TypeVar("T")

#: the source named in messages about ``--key value`` arguments.
COMMAND_LINE = "command line"

_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_DEST_PREFIX = "config_key:"


class ConfigError(GFMError, ValueError):
    """A configuration is invalid: malformed YAML, a wrong type, a value out of range or inconsistent."""


class UnknownConfigKeyError(ConfigError):
    """A key that no config dataclass defines (the message names its source and the closest valid key)."""


# ---------------------------------------------------------------------------------------------
# YAML 1.2 scalars
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _loader() -> type:
    """A ``yaml.SafeLoader`` subclass whose booleans and floats follow YAML 1.2 (built on first use)."""
    import yaml

    class Yaml12Loader(yaml.SafeLoader):
        pass

    Yaml12Loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Yaml12Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    Yaml12Loader.add_implicit_resolver(
        _FLOAT_TAG, re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
    )
    return Yaml12Loader


def load_yaml(text: str, source: str | None = None) -> Any:
    """Parse YAML ``text`` with YAML 1.2 booleans (``true`` / ``false`` only) and floats (``3e-4``).

    Args:
        text: the YAML document.
        source: what to call the text in an error message (a file name, ``"command line --seeds"``).

    Raises:
        ConfigError: the text is not valid YAML; the message names ``source``, the line and the column.
    """
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        where = source or "YAML text"
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where += f", line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or str(err)
        context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context:  # e.g. "while parsing a flow sequence", which may have started lines earlier
            problem += f" ({context}" + (f" that starts at line {context_mark.line + 1}" if context_mark else "") + ")"
        raise ConfigError(f"{where}: malformed YAML: {problem}") from err


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of a YAML config file (an empty file is an empty mapping).

    Raises:
        ConfigError: the file is missing, is not valid YAML (file, line and column named) or is
            not a mapping of keys to values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    loaded = load_yaml(path.read_text(encoding="utf-8"), source=str(path))
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: a config file is a YAML mapping of key: value, got a {type(loaded).__name__}")
    return dict(loaded)


def parse_overrides(arguments: Sequence[str]) -> dict[str, Any]:
    """Turn ``['--max_steps', '20', '--seed=3']`` into ``{'max_steps': 20, 'seed': 3}`` (YAML scalars).

    Dashes in a key become underscores (``--learning-rate`` is ``learning_rate``).

    Raises:
        ConfigError: an argument that is not ``--key value`` / ``--key=value``, or malformed YAML.
    """
    overrides: dict[str, Any] = {}
    index = 0
    while index < len(arguments):
        token = arguments[index]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"{COMMAND_LINE}: expected --key value, got {token!r}")
        key = token[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            index += 1
        else:
            if index + 1 >= len(arguments):
                raise ConfigError(f"{COMMAND_LINE}: --{key} needs a value")
            raw = arguments[index + 1]
            index += 2
        key = key.replace("-", "_")
        overrides[key] = load_yaml(raw, source=f"{COMMAND_LINE} --{key} {raw!r}")
    return overrides


# ---------------------------------------------------------------------------------------------
# type checks
# ---------------------------------------------------------------------------------------------
def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return None


def coerce_value(name: str, value: Any, annotation: Any, source: str | None = None) -> Any:
    """``value`` checked against the type ``annotation`` and converted where that is unambiguous.

    ``int``, ``float``, ``bool``, ``str``, ``Optional[...]`` / unions, ``Literal[...]``,
    ``list[...]`` and ``dict[..., ...]`` are checked (recursively); other annotations pass the
    value through. Numbers written as text (``"3e-4"``) become numbers; a whole float becomes an
    int for an ``int`` field; ``yes`` is not a boolean.

    Args:
        name: the config key (named in the error).
        source: where the value came from (a file name or :data:`COMMAND_LINE`), named in the error.

    Raises:
        ConfigError: the value does not fit the type.
    """
    prefix = f"{source}: " if source else ""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{prefix}config key '{name}' must be {expected}, got {value!r}")

    union = _union_args(annotation)
    if union is not None:
        if value is None:
            if type(None) in union:
                return None
            raise ConfigError(f"{prefix}config key '{name}' must not be empty (null)")
        errors = []
        for arg in union:
            if arg is type(None):
                continue
            try:
                return coerce_value(name, value, arg, source)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if annotation is Any:
        return value
    if value is None:
        raise ConfigError(f"{prefix}config key '{name}' must not be empty (null)")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        if value in args:
            return value
        raise fail(f"one of {list(args)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise fail("an integer")
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except ValueError:
            raise fail("an integer") from None
        if not number.is_integer():
            raise fail("an integer")
        return int(value) if isinstance(value, str) and value.strip().lstrip("+-").isdigit() else int(number)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise fail("a number")
        try:
            number = float(value)  # accepts text such as "3e-4"
        except ValueError:
            raise fail("a number") from None
        if not math.isfinite(number):
            raise fail("finite")
        return number
    if annotation is str:
        if isinstance(value, (str, os.PathLike)):
            return str(value)
        raise fail("a string")
    if origin is list or annotation is list:
        if not isinstance(value, (list, tuple)):
            raise fail("a list (YAML: [a, b]; on the command line quote it: --key '[a, b]')")
        (item_type,) = args or (Any,)
        return [coerce_value(f"{name}[{i}]", item, item_type, source) for i, item in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise fail("a mapping (YAML: {a: 1, b: 2}; on the command line quote it: --key '{a: 1}')")
        key_type, value_type = args or (Any, Any)
        return {
            coerce_value(f"{name} key", k, key_type, source): coerce_value(f"{name}[{k!r}]", v, value_type, source)
            for k, v in value.items()
        }
    return value


def _check_choices(name: str, value: Any, choices: Sequence[Any] | None, source: str | None) -> None:
    if choices is None:
        return
    for item in value if isinstance(value, list) else [value]:
        if item is not None and item not in choices:
            prefix = f"{source}: " if source else ""
            raise ConfigError(f"{prefix}config key '{name}': {item!r} is not one of {list(choices)}")


def check_fields(instance: Any) -> None:
    """Type-check and convert every field of a dataclass ``instance`` in place, and check ``metadata["choices"]``.

    For ``__post_init__`` of config dataclasses built directly in code (the loaders below check
    values before construction, naming where each came from).
    """
    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        value = coerce_value(f.name, getattr(instance, f.name), hints[f.name])
        _check_choices(f.name, value, f.metadata.get("choices"), None)
        setattr(instance, f.name, value)


# ---------------------------------------------------------------------------------------------
# dataclasses from a file and overrides
# ---------------------------------------------------------------------------------------------
def _as_tuple(dataclass_types: type | Sequence[type]) -> tuple[type, ...]:
    classes = (dataclass_types,) if isinstance(dataclass_types, type) else tuple(dataclass_types)
    for cls in classes:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
    return classes


def _fields(dataclass_types: tuple[type, ...]) -> dict[str, tuple[type, dataclasses.Field, Any]]:
    """Config key -> (dataclass, field, resolved type); a key defined twice is a programming error."""
    owners: dict[str, tuple[type, dataclasses.Field, Any]] = {}
    for cls in dataclass_types:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.name in owners:
                raise TypeError(f"config key '{f.name}' is defined by both {owners[f.name][0].__name__} and {cls.__name__}")
            owners[f.name] = (cls, f, hints[f.name])
    return owners


def _check_unknown_keys(values: Mapping[str, Any], known: Sequence[str], source: str, help_hint: str | None) -> None:
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            listing = f" ({help_hint})" if help_hint else ""
            raise UnknownConfigKeyError(f"{source}: unknown config key '{key}'{hint}{listing}")


def load_config_dataclasses(
    dataclass_types: type | Sequence[type],
    path: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    help_hint: str | None = None,
) -> tuple[Any, ...]:
    """One instance of each dataclass, from the YAML file at ``path`` with ``overrides`` on top.

    The file (and the overrides) is one flat mapping: every key belongs to exactly one of the
    dataclasses. Values are type-checked and converted (:func:`coerce_value`) before each
    dataclass is built, so its ``__post_init__`` sees clean values.

    Args:
        dataclass_types: one dataclass or a sequence of them (their field names must not repeat).
        path: a YAML config file, or ``None`` for defaults and overrides only.
        overrides: values from the command line (already parsed, e.g. by :func:`parse_overrides`);
            named as coming from the command line in messages.
        help_hint: appended to an unknown-key message, e.g. ``"`python x.py --help` lists every key"``.

    Raises:
        UnknownConfigKeyError: a key no dataclass defines (its source and the closest key named).
        ConfigError: malformed YAML, a missing required key, a value of the wrong type.
    """
    classes = _as_tuple(dataclass_types)
    owners = _fields(classes)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    origin = COMMAND_LINE
    if path is not None:
        origin = str(path)
        from_file = read_config_file(path)
        _check_unknown_keys(from_file, list(owners), origin, help_hint)
        values.update(from_file)
        sources.update(dict.fromkeys(from_file, origin))
    if overrides:
        _check_unknown_keys(overrides, list(owners), COMMAND_LINE, help_hint)
        values.update(overrides)
        sources.update(dict.fromkeys(overrides, COMMAND_LINE))
    arguments: dict[type, dict[str, Any]] = {cls: {} for cls in classes}
    for key, value in values.items():
        cls, f, annotation = owners[key]
        value = coerce_value(key, value, annotation, sources[key])
        _check_choices(key, value, f.metadata.get("choices"), sources[key])
        arguments[cls][key] = value
    for key, (_, f, _) in owners.items():
        if key not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            hint = f" ({f.metadata['help']})" if f.metadata.get("help") else ""
            raise ConfigError(f"{origin}: config key '{key}' is required{hint}")
    return tuple(cls(**arguments[cls]) for cls in classes)


def load_yaml_dataclass(
    path: str | os.PathLike | None, config_class: type[T], overrides: Mapping[str, Any] | None = None
) -> T:
    """``config_class`` from the YAML mapping at ``path`` with ``overrides`` on top (one-dataclass :func:`load_config_dataclasses`)."""
    (config,) = load_config_dataclasses((config_class,), path, overrides)
    return config


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    union = _union_args(annotation)
    if union is not None:
        return " | ".join(_type_name(arg) for arg in union)
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "required"


def _is_bool(annotation: Any) -> bool:
    return annotation is bool or (_union_args(annotation) or ()) in ((bool, type(None)), (type(None), bool))


def _first_doc_line(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    # dataclasses give an undocumented class the signature as __doc__
    return "" if not doc or doc.startswith(f"{cls.__name__}(") else doc.splitlines()[0]


def _normalize_option(token: str) -> str:
    """``--learning-rate=3e-4`` -> ``--learning_rate=3e-4`` (keys are field names; values are kept)."""
    if not token.startswith("--") or token == "--":
        return token
    name, equals, value = token[2:].partition("=")
    return f"--{name.replace('-', '_')}{equals}{value}"


class ConfigArgumentParser(argparse.ArgumentParser):
    """A recipe's command line: ``--config FILE`` plus ``--<key> <value>`` for every field of its dataclasses.

    ``--help`` shows one group per dataclass with every key's type, default and help. Values are
    YAML scalars (``--seeds '[0, 1]'``, ``--mixture_weights '{molecules: 2}'``); a boolean key
    alone (``--overwrite_output_dir``) means ``true``; dashes in keys are underscores
    (``--output-dir``). Prefixes are never guessed: ``--max_step`` is an unknown key, not
    ``--max_steps``. Recipe-only options that are not config keys (e.g. ``--local_rank``) are
    added with :meth:`add_argument` as usual and come back in the namespace.

    Args:
        dataclass_types: the recipe's dataclasses (field names must not repeat across them).
        config_help: help of ``--config``.
        config_required: whether ``--config`` must be given (otherwise defaults + overrides).
        **kwargs: ``argparse.ArgumentParser`` arguments (``description``, ``prog``, ...).
    """

    def __init__(
        self,
        dataclass_types: type | Sequence[type],
        *,
        config_help: str = "YAML file of the keys below",
        config_required: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("usage", "%(prog)s " + ("--config FILE" if config_required else "[--config FILE]")
                          + " [--<key> VALUE ...]")
        kwargs["allow_abbrev"] = False
        super().__init__(**kwargs)
        self.dataclass_types = _as_tuple(dataclass_types)
        self._owners = _fields(self.dataclass_types)
        self.add_argument("--config", required=config_required, metavar="FILE", help=config_help)
        for cls in self.dataclass_types:
            group = self.add_argument_group(cls.__name__, _first_doc_line(cls) or None)
            for key, (owner, f, annotation) in self._owners.items():
                if owner is not cls:
                    continue
                text = f"{f.metadata.get('help', '')} [{_type_name(annotation)}, default: {_default_text(f)}]"
                options: dict[str, Any] = {"dest": _DEST_PREFIX + key, "default": argparse.SUPPRESS,
                                           "metavar": "VALUE", "help": text.strip().replace("%", "%%")}
                if _is_bool(annotation):
                    options.update(nargs="?", const="true", metavar="true|false")
                group.add_argument(f"--{key}", **options)

    def parse_config(self, args: Sequence[str] | None = None) -> tuple[tuple[Any, ...], argparse.Namespace]:
        """Parse ``args`` (default ``sys.argv[1:]``) into one instance per dataclass and the other options.

        Returns:
            ``(instances, namespace)``: the dataclass instances in the order given to the parser,
            and a namespace holding ``config`` (the file) and any recipe-only options.

        Raises:
            UnknownConfigKeyError: an option that is no config key (named as coming from the
                command line, with the closest key).
            ConfigError: see :func:`load_config_dataclasses`; a malformed value names its key.
        """
        argv = [_normalize_option(token) for token in (sys.argv[1:] if args is None else args)]
        namespace, rest = self.parse_known_args(argv)
        hint = f"`{self.prog} --help` lists every key"
        if rest:
            if not rest[0].startswith("--"):
                raise ConfigError(f"{COMMAND_LINE}: unexpected argument {rest[0]!r}; options are --key value")
            name = rest[0][2:].partition("=")[0]
            _check_unknown_keys({name: None}, list(self._owners), COMMAND_LINE, hint)
            raise ConfigError(f"{COMMAND_LINE}: unexpected arguments {rest}; options are --key value")
        overrides: dict[str, Any] = {}
        options = argparse.Namespace()
        for dest, raw in vars(namespace).items():
            if not dest.startswith(_DEST_PREFIX):
                setattr(options, dest, raw)
                continue
            key = dest[len(_DEST_PREFIX):]
            overrides[key] = _override_value(key, raw, self._owners[key][2])
        instances = load_config_dataclasses(self.dataclass_types, namespace.config, overrides, help_hint=hint)
        return instances, options


def _override_value(key: str, raw: str, annotation: Any) -> Any:
    """A command-line value read as a YAML scalar; for a text field, text that YAML reads as a number stays text."""
    value = load_yaml(raw, source=f"{COMMAND_LINE} --{key} {raw!r}")
    text_field = annotation is str or str in (_union_args(annotation) or ())
    if text_field and isinstance(value, (bool, int, float)):
        return raw
    return value
