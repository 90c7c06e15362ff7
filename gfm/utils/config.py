"""YAML for configs: a loader with YAML 1.2 scalars, and a flat mapping read into a dataclass.

PyYAML implements YAML 1.1, where an unquoted ``no`` / ``yes`` / ``on`` / ``off`` is a boolean
and ``3e-4`` (no dot) is a string: ``mixed_precision: no`` would reach the config as ``False``
and ``--mixed_precision no`` would be refused. :func:`load_yaml` reads ``true`` / ``false``
only as booleans and every YAML 1.2 float as a number, as users expect.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"


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


def load_yaml(text: str) -> Any:
    """Parse YAML ``text`` with YAML 1.2 booleans (``true`` / ``false`` only) and floats (``3e-4``)."""
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass


def load_yaml_dataclass(
    path: str | os.PathLike,
    config_class: type[T],
    overrides: dict[str, Any] | None = None,
    error_class: type[Exception] = ValueError,
    what: str = "config",
) -> T:
    """``config_class`` from the YAML mapping at ``path`` with ``overrides`` applied on top.

    Args:
        path: a YAML file holding one mapping of ``config_class`` field names to values.
        config_class: a dataclass (parsed with ``transformers.HfArgumentParser``, so field types
            are converted as on a command line).
        overrides: keys replacing the file's values (e.g. from ``--key value`` arguments).
        error_class: exception raised for a file that is not a mapping or names an unknown key.
        what: how to call the config in messages (``"a fine-tuning config"``).
    """
    from transformers import HfArgumentParser

    payload = load_yaml(Path(path).read_text()) or {}
    if not isinstance(payload, dict):
        raise error_class(f"{path}: {what} is a YAML mapping of keys to values")
    payload.update(overrides or {})
    known = sorted(f.name for f in dataclasses.fields(config_class))
    for key in payload:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise error_class(f"{path}: unknown config key '{key}'{hint}")
    hints = typing.get_type_hints(config_class)
    for key, value in payload.items():
        payload[key] = _coerce_number(value, hints.get(key), key, path, error_class)
    (config,) = HfArgumentParser(config_class).parse_dict(payload, allow_extra_keys=False)
    return config


def _coerce_number(value: Any, hint: Any, key: str, path: Any, error_class: type[Exception]) -> Any:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; turn such strings into the field's number type.

    ``HfArgumentParser.parse_dict`` does not convert types, so without this a learning rate
    written ``3e-4`` would reach the optimizer as the string ``'3e-4'``.
    """
    if not isinstance(value, str):
        return value
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for number_type in (int, float):
        if number_type in options:
            try:
                return number_type(value) if number_type is float else int(value, 10)
            except ValueError:
                continue
    if float in options or int in options:
        raise error_class(f"{path}: config key '{key}' must be a number, got {value!r}")
    return value


def config_argument_parser(config_class: type, description: str, config_help: str) -> argparse.ArgumentParser:
    """A recipe's parser: ``--config`` plus every field of ``config_class`` listed with its help.

    Unknown ``--key value`` pairs are left to ``parse_known_args`` and become overrides.
    """
    keys = "\n".join(f"  {f.name}: {f.metadata.get('help', '')}" for f in dataclasses.fields(config_class))
    parser = argparse.ArgumentParser(
        description=description, epilog=f"config keys:\n{keys}", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help=config_help)
    return parser
