"""The TIFF format (tifffile): pages of one or several files are frames, in natural file order."""

from __future__ import annotations

from typing import Optional

from .base import SourceData, SourceFormat, stack_data
from .images import tiff_frames
from .registry import register_format

MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, both byte orders


class TiffFormat(SourceFormat):
    """Multi-page TIFF files (``.tif .tiff``), recognised by the TIFF byte-order mark."""

    name = "tiff"
    suffixes = (".tif", ".tiff")
    multi_file = True

    def sniff(self, path: str, head: bytes) -> bool:
        return head[:4] in MAGIC

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        return stack_data(tiff_frames(paths, block_bytes), self.name, paths, key, outer_index)


register_format(TiffFormat)
