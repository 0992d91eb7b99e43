"""Raw sources: open detector frames (HDF5/NeXus/CXI, TIFF, CBF/EDF, SMV, DigitalMicrograph, Merlin MIB, Zarr,
numpy) as a lazy Scan.

One module per format (``hdf5_format``, ``tiff``, ``fabio_images``, ``smv``, ``dm``, ``mib``, ``npy``,
``npz``, ``zarr_store``), each registering a :class:`SourceFormat` with the registry
(:mod:`.registry`; third-party formats through the ``ptydask.sources`` entry-point group);
readers shared by formats (``hdf5``, ``nexus``, ``cxi``, ``images``, ``arrays``), plus ``positions``
(frame <-> scan-point mapping and selection), ``geometry`` (energy, distance, pixel size) and
``corrections`` (masks, dark, flat, monitor). :func:`open_frames` ties them together.
"""

from .api import SPEC_KEYS, open_frames
from .base import FileRef, Quantity, SourceData, SourceFormat
from .registry import detect, format_names, formats, register_format, reload_formats

__all__ = ["open_frames", "SPEC_KEYS", "SourceFormat", "SourceData", "Quantity", "FileRef", "register_format",
           "formats", "format_names", "detect", "reload_formats"]
