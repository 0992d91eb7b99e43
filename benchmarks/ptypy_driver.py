"""Drive ptypy's own data pipeline (``PtyScan``) on the benchmark input; needs ptypy importable.

Written for these benchmarks: a minimal ``PtyScan`` subclass supplies what only a
subclass can (positions, the detector mask, raw frames read one by one as ptypy's
HDF5 loader does, dark/flat correction in ``correct``); ptypy's own ``PtyScan``
does the rest: auto-centre (over its first chunk), ROI, orientation, rebin, and
writing the ``.ptyd`` (``save='append'``), ``auto(frames_per_call)`` until the
end of the scan.

ptypy has no automatic hot/dead-pixel masks: it is handed the known bad pixels
of the simulated detector as its mask, work it does not have to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from .data import KEYS, PARAMS, detector


def _ptypy():
    from ptypy import utils as u
    from ptypy.core.data import PtydScan, PtyScan

    u.verbose.set_level(0)
    return u, PtyScan, PtydScan


def _known_mask() -> np.ndarray:
    from .data import SHAPE

    det = detector()
    mask = np.ones(SHAPE, dtype=bool)
    mask[:, det["dead_column"]] = False
    mask[det["dead"][:, 0], det["dead"][:, 1]] = False
    mask[det["hot"][:, 0], det["hot"][:, 1]] = False
    return mask


def run_prepare(raw: str, out: str, frames_per_call: int, num_frames: int | None = None) -> int:
    u, PtyScan, _ = _ptypy()
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass

    class BenchScan(PtyScan):
        def __init__(self, pars):
            super().__init__(pars)
            self.h5 = h5py.File(raw, "r")
            self.frames = self.h5[KEYS["frames"]]
            self.dark = self.h5[KEYS["dark"]][()].astype(np.float64)
            self.flat = self.h5[KEYS["flat"]][()].astype(np.float64)
            self.ok = np.isfinite(self.flat) & (self.flat != 0)

        def load_positions(self):
            n = self.frames.shape[0] if num_frames is None else num_frames
            return np.stack([self.h5[KEYS["y"]][:n], self.h5[KEYS["x"]][:n]], axis=1)

        def load_weight(self):
            return (_known_mask() & self.ok).astype(np.float64)

        def load(self, indices):
            return {i: self.frames[i] for i in indices}, {}, {}

        def correct(self, raw, weights, common):
            data = {}
            for i, frame in raw.items():
                c = np.zeros(frame.shape)
                np.divide(np.maximum(frame - self.dark, 0), self.flat, out=c, where=self.ok)
                data[i] = c
            return data, weights

    for p in Path(out).parent.glob(Path(out).name + "*"):
        p.unlink()
    pars = u.Param()
    pars.dfile = str(out)
    pars.save = "append"
    pars.shape = PARAMS["shape"]
    pars.center = None
    pars.auto_center = None
    pars.orientation = PARAMS["orientation"]
    pars.rebin = PARAMS["rebin"]
    pars.psize = PARAMS["psize"]
    pars.energy = PARAMS["energy"]
    pars.distance = PARAMS["distance"]
    if num_frames is not None:
        pars.num_frames = num_frames
    scan = BenchScan(pars)
    count = _run_to_end(scan, frames_per_call)
    scan.h5.close()
    return count


def _run_to_end(scan, frames_per_call: int) -> int:
    """``initialize()`` a ptypy scan, then ``auto(frames_per_call)`` until ``EOS``/``WAIT``; frames served."""
    scan.initialize()
    count = 0
    while True:
        msg = scan.auto(frames_per_call)
        if msg == scan.EOS or msg == scan.WAIT:
            return count
        count += len(msg["iterable"])


def run_read(path: str, frames_per_call: int) -> tuple[int, float]:
    """Read a ``.ptyd`` with ptypy's ``PtydScan`` to the end; return frames and the sum of all data."""
    u, _, PtydScan = _ptypy()
    scan = PtydScan(u.Param(dfile=str(path), source="file"))
    scan.initialize()
    n, total = 0, 0.0
    while True:
        msg = scan.auto(frames_per_call)
        if msg == scan.EOS or msg == scan.WAIT:
            break
        for it in msg["iterable"]:
            if it.get("data") is not None:
                total += float(np.sum(it["data"]))
                n += 1
    return n, total


def run_copy(path: str, out: str, frames_per_call: int) -> int:
    """Write the frames of a ``.ptyd`` again with ptypy's own writer (no processing): ptypy's own file
    of the same content (its HDF5 layout: h5py automatic chunks + gzip)."""
    u, PtyScan, _ = _ptypy()
    src = h5py.File(path, "r")
    groups = [src["chunks"][k] for k in sorted(src["chunks"], key=int)]
    sizes = np.cumsum([0] + [g["data"].shape[0] for g in groups])
    shape = groups[0]["data"].shape[1:]

    class CopyScan(PtyScan):
        def load_positions(self):
            return np.concatenate([g["positions"][()] for g in groups])

        def load_weight(self):
            return groups[0]["weights"][0].astype(np.float64)

        def load(self, indices):
            raw = {}
            for i in indices:
                j = int(np.searchsorted(sizes, i, side="right") - 1)
                raw[i] = groups[j]["data"][i - sizes[j]]
            return raw, {}, {}

    if os.path.exists(out):
        os.remove(out)
    pars = u.Param()
    pars.dfile = str(out)
    pars.save = "append"
    pars.shape = shape[0]
    pars.center = "fftshift"
    pars.psize = PARAMS["psize"] * PARAMS["rebin"]
    pars.energy = PARAMS["energy"]
    pars.distance = PARAMS["distance"]
    scan = CopyScan(pars)
    count = _run_to_end(scan, frames_per_call)
    src.close()
    return count
