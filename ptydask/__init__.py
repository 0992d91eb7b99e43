"""ptydask: lazy, out-of-core preparation of ptychography data into ptypy's ``.ptyd`` format.

Data flow: sources -> Scan (lazy ``xarray.Dataset``) -> steps -> sinks.
"""

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
from .scan import META_KEYS, frames_expected, frames_present, from_arrays, is_complete, meta_of, validate_scan
from .ptyd import open_ptyd, to_ptyd
from .live import GrowingHdf5, LiveScan, TiffFolder, follow
from .packages import packages
from .parallel import connect, prepare_mpi, split_scan, to_ptyd_distributed, to_ptyd_mpi
from .ptyscan import EOS, WAIT, PtydScan, PtyScan, ScanPtyScan
from .sources import open_frames
from .steps import prepare
from .onepass import prepare_to_ptyd

__version__ = "0.1.0"

__all__ = [
    "open_frames",
    "prepare",
    "prepare_to_ptyd",
    "from_arrays",
    "PtyScan",
    "PtydScan",
    "ScanPtyScan",
    "WAIT",
    "EOS",
    "packages",
    "LiveScan",
    "GrowingHdf5",
    "TiffFolder",
    "follow",
    "split_scan",
    "prepare_mpi",
    "to_ptyd_mpi",
    "to_ptyd_distributed",
    "connect",
    "to_ptyd",
    "open_ptyd",
    "frames_present",
    "frames_expected",
    "is_complete",
    "meta_of",
    "validate_scan",
    "META_KEYS",
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
