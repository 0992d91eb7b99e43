"""The HDF5 format: plain datasets, CXI files and NeXus/DECTRIS layouts, told apart by their structure.

An explicit ``key`` always names the frames (a dataset, or a group searched by
NeXus conventions); without one, a CXI layout (``cxi_version`` or frames at a
CXI place) gives the frames and the file's positions, mask and geometry, and
otherwise NeXus/DECTRIS conventions find them (:mod:`.nexus`).
"""

from __future__ import annotations

import os
from typing import Optional

import dask.array as da

from ..errors import SourceError
from ..io.hdf5 import is_hdf5
from . import cxi, hdf5, nexus
from .base import FileRef, SourceData, SourceFormat
from .registry import register_format


class Hdf5Format(SourceFormat):
    """HDF5 files (``.h5 .hdf5 .nxs .cxi`` ...), recognised by the HDF5 signature."""

    name = "hdf5"
    suffixes = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5", ".nx", ".cxi")

    def sniff(self, path: str, head: bytes) -> bool:
        return is_hdf5(path)

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        path = paths[0]
        key = key.strip("/") if key and key.strip("/") else None
        info = cxi.read_cxi(path, frames_key=key) if cxi.is_cxi(path) else None
        if info is not None:
            keys, kind = [info["frames_key"]], "cxi"
        else:
            keys = nexus.find_frames(path, key)
            kind = "nexus" if len(keys) > 1 or keys[0] != (key or "") else "hdf5"
        parts = [hdf5.hdf5_frames(path, k, outer_index=outer_index, block_bytes=block_bytes) for k in keys]
        if len(parts) == 1:
            frames, grid, raw_shape = parts[0]
        else:
            shapes = {p[0].shape[1:] for p in parts}
            if len(shapes) > 1:
                raise SourceError(f"{path}: the linked data files {keys} hold frames of different shapes {sorted(shapes)}")
            frames = da.concatenate([p[0] for p in parts], axis=0)
            grid, raw_shape = (frames.shape[0],), tuple(frames.shape)
        data = SourceData(frames, grid, raw_shape, kind, path, keys[0] if len(keys) == 1 else os.path.dirname(keys[0]),
                          ref_file=path)
        if info is not None:
            data.positions, data.positions_from = info.get("positions"), info.get("positions_key")
            data.geometry = info["geometry"]
            if info.get("mask_key"):
                data.mask = FileRef(path, info["mask_key"], "bad")
        else:
            pm = nexus.find_pixel_mask(path, keys[0])
            if pm is not None:
                data.mask = FileRef(path, pm, "nexus")
        return data


register_format(Hdf5Format)
