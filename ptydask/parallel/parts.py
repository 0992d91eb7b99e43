"""Helpers of the MPI and distributed writers around the serial writer's file layout.

The layout itself (datasets, encoding, part files, master skeleton, finishing
renames) is :class:`ptydask.ptyd.layout.BlockWriter` and
:func:`ptydask.ptyd.layout.finalize`; a part written here holds the same
bytes as ``to_ptyd`` would write for the same frames.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from ..ptyd.layout import BlockWriter, remove
from ..ptyd.writer import _check_options, _Plan


def make_plan(scan: xr.Dataset, path: Path, save: str, chunk_format: str, *, compression: str | None,
              compression_level: int, shuffle: bool, frames_per_hdf5_chunk: int) -> _Plan:
    """The serial writer's plan (all checks of ``to_ptyd``: geometry, positions, options)."""
    options = _check_options(save, chunk_format, compression, compression_level, frames_per_hdf5_chunk)
    options["shuffle"] = bool(shuffle)
    return _Plan(scan, Path(path), save, chunk_format, options)


def make_writer(scan: xr.Dataset, path: Path, save: str, chunk_format: str, **options) -> BlockWriter:
    """The picklable :class:`BlockWriter` of ``to_ptyd``'s plan for ``scan`` (see :func:`make_plan`)."""
    return make_plan(scan, path, save, chunk_format, **options).writer


def remove_all(paths: list[Path]) -> None:
    """Delete ``paths`` that exist (clean-up after a failure)."""
    for p in paths:
        remove(Path(p))
