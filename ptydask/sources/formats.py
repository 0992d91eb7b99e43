"""Recognise a raw source (path, glob, folder, list of files or array) and open its frames lazily."""

from __future__ import annotations

import glob as globmod
import os
import re
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import h5py
import numpy as np

from ..errors import SourceError
from . import arrays, cxi, hdf5, images, mib, nexus

COMPRESSED = (".bz2", ".gz", ".gzip")
SUFFIXES = {
    "hdf5": (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5", ".nx", ".cxi"),
    "tiff": (".tif", ".tiff"),
    "fabio": (".cbf", ".edf", ".img", ".smv", ".mccd", ".sfrm"),
    "mib": (".mib",),
    "npy": (".npy",),
    "npz": (".npz",),
    "zarr": (".zarr",),
}
#: Names accepted by ``format=``.
FORMATS = tuple(SUFFIXES) + ("array",)


@dataclass
class Opened:
    """Frames of a source and what its file says besides them."""

    frames: da.Array  # (N, H, W)
    grid: tuple[int, ...]  # scan grid of the frames: (N,) or (A, B)
    raw_shape: tuple[int, ...]  # shape as stored (before flattening / outer_index)
    kind: str
    path: str | None = None  # first file, absolute
    key: str | None = None
    hdf5: bool = False
    positions: np.ndarray | None = None  # (N, 2) (y, x) metres, from the file
    mask: tuple[str, str, str] | None = None  # (file, key, kind) of a file-provided mask
    geometry: dict[str, Any] = field(default_factory=dict)


def _natural(path: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def kind_of(path: str) -> str | None:
    """Format family from the file name (``None`` when unknown)."""
    name = path.lower().rstrip("/")
    for comp in COMPRESSED:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    for kind, suffixes in SUFFIXES.items():
        if name.endswith(suffixes):
            return kind
    if os.path.isdir(path) and any(os.path.exists(os.path.join(path, m)) for m in (".zarray", ".zgroup", "zarr.json")):
        return "zarr"
    return None


def _supported() -> str:
    return "; ".join(f"{k}: {' '.join(v)}" for k, v in SUFFIXES.items()) + "; CBF/EDF also as .bz2/.gz"


def expand(source: Any) -> list[str]:
    """The files a path, glob pattern, folder or list of paths stands for, in natural order."""
    if isinstance(source, (list, tuple)):
        paths = [os.fspath(p) for p in source]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise SourceError(f"{missing[0]}: no such file ({len(missing)} of {len(paths)} listed files are missing)")
        return [os.path.abspath(p) for p in paths]
    path = os.fspath(source)
    if os.path.isdir(path) and kind_of(path) != "zarr":
        files = sorted((os.path.join(path, n) for n in os.listdir(path) if kind_of(n)), key=_natural)
        files = [f for f in files if os.path.isfile(f)]
        kinds = sorted({kind_of(f) for f in files})
        if not files:
            raise SourceError(f"{path}: folder holds no files of a supported format ({_supported()})")
        if len(kinds) > 1:
            raise SourceError(f"{path}: folder mixes formats ({', '.join(kinds)}); pass a glob pattern such as '{path}/*.tif'")
        return files
    if os.path.exists(path):
        return [os.path.abspath(path)]
    if any(c in path for c in "*?["):
        files = sorted(globmod.glob(path), key=_natural)
        if not files:
            raise SourceError(f"{path}: glob pattern matches no files")
        return [os.path.abspath(f) for f in files]
    raise SourceError(f"{path}: no such file or folder")


def flatten(arr: da.Array, outer_index: int | None, where: str) -> tuple[da.Array, tuple[int, ...]]:
    """Apply ``outer_index`` and flatten a raster ``(A, B, H, W)`` to frames; returns (frames, grid)."""
    hdf5.frame_layout(tuple(arr.shape), outer_index, where)
    if outer_index is not None:
        arr = arr[outer_index]
    lead = tuple(arr.shape[:-2])
    if arr.dtype.kind not in "biuf":
        raise SourceError(f"{where}: dtype {arr.dtype} is not a real numeric type")
    if len(lead) == 0:
        return arr[None], (1,)
    if len(lead) == 2:
        arr = arr.rechunk({1: -1}).reshape((lead[0] * lead[1],) + tuple(arr.shape[-2:]))
    return arr, lead


def _open_hdf5(path: str, key: str | None, outer_index: int | None, block_bytes: int) -> Opened:
    info: dict[str, Any] = {}
    if cxi.is_cxi(path):
        info = cxi.read_cxi(path)
        keys = [key] if key else [info["frames_key"]]
        kind = "cxi"
    else:
        keys = nexus.find_frames(path, key)
        kind = "nexus" if len(keys) > 1 or keys[0] != (key or "").strip("/") else "hdf5"
    parts = [hdf5.hdf5_frames(path, k, outer_index=outer_index, block_bytes=block_bytes) for k in keys]
    if len(parts) == 1:
        frames, grid, raw_shape = parts[0]
    else:
        shapes = {p[0].shape[1:] for p in parts}
        if len(shapes) > 1:
            raise SourceError(f"{path}: the linked data files {keys} hold frames of different shapes {sorted(shapes)}")
        frames = da.concatenate([p[0] for p in parts], axis=0)
        grid, raw_shape = (frames.shape[0],), tuple(frames.shape)
    opened = Opened(frames, grid, raw_shape, kind, path, keys[0] if len(keys) == 1 else os.path.dirname(keys[0]), hdf5=True)
    if kind == "cxi":
        opened.positions = info.get("positions")
        opened.geometry = {k: info[k] for k in ("energy", "distance", "psize") if info.get(k) is not None}
        if info.get("mask_key"):
            opened.mask = (path, info["mask_key"], "bad")
    else:
        pm = nexus.find_pixel_mask(path, keys[0])
        if pm is not None:
            opened.mask = (path, pm, "nexus")
    return opened


def open_source(source: Any, key: str | None = None, *, outer_index: int | None = None,
                block_bytes: int, fmt: str | None = None) -> Opened:
    """Open the frames of ``source`` lazily; see :func:`ptydask.sources.open_frames`."""
    if fmt is not None and fmt not in FORMATS:
        raise SourceError(f"format={fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if isinstance(source, (np.ndarray, da.Array)) or fmt == "array":
        arr = arrays.memory_frames(source, block_bytes)
        frames, grid = flatten(arr, outer_index, "array")
        return Opened(frames, grid, tuple(arr.shape), "array")
    if not isinstance(source, (str, os.PathLike, list, tuple)):
        raise SourceError(f"source: expected a path, glob pattern, folder, list of files or an array, got {type(source).__name__}")
    files = expand(source)
    kind = fmt or kind_of(files[0])
    if kind is None and os.path.isfile(files[0]) and h5py.is_hdf5(files[0]):
        kind = "hdf5"
    if kind is None:
        raise SourceError(f"{files[0]}: unknown format; supported: {_supported()}")
    single = len(files) == 1
    where = files[0] if single else f"{files[0]} (+{len(files) - 1} files)"
    if kind in ("hdf5", "zarr", "npy", "npz") and not single:
        raise SourceError(f"{where}: {kind} sources are opened one file at a time, got {len(files)} files")
    if kind == "hdf5":
        return _open_hdf5(files[0], key, outer_index, block_bytes)
    if kind == "zarr":
        arr, _ = arrays.zarr_frames(files[0], key, block_bytes)
    elif kind == "npy":
        frames, grid, raw_shape = arrays.npy_frames(files[0], outer_index, block_bytes)
        return Opened(frames, grid, raw_shape, kind, files[0], key)
    elif kind == "npz":
        arr = arrays.memory_frames(arrays.npz_member(files[0], key), block_bytes)
    elif kind == "tiff":
        arr = images.tiff_frames(files, block_bytes)
    elif kind == "fabio":
        arr = images.fabio_frames(files, block_bytes)
    else:
        arr = da.concatenate([mib.mib_frames(f, block_bytes) for f in files], axis=0)
    frames, grid = flatten(arr, outer_index, where if key is None else f"{where}:{key}")
    return Opened(frames, grid, tuple(arr.shape), kind, files[0], key)
