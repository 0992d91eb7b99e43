"""The text of a dry run: every parameter with its value and origin, the sources, the steps, the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from ..scan import describe
from ..params.kinds import show
from .model import REF_GROUPS, Recipe
from ..params.registry import RECIPE_PARAMS as PARAMS


def _parameters(recipe: Recipe, raw: xr.Dataset) -> list[str]:
    width = max(len(p.path) for p in PARAMS)
    info = raw.attrs.get("info") or {}
    lines = []
    for p in PARAMS:
        v = recipe.values[p.path]
        unit = f" {p.unit}" if p.unit and v.value is not None else ""
        origin = v.origin
        if info.get(f"{p.path}_from", "default") not in ("default",) and not recipe.given(p.path):
            origin += "; not used: the source's value, below"
        lines.append(f"  {p.path:<{width}} = {show(v.value)}{unit}  [{origin}]")
    return lines


def _sources(recipe: Recipe, raw: xr.Dataset) -> list[str]:
    if recipe["name"] == "PtydScan":
        return [f"  source      {recipe['source']} (.ptyd, reprocessed)", f"  frames      {describe(raw)}"]
    lines = [f"  intensities {recipe['intensities.file']}:{recipe['intensities.key'] or '(found by convention)'}"]
    if recipe["positions.slow_key"] is not None:
        f = recipe["positions.file"] or recipe["intensities.file"]
        lines.append(f"  positions   {f}: slow {recipe['positions.slow_key']}, fast {recipe['positions.fast_key']}")
    elif recipe["positions_theory"] is not None:
        lines.append(f"  positions   positions_theory ({len(recipe['positions_theory'])} points)")
    for group in REF_GROUPS[1:]:
        if recipe[f"{group}.key"] is not None:
            lines.append(f"  {group:<11} {recipe[f'{group}.file'] or recipe['intensities.file']}:{recipe[f'{group}.key']}")
    lines.append(f"  frames      {describe(raw)}")
    return lines


def _geometry(raw: xr.Dataset) -> list[str]:
    """The geometry the output will carry, each value with where it came from."""
    info = raw.attrs.get("info") or {}
    units = {"energy": "keV", "distance": "m", "psize": "m"}
    lines = []
    for q, unit in units.items():
        value = raw.attrs.get(q)
        text = "unknown" if value is None else (
            f"({value[0]:g}, {value[1]:g}) {unit}" if isinstance(value, (tuple, list)) else f"{value:g} {unit}")
        lines.append(f"  {q:<11} {text}  [{info.get(f'{q}_from', 'default')}]")
    lines.append(f"  {'mask':<11} {info.get('mask') or 'none'}")
    positions = info.get("positions_from") or ("positions_theory" if "positions" in raw else "none")
    lines.append(f"  {'positions':<11} {positions}")
    return lines


def render_plan(recipe: Recipe, raw: xr.Dataset, out: dict[str, Any]) -> str:
    """The plan of ``run_recipe(recipe)`` as text; ``raw`` is the lazily opened source."""
    path = Path(recipe["dfile"])
    state = "exists, will be replaced" if path.exists() and out["overwrite"] else (
        "exists: refused without --overwrite" if path.exists() else "new")
    compression = "none" if out["compression"] is None else f"{out['compression']} level {out['compression_level']}"
    lines = [f"plan for {recipe.where} (dry run: nothing is read beyond metadata, nothing is written)",
             "parameters (value [origin]):", *_parameters(recipe, raw), "sources:", *_sources(recipe, raw),
             "geometry and metadata (value [origin]):", *_geometry(raw),
             "steps:",
             "  open_frames -> prepare (crop/pad, orientation, rebin, masks) -> to_ptyd" if recipe["name"] != "PtydScan"
             else "  open_ptyd -> prepare -> to_ptyd",
             "output:",
             f"  {path} ({state}); save {out['save']}, {compression}"
             + (", resume an interrupted write" if out["resume"] else "")]
    return "\n".join(lines)
