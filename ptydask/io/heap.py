"""A guard against one way a damaged HDF5 file hangs the HDF5 library.

Variable-length strings (the ``type`` tags of a ``.ptyd``, NeXus attributes,
labels) live in *global heap collections*. HDF5 walks a collection object by
object, stepping by each object's declared size; a free-space object that
declares size 0 makes it step by nothing, and HDF5 (up to at least 2.0) then
loops for ever inside one C call, holding the GIL: no timeout or signal in
Python can stop it. :func:`heap_problem` walks every collection of a file the
same way first, and reports one that would not advance or that overruns
itself, so that the file is refused with an error instead.

Collections are found by their ``GCOL`` signature outside the stored bytes of
datasets (frames are never scanned, so the cost is that of the metadata).
"""

from __future__ import annotations

import os
from typing import Optional

import h5py

SIGNATURE = b"GCOL"
#: HDF5's smallest collection (H5HG_MINSIZE); a signature with a smaller size is not a collection.
MIN_COLLECTION = 4096
#: Bytes scanned per read.
READ_BYTES = 4 * 2**20

_checked: dict[tuple[str, int, int], Optional[str]] = {}


def heap_problem(f: h5py.File) -> Optional[str]:
    """A description of the first global heap collection of ``f``'s file that HDF5 could not walk
    (it would loop for ever or read past the collection), or ``None``. Cached per file version."""
    path = f.filename
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _checked:
        sizeof_size = int(f.id.get_create_plist().get_sizes()[1])
        _checked[key] = _scan(path, st.st_size, _stored_extents(f), sizeof_size)
    return _checked[key]


def _stored_extents(f: h5py.File) -> list[tuple[int, int]]:
    """(start, stop) file bytes holding dataset values (contiguous storage and chunks), sorted."""
    extents: list[tuple[int, int]] = []

    def visit(_name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.is_virtual or obj.external:
            return
        try:
            if obj.chunks is None:
                offset = obj.id.get_offset()
                if offset is not None:
                    extents.append((int(offset), int(offset) + int(obj.id.get_storage_size())))
            else:
                obj.id.chunk_iter(lambda c: extents.append((int(c.byte_offset), int(c.byte_offset) + int(c.size))))
        except Exception:  # noqa: BLE001 - unreadable storage info: scan those bytes too
            pass

    f.visititems(visit)
    return sorted(extents)


def _gaps(extents: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    out, pos = [], 0
    for lo, hi in extents:
        if lo > pos:
            out.append((pos, min(lo, size)))
        pos = max(pos, hi)
    if pos < size:
        out.append((pos, size))
    return [(a, b) for a, b in out if b > a]


def _scan(path: str, size: int, extents: list[tuple[int, int]], sizeof_size: int) -> Optional[str]:
    with open(path, "rb") as fh:
        for lo, hi in _gaps(extents, size):
            pos = lo
            while pos < hi:
                fh.seek(pos)
                buf = fh.read(min(READ_BYTES, hi - pos) + len(SIGNATURE) - 1)
                at = buf.find(SIGNATURE)
                while at >= 0:
                    problem = _walk(fh, pos + at, size, sizeof_size)
                    if problem:
                        return f"{path}: {problem}"
                    at = buf.find(SIGNATURE, at + 1)
                pos += READ_BYTES
    return None


def _walk(fh, start: int, file_size: int, sizeof_size: int) -> Optional[str]:
    """Walk the collection at ``start`` as HDF5's ``H5HG__cache_heap_deserialize`` does."""
    fh.seek(start)
    head = fh.read(8 + sizeof_size)
    if len(head) < 8 + sizeof_size or head[4] != 1 or head[5:8] != b"\0\0\0":
        return None  # not a version-1 collection header: HDF5 refuses it by itself
    total = int.from_bytes(head[8:], "little")
    if total < MIN_COLLECTION or total % 8:
        return None
    body = head + fh.read(min(total, file_size - start) - len(head))
    p, obj_header = 8 + sizeof_size, 8 + sizeof_size
    end = min(total, len(body))
    while p < end:
        if p + obj_header > total:
            return None  # HDF5 takes a short tail as free space
        if p + obj_header > end:
            return None  # truncated file: HDF5 fails to read the collection (an error, not a hang)
        index = int.from_bytes(body[p : p + 2], "little")
        declared = int.from_bytes(body[p + 8 : p + obj_header], "little")
        step = obj_header + (declared + 7) // 8 * 8 if index > 0 else declared
        if step == 0 or step > total - p:
            return (f"damaged HDF5 global heap (collection at byte {start}): object {index} at +{p} "
                    f"declares {declared} bytes, {total - p} left")
        p += step
    return None
