"""``open_frames``: any raw source -> a lazy Scan (see :mod:`ptydask.scan`)."""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..scan import from_arrays
from . import corrections
from .. import config
from ..io.links import external_links
from .geometry import resolve_geometry
from .base import FileRef
from .positions import select_points
from .refs import check_keys
from .registry import open_source

#: Keys of ``**spec`` accepted by :func:`open_frames`.
SPEC_KEYS = (
    "positions", "framefilter", "frameorder", "outer_index",
    "mask", "dark", "flat", "darkfield", "flatfield", "normalisation",
    "energy", "distance", "psize", "recorded_energy", "recorded_distance", "recorded_psize", "electron_data",
    "block_bytes", "format", "label", "center", "propagation", "version",
)
ALIASES = {"darkfield": "dark", "flatfield": "flat"}


def _merge_small_blocks(frames: da.Array, step: int) -> da.Array:
    """Join consecutive small blocks (left by a selection) into blocks of about ``step`` frames, never splitting one."""
    sizes, merged, acc = frames.chunks[0], [], 0
    for s in sizes:
        if acc and acc + s > step:
            merged.append(acc)
            acc = 0
        acc += s
    if acc or not merged:
        merged.append(acc)
    return frames if tuple(merged) == tuple(sizes) else frames.rechunk({0: tuple(merged)})


def _take(frames: da.Array, chosen: np.ndarray, block_bytes: int) -> da.Array:
    if chosen.size == frames.shape[0] and np.array_equal(chosen, np.arange(frames.shape[0])):
        return frames
    picked = frames[chosen]
    frame_bytes = int(np.prod(frames.shape[1:])) * frames.dtype.itemsize
    return _merge_small_blocks(picked, max(1, block_bytes // max(1, frame_bytes)))


def open_frames(source: Any, key: str | None = None, *, allow_external_links: bool = False, **spec: Any) -> xr.Dataset:
    """Open raw detector frames lazily as a Scan.

    Parameters
    ----------
    source : a file path, glob pattern, folder, list of files, or a numpy/Dask array.
        Formats (:func:`~ptydask.sources.formats`, recognised by content, else by suffix):
        HDF5/NeXus/CXI (``.h5 .hdf5 .nxs .cxi`` ...), TIFF, CBF/EDF via fabio (also
        ``.bz2``/``.gz``), SMV/d*TREK ``.img``, Gatan ``.dm3/.dm4`` (rosettasciio),
        Merlin ``.mib``, Zarr, ``.npy``/``.npz``; third-party formats through the
        ``ptydask.sources`` entry-point group. What the file knows (positions, mask,
        dark/flat, geometry with units) is used unless given here; ``info`` says where
        each geometry value came from.
        Frames may be ``(H, W)``, ``(N, H, W)`` or a raster ``(A, B, H, W)``
        (read as ``A*B`` frames, row-major); ``outer_index`` picks one entry of
        an extra leading axis (``(E, N, H, W)``, ``(E, A, B, H, W)``).
    key : dataset path inside HDF5/Zarr/``.npz`` (image number of a DigitalMicrograph
        file); optional where CXI, NeXus (``default``/``signal``) or DECTRIS
        (``data_NNNNNN`` links) conventions locate the frames. An explicit key always
        wins over a guessed layout.
    **spec :
        ``positions`` — (N, 2) (y, x) metres, or ptypy ``Hdf5Loader``'s dict
        ``{file, slow_key, fast_key, slow_multiplier, fast_multiplier, slow_index,
        fast_index, skip, bounding_box: {slow_axis_bounds, fast_axis_bounds}}``
        (also ``slow``/``fast`` arrays); ``framefilter`` (per point, > 0 keeps;
        array or ``{file, key}``); ``frameorder`` (``{indices}`` or a list);
        ``outer_index``;
        ``mask`` (array or ``{file, key, invert, kind}``; ``False`` ignores a
        file's own mask); ``dark``/``darkfield``, ``flat``/``flatfield``
        (arrays or ``{file, key, indices, average}``); ``normalisation``
        (per-frame monitor, array or ``{file, key, sigma}``);
        ``energy`` (keV), ``distance`` (m), ``psize`` (m, one value or (y, x));
        ``recorded_energy``/``recorded_distance``/``recorded_psize``
        (``{file, key, multiplier, offset}``); ``electron_data``;
        ``block_bytes`` (Dask block size, default the ``ptydask.block-bytes.sources`` setting, 128 MiB); ``format`` (force
        one of :func:`~ptydask.sources.format_names`); ``label``, ``center``, ``propagation``, ``version``.
    allow_external_links : follow links whose target lies outside the folder of the
        file named (HDF5 external links, also behind soft links, virtual-dataset
        sources, external storage, symlinked files, symlinks in a listed folder; see
        :class:`ptydask.io.LinkPolicy`). By default they are refused with a
        :class:`~ptydask.errors.SourceError`; links to files in the same folder
        (DECTRIS ``data_NNNNNN``) always work.

    Returns the Scan (:func:`ptydask.scan.from_arrays`); its ``indices`` are
    the global scan-point indices of the selected points (``0..n-1`` when
    ``frameorder`` changes their order, see ``info['reordered']``).
    """
    check_keys("open_frames", spec, SPEC_KEYS)
    with external_links(allow_external_links):
        return _open_frames(source, key, spec)


def _open_frames(source: Any, key: str | None, spec: dict[str, Any]) -> xr.Dataset:
    for alias, name in ALIASES.items():
        if alias in spec:
            if name in spec:
                raise ParameterError(f"open_frames: give either {name!r} or {alias!r}, not both")
            spec[name] = spec.pop(alias)
    block_bytes = int(spec.get("block_bytes") or config.get("block-bytes.sources"))
    if block_bytes < 1:
        raise ParameterError(f"block_bytes: must be >= 1, got {spec.get('block_bytes')!r}")
    outer_index = spec.get("outer_index")
    if outer_index is not None and (isinstance(outer_index, bool) or not isinstance(outer_index, (int, np.integer))):
        raise ParameterError(f"outer_index: expected an integer, got {outer_index!r}")

    opened = open_source(source, key, outer_index=outer_index, block_bytes=block_bytes, fmt=spec.get("format"))
    n, h, w = opened.frames.shape
    default_file = opened.ref_file
    sel = select_points(
        n, opened.grid, spec.get("positions"), framefilter=spec.get("framefilter"), frameorder=spec.get("frameorder"),
        file_positions=opened.positions, default_file=default_file, outer_index=outer_index, where=opened.where,
    )
    frames = _take(opened.frames, sel.frames, block_bytes)
    ctx = {"default_file": default_file, "outer_index": outer_index, "raw_shape": opened.raw_shape,
           "block_bytes": block_bytes, "n_frames": n, "frame_shape": (h, w)}
    weights, mask_origin = corrections.mask_weights(spec.get("mask"), opened.mask, ctx, sel)
    dark = corrections.dark_flat("dark", _or_file(spec.get("dark"), opened.dark), ctx, sel)
    flat = corrections.dark_flat("flat", _or_file(spec.get("flat"), opened.flat), ctx, sel)
    monitor = corrections.monitor(spec.get("normalisation"), ctx, sel)
    geometry, origin = resolve_geometry(spec, opened.geometry, default_file, outer_index)

    info = {
        "source": os.fspath(opened.path) if opened.path else "array",
        "source_key": opened.key or "",
        "source_format": opened.format,
        "layout": sel.layout,
        "scan_points": int(np.prod(sel.grid)),
        "frames_selected": int(sel.frames.size),
        "reordered": sel.reordered,
        "mask": mask_origin,
        **{f"{q}_from": o for q, o in origin.items()},
    }
    if spec.get("positions") is None and opened.positions is not None:
        info["positions_from"] = f"source file {opened.positions_from or opened.where}"
    if isinstance(spec.get("normalisation"), dict) and spec["normalisation"].get("sigma") is not None:
        info["normalisation_sigma"] = float(spec["normalisation"]["sigma"])
    meta = {k: spec[k] for k in ("label", "center", "propagation", "version") if spec.get(k) is not None}
    return from_arrays(
        frames, sel.positions, weights,
        energy=geometry["energy"], distance=geometry["distance"], psize=geometry["psize"],
        dark=dark, flat=flat, monitor=monitor, indices=sel.indices, info=info, **meta,
    )


def _or_file(given: Any, from_file: FileRef | None) -> Any:
    """An explicit dark/flat wins; else the source file's own (``False`` ignores it)."""
    if given is False:
        return None
    if given is not None or from_file is None:
        return given
    return {"file": from_file.file, "key": from_file.key}


__all__ = ["open_frames", "SPEC_KEYS"]
