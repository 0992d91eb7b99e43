"""Preprocessing steps: ptypy's ``PtyScan`` preparation as lazy, blockwise Dask work.

``prepare(scan, ...)`` is the public entry point; ``kernels`` holds the numpy
functions it maps over blocks of frames.
"""

from .pipeline import prepare

__all__ = ["prepare"]
