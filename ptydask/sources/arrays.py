"""In-memory arrays, ``.npy``/``.npz`` files and Zarr arrays as lazy frame stacks."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import dask.array as da
import numpy as np

from ..errors import PtydaskError, SourceError
from ._lazy import FrameReader, as_dask, frames_per_block, lazy_frames, split
from .hdf5 import frame_layout


def memory_frames(arr: Any, block_bytes: int) -> da.Array:
    """A numpy or Dask array as Dask; numpy gets frame blocks of about ``block_bytes``."""
    if isinstance(arr, da.Array):
        return arr
    arr = np.asarray(arr)
    if arr.ndim < 2:
        return da.from_array(arr)
    frame_bytes = int(np.prod(arr.shape[-2:], dtype=np.int64)) * arr.dtype.itemsize
    lead = arr.shape[:-2]
    if len(lead) == 0:
        return da.from_array(arr, chunks=-1)
    step = frames_per_block(frame_bytes * int(np.prod(lead[1:], dtype=np.int64)), block_bytes)
    return da.from_array(arr, chunks=(split(lead[0], step),) + tuple((s,) for s in arr.shape[1:]))


class NpyReader(FrameReader):
    """Frames of a ``.npy`` file, memory-mapped in every read (never pickled with its data)."""

    def __init__(self, path: str, file_shape: tuple[int, ...], dtype: np.dtype, outer_index: int | None):
        self.paths = (os.path.abspath(path),)
        self.file_shape, self.outer = tuple(file_shape), outer_index
        inner = self.file_shape[1:] if outer_index is not None else self.file_shape
        self.shape = (int(np.prod(inner[:-2], dtype=np.int64)),) + inner[-2:]
        self.dtype = np.dtype(dtype).newbyteorder("=")

    def describe(self) -> str:
        return f"{self.paths[0]} {self.file_shape} {self.dtype} outer={self.outer}"

    def read(self, start: int, stop: int) -> np.ndarray:
        mm = np.load(self.paths[0], mmap_mode="r")
        if self.outer is not None:
            mm = mm[self.outer]
        return np.array(mm.reshape(self.shape)[start:stop], dtype=self.dtype)


def npy_frames(path: str, outer_index: int | None, block_bytes: int) -> tuple[da.Array, tuple[int, ...], tuple[int, ...]]:
    """Lazy frames of a ``.npy`` file, its scan grid (leading axes) and its stored shape."""
    try:
        mm = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable .npy file ({exc})") from None
    if mm.dtype.kind not in "biuf":
        raise SourceError(f"{path}: dtype {mm.dtype} is not a real numeric type")
    frame_layout(tuple(mm.shape), outer_index, path)
    if not mm.flags.c_contiguous:
        raise SourceError(f"{path}: Fortran-ordered .npy files are not supported as frames; save it C-ordered")
    if outer_index is not None and outer_index < 0:
        outer_index += mm.shape[0]
    reader = NpyReader(path, mm.shape, mm.dtype, outer_index)
    grid = (mm.shape[1:] if outer_index is not None else mm.shape)[:-2] or (1,)
    return lazy_frames(reader, block_bytes, "npy"), tuple(grid), tuple(mm.shape)


def npz_member(path: str, key: str | None) -> np.ndarray:
    """One member of a ``.npz`` archive (loaded into memory)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SourceError(f"{path}: not a readable .npz archive ({exc})") from None
    if not hasattr(z, "files"):  # np.load read a .npy (or pickle signature) behind a .npz name
        raise SourceError(f"{path}: not a .npz archive")
    with z:
        names = list(z.files)
        if key is None:
            if len(names) != 1:
                raise SourceError(f"{path}: pass key= to choose one of the arrays: {', '.join(names)}")
            key = names[0]
        if key not in names:
            raise SourceError(f"{path}: key {key!r} not found; the archive holds: {', '.join(names)}")
        try:
            return z[key]
        except ValueError as exc:  # object arrays: never unpickled
            raise SourceError(f"{path}: member {key!r} cannot be loaded safely ({exc}); "
                              "Python-object arrays are refused") from None
        except Exception as exc:  # noqa: BLE001 - a damaged zip member raises zlib, zipfile, OSError, ...
            raise SourceError(f"{path}: member {key!r} is damaged ({type(exc).__name__}: {exc})") from None


class ZarrReader(FrameReader):
    """Frames of a Zarr array (``key`` inside a group), opened by path in every read; the stored shape
    ``(..., H, W)`` is read as ``(N, H, W)`` frames in C order. Codec failures name the store."""

    def __init__(self, path: str, key: str | None, stored: tuple[int, ...], dtype: np.dtype):
        self.paths, self.key, self.stored = (os.path.abspath(path),), key, tuple(stored)
        self.inner = int(np.prod(stored[1:-2], dtype=np.int64)) if len(stored) > 3 else 1
        self.shape = (int(np.prod(stored[:-2], dtype=np.int64)), int(stored[-2]), int(stored[-1]))
        self.dtype = np.dtype(dtype).newbyteorder("=")

    def describe(self) -> str:
        return f"{self.paths[0]}:{self.key} {self.stored} {self.dtype}"

    def read(self, start: int, stop: int) -> np.ndarray:
        import zarr

        try:
            node = zarr.open(self.paths[0], mode="r")
            node = node[self.key] if self.key else node
            if tuple(node.shape) != self.stored:
                raise SourceError(f"{self.paths[0]}: {self.key or '/'} changed since it was opened (now {node.shape})")
            if len(self.stored) == 2:
                out = np.asarray(node[...])[None]
            else:
                first, last = start // self.inner, (stop - 1) // self.inner + 1
                rows = np.asarray(node[first:last]).reshape((-1,) + self.shape[1:])
                out = rows[start - first * self.inner:stop - first * self.inner]
        except (PtydaskError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged chunk fails in any codec
            raise SourceError(f"{self.paths[0]}: {self.key or '/'}: cannot read frames {start}:{stop}: "
                              f"{type(exc).__name__}: {exc}") from exc
        return np.ascontiguousarray(out, dtype=self.dtype)


def zarr_frames(path: str, key: str | None, block_bytes: int) -> tuple[da.Array, tuple[int, ...]]:
    """Lazy frames of a Zarr array (``key`` = array path inside a group), blocks of whole Zarr chunks,
    in the stored shape."""
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:  # zarr raises several error types for non-stores
        raise SourceError(f"{path}: cannot be opened as Zarr ({type(exc).__name__}: {exc})") from None
    if key:
        try:
            node = node[key]
        except (KeyError, TypeError):
            members = sorted(getattr(node, "keys", lambda: [])())
            raise SourceError(f"{path}: key {key!r} not found; the store holds: {', '.join(members) or '(nothing)'}") from None
    if not hasattr(node, "chunks"):
        members = sorted(node.keys())
        raise SourceError(f"{path}: {key or '/'} is a group; pass key= to choose one of: {', '.join(members)}")
    shape, chunks = tuple(node.shape), tuple(node.chunks)
    if len(shape) < 2:
        raise SourceError(f"{path}: {key or '/'} has shape {shape}, not frames")
    if np.dtype(node.dtype).kind not in "biuf":
        raise SourceError(f"{path}: {key or '/'} holds {node.dtype} values, not numbers")
    frame_layout(shape if len(shape) <= 4 else shape[-4:], None, f"{path}:{key or '/'}")
    reader = ZarrReader(path, key, shape, node.dtype)
    frame_bytes = int(np.prod(shape[-2:], dtype=np.int64)) * reader.dtype.itemsize
    if len(shape) == 2:
        flat = as_dask(reader, (1,), "zarr")
    else:
        rows = frames_per_block(frame_bytes * reader.inner, block_bytes, chunks[0])
        flat = as_dask(reader, tuple(r * reader.inner for r in split(shape[0], rows)), "zarr")
    arr = flat[0] if len(shape) == 2 else (flat if len(shape) == 3 else flat.reshape(shape))
    return arr, tuple(shape[:-2]) or (1,)
