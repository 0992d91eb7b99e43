"""The ``.npy`` format: one array, memory-mapped in every read (never unpickled)."""

from __future__ import annotations

from typing import Optional

from .arrays import npy_frames
from .base import SourceData, SourceFormat
from .registry import register_format


class NpyFormat(SourceFormat):
    """NumPy ``.npy`` files, recognised by the ``\\x93NUMPY`` magic."""

    name = "npy"
    suffixes = (".npy",)

    def sniff(self, path: str, head: bytes) -> bool:
        return head.startswith(b"\x93NUMPY")

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        frames, grid, raw_shape = npy_frames(paths[0], outer_index, block_bytes)
        return SourceData(frames, grid, raw_shape, self.name, paths[0], key)


register_format(NpyFormat)
