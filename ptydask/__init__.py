"""ptydask: lazy, out-of-core preparation of ptychography data into ptypy's ``.ptyd`` format.

Data flow: sources -> Scan (lazy ``xarray.Dataset``) -> steps -> sinks.

The public names are imported on first use (``ptydask.prepare`` imports the
steps, and with them dask and numba, when it is first looked up), so that
``import ptydask.errors`` or the command line's ``--help`` load no heavy library.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from .errors import (
    FormatError,
    GeometryError,
    OutputError,
    OutputExistsError,
    ParameterError,
    PtydaskError,
    RecipeError,
    ScanError,
    SourceError,
)

from .version import __version__

#: Public name -> the submodule that defines it, imported when the name is first looked up.
LAZY = {
    "open_frames": "sources",
    "prepare": "steps",
    "prepare_to_ptyd": "onepass",
    "from_arrays": "scan",
    "PtyScan": "ptyscan",
    "PtydScan": "ptyscan",
    "ScanPtyScan": "ptyscan",
    "WAIT": "ptyscan",
    "EOS": "ptyscan",
    "packages": "packages",
    "LiveScan": "live",
    "GrowingHdf5": "live",
    "TiffFolder": "live",
    "follow": "live",
    "split_scan": "parallel",
    "prepare_mpi": "parallel",
    "to_ptyd_mpi": "parallel",
    "to_ptyd_distributed": "parallel",
    "connect": "parallel",
    "to_ptyd": "ptyd",
    "open_ptyd": "ptyd",
    "WriteOptions": "ptyd",
    "to_cxi": "sinks",
    "Hdf5Loader": "ptyscan",
    "frames_present": "scan",
    "frames_expected": "scan",
    "is_complete": "scan",
    "meta_of": "scan",
    "validate_scan": "scan",
    "META_KEYS": "scan",
}

__all__ = [
    *LAZY,
    "PtydaskError",
    "ParameterError",
    "ScanError",
    "GeometryError",
    "FormatError",
    "SourceError",
    "RecipeError",
    "OutputError",
    "OutputExistsError",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines the public ``name`` and return it."""
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])


class _Package(types.ModuleType):
    """The package module: importing the submodule ``ptydask.packages`` must not hide the function
    ``ptydask.packages`` of the same name (Python binds a submodule as an attribute of its package)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in LAZY and isinstance(value, types.ModuleType) and LAZY[name] == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
