"""Grow a ``.ptyd`` file chunk by chunk while readers follow it (spec: ptyd-format.md §4, §5).

Unlike :func:`ptydask.ptyd.to_ptyd` (one finished scan, written atomically), a
:class:`LiveWriter` makes the master visible at once and adds one chunk at a
time, so that a reconstruction (ptypy's ``PtydScan`` or
:class:`ptydask.ptyscan.PtydScan`) can read it while the scan is still running:

* the master gets the empty skeleton (``chunks/``, ``meta/``, ``info/``) at
  :meth:`LiveWriter.start`; ``meta/`` (with ``meta/num_frames`` = frames
  expected) is written together with the first chunk, as ptypy does;
* ``save="link"`` (the mode for live reading): each chunk's part file is
  written completely under a temporary name, renamed, and only then linked
  from the master (``chunks/<n>`` -> bare file name beside the master);
* ``save="append"``: each chunk becomes a group in the master (not safe to
  read while it is being written, ptyd-format.md §4);
* ``save="merge"``: one growing group ``chunks/0`` (resizable datasets).

The master is opened, changed and closed for every chunk, so readers can open
it between writes. Chunks are added in increasing order and never changed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional

import h5py
import numpy as np

from ..errors import OutputError, OutputExistsError, ScanError
from ..scan import META_KEYS
from .h5rw import set_root_attrs, write_value
from .layout import BlockWriter, tmp_name
from .options import WriteOptions
from .plan import documentable

_STR = h5py.string_dtype("utf-8")


#: How long to retry opening the master while a reader holds it (HDF5 file locking), seconds.
OPEN_TIMEOUT = 10.0


def _tag(obj: h5py.HLObject, tag: str) -> None:
    obj.attrs.create("type", tag, dtype=_STR)


def _open_master(path: Path, timeout: float = OPEN_TIMEOUT) -> h5py.File:
    """Open ``path`` for appending, retrying while another process has it open (HDF5 file locks)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return h5py.File(path, "a")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class LiveWriter:
    """Write a ``.ptyd`` incrementally: :meth:`start`, :meth:`write_chunk` per chunk, :meth:`finish`.

    Parameters
    ----------
    path : master file.
    save : ``"link"`` (the live default: a part file is complete before it is linked, so readers
        can follow), ``"append"`` or ``"merge"``.
    chunk_format : printf suffix of part files (``link``), e.g. ``".chunk%02d"`` or ptypy's ``".part%03d"``.
    overwrite : replace an existing master (and its old part files); otherwise refuse.
    options, **write : the other write options (:class:`~ptydask.ptyd.options.WriteOptions`:
        compression, compression_level, shuffle, frames_per_hdf5_chunk; same defaults as ``to_ptyd``).
    """

    def __init__(self, path: str | os.PathLike, save: str = "link", chunk_format: Optional[str] = None,
                 overwrite: bool = False, *, options: Optional[WriteOptions] = None, **write: Any):
        opts = WriteOptions.of(options, save=save, chunk_format=chunk_format, **write)
        self.path, self.options = Path(path), opts
        self.save, self.chunk_format, self.overwrite = opts.save, opts.chunk_format, bool(overwrite)
        self.compression, self.level, self.k = opts.compression, opts.compression_level, opts.frames_per_hdf5_chunk
        self.shuffle = opts.shuffle
        self.chunks_written = 0
        self.frames_written = 0
        self.meta_written = False
        self.started = False

    # ------------------------------------------------------------------ names
    def part_path(self, i: int) -> Path:
        """Path of the part file of chunk ``i`` (``link`` mode)."""
        return self.path.with_name(self.path.name + self.chunk_format % i)

    # ------------------------------------------------------------------ steps
    def start(self, info: Optional[Mapping[str, Any]] = None) -> None:
        """Create the master with empty ``chunks/`` and ``meta/`` and the ``info/`` given."""
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a directory; give the path of the .ptyd file to write")
        if self.path.exists():
            if not self.overwrite:
                raise OutputExistsError(f"{self.path}: exists; pass overwrite=True to replace it")
            self.path.unlink()
            i = 0
            while self.part_path(i).exists():
                self.part_path(i).unlink()
                i += 1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(self.path, "w") as f:
                set_root_attrs(f)
                for name in ("chunks", "meta"):
                    _tag(f.create_group(name), "dict")
                write_value(f, "info", documentable(dict(info or {})))
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create the file: {exc}") from exc
        self.started = True

    def write_info(self, info: Mapping[str, Any]) -> None:
        """Replace ``info/`` (documentation only; ptypy rewrites it at the end of the scan)."""
        with _open_master(self.path) as f:
            set_root_attrs(f)
            if "info" in f:
                del f["info"]
            write_value(f, "info", documentable(dict(info)))

    def write_chunk(self, data: np.ndarray, weights: np.ndarray, positions: np.ndarray, indices: Any,
                    meta: Optional[Mapping[str, Any]] = None) -> int:
        """Add one chunk: ``data`` (n, H, W), ``weights`` (n, H, W) or (H, W) (nonzero = valid),
        ``positions`` (n, 2) metres (y, x), ``indices`` (n,) global scan-point indices.

        ``meta`` (the eight ptypy keys) is required with the first chunk and ignored later.
        Returns the chunk number.
        """
        if not self.started:
            raise ScanError(f"{self.path}: LiveWriter.start() was not called")
        data = np.ascontiguousarray(data)
        n = data.shape[0]
        if data.ndim != 3 or n == 0:
            raise ScanError(f"{self.path}: a chunk needs (n >= 1, H, W) frames, got {data.shape}")
        weights = np.asarray(weights)
        if weights.shape == data.shape[1:]:
            weights = np.ascontiguousarray(np.broadcast_to(weights, data.shape))
        if weights.shape != data.shape:
            raise ScanError(f"{self.path}: weights {weights.shape} do not match the frames {data.shape}")
        if positions is None:
            raise ScanError(f"{self.path}: positions are required; ptypy cannot read a chunk without them")
        positions = np.asarray(positions, dtype=np.float64).reshape(n, 2)
        indices = np.asarray(indices, dtype=np.int64).reshape(n)
        i = self.chunks_written
        if not self.meta_written and meta is None:
            raise ScanError(f"{self.path}: the first chunk needs the meta values")
        layout = self._layout(data, weights)
        payload = layout.encode_payload((data, weights), 0, n) if self.save != "merge" else None
        try:
            if self.save == "link":
                part = self.part_path(i)
                tmp = tmp_name(part)
                layout.write_part(tmp, payload, positions, indices)
                os.replace(tmp, part)
            with _open_master(self.path) as f:
                set_root_attrs(f)
                if not self.meta_written:
                    self._meta(f["meta"], meta)  # type: ignore[arg-type]
                chunks = f["chunks"]
                if self.save == "link":
                    chunks[str(i)] = h5py.ExternalLink(self.part_path(i).name, "/")
                elif self.save == "append":
                    grp = layout.new_group(chunks, i, n)
                    layout.write_payload(grp, 0, payload)
                    layout.write_small(grp, positions, indices)
                else:
                    self._merge(chunks, data, weights, positions, indices)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write chunk {i}: {exc}") from exc
        self.meta_written = True
        self.chunks_written = 1 if self.save == "merge" else i + 1
        self.frames_written += n
        return 0 if self.save == "merge" else i

    def update_num_frames(self, num_frames: int) -> None:
        """Rewrite ``meta/num_frames`` (only when the expected number was unknown at the start)."""
        with _open_master(self.path) as f:
            if "num_frames" in f["meta"]:
                del f["meta"]["num_frames"]
            write_value(f["meta"], "num_frames", int(num_frames))

    def finish(self, info: Optional[Mapping[str, Any]] = None) -> None:
        """End of scan: rewrite ``info/`` if given."""
        if info is not None and self.started:
            self.write_info(info)

    # ------------------------------------------------------------------ helpers
    def _meta(self, group: h5py.Group, meta: Mapping[str, Any]) -> None:
        for key in META_KEYS:
            value = meta.get(key)
            if isinstance(value, (tuple, list)):
                value = np.asarray(value)
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.item()
            if key == "num_frames" and value is not None:
                value = int(value)
            if key in ("shape",) and value is not None:
                value = np.asarray(value, dtype=np.int64)
            if key in ("psize", "center") and value is not None:
                value = np.asarray(value, dtype=np.float64).reshape(-1)
                if value.size == 1:
                    value = np.repeat(value, 2)
            write_value(group, key, value)

    def _layout(self, data: np.ndarray, weights: np.ndarray) -> BlockWriter:
        """The shared ``.ptyd`` layout (whole-frame HDF5 chunks, gzip outside HDF5) for this chunk's arrays."""
        return BlockWriter(path=self.path, save=self.save, chunk_format=self.chunk_format,
                           frame_shape=data.shape[1:], dtype=data.dtype, weights_dtype=weights.dtype, weights2d=None,
                           k=self.k, compression=self.compression, level=self.level, shuffle=self.shuffle,
                           meta={}, info={})

    def _merge(self, chunks: h5py.Group, data, weights, positions, indices) -> None:
        """``merge``: one group ``chunks/0`` whose resizable datasets grow by each chunk."""
        if "0" not in chunks:
            grp = chunks.create_group("0")
            _tag(grp, "dict")
            h, w = data.shape[1:]
            opts: dict[str, Any] = {"chunks": (self.k, h, w), "maxshape": (None, h, w)}
            if self.compression == "gzip":
                opts.update(compression="gzip", compression_opts=self.level, shuffle=self.shuffle)
            for name, arr, tag in (("data", data, "array"), ("weights", weights, "array")):
                _tag(grp.create_dataset(name, data=np.ascontiguousarray(arr), **opts), tag)
            _tag(grp.create_dataset("positions", data=positions, chunks=True, maxshape=(None, 2)), "array")
            _tag(grp.create_dataset("indices", data=indices, chunks=True, maxshape=(None,)), "arraylist")
            return
        grp = chunks["0"]
        for name, arr in (("data", data), ("weights", weights), ("positions", positions), ("indices", indices)):
            ds = grp[name]
            old = ds.shape[0]
            if ds.shape[1:] != arr.shape[1:]:
                raise ScanError(f"{self.path}: chunk {name} shape {arr.shape[1:]} differs from {ds.shape[1:]}")
            ds.resize(old + arr.shape[0], axis=0)
            ds[old:] = arr


__all__ = ["LiveWriter"]
