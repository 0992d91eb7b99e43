"""HDF5 datasets as lazy frame stacks, plus small whole-dataset reads.

Frames are read inside Dask tasks by opening the file **by path** (h5py files
cannot be pickled), with ``read_direct`` into a preallocated native-dtype
buffer. Dask blocks are made of whole HDF5 storage chunks along the frame
axes, so each storage chunk is decoded once. External links on the frame
dataset are followed to the file that holds it; virtual datasets are read
through HDF5. Compression filters are checked up front. Compressed datasets
of whole-frame chunks are read chunk by chunk around HDF5's filter pipeline and
decoded in a thread pool (``_fastread``: bit for bit h5py's result).

Frame layouts (after ``outer_index`` picks one entry of the first axis):
``(H, W)`` one frame, ``(N, H, W)``, or a raster ``(A, B, H, W)`` read as
``A*B`` frames in row-major order (frame ``a*B + b``).
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, TypeVar

import dask.array as da
import h5py
import numpy as np

from ..errors import PtydaskError, SourceError
from ..h5heap import heap_problem
from .. import buffers
from . import _fastread
from ._lazy import FrameReader, as_dask, frames_per_block, split

#: Read compressed whole-frame chunks raw and decode them in a thread pool (``_fastread``);
#: ``PTYDASK_FAST_READ=0`` lets HDF5 decode everything (on one thread).
FAST_READ = os.environ.get("PTYDASK_FAST_READ", "1") != "0"

try:  # registers bitshuffle, LZ4, Blosc, Zstd, ... with HDF5 when installed
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - optional dependency
    pass

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

MAX_LISTED = 25

#: What h5py raises for a damaged file (besides OSError): bad B-tree or heap addresses surface as
#: KeyError/RuntimeError/ValueError from deep inside HDF5.
HDF5_FAILURES = (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError, UnicodeDecodeError)

F = TypeVar("F", bound=Callable[..., Any])


def hdf5_guard(func: F) -> F:
    """Turn any HDF5 failure of ``func(path, ...)`` on a damaged file into a :class:`SourceError` naming the file."""

    @functools.wraps(func)
    def wrapper(path, *args, **kwargs):
        try:
            return func(path, *args, **kwargs)
        except PtydaskError:
            raise
        except HDF5_FAILURES as exc:
            raise SourceError(f"{path}: damaged or unreadable HDF5 file: {type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


#: Whether external links / virtual-dataset sources may leave the folder of the file that holds them.
_ALLOW_EXTERNAL: ContextVar[bool] = ContextVar("ptydask_allow_external_links", default=False)


@contextmanager
def external_links(allow: bool) -> Iterator[None]:
    """Within the block, links leaving their file's folder are followed (``True``) or refused (``False``)."""
    token = _ALLOW_EXTERNAL.set(bool(allow))
    try:
        yield
    finally:
        _ALLOW_EXTERNAL.reset(token)


def _inside(folder: str, target: str) -> bool:
    folder = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(folder, target))
    return os.path.commonpath([folder, target]) == folder


def check_link_target(holder: str, target: str, what: str) -> None:
    """Refuse a link stored in file ``holder`` whose ``target`` file lies outside ``holder``'s folder.

    Relative targets are taken relative to the holder's folder (as HDF5 does);
    absolute ones must also point into that folder. ``target`` ``"."`` is the
    holder itself. Allowed anyway inside ``external_links(True)``.
    """
    if _ALLOW_EXTERNAL.get() or target in ("", "."):
        return
    folder = os.path.dirname(os.path.abspath(holder))
    if not _inside(folder, target):
        raise SourceError(
            f"{holder}: {what} points to {target!r}, outside the folder {folder}; refused "
            "(pass allow_external_links=True to open_frames, or set allow_external_links: true in a recipe, "
            "if you trust this file)"
        )


def open_file(path: str) -> h5py.File:
    """Open an HDF5 file read-only; :class:`SourceError` if missing or not HDF5."""
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SourceError(f"{path}: cannot be opened as HDF5 ({exc})") from None
    problem = heap_problem(f)
    if problem:
        f.close()
        raise SourceError(problem)
    return f


def _members(group: h5py.Group) -> str:
    names = sorted(group.keys())
    shown = ", ".join(names[:MAX_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")
    return shown or "(nothing)"


def get_node(f: h5py.File, key: str, path: str) -> Any:
    """``f[key]`` with errors that name the file, the key and what exists nearby."""
    parts = [p for p in key.strip("/").split("/") if p]
    node: Any = f
    walked = ""
    for part in parts:
        if not isinstance(node, h5py.Group):
            raise SourceError(f"{path}: key {key!r} not found: '{walked or '/'}' is a dataset, not a group")
        link = node.get(part, getlink=True)
        if link is None:
            raise SourceError(
                f"{path}: key {key!r} not found; '{walked or '/'}' holds: {_members(node)}"
            )
        if isinstance(link, h5py.ExternalLink):
            here = f"{walked}/{part}".lstrip("/")
            check_link_target(node.file.filename, link.filename,
                              f"key {key!r}: external link '{here}' -> {link.filename}:{link.path}")
        try:
            node = node[part]
        except (KeyError, OSError) as exc:
            if isinstance(link, h5py.ExternalLink):
                target = _link_target(path, link)
                state = "missing" if not os.path.exists(target) else f"unreadable: {exc}"
                here = f"{walked}/{part}".lstrip("/")
                raise SourceError(
                    f"{path}: key {key!r}: external link '{here}' points to "
                    f"{link.filename}:{link.path} ({state})"
                ) from None
            if isinstance(link, h5py.SoftLink):
                here = f"{walked}/{part}".lstrip("/")
                raise SourceError(f"{path}: key {key!r}: soft link '{here}' -> {link.path} is dangling") from None
            raise SourceError(f"{path}: key {key!r} cannot be opened ({exc})") from None
        walked = f"{walked}/{part}" if walked else part
    return node


def _link_target(path: str, link: h5py.ExternalLink) -> str:
    target = link.filename
    return target if os.path.isabs(target) else os.path.join(os.path.dirname(os.path.abspath(path)), target)


@hdf5_guard
def resolve_external(path: str, key: str, depth: int = 8) -> tuple[str, str]:
    """Follow external links on the last component of ``key`` to ``(file, key)`` of the data."""
    for _ in range(depth):
        with open_file(path) as f:
            parent, _, name = key.strip("/").rpartition("/")
            group = get_node(f, parent, path) if parent else f
            link = group.get(name, getlink=True) if isinstance(group, h5py.Group) else None
            get_node(f, key, path)  # a clear error for a missing key or link target
            if not isinstance(link, h5py.ExternalLink):
                return path, key
            path, key = _link_target(path, link), link.path
    return path, key


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


def check_virtual_sources(dset: h5py.Dataset, path: str, key: str) -> None:
    """Refuse a virtual dataset that maps files outside ``path``'s folder (see :func:`check_link_target`)."""
    seen: set[str] = set()
    for vmap in dset.virtual_sources():
        name = vmap.file_name
        if name not in seen:
            seen.add(name)
            check_link_target(path, name, f"virtual dataset {key!r}: source file")


#: Largest "small" dataset read whole into memory (positions, monitor, masks, energies, ...).
MAX_SMALL_BYTES = 2**30


@hdf5_guard
def read_array(path: str, key: str, indices: Any = None) -> np.ndarray:
    """Read a whole (small) dataset, or the entries ``indices`` of its first axis."""
    with open_file(path) as f:
        node = get_node(f, key, path)
        if not isinstance(node, h5py.Dataset):
            raise SourceError(f"{path}: key {key!r} is a group, not a dataset; it holds: {_members(node)}")
        if node.is_virtual:
            check_virtual_sources(node, path, key)
        else:
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

    def _fast_plan(self) -> "_fastread.FastPlan | None":
        """The cached plain-file read plan of the dataset (``_fastread``), renewed when its file changes."""
        plan = self.__dict__.get("_fast")
        if plan is not None:
            try:
                if _fastread.file_stamp(plan.path) == plan.stamp:
                    return plan
            except OSError:
                pass
        with h5py.File(self.path, "r") as f:
            dset = self._dataset(f)
            plan = _fastread.fast_plan(dset)
        self._fast = plan
        return plan

    def _dataset(self, f: h5py.File) -> h5py.Dataset:
        dset = f[self.key]
        if not isinstance(dset, h5py.Dataset) or tuple(dset.shape) != self.dshape:
            raise SourceError(f"{self.path}:{self.key}: changed since it was opened (now {dset!r})")
        return dset

    def _read(self, start: int, stop: int) -> np.ndarray:
        plan = None
        if FAST_READ and self.outer is None and len(self.dshape) == 3 and stop > start:
            plan = self._fast_plan()
            if plan is not None and plan.stored is not None:  # mapped, or plain parallel file reads
                return _fastread.unfiltered_frames(plan.path, plan.stored, start, stop, self.dtype, self.shape[1:])
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
    path, key = resolve_external(os.path.abspath(path), key)
    with open_file(path) as f:
        dset = get_node(f, key, path)
        if not isinstance(dset, h5py.Dataset):
            raise SourceError(f"{path}: key {key!r} is a group, not a dataset; it holds: {_members(dset)}")
        shape, dtype, chunks = tuple(dset.shape), dset.dtype, dset.chunks
        where = f"{path}:{key}"
        if dtype.kind not in "biuf":
            raise SourceError(f"{where}: dtype {dtype} is not a real numeric type")
        frame_layout(shape, outer_index, where)
        if dset.is_virtual:
            check_virtual_sources(dset, path, key)
        else:
            check_filters(dset, path, key)
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
