"""What a ``.ptyd`` write needs, checked before the first byte is written (spec: ptyd-format.md §1, §2, §5).

:class:`PtydPlan` takes a Scan and :class:`~ptydask.ptyd.options.WriteOptions`: it checks the scan
(frames, positions, geometry), keeps the Dask arrays, positions, indices and block ranges, and builds
the :class:`~ptydask.ptyd.layout.BlockWriter` of the file. It also identifies itself for ``resume``
(:meth:`PtydPlan.fingerprint`) and recognises the chunk groups an earlier run finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import dask.array as da
import h5py
import numpy as np
import xarray as xr

from ..blocks import block_ranges
from ..version import __version__
from ..errors import GeometryError, ScanError
from ..scan import meta_of, validate_scan
from .layout import BlockWriter
from .options import WriteOptions

__all__ = ["PtydPlan", "COMPLETE_ATTR", "FINGERPRINT_ATTR", "documentable"]

#: Root attribute of an ``.incomplete`` append file: the plan's fingerprint (JSON).
FINGERPRINT_ATTR = "ptydask_plan"
#: Attribute of a chunk group that is fully written (append mode, removed at the end).
COMPLETE_ATTR = "ptydask_complete"


def _required_geometry(scan: xr.Dataset) -> None:
    for key, unit in (("energy", "keV"), ("distance", "m"), ("psize", "m")):
        if scan.attrs.get(key) is None:
            raise GeometryError(
                f"{key}: not set on the scan; ptypy needs it in meta/{key} ({unit}); "
                f"pass {key}= to from_arrays/open_frames or set scan.attrs[{key!r}]"
            )


class PtydPlan:
    """The checked arrays and the :class:`BlockWriter` of one ``.ptyd`` output of ``scan`` at ``path``."""

    def __init__(self, scan: xr.Dataset, path: Path, options: WriteOptions):
        scan = validate_scan(scan)
        n, h, w = scan["data"].shape
        if n == 0:
            raise ScanError(f"{path}: the scan has no frames; an empty .ptyd cannot be read by ptypy")
        if "positions" not in scan:
            raise ScanError(
                "positions: the scan has none; a .ptyd needs (y, x) positions in metres for every frame "
                "(ptypy cannot reconstruct without them); pass positions= to from_arrays"
            )
        _required_geometry(scan)
        self.path, self.options, self.save = Path(path), options, options.save
        self.shape = (n, h, w)
        data = scan["data"].data
        self.data = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=(n, h, w))
        self.data = self.data.rechunk((self.data.chunks[0], h, w))
        self.ranges = block_ranges(self.data.chunks[0])
        self.weights3d, weights2d = self._weights(scan)
        self.positions = np.asarray(scan["positions"].values, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(self.positions).all(axis=1))
        if bad.size:
            raise ScanError(f"positions: {bad.size} row(s) are NaN or infinite, first at frame {bad[0]}")
        self.indices = (
            np.asarray(scan["indices"].values, dtype=np.int64) if "indices" in scan else np.arange(n, dtype=np.int64)
        )
        o = options
        k = min(o.frames_per_hdf5_chunk, n)
        info = documentable({
            **(scan.attrs.get("info") or {}),
            "writer": f"ptydask {__version__}",
            "save": o.save,
            "chunk_format": o.chunk_format,
            "dfile": self.path.name,
            "compression": "none" if o.compression is None else f"{o.compression}:{o.compression_level}",
            "shuffle": o.shuffle,
            "frames_per_hdf5_chunk": k,
            "propagation": scan.attrs.get("propagation", "farfield"),
        })
        self.writer = BlockWriter(
            path=self.path, save=o.save, chunk_format=o.chunk_format, frame_shape=(h, w), dtype=self.data.dtype,
            weights_dtype=weights2d.dtype if weights2d is not None else self.weights3d.dtype, weights2d=weights2d,
            k=k, compression=o.compression, level=o.compression_level, shuffle=o.shuffle, meta=meta_of(scan),
            info=info,
        )

    def _weights(self, scan: xr.Dataset) -> tuple[da.Array | None, np.ndarray | None]:
        """(per-frame weights as a Dask array, or ``None``; shared (H, W) weights, or ``None``)."""
        n, h, w = self.shape
        if "weights" not in scan:
            return None, np.ones((h, w), dtype=np.float64)
        wts = scan["weights"]
        if wts.dims == ("y", "x"):
            return None, np.asarray(wts.values)
        wdata = wts.data if isinstance(wts.data, da.Array) else da.from_array(np.asarray(wts.data))
        return wdata.rechunk((self.data.chunks[0], h, w)), None

    @property
    def arrays(self) -> list[da.Array]:
        """The Dask arrays whose blocks are written: the frames, and the per-frame weights if any."""
        return [self.data] + ([self.weights3d] if self.weights3d is not None else [])

    def same_frames(self, other: PtydPlan) -> bool:
        """True when ``other`` writes the same frames, positions, indices and dtypes (its meta, info and
        shared 2-D weights may differ), so that a file of this plan can be committed as ``other``'s."""
        a, b = self.writer, other.writer
        return (other.shape == self.shape and other.ranges == self.ranges and a.dtype == b.dtype
                and a.weights_dtype == b.weights_dtype and not a.per_frame_weights and not b.per_frame_weights
                and np.array_equal(other.positions, self.positions) and np.array_equal(other.indices, self.indices))

    # -- resume
    def fingerprint(self) -> str:
        """JSON text identifying the plan: frames, blocks, dtypes, shapes, options, meta, info, positions."""
        bw = self.writer
        digest = hashlib.sha256()
        for arr in (self.positions, self.indices, bw.weights2d):
            if arr is not None:
                digest.update(str(arr.dtype).encode() + np.ascontiguousarray(arr).tobytes())
        plan = {
            "format": 1, "shape": self.shape, "blocks": self.ranges, "dtype": str(bw.dtype),
            "weights_dtype": str(bw.weights_dtype), "weights_per_frame": bw.per_frame_weights, "save": self.save,
            "compression": bw.compression, "level": bw.level, "shuffle": bw.shuffle, "k": bw.k,
            "meta": bw.meta, "info": bw.info, "arrays": digest.hexdigest(),
        }
        return json.dumps(plan, sort_keys=True, default=_jsonable)

    def complete(self, name: str, grp: h5py.Group) -> bool:
        """True when chunk group ``name`` is marked complete and holds exactly its block's frames."""
        if grp.attrs.get(COMPLETE_ATTR) != 1 or not name.isdigit() or int(name) >= len(self.ranges):
            return False
        start, stop = self.ranges[int(name)]
        n, (_, h, w) = stop - start, self.shape
        hdf5_chunks = math.ceil(n / min(self.writer.k, n))
        for ds_name, dtype in (("data", self.writer.dtype), ("weights", self.writer.weights_dtype)):
            ds = grp[ds_name]
            if ds.shape != (n, h, w) or ds.dtype != dtype or ds.id.get_num_chunks() != hdf5_chunks:
                return False
        return bool(
            np.array_equal(grp["positions"][()], self.positions[start:stop])
            and np.array_equal(grp["indices"][()], self.indices[start:stop])
        )


def documentable(value: Any) -> Any:
    """A copy of ``value`` made of what h5rw can store (other objects become their repr)."""
    if isinstance(value, dict):
        return {str(k): documentable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [documentable(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind in "biuf" else repr(value.tolist())
    if value is None or isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _jsonable(value: Any) -> Any:
    """JSON stand-in for numpy values and other objects in a fingerprint."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return repr(value)


