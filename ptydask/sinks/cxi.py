"""Write a Scan as a CXI file: the ptychography layout PyNX, cdtools and ptychodus read.

Layout (SI units, as the CXI format defines them)::

    cxi_version                                   150
    entry_1/instrument_1/detector_1/data          (N, H, W) frames, whole-frame HDF5 chunks
    entry_1/instrument_1/detector_1/distance      m
    entry_1/instrument_1/detector_1/x_pixel_size  m (columns)   y_pixel_size: m (rows)
    entry_1/instrument_1/detector_1/mask          (H, W) uint32, nonzero = bad pixel
    entry_1/instrument_1/source_1/energy          J
    entry_1/sample_1/geometry_1/translation       (N, 3) m, columns (x, y, z), z = 0
    entry_1/data_1/data, entry_1/data_1/translation   soft links to the two above

A Scan position (y, x) becomes the translation (x, y, 0): the mapping :func:`ptydask.open_frames`
(and ptypy's CXI loaders) read back. The mask is the complement of the Scan's shared 2-D weights
(weights nonzero = valid); a Scan with per-frame weights has no single CXI mask and is refused.

The write is atomic like the ``.ptyd`` one: everything goes to ``<name>.incomplete``, renamed into
place at :meth:`CxiSink.commit`; an error or an interruption leaves no file that looks complete.
Frames are compressed where they are computed (the ``.ptyd`` writer's encoding), on the same runners.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import xarray as xr

from ..errors import GeometryError, OutputError, ParameterError, ScanError
from ..execution import Runner, resolve_runner
from ..execution.passes import fail, run_blocks
from ..ptyd.layout import BlockWriter, remove, tmp_name
from ..ptyd.options import WriteOptions, check_output
from ..ptyd.plan import PtydPlan
from ..ptyd.sink import BlockEncoder
from ..sources.cxi import KEV

__all__ = ["CxiSink", "to_cxi", "CXI_VERSION"]

#: The CXI format version written.
CXI_VERSION = 150
DETECTOR = "entry_1/instrument_1/detector_1"
TRANSLATION = "entry_1/sample_1/geometry_1/translation"


def to_cxi(scan: xr.Dataset, path: str | os.PathLike, overwrite: bool = False, *, progress: bool | None = None,
           runner: Runner | str | None = None, options: WriteOptions | None = None, **write: Any) -> Path:
    """Write ``scan`` to ``path`` as a CXI file (see the module docstring for the layout).

    Parameters
    ----------
    scan : a Scan with positions (m) and energy (keV), distance (m) and psize (m).
    path : the file to write.
    overwrite : replace an existing file; otherwise an existing file is an error.
    progress : a progress bar; ``None``: only when stderr is a terminal.
    runner : where blocks are computed (see :func:`ptydask.to_ptyd`).
    options, **write : ``compression``, ``compression_level``, ``shuffle``, ``frames_per_hdf5_chunk``,
        ``max_in_flight`` (:class:`~ptydask.ptyd.WriteOptions`; ``save`` must stay ``"append"``:
        a CXI file holds one frame dataset).

    Returns
    -------
    Path : the file written.
    """
    opts = WriteOptions.of(options, **write)
    runner = resolve_runner(runner)
    sink = CxiSink(scan, Path(path), opts, overwrite)
    sink.open()
    try:
        run_blocks(sink, runner, range(len(sink.ranges)), None, progress)
        sink.commit()
    except BaseException as exc:
        fail(sink, runner, exc)
        raise
    return sink.path


class CxiSink:
    """One CXI output of ``scan``: :meth:`open`, :meth:`write_block` per block, :meth:`commit` or
    :meth:`abort` (the protocol of :class:`ptydask.ptyd.PtydSink`)."""

    def __init__(self, scan: xr.Dataset, path: Path, options: WriteOptions, overwrite: bool = False):
        if options.save != "append":
            raise ParameterError(f"save: a CXI file holds one frame dataset; got save={options.save!r}")
        plan = PtydPlan(scan, path, WriteOptions.of(options, save="merge"))  # the checks and arrays
        if plan.writer.per_frame_weights:
            raise ScanError(f"{path}: weights: the scan has per-frame weights; a CXI file holds one (H, W) mask")
        self.plan, self.path, self.overwrite = plan, Path(path), bool(overwrite)
        self.arrays, self.ranges, self.max_in_flight = [plan.data], plan.ranges, options.max_in_flight
        self.writer: BlockWriter = plan.writer
        self.encoder = BlockEncoder(plan.writer, plan.ranges, plan.positions, plan.indices, plan.shape[0])
        self.tmp = tmp_name(self.path)
        self._file: h5py.File | None = None

    def open(self) -> list[int]:
        """Create ``<path>.incomplete`` with the frame dataset and the links; returns the blocks to write."""
        check_output(self.path, self.overwrite)
        n, h, w = self.plan.shape
        bw = self.writer
        opts: dict[str, Any] = {"chunks": (bw.k, h, w)}
        if bw.compression == "gzip":
            opts.update(compression="gzip", compression_opts=bw.level, shuffle=bw.shuffle)
        try:
            f = h5py.File(self.tmp, "w")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create {self.tmp}: {exc}") from exc
        self._file = f
        f.create_dataset("cxi_version", data=CXI_VERSION)
        f.create_dataset(f"{DETECTOR}/data", shape=(n, h, w), dtype=bw.dtype, **opts)
        f.create_group("entry_1/data_1")
        f["entry_1/data_1/data"] = h5py.SoftLink(f"/{DETECTOR}/data")
        return list(range(len(self.ranges)))

    def write_block(self, i: int, encoded: Any, partial: Any = None) -> None:
        """Store block ``i`` (from :attr:`encoder`) in the frame dataset."""
        start, stop = self.ranges[i]
        self.writer.write_frames(self._file[f"{DETECTOR}/data"], start, stop - start, encoded["data"])

    def commit(self, meta: dict[str, Any] | None = None, weights: np.ndarray | None = None) -> Path:
        """Write the geometry (``meta``: the eight ptypy values, default the scan's), the mask (from the
        shared (H, W) ``weights``, default the scan's) and the translations; rename into place."""
        meta = self.writer.meta if meta is None else meta
        weights = self.writer.weights2d if weights is None else np.asarray(weights)
        f = self._file
        for key in ("energy", "distance", "psize"):
            if meta.get(key) is None:
                raise GeometryError(f"{key}: not set on the scan; a CXI file needs it")
        psize = np.broadcast_to(np.asarray(meta["psize"], dtype=np.float64).reshape(-1), (2,))
        f.create_dataset("entry_1/instrument_1/source_1/energy", data=float(meta["energy"]) * KEV)
        f.create_dataset(f"{DETECTOR}/distance", data=float(meta["distance"]))
        f.create_dataset(f"{DETECTOR}/y_pixel_size", data=float(psize[0]))
        f.create_dataset(f"{DETECTOR}/x_pixel_size", data=float(psize[1]))
        f.create_dataset(f"{DETECTOR}/mask", data=(np.asarray(weights) == 0).astype(np.uint32), compression="gzip")
        pos = self.plan.positions
        translation = np.column_stack([pos[:, 1], pos[:, 0], np.zeros(len(pos))])
        f.create_dataset(TRANSLATION, data=translation)
        f["entry_1/data_1/translation"] = h5py.SoftLink(f"/{TRANSLATION}")
        self._close()
        if self.path.exists() and not self.overwrite:
            raise OutputError(f"{self.path}: was created by someone else while writing; not replaced")
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self, keep: bool = False) -> None:
        """Remove ``<path>.incomplete`` (a CXI write is not resumable: ``keep`` is ignored)."""
        self._close()
        remove(self.tmp)

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - closing after an HDF5 error: nothing more to save
                pass
            self._file = None
