"""The layer order of gfm holds: no upward import, no import of the root facade, no import cycle.

The checker (``gfm.testing.architecture``) is itself tested on a small package written into
``tmp_path`` with planted violations, each of which must be reported at its file and line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import gfm
from gfm.testing import architecture
from gfm.testing.architecture import LAYER_ORDER, check_architecture, parse_layer_order


def test_gfm_obeys_the_layer_order() -> None:
    violations = check_architecture(Path(gfm.__file__).parent)
    assert not violations, f"{len(violations)} architecture violation(s):\n" + "\n".join(map(str, violations))


def test_the_order_is_written_in_the_checker_docstring_as_data() -> None:
    assert LAYER_ORDER in architecture.__doc__
    layers = parse_layer_order(LAYER_ORDER)
    assert layers == [
        {"utils"}, {"data"}, {"tokenization"}, {"modeling"}, {"hub"}, {"training", "evaluation"},
        {"adapters"}, {"pipelines"}, {"cli"},
    ]
    with pytest.raises(ValueError, match=r"\['data'\] appear twice"):
        parse_layer_order("utils -> data -> {data, hub}")
    with pytest.raises(ValueError, match="'a.b' is not a room name"):
        parse_layer_order("utils -> a.b")


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root / "pkg"


# Every planted violation is marked `# <- rule` on its own line; the test reads the expected
# (file, line, rule) triples from those marks, so a line number is never written twice.
PLANTED = {
    "pkg/__init__.py": """
        from pkg import modeling as _modeling
        from pkg.pipelines import demo
        _EXPORTS = {"run": "pkg.pipelines.demo"}
    """,
    "pkg/utils/__init__.py": "",
    "pkg/utils/io.py": """
        import os

        from pkg.data.b import helper  # <- upward
    """,
    "pkg/data/__init__.py": """
        _LAZY_EXPORTS = {
            "helper": "pkg.data.b",
            "Split": "pkg.data.split",
        }
    """,
    "pkg/data/a.py": """
        from typing import TYPE_CHECKING

        from .b import helper  # <- cycle

        if TYPE_CHECKING:
            from pkg.data.typed import Typed
    """,
    "pkg/data/b.py": """
        import pkg.data.a


        def helper():
            return pkg.data.a
    """,
    "pkg/data/typed.py": """
        from pkg.data import a

        Typed = int
    """,
    "pkg/data/lazy_pair.py": """
        from pkg.data import lazy_partner


        def f():
            return lazy_partner
    """,
    "pkg/data/lazy_partner.py": """
        def g():
            from pkg.data import lazy_pair

            return lazy_pair
    """,
    "pkg/data/uses_testing.py": """
        from pkg.testing import reference  # <- free-room
    """,
    "pkg/data/split.py": "Split = object\n",
    "pkg/modeling/__init__.py": """
        from pkg.data.a import helper
        from ..utils import io
    """,
    "pkg/hub.py": """
        def load():
            import pkg  # <- facade

            return pkg
    """,
    "pkg/training/__init__.py": "",
    "pkg/training/loop.py": """
        from pkg.evaluation import metrics  # <- siblings
    """,
    "pkg/evaluation/__init__.py": "",
    "pkg/evaluation/metrics.py": "",
    "pkg/evaluation/zero_shot.py": """
        import logging

        from pkg.data.a import helper


        class Method:
            def states(self):
                from pkg.adapters.heads import backbone  # <- upward

                return backbone
    """,
    "pkg/adapters/__init__.py": """
        _LAZY_EXPORTS = {
            "backbone": "pkg.adapters.heads",
            "run": "pkg.pipelines.demo",  # <- export
        }
    """,
    "pkg/adapters/heads.py": """
        import importlib

        from pkg.evaluation.metrics import score
        from pkg import modeling  # <- facade


        def backbone():
            return importlib.import_module("pkg.cli")  # <- upward
    """,
    "pkg/pipelines/__init__.py": "",
    "pkg/pipelines/demo.py": """
        from pkg.adapters import heads
        from pkg.evaluation import zero_shot
        from pkg.training import loop
    """,
    "pkg/cli.py": """
        def main():
            from pkg.pipelines import demo
    """,
    "pkg/testing/__init__.py": "",
    "pkg/testing/reference.py": """
        from pkg.cli import main
    """,
    "pkg/extra.py": "x = 1  # <- unplaced\n",
}


def _expected(root: Path) -> set[tuple[str, int, str]]:
    expected = set()
    for relative in PLANTED:
        for number, line in enumerate((root / relative).read_text().splitlines(), start=1):
            if "# <- " in line:
                expected.add((relative, number, line.split("# <- ")[1].strip()))
    return expected


def test_the_checker_reports_each_planted_violation_at_its_file_and_line(tmp_path: Path) -> None:
    package = _write_package(tmp_path, PLANTED)
    violations = check_architecture(package)
    found = {(v.path, v.line, v.rule) for v in violations}
    assert found == _expected(tmp_path), "\n".join(map(str, violations))

    by_rule = {v.rule: v for v in violations if v.path != "pkg/utils/io.py"}
    upward = next(v for v in violations if v.path == "pkg/utils/io.py")
    assert str(upward).startswith("pkg/utils/io.py:3: [upward] utils -> data: imports pkg.data.b, a higher layer")
    lazy = next(v for v in violations if v.path == "pkg/evaluation/zero_shot.py")
    assert lazy.line == 8 and "evaluation -> adapters (lazy, inside a function)" in lazy.message
    assert "training -> evaluation" in by_rule["siblings"].message and "siblings" in by_rule["siblings"].message
    assert "pkg.adapters re-exports pkg.pipelines.demo" in by_rule["export"].message
    assert "(importlib.import_module)" in next(v for v in violations if v.line == 8 and "heads" in v.path).message
    cycle = by_rule["cycle"]
    # both files and both lines of the cycle are named; the TYPE_CHECKING import and the pair of
    # lazy imports (pkg/data/lazy_*.py) are no cycle
    assert "pkg.data.a (pkg/data/a.py:3) -> pkg.data.b (pkg/data/b.py:1) -> pkg.data.a" in cycle.message
    assert sum(v.rule == "cycle" for v in violations) == 1
    assert "module pkg.extra is in room 'extra', which is not in the layer order" in by_rule["unplaced"].message


def test_the_fixed_package_has_no_violation(tmp_path: Path) -> None:
    """The planted package with each violation fixed the way the messages advise."""
    files = dict(PLANTED)
    for planted in ("pkg/data/uses_testing.py", "pkg/extra.py"):
        del files[planted]
    files.update({
        "pkg/utils/io.py": "import os\n",
        "pkg/data/a.py": "from pkg.utils import io\n",
        "pkg/hub.py": "def load():\n    import pkg.modeling\n\n    return pkg.modeling\n",
        "pkg/training/loop.py": "from pkg.data import a\n",
        "pkg/evaluation/zero_shot.py": "from pkg.data.a import helper\n",
        "pkg/adapters/__init__.py": '_LAZY_EXPORTS = {"backbone": "pkg.adapters.heads"}\n',
        "pkg/adapters/heads.py": "import pkg.modeling\nfrom pkg.evaluation.metrics import score\n",
        "pkg/pipelines/__init__.py": '_LAZY_EXPORTS = {"run": "pkg.pipelines.demo"}\n',
    })
    assert all("# <- " not in text for text in files.values())
    package = _write_package(tmp_path, files)
    assert check_architecture(package) == []
