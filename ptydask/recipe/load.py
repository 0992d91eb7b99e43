"""Load and validate a recipe: a parameter tree in ptypy's ``scan.data`` vocabulary.

:func:`load_recipe` reads JSON/YAML or takes a mapping, applies command-line
overrides, fills in defaults (:mod:`.table`) and checks everything up front:
unknown keys (with the nearest known one), types and ranges, required
sources, files and HDF5 dataset paths. Each :class:`~ptydask.errors.RecipeError`
names the recipe file, the key path, the value found and what is allowed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import RecipeError
from .checks import check_recipe
from ..params.kinds import Choice, Invalid, describe_all, show
from .model import COMMAND_LINE, DEFAULT, RECIPE, Recipe, Value, error
from .parse import check_tree, parse_value, read_recipe_file
from ..params.registry import BY_PATH, GROUPS, children
from ..params.registry import RECIPE_PARAMS as PARAMS

# --------------------------------------------------------------------------- unknown keys


def _suggest(key: str, group: str) -> str:
    """`` (did you mean 'x.y'?)`` for the nearest known key: a sibling first, then any key of the tree."""
    prefix = f"{group}." if group else ""
    close = difflib.get_close_matches(key, children(group), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {prefix + close[0]!r}?)"
    every: dict[str, str] = {}
    for path in [p.path for p in PARAMS] + list(GROUPS):  # first wins: 'file' -> 'intensities.file'
        every.setdefault(path.rsplit(".", 1)[-1], path)
    close = difflib.get_close_matches(key, list(every), n=1, cutoff=0.75)
    return f" (did you mean {every[close[0]]!r}?)" if close else ""


def _unknown(where: str, key: Any, group: str) -> RecipeError:
    path = f"{group}.{key}" if group else str(key)
    known = ", ".join(children(group))
    inside = f" in {group}" if group else ""
    return error(where, "", f"unknown key {path!r}{_suggest(str(key), group)}; known keys{inside}: {known}")


# --------------------------------------------------------------------------- flattening


def _flatten(tree: Mapping[str, Any], where: str, group: str = "") -> dict[str, Any]:
    """``{'positions': {'skip': 2}}`` -> ``{'positions.skip': 2}``, rejecting unknown keys."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise error(where, group, f"keys must be strings, got {key!r}")
        path = f"{group}.{key}" if group else key
        if path in GROUPS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise error(where, path, f"got {show(value)}; expected a mapping with keys {', '.join(children(path))}")
            flat.update(_flatten(value, where, path))
        elif path in BY_PATH:
            flat[path] = value
        else:
            raise _unknown(where, key, group)
    return flat


def _overrides(items: Iterable[str] | Mapping[str, Any], where: str = "--set") -> dict[str, Any]:
    """Command-line overrides ``key.path=VALUE`` (values read as YAML) as ``{path: value}``."""
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if "=" not in item:
                raise RecipeError(f"--set {item!r}: expected key.path=value, e.g. --set positions.skip=2")
            key, text = item.split("=", 1)
            pairs.append((key.strip(), parse_value(text)))
    out: dict[str, Any] = {}
    for path, value in pairs:
        if path in GROUPS:
            raise RecipeError(f"--set {path}: {path!r} is a group; set one of its keys: "
                              + ", ".join(f"{path}.{k}" for k in children(path)))
        if path not in BY_PATH:
            group, _, leaf = path.rpartition(".")
            if group and group not in GROUPS:
                group, leaf = "", path
            raise RecipeError(str(_unknown(where, leaf, group)))
        out[path] = value
    return out


# --------------------------------------------------------------------------- checking


def _check(path: str, value: Any, where: str) -> Any:
    param = BY_PATH[path]
    if value is None:
        if param.nullable:
            return None
        raise error(where, path, f"got null; expected {describe_all(param.kind, False)}")
    try:
        return param.kind(value)
    except Invalid as exc:
        hint = ""
        if isinstance(param.kind, Choice) and isinstance(value, str):
            close = difflib.get_close_matches(value, [v for v in param.kind.values if isinstance(v, str)], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = describe_all(param.kind, param.nullable) if str(exc) == param.kind.describe else str(exc)
        raise error(where, path, f"got {show(value)}; expected {allowed}{hint}") from None


def load_recipe(
    recipe: str | os.PathLike | Mapping[str, Any] | Recipe,
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    dfile: str | os.PathLike | None = None,
    base: str | os.PathLike | None = None,
    check_files: bool = True,
) -> Recipe:
    """Read and validate a recipe.

    recipe : a JSON/YAML file path, a mapping (ptypy ``scan.data`` parameters), or a :class:`Recipe`.
    overrides : ``["key.path=value", ...]`` (values read as YAML) or ``{path: value}`` (command line).
    dfile : output path given on the command line (relative to the working directory).
    base : folder for relative paths of a mapping recipe (default: the working directory);
        a recipe file's relative paths resolve against the file's folder.
    check_files : check that the named files and HDF5 datasets exist.
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, Mapping):
        tree, file, where = recipe, None, "recipe"
        check_tree(tree, where)
        folder = Path(base) if base is not None else Path.cwd()
    else:
        file = Path(recipe).expanduser().resolve()
        tree, where = read_recipe_file(file), str(file)
        folder = file.parent
    if not isinstance(tree, Mapping):
        kind = "empty" if tree is None else f"a {type(tree).__name__}"
        raise RecipeError(f"{where}: the recipe must be a mapping of parameters (ptypy's scan.data), got {kind}")
    given = _flatten(tree, where)
    cli = _overrides(overrides)
    if dfile is not None:
        cli["dfile"] = os.fspath(dfile)

    def raw(path: str) -> tuple[Any, str] | None:
        if path in cli:
            return cli[path], COMMAND_LINE
        if path in given:
            return given[path], RECIPE
        return None

    found = raw("name")
    name = _check("name", found[0], where if found[1] == RECIPE else "--set") if found else BY_PATH["name"].default
    values: dict[str, Value] = {}
    for param in PARAMS:
        got = raw(param.path)
        if got is None:
            values[param.path] = Value(param.default_for(name), DEFAULT)
            continue
        value, origin = got
        value = _check(param.path, value, where if origin == RECIPE else "--set")
        value = param.kind.resolve(value, folder if origin == RECIPE else Path.cwd())
        values[param.path] = Value(value, origin)
    out = Recipe(values, file, folder)
    check_recipe(out, check_files=check_files)
    return out


__all__ = ["load_recipe"]
