"""The Scan model: one lazy ``xarray.Dataset`` that every part of ptydask passes on.

Variables (all frame-indexed arrays are chunked along ``frame`` only):

======================  ==========================  =========================================
name                    dims                        meaning
======================  ==========================  =========================================
``data``                (frame, y, x)               frames, Dask array, any real dtype
``weights``             (y, x) or (frame, y, x)     nonzero = valid pixel (ptypy's rule)
``positions``           (frame, axis)               metres, ``axis = ("y", "x")`` = (slow, fast)
``indices``             (frame,)                    int64 global scan-point index, ascending
``dark`` (optional)     (y, x) or (frame, y, x)     dark frame(s), counts, subtracted by ``prepare``
``flat`` (optional)     (y, x) or (frame, y, x)     flat field, frames are divided by it
``monitor`` (optional)  (frame,)                    per-frame normalisation monitor
======================  ==========================  =========================================

Attributes (``scan.attrs``) carry the meta of the stored frames: ``energy``
(keV), ``distance`` (m), ``psize`` ((y, x) m), ``center`` ((row, col) px or
``None`` = not determined), ``shape`` ((H, W) px), ``propagation``,
``num_frames`` (frames expected when complete), ``label``, ``version``, plus
``info`` (a dict of the parameters that produced the scan, written to ``info/``).

Coordinates: ``frame`` (the scan-point index, as ``indices``), ``y``/``x`` (pixel
indices) and, when the far-field geometry is known, ``qy``/``qx`` (1/m); every
variable and coordinate has a ``units`` attribute and every numeric meta value a
``<key>_units`` attribute (:mod:`ptydask.labels`). ``scan.ptydask.to_netcdf(path)``
and ``scan.ptydask.to_zarr(store)`` store it with ``info`` as JSON text;
:func:`validate_scan` turns ``xr.open_dataset(path)`` back into the Scan.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Mapping, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from . import config
from .errors import GeometryError, ParameterError, ScanError
from .labels import annotate, decode_attrs, info_of, is_encoded

#: The eight keys ptypy writes to (and reads from) ``meta/`` of a ``.ptyd``.
META_KEYS = ("version", "num_frames", "label", "shape", "psize", "energy", "center", "distance")


AXIS = ("y", "x")

_FROM_ARRAYS_META = ("center", "label", "num_frames", "propagation", "version", "indices", "info")
_OPTIONAL_VARS = ("dark", "flat", "monitor")


# --------------------------------------------------------------------------- helpers


def _is_real_numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "biuf"


def _as_dask_frames(frames: Any, chunks: Any) -> da.Array:
    """Wrap ``frames`` as a Dask array chunked only along axis 0."""
    if isinstance(frames, da.Array):
        arr = frames
    else:
        if not hasattr(frames, "shape") or not hasattr(frames, "dtype"):
            frames = np.asarray(frames)
        arr = None
    shape = tuple(frames.shape)
    if len(shape) != 3:
        raise ScanError(
            f"frames: expected 3 dimensions (frame, y, x), got shape {shape}; "
            "reshape raster scans (A, B, H, W) to (A*B, H, W) first"
        )
    dtype = np.dtype(frames.dtype)
    if not _is_real_numeric(dtype):
        raise ScanError(f"frames: expected a real numeric dtype (bool, int, uint, float), got {dtype}")
    if shape[1] < 2 or shape[2] < 2:
        raise ScanError(
            f"frames: each frame must be at least 2x2 pixels, got {shape[1]}x{shape[2]} "
            "(ptypy squeezes size-1 axes when it reads frames)"
        )
    if chunks is None:
        if arr is not None:
            frame_chunks = arr.chunks[0]
        else:
            frame_bytes = max(1, shape[1] * shape[2] * dtype.itemsize)
            frame_chunks = max(1, int(config.get("block-bytes.arrays")) // frame_bytes)
    else:
        frame_chunks = _check_chunks(chunks, shape[0])
    if arr is None:
        arr = da.from_array(frames, chunks=(frame_chunks, -1, -1), asarray=True)
    else:
        arr = arr.rechunk((frame_chunks, -1, -1))
    return arr


def _check_chunks(chunks: Any, n: int) -> Any:
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        if chunks < 1:
            raise ParameterError(f"chunks: frames per block must be >= 1, got {chunks}")
        return int(chunks)
    try:
        sizes = tuple(int(c) for c in chunks)
    except TypeError:
        raise ParameterError(
            f"chunks: expected an int (frames per block) or a sequence of block sizes, got {chunks!r}"
        ) from None
    if sum(sizes) != n or any(s < 0 for s in sizes):
        raise ParameterError(f"chunks: block sizes {sizes} must be >= 0 and add up to the {n} frames")
    return sizes


def _positive_or_none(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GeometryError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        unit = {"energy": "keV", "distance": "m"}.get(name, "")
        raise GeometryError(f"{name}: must be a finite number > 0 {unit}, got {value!r}".replace("  ", " "))
    return v


def _pair_or_none(name: str, value: Any, *, positive: bool) -> tuple[float, float] | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=object).ravel()
    if arr.size == 1:
        arr = np.array([arr[0], arr[0]], dtype=object)
    if arr.size != 2:
        raise GeometryError(f"{name}: expected one value or a (y, x) pair, got {value!r}")
    try:
        pair = tuple(float(v) for v in arr)
    except (TypeError, ValueError):
        raise GeometryError(f"{name}: expected numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in pair) or (positive and not all(v > 0 for v in pair)):
        req = "finite numbers > 0" if positive else "finite numbers"
        raise GeometryError(f"{name}: must be {req}, got {value!r}")
    return pair  # type: ignore[return-value]


def check_center(center: Any, shape: Sequence[int], name: str = "center") -> tuple[float, float] | None:
    """Validate a (row, col) centre in pixels: strictly inside a frame of ``shape``."""
    pair = _pair_or_none(name, center, positive=False)
    if pair is None:
        return None
    for c, n, axis in zip(pair, shape, AXIS):
        if not 0 < c < n:
            raise GeometryError(
                f"{name}: {pair} must lie strictly inside the {tuple(shape)} frame "
                f"(0 < {axis} < {n}), ptypy refuses centres on or outside the edge"
            )
    return pair


def _positions(positions: Any, n: int) -> np.ndarray | da.Array:
    if isinstance(positions, da.Array):
        pos = positions.astype(np.float64)
    else:
        pos = np.asarray(positions)
        if pos.dtype == object or not _is_real_numeric(pos.dtype):
            raise ScanError(f"positions: expected numbers, got dtype {pos.dtype}")
        pos = pos.astype(np.float64)
    if pos.shape != (n, 2):
        raise ScanError(
            f"positions: expected shape ({n}, 2) = (frame, (y, x)) in metres for {n} frames, got {pos.shape}"
        )
    if isinstance(pos, np.ndarray):
        bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
        if bad.size:
            raise ScanError(
                f"positions: {bad.size} row(s) are NaN or infinite, first at frame {bad[0]} "
                f"({pos[bad[0]].tolist()}); every frame needs a finite (y, x) position in metres"
            )
    return pos


def _frame_aligned(name: str, arr: Any, data: da.Array, *, allow_2d: bool, allow_1d: bool = False):
    """Return (dims, array) for a variable that is 2-D (y, x) or per frame."""
    n, h, w = data.shape
    if not isinstance(arr, da.Array):
        arr = np.asarray(arr)
    if arr.dtype == object or not _is_real_numeric(np.dtype(arr.dtype)):
        raise ScanError(f"{name}: expected a real numeric or bool array, got dtype {arr.dtype}")
    if allow_1d:
        if arr.shape != (n,):
            raise ScanError(f"{name}: expected shape ({n},), one value per frame, got {arr.shape}")
        return ("frame",), arr
    if allow_2d and arr.shape == (h, w):
        return ("y", "x"), arr
    if arr.shape == (n, h, w):
        if isinstance(arr, np.ndarray):
            arr = da.from_array(arr, chunks=(data.chunks[0], -1, -1))
        else:
            arr = arr.rechunk((data.chunks[0], -1, -1))
        return ("frame", "y", "x"), arr
    expected = f"({h}, {w}) or ({n}, {h}, {w})" if allow_2d else f"({n}, {h}, {w})"
    raise ScanError(f"{name}: expected shape {expected} to match the frames, got {arr.shape}")


# --------------------------------------------------------------------------- public API


def from_arrays(
    frames: Any,
    positions: Any = None,
    weights: Any = None,
    *,
    energy: float | None = None,
    distance: float | None = None,
    psize: float | Sequence[float] | None = None,
    chunks: int | Sequence[int] | None = None,
    dark: Any = None,
    flat: Any = None,
    monitor: Any = None,
    **meta: Any,
) -> xr.Dataset:
    """Build a lazy Scan from numpy or Dask arrays.

    Parameters
    ----------
    frames : (frame, y, x) array, numpy or Dask; any real numeric dtype.
    positions : (frame, 2) array of (y, x) positions in metres, or ``None``.
    weights : (y, x) or (frame, y, x); nonzero = valid. ``None`` gives all-ones
        float64 weights of the frame shape (ptypy's fallback).
    energy : photon energy, keV.   distance : sample-detector distance, m.
    psize : detector pixel size, m, one value or a (y, x) pair.
    chunks : frames per Dask block (int) or explicit block sizes; ``None`` keeps a
        Dask array's frame chunks, or makes blocks of about 64 MiB from numpy.
    dark, flat : (y, x) or (frame, y, x) correction frames; monitor : (frame,).
    **meta : ``center`` ((row, col) px of the stored frames), ``label``,
        ``num_frames`` (frames expected when complete; default: the frames given),
        ``propagation`` (``"farfield"``/``"nearfield"``), ``version``,
        ``indices`` (global scan-point index per frame; default 0..N-1), ``info``.
    """
    unknown = sorted(set(meta) - set(_FROM_ARRAYS_META))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, _FROM_ARRAYS_META + ("energy", "distance", "psize", "chunks"), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(
            f"from_arrays: unknown keyword(s) {', '.join(hints)}; known meta keys: {', '.join(_FROM_ARRAYS_META)}"
        )
    data = _as_dask_frames(frames, chunks)
    n, h, w = data.shape

    variables: dict[str, Any] = {"data": (("frame", "y", "x"), data)}
    if weights is None:
        weights = np.ones((h, w), dtype=np.float64)
    variables["weights"] = _frame_aligned("weights", weights, data, allow_2d=True)
    if positions is not None:
        variables["positions"] = (("frame", "axis"), _positions(positions, n))
    indices = meta.get("indices")
    variables["indices"] = (("frame",), _indices(indices, n))
    for name, value in (("dark", dark), ("flat", flat)):
        if value is not None:
            variables[name] = _frame_aligned(name, value, data, allow_2d=True)
    if monitor is not None:
        variables["monitor"] = _frame_aligned("monitor", monitor, data, allow_2d=False, allow_1d=True)

    num_frames = meta.get("num_frames")
    if num_frames is None:
        num_frames = n
    elif isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 0:
        raise ScanError(f"num_frames: expected an integer >= 0 (frames expected when complete), got {num_frames!r}")
    label = meta.get("label")
    if label is not None and not isinstance(label, str):
        raise ScanError(f"label: expected a string or None, got {type(label).__name__}")
    propagation = meta.get("propagation", "farfield")
    if propagation not in ("farfield", "nearfield"):
        raise ParameterError(f"propagation: expected 'farfield' or 'nearfield', got {propagation!r}")
    attrs = {
        "energy": _positive_or_none("energy", energy),
        "distance": _positive_or_none("distance", distance),
        "psize": _pair_or_none("psize", psize, positive=True),
        "center": check_center(meta.get("center"), (h, w)),
        "shape": (int(h), int(w)),
        "propagation": propagation,
        "num_frames": int(num_frames),
        "label": label,
        "version": float(meta.get("version", 0.1)),
        "info": dict(meta.get("info") or {}),
    }
    return annotate(xr.Dataset(variables, coords={"axis": list(AXIS)}, attrs=attrs))


def _indices(indices: Any, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices)
    if idx.shape != (n,) or idx.dtype.kind not in "iu":
        raise ScanError(f"indices: expected {n} integers (one global scan-point index per frame), got {idx.shape} {idx.dtype}")
    idx = idx.astype(np.int64)
    if n > 1 and not (np.diff(idx) > 0).all():
        raise ScanError("indices: must be strictly ascending (ptypy numbers frames by their order in the file)")
    if n and idx[0] < 0:
        raise ScanError(f"indices: must be >= 0, got {idx[0]}")
    return idx


def with_data(scan: xr.Dataset, data: da.Array, weights: Any = None, **attrs: Any) -> xr.Dataset:
    """Return a copy of ``scan`` with new frames (same frame count), weights and meta.

    Used by steps: ``shape`` is refreshed from ``data``; other ``attrs`` override.
    """
    n = scan.sizes["frame"]
    if data.ndim != 3 or data.shape[0] != n:
        raise ScanError(f"with_data: expected ({n}, H, W) frames, got {data.shape}")
    out = scan.drop_vars(["data", "weights"] + [v for v in ("dark", "flat") if v in scan])
    out = out.drop_dims([d for d in ("y", "x") if d in out.dims])
    out["data"] = (("frame", "y", "x"), data)
    if weights is None:
        weights = np.ones(data.shape[1:], dtype=np.float64)
    dims = ("y", "x") if weights.ndim == 2 else ("frame", "y", "x")
    out["weights"] = (dims, weights)
    out.attrs = dict(scan.attrs)
    out.attrs["info"] = info_of(scan)
    out.attrs["shape"] = (int(data.shape[1]), int(data.shape[2]))
    out.attrs.update(attrs)
    return annotate(out)


def frames_present(scan: xr.Dataset) -> int:
    """Number of frames the Scan holds."""
    return int(scan.sizes["frame"])


def frames_expected(scan: xr.Dataset) -> int:
    """Number of frames the scan is expected to hold when complete (``meta/num_frames``)."""
    return int(scan.attrs.get("num_frames", frames_present(scan)))


def is_complete(scan: xr.Dataset) -> bool:
    """True when the Scan holds at least ``num_frames`` frames."""
    return frames_present(scan) >= frames_expected(scan)


def meta_of(scan: xr.Dataset) -> dict[str, Any]:
    """The eight ptypy meta values of the stored frames, as plain Python/numpy values.

    Also for a Scan read back from netCDF or Zarr (absent ``center``/``label`` are ``None``).
    """
    a = decode_attrs(scan.attrs) if is_encoded(scan.attrs) else scan.attrs
    center = a.get("center")
    psize = a.get("psize")
    return {
        "version": float(a.get("version", 0.1)),
        "num_frames": int(a.get("num_frames", frames_present(scan))),
        "label": a.get("label"),
        "shape": np.asarray(a.get("shape", scan["data"].shape[1:]), dtype=np.int64),
        "psize": None if psize is None else np.asarray(psize, dtype=np.float64),
        "energy": None if a.get("energy") is None else float(a["energy"]),
        "center": None if center is None else np.asarray(center, dtype=np.float64),
        "distance": None if a.get("distance") is None else float(a["distance"]),
    }


def validate_scan(scan: Any) -> xr.Dataset:
    """Check that ``scan`` follows the Scan model; return it. Raises :class:`ScanError`.

    A Scan read back from netCDF or Zarr (written with ``scan.ptydask.to_netcdf``/``to_zarr``) is
    returned with its attributes decoded (``info`` a mapping again, absent meta ``None``).
    """
    if not isinstance(scan, xr.Dataset):
        raise ScanError(f"expected a Scan (xarray.Dataset), got {type(scan).__name__}")
    if is_encoded(scan.attrs):
        scan = scan.copy(deep=False)
        scan.attrs = decode_attrs(scan.attrs)
    if "data" not in scan:
        raise ScanError("scan: no 'data' variable (frame, y, x)")
    data = scan["data"]
    if data.dims != ("frame", "y", "x"):
        raise ScanError(f"scan['data']: expected dims ('frame', 'y', 'x'), got {data.dims}")
    if not _is_real_numeric(data.dtype):
        raise ScanError(f"scan['data']: expected a real numeric dtype, got {data.dtype}")
    n, h, w = data.shape
    if "weights" in scan and scan["weights"].dims not in (("y", "x"), ("frame", "y", "x")):
        raise ScanError(f"scan['weights']: expected dims (y, x) or (frame, y, x), got {scan['weights'].dims}")
    if "positions" in scan:
        if scan["positions"].shape != (n, 2):
            raise ScanError(f"scan['positions']: expected shape ({n}, 2), got {scan['positions'].shape}")
    if "indices" in scan and scan["indices"].shape != (n,):
        raise ScanError(f"scan['indices']: expected shape ({n},), got {scan['indices'].shape}")
    shape = tuple(scan.attrs.get("shape", (h, w)))
    if shape != (h, w):
        raise ScanError(f"scan.attrs['shape'] = {shape} disagrees with the frames' {(h, w)}")
    if scan.attrs.get("center") is not None:
        check_center(scan.attrs["center"], (h, w), name="scan.attrs['center']")
    return scan


def rechunk_frames(scan: xr.Dataset, chunks: Any) -> xr.Dataset:
    """``scan`` with its per-frame Dask variables in blocks of ``chunks`` frames, as xarray's ``open_dataset`` takes it.

    ``None`` or ``{}``: unchanged (the source's own blocks); an int ``n`` or ``{"frame": n}``: ``n`` frames
    per block (``-1``: one block, ``"auto"``: Dask's choice); ``y``/``x`` may only be whole (``-1``).
    """
    if chunks is None or (isinstance(chunks, Mapping) and not chunks):
        return scan
    spec = dict(chunks) if isinstance(chunks, Mapping) else {"frame": chunks}
    unknown = sorted(set(spec) - {"frame", "y", "x"})
    if unknown:
        raise ParameterError(f"chunks: unknown dimension(s) {unknown}; a Scan has 'frame', 'y' and 'x'")
    for dim in ("y", "x"):
        if spec.get(dim, -1) not in (-1, None, scan.sizes.get(dim)):
            raise ParameterError(f"chunks: {dim}={spec[dim]!r}; a Scan keeps whole frames per block ({dim}=-1)")
    frame = spec.get("frame")
    if frame is None:
        return scan
    if frame != "auto" and (isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not (frame >= 1 or frame == -1)):
        raise ParameterError(f"chunks: frame={frame!r}; expected frames per block >= 1, -1 (one block) or 'auto'")
    out = scan.copy(deep=False)
    for name, var in scan.data_vars.items():
        if var.dims[:1] == ("frame",) and var.ndim == 3:
            out[name] = var.chunk({"frame": frame, "y": -1, "x": -1})
    return out


def frame_blocks(scan: xr.Dataset) -> list[tuple[int, int]]:
    """(start, stop) frame ranges of the Dask blocks of ``scan['data']``."""
    data = scan["data"].data
    sizes = data.chunks[0] if isinstance(data, da.Array) else (data.shape[0],)
    out, start = [], 0
    for s in sizes:
        out.append((start, start + s))
        start += s
    return out


def describe(scan: xr.Dataset) -> str:
    """A short one-paragraph summary of a Scan (frames, shape, dtype, blocks, geometry)."""
    a: Mapping[str, Any] = scan.attrs
    n = frames_present(scan)
    data = scan["data"]
    blocks = len(frame_blocks(scan))
    parts = [
        f"{n} of {frames_expected(scan)} frames of {data.shape[1]}x{data.shape[2]} {data.dtype} in {blocks} block(s)",
        f"energy {a.get('energy')} keV, distance {a.get('distance')} m, psize {a.get('psize')} m, center {a.get('center')}",
    ]
    return "; ".join(parts)
