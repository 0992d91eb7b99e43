"""Generate ``docs/recipe.md`` from the parameter registry (``python -m ptydask.recipe > docs/recipe.md``)."""

from __future__ import annotations

from ..params.kinds import describe_all, show
from ..params.registry import GROUPS, NAMES, PARAMS as EVERY, Param, prepare_only, vocabulary
from ..params.registry import RECIPE_PARAMS as PARAMS

#: Top-level keys that belong to ptypy's Hdf5Loader.
HDF5_TOP = ("intensities", "positions", "mask", "flatfield", "darkfield", "normalisation", "framefilter",
            "recorded_energy", "recorded_distance", "recorded_psize", "padding", "outer_index", "electron_data",
            "frameorder")

INTRO = """# Recipe reference

A recipe is ptypy's `scan.data` parameter tree, written as JSON or YAML (read with
`yaml.safe_load`: data only) or passed as a Python mapping. ptypy's `PtyScan` and
`Hdf5Loader` parameter names are used unchanged; ptydask's own additions are listed
last. Run one with `ptydask prepare RECIPE` or `ptydask.recipe.run_recipe(RECIPE)`.

- Every key is checked before anything is read: unknown keys (the nearest known key
  is suggested), types, ranges, required sources, files and HDF5 dataset paths.
  Errors name the recipe file, the key path, the value found and what is allowed.
- Relative file paths resolve against the recipe file's folder (command-line paths
  against the working directory).
- `name` selects the defaults: {names}. `Hdf5Loader` (and `Hdf5LoaderFast`) default
  `shape` to null (whole frame); `PtydScan` reprocesses the `.ptyd` given as `source`,
  whose meta gives the defaults of `shape`, `center`, `psize`, `energy`, `distance`,
  `label` and `version`.
- Semantics are those of ptypy's `PtyScan` pipeline with the documented meaning of
  `auto_center`, also for `Hdf5Loader` names (ptypy's Hdf5Loader read-time crop,
  integer truncation and ignored `num_frames` are not copied).
- Stage: where the value goes — `source` (`open_frames`), `prepare`, `meta`,
  `output` (`to_ptyd`), `unused` (accepted for ptypy compatibility, no effect).
- Command line: `--set key.path=value` overrides a value (read as YAML),
  `--dfile` the output; `--dry-run` prints every value with its origin.

This file is generated from the parameter registry `ptydask/params/registry.py`; do not edit it by hand
(`python -m ptydask.recipe > docs/recipe.md`).
"""

HEADER = "| key | default | allowed values | unit | stage | meaning |\n|---|---|---|---|---|---|"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(p: Param) -> str:
    text = f"`{show(p.default)}`"
    for name, value in p.by_name.items():
        text += f" ({name}: `{show(value)}`)"
    return text


def _row(p: Param) -> str:
    cells = [f"`{p.path}`", _default(p), describe_all(p.kind, p.nullable), p.unit, p.stage, p.doc]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _section(p: Param) -> str:
    top = p.path.split(".")[0]
    if p.ext:
        return "ptydask extensions"
    if top == "source":
        return "PtydScan"
    return "Hdf5Loader" if top in HDF5_TOP else "PtyScan"


SECTIONS = {
    "PtyScan": "ptypy's `PtyScan` parameters (`scan.data`).",
    "PtydScan": "ptypy's `.ptyd` reader; in ptydask `name: PtydScan` reprocesses a `.ptyd` into `dfile`.",
    "Hdf5Loader": "ptypy's `Hdf5Loader` source parameters. A group's `file` defaults to `intensities.file`; "
                  "a group is used when its `key` is set.",
    "ptydask extensions": "Not in ptypy; the defaults give ptypy's result.",
}


INTERFACES = {
    "prepare": "`ptydask.prepare(scan, ...)` keywords",
    "ptyscan": "`ptydask.PtyScan` parameters (`DEFAULT`)",
    "plugin": "ptypy plugin `PtydaskScan` parameters (besides ptypy's own `PtyScan` ones)",
}


def _interfaces() -> list[str]:
    """The Python interfaces' vocabularies and the parameters only they take."""
    names = lambda paths: ", ".join(f"`{p}`" for p in paths)  # noqa: E731
    out = ["## Python interfaces", "",
           "The same registry gives the parameters of the Python interfaces:", ""]
    out += [f"- {text}: {names(p.path for p in vocabulary(use))}" for use, text in INTERFACES.items()]
    out += [f"- `PtyScan(prepare_options=...)` keys (`prepare` keywords that are no PtyScan parameter): "
            f"{names(prepare_only())}", "", "Parameters not taken by recipes:", "", HEADER]
    out += [_row(p) for p in EVERY if "recipe" not in p.uses] + [""]
    return out


def render_docs() -> str:
    """The markdown reference of every recipe parameter, then the Python interfaces' vocabularies."""
    out = [INTRO.format(names=", ".join(f"`{n}`" for n in NAMES))]
    for section, text in SECTIONS.items():
        out += [f"## {section}", "", text, ""]
        params = [p for p in PARAMS if _section(p) == section]
        groups = [g for g in GROUPS if any(p.path.startswith(g + ".") for p in params)]
        if groups:
            out += ["Groups:", ""] + [f"- `{g}`: {GROUPS[g]}" for g in groups] + [""]
        out += [HEADER] + [_row(p) for p in params] + [""]
    return "\n".join(out + _interfaces())
