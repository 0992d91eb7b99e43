"""Fast reads of compressed, chunked HDF5 frames: raw chunks decoded in a thread pool.

HDF5 runs its filter pipeline (gzip, bitshuffle-LZ4, ...) on one thread, under
a process-wide lock. This module asks HDF5 only where each chunk is stored,
reads the stored bytes with ``os.pread`` and decodes them in a thread pool with
decoders that release the GIL: Python's ``zlib`` for deflate, numpy for the
byte shuffle, and for plugin filters (bitshuffle-LZ4, LZ4, Zstd) the filter
function of the very plugin HDF5 itself would call (``hdf5plugin``'s library,
through ctypes), with the dataset's stored filter parameters. The result is
bit for bit what h5py's ``read_direct`` returns.

Only whole-frame chunks ``(k, H, W)`` of an ``(N, H, W)`` dataset with a
pipeline made only of those filters take this path (:func:`plan_for`); anything
else (and any chunk that cannot be read raw, e.g. one never written) is read
by h5py as before.

Uncompressed ``(N, H, W)`` datasets, contiguous or in whole-frame chunks
(:func:`stored_runs`), are read with ``os.preadv`` at their stored file offsets,
in pieces on the same pool: HDF5 would copy them on one thread under its lock,
serialising every reader (and the writer of the output) of the process. A block
that lies in one stored run is not even copied: :func:`map_stored` maps it
onto the file (the page cache's own pages, copy-on-write). A file must not shrink
while one of its blocks is in use (reading a mapped page past the new end of a
file is a fatal signal); detectors append, they do not truncate.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import h5py
import numpy as np

from .. import buffers, config

H5Z_FLAG_REVERSE = 0x0100
DEFLATE, SHUFFLE = 1, 2
#: Plugin filters whose decoders are known to be stateless (safe to call from several threads).
PLUGIN_FILTERS = {32008: "bshuf", 32004: "lz4", 32015: "zstd"}

# H5Z_func_t: size_t (*)(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
#                         size_t *buf_size, void **buf)
_H5Z_FUNC = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_uint, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint),
                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p))


class _H5ZClass2(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int), ("id", ctypes.c_int), ("encoder_present", ctypes.c_uint),
                ("decoder_present", ctypes.c_uint), ("name", ctypes.c_char_p), ("can_apply", ctypes.c_void_p),
                ("set_local", ctypes.c_void_p), ("filter", ctypes.c_void_p)]


_lock = threading.Lock()
_decoders: Optional[dict[int, Any]] = None
_libhdf5: Any = None
_pool: Optional[ThreadPoolExecutor] = None
_pool_pid: Optional[int] = None


def _hdf5() -> Any:
    """libhdf5 as loaded by h5py (for H5allocate_memory / H5free_memory)."""
    global _libhdf5
    if _libhdf5 is None:
        lib = ctypes.CDLL(h5py.h5z.__file__)
        lib.H5allocate_memory.restype = ctypes.c_void_p
        lib.H5allocate_memory.argtypes = [ctypes.c_size_t, ctypes.c_bool]
        lib.H5free_memory.restype = ctypes.c_int
        lib.H5free_memory.argtypes = [ctypes.c_void_p]
        _libhdf5 = lib
    return _libhdf5


def plugin_decoders() -> dict[int, Any]:
    """Filter id -> the plugin's H5Z filter function, for the stateless plugin filters hdf5plugin provides."""
    global _decoders
    with _lock:
        if _decoders is None:
            found: dict[int, Any] = {}
            try:
                import hdf5plugin  # noqa: F401  (registers the filters)
                from hdf5plugin._utils import registered_filters
            except Exception:  # noqa: BLE001 - no hdf5plugin: no plugin decoders
                registered_filters = {}
            for _name, (_filename, lib) in list(registered_filters.items()):
                try:
                    lib.H5PLget_plugin_info.restype = ctypes.c_void_p
                    info = _H5ZClass2.from_address(lib.H5PLget_plugin_info())
                except Exception:  # noqa: BLE001
                    continue
                if info.id in PLUGIN_FILTERS and info.decoder_present and info.filter:
                    found[int(info.id)] = _H5Z_FUNC(info.filter)
            _decoders = found
        return _decoders


def pool() -> ThreadPoolExecutor:
    """The process's decoding pool (one thread per CPU), re-made after a fork."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="ptydask-decode")
            _pool_pid = os.getpid()
        return _pool


@dataclass(frozen=True)
class Step:
    """One filter of the pipeline, as decoding needs it."""

    code: int
    values: tuple[int, ...]


@dataclass(frozen=True)
class ChunkPlan:
    """How to decode the chunks of one dataset: frames per chunk, bytes per chunk, filters (write order)."""

    k: int
    chunk_bytes: int
    itemsize: int
    steps: tuple[Step, ...]


def plan_for(dset: h5py.Dataset) -> Optional[ChunkPlan]:
    """A :class:`ChunkPlan` when ``dset`` can be read by raw chunks, else ``None``.

    Needs: 3-D ``(N, H, W)``, chunked with whole frames ``(k, H, W)``, at least one
    filter, every filter deflate, shuffle or a stateless plugin filter whose
    decoder hdf5plugin provides; not virtual, not external.
    """
    try:
        if dset.ndim != 3 or dset.chunks is None or dset.is_virtual or dset.external:
            return None
        k, ch, cw = dset.chunks
        if (ch, cw) != dset.shape[1:] or dset.dtype.kind not in "biuf" or dset.dtype.byteorder not in "=|<":
            return None
        plist = dset.id.get_create_plist()
        nfilters = plist.get_nfilters()
        if nfilters == 0:
            return None  # uncompressed: h5py reads it at memory speed already
        decoders = plugin_decoders()
        steps = []
        for i in range(nfilters):
            code, _flags, values, _name = plist.get_filter(i)
            if code not in (DEFLATE, SHUFFLE) and code not in decoders:
                return None
            steps.append(Step(int(code), tuple(int(v) for v in values)))
    except Exception:  # noqa: BLE001 - anything unusual: let h5py read it
        return None
    itemsize = dset.dtype.itemsize
    return ChunkPlan(int(k), int(k * ch * cw * itemsize), itemsize, tuple(steps))


@dataclass(frozen=True)
class StoredRuns:
    """Where the frames of an unfiltered dataset lie in its file: ``runs`` of (first frame, frames,
    file offset) stored back to back, ``frame_bytes`` per frame."""

    runs: tuple[tuple[int, int, int], ...]
    frame_bytes: int


def stored_runs(dset: h5py.Dataset) -> Optional[StoredRuns]:
    """:class:`StoredRuns` of a 3-D dataset without filters, contiguous or in whole-frame chunks
    ``(k, H, W)`` that are all written, stored in its own file (not virtual, not external), in native
    byte order; else ``None`` (h5py reads it)."""
    try:
        if dset.ndim != 3 or dset.is_virtual or dset.external:
            return None
        if dset.dtype.kind not in "biuf" or dset.dtype.byteorder not in "=|<":
            return None
        if dset.id.get_create_plist().get_nfilters():
            return None
        n, h, w = dset.shape
        frame_bytes = int(h * w * dset.dtype.itemsize)
        if dset.chunks is None:
            offset = dset.id.get_offset()
            if offset is None or dset.id.get_storage_size() < frame_bytes * n:
                return None  # never written: the fill value, which h5py supplies
            return StoredRuns(((0, n, int(offset)),), frame_bytes)
        k, ch, cw = dset.chunks
        if (ch, cw) != (h, w):
            return None
        found: list[tuple[int, int, int]] = []
        dset.id.chunk_iter(lambda c: found.append((int(c.chunk_offset[0]), int(c.byte_offset), int(c.size))))
        if len(found) != -(-n // k) or any(size != k * frame_bytes for _, _, size in found):
            return None  # a chunk never written (fill value) or stored differently: h5py knows
        runs: list[list[int]] = []
        for first, offset, _size in sorted(found):
            count = min(k, n - first)
            last = runs[-1] if runs else None
            if last is not None and last[0] + last[1] == first and last[2] + last[1] * frame_bytes == offset:
                last[1] += count
            else:
                runs.append([first, count, offset])
        return StoredRuns(tuple((a, b, c) for a, b, c in runs), frame_bytes)
    except Exception:  # noqa: BLE001 - anything unusual: let h5py read it
        return None


#: Bytes per ``preadv`` call of a raw read (pieces run in parallel on the pool).
PIECE_BYTES = 8 * 2**20
#: Reads of fewer bytes than this decode in the calling thread (the pool pays off on larger ones).
INLINE_BYTES = 2**20


def map_stored(path: str, plan: StoredRuns, start: int, stop: int, dtype: np.dtype,
               frame_shape: tuple[int, int]) -> Optional[np.ndarray]:
    """Frames ``start:stop`` as an array mapped onto the file (no copy: the page cache's own pages;
    copy-on-write, so writing to it never changes the file), when they lie in one stored run;
    else ``None``."""
    for first, count, offset in plan.runs:
        if first <= start and stop <= first + count:
            break
    else:
        return None
    begin = offset + (start - first) * plan.frame_bytes
    size = (stop - start) * plan.frame_bytes
    aligned = begin - begin % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as fh:
        # private (copy-on-write): the array is writable like any other block, and writing to it
        # copies the page, never touches the file. Pages are mapped on first touch (pre-faulting a
        # writable private map would copy every page)
        mapped = mmap.mmap(fh.fileno(), size + begin - aligned, offset=aligned,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE,
                           flags=mmap.MAP_PRIVATE)
    arr = np.frombuffer(mapped, dtype=dtype, count=size // dtype.itemsize, offset=begin - aligned)
    return arr.reshape((stop - start,) + tuple(frame_shape))


def unfiltered_frames(path: str, plan: StoredRuns, start: int, stop: int, dtype: np.dtype,
                      frame_shape: tuple[int, int]) -> np.ndarray:
    """Frames ``start:stop`` of an unfiltered dataset of the file ``path``: mapped onto the file when they
    lie in one stored run (:func:`map_stored`, copy-on-write, unless the ``ptydask.map-read`` setting is
    false), else read into a new array (:func:`read_stored`)."""
    if config.get("map-read") and stop > start:
        mapped = map_stored(path, plan, start, stop, dtype, frame_shape)
        if mapped is not None:
            return mapped
    out = buffers.empty((stop - start,) + tuple(frame_shape), dtype)
    read_stored(path, plan, start, stop, out)
    return out


def read_stored(path: str, plan: StoredRuns, start: int, stop: int, out: np.ndarray) -> None:
    """Frames ``start:stop`` of an unfiltered dataset of the file ``path`` into ``out`` (C-contiguous),
    by plain file reads at the stored offsets, in pieces on the pool (outside HDF5 and the GIL)."""
    target = out.reshape(-1).view(np.uint8)
    fb = plan.frame_bytes
    if target.size != (stop - start) * fb:
        raise ValueError(f"read_stored: buffer of {target.size} bytes for {(stop - start) * fb}")
    pieces = []  # (file offset, first byte in target, bytes)
    for first, count, offset in plan.runs:
        lo, hi = max(first, start), min(first + count, stop)
        if lo >= hi:
            continue
        src, dst, size = offset + (lo - first) * fb, (lo - start) * fb, (hi - lo) * fb
        for pos in range(0, size, PIECE_BYTES):
            pieces.append((src + pos, dst + pos, min(PIECE_BYTES, size - pos)))
    if sum(p[2] for p in pieces) != target.size:
        raise ValueError(f"{path}: frames {start}:{stop} are not all stored")
    fd = os.open(path, os.O_RDONLY)
    try:
        def piece(src: int, dst: int, size: int) -> None:
            done = 0
            while done < size:  # preadv may return fewer bytes than asked
                got = os.preadv(fd, [target[dst + done : dst + size]], src + done)
                if got <= 0:
                    raise OSError(f"{path}: the file ends inside the dataset (offset {src + done})")
                done += got

        if len(pieces) == 1:  # one piece: no hand-over to the pool
            piece(*pieces[0])
            return
        futures = [pool().submit(piece, *p) for p in pieces]
        for exc in [f.exception() for f in futures]:
            if exc is not None:
                raise exc
    finally:
        os.close(fd)


def decode(plan: ChunkPlan, filter_mask: int, raw: bytes, out: np.ndarray) -> None:
    """Decode one stored chunk into ``out`` (a C-contiguous array of ``plan.chunk_bytes`` bytes)."""
    data: Any = raw
    target = out.reshape(-1).view(np.uint8)
    for i in reversed(range(len(plan.steps))):
        if filter_mask & (1 << i):
            continue  # this filter was not applied to this chunk
        step = plan.steps[i]
        last = not any(not filter_mask & (1 << j) for j in range(i))
        if step.code == DEFLATE:
            data = zlib.decompress(data)
        elif step.code == SHUFFLE:
            data = _unshuffle(data, step, plan.itemsize)
        else:
            data = _plugin(step, data, target if last else None)
            if data is None:
                return  # decoded straight into `out`
    view = np.frombuffer(data, dtype=np.uint8)
    if view.size != plan.chunk_bytes:
        raise ValueError(f"decoded chunk has {view.size} bytes, expected {plan.chunk_bytes}")
    target[:] = view


def _unshuffle(data: Any, step: Step, itemsize: int) -> np.ndarray:
    size = step.values[0] if step.values else itemsize
    buf = np.frombuffer(data, dtype=np.uint8)
    if size <= 1 or buf.size < size:
        return buf
    n = buf.size // size
    out = np.empty(buf.size, dtype=np.uint8)
    out[: n * size].reshape(n, size)[:] = buf[: n * size].reshape(size, n).T
    out[n * size :] = buf[n * size :]  # HDF5 leaves a tail of fewer than `size` bytes as it is
    return out


def _plugin(step: Step, data: Any, target: Optional[np.ndarray]) -> Optional[bytes]:
    """Run the plugin's own H5Z filter function backwards on ``data`` (ctypes releases the GIL).

    With ``target`` (the last filter to undo), the decoded bytes go straight into it
    and ``None`` is returned; otherwise the decoded bytes are returned.
    """
    func = plugin_decoders()[step.code]
    lib = _hdf5()
    src = data if isinstance(data, bytes) else np.ascontiguousarray(np.frombuffer(data, dtype=np.uint8))
    n = len(src) if isinstance(src, bytes) else src.size
    ptr = lib.H5allocate_memory(max(n, 1), False)
    if not ptr:
        raise MemoryError("H5allocate_memory failed")
    buf = ctypes.c_void_p(ptr)
    try:
        ctypes.memmove(ptr, src if isinstance(src, bytes) else src.ctypes.data, n)
        size = ctypes.c_size_t(n)
        values = (ctypes.c_uint * max(1, len(step.values)))(*step.values)
        got = func(H5Z_FLAG_REVERSE, len(step.values), values, n, ctypes.byref(size), ctypes.byref(buf))
        if got == 0:
            raise ValueError(f"HDF5 filter {step.code} failed to decode a chunk")
        if target is None:
            return ctypes.string_at(buf.value, got)
        if got != target.size:
            raise ValueError(f"HDF5 filter {step.code} decoded {got} bytes, expected {target.size}")
        ctypes.memmove(target.ctypes.data, buf.value, got)
        return None
    finally:
        if buf.value:
            lib.H5free_memory(buf.value)


def chunk_table(dset: h5py.Dataset) -> dict[int, tuple[int, int, int]]:
    """First frame of each stored chunk -> (file offset, stored bytes, filter mask), from one pass of
    HDF5's chunk index (chunks never written are absent)."""
    table: dict[int, tuple[int, int, int]] = {}
    dset.id.chunk_iter(lambda c: table.__setitem__(int(c.chunk_offset[0]),
                                                   (int(c.byte_offset), int(c.size), int(c.filter_mask))))
    return table


def read_frames(dset: h5py.Dataset, plan: ChunkPlan, start: int, stop: int, out: np.ndarray,
                fallback: Callable[[int, int, np.ndarray], None]) -> None:
    """Frames ``start:stop`` of ``dset`` into ``out`` (``(stop - start, H, W)``), chunks read and decoded in the pool.

    HDF5 only says where each stored chunk lies (``get_chunk_info_by_coord``); see :func:`read_chunks`.
    """
    def locate(c0: int) -> Optional[tuple[int, int, int]]:
        info = dset.id.get_chunk_info_by_coord((c0, 0, 0))
        return None if info.byte_offset is None else (int(info.byte_offset), int(info.size), int(info.filter_mask))

    read_chunks(dset.file.filename, plan, dset.shape[0], locate, start, stop, out, fallback)


def read_chunks(path: str, plan: ChunkPlan, n: int, locate: Callable[[int], Optional[tuple[int, int, int]]],
                start: int, stop: int, out: np.ndarray, fallback: Callable[[int, int, np.ndarray], None]) -> None:
    """Frames ``start:stop`` of an ``n``-frame chunked dataset stored in ``path`` into ``out``.

    ``locate(c0)`` gives (file offset, stored bytes, filter mask) of the chunk starting at frame ``c0``,
    or ``None`` for a chunk never written, whose frames ``fallback(a, b, dest)`` reads through h5py
    (HDF5 supplies the fill value). The pool reads the stored bytes with ``os.pread`` and decodes
    them, outside HDF5's lock and the GIL; small reads are decoded in the calling thread.
    """
    k = plan.k
    jobs = []
    for c0 in range((start // k) * k, stop, k):
        lo, hi = max(c0, start), min(c0 + k, n, stop)
        dest = out[lo - start : hi - start]
        where = locate(c0)
        if where is None:
            fallback(lo, hi, dest)
            continue
        whole = lo == c0 and hi == c0 + k  # the chunk's frames all land in `out`
        jobs.append(where + (dest, whole, lo - c0, hi - c0))
    if not jobs:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        def job(offset: int, size: int, mask: int, dest: np.ndarray, whole: bool, a: int, b: int) -> None:
            raw = os.pread(fd, size, offset)
            if len(raw) != size:
                raise OSError(f"{path}: the file ends inside a stored chunk (byte {offset} + {size})")
            _decode_into(plan, mask, raw, dest, whole, a, b)

        def run(part: list) -> None:
            for j in part:
                job(*j)

        workers = os.cpu_count() or 1
        if out.nbytes < INLINE_BYTES or workers == 1:
            run(jobs)
            return
        # one task per thread, each a run of consecutive chunks (not one task per chunk: fewer hand-overs)
        k = min(workers, len(jobs))
        futures = [pool().submit(run, jobs[len(jobs) * i // k : len(jobs) * (i + 1) // k]) for i in range(k)]
        errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
        if errors:
            raise errors[0]
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FastPlan:
    """How to read the frames of dataset ``name`` without HDF5, valid while its file ``path`` keeps
    ``stamp`` (size, mtime): ``stored`` (unfiltered) or ``chunks`` + ``table`` (compressed whole-frame chunks)."""

    path: str
    name: str
    stamp: tuple[int, int]
    n: int
    stored: Optional[StoredRuns] = None
    chunks: Optional[ChunkPlan] = None
    table: Optional[dict[int, tuple[int, int, int]]] = None

    def read(self, start: int, stop: int, out: np.ndarray, fallback: Callable[[int, int, np.ndarray], None]) -> None:
        """Frames ``start:stop`` of compressed chunks into ``out``; ``fallback`` reads frames of chunks never
        written (unfiltered frames: :func:`unfiltered_frames` with ``stored``)."""
        read_chunks(self.path, self.chunks, self.n, self.table.get, start, stop, out, fallback)


def file_stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def fast_plan(dset: h5py.Dataset) -> Optional[FastPlan]:
    """A :class:`FastPlan` for ``dset``, or ``None`` when only h5py can read it."""
    path = dset.file.filename
    try:
        stamp = file_stamp(path)
    except OSError:
        return None
    stored = stored_runs(dset)
    if stored is not None:
        return FastPlan(path, dset.name, stamp, dset.shape[0], stored=stored)
    plan = plan_for(dset)
    if plan is None:
        return None
    return FastPlan(path, dset.name, stamp, dset.shape[0], chunks=plan, table=chunk_table(dset))


def _decode_into(plan: ChunkPlan, mask: int, raw: bytes, dest: np.ndarray, whole: bool, a: int, b: int) -> None:
    if whole:
        decode(plan, mask, raw, dest)
        return
    tmp = np.empty((plan.k,) + dest.shape[1:], dtype=dest.dtype)
    decode(plan, mask, raw, tmp)
    dest[:] = tmp[a:b]
