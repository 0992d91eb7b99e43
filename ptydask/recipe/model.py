"""The validated recipe: every parameter's value and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecipeError
from ..params.registry import children

DEFAULT, RECIPE, COMMAND_LINE, PTYD_META = "default", "recipe", "command line", "input .ptyd meta"
#: Groups that reference a dataset by ``{file, key}``.
REF_GROUPS = ("intensities", "mask", "flatfield", "darkfield", "normalisation", "framefilter",
              "recorded_energy", "recorded_distance", "recorded_psize")
#: Keys of the source side that a PtydScan recipe must not set (it reads ``source``).
RAW_ONLY = REF_GROUPS + ("positions", "frameorder", "padding", "outer_index", "electron_data")


@dataclass(frozen=True)
class Value:
    """A resolved parameter value and where it came from (default / recipe / command line / input .ptyd meta)."""

    value: Any
    origin: str


@dataclass
class Recipe:
    """A validated recipe: every parameter of :data:`~.table.PARAMS` with its value and origin."""

    values: dict[str, Value]
    file: Path | None
    base: Path

    @property
    def where(self) -> str:
        """How error messages name the recipe: its file, or ``recipe`` for a mapping."""
        return str(self.file) if self.file is not None else "recipe"

    def __getitem__(self, path: str) -> Any:
        return self.values[path].value

    def origin(self, path: str) -> str:
        return self.values[path].origin

    def given(self, path: str) -> bool:
        """True when the value was set in the recipe or on the command line."""
        return self.values[path].origin in (RECIPE, COMMAND_LINE)

    def group(self, name: str) -> dict[str, Any]:
        """The values directly inside group ``name``, as ``{leaf: value}``."""
        return {k: self.values[f"{name}.{k}"].value for k in children(name) if f"{name}.{k}" in self.values}

    def tree(self) -> dict[str, Any]:
        """All values as a nested mapping (the recipe with every default filled in)."""
        out: dict[str, Any] = {}
        for path, v in self.values.items():
            *parents, leaf = path.split(".")
            node = out
            for k in parents:
                node = node.setdefault(k, {})
            node[leaf] = v.value
        return out


def error(where: str, path: str, message: str) -> RecipeError:
    """A RecipeError in the common format ``<file>: <key.path>: <message>``."""
    return RecipeError(f"{where}: {path}: {message}" if path else f"{where}: {message}")
