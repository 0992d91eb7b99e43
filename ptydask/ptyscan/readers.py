"""PtyScans served from data ptydask already has: a lazy Scan (:class:`ScanPtyScan`) or a ``.ptyd`` file (:class:`PtydScan`)."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import xarray as xr

from ..errors import FormatError, ParameterError, ScanError
from ..labels import annotate
from ..scan import META_KEYS, meta_of
from ..steps import prepare
from .core import PtyScan, pair
from .params import Param



# --------------------------------------------------------------------------- Scan-backed classes

#: parameters that, given with a ``source``, re-prepare the stored frames (ptypy's "manipulate").
_REPREPARE = ("shape", "center", "auto_center", "rebin", "orientation")


def _reprocessing_pars(given: Param, source: str) -> Param:
    """ptypy's ``PtydScan(pars, source=path)``: the source's meta as defaults, ``dfile`` != source."""
    import h5py

    if not os.path.exists(source):
        raise FormatError(f"{source}: no such file (PtydScan source)")
    with h5py.File(source, "r") as f:
        if "chunks/0" not in f:
            raise FormatError(f"{source}: the .ptyd holds no data yet (no chunks/0); PtydScan source refused")
    from ..ptyd.reader import open_ptyd

    given["reprocess"] = bool(given.get("reprocess")) or any(given.get(k) is not None for k in _REPREPARE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a partial source (no meta/num_frames yet) is fine here
        meta = meta_of(open_ptyd(source))
    for key in ("shape", "center", "psize", "energy", "distance", "label", "version"):
        if key not in given:  # as ptypy: the source's meta, unless given
            given[key] = list(meta[key]) if isinstance(meta[key], (tuple, np.ndarray)) else meta[key]
    dfile = given.get("dfile")
    if dfile and os.path.realpath(dfile) == os.path.realpath(source):
        stem, ext = os.path.splitext(str(dfile))
        given["dfile"] = f"{stem}_n{ext}"  # as ptypy: never write into the source
    given["source"] = "file"
    return given


class ScanPtyScan(PtyScan):
    """A ``PtyScan`` serving an existing lazy Scan (e.g. from :func:`ptydask.sources.open_frames`).

    Frame ``k`` of the Scan is global index ``k`` (ptypy's running numbering);
    positions and weights come from the Scan; ``energy``, ``distance`` and
    ``psize`` from the Scan where set, else from the parameters. The Scan's
    ``dark``/``flat``/``monitor`` are applied by ``prepare``, which is built
    once over the whole Scan (lazily) and sliced per chunk. When the whole
    scan is present, one process finds the automatic centre with ``prepare``
    itself (corrected frames, all masks); under MPI, or for a scan still
    growing, each rank sums centres over its own raw frames (spec §4.3).
    """

    def __init__(self, scan: Optional[xr.Dataset], pars: Optional[Mapping[str, Any]] = None, comm: Any = None,
                 *, prepare_options: Optional[Mapping[str, Any]] = None, **kwargs: Any):
        super().__init__(pars, comm, prepare_options=prepare_options, **kwargs)
        self.scan = scan
        self._prepared: Optional[xr.Dataset] = None

    def load_positions(self) -> Optional[np.ndarray]:
        scan = self._current()
        return None if scan is None or "positions" not in scan else np.asarray(scan["positions"].values)

    def load(self, indices: Sequence[int]) -> tuple[dict, dict, dict]:
        """Frames of ``indices`` from the Scan (ptypy-style; the pipeline itself reads the Scan lazily)."""
        raw, _ = self._raw_part(list(indices), [list(indices)] * self.size)
        frames = np.asarray(raw["data"].values)
        return {i: frames[j] for j, i in enumerate(indices)}, {}, {}

    def _current(self) -> Optional[xr.Dataset]:
        return self.scan

    def _full(self) -> xr.Dataset:
        scan = self._current()
        p = self.info
        scan = annotate(scan.assign(indices=("frame", np.arange(scan.sizes["frame"], dtype=np.int64))))  # frame coord too
        for key in ("energy", "distance", "psize"):
            if scan.attrs.get(key) is None and p.get(key) is not None:
                scan.attrs[key] = float(p[key]) if key != "psize" else tuple(pair(p[key]))
        if p.label is not None:
            scan.attrs["label"] = p.label
        return scan

    def _raw_part(self, indices: list[int], parts: list[list[int]], *,
                  centre_pass: bool = False) -> tuple[Optional[xr.Dataset], Any]:
        mine = parts[self.rank]
        scan = self._full()
        n = scan.sizes["frame"]
        if indices and indices[-1] >= n:
            raise ScanError(f"frames {indices[0]}..{indices[-1]} requested, the Scan holds {n}")
        if "positions" in scan:
            chunk_positions = np.asarray(scan["positions"].values[indices[0] : indices[-1] + 1]) if indices else None
        elif self.info.positions_theory is not None:
            chunk_positions = np.asarray(self.info.positions_theory)[indices]
        else:
            chunk_positions = None
        if not mine:
            return None, chunk_positions
        return scan.isel(frame=slice(mine[0], mine[-1] + 1)), chunk_positions

    def _prepare_full(self, center: Any, auto_center: Any) -> xr.Dataset:
        p = self.info
        full = self._full()
        keep = min(full.sizes["frame"], self.num_frames) if self.num_frames is not None else None
        return prepare(full, shape=p.shape, center=center, auto_center=auto_center, orientation=p.orientation,
                       rebin=p.rebin, rebin_mode=p.rebin_mode, num_frames=keep, **self.prepare_options)

    def _freeze_center(self, raw: Optional[xr.Dataset], indices: list[int]) -> None:
        if self.comm is None and self.num_frames is not None and self._complete():
            self._prepared = self._prepare_full(self.info.center, self.info.auto_center)
            done = self._prepared.attrs["info"]
            self._frozen_center = tuple(float(v) for v in done["center"])
            self.info.center_rule = done["prepare"]["center_rule"]
            self.info.center = list(self._frozen_center)
            return
        super()._freeze_center(raw, indices)

    def _prepare_part(self, raw: xr.Dataset) -> xr.Dataset:
        if self._prepared is None:
            self._prepared = self._prepare_full(self._frozen_center, False)
        idx = raw["indices"].values
        return self._prepared.isel(frame=slice(int(idx[0]), int(idx[-1]) + 1))


class PtydScan(ScanPtyScan):
    """Read a ``.ptyd`` chunk by chunk, also while it grows (ptyd-format.md §4).

    ``source`` None or ``'file'``: read ``dfile`` itself. ``source`` a path
    (ptypy's re-processing form, ``PtydScan(pars, source=path)``): read that
    file and save to ``dfile`` (with ``save``); the geometry defaults to the
    source's meta, and giving any of ``shape``, ``center``, ``auto_center``,
    ``rebin``, ``orientation`` re-prepares the stored frames with them.
    ``auto(frames)`` hands out the stored frames as stored (no parameter is
    re-applied unless ``reprocess=True``, which runs ``prepare`` with the given
    parameters); ``meta`` comes from the file. An incomplete file gives its
    frames, then ``WAIT`` until more chunks appear (the file is re-read at
    every call), and ``EOS`` only after ``meta/num_frames`` frames were served.
    """

    DEFAULT = Param({"name": "PtydScan", "source": "file", "reprocess": False, "retries": 20})

    def __init__(self, pars: Optional[Mapping[str, Any]] = None, comm: Any = None, **kwargs: Any):
        given = Param()
        given.update(pars or {})
        given.update(kwargs)
        source = given.get("source")
        if source is not None and str(source) != "file":
            given = _reprocessing_pars(given, str(source))
        super().__init__(None, given, comm)
        self.path = self.info.dfile if source is None or str(source) == "file" else str(source)
        if not self.path:
            raise ParameterError("dfile: required, the .ptyd file to read")

    def _reopen(self) -> None:
        from ..ptyd.reader import open_ptyd

        path = self.path
        if self.scan is None and not os.path.exists(path):
            raise FormatError(f"{path}: no such file")
        unknown_end, fresh = False, False
        for attempt in range(int(self.info.retries) + 1):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    self.scan = open_ptyd(path)
                unknown_end = any("num_frames is missing" in str(w.message) for w in caught)
                fresh = True
                break
            except (FormatError, OSError):
                if attempt == int(self.info.retries):
                    if self.scan is None:
                        return  # not readable yet (no meta): nothing available
                    break  # keep the last good view; frames already seen never change
                time.sleep(0.05)
        if fresh:
            m = meta_of(self.scan)
            for key in META_KEYS:
                if self.info.reprocess and key in ("center", "shape", "psize"):
                    continue
                self.meta[key] = m[key]
            self.num_frames = None if unknown_end else m["num_frames"]
            self.meta["num_frames"] = self.info.num_frames = self.num_frames  # as ptypy: the expected count

    def initialize(self) -> None:
        self._reopen()
        if self.path != self.info.dfile:
            self._open_writer()  # the re-processing form saves to dfile
            if self._writer is not None:
                self._writer.start(self._info_doc())
        self.is_initialized = True
        self.post_initialize()

    def check(self, frames: Optional[int] = None, start: Optional[int] = None) -> tuple[int, Optional[bool]]:
        start = self.framestart if start is None else start
        frames = self.min_frames if frames is None else frames
        self._reopen()
        if self.scan is None:
            return 0, False
        present = self.scan.sizes["frame"]
        accessible = max(0, min(frames, present - start))
        if self.num_frames is None:  # meta/num_frames not written yet: the end cannot be known (ptypy aborts)
            return accessible, False
        return accessible, None  # as ptypy: auto() ends the scan at num_frames

    def auto(self, frames: int) -> Any:
        if self.comm is not None and self.rank != 0:
            self._reopen()  # every rank needs the current view of the file
        out = super().auto(frames)
        return out

    def _chunk(self, start: int, n: int) -> dict[str, Any]:
        """As ``PtyScan._chunk``, retried while a writer holds the file (HDF5 file locks)."""
        loads = list(self._splitter.loads)
        for attempt in range(int(self.info.retries) + 1):
            try:
                return super()._chunk(start, n)
            except (FormatError, OSError):
                if attempt == int(self.info.retries) or self.comm is not None:
                    raise
                self._splitter.loads = list(loads)
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def _freeze_center(self, raw: Optional[xr.Dataset], indices: list[int]) -> None:
        if self.info.reprocess:
            super()._freeze_center(raw, indices)
        else:
            center = self.meta.get("center")
            self._frozen_center = None if center is None else tuple(float(v) for v in np.ravel(center))

    def _prepare_part(self, raw: xr.Dataset) -> xr.Dataset:
        if not self.info.reprocess:
            return raw
        self._prepared = None  # the file may have grown: rebuild the (lazy) graph over what is stored
        return super()._prepare_part(raw)

    def _update_meta(self, prepared: Optional[xr.Dataset]) -> None:
        if self.info.reprocess:
            super()._update_meta(prepared)
