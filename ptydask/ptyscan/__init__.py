"""A ptypy-compatible ``PtyScan`` on top of ptydask's lazy pipeline (spec: ptyscan-semantics.md §1-§6).

- :mod:`.params`: the ``scan.data`` parameters, their defaults and validation;
- :mod:`.core`: :class:`PtyScan` (ptypy's hooks, ``initialize``, ``auto``, packages, saving);
- :mod:`.readers`: :class:`ScanPtyScan` (an existing lazy Scan) and :class:`PtydScan` (a ``.ptyd``);
- :mod:`.hdf5loader`: :class:`Hdf5Loader` (ptypy's generic loader and its parameter tree).
"""

from .core import PtyScan
from .hdf5loader import Hdf5Loader
from .params import EOS, PREPARE_OPTIONS, PTYSCAN_DEFAULTS, WAIT, Param, check_params, parse_defaults
from .readers import PtydScan, ScanPtyScan

__all__ = ["PtyScan", "ScanPtyScan", "PtydScan", "Hdf5Loader", "WAIT", "EOS", "Param", "PTYSCAN_DEFAULTS", "PREPARE_OPTIONS",
           "parse_defaults", "check_params"]
