"""The on-disk layout of a ``.ptyd`` written by ptydask, shared by every writer (serial, MPI, distributed, live).

:class:`BlockWriter` knows how frames become HDF5 objects — whole-frame HDF5
chunks, gzip (+ shuffle) compression done outside HDF5 so that it can run in
worker threads or processes, ``write_direct_chunk`` to store them, the chunk
group and part-file structure, the master skeleton — but holds no frame data,
so it pickles small and can be sent to MPI ranks and Dask workers. The
finishing renames (:func:`finalize`) keep writes atomic: an output never
looks complete before it is.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import OutputExistsError
from ..scan import META_KEYS
from .h5rw import set_root_attrs, write_value

#: Suffix of files being written; renamed away when the whole scan is written.
INCOMPLETE = ".incomplete"

_STR = h5py.string_dtype()


def tmp_name(p: Path) -> Path:
    """The name a file is written under until the whole scan is done."""
    return p.with_name(p.name + INCOMPLETE)


def final_name(tmp: Path) -> Path:
    """The name of a finished file written under ``tmp``."""
    return tmp.with_name(tmp.name[: -len(INCOMPLETE)])


def remove(p: Path) -> None:
    """Delete ``p`` if it exists."""
    try:
        Path(p).unlink()
    except FileNotFoundError:
        pass


class BlockWriter:
    """How frames are stored: one instance per output, picklable (no frame data inside).

    Parameters: ``path`` of the master, ``save`` mode, ``chunk_format`` of part
    names, ``frame_shape`` (H, W) px, ``dtype`` of the frames, ``weights_dtype``,
    ``weights2d`` (shared (H, W) weights, or ``None`` when weights are per frame),
    ``k`` frames per HDF5 chunk, ``compression`` (``"gzip"``/``None``), gzip
    ``level``, ``shuffle``, and the ``meta``/``info`` values of the master.
    """

    def __init__(self, *, path: Path, save: str, chunk_format: str, frame_shape: tuple[int, int], dtype: np.dtype,
                 weights_dtype: np.dtype, weights2d: np.ndarray | None, k: int, compression: str | None, level: int,
                 shuffle: bool, meta: dict[str, Any], info: dict[str, Any]):
        self.path, self.save, self.chunk_format = Path(path), save, chunk_format
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.dtype, self.weights_dtype = np.dtype(dtype), np.dtype(weights_dtype)
        self.weights2d = weights2d
        self.k, self.compression, self.level, self.shuffle = int(k), compression, int(level), bool(shuffle)
        self.meta, self.info = meta, info
        self._weights2d_chunk: tuple[int, bytes] | None = None  # (frames per chunk, stored bytes)

    def set_weights2d(self, weights2d: np.ndarray) -> None:
        """Replace the shared (H, W) weights (before they are written again)."""
        self.weights2d, self._weights2d_chunk = np.asarray(weights2d), None

    @property
    def per_frame_weights(self) -> bool:
        return self.weights2d is None

    def part_path(self, number: int) -> Path:
        """Path of part file ``number`` (``link`` mode): a bare name beside the master."""
        return self.path.with_name(self.path.name + self.chunk_format % number)

    # -- structure
    def write_skeleton(self, f: h5py.File, info: dict[str, Any] | None = None) -> h5py.Group:
        """Root attributes, ``meta/``, ``info/`` and the empty ``chunks/`` group of a master; returns ``chunks``."""
        set_root_attrs(f)
        chunks = f.create_group("chunks")
        chunks.attrs.create("type", "dict", dtype=_STR)
        self.write_meta_info(f, info)
        return chunks

    def write_meta_info(self, f: h5py.File, info: dict[str, Any] | None = None) -> None:
        """``meta/`` and ``info/`` of a master (replacing those there)."""
        for key in ("meta", "info"):
            if key in f:
                del f[key]
        meta = f.create_group("meta")
        meta.attrs.create("type", "dict", dtype=_STR)
        for key in META_KEYS:
            write_value(meta, key, self.meta[key])
        write_value(f, "info", {**self.info, **(info or {})})

    def new_group(self, chunks: h5py.Group, number: int, n: int) -> h5py.Group:
        """``chunks/<number>`` (tagged ``dict``) with empty frame datasets of ``n`` frames."""
        grp = chunks.create_group(str(number))
        grp.attrs.create("type", "dict", dtype=_STR)
        self.create_frame_datasets(grp, n)
        return grp

    def create_frame_datasets(self, grp: h5py.Group, n: int) -> None:
        """Empty ``data`` and ``weights`` (n, H, W) with whole-frame HDF5 chunks."""
        h, w = self.frame_shape
        k = min(self.k, n)
        opts: dict[str, Any] = {"chunks": (k, h, w)}
        if self.compression == "gzip":
            opts.update(compression="gzip", compression_opts=self.level, shuffle=self.shuffle)
        for name, dtype in (("data", self.dtype), ("weights", self.weights_dtype)):
            ds = grp.create_dataset(name, shape=(n, h, w), dtype=dtype, **opts)
            ds.attrs.create("type", "array", dtype=_STR)

    def write_small(self, grp: h5py.Group, positions: np.ndarray, indices: np.ndarray) -> None:
        """``positions`` (n, 2) m as ``array`` and ``indices`` (n,) as ``arraylist``, as ptypy stores them."""
        pos = grp.create_dataset("positions", data=np.asarray(positions, dtype=np.float64), compression="gzip")
        pos.attrs.create("type", "array", dtype=_STR)
        idx = grp.create_dataset("indices", data=np.asarray(indices, dtype=np.int64), compression="gzip")
        idx.attrs.create("type", "arraylist", dtype=_STR)

    def write_part(self, tmp: Path, payload: dict[str, Any], positions: np.ndarray, indices: np.ndarray) -> int:
        """A whole part file (one chunk, ``link`` mode) at ``tmp``; returns its size in bytes."""
        with h5py.File(tmp, "w") as pf:
            set_root_attrs(pf)
            self.create_frame_datasets(pf, payload["n"])
            self.write_payload(pf, 0, payload)
            self.write_small(pf, positions, indices)
        return os.path.getsize(tmp)

    # -- encoding (any thread or process)
    def encode_payload(self, arrays: tuple[np.ndarray, ...], offset: int, group_frames: int) -> dict[str, Any]:
        """Payload of frames (``arrays`` = data[, per-frame weights]) bound for ``offset`` of a group of
        ``group_frames`` frames: whole HDF5 chunks compressed here, or the raw frames when the piece
        starts or ends inside an HDF5 chunk (then HDF5's filters store them, so that a padded chunk
        never overwrites a neighbour's frames)."""
        n = int(arrays[0].shape[0])
        k = min(self.k, group_frames)  # frames per HDF5 chunk of this group's datasets
        aligned = offset % k == 0 and (n % k == 0 or offset + n == group_frames)
        names = ["data"] + (["weights"] if self.per_frame_weights else [])
        out: dict[str, Any] = {"n": n}
        for name, arr in zip(names, arrays):
            arr = np.ascontiguousarray(arr)
            # uncompressed frames go to HDF5 as they are (one write per block, no copy)
            out[name] = self.encode(arr, k) if aligned and self.compression is not None else arr
        return out

    def encode(self, arr: np.ndarray, k: int) -> list[bytes]:
        """Whole HDF5 chunks of ``k`` frames of ``arr`` (n, H, W) as the bytes the filter pipeline would store
        (the last one padded with zero frames)."""
        pieces = []
        for s in range(0, arr.shape[0], k):
            piece = arr[s : s + k]
            if piece.shape[0] < k:
                piece = np.concatenate([piece, np.zeros((k - piece.shape[0],) + piece.shape[1:], piece.dtype)])
            if self.compression is None:
                pieces.append(piece.tobytes())
                continue
            raw = piece.view(np.uint8).reshape(-1, piece.dtype.itemsize)
            raw = raw.T.tobytes() if (self.shuffle and piece.dtype.itemsize > 1) else raw.tobytes()
            pieces.append(zlib.compress(raw, self.level))
        return pieces

    # -- writing (the process that owns the file)
    def write_payload(self, grp: h5py.Group, offset: int, payload: dict[str, Any]) -> None:
        """Frames of ``payload`` (from :meth:`encode_payload`) at ``offset`` of the group's datasets."""
        n = payload["n"]
        self.write_frames(grp["data"], offset, n, payload["data"])
        if self.per_frame_weights:
            self.write_frames(grp["weights"], offset, n, payload["weights"])
        else:
            self.write_weights2d(grp["weights"], offset, n)

    def write_frames(self, ds: h5py.Dataset, offset: int, n: int, payload: Any) -> None:
        """Frames ``offset:offset + n`` of ``ds`` from an encoded ``payload`` entry (chunk bytes or an array)."""
        if isinstance(payload, np.ndarray):
            ds.write_direct(np.ascontiguousarray(payload), dest_sel=np.s_[offset : offset + n])
            return
        k = ds.chunks[0]
        for j, chunk in enumerate(payload):
            ds.id.write_direct_chunk((offset + j * k, 0, 0), chunk, filter_mask=0)

    def write_weights2d(self, ds: h5py.Dataset, offset: int, n: int) -> None:
        """The shared 2-D weights into frames ``offset:offset + n`` of the weights dataset ``ds``."""
        k, w2 = ds.chunks[0], self.weights2d
        if offset % k:
            ds[offset : offset + n] = np.broadcast_to(w2, (n,) + w2.shape)
            return
        if self._weights2d_chunk is None or self._weights2d_chunk[0] != k:  # every full chunk: the same bytes
            whole = np.ascontiguousarray(np.broadcast_to(w2, (k,) + w2.shape))
            self._weights2d_chunk = (k, self.encode(whole, k)[0])
        full = n // k
        for j in range(full):
            ds.id.write_direct_chunk((offset + j * k, 0, 0), self._weights2d_chunk[1], filter_mask=0)
        if n % k:
            rest = np.broadcast_to(w2, (n % k,) + w2.shape)
            if offset + n != ds.shape[0]:  # a padded chunk would overwrite the next block's frames (merge mode)
                ds[offset + full * k : offset + n] = rest
                return
            ds.id.write_direct_chunk((offset + full * k, 0, 0), self.encode(np.ascontiguousarray(rest), k)[0],
                                     filter_mask=0)


def finalize(writer: BlockWriter, files: list[Path], overwrite: bool, parts: int | None) -> None:
    """Rename the written ``*.incomplete`` ``files`` into place, the new master last.

    A single-file output (``append``, ``merge``) replaces an old one in one atomic
    rename: a reader, or an interruption, sees the old file or the new one. A
    ``link`` output has several files, so the old master goes first (an
    interruption then leaves no output, never a master mixing old and new parts).
    ``parts``: the number of parts of a ``link`` output (stale higher-numbered
    parts of an earlier, longer scan are removed when overwriting), else ``None``.
    """
    path, master_tmp = writer.path, tmp_name(writer.path)
    if path.exists():
        if not overwrite:  # appeared while we were writing
            raise OutputExistsError(f"{path}: was created by someone else while writing; not replaced")
        if parts is not None:
            remove(path)
    for p in files:
        if Path(p) != master_tmp:
            os.replace(p, final_name(Path(p)))
    if overwrite and parts is not None:
        i = parts
        while writer.part_path(i).exists():
            remove(writer.part_path(i))
            i += 1
    os.replace(master_tmp, path)
