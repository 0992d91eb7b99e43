"""The ``.npz`` format: one member (``key``) of a NumPy archive, loaded into memory."""

from __future__ import annotations

from typing import Optional

from .arrays import memory_frames, npz_member
from .base import SourceData, SourceFormat, stack_data
from .registry import register_format


class NpzFormat(SourceFormat):
    """NumPy ``.npz`` archives (zip files; recognised by suffix, as any zip could be one)."""

    name = "npz"
    suffixes = (".npz",)

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        arr = memory_frames(npz_member(paths[0], key), block_bytes)
        return stack_data(arr, self.name, paths, key, outer_index)


register_format(NpzFormat)
