"""The documentation stands alone: every link and every path it names exists in the repository.

Checked over ``README.md``, ``docs/*.md`` and ``benchmarks/RESULTS.md``:

- every relative markdown link ``[text](target)`` resolves to a file or folder of the repository,
  and its ``#fragment`` (if any) to a heading of the markdown file it points to (GitHub's anchors);
- no link and no code span leaves the repository (``../``-paths above the root, absolute paths);
- every repository path written in code (inline ``code`` or fenced blocks) that starts with a
  top-level folder of the project (``gfm/``, ``tests/``, ``configs/``, ``benchmarks/``, ``docs/``,
  the recipe folders) exists; ``{a,b}`` alternatives and ``*`` / ``<name>`` placeholders must
  each match at least one file, and ``tests/x.py::test_name`` names a test defined in that file;
- every ``gfm.x.y`` name written in code is an importable module or an attribute of one, and
  every ``from gfm... import ...`` line of a code block imports;
- the architecture page states the layer order exactly as the checker defines it.
- every benchmark script has its section in ``benchmarks/RESULTS.md`` and its row in README.md.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
while not (ROOT / "pyproject.toml").is_file() and ROOT != ROOT.parent:  # tests may move into subfolders
    ROOT = ROOT.parent

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").glob("*.md")])
DOC_IDS = [d.relative_to(ROOT).as_posix() for d in DOCS]

TOP_FOLDERS = ("gfm", "tests", "configs", "benchmarks", "docs", "tokenizers", "pretrain", "finetune")

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
_INLINE = re.compile(r"(?<!`)`([^`]+?)`(?!`)", re.S)
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_PATH = re.compile(r"(?<![\w./\-$~])((?:" + "|".join(TOP_FOLDERS) + r")/[\w./{},*<>\-]*(?:::[\w\[\]\-]+)?)")
_DOTTED = re.compile(r"(?<![\w./\-])(gfm(?:\.[A-Za-z_]\w*)+)")
_FROM_IMPORT = re.compile(r"^\s*from (gfm[\w.]*) import ([^#\n]+)", re.M)
_IMPORT = re.compile(r"^\s*import (gfm[\w.]*)\s*(?:#.*)?$", re.M)
_ABSOLUTE = re.compile(r"(?<![\w.:/])(/(?:work|home|tmp|root|Users|mnt)/[\w./\-]*)")


def _read(doc: Path) -> str:
    return doc.read_text(encoding="utf-8")


def _code(text: str) -> tuple[list[str], str]:
    """``(fenced block bodies, text without them)``; inline spans are read from the second."""
    blocks = [m.group(2) for m in _FENCE.finditer(text)]
    return blocks, _FENCE.sub("", text)


def _code_texts(text: str) -> list[str]:
    blocks, prose = _code(text)
    # an inline span may wrap inside a {a, b} list: `tests/x_{a,\nb}.py`
    return blocks + [re.sub(r",\s+", ",", m.group(1)) for m in _INLINE.finditer(prose)]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces -> hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    _, prose = _code(_read(doc))
    seen: dict[str, int] = {}
    anchors = set()
    for match in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", prose, re.M):
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _alternatives(path: str) -> list[str]:
    """Expand ``a/{x,y}.py`` into ``a/x.py``, ``a/y.py`` (nested braces too)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    out = []
    for choice in match.group(1).split(","):
        out.extend(_alternatives(path[: match.start()] + choice.strip() + path[match.end():]))
    return out


def _matches(pattern: str) -> list[Path]:
    pattern = re.sub(r"<[^<>/]*>", "*", pattern).rstrip("/")
    if "*" in pattern:
        return sorted(ROOT.glob(pattern))
    path = ROOT / pattern
    return [path] if path.exists() else []


def _missing_paths(text: str) -> list[str]:
    problems = []
    for code in _code_texts(text):
        for raw in _PATH.findall(code):
            path, _, test_name = raw.partition("::")
            path = path.rstrip(".,;:")
            if not path or path.endswith("/<"):
                continue
            for candidate in _alternatives(path):
                found = _matches(candidate)
                if not found:
                    problems.append(f"`{raw}`: {candidate} does not exist")
                elif test_name:
                    name = test_name.split("[")[0]
                    if not any(re.search(rf"^\s*(?:(?:async )?def|class) {re.escape(name)}\b", f.read_text(), re.M)
                               for f in found if f.is_file()):
                        problems.append(f"`{raw}`: {candidate} defines no {name}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_relative_links_resolve(doc: Path) -> None:
    _, prose = _code(_read(doc))
    problems = []
    for target in _LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.\-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if path.startswith("/") or not resolved.is_relative_to(ROOT):
            problems.append(f"({target}): points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"({target}): {resolved.relative_to(ROOT)} does not exist")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            problems.append(f"({target}): no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert not problems, f"{doc.relative_to(ROOT)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_paths_named_in_code_exist(doc: Path) -> None:
    problems = _missing_paths(_read(doc))
    assert not problems, f"{doc.relative_to(ROOT)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_nothing_points_outside_the_repository(doc: Path) -> None:
    text = _read(doc)
    problems = []
    for relative in re.findall(r"(?<![\w.])\.\./[\w./\-]*", text):
        resolved = (doc.parent / relative).resolve()
        if not (resolved.is_relative_to(ROOT) and resolved.exists()):
            problems.append(f"{relative!r}: not a path inside this repository")
    problems += [f"absolute path {m!r}" for m in _ABSOLUTE.findall(text)]
    problems += [f"{m!r}: a file outside this repository" for m in re.findall(r"\b(?:DESIGN|ENVIRONMENT)\.md\b", text)]
    assert not problems, f"{doc.relative_to(ROOT)}:\n" + "\n".join(problems)


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        for attribute in parts[end:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_gfm_names_and_imports_resolve(doc: Path) -> None:
    text = _read(doc)
    problems = []
    for code in _code_texts(text):
        for name in _DOTTED.findall(code):
            if name.endswith((".py", ".md", ".c", ".json", ".yaml")):
                continue
            if not _resolves(name):
                problems.append(f"`{name}` is no module or attribute")
    blocks, _ = _code(text)
    for block in blocks:
        for module, names in _FROM_IMPORT.findall(block):
            for imported in names.replace("(", "").replace(")", "").split(","):
                imported = imported.split(" as ")[0].strip()
                if imported and not _resolves(f"{module}.{imported}"):
                    problems.append(f"from {module} import {imported}: fails")
        for module in _IMPORT.findall(block):
            if not _resolves(module):
                problems.append(f"import {module}: fails")
    assert not problems, f"{doc.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_architecture_page_states_the_checked_layer_order() -> None:
    from gfm.testing.architecture import LAYER_ORDER

    page = _read(ROOT / "docs" / "ARCHITECTURE.md")
    assert LAYER_ORDER in page, f"docs/ARCHITECTURE.md does not state the layer order {LAYER_ORDER!r}"
    readme = _read(ROOT / "README.md")
    assert "(docs/ARCHITECTURE.md)" in readme, "README.md does not link docs/ARCHITECTURE.md"


def test_every_benchmark_has_a_results_section_and_a_readme_row() -> None:
    results = ROOT / "benchmarks" / "RESULTS.md"
    headings = _anchors(results)
    readme = _read(ROOT / "README.md")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        assert any(h == script.stem or h.startswith(script.stem + "-") for h in headings), (
            f"benchmarks/RESULTS.md has no section '## {script.stem}' for {script.name}"
        )
        assert f"`benchmarks/{script.name}`" in readme, f"README.md's benchmark table does not list {script.name}"


# --- the checker itself, on planted cases -------------------------------------------------------


def test_slug_follows_github() -> None:
    assert _slug("attention_speed") == "attention_speed"
    assert _slug("1. Graphs: `torch_geometric.data.Data`") == "1-graphs-torch_geometricdatadata"
    assert _slug("How to add an attention backend") == "how-to-add-an-attention-backend"


def test_planted_paths_are_reported() -> None:
    text = (
        "see `gfm/data/registry.py` and `gfm/no_such_module.py`, `configs/finetune/{cora,nope}.yaml`,\n"
        "```bash\npython tokenizers/train_tokenizer.py --config configs/tokenizers/missing.yaml\n```\n"
        "`tests/test_docs_links.py::test_planted_paths_are_reported`, "
        "`tests/test_docs_links.py::test_not_there`\n"
    )
    problems = "\n".join(_missing_paths(text))
    assert "gfm/no_such_module.py does not exist" in problems
    assert "configs/finetune/nope.yaml does not exist" in problems
    assert "configs/tokenizers/missing.yaml does not exist" in problems
    assert "defines no test_not_there" in problems
    assert "registry.py" not in problems and "cora.yaml" not in problems
    assert "test_planted_paths_are_reported" not in problems
