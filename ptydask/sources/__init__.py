"""Raw sources: open detector frames (HDF5/NeXus/CXI, TIFF, CBF/EDF, Merlin MIB, Zarr, numpy) as a lazy Scan.

One module per format family (``hdf5``, ``nexus``, ``cxi``, ``images``, ``mib``,
``arrays``), plus ``positions`` (frame <-> scan-point mapping and selection),
``geometry`` (energy, distance, pixel size) and ``corrections`` (masks, dark,
flat, monitor). :func:`open_frames` ties them together.
"""

from .api import SPEC_KEYS, open_frames
from .formats import FORMATS

__all__ = ["open_frames", "SPEC_KEYS", "FORMATS"]
