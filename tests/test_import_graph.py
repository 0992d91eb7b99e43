"""The import graph of ``ptydask``, from the source parsed with :mod:`ast` (every ``import`` and
``from ... import``, at module level or inside functions): the top-level parts of the package
(subpackages and modules) import each other without cycles, only downwards through the layers
below, the package root (the public facade) is imported by none of them, and no private name
(a module or attribute starting with ``_``) is imported from another part."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ptydask"

#: Layer of each top-level part: a part may import parts of its own layer or lower ones only.
LAYERS = {
    "errors": 0, "config": 0, "buffers": 0, "simulate": 0, "cache": 0, "labels": 0, "progress": 0, "version": 0,
    "scan": 1, "blocks": 1, "params": 1,
    "io": 2, "sources": 2, "steps": 2, "execution": 2,
    "ptyd": 3, "sinks": 3,
    "parallel": 4, "onepass": 4, "packages": 4,
    "ptyscan": 5, "compat": 5, "recipe": 5, "live": 5, "plots": 5, "demo": 5,
    "cli": 6, "ptypy_plugin": 6, "__main__": 7,
}

#: Private names still imported across parts, in code this branch does not own (each listed once, so
#: that the list can only shrink: an entry that no longer occurs fails the test too).
KNOWN_PRIVATE: set[tuple[str, str]] = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _part(module: str) -> str:
    """The top-level part of ``ptydask.<part>...`` (``""`` for the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports() -> list[tuple[str, str, str | None]]:
    """(importing module, imported module, imported name or ``None``) for every ptydask import."""
    found = []
    for module, (path, is_pkg) in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(module, a.name, None) for a in node.names if a.name.split(".")[0] == "ptydask"]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    here = module.split(".") if is_pkg else module.split(".")[:-1]
                    here = here[: len(here) - node.level + 1]
                    base = ".".join(here + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != "ptydask":
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.append((module, sub, None) if sub in MODULES else (module, base, alias.name))
    return found


IMPORTS = _imports()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in IMPORTS:
        a, b = _part(importer), _part(imported)
        if a != b:
            graph.setdefault(a, set()).add(b)
    return graph


def test_the_parser_sees_the_imports():
    """A check of the check: known edges are found, relative imports resolved."""
    assert ("ptydask.ptyd.writer", "ptydask.ptyd.options", "WriteOptions") in IMPORTS
    assert ("ptydask.onepass", "ptydask.execution.passes", "fail") in IMPORTS
    assert "execution" in _graph()["ptyd"]


def test_no_cycle_between_parts():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(p or "ptydask" for p in cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])


def test_no_part_imports_the_package_root():
    offenders = sorted({i for i, imported, _ in IMPORTS if imported == "ptydask" and _part(i)})
    assert offenders == [], f"these import the ptydask facade (import the module that defines the name): {offenders}"


def test_imports_go_down_the_layers():
    unknown = sorted({p for p in map(_part, MODULES) if p and p not in LAYERS})
    assert unknown == [], f"parts without a layer in tests/test_import_graph.py LAYERS: {unknown}"
    upward = sorted({(a, b) for a, targets in _graph().items() if a for b in targets
                     if b and LAYERS[b] > LAYERS[a]})
    assert upward == [], f"imports from a lower layer to a higher one: {upward}"


def test_no_private_name_imported_across_parts():
    found = set()
    for importer, imported, name in IMPORTS:
        if _part(importer) == _part(imported) or not _part(importer):
            continue
        names = imported.split(".")[1:] + ([name] if name else [])
        if any(n.startswith("_") and not (n.startswith("__") and n.endswith("__")) for n in names):
            found.add((importer, imported if name is None else f"{imported}.{name}"))
    normalised = {(i, t if t in MODULES else t.rsplit(".", 1)[0]) for i, t in found}
    assert normalised - KNOWN_PRIVATE == set(), "private names imported across parts"
    assert KNOWN_PRIVATE - normalised == set(), "fixed: remove these from KNOWN_PRIVATE"
