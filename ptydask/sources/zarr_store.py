"""The Zarr format: an array (``key`` inside a group) of a store folder, read by whole Zarr chunks."""

from __future__ import annotations

import os
from typing import Optional

from .arrays import zarr_frames
from .base import SourceData, SourceFormat, stack_data
from .registry import register_format

MARKERS = (".zarray", ".zgroup", "zarr.json")


class ZarrFormat(SourceFormat):
    """Zarr v2/v3 stores (folders holding ``.zarray``, ``.zgroup`` or ``zarr.json``)."""

    name = "zarr"
    suffixes = (".zarr",)
    directory = True

    def sniff(self, path: str, head: bytes) -> bool:
        return os.path.isdir(path) and any(os.path.exists(os.path.join(path, m)) for m in MARKERS)

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        arr, _ = zarr_frames(paths[0], key, block_bytes)
        return stack_data(arr, self.name, paths, key, outer_index)


register_format(ZarrFormat)
