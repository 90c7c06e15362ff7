"""The layer order of the gfm package, as data, and a checker that enforces it.

Layer order (lower never imports higher; a room may import itself)::

    utils -> data -> tokenization -> modeling -> hub -> {training, evaluation} -> adapters -> pipelines -> cli

Rules the checker applies to every module of a package tree (``check_architecture``):

- **Rooms.** A module's room is the first component of its name below the package
  (``gfm.data.arrow`` -> ``data``, ``gfm.hub`` -> ``hub``). A module in no room of the order is a
  violation: new top-level modules are placed in the order on purpose.
- **Downward only.** A module imports its own room or a room earlier in the order; lazy imports
  inside functions count the same as top-level ones, and so do ``importlib.import_module("...")``
  calls with a literal name. Rooms written together in braces (``{training, evaluation}``) are
  siblings: neither imports the other.
- **The root package is the facade.** ``gfm/__init__.py`` may import anything (its lazy-export
  table is the public API); nothing inside the package imports it (``import gfm``,
  ``from gfm import X``): import the submodule instead (``import gfm.modeling`` registers the Auto
  classes).
- **Lazy-export tables.** The strings of a sub-package ``__init__`` that name modules of the
  package (``{"load": "gfm.data.registry"}``) are imports of that package, and they point into its
  own room only: a package does not re-export a higher room's names.
- **Free rooms.** ``testing`` (reference implementations, fuzzers, synthetic generators for tests
  and benchmarks) may import any room; no other room imports it.
- **No cycles.** Imports executed when a module is imported (module level, class bodies,
  ``try``/``if`` blocks; not function bodies and not ``if TYPE_CHECKING:``) form no cycle between
  modules.

Use it from a test::

    violations = check_architecture(Path(gfm.__file__).parent)
    assert not violations, "\\n".join(map(str, violations))
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FREE_ROOMS",
    "LAYER_ORDER",
    "ImportEdge",
    "Violation",
    "check_architecture",
    "collect_imports",
    "parse_layer_order",
]

#: The order of the rooms, lowest first: ``->`` separates layers, ``{a, b}`` are siblings.
LAYER_ORDER = "utils -> data -> tokenization -> modeling -> hub -> {training, evaluation} -> adapters -> pipelines -> cli"

#: Rooms outside the order that may import every room and that no other room imports.
FREE_ROOMS: tuple[str, ...] = ("testing",)

_ROOT = "<root>"  # room of the package's own __init__ (the facade)
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def parse_layer_order(text: str) -> list[frozenset[str]]:
    """Layers, lowest first, from ``"a -> b -> {c, d} -> e"``: each layer is a set of sibling rooms."""
    layers: list[frozenset[str]] = []
    for part in text.split("->"):
        part = part.strip()
        if part.startswith("{") and part.endswith("}"):
            rooms = frozenset(r.strip() for r in part[1:-1].split(",") if r.strip())
        else:
            rooms = frozenset([part])
        if not rooms or not all(_DOTTED.match(r) and "." not in r for r in rooms):
            raise ValueError(f"layer order {text!r}: {part!r} is not a room name or a {{a, b}} group of them")
        seen = set().union(*layers) if layers else set()
        if rooms & seen:
            raise ValueError(f"layer order {text!r}: {sorted(rooms & seen)} appear twice")
        layers.append(rooms)
    return layers


@dataclass(frozen=True)
class ImportEdge:
    """One import of a module of the package by another.

    ``kind``: ``"import"`` (statement), ``"import_module"`` (``importlib.import_module`` literal) or
    ``"lazy_export"`` (a module name in an ``__init__``'s export table). ``at_import`` is True when
    the import runs while the importing module is itself imported (counts for cycles).
    ``from_root`` is True for ``import gfm`` / ``from gfm import X``.
    """

    source: str
    target: str
    path: str
    line: int
    kind: str
    at_import: bool
    from_root: bool = False


@dataclass(frozen=True)
class Violation:
    """One broken rule, printed as ``path:line: message``."""

    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


# ---------------------------------------------------------------------------------------------
# Collecting imports
# ---------------------------------------------------------------------------------------------


def _module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package tree."""
    package_dir = package_dir.resolve()
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(rel.parts)
        if any(not p.isidentifier() for p in parts):
            continue  # not importable (e.g. a stray "foo-bar.py"): never imported by name
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _known_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies in (``a.b.func`` -> ``a.b``).

    Never the root package for a longer name: ``pkg.missing.x`` is no import of the facade.
    """
    parts = name.split(".")
    for end in range(len(parts), 1 if len(parts) > 1 else 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, at_import: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below ``node`` with whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        child_at_import = at_import
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            # decorators and defaults run at import; the body does not
            for expr in [*getattr(child, "decorator_list", []), *child.args.defaults, *child.args.kw_defaults]:
                if expr is not None:
                    yield expr, at_import
                    yield from _walk(expr, at_import)
            yield child, at_import
            for stmt in child.body if isinstance(child.body, list) else [child.body]:
                yield stmt, False
                yield from _walk(stmt, False)
            continue
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield child, at_import
            for stmt in child.body:
                yield stmt, False
                yield from _walk(stmt, False)
            for stmt in child.orelse:
                yield stmt, at_import
                yield from _walk(stmt, at_import)
            continue
        yield child, child_at_import
        yield from _walk(child, child_at_import)


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        raise ValueError(f"relative import beyond the top of the package in {module}")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _import_module_literal(node: ast.Call) -> str | None:
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )
    if named and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def collect_imports(package_dir: str | Path) -> tuple[dict[str, Path], list[ImportEdge]]:
    """Modules of the package tree and every import between them (imports of other packages ignored)."""
    package_dir = Path(package_dir).resolve()
    root = package_dir.name
    modules = _module_files(package_dir)
    base = package_dir.parent
    edges: list[ImportEdge] = []
    seen: set[ImportEdge] = set()  # `from a import x, y` is one import of `a`
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        rel_path = path.relative_to(base).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

        def add(target_name: str, line: int, kind: str, at_import: bool, from_root: bool = False) -> None:
            target = _known_module(target_name, modules)
            edge = ImportEdge(module, target, rel_path, line, kind, at_import, from_root)  # noqa: B023
            if target is not None and edge not in seen:
                seen.add(edge)
                edges.append(edge)

        for node, at_import in _walk(tree, True):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == root or alias.name.startswith(root + "."):
                        add(alias.name, node.lineno, "import", at_import, from_root=alias.name == root)
            elif isinstance(node, ast.ImportFrom):
                source = (
                    _resolve_relative(module, is_package, node.level, node.module) if node.level else (node.module or "")
                )
                if source != root and not source.startswith(root + "."):
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    # `from pkg import sub` imports the submodule; `from pkg import name` the package.
                    # From the root it is always a use of the facade, whichever it names.
                    target = submodule if submodule in modules else source
                    add(target, node.lineno, "import", at_import, from_root=source == root)
            elif isinstance(node, ast.Call):
                literal = _import_module_literal(node)
                if literal is None:
                    continue
                if literal.startswith("."):
                    level = len(literal) - len(literal.lstrip("."))
                    literal = _resolve_relative(module, is_package, level, literal.lstrip(".") or None)
                if literal == root or literal.startswith(root + "."):
                    add(literal, node.lineno, "import_module", at_import, from_root=literal == root)
            elif (
                is_package
                and isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(root + ".")
                and _DOTTED.match(node.value)
            ):
                add(node.value, node.lineno, "lazy_export", False)
    return modules, edges


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------


def _room(module: str, root: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else _ROOT


def _cycles(edges: Iterable[ImportEdge]) -> list[list[ImportEdge]]:
    """One concrete cycle (as its edges) per strongly connected component of import-time edges."""
    graph: dict[str, dict[str, ImportEdge]] = {}
    for edge in edges:
        if edge.at_import and edge.source != edge.target:
            graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
            graph.setdefault(edge.target, {})

    # Tarjan's strongly connected components, iterative (deep packages must not hit the recursion limit)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    cycles = []
    for component in components:
        members = set(component)
        start = component[0]
        # shortest path start -> ... -> start inside the component (breadth first)
        parents: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            next_frontier = []
            for node in frontier:
                for succ in sorted(graph[node]):
                    if succ not in members:
                        continue
                    if succ == start:
                        found = node
                        break
                    if succ not in parents:
                        parents[succ] = node
                        next_frontier.append(succ)
                if found is not None:
                    break
            frontier = next_frontier
        path = [start] if found is None else [found]
        while path[-1] != start:
            path.append(parents[path[-1]])
        path.reverse()  # start, ..., found
        cycle_edges = [graph[a][b] for a, b in zip(path, [*path[1:], start])]
        cycles.append(cycle_edges)
    return cycles


def check_architecture(
    package_dir: str | Path,
    *,
    layer_order: str | Sequence[frozenset[str]] = LAYER_ORDER,
    free_rooms: Iterable[str] = FREE_ROOMS,
) -> list[Violation]:
    """Every import of the package tree at ``package_dir`` that breaks the layer order, and every cycle.

    Args:
        package_dir: the package's folder (the one holding its root ``__init__.py``).
        layer_order: ``"a -> b -> {c, d} -> e"`` (lowest first) or the parsed layers.
        free_rooms: rooms that may import anything and that nothing imports.

    Returns:
        violations sorted by file and line; empty when the package obeys every rule.
    """
    package_dir = Path(package_dir).resolve()
    root = package_dir.name
    layers = parse_layer_order(layer_order) if isinstance(layer_order, str) else list(layer_order)
    rank = {room: i for i, layer in enumerate(layers) for room in layer}
    free = frozenset(free_rooms)
    order_text = layer_order if isinstance(layer_order, str) else " -> ".join(
        "{" + ", ".join(sorted(layer)) + "}" if len(layer) > 1 else next(iter(layer)) for layer in layers
    )
    modules, edges = collect_imports(package_dir)
    base = package_dir.parent
    violations: list[Violation] = []

    for module, path in modules.items():
        room = _room(module, root)
        if room != _ROOT and room not in rank and room not in free:
            violations.append(Violation(
                path.relative_to(base).as_posix(), 1, "unplaced",
                f"module {module} is in room {room!r}, which is not in the layer order ({order_text}): "
                f"move it into a room or add the room to the order",
            ))

    for edge in edges:
        source_room, target_room = _room(edge.source, root), _room(edge.target, root)
        where = {"import": "", "import_module": " (importlib.import_module)", "lazy_export": " (lazy-export table)"}[
            edge.kind
        ]
        if not edge.at_import and edge.kind == "import":
            where = " (lazy, inside a function)"
        if source_room == _ROOT:
            continue  # the facade re-exports everything
        if edge.from_root or target_room == _ROOT:
            violations.append(Violation(
                edge.path, edge.line, "facade",
                f"{source_room} -> {root} (the root package){where}: nothing inside {root} imports the root "
                f"package; import the submodule itself (e.g. `import {root}.modeling`, `from {root}.x import y`)",
            ))
            continue
        if edge.kind == "lazy_export" and edge.source.count(".") >= 1:
            if target_room != source_room:
                violations.append(Violation(
                    edge.path, edge.line, "export",
                    f"{source_room} -> {target_room}{where}: package {edge.source} re-exports {edge.target}; "
                    f"a package exports only its own room's names: export it from {root}.{target_room}",
                ))
            continue
        if source_room == target_room or source_room in free:
            continue
        if target_room in free:
            violations.append(Violation(
                edge.path, edge.line, "free-room",
                f"{source_room} -> {target_room}{where}: {edge.target} is for tests and benchmarks only; "
                f"nothing in the library imports {root}.{target_room}",
            ))
            continue
        if source_room not in rank or target_room not in rank:
            continue  # reported as unplaced
        if rank[target_room] > rank[source_room]:
            violations.append(Violation(
                edge.path, edge.line, "upward",
                f"{source_room} -> {target_room}{where}: imports {edge.target}, a higher layer "
                f"(order: {order_text})",
            ))
        elif rank[target_room] == rank[source_room]:
            violations.append(Violation(
                edge.path, edge.line, "siblings",
                f"{source_room} -> {target_room}{where}: imports {edge.target}; {source_room} and "
                f"{target_room} are siblings and never import each other (order: {order_text})",
            ))

    for cycle in _cycles(edges):
        first = cycle[0]
        chain = " -> ".join(f"{e.source} ({e.path}:{e.line})" for e in cycle) + f" -> {first.source}"
        violations.append(Violation(
            first.path, first.line, "cycle",
            f"import cycle at module import time: {chain}; move the shared part into a lower module "
            f"or make one import lazy",
        ))

    return sorted(violations, key=lambda v: (v.path, v.line, v.rule, v.message))
