"""What a source format is (:class:`SourceFormat`) and what opening one gives (:class:`SourceData`).

A format module defines one :class:`SourceFormat` subclass and registers an
instance with :func:`ptydask.sources.registry.register_format`. Its ``open``
returns frames plus whatever the file knows besides them: positions, a mask,
dark/flat references and geometry as :class:`Quantity` values in ptydask's
units (energy keV, distance m, pixel size m), each saying where it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

import dask.array as da
import numpy as np

from ..errors import SourceError
from ._lazy import FrameReader
from .hdf5 import frame_layout

__all__ = ["UNITS", "Quantity", "FileRef", "SourceData", "SourceFormat", "FrameReader", "natural_key", "flatten",
           "stack_data"]

#: ptydask's unit of each geometry quantity.
UNITS = {"energy": "keV", "distance": "m", "psize": "m"}


@dataclass(frozen=True)
class Quantity:
    """One geometry value from a file.

    ``value`` in ptydask's unit (:data:`UNITS`; ``psize`` a (y, x) pair), ``origin`` the
    ``file:key`` (or header field) it was read from with its stored value and units;
    ``electron``: the value is an electron kinetic energy (keV), converted to the photon
    energy of the same wavelength when the Scan is built.
    """

    value: Any
    origin: str
    electron: bool = False


@dataclass(frozen=True)
class FileRef:
    """A dataset of a file: ``file``, ``key`` and (for masks) the mask ``kind`` (see ``corrections``)."""

    file: str
    key: Optional[str]
    kind: str = "valid"


@dataclass
class SourceData:
    """Frames of a source and what its files say besides them.

    ``frames`` (N, H, W) lazy; ``grid`` the scan grid ((N,) or (A, B)); ``raw_shape`` the shape as
    stored; ``format`` the format name; ``path``/``key`` the first file and the frames' key;
    ``ref_file`` the file that ``{key: ...}`` references default to (``None``: none);
    ``positions`` (N, 2) (y, x) metres with ``positions_from``; ``mask``/``dark``/``flat``
    file references; ``geometry`` ``{energy, distance, psize}`` -> :class:`Quantity`.
    """

    frames: da.Array
    grid: tuple[int, ...]
    raw_shape: tuple[int, ...]
    format: str
    path: Optional[str] = None
    key: Optional[str] = None
    ref_file: Optional[str] = None
    positions: Optional[np.ndarray] = None
    positions_from: Optional[str] = None
    mask: Optional[FileRef] = None
    dark: Optional[FileRef] = None
    flat: Optional[FileRef] = None
    geometry: dict[str, Quantity] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``file:key`` (or the file, or ``"frames"``) for messages."""
        if not self.path:
            return "frames"
        return f"{self.path}:{self.key}" if self.key else self.path


class SourceFormat:
    """One source format. Subclasses set the attributes and implement :meth:`open` (and :meth:`sniff`).

    Attributes
    ----------
    name : the name ``format=`` takes.
    suffixes : file-name endings (lower case) that suggest the format when its content says nothing.
    multi_file : a sequence of files (list, glob, folder) is one stack of frames.
    directory : the source is a folder (a store), not a folder of files.
    compressed : also read as ``.gz``/``.bz2``.
    """

    name: str = ""
    suffixes: tuple[str, ...] = ()
    multi_file: bool = False
    directory: bool = False
    compressed: bool = False

    def sniff(self, path: str, head: bytes) -> bool:
        """True when the content says the file (or folder) is of this format; ``head``: its first bytes."""
        return False

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        """Open ``paths`` (one file unless ``multi_file``) lazily: nothing beyond headers is read."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<SourceFormat {self.name!r} {' '.join(self.suffixes)}>"


def natural_key(path: str) -> list:
    """Sort key putting ``frame2`` before ``frame10`` (numbers compared as numbers)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def flatten(arr: da.Array, outer_index: Optional[int], where: str) -> tuple[da.Array, tuple[int, ...]]:
    """Apply ``outer_index`` and flatten a raster ``(A, B, H, W)`` to frames; returns (frames, grid)."""
    frame_layout(tuple(arr.shape), outer_index, where)
    if outer_index is not None:
        arr = arr[outer_index]
    lead = tuple(arr.shape[:-2])
    if arr.dtype.kind not in "biuf":
        raise SourceError(f"{where}: dtype {arr.dtype} is not a real numeric type")
    if len(lead) == 0:
        return arr[None], (1,)
    if len(lead) == 2:
        arr = arr.rechunk({1: -1}).reshape((lead[0] * lead[1],) + tuple(arr.shape[-2:]))
    return arr, lead


def stack_data(arr: da.Array, fmt: str, paths: list[str], key: Optional[str], outer_index: Optional[int],
               **known: Any) -> SourceData:
    """:class:`SourceData` of a stored stack ``arr`` (flattened by :func:`flatten`), ``known`` its other fields."""
    where = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    frames, grid = flatten(arr, outer_index, where if key is None else f"{where}:{key}")
    return SourceData(frames, grid, tuple(arr.shape), fmt, paths[0], key, **known)
