"""Shared HDF5 access for the sources and the ``.ptyd`` reader.

``hdf5``      open read-only with the heap guard (:func:`open_hdf5`), HDF5 failures as one-line errors;
``links``     the link policy applied to every object read (:class:`LinkPolicy`, :func:`external_links`);
``heap``      the guard against global heaps that hang HDF5;
``fastread``  reads of frames at their stored offsets (mapped, ``preadv``, raw chunks decoded in a pool).
"""

from .hdf5 import HDF5_FAILURES, hdf5_guard, is_hdf5, open_hdf5
from .heap import heap_problem
from .links import ALLOW_EXTERNAL, LinkPolicy, external_links, members

__all__ = ["open_hdf5", "is_hdf5", "hdf5_guard", "HDF5_FAILURES", "heap_problem", "LinkPolicy",
           "external_links", "ALLOW_EXTERNAL", "members"]
