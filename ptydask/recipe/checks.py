"""Checks across parameters, and of the files a recipe names, before anything is read."""

from __future__ import annotations

import difflib
import glob
import os
from typing import Any

import h5py

from ..errors import PtydaskError
from ..params.registry import param
from .model import DEFAULT, PTYD_META, RAW_ONLY, REF_GROUPS, Recipe, Value, error

#: Smallest side of a prepared frame, pixels (the registry's bound of ``shape``).
MIN_SIDE = param("shape").kind.lo
#: meta keys of an input .ptyd that become a PtydScan recipe's defaults.
PTYD_DEFAULTS = ("shape", "center", "psize", "energy", "distance", "label", "version")


def check_recipe(recipe: Recipe, *, check_files: bool = True) -> None:
    """Raise :class:`~ptydask.errors.RecipeError` for inconsistent parameters or missing files/datasets."""
    if recipe["name"] == "PtydScan":
        _check_ptyd(recipe, check_files)
    else:
        _check_raw(recipe, check_files)
    _check_rebin(recipe)


def _check_ptyd(recipe: Recipe, check_files: bool) -> None:
    where = recipe.where
    for path in recipe.values:
        if path.split(".")[0] in RAW_ONLY and recipe.given(path):
            raise error(where, path, "not used by name 'PtydScan', which reprocesses the .ptyd given as 'source'; "
                        "remove it, or use name 'Hdf5Loader' to read raw frames")
    source = recipe["source"]
    if source is None:
        raise error(where, "source", "required with name 'PtydScan': the input .ptyd to reprocess "
                    "('dfile' is the output)")
    if check_files:
        _exists(where, "source", source)
        _fill_from_ptyd(recipe, source)


def _fill_from_ptyd(recipe: Recipe, source: str) -> None:
    """Defaults of the meta keys come from the input file's meta (ptypy's PtydScan rule)."""
    from ..ptyd import open_ptyd
    from ..scan import meta_of

    try:
        meta = meta_of(open_ptyd(source))
    except PtydaskError as exc:
        raise error(recipe.where, "source", str(exc)) from None
    for key in PTYD_DEFAULTS:
        if recipe.origin(key) == DEFAULT and meta.get(key) is not None:
            value = meta[key]
            value = value.tolist() if hasattr(value, "tolist") else value
            recipe.values[key] = Value(value, PTYD_META)


def _check_raw(recipe: Recipe, check_files: bool) -> None:
    where = recipe.where
    if recipe.given("source"):
        raise error(where, "source", f"only used with name 'PtydScan' (the input .ptyd); name is {recipe['name']!r}")
    frames_file = recipe["intensities.file"]
    if frames_file is None:
        hint = " (ptypy's Hdf5Loader parameters: intensities.file and intensities.key)"
        raise error(where, "intensities.file", "required: the file holding the raw frames" + hint)
    slow, fast = recipe["positions.slow_key"], recipe["positions.fast_key"]
    if (slow is None) != (fast is None):
        missing = "positions.fast_key" if fast is None else "positions.slow_key"
        raise error(where, missing, "required: give both positions.slow_key and positions.fast_key")
    for group in REF_GROUPS[1:]:
        if recipe[f"{group}.file"] is not None and recipe[f"{group}.key"] is None:
            raise error(where, f"{group}.key", f"required when {group}.file is set: the dataset path in that file")
    if not check_files:
        return
    _exists(where, "intensities.file", frames_file)
    _dataset(where, "intensities", frames_file, recipe["intensities.key"])
    if slow is not None:
        pos_file = recipe["positions.file"] or frames_file
        _exists(where, "positions.file", pos_file)
        for key in ("slow_key", "fast_key"):
            _dataset(where, f"positions.{key}", pos_file, recipe[f"positions.{key}"], leaf="")
    for group in REF_GROUPS[1:]:
        if recipe[f"{group}.key"] is not None:
            path = recipe[f"{group}.file"] or frames_file
            _exists(where, f"{group}.file", path)
            _dataset(where, group, path, recipe[f"{group}.key"])


def _exists(where: str, path: str, file: str) -> None:
    """``file`` exists (a glob pattern, e.g. a TIFF series, must match at least one file)."""
    if glob.has_magic(file) and not os.path.exists(file):
        if not glob.glob(file):
            raise error(where, path, f"no file matches the pattern {file}")
    elif not os.path.exists(file):
        raise error(where, path, f"no such file: {file}")


def _dataset(where: str, group: str, file: str, key: Any, leaf: str = ".key") -> None:
    """The HDF5 dataset ``key`` exists in ``file`` (non-HDF5 files are checked when read)."""
    if key is None or not os.path.isfile(file) or not h5py.is_hdf5(file):
        return
    try:
        with h5py.File(file, "r") as f:
            if key in f:
                return
            names: list[str] = []
            f.visit(lambda n: names.append(n) if len(names) < 20000 else True)
    except OSError as exc:
        raise error(where, group + leaf, f"cannot read {file}: {exc}") from None
    close = difflib.get_close_matches(key.strip("/"), names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise error(where, group + leaf, f"{key!r} not found in {file}{hint}")


def _check_rebin(recipe: Recipe) -> None:
    """A rebin factor must divide a ROI given as numbers (``shape=None`` is checked on the frames)."""
    rebin, shape = recipe["rebin"], recipe["shape"]
    if rebin is None or shape is None:
        return
    roi = shape if isinstance(shape, int) else min(shape)
    if roi % rebin:
        raise error(recipe.where, "rebin", f"got {rebin}; it must divide the ROI side {roi} (shape = {shape!r})")
    if roi // rebin < MIN_SIDE:
        raise error(recipe.where, "rebin", f"got {rebin}; it leaves frames of {roi // rebin} pixels a side from the "
                    f"ROI side {roi}; prepared frames need at least {MIN_SIDE}")

