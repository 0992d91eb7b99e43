"""HDF5 datasets as lazy frame stacks, plus small whole-dataset reads.

Frames are read inside Dask tasks by opening the file **by path** (h5py files
cannot be pickled), with ``read_direct`` into a preallocated native-dtype
buffer. Dask blocks are made of whole HDF5 storage chunks along the frame
axes, so each storage chunk is decoded once. External links on the frame
dataset are followed to the file that holds it; virtual datasets are read
through HDF5. Compression filters are checked up front. Compressed datasets
of whole-frame chunks are read chunk by chunk around HDF5's filter pipeline and
decoded in a thread pool (``ptydask.io.fastread``: bit for bit h5py's result).

Frame layouts (after ``outer_index`` picks one entry of the first axis):
``(H, W)`` one frame, ``(N, H, W)``, or a raster ``(A, B, H, W)`` read as
``A*B`` frames in row-major order (frame ``a*B + b``).
"""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import h5py
import numpy as np

from ..errors import PtydaskError, SourceError
from ..io import fastread
from ..io.hdf5 import HDF5_FAILURES, hdf5_guard, open_hdf5
from ..io.links import LinkPolicy, members
from .. import buffers, config
from ._lazy import FrameReader, as_dask, frames_per_block, split

#: HDF5 filter id -> (name, pip package that provides it).
KNOWN_FILTERS = {
    1: ("gzip/deflate", "h5py (built in)"),
    2: ("shuffle", "h5py (built in)"),
    3: ("fletcher32", "h5py (built in)"),
    4: ("szip", "an HDF5 build with szip"),
    6: ("scaleoffset", "h5py (built in)"),
    307: ("bzip2", "hdf5plugin"),
    32001: ("blosc", "hdf5plugin"),
    32004: ("lz4", "hdf5plugin"),
    32008: ("bitshuffle", "hdf5plugin"),
    32013: ("zfp", "hdf5plugin"),
    32015: ("zstd", "hdf5plugin"),
    32017: ("sz", "hdf5plugin"),
    32024: ("sz3", "hdf5plugin"),
    32026: ("blosc2", "hdf5plugin"),
}

__all__ = ["HDF5_FAILURES", "hdf5_guard", "open_file", "get_node", "resolve", "read_array", "read_units",
           "Hdf5Reader", "hdf5_frames", "frame_layout", "check_filters"]


def open_file(path: str) -> h5py.File:
    """Open an HDF5 file read-only (:func:`ptydask.io.open_hdf5`); :class:`SourceError` if missing or not HDF5."""
    return open_hdf5(path)


def get_node(f: h5py.File, key: str, path: str) -> Any:
    """``f[key]`` under the link policy of ``path`` (:class:`ptydask.io.LinkPolicy`), errors naming the key."""
    return LinkPolicy(path).get(f, key)


@hdf5_guard
def resolve(path: str, key: str) -> tuple[str, str]:
    """``(file, key)`` where the dataset ``path:key`` really is, after links (checked by the link policy)."""
    with open_file(path) as f:
        _node, real, inner = LinkPolicy(path).locate(f, key)
        return real, inner


def check_filters(dset: h5py.Dataset, path: str, key: str) -> None:
    """Raise :class:`SourceError` naming any compression filter HDF5 cannot load."""
    plist = dset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            stored = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            label, package = KNOWN_FILTERS.get(code, (stored or "unknown", "hdf5plugin"))
            raise SourceError(
                f"{path}: dataset {key!r} is compressed with HDF5 filter {code} ({label}), which is not "
                f"available; install it with `pip install {package}` (and `import hdf5plugin`)"
            )


#: Largest "small" dataset read whole into memory (positions, monitor, masks, energies, ...).
MAX_SMALL_BYTES = 2**30


@hdf5_guard
def read_array(path: str, key: str, indices: Any = None) -> np.ndarray:
    """Read a whole (small) dataset, or the entries ``indices`` of its first axis."""
    with open_file(path) as f:
        node = get_node(f, key, path)
        if not isinstance(node, h5py.Dataset):
            raise SourceError(f"{path}: key {key!r} is a group, not a dataset; it holds: {members(node)}")
        if not node.is_virtual:
            check_filters(node, path, key)
        if node.shape is not None:
            rows = node.shape[0] if node.shape else 1
            picked = rows if indices is None else min(rows, int(np.size(indices)))
            per_row = int(np.prod(node.shape[1:], dtype=np.float64)) if node.shape else 1
            nbytes = float(picked) * per_row * node.dtype.itemsize
            if nbytes > MAX_SMALL_BYTES:
                raise SourceError(
                    f"{path}: {key!r} declares {node.shape} {node.dtype} ({nbytes:.3g} bytes to read); more than the "
                    f"{MAX_SMALL_BYTES} bytes allowed for positions, masks and other small values"
                )
        if indices is None:
            return node[()]
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.size and (idx.min() < 0 or idx.max() >= node.shape[0]):
            raise SourceError(f"{path}: {key!r} has {node.shape[0]} entries, indices reach {int(idx.max())}")
        if idx.size == 0:
            return node[:0]
        unique, inverse = np.unique(idx, return_inverse=True)
        return node[unique][inverse]


@hdf5_guard
def read_units(path: str, key: str) -> str | None:
    """The ``units`` attribute of a dataset as text, or ``None``."""
    with open_file(path) as f:
        units = get_node(f, key, path).attrs.get("units")
    if units is None:
        return None
    if isinstance(units, np.ndarray):
        units = units.ravel()[0] if units.size else ""
    return units.decode(errors="replace") if isinstance(units, bytes) else str(units)


class Hdf5Reader(FrameReader):
    """Frames of one HDF5 dataset, opened by path in every read."""

    def __init__(self, path: str, key: str, dshape: tuple[int, ...], dtype: np.dtype, outer_index: int | None):
        self.path, self.key, self.dshape, self.outer = path, key, tuple(dshape), outer_index
        self.paths = (path,)
        lead = self.dshape[1:-2] if outer_index is not None else self.dshape[:-2]
        self.lead = lead
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.shape = (int(np.prod(lead, dtype=np.int64)), self.dshape[-2], self.dshape[-1])

    def describe(self) -> str:
        return f"{self.path}:{self.key} {self.dshape} {self.dtype} outer={self.outer}"

    def _hyperslabs(self, start: int, stop: int) -> list[tuple[slice, ...]]:
        """Lead-axis selections covering frames ``start:stop`` (one when block-aligned)."""
        if len(self.lead) <= 1:
            return [(slice(start, stop),)] if self.lead else [()]
        b = self.lead[1]
        if start // b == (stop - 1) // b:
            return [(slice(start // b, start // b + 1), slice(start % b, (stop - 1) % b + 1))]
        if start % b == 0 and stop % b == 0:
            return [(slice(start // b, stop // b), slice(0, b))]
        out, pos = [], start
        while pos < stop:
            end = min(stop, (pos // b + 1) * b)
            out.extend(self._hyperslabs(pos, end))
            pos = end
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        try:
            return self._read(start, stop)
        except (PtydaskError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged chunk fails in HDF5, zlib, or any decompressor
            raise SourceError(
                f"{self.path}:{self.key}: cannot read frames {start}:{stop}: {type(exc).__name__}: {exc}"
            ) from exc

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_fast", None)  # a plan of this process's files: the receiver makes its own
        return state

    def _fast_plan(self) -> "fastread.FastPlan | None":
        """The cached plain-file read plan of the dataset (``ptydask.io.fastread``), renewed when its file changes."""
        plan = self.__dict__.get("_fast")
        if plan is not None:
            try:
                if fastread.file_stamp(plan.path) == plan.stamp:
                    return plan
            except OSError:
                pass
        with h5py.File(self.path, "r") as f:
            dset = self._dataset(f)
            plan = fastread.fast_plan(dset)
        self._fast = plan
        return plan

    def _dataset(self, f: h5py.File) -> h5py.Dataset:
        dset = f[self.key]
        if not isinstance(dset, h5py.Dataset) or tuple(dset.shape) != self.dshape:
            raise SourceError(f"{self.path}:{self.key}: changed since it was opened (now {dset!r})")
        return dset

    def _read(self, start: int, stop: int) -> np.ndarray:
        plan = None
        # compressed whole-frame chunks read raw and decoded in a thread pool (``ptydask.io.fastread``)
        # unless the ``ptydask.fast-read`` setting is false (HDF5 then decodes, on one thread)
        if config.get("fast-read") and self.outer is None and len(self.dshape) == 3 and stop > start:
            plan = self._fast_plan()
            if plan is not None and plan.stored is not None:  # mapped, or plain parallel file reads
                return fastread.unfiltered_frames(plan.path, plan.stored, start, stop, self.dtype, self.shape[1:])
        out = buffers.empty((stop - start,) + self.shape[1:], self.dtype)
        if plan is not None:
            # compressed chunks read at their stored offsets and decoded in a thread pool, outside
            # HDF5's lock; HDF5 is opened only for chunks never written (fill values)
            plan.read(start, stop, out, self._read_h5py)
        else:
            self._read_h5py(start, stop, out)
        return out

    def _read_h5py(self, start: int, stop: int, out: np.ndarray) -> None:
        with h5py.File(self.path, "r") as f:
            dset = self._dataset(f)
            pos = 0
            for lead in self._hyperslabs(start, stop):
                outer = (slice(self.outer, self.outer + 1),) if self.outer is not None else ()
                sel = outer + lead + (slice(None), slice(None))
                count = int(np.prod([s.stop - s.start for s in lead], dtype=np.int64)) if lead else 1
                buf = out[pos:pos + count]
                shape = tuple(s.stop - s.start for s in outer + lead) + self.shape[1:]
                dset.read_direct(buf.reshape(shape), source_sel=sel)
                pos += count


#: Largest plausible frame (pixels): one frame is the unit every read allocates, so a hostile or
#: damaged file declaring a bigger one is refused up front (same bound as the .ptyd reader).
MAX_FRAME_PIXELS = 2**28


def frame_layout(shape: tuple[int, ...], outer_index: int | None, where: str) -> None:
    """Check that a dataset shape is a supported frame layout (see module docstring)."""
    ndim = len(shape)
    if ndim >= 2 and int(shape[-2]) * int(shape[-1]) > MAX_FRAME_PIXELS:
        raise SourceError(
            f"{where}: declared frame size {tuple(shape[-2:])} ({int(shape[-2]) * int(shape[-1])} pixels) is implausibly "
            f"large (more than {MAX_FRAME_PIXELS}); a damaged or hostile file?"
        )
    if outer_index is not None:
        if ndim < 4:
            raise SourceError(
                f"{where}: outer_index={outer_index} needs an outer axis, i.e. 4-D (E, N, H, W) or 5-D "
                f"(E, A, B, H, W) frames; the dataset is {ndim}-D {shape}"
            )
        if not -shape[0] <= outer_index < shape[0]:
            raise SourceError(f"{where}: outer_index={outer_index} is out of range for {shape[0]} outer entries {shape}")
        if ndim > 5:
            raise SourceError(f"{where}: {ndim}-D dataset {shape}: at most (E, A, B, H, W) is supported")
    elif ndim < 2 or ndim > 4:
        hint = " (pass outer_index= to pick one entry of the first axis)" if ndim == 5 else ""
        raise SourceError(
            f"{where}: dataset of shape {shape} is not frames; expected (H, W), (N, H, W) or a raster "
            f"(A, B, H, W){hint}"
        )


@hdf5_guard
def hdf5_frames(
    path: str, key: str, *, outer_index: int | None = None, block_bytes: int
) -> tuple[da.Array, tuple[int, ...], tuple[int, ...]]:
    """Lazy ``(N, H, W)`` frames of ``path:key``, the scan grid (``(N,)`` or ``(A, B)``) and the dataset shape.

    Dask blocks are whole storage chunks along the frame axes (about
    ``block_bytes`` each); external links are followed to the data file.
    """
    path = os.path.abspath(path)
    with open_file(path) as f:
        dset, real, inner = LinkPolicy(path).locate(f, key)
        if not isinstance(dset, h5py.Dataset):
            raise SourceError(f"{path}: key {key!r} is a group, not a dataset; it holds: {members(dset)}")
        shape, dtype, chunks = tuple(dset.shape), dset.dtype, dset.chunks
        where = f"{path}:{key}"
        if dtype.kind not in "biuf":
            raise SourceError(f"{where}: dtype {dtype} is not a real numeric type")
        frame_layout(shape, outer_index, where)
        if not dset.is_virtual:
            check_filters(dset, path, key)
        path, key = real, inner  # where the data is: no links followed in every read
    if outer_index is not None and outer_index < 0:
        outer_index += shape[0]
    reader = Hdf5Reader(path, key, shape, dtype, outer_index)
    lead = reader.lead
    frame_bytes = reader.shape[1] * reader.shape[2] * reader.dtype.itemsize
    nchunk = chunks[len(shape) - 2 - len(lead):len(shape) - 2] if chunks else (1,) * len(lead)
    if len(lead) <= 1:
        n = reader.shape[0]
        unit = nchunk[0] if lead else 1
        sizes = split(n, frames_per_block(frame_bytes, block_bytes, unit))
    else:
        a, b = lead
        row_bytes = b * frame_bytes
        if row_bytes * nchunk[0] <= 2 * block_bytes:
            rows = frames_per_block(row_bytes, block_bytes, nchunk[0])
            sizes = tuple(r * b for r in split(a, rows))
        else:
            sizes = split(b, frames_per_block(frame_bytes, block_bytes, nchunk[1])) * a
    grid = tuple(lead) if lead else (1,)
    return as_dask(reader, sizes, "hdf5"), grid, shape
