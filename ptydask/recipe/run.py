"""Run a recipe: ``open_frames`` (or ``open_ptyd``) -> ``prepare`` -> ``to_ptyd``, one pipeline.

:func:`source_spec`, :func:`prepare_kwargs` and :func:`output_kwargs` map
the recipe onto the three public functions; :func:`run_recipe` chains them,
or only describes the plan (``dry_run``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import OutputExistsError, ParameterError, PtydaskError, ScanError
from ..onepass import prepare_to_ptyd
from ..params.registry import vocabulary
from ..ptyd import open_ptyd
from ..sinks import to_cxi
from ..sources import open_frames
from ..steps import prepare
from ..steps.pipeline import plan_prepare
from .load import load_recipe
from .model import Recipe, error

#: ``prepare`` keywords taken from the recipe as they are: the registry's recipe parameters that ``prepare``
#: also takes (``num_frames`` is set below, it follows ``positions_theory``).
PREPARE_KEYS = tuple(p.path for p in vocabulary("recipe") if "prepare" in p.uses and p.path != "num_frames")
GEOMETRY = ("energy", "distance", "psize")
#: What ``run_recipe`` can write.
OUTPUT_FORMATS = ("ptyd", "cxi")


def _tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _ref(recipe: Recipe, group: str, *extra: str, given_only: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """``{file, key, ...}`` of a reference group, or ``None`` when its key is not set; the ``given_only``
    keys only where the recipe sets them (a ``multiplier`` left out lets the file's ``units`` count)."""
    if recipe[f"{group}.key"] is None:
        return None
    ref = {"file": recipe[f"{group}.file"] or recipe["intensities.file"], "key": recipe[f"{group}.key"]}
    ref.update({k: recipe[f"{group}.{k}"] for k in extra})
    ref.update({k: recipe[f"{group}.{k}"] for k in given_only if recipe.given(f"{group}.{k}")})
    return ref


def _positions(recipe: Recipe) -> dict[str, Any] | None:
    pos = recipe.group("positions")
    touched = any(recipe.given(p) for p in recipe.values if p.startswith("positions."))
    if pos["slow_key"] is None and not touched:
        return None  # the source's own positions (CXI/NeXus), or positions_theory
    spec = {k: v for k, v in pos.items() if k != "bounding_box" and v is not None}
    if pos["slow_key"] is not None:
        spec["file"] = pos["file"] or recipe["intensities.file"]
    else:
        spec.pop("file", None)
    box = {k: _tuple(v) for k, v in recipe.group("positions.bounding_box").items() if v is not None}
    if box:
        spec["bounding_box"] = box
    return spec


def source_spec(recipe: Recipe) -> dict[str, Any]:
    """Keyword arguments of :func:`ptydask.sources.open_frames` (without source and key)."""
    spec: dict[str, Any] = {
        "positions": _positions(recipe),
        "mask": _ref(recipe, "mask", "invert"),  # none named: the file's own mask, if it has one
        "dark": _ref(recipe, "darkfield"),
        "flat": _ref(recipe, "flatfield"),
        "normalisation": _ref(recipe, "normalisation"),
        "framefilter": _ref(recipe, "framefilter"),
        "outer_index": recipe["outer_index"],
        "electron_data": recipe["electron_data"],
        "label": recipe["label"],
        "version": recipe["version"],
        "allow_external_links": recipe["allow_external_links"],
    }
    if recipe["frameorder.indices"] is not None:
        spec["frameorder"] = {"indices": recipe["frameorder.indices"]}
    for q in GEOMETRY:
        rec = _ref(recipe, f"recorded_{q}", *(("offset",) if q == "energy" else ()), given_only=("multiplier",))
        if rec is not None:  # ptypy's Hdf5Loader: a recorded value replaces the parameter
            spec[f"recorded_{q}"] = rec
        elif recipe.given(q):  # else what the file knows, else the default (open_recipe_source)
            spec[q] = _tuple(recipe[q])
    return {k: v for k, v in spec.items() if v is not None}


def _geometry_defaults(scan: xr.Dataset, recipe: Recipe) -> None:
    """Where neither the recipe nor the file gives a geometry value, the recipe's default (ptypy's);
    ``info['<quantity>_from']`` says for each where its value came from."""
    info = scan.attrs.setdefault("info", {})
    for q in GEOMETRY:
        if recipe.given(q):
            info[f"{q}_from"] = f"{recipe.values[q].origin} ({recipe.where})"
        elif scan.attrs.get(q) is None:
            value = _tuple(recipe[q])
            scan.attrs[q] = (float(value), float(value)) if q == "psize" and not isinstance(value, tuple) else value
            info[f"{q}_from"] = "default"


def check_positions(scan: xr.Dataset, recipe: Recipe) -> None:
    """A scan without positions cannot be written: say which keys give them, before any work."""
    if "positions" not in scan:
        raise ScanError(f"{recipe.where}: positions: the scan has none: {recipe['intensities.file']} holds no scan "
                        "positions; set positions.slow_key and positions.fast_key (and positions.file if they are "
                        "in another file), or positions_theory")


def prepare_kwargs(recipe: Recipe, scan: xr.Dataset) -> dict[str, Any]:
    """Keyword arguments of :func:`ptydask.steps.prepare` for ``scan`` (opened from the recipe)."""
    kw = {k: _tuple(recipe[k]) for k in PREPARE_KEYS}
    kw["num_frames"] = recipe["num_frames"]
    if recipe["positions_theory"] is not None:
        kw["num_frames"] = len(recipe["positions_theory"])  # ptypy: positions_theory fixes num_frames
    if "monitor" in scan:
        kw["normalisation"] = {"monitor": scan["monitor"].data, "sigma": recipe["normalisation.sigma"]}
    return kw


def output_kwargs(recipe: Recipe, *, overwrite: bool, resume: bool, progress: bool | None) -> dict[str, Any]:
    """Keyword arguments of :func:`ptydask.ptyd.to_ptyd` (without scan and path)."""
    return {
        "save": recipe["save"] or "append",
        "chunk_format": recipe["chunk_format"],
        "overwrite": overwrite,
        "compression": recipe["compression"],
        "compression_level": recipe["compression_level"],
        "progress": progress,
        "resume": resume,
    }


def output_path(recipe: Recipe) -> Path:
    if recipe["dfile"] is None:
        raise error(recipe.where, "dfile", "no output file: set dfile in the recipe or pass --dfile")
    return Path(recipe["dfile"])


# --------------------------------------------------------------------------- the pipeline


def _with_theory(scan: xr.Dataset, theory: list[list[float]], where: str) -> xr.Dataset:
    """Positions from ``positions_theory`` for a source without positions (first N frames)."""
    n = len(theory)
    if "positions" in scan:
        return scan
    if scan.sizes["frame"] < n:
        raise error(where, "positions_theory", f"{n} positions for {scan.sizes['frame']} frames")
    scan = scan.isel(frame=slice(0, n)) if scan.sizes["frame"] > n else scan
    return scan.assign(positions=(("frame", "axis"), np.asarray(theory, dtype=np.float64)))


def _blocks(scan: xr.Dataset, frames_per_block: int | None) -> xr.Dataset:
    """Re-block the frame-indexed Dask variables to ``frames_per_block`` frames (one chunk group each)."""
    if frames_per_block is None:
        return scan
    for name, var in scan.data_vars.items():
        if var.dims[:1] == ("frame",) and var.ndim == 3 and isinstance(var.data, da.Array):
            scan[name] = var.chunk({"frame": frames_per_block})
    return scan


def _recipe_info(recipe: Recipe) -> dict[str, Any]:
    """The parameters, for ``info/`` (documentation; ptypy writes its scan.data there too)."""
    return {"recipe_file": recipe.where, "recipe": recipe.tree()}


def open_recipe_source(recipe: Recipe) -> xr.Dataset:
    """The raw Scan a recipe names, lazily (nothing prepared)."""
    if recipe["name"] == "PtydScan":
        scan = open_ptyd(recipe["source"])
        psize = recipe["psize"]
        scan.attrs.update(
            energy=recipe["energy"], distance=recipe["distance"], label=recipe["label"], version=recipe["version"],
            psize=(float(psize), float(psize)) if not isinstance(psize, list) else tuple(psize),
        )
    else:
        scan = open_frames(recipe["intensities.file"], recipe["intensities.key"], **source_spec(recipe))
        _geometry_defaults(scan, recipe)
        if recipe["positions_theory"] is not None:
            scan = _with_theory(scan, recipe["positions_theory"], recipe.where)
        check_positions(scan, recipe)
    scan.attrs["info"] = {**(scan.attrs.get("info") or {}), **_recipe_info(recipe)}
    return _blocks(scan, recipe["frames_per_block"])


def build(recipe: Recipe) -> xr.Dataset:
    """The prepared, lazy Scan of a recipe."""
    scan = open_recipe_source(recipe)
    return prepare(scan, **prepare_kwargs(recipe, scan))


@dataclass
class RecipeResult:
    """What :func:`run_recipe` wrote (or, for a dry run, would write: ``plan`` is set, ``path`` not created)."""

    path: Path
    frames: int = 0
    shape: tuple[int, int] = (0, 0)
    dtype: str = ""
    center: tuple[float, float] | None = None
    size: int = 0
    seconds: float = 0.0
    plan: str | None = None

    def summary(self) -> str:
        """One line: frames, shape, dtype, centre, output path and size, seconds."""
        if self.plan is not None:
            return f"dry run: nothing written; output would be {self.path}"
        c = "none" if self.center is None else f"({self.center[0]:g}, {self.center[1]:g})"
        return (f"wrote {self.frames} frames of {self.shape[0]}x{self.shape[1]} {self.dtype}, centre {c} px, "
                f"to {self.path} ({_size(self.size)}) in {self.seconds:.1f} s")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _output_size(path: Path, save: str, chunk_format: str) -> int:
    total, i = path.stat().st_size, 0
    while save == "link" and path.with_name(path.name + chunk_format % i).exists():
        total += path.with_name(path.name + chunk_format % i).stat().st_size
        i += 1
    return total


def run_recipe(
    recipe: str | os.PathLike | Mapping[str, Any] | Recipe,
    *,
    dry_run: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    output_format: str = "ptyd",
) -> RecipeResult:
    """Run a recipe end to end: read the raw frames, prepare them, write the ``.ptyd`` (or CXI file).

    recipe : a :class:`Recipe` (see :func:`load_recipe`), a JSON/YAML file, or a mapping.
    dry_run : validate and open the sources lazily, write nothing; ``result.plan`` is the plan text.
    resume : continue an interrupted ``append`` write (``to_ptyd(resume=True)``).
    overwrite : replace an existing output.   progress : progress bar (None: on a terminal).
    output_format : ``"ptyd"`` (one read of the raw frames, :func:`~ptydask.prepare_to_ptyd`) or
        ``"cxi"`` (:func:`ptydask.sinks.to_cxi` of the prepared Scan; the recipe's ``save`` and
        ``chunk_format`` do not apply, a CXI file holds one frame dataset).

    Errors are :class:`~ptydask.errors.PtydaskError` subclasses whose message starts with the recipe file.
    """
    t0 = time.perf_counter()
    if output_format not in OUTPUT_FORMATS:
        raise ParameterError(f"output_format: expected one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
    recipe = load_recipe(recipe)
    path = output_path(recipe)
    if output_format == "cxi" and resume:
        raise ParameterError("resume: a CXI write cannot be resumed (only .ptyd 'append' writes can)")
    out = output_kwargs(recipe, overwrite=overwrite, resume=resume, progress=progress)
    try:
        if dry_run:
            from .plan import render_plan

            raw = open_recipe_source(recipe)
            plan_prepare(raw, **prepare_kwargs(recipe, raw))  # every check of prepare; reads no frame
            return RecipeResult(path, plan=render_plan(recipe, raw, out))
        if path.exists() and not overwrite:  # before any expensive step
            raise OutputExistsError(f"{path}: exists; pass overwrite=True (CLI: --overwrite) to replace it")
        scan = open_recipe_source(recipe)
        if output_format == "cxi":
            prepared = prepare(scan, **prepare_kwargs(recipe, scan))
            to_cxi(prepared, path, overwrite=overwrite, progress=progress, compression=out["compression"],
                   compression_level=out["compression_level"])
        else:
            prepared = prepare_to_ptyd(scan, path, prepare_kwargs(recipe, scan), **out)
    except PtydaskError as exc:
        if str(exc).startswith(recipe.where):
            raise
        raise type(exc)(f"{recipe.where}: {exc}") from exc
    data = prepared["data"]
    center = prepared.attrs.get("center")
    return RecipeResult(
        path=path, frames=int(data.shape[0]), shape=(int(data.shape[1]), int(data.shape[2])), dtype=str(data.dtype),
        center=None if center is None else (float(center[0]), float(center[1])),
        size=_output_size(path, out["save"] if output_format == "ptyd" else "append", out["chunk_format"]),
        seconds=time.perf_counter() - t0,
    )


__all__ = ["run_recipe", "RecipeResult", "build", "open_recipe_source", "source_spec", "prepare_kwargs",
           "output_kwargs"]
