"""Reading recipe text: JSON or YAML (``safe_load`` only: recipes are data), with line/column in errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import RecipeError

YAML_SUFFIXES = (".yaml", ".yml")


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


def parse_text(text: str, where: str, yaml_first: bool) -> Any:
    """Parse recipe ``text`` (from ``where``) as YAML or JSON; errors name the line and column."""
    if not yaml_first:
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{where}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
        except ValueError as exc:
            raise RecipeError(f"{where}: invalid JSON: {exc}") from None
    return parse_yaml(text, where)


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.load`` with the safe loader; a syntax error names the line and column."""
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise RecipeError(f"{where}: {pos}invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{where}: invalid YAML: {exc}") from None


def read_recipe_file(path: Path) -> Any:
    """The parsed content of a recipe file (``.json``: JSON; ``.yaml``/``.yml`` and others: YAML)."""
    try:
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
