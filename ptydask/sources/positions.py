"""Scan positions and the frame <-> scan-point mapping of ptypy's ``Hdf5Loader``.

Scan points form a grid, 1-D ``(C,)`` or 2-D ``(C, D)`` (slow, fast); a point's
global index is its row-major position in that grid, and it is also the index
of its frame in the flattened frame stack. Four layouts are recognised
(slow/fast = the two position arrays, frames grid = ``(N,)`` or ``(A, B)``):

1. positions shaped like the frames grid — mapped one to one (also ``(A*B,)``
   positions for raster frames, one per flattened frame);
2. 2-D positions ``(C, D)`` with ``C*D`` frames ``(N, H, W)`` — raster, frame ``s*D + f``;
3. 1-D slow ``(C,)`` and fast ``(D,)`` with frames ``(C, D, H, W)`` — meshed;
4. 1-D slow ``(C,)`` and fast ``(D,)`` with ``C*D`` frames ``(N, H, W)`` — meshed, frame ``s*D + f``.

Positions are ``(slow * slow_multiplier, fast * fast_multiplier)`` = (y, x) in
metres. Selection, in this order: ``bounding_box`` (array-index bounds per
grid axis: an int is a lower bound, a pair ``(lo, hi)`` a half-open range),
``skip`` (every k-th point along each grid axis), ``framefilter`` (per point,
> 0 keeps it), ``frameorder`` (indices into the selected points).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import ParameterError, ScanError
from .refs import check_keys, load_small

POSITION_KEYS = (
    "file", "slow_key", "fast_key", "slow", "fast", "slow_multiplier", "fast_multiplier",
    "slow_index", "fast_index", "skip", "bounding_box",
)
BOX_KEYS = ("slow_axis_bounds", "fast_axis_bounds")

LAYOUTS = (
    "(1) positions shaped like the frames grid {grid}; "
    "(2) 2-D positions (C, D) with C*D = {n} frames; "
    "(3) 1-D slow (C,) and fast (D,) with frames laid out (C, D, H, W); "
    "(4) 1-D slow (C,) and fast (D,) with C*D = {n} frames"
)


@dataclass(frozen=True)
class Selection:
    """The chosen scan points, in output order."""

    frames: np.ndarray  # index into the flattened frame stack, per output frame
    indices: np.ndarray  # global scan-point index per output frame
    positions: np.ndarray | None  # (n, 2) (y, x) metres, or None
    grid: tuple[int, ...]  # the scan-point grid
    layout: str
    reordered: bool  # True when frameorder changed the order


def _read_axes(spec: Any, default_file: str | None, file_positions: np.ndarray | None):
    """(slow, fast, slow_multiplier, fast_multiplier, options) from a positions spec."""
    if spec is None:
        if file_positions is None:
            return None, None, 1.0, 1.0, {}
        return file_positions[:, 0], file_positions[:, 1], 1.0, 1.0, {}
    if not isinstance(spec, Mapping):
        arr = np.asarray(spec, dtype=np.float64)
        if arr.ndim < 2 or arr.shape[-1] != 2:
            raise ScanError(f"positions: expected an (N, 2) array of (y, x) metres, got shape {arr.shape}")
        return arr[..., 0], arr[..., 1], 1.0, 1.0, {}
    check_keys("positions", spec, POSITION_KEYS)
    axes = []
    for name in ("slow", "fast"):
        if spec.get(name) is not None:
            axis = np.asarray(spec[name], dtype=np.float64)
        elif spec.get(f"{name}_key") is not None:
            ref = {"file": spec.get("file"), "key": spec[f"{name}_key"]}
            axis = np.asarray(load_small(f"positions.{name}_key", ref, default_file), dtype=np.float64)
        elif file_positions is not None and not any(spec.get(k) is not None for k in ("slow", "fast", "slow_key", "fast_key")):
            axis = file_positions[:, 0 if name == "slow" else 1]
        else:
            raise ParameterError(f"positions: {name}_key (or {name}) is required when positions are given as a dict")
        if axis.ndim > 2:  # as ptypy's Hdf5Loader: (A, B, 1, 1) -> (A, B)
            axis = np.squeeze(axis)
        index = spec.get(f"{name}_index")
        if index is not None:
            if axis.ndim < 2 or not -axis.shape[1] <= index < axis.shape[1]:
                raise ScanError(f"positions.{name}_index={index}: the {name} positions have shape {axis.shape}, no such column")
            axis = axis[:, index]
        axes.append(axis)
    mult = [1.0 if spec.get(f"{n}_multiplier") is None else float(spec[f"{n}_multiplier"]) for n in ("slow", "fast")]
    return axes[0], axes[1], mult[0], mult[1], spec


def _layout(n: int, grid: tuple[int, ...], slow: np.ndarray | None, fast: np.ndarray | None, where: str):
    """(point grid, slow grid, fast grid, layout name) for the four layouts."""
    if slow is None:
        return grid, None, None, "frames only (no positions)"
    if slow.shape == fast.shape == grid:
        return grid, slow, fast, "(1) mapped"
    if slow.shape == fast.shape == (n,) and len(grid) == 2:
        return grid, slow.reshape(grid), fast.reshape(grid), "(1) mapped, one position per flattened frame"
    if slow.ndim == fast.ndim == 2 and slow.shape == fast.shape and len(grid) == 1 and slow.size == n:
        return slow.shape, slow, fast, "(2) raster positions, frames as a list"
    if slow.ndim == fast.ndim == 1:
        c, d = slow.shape[0], fast.shape[0]
        if grid == (c, d) or (len(grid) == 1 and n == c * d):
            f, s = np.meshgrid(fast, slow)
            return (c, d), s, f, "(3) meshed 1-D axes, raster frames" if len(grid) == 2 else "(4) meshed 1-D axes, frames as a list"
    raise ScanError(
        f"{where}: cannot map {n} frames laid out as {grid} to positions of shape slow {slow.shape}, "
        f"fast {fast.shape}; allowed layouts: " + LAYOUTS.format(grid=grid, n=n)
    )


def _bounds(name: str, value: Any, size: int) -> range:
    if value is None:
        return range(size)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        lo, hi = int(value), size
    elif isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2:
        lo, hi = (int(v) for v in value)
    else:
        raise ParameterError(f"positions.bounding_box.{name}: expected an int (lower bound) or a (min, max) pair, got {value!r}")
    if not 0 <= lo < hi <= size:
        raise ScanError(f"positions.bounding_box.{name}={value!r}: must select within 0..{size} (got {lo}..{hi})")
    return range(lo, hi)


def _framefilter(value: Any, grid: tuple[int, ...], n: int, outer_index: int | None, default_file: str | None) -> np.ndarray:
    keep = np.asarray(load_small("framefilter", value, default_file))
    if outer_index is not None and keep.ndim == len(grid) + 1 and keep.shape[1:] == grid:
        keep = keep[outer_index]
    keep = np.squeeze(keep) if keep.size == n else keep
    if keep.shape != grid and keep.size == n and keep.ndim == 1:
        keep = keep.reshape(grid)
    if keep.shape != grid:
        raise ScanError(f"framefilter: shape {keep.shape} matches neither the scan-point grid {grid} nor the {n} frames")
    return keep > 0


def select_points(
    n: int,
    grid: tuple[int, ...],
    positions: Any = None,
    *,
    framefilter: Any = None,
    frameorder: Any = None,
    file_positions: np.ndarray | None = None,
    default_file: str | None = None,
    outer_index: int | None = None,
    where: str = "frames",
) -> Selection:
    """Map ``n`` frames (scan grid ``grid``) to positions and select scan points (see module docstring)."""
    slow, fast, sm, fm, opts = _read_axes(positions, default_file, file_positions)
    if (slow is None) != (fast is None):
        raise ScanError("positions: both slow and fast positions are needed")
    pgrid, sgrid, fgrid, layout = _layout(n, tuple(grid), slow, fast, where)
    box = opts.get("bounding_box") or {}
    check_keys("positions.bounding_box", box, BOX_KEYS)
    skip = 1 if opts.get("skip") is None else opts["skip"]
    if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 1:
        raise ParameterError(f"positions.skip: expected an integer >= 1, got {skip!r}")
    ids = np.arange(int(np.prod(pgrid, dtype=np.int64)), dtype=np.int64).reshape(pgrid)
    if len(pgrid) == 2:
        rows = _bounds("slow_axis_bounds", box.get("slow_axis_bounds"), pgrid[0])
        cols = _bounds("fast_axis_bounds", box.get("fast_axis_bounds"), pgrid[1])
        sub = ids[rows.start:rows.stop:skip, cols.start:cols.stop:skip]
    else:
        if box.get("slow_axis_bounds") is not None:
            raise ScanError(
                f"positions.bounding_box.slow_axis_bounds: the scan points form a 1-D list of {pgrid[0]} "
                "(not a 2-D grid); use fast_axis_bounds to bound it"
            )
        cols = _bounds("fast_axis_bounds", box.get("fast_axis_bounds"), pgrid[0])
        sub = ids[cols.start:cols.stop:skip]
    chosen = sub.ravel()
    if framefilter is not None:
        keep = _framefilter(framefilter, pgrid, n, outer_index, default_file).ravel()
        chosen = chosen[keep[chosen]]
    reordered = False
    if frameorder is not None:
        order = frameorder.get("indices") if isinstance(frameorder, Mapping) else frameorder
        if isinstance(frameorder, Mapping):
            check_keys("frameorder", frameorder, ("indices",))
        if order is not None:
            order = np.asarray(order)
            if order.ndim != 1 or order.dtype.kind not in "iu":
                raise ParameterError(f"frameorder.indices: expected a 1-D list of integers, got {order.dtype} {order.shape}")
            if order.size and (order.min() < -chosen.size or order.max() >= chosen.size):
                raise ScanError(f"frameorder.indices reach {int(order.max())}, but only {chosen.size} scan points are selected")
            chosen = chosen[order]
            reordered = bool(np.any(np.diff(chosen) <= 0))
    if chosen.size == 0:
        raise ScanError(f"{where}: the selection (bounding_box, skip, framefilter, frameorder) leaves no scan points")
    pos = None
    if sgrid is not None:
        pos = np.stack([sgrid.ravel()[chosen] * sm, fgrid.ravel()[chosen] * fm], axis=1)
    indices = np.arange(chosen.size, dtype=np.int64) if reordered else chosen
    return Selection(chosen, indices, pos, tuple(pgrid), layout, reordered)
