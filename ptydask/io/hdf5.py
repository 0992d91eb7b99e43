"""Opening HDF5 files: read-only, with the heap guard, and HDF5 failures turned into one-line errors."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

import h5py

from ..errors import PtydaskError, SourceError
from .heap import heap_problem

try:  # registers bitshuffle, LZ4, Blosc, Zstd, ... with HDF5 when installed
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - optional dependency
    pass

#: What h5py raises for a damaged file (besides OSError): bad B-tree or heap addresses surface as
#: KeyError/RuntimeError/ValueError from deep inside HDF5.
HDF5_FAILURES = (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError, UnicodeDecodeError)

#: The first bytes of every HDF5 file (at offset 0, 512, 1024, ... when a user block precedes it).
SIGNATURE = b"\x89HDF\r\n\x1a\n"

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


def open_hdf5(path: str, error: type = SourceError, unreadable: str = "{path}: cannot be opened as HDF5 ({exc})",
              **kwargs: Any) -> h5py.File:
    """Open ``path`` read-only as HDF5 (``kwargs``: h5py's, e.g. ``swmr=True``).

    Raises ``error`` (a :class:`~ptydask.errors.PtydaskError`) naming the file when it is missing,
    not HDF5 (message ``unreadable``, formatted with ``path`` and ``exc``), or holds a global heap
    that would hang HDF5 (:func:`~ptydask.io.heap.heap_problem`).
    """
    if not os.path.exists(path):
        raise error(f"{path}: no such file")
    if os.path.isdir(path):
        raise error(f"{path}: is a directory, not an HDF5 file")
    try:
        f = h5py.File(path, "r", **kwargs)
    except OSError as exc:
        raise error(unreadable.format(path=path, exc=exc)) from None
    try:
        problem = heap_problem(f)
    except HDF5_FAILURES as exc:  # the metadata walk fails on a damaged file
        f.close()
        raise error(f"{path}: damaged or unreadable HDF5 file: {type(exc).__name__}: {exc}") from exc
    if problem:
        f.close()
        raise error(problem)
    return f


def is_hdf5(path: str) -> bool:
    """True when ``path`` is a file with the HDF5 signature (by content, not by name)."""
    try:
        return os.path.isfile(path) and bool(h5py.is_hdf5(path))
    except OSError:
        return False
