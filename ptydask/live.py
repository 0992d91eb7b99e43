"""Preparing a scan while it is still being recorded (spec: ptyscan-semantics.md §3, ptyd-format.md §4).

A *growing source* tells how many frames are available now, whether the scan
has ended, and reads frames and positions:

* :class:`GrowingHdf5` — an HDF5 file another process keeps extending (frames
  ``(N, H, W)`` and positions, read with retries while the writer holds the
  file, or in SWMR mode);
* :class:`TiffFolder` — a folder receiving one TIFF file per frame.

:class:`LiveScan` is a :class:`ptydask.ptyscan.PtyScan` whose ``check()``
asks the source: ``WAIT`` while fewer than ``min_frames`` frames are available
and the end is not reached; the end comes from a known ``num_frames`` or from
the source's end marker. With ``save='link'`` every chunk is written as a
complete part file, then linked from the master, so readers (ptypy's
``PtydScan`` or :class:`ptydask.ptyscan.PtydScan`) can follow the ``.ptyd``
while it grows. :func:`follow` drives ``auto()`` until ``EOS``.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence

import h5py
import numpy as np

from .errors import ParameterError, SourceError
from .io import LinkPolicy, heap_problem
from .ptyscan import EOS, WAIT, PtyScan
from .sources.base import natural_key
from .sources.images import TiffReader


class GrowingSource(Protocol):
    """What :class:`LiveScan` needs from a source that grows while it is read."""

    num_frames: Optional[int]

    def available(self) -> int:
        """Frames (with their positions) that can be read now."""

    def finished(self) -> bool:
        """True once the source will not grow any more."""

    def read(self, indices: Sequence[int]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(frames (n, H, W), positions (n, 2) metres (y, x) or ``None``) of ``indices``."""


def _retry(func: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return func()
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SourceError(f"{what}: cannot be read: {exc}") from exc
            time.sleep(0.02)


def _runs(idx: np.ndarray) -> list[tuple[int, int, int]]:
    """(position in ``idx``, first, stop) of each run of consecutive indices."""
    runs, start = [], 0
    for j in range(1, len(idx) + 1):
        if j == len(idx) or idx[j] != idx[j - 1] + 1:
            runs.append((start, int(idx[start]), int(idx[j - 1]) + 1))
            start = j
    return runs


class GrowingHdf5:
    """An HDF5 file being extended by another process.

    Parameters
    ----------
    path, key : file and frames dataset ``(N, H, W)`` (N grows).
    slow_key, fast_key : 1-D position datasets (y, x), or ``positions_key`` for an (N, 2) (y, x) dataset;
        ``multiplier`` (slow, fast) converts them to metres.
    num_frames : frames expected when complete, if known.
    end_attr : name of a root attribute the writer sets true when the scan is over;
        ``end_file`` : a file whose appearance marks the end.
    swmr : open in HDF5 single-writer/multiple-reader mode (the writer must use SWMR too).
    timeout : seconds to keep retrying while the writer holds the file.
    allow_external_links : follow links out of the file's folder (refused by default, as by
        :func:`ptydask.sources.open_frames`: the same :class:`ptydask.io.LinkPolicy` on every dataset read).

    A file that holds fewer frames than already seen (replaced by a shorter one) is a
    :class:`~ptydask.errors.SourceError`, not a wait for ever.
    """

    def __init__(self, path: str | os.PathLike, key: str, *, slow_key: Optional[str] = None,
                 fast_key: Optional[str] = None, positions_key: Optional[str] = None,
                 multiplier: tuple[float, float] = (1.0, 1.0), num_frames: Optional[int] = None,
                 end_attr: Optional[str] = None, end_file: Optional[str | os.PathLike] = None,
                 swmr: bool = False, timeout: float = 10.0, allow_external_links: bool = False):
        if positions_key is None and (slow_key is None) != (fast_key is None):
            raise ParameterError("slow_key/fast_key: give both (or positions_key, or neither)")
        if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 1):
            raise ParameterError(f"num_frames: expected None or an integer >= 1, got {num_frames!r}")
        self.path, self.key = Path(path), key
        self.slow_key, self.fast_key, self.positions_key = slow_key, fast_key, positions_key
        self.multiplier = (float(multiplier[0]), float(multiplier[1]))
        self.num_frames, self.end_attr = num_frames, end_attr
        self.end_file = None if end_file is None else Path(end_file)
        self.swmr, self.timeout = bool(swmr), float(timeout)
        self.policy = LinkPolicy(str(self.path), allow=bool(allow_external_links))
        self._seen = 0
        self._checked: Optional[tuple[int, int]] = None  # (device, inode) whose heaps were checked

    @property
    def has_positions(self) -> bool:
        return self.positions_key is not None or self.slow_key is not None

    def _open(self) -> h5py.File:
        """The file (an OSError while the writer holds it is retried by the caller); its heaps are checked
        once per file identity (:func:`ptydask.io.heap_problem`), again if it is replaced."""
        f = h5py.File(self.path, "r", libver="latest", swmr=True) if self.swmr else h5py.File(self.path, "r")
        st = os.stat(self.path)
        if self._checked != (st.st_dev, st.st_ino):
            problem = heap_problem(f)
            if problem:
                f.close()
                raise SourceError(problem)
            self._checked = (st.st_dev, st.st_ino)
        return f

    def _dataset(self, f: h5py.File, key: str) -> h5py.Dataset:
        ds = self.policy.get(f, key)
        if not isinstance(ds, h5py.Dataset):
            raise SourceError(f"{self.path}: {key!r} is a group, not a dataset")
        if self.swmr:
            ds.refresh()
        return ds

    def _lengths(self, f: h5py.File) -> int:
        keys = [self.key] + [k for k in (self.positions_key, self.slow_key, self.fast_key) if k]
        n = None
        for k in keys:
            if k not in f:
                return 0
            ds = self._dataset(f, k)
            n = ds.shape[0] if n is None else min(n, ds.shape[0])
        return int(n or 0)

    def available(self) -> int:
        if not self.path.exists():
            if self._seen:
                raise SourceError(f"{self.path}: disappeared after {self._seen} frames were seen")
            return 0

        def count() -> int:
            with self._open() as f:
                return self._lengths(f)

        n = _retry(count, self.timeout, str(self.path))
        if n < self._seen:
            raise SourceError(f"{self.path}: now holds {n} frames, fewer than the {self._seen} already seen "
                              "(replaced by another file?)")
        self._seen = n
        return n if self.num_frames is None else min(n, self.num_frames)

    def finished(self) -> bool:
        if self.end_file is not None and self.end_file.exists():
            return True
        if self.end_attr is None or not self.path.exists():
            return False

        def flag() -> bool:
            with self._open() as f:
                return bool(f.attrs.get(self.end_attr, False))

        return _retry(flag, self.timeout, str(self.path))

    def _positions(self, f: h5py.File, idx: np.ndarray) -> Optional[np.ndarray]:
        if self.positions_key is not None:
            pos = np.asarray(self._dataset(f, self.positions_key)[()], dtype=np.float64)[idx]
            return pos * np.asarray(self.multiplier)
        if self.slow_key is not None:
            slow = np.asarray(self._dataset(f, self.slow_key)[()], dtype=np.float64)[idx]
            fast = np.asarray(self._dataset(f, self.fast_key)[()], dtype=np.float64)[idx]
            return np.stack([slow * self.multiplier[0], fast * self.multiplier[1]], axis=1)
        return None

    def read(self, indices: Sequence[int]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        idx = np.asarray(indices, dtype=np.int64)

        def get() -> tuple[np.ndarray, Optional[np.ndarray]]:
            with self._open() as f:
                ds = self._dataset(f, self.key)
                frames = np.empty((len(idx),) + ds.shape[1:], ds.dtype.newbyteorder("="))
                for at, first, stop in _runs(idx):  # one hyperslab per run of consecutive frames
                    frames[at:at + stop - first] = ds[first:stop]
                return frames, self._positions(f, idx)

        return _retry(get, self.timeout, str(self.path))


class TiffFolder:
    """A folder receiving one TIFF file per frame, in natural file-name order (``f2`` before ``f10``),
    as :func:`ptydask.sources.open_frames` orders a folder.

    Writers should write each file under another name and rename it when
    complete (files matching ``pattern`` are taken as complete).
    ``positions``: (N, 2) (y, x) metres for the whole scan, if known up front
    (also gives ``num_frames``); ``end_file``: a file marking the end of the scan.
    Files are read by the TIFF source's reader (every file checked against the first: shape,
    dtype, pages); a file that is a symlink out of the folder is refused
    (:class:`ptydask.io.LinkPolicy`) unless ``allow_external_links``.
    """

    def __init__(self, folder: str | os.PathLike, pattern: str = "*.tif*", *, positions: Any = None,
                 num_frames: Optional[int] = None, end_file: Optional[str | os.PathLike] = None,
                 allow_external_links: bool = False):
        self.folder, self.pattern = Path(folder), pattern
        self.positions = None if positions is None else np.asarray(positions, dtype=np.float64)
        if self.positions is not None and (self.positions.ndim != 2 or self.positions.shape[1] != 2):
            raise ParameterError(f"positions: expected (N, 2) (y, x) metres, got shape {self.positions.shape}")
        if num_frames is None and self.positions is not None:
            num_frames = len(self.positions)
        self.num_frames = num_frames
        self.end_file = None if end_file is None else Path(end_file)
        self.policy = LinkPolicy(str(self.folder), allow=bool(allow_external_links), base=str(self.folder))

    @property
    def has_positions(self) -> bool:
        return self.positions is not None

    def files(self) -> list[str]:
        found = sorted(glob.glob(os.path.join(glob.escape(str(self.folder)), self.pattern)), key=natural_key)
        for f in found:
            self.policy.check_file(f, os.path.basename(f))
        return found

    def available(self) -> int:
        n = len(self.files())
        if self.positions is not None:
            n = min(n, len(self.positions))
        return n if self.num_frames is None else min(n, self.num_frames)

    def finished(self) -> bool:
        return self.end_file is not None and self.end_file.exists()

    def read(self, indices: Sequence[int]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        files = self.files()
        idx = np.asarray(indices, dtype=np.int64)
        reader = TiffReader([files[int(i)] for i in idx])
        frames = reader.read(0, reader.shape[0])
        if reader.per_file != 1:
            raise SourceError(f"{files[int(idx[0])]}: holds {reader.per_file} pages; a live TIFF folder needs one "
                              "frame per file")
        pos = None if self.positions is None else self.positions[idx]
        return frames, pos


class LiveScan(PtyScan):
    """A ``PtyScan`` over a growing source; all ``scan.data`` parameters apply.

    ``num_frames`` (parameter, or the source's) ends the scan when reached;
    otherwise the source's end marker does (``meta/num_frames`` of a saved
    ``.ptyd`` is then written at the end).
    """

    def __init__(self, source: GrowingSource, pars: Optional[Mapping[str, Any]] = None, comm: Any = None,
                 **kwargs: Any):
        super().__init__(pars, comm, **kwargs)
        self.source = source
        if self.num_frames is None and getattr(source, "num_frames", None) is not None:
            self.num_frames = self.info.num_frames = int(source.num_frames)

    def load_positions(self) -> Optional[np.ndarray]:
        pos = getattr(self.source, "positions", None)
        return None if pos is None or isinstance(pos, str) else np.asarray(pos)

    def load(self, indices: Sequence[int]) -> tuple[dict, dict, dict]:
        frames, pos = self.source.read(list(indices))
        positions = {} if pos is None else {i: pos[j] for j, i in enumerate(indices)}
        return {i: frames[j] for j, i in enumerate(indices)}, positions, {}

    def check(self, frames: Optional[int] = None, start: Optional[int] = None) -> tuple[int, Optional[bool]]:
        start = self.framestart if start is None else start
        frames = self.min_frames if frames is None else frames
        ended = self.source.finished()  # first: once ended, what is available is final
        available = self.source.available()
        if self.num_frames is not None:
            available = min(available, self.num_frames)
            ended = ended or available >= self.num_frames
        return max(0, min(frames, available - start)), ended

    def auto(self, frames: int) -> Any:
        out = super().auto(frames)
        if out == EOS and self.meta.num_frames is None:
            self.num_frames = self.meta.num_frames = self.framestart
            if self._writer is not None:
                self._writer.update_num_frames(self.framestart)
        return out


def follow(scan: PtyScan, frames: int = 100000, *, poll: float = 0.2,
           timeout: Optional[float] = None) -> Iterator[dict[str, Any]]:
    """Call ``scan.auto(frames)`` until ``EOS``, sleeping ``poll`` seconds after each ``WAIT``;
    yield each data package. ``timeout``: give up (``TimeoutError``) after that many seconds
    without a new package."""
    last = time.monotonic()
    while True:
        out = scan.auto(frames)
        if isinstance(out, str) and out == EOS:
            return
        if isinstance(out, str) and out == WAIT:
            if timeout is not None and time.monotonic() - last > timeout:
                raise TimeoutError(f"no new frames for {timeout} s (served {scan.framestart})")
            time.sleep(poll)
            continue
        last = time.monotonic()
        yield out


__all__ = ["GrowingSource", "GrowingHdf5", "TiffFolder", "LiveScan", "follow"]
