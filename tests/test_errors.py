"""Every named gfm error derives from gfm.GFMError (keeping its built-in base); gfm prints them as one message."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import pytest

import gfm
from gfm.utils.errors import GFMError, run_main


def gfm_modules() -> list[str]:
    """Every module of the gfm package (imported, so that each defines its classes)."""
    names = ["gfm"]
    for info in pkgutil.walk_packages(gfm.__path__, prefix="gfm."):
        names.append(info.name)
    for name in names:
        importlib.import_module(name)
    return names


def test_every_exception_defined_in_gfm_is_a_gfm_error() -> None:
    defined: dict[str, type] = {}
    for name in gfm_modules():
        for _, value in inspect.getmembers(sys.modules[name], inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("gfm"):
                defined[f"{value.__module__}.{value.__qualname__}"] = value
    assert len(defined) > 30, sorted(defined)  # the walk found the library's errors
    outside = sorted(name for name, cls in defined.items() if not issubclass(cls, GFMError))
    assert not outside, f"not derived from gfm.GFMError: {outside}"
    # each keeps a built-in base besides GFMError (ValueError, RuntimeError, FileNotFoundError, ...)
    bare = sorted(name for name, cls in defined.items() if cls is not GFMError and not any(
        base.__module__ == "builtins" and base not in (Exception, BaseException, object) for base in cls.__mro__))
    assert not bare, f"no built-in base besides GFMError: {bare}"


def test_one_class_per_meaning() -> None:
    from gfm import hub
    from gfm.training import checkpointing, errors
    from gfm.utils import config

    assert errors.CorruptCheckpointError is hub.CorruptCheckpointError
    assert issubclass(hub.CorruptCheckpointError, ValueError) and issubclass(hub.CorruptCheckpointError, RuntimeError)
    assert errors.ConfigError is config.ConfigError and errors.UnknownConfigKeyError is config.UnknownConfigKeyError
    assert not hasattr(checkpointing, "save_checkpoint") and callable(checkpointing.save_training_state)
    assert gfm.GFMError is GFMError


def failing_main(argv: list[str]) -> int:
    from gfm.utils.config import UnknownConfigKeyError

    if argv == ["gfm"]:
        raise UnknownConfigKeyError("configs/x.yaml: unknown config key 'max_stepz'; did you mean 'max_steps'?")
    if argv == ["other"]:
        raise KeyError("not a gfm error")
    return 7 if argv == ["seven"] else None


def test_run_main_prints_a_gfm_error_as_one_message(capsys: pytest.CaptureFixture) -> None:
    assert run_main(failing_main, ["gfm"], prog="recipe.py") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("recipe.py: error: UnknownConfigKeyError: configs/x.yaml: unknown config key 'max_stepz'; "
                            "did you mean 'max_steps'?\n")
    assert "Traceback" not in captured.err
    # other exceptions keep their traceback; return values become exit statuses
    with pytest.raises(KeyError, match="not a gfm error"):
        run_main(failing_main, ["other"])
    assert run_main(failing_main, ["seven"]) == 7 and run_main(failing_main, []) == 0


def test_gfm_console_script_prints_a_gfm_error_without_traceback(capsys: pytest.CaptureFixture, tmp_path) -> None:
    from gfm import cli

    status = cli.main(["describe", "no-such-source/nothing", "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("gfm: error: ") and "no-such-source/nothing" in captured.err
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1


def test_damaged_weights_are_one_family_of_errors() -> None:
    """hub's CorruptCheckpointError is the GFMCorruptWeightsError that from_pretrained raises, specialized."""
    from gfm import hub
    from gfm.modeling import GFMCorruptWeightsError

    assert issubclass(hub.CorruptCheckpointError, GFMCorruptWeightsError)
    assert issubclass(hub.CorruptCheckpointError, hub.HubError)
