"""Memory reused for the large temporary arrays of a pass over frame blocks.

Every block of a pass needs the same few large arrays (the decoded raw block, the prepared
block); a fresh array's pages are zeroed by the kernel on first touch, which costs about as
much CPU as decoding the block. Inside :func:`reuse` (the sinks' block loops), :func:`empty`
hands out memory of an earlier array of the same size once nothing refers to it any more
(no array or view of it is alive: checked with its reference count), keeping a few buffers
per size; outside, and for small arrays, it is ``numpy.empty``. Leaving :func:`reuse` drops
the kept buffers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence

import numpy as np

#: Arrays smaller than this (bytes) are always new.
MIN_BYTES = 1 << 20

_lock = threading.Lock()
_kept: dict[int, list[np.ndarray]] = {}
_depth = 0


def _free_count() -> int:
    """The reference count :func:`_unused` sees for a buffer only the pool's list holds (0: checks fail)."""
    probe = [np.empty(8, np.uint8)]
    free = _count(probe)
    view = probe[0][2:]
    taken = _count(probe)
    del view
    return free if taken == free + 1 and _count(probe) == free else 0


def _count(bufs: list[np.ndarray]) -> int:
    return sys.getrefcount(bufs[0])


_FREE = _free_count()


def _unused(bufs: list[np.ndarray], i: int) -> bool:
    """True when nothing but the pool refers to ``bufs[i]``."""
    return _FREE > 0 and sys.getrefcount(bufs[i]) == _FREE


@contextlib.contextmanager
def reuse(keep: int | None = None) -> Iterator[None]:
    """Within: :func:`empty` reuses memory (``keep`` buffers per size, default CPUs + 3)."""
    global _depth, _keep
    with _lock:
        _depth += 1
        if keep is not None:
            _keep = max(_keep, keep)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _kept.clear()
                _keep = (os.cpu_count() or 1) + 3


_keep = (os.cpu_count() or 1) + 3


def empty(shape: Sequence[int], dtype: np.dtype | type | str) -> np.ndarray:
    """An uninitialised C-contiguous array, on reused memory inside :func:`reuse`."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MIN_BYTES or _depth == 0 or dtype.hasobject:
        return np.empty(shape, dtype)
    with _lock:
        if _depth == 0:
            return np.empty(shape, dtype)
        bufs = _kept.setdefault(nbytes, [])
        for i in range(len(bufs)):
            if _unused(bufs, i):
                return bufs[i].view(dtype).reshape(shape)
        if len(bufs) >= _keep:
            return np.empty(shape, dtype)
        bufs.append(np.empty(nbytes, np.uint8))
        return bufs[-1].view(dtype).reshape(shape)


__all__ = ["empty", "reuse", "MIN_BYTES"]
