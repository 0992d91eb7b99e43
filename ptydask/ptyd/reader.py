"""Open a ``.ptyd`` file (ours or ptypy's) as a lazy Scan (spec: ptyd-format.md §3, §4, §7).

Frames stay on disk: each chunk group becomes one or more Dask blocks that
follow its HDF5 chunks, read by tasks that open the file by path (so the graph
also runs on a distributed cluster). Positions and indices are small and read
at once. Incomplete files (fewer frames than ``meta/num_frames``) and files
with no chunks at all open with the frames present. Nothing is unpickled; external
links that leave the master's folder are refused unless allowed.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import dask.array as da
import h5py
import numpy as np
import xarray as xr

from ..errors import FormatError, PtydaskError, ScanError
from ..scan import from_arrays
from ..h5heap import heap_problem
from ..sources import _fastread
from .h5rw import UNSAFE_TAGS, read_value, tag_of

#: Target size of one Dask block when a chunk group is large, bytes.
BLOCK_BYTES = 64 * 2**20
#: Largest frame (H*W) a file may declare before we refuse to build a graph for it.
MAX_FRAME_PIXELS = 2**28
#: Declared sizes above this many bytes must be backed by stored bytes (see ``_plausible``).
DECLARED_BYTES_CHECKED = 2**30
#: Largest believable ratio of declared to stored bytes (gzip of all-zero frames reaches ~1000).
MAX_DECLARED_PER_STORED = 10_000


@dataclass(frozen=True)
class _ChunkInfo:
    name: str
    n: int
    frame_shape: tuple[int, int]
    dtype: np.dtype
    hdf5_frames: int  # frames per HDF5 chunk (1 if contiguous)
    has_weights: bool
    weights_dtype: np.dtype | None


class _LazyFrames:
    """Array-like handle on ``path:dataset`` that opens the file per read (picklable)."""

    def __init__(self, path: str, dataset: str, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.dataset = path, dataset
        self.shape, self.dtype, self.ndim = shape, np.dtype(dtype), len(shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            with h5py.File(self.path, "r") as f:
                ds = f[self.dataset]
                if ds.shape != self.shape or ds.dtype != self.dtype:
                    raise FormatError(f"{self.path}:{self.dataset}: changed since it was opened ({ds.shape} {ds.dtype})")
                frames = _frame_range(key, self.shape)
                if frames is None:
                    return np.asarray(ds[key])
                return _read_frames(ds, *frames)
        except PtydaskError:
            raise
        except Exception as exc:  # any HDF5 failure while decoding the file means a damaged file
            raise FormatError(f"{self.path}:{self.dataset}: cannot read frames {key}: {type(exc).__name__}: {exc}") from exc


def _frame_range(key: Any, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(start, stop) when ``key`` selects whole frames ``start:stop`` (step 1) of a 3-D dataset."""
    if len(shape) != 3 or not isinstance(key, tuple) or len(key) != 3:
        return None
    first, rows, cols = key
    if not isinstance(first, slice) or any(not isinstance(k, slice) or k != slice(None) and
                                           k.indices(n) != (0, n, 1) for k, n in ((rows, shape[1]), (cols, shape[2]))):
        return None
    start, stop, step = first.indices(shape[0])
    return (start, stop) if step == 1 and stop > start else None


def _read_frames(ds: h5py.Dataset, start: int, stop: int) -> np.ndarray:
    """Frames ``start:stop``: unfiltered storage mapped onto the file (copy-on-write, as the HDF5
    source does; ``PTYDASK_MAP_READ=0``: plain parallel file reads), compressed whole-frame chunks
    decoded in the thread pool (both bit for bit h5py's values), anything else by h5py."""
    stored = _fastread.stored_runs(ds)
    if stored is not None:
        return _fastread.unfiltered_frames(ds.file.filename, stored, start, stop, ds.dtype, ds.shape[1:])
    out = np.empty((stop - start,) + ds.shape[1:], dtype=ds.dtype)
    plan = _fastread.plan_for(ds)
    if plan is not None:
        _fastread.read_frames(ds, plan, start, stop, out, lambda a, b, dest: ds.read_direct(dest, source_sel=np.s_[a:b]))
        return out
    ds.read_direct(out, source_sel=np.s_[start:stop])
    return out


def open_ptyd(path: str | os.PathLike, *, allow_external_links: bool = False) -> xr.Dataset:
    """Open a ``.ptyd`` file lazily and return its Scan.

    The Scan holds the frames present; ``scan.attrs["num_frames"]`` is the number
    expected (``meta/num_frames``), so ``ptydask.is_complete(scan)`` tells whether
    the file is finished. ``allow_external_links`` permits chunk links that point
    outside the master file's folder (refused by default).
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a .ptyd file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not a .ptyd file (cannot be opened as HDF5: {exc})") from exc
    try:
        with f:
            return _read(f, path, allow_external_links)
    except PtydaskError:
        raise
    except Exception as exc:  # any HDF5 failure while decoding the file means a damaged file
        raise FormatError(f"{path}: damaged or not a .ptyd file: {type(exc).__name__}: {exc}") from exc


def _read(f: h5py.File, path: Path, allow_external: bool) -> xr.Dataset:
    for group in ("meta", "chunks"):
        if group not in f or not isinstance(f[group], h5py.Group):
            raise FormatError(f"{path}: not a .ptyd file: no '{group}/' group (found: {', '.join(sorted(f)) or 'nothing'})")
    _check_heaps(f, path)
    meta = _read_meta(f["meta"], path)
    chunks = _chunk_infos(f, path, allow_external)
    frame_shape = _frame_shape(chunks, meta, path)
    spath = str(path.resolve())

    data_parts, weight_parts, positions, indices = [], [], [], []
    with_weights = [c.has_weights for c in chunks]
    if any(with_weights) and not all(with_weights):
        lacking = next(c.name for c in chunks if not c.has_weights)
        raise FormatError(f"{path}: chunks/{lacking} has no 'weights' although other chunks do")
    for c in chunks:
        blocks = _block_sizes(c)
        lazy = _LazyFrames(spath, f"chunks/{c.name}/data", (c.n,) + frame_shape, c.dtype)
        data_parts.append(da.from_array(lazy, chunks=(blocks, -1, -1), asarray=True, lock=False, meta=np.empty((0, 0, 0), c.dtype), name=False))
        if c.has_weights:
            lw = _LazyFrames(spath, f"chunks/{c.name}/weights", (c.n,) + frame_shape, c.weights_dtype)
            weight_parts.append(da.from_array(lw, chunks=(blocks, -1, -1), asarray=True, lock=False, meta=np.empty((0, 0, 0), c.weights_dtype), name=False))
        grp = f["chunks"][c.name]
        positions.append(_small(grp, "positions", (c.n, 2), path, c.name))
        indices.append(_small(grp, "indices", (c.n,), path, c.name))

    n = sum(c.n for c in chunks)
    if chunks:
        data = da.concatenate(data_parts, axis=0)
        weights = da.concatenate(weight_parts, axis=0) if weight_parts else None
    else:
        data = da.zeros((0,) + frame_shape, dtype=np.float64, chunks=(1, -1, -1))
        weights = None
    pos = _join(positions, (n, 2), np.float64, path, "positions")
    idx = _join(indices, (n,), np.int64, path, "indices")
    if idx is None:
        idx = np.arange(n, dtype=np.int64)
    elif n > 1 and not (np.diff(idx) > 0).all():
        warnings.warn(f"{path}: stored indices are not ascending; using running frame numbers as ptypy does", stacklevel=3)
        idx = np.arange(n, dtype=np.int64)

    center = meta.get("center")
    if center is not None and not all(0 < c < s for c, s in zip(np.ravel(center), frame_shape)):
        warnings.warn(f"{path}: meta/center {center} lies outside the {frame_shape} frames; ignored", stacklevel=3)
        center = None
    num_frames = meta.get("num_frames")
    if num_frames is None:
        warnings.warn(f"{path}: meta/num_frames is missing (ptypy requires it); assuming the {n} frames present", stacklevel=3)
        num_frames = n
    info = _read_info(f, path)
    if meta.get("shape") is not None and tuple(np.ravel(meta["shape"]).tolist()) != frame_shape:
        info["meta_shape_mismatch"] = list(np.ravel(meta["shape"]).tolist())
        warnings.warn(
            f"{path}: meta/shape {tuple(np.ravel(meta['shape']))} differs from the stored frames {frame_shape} "
            "(ptypy would crop again when reading)",
            stacklevel=3,
        )
    try:
        scan = from_arrays(
            data,
            pos,
            weights,
            energy=meta.get("energy"),
            distance=meta.get("distance"),
            psize=meta.get("psize"),
            center=center,
            label=meta.get("label"),
            num_frames=int(num_frames),
            version=float(meta.get("version") or 0.1),
            indices=idx,
            info=info,
        )
    except ScanError as exc:
        raise FormatError(f"{path}: {exc}") from exc
    scan.attrs["source"] = str(path)
    scan.attrs["propagation"] = str(info.get("propagation", "farfield")) if info.get("propagation") in ("farfield", "nearfield") else "farfield"
    return scan


def _read_meta(group: h5py.Group, path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in group:
        value = read_value(group[key], filename=str(path), max_bytes=2**20)
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        meta[key] = value
    for key in ("energy", "distance", "version"):
        if meta.get(key) is not None:
            meta[key] = _number(meta[key], f"{path}:/meta/{key}")
    if meta.get("num_frames") is not None:
        value = meta["num_frames"]
        if isinstance(value, (bool, np.bool_)) or not float(_number(value, f"{path}:/meta/num_frames")).is_integer() or value < 0:
            raise FormatError(f"{path}:/meta/num_frames: expected a non-negative integer, got {value!r}")
        meta["num_frames"] = int(value)
    if isinstance(meta.get("label"), bytes):
        meta["label"] = meta["label"].decode("utf-8", "replace")
    if meta.get("label") is not None and not isinstance(meta["label"], str):
        meta["label"] = str(meta["label"])
    return meta


def _number(value: Any, where: str) -> float:
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise FormatError(f"{where}: expected a number, got {value!r}") from None
    if arr.size != 1 or not math.isfinite(arr[0]):
        raise FormatError(f"{where}: expected one finite number, got {value!r}")
    return float(arr[0])


def _safe_link(link: h5py.ExternalLink, path: Path, name: str, allow: bool) -> None:
    target = link.filename
    pure = PurePosixPath(target.replace("\\", "/"))
    escapes = pure.is_absolute() or ".." in pure.parts or len(pure.parts) != 1
    if pure.is_absolute() and Path(target).parent.resolve() == Path(path).parent.resolve():
        escapes = False  # ptypy with an absolute dfile links its parts by absolute path, in the same folder
    if escapes and not allow:
        raise FormatError(
            f"{path}: chunks/{name} is an external link to {target!r}, outside the master file's folder; "
            "refused (pass allow_external_links=True if you trust this file)"
        )


def _check_heaps(f: h5py.File, path: Path) -> None:
    """Refuse a file whose string storage would hang HDF5 (see ``ptydask.h5heap``)."""
    problem = heap_problem(f)
    if problem:
        raise FormatError(f"{path}: {problem}" if f.filename != str(path) else problem)


def _chunk_infos(f: h5py.File, path: Path, allow_external: bool) -> list[_ChunkInfo]:
    group = f["chunks"]
    names = []
    for name in group:
        if not name.isdigit():
            raise FormatError(f"{path}: chunks/{name}: chunk names must be decimal integers")
        names.append(name)
    infos = []
    for name in sorted(names, key=int):
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            _safe_link(link, path, name, allow_external)
        try:
            grp = group[name]
        except (KeyError, OSError):
            warnings.warn(f"{path}: chunks/{name} is a dangling link ({_describe(link)}); skipped", stacklevel=4)
            continue
        if not isinstance(grp, h5py.Group):
            raise FormatError(f"{path}: chunks/{name} is not a group")
        if isinstance(link, h5py.ExternalLink):
            _check_heaps(grp.file, path)
        _refuse_unsafe(grp, path, f"chunks/{name}")
        for ds_name in ("data", "weights"):
            if ds_name in grp:
                _refuse_unsafe(grp[ds_name], path, f"chunks/{name}/{ds_name}")
        if "data" not in grp or not isinstance(grp["data"], h5py.Dataset):
            raise FormatError(f"{path}: chunks/{name} has no 'data' dataset (found: {', '.join(sorted(grp)) or 'nothing'})")
        ds = grp["data"]
        if ds.ndim != 3:
            raise FormatError(f"{path}: chunks/{name}/data: expected 3 dims (frame, y, x), got shape {ds.shape}")
        if ds.shape[1] * ds.shape[2] > MAX_FRAME_PIXELS:
            raise FormatError(f"{path}: chunks/{name}/data: declared frame size {ds.shape[1:]} is implausibly large")
        if ds.dtype.kind not in "biuf":
            raise FormatError(f"{path}: chunks/{name}/data: expected numbers, got dtype {ds.dtype}")
        _plausible(ds, path, f"chunks/{name}/data")
        wds = grp.get("weights")
        if wds is not None:
            if not isinstance(wds, h5py.Dataset) or wds.shape != ds.shape or wds.dtype.kind not in "biuf":
                shape = getattr(wds, "shape", None)
                raise FormatError(f"{path}: chunks/{name}/weights: expected numbers of shape {ds.shape}, got {shape}")
            _plausible(wds, path, f"chunks/{name}/weights")
        k = ds.chunks[0] if ds.chunks else 1
        infos.append(
            _ChunkInfo(name, ds.shape[0], (ds.shape[1], ds.shape[2]), ds.dtype, k, wds is not None, None if wds is None else wds.dtype)
        )
    return infos


def _plausible(ds: h5py.Dataset, path: Path, where: str) -> None:
    """Refuse a dataset whose declared size is not backed by stored bytes (hostile or truncated file)."""
    declared = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize)
    if declared <= DECLARED_BYTES_CHECKED:
        return
    stored = ds.id.get_storage_size()
    if declared > MAX_DECLARED_PER_STORED * max(stored, 1):
        raise FormatError(
            f"{path}: {where}: declares {ds.shape} {ds.dtype} ({declared} bytes) but stores only {stored} bytes; "
            "refusing an implausible (hostile or unfinished) dataset"
        )


def _describe(link: Any) -> str:
    if isinstance(link, h5py.ExternalLink):
        return f"to {link.filename}:{link.path}"
    return "unresolvable"


def _frame_shape(chunks: list[_ChunkInfo], meta: dict[str, Any], path: Path) -> tuple[int, int]:
    shapes = {c.frame_shape for c in chunks}
    if len(shapes) > 1:
        raise FormatError(f"{path}: chunks hold frames of different shapes {sorted(shapes)}")
    if shapes:
        return shapes.pop()
    shape = meta.get("shape")
    try:
        h, w = (int(v) for v in np.ravel(shape))
    except (TypeError, ValueError):
        raise FormatError(f"{path}: no chunks and no usable meta/shape ({shape!r}); cannot tell the frame shape") from None
    if not (2 <= h and 2 <= w and h * w <= MAX_FRAME_PIXELS):
        raise FormatError(f"{path}: meta/shape {shape!r} is not a plausible frame shape")
    return (h, w)


def _block_sizes(c: _ChunkInfo) -> tuple[int, ...]:
    """Split a chunk group into Dask blocks of about BLOCK_BYTES, on HDF5 chunk boundaries."""
    frame_bytes = max(1, c.frame_shape[0] * c.frame_shape[1] * c.dtype.itemsize)
    per_block = max(1, BLOCK_BYTES // frame_bytes)
    per_block = max(c.hdf5_frames, per_block - per_block % c.hdf5_frames)
    sizes = [per_block] * (c.n // per_block)
    if c.n % per_block:
        sizes.append(c.n % per_block)
    return tuple(sizes) or (0,)


def _refuse_unsafe(obj: h5py.HLObject, path: Path, where: str) -> None:
    if tag_of(obj) in UNSAFE_TAGS:
        raise FormatError(f"{path}: {where} is tagged {tag_of(obj)!r} (a Python pickle); refusing to read it")


def _small(grp: h5py.Group, name: str, shape: tuple[int, ...], path: Path, chunk: str) -> np.ndarray | None:
    if name not in grp:
        return None
    obj = grp[name]
    _refuse_unsafe(obj, path, f"chunks/{chunk}/{name}")
    if not isinstance(obj, h5py.Dataset):
        raise FormatError(
            f"{path}: chunks/{chunk}/{name} is a {tag_of(obj) or 'group'}, not an array "
            "(ptypy writes this for scans without positions and cannot read it back)"
        )
    if obj.shape != shape:
        raise FormatError(f"{path}: chunks/{chunk}/{name}: expected shape {shape}, got {obj.shape}")
    if obj.dtype.kind not in "iuf":
        raise FormatError(f"{path}: chunks/{chunk}/{name}: expected numbers, got dtype {obj.dtype}")
    return obj[()]


def _join(parts: list[np.ndarray | None], shape: tuple[int, ...], dtype, path: Path, name: str) -> np.ndarray | None:
    present = [p is not None for p in parts]
    if not any(present):
        return None
    if not all(present):
        raise FormatError(f"{path}: some chunks have '{name}' and others do not")
    if not parts:
        return np.zeros(shape, dtype)
    return np.concatenate(parts).astype(dtype)


def _read_info(f: h5py.File, path: Path) -> dict[str, Any]:
    if "info" not in f:
        return {}
    try:
        value = read_value(f["info"], filename=str(path), max_bytes=64 * 2**20)
    except FormatError as exc:
        if "pickle" in str(exc):
            raise
        warnings.warn(f"{path}: info/ (documentation only) could not be read: {exc}", stacklevel=4)
        return {}
    return value if isinstance(value, dict) else {}
