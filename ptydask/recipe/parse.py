"""Reading recipe text: JSON or YAML (``safe_load`` only: recipes are data), with line/column in errors.

Parsing is bounded, so that a small hostile recipe cannot hang or exhaust the machine: at most
:data:`MAX_RECIPE_BYTES` of text, :data:`MAX_DEPTH` levels of nesting, :data:`MAX_VALUES` values
once YAML aliases are expanded (a 0.5 KB "billion laughs" document expands to 10^9), and integers
of at most :data:`MAX_INT_DIGITS` digits. Each limit is a one-line :class:`~ptydask.errors.RecipeError`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import RecipeError

YAML_SUFFIXES = (".yaml", ".yml")
MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of parameters; 1 MiB is far beyond any real one
MAX_DEPTH = 32  # nesting levels of mappings and lists
MAX_VALUES = 100_000  # values in the tree, YAML aliases expanded
MAX_INT_DIGITS = 30  # no parameter needs more; float(10**400) would overflow in the checks


def _yaml_loader() -> Any:
    """A ``yaml.SafeLoader`` that also reads ``75e-6`` (no dot) as a number, as JSON and ptypy users expect."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is in the 'recipes' extra
        raise RecipeError("YAML recipes need pyyaml: pip install 'ptydask[recipes]'") from None

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (write a finite number)")


def parse_text(text: str, where: str, yaml_first: bool) -> Any:
    """Parse recipe ``text`` (from ``where``) as YAML or JSON; errors name the line and column."""
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{where}: the recipe has {len(text)} characters; at most {MAX_RECIPE_BYTES} are read")
    if not yaml_first:
        try:
            tree = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_json_int,
                              parse_constant=_json_constant)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{where}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
        except ValueError as exc:
            raise RecipeError(f"{where}: invalid JSON: {exc}") from None
        except RecursionError:
            raise RecipeError(f"{where}: invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
        check_tree(tree, where)
        return tree
    return parse_yaml(text, where)


def _expanded_size(root: Any, where: str) -> None:
    """Refuse a YAML node graph whose aliases expand beyond the limits, before anything is constructed.

    Aliases make the composed document a graph: a node reached twice counts twice (as construction
    and every later walk would see it), computed once per node (memoised), so the check itself is
    linear in the document's size.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise RecipeError(f"{where}: invalid YAML: nested deeper than {MAX_DEPTH} levels")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise RecipeError(f"{where}: invalid YAML: an alias refers to a value that contains it")
        on_path.add(key)
        total = 1
        if isinstance(node.value, list):
            for item in node.value:
                for child in item if isinstance(item, tuple) else (item,):
                    total += size(child, depth + 1)
                    if total > MAX_VALUES:
                        raise RecipeError(f"{where}: invalid YAML: more than {MAX_VALUES} values once its "
                                          "aliases are expanded")
        on_path.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.load`` with the safe loader, bounded; a syntax error names the line and column."""
    import yaml

    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, where)
        tree = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise RecipeError(f"{where}: {pos}invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{where}: invalid YAML: {exc}") from None
    except RecursionError:
        raise RecipeError(f"{where}: invalid YAML: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    check_tree(tree, where)
    return tree


def check_tree(tree: Any, where: str) -> None:
    """Refuse a parsed recipe (or a mapping given in Python) beyond the nesting, size or number limits.

    The walk stops at :data:`MAX_VALUES` visits, so a tree that shares (or cycles through) its own
    lists and mappings is refused without being expanded.
    """
    stack: list[tuple[Any, int, str]] = [(tree, 0, "")]
    visits = 0
    while stack:
        value, depth, path = stack.pop()
        visits += 1
        at = f"{path}: " if path else ""
        if visits > MAX_VALUES:
            raise RecipeError(f"{where}: the recipe holds more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise RecipeError(f"{where}: {at}nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_INT_DIGITS:
            raise RecipeError(f"{where}: {at}a number of {len(str(abs(value)))} digits (at most {MAX_INT_DIGITS})")
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{path}.{k}" if path else str(k)[:80]) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value))


def read_recipe_file(path: Path) -> Any:
    """The parsed content of a recipe file (``.json``: JSON; ``.yaml``/``.yml`` and others: YAML)."""
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise RecipeError(f"{path}: the recipe has {path.stat().st_size} bytes; at most {MAX_RECIPE_BYTES} are read")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc}") from None
    return parse_text(text, str(path), yaml_first=path.suffix.lower() != ".json")


def parse_value(text: str) -> Any:
    """A command-line value (``--set key=VALUE``) read as YAML: ``2``, ``[10, 20]``, ``null``, ``true``, text."""
    try:
        return parse_yaml(text, "--set")
    except RecipeError:
        return text
