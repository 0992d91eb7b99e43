"""Values given either directly (arrays, numbers) or as file references ``{file, key, indices}``.

``file`` defaults to the frames' own file; ``key`` is the dataset path (HDF5,
Zarr, ``.npz``); ``indices`` picks entries of the first axis (of the
flattened frame stack for frame-like data).
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Iterable, Mapping

import dask.array as da
import h5py
import numpy as np

from ..errors import ParameterError, SourceError
from . import hdf5
from .registry import detect, open_source

REF_KEYS = ("file", "key", "indices")


def check_keys(name: str, spec: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise :class:`ParameterError` for keys of ``spec`` outside ``allowed`` (with a suggestion)."""
    allowed = tuple(allowed)
    for key in spec:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(f"{name}: unknown key {key!r}{hint}; known keys: {', '.join(allowed)}")


def ref_file(name: str, spec: Mapping[str, Any], default_file: str | None) -> tuple[str, str | None]:
    """The ``(file, key)`` a reference points at."""
    path = spec.get("file") or default_file
    if path is None:
        raise ParameterError(f"{name}: 'file' is required (the frames do not come from a file)")
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise SourceError(f"{name}: {path}: no such file")
    return path, spec.get("key")


def format_of(path: str) -> str | None:
    """The name of the format of ``path`` (by content, else suffix; see :func:`registry.detect`)."""
    fmt = detect(path)
    return None if fmt is None else fmt.name


def is_hdf5_path(path: str) -> bool:
    """True for HDF5 files (by signature, or by suffix when the content says nothing)."""
    return format_of(path) == "hdf5"


def load_small(name: str, value: Any, default_file: str | None, extra: Iterable[str] = ()) -> np.ndarray:
    """A small array (positions, monitor, filter, scalar) read fully into memory."""
    if not isinstance(value, Mapping):
        return np.asarray(value.compute() if isinstance(value, da.Array) else value)
    check_keys(name, value, REF_KEYS + tuple(extra))
    path, key = ref_file(name, value, default_file)
    if is_hdf5_path(path):
        if not key:
            raise ParameterError(f"{name}: 'key' is required to read from the HDF5 file {path}")
        return _numbers(name, np.asarray(hdf5.read_array(path, key, value.get("indices"))), f"{path}:{key}")
    if format_of(path) == "npy" and key is None:
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # object arrays are never unpickled
            raise SourceError(f"{name}: {path}: not a readable .npy file of numbers ({exc})") from None
    else:
        arr = np.asarray(open_source(path, key, block_bytes=2**62).frames.compute())
    arr = _numbers(name, np.asarray(arr), f"{path}:{key}" if key else path)
    idx = value.get("indices")
    return arr if idx is None else arr[np.asarray(idx)]


def _numbers(name: str, arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` if it holds real numbers (or bools); a :class:`SourceError` naming ``where`` otherwise."""
    if arr.dtype.kind not in "biuf":
        raise SourceError(f"{name}: {where} holds {arr.dtype} values, not numbers")
    return arr


def _dataset_shape(path: str, key: str) -> tuple[int, ...] | None:
    with hdf5.open_file(path) as f:
        node = hdf5.get_node(f, key, path)
        return tuple(node.shape) if isinstance(node, h5py.Dataset) else None


def load_frames_like(name: str, value: Any, default_file: str | None, outer_index: int | None,
                     raw_shape: tuple[int, ...], block_bytes: int) -> np.ndarray | da.Array:
    """A 2-D image or a stack of frames (mask, dark, flat), kept lazy when it comes from a file.

    A stack stored like the frames (same shape as the raw data, including an
    outer axis) gets the same ``outer_index`` and raster flattening.
    """
    if not isinstance(value, Mapping):
        if isinstance(value, da.Array):
            return value
        return np.asarray(value)
    check_keys(name, value, REF_KEYS)
    path, key = ref_file(name, value, default_file)
    if is_hdf5_path(path):
        if not key:
            raise ParameterError(f"{name}: 'key' is required to read from the HDF5 file {path}")
        rpath, rkey = hdf5.resolve(path, key)
        shape = hdf5.hdf5_guard(_dataset_shape)(rpath, rkey)
        if shape is None:
            raise SourceError(f"{name}: {path}: key {key!r} is a group, not a dataset")
        if len(shape) <= 2:
            arr: np.ndarray | da.Array = hdf5.read_array(path, key)
        else:
            outer = outer_index if shape == raw_shape else None
            arr = hdf5.hdf5_frames(path, key, outer_index=outer, block_bytes=block_bytes)[0]
    else:
        frames = open_source(path, key, block_bytes=block_bytes).frames
        arr = frames if frames.shape[0] > 1 else frames[0]
    idx = value.get("indices")
    if idx is not None:
        idx = np.asarray(idx)
        arr = arr[np.flatnonzero(idx) if idx.dtype == bool else idx]
    return arr
