"""Turn a picklable frame reader into a lazy Dask array chunked along frames only.

A reader holds only plain values (paths, keys, shapes) and opens its file inside
``read``, so the Dask graph can be shipped to distributed workers.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import dask.array as da
import numpy as np


class FrameReader:
    """Base class: a stack of ``shape = (N, H, W)`` frames of ``dtype``, read by frame ranges.

    Subclasses set ``shape``, ``dtype`` and ``paths`` (files whose size and mtime
    name the Dask graph) and implement :meth:`read`.
    """

    shape: tuple[int, int, int]
    dtype: np.dtype
    paths: tuple[str, ...] = ()

    @property
    def ndim(self) -> int:
        return 3

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` as a ``(stop - start, H, W)`` array of ``dtype``."""
        raise NotImplementedError

    def __getitem__(self, key: tuple) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            start = int(first) % self.shape[0] if self.shape[0] else 0
            return self.read(start, start + 1)[(0,) + rest]
        frames = range(*first.indices(self.shape[0]))
        if len(frames) == 0:
            return np.empty((0,) + tuple(self.shape[1:]), self.dtype)[(slice(None),) + rest]
        lo, hi = min(frames), max(frames) + 1
        out = self.read(lo, hi)
        if frames.step != 1:
            out = out[np.asarray(frames) - lo]
        return out if rest == (slice(None), slice(None)) else out[(slice(None),) + rest]

    def token(self) -> str:
        """A name for the graph that changes when the files change."""
        h = hashlib.sha1(repr((type(self).__name__, self.describe())).encode())
        for p in self.paths:
            try:
                st = os.stat(p)
                h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                h.update(p.encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.paths} {self.shape} {self.dtype}"


def frames_per_block(frame_bytes: int, block_bytes: int, unit: int = 1) -> int:
    """Frames per Dask block: a multiple of ``unit`` (storage chunk) of about ``block_bytes``."""
    per = max(1, int(block_bytes) // max(1, int(frame_bytes)))
    return max(unit, (per // unit) * unit)


def split(n: int, step: int) -> tuple[int, ...]:
    """Block sizes of ``step`` frames covering ``n`` frames (the last one shorter)."""
    if n == 0:
        return (0,)
    sizes = [step] * (n // step)
    if n % step:
        sizes.append(n % step)
    return tuple(sizes)


def as_dask(reader: FrameReader, block_sizes: Sequence[int], prefix: str) -> da.Array:
    """A lazy ``(N, H, W)`` Dask array whose block ``i`` is one ``reader.read`` call."""
    n, h, w = reader.shape
    return da.from_array(
        reader,
        chunks=(tuple(block_sizes), (h,), (w,)),
        name=f"{prefix}-{reader.token()}",
        asarray=False,
        fancy=False,
        lock=False,
        meta=np.empty((0, 0, 0), dtype=reader.dtype),
    )


def lazy_frames(reader: FrameReader, block_bytes: int, prefix: str) -> da.Array:
    """Shorthand: Dask array of ``reader`` with blocks of about ``block_bytes``."""
    n, h, w = reader.shape
    step = frames_per_block(h * w * np.dtype(reader.dtype).itemsize, block_bytes)
    return as_dask(reader, split(n, step), prefix)
