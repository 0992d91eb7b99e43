"""The options of every ``.ptyd`` writer, validated once (serial, distributed, MPI and live strategies).

:class:`WriteOptions` holds one default per option and checks every value when
it is built; the writers take it (or the same keywords) and never re-check.
:func:`check_output` is the one check of an output path before a write starts.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..params.registry import SAVE_MODES
from ..errors import OutputError, OutputExistsError, ParameterError

__all__ = ["SAVE_MODES", "WriteOptions", "check_output"]

#: The one integer field a ``chunk_format`` may hold (``%d``, ``%03d``, ``%2i``): no ``%c``, no huge widths.
_FIELD = re.compile(r"%0?[1-9]?[0-9]?[diu]")

#: How the frames are stored: a group per block, a part file per block, or one group.


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


@dataclass(frozen=True)
class WriteOptions:
    """How a ``.ptyd`` is written (checked when built: a bad value raises :class:`ParameterError`).

    Parameters
    ----------
    save : ``"append"`` (one ``chunks/<n>`` group per Dask block), ``"link"`` (one part
        file per block, ``<file name><chunk_format % n>`` beside the master, linked by
        bare name) or ``"merge"`` (a single chunk group).
    chunk_format : printf pattern of the part-file suffix (``link``).
    compression : ``"gzip"`` (readable by any h5py/ptypy) or ``None``.
    compression_level : gzip level 0-9.
    shuffle : byte-shuffle before gzip.
    frames_per_hdf5_chunk : frames per HDF5 chunk (whole frames, never split).
    max_in_flight : blocks computed at once; ``None``: the runner's choice (config
        ``ptydask.max-in-flight``, else CPU count + 1 on threads, 2 per worker on a
        cluster, 2 per MPI rank).
    """

    save: str = "append"
    chunk_format: str = ".chunk%02d"
    compression: str | None = "gzip"
    compression_level: int = 1
    shuffle: bool = True
    frames_per_hdf5_chunk: int = 1
    max_in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.save not in SAVE_MODES:
            raise ParameterError(f"save: expected one of {', '.join(map(repr, SAVE_MODES))}, got {self.save!r}")
        fmt = self.chunk_format
        if not isinstance(fmt, str) or len(_FIELD.findall(fmt.replace("%%", ""))) != 1 \
                or "%" in _FIELD.sub("", fmt.replace("%%", "")):
            raise ParameterError(
                f"chunk_format: expected a printf pattern with one integer field (%d, %02d, ... width up to 2 "
                f"digits) such as '.chunk%02d', got {fmt!r}")
        first, second = fmt % 0, fmt % 1
        if "/" in first or os.sep in first or first == second:
            raise ParameterError(f"chunk_format: {fmt!r} must give distinct bare file-name suffixes")
        if not first.isprintable():
            raise ParameterError(f"chunk_format: {fmt!r} must give printable file-name suffixes")
        if self.compression not in (None, "gzip"):
            raise ParameterError(f"compression: expected 'gzip' or None, got {self.compression!r} "
                                 "(files for ptypy must use filters built into h5py)")
        level = self.compression_level
        if not _is_int(level) or not 0 <= level <= 9:
            raise ParameterError(f"compression_level: expected an integer 0-9, got {level!r}")
        k = self.frames_per_hdf5_chunk
        if not _is_int(k) or k < 1:
            raise ParameterError(f"frames_per_hdf5_chunk: expected an integer >= 1, got {k!r}")
        m = self.max_in_flight
        if m is not None and (not _is_int(m) or m < 1):
            raise ParameterError(f"max_in_flight: expected an integer >= 1 or None, got {m!r}")
        object.__setattr__(self, "compression_level", int(level))
        object.__setattr__(self, "frames_per_hdf5_chunk", int(k))
        object.__setattr__(self, "shuffle", bool(self.shuffle))

    @classmethod
    def of(cls, options: WriteOptions | None = None, **given: Any) -> WriteOptions:
        """``options`` (default: all defaults) with the keywords ``given`` that are not ``None`` replaced
        (``compression=None`` is a value, so it is always taken when given)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ParameterError(f"{unknown[0]}: not a write option (expected one of {', '.join(sorted(known))})")
        base = options if options is not None else cls()
        changes = {k: v for k, v in given.items() if v is not None or k == "compression"}
        return replace(base, **changes) if changes else base

    def as_dict(self) -> dict[str, Any]:
        """The options as keywords (e.g. for a log line or a recipe)."""
        return asdict(self)


def check_output(path: Path, overwrite: bool) -> None:
    """:class:`OutputError` when ``path`` cannot be written (a folder, not writable, exists without
    ``overwrite``); creates the parent folder."""
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give the path of the file to write")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True (CLI: --overwrite) to replace it")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the output folder {parent}: {exc.strerror or exc}") from exc
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: the folder {parent} is not writable")
    try:
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        limit = 255
    longest = len(os.fsencode(path.name)) + len(".incomplete") + 16  # + a part suffix, e.g. ".chunk0123"
    if longest > limit:
        raise OutputError(f"{path}: the file name has {len(os.fsencode(path.name))} bytes; with the "
                          f"suffixes ptydask adds while writing it must stay under {limit - 27} on this file system")
