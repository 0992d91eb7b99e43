"""Image formats read by fabio: CBF, EDF, MAR CCD, Bruker, ... (also ``.bz2``/``.gz``), in natural file order.

Content tests cover CBF (``###CBF``) and EDF (a ``{`` header with ``EDF_`` keys);
other fabio formats are recognised by their suffix. SMV/d*TREK files have a
module of their own (:mod:`.smv`, with their geometry).
"""

from __future__ import annotations

from typing import Optional

from .base import SourceData, SourceFormat, stack_data
from .images import fabio_frames
from .registry import register_format


class FabioFormat(SourceFormat):
    """Files fabio reads (``.cbf .edf .img .mccd .sfrm``, compressed too)."""

    name = "fabio"
    suffixes = (".cbf", ".edf", ".img", ".mccd", ".sfrm")
    multi_file = True
    compressed = True

    def sniff(self, path: str, head: bytes) -> bool:
        return head.startswith(b"###CBF") or (head.startswith(b"{") and b"EDF_" in head)

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        return stack_data(fabio_frames(paths, block_bytes), self.name, paths, key, outer_index)


register_format(FabioFormat)
