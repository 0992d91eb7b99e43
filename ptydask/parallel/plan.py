"""Which rank owns which frames: ptypy's split applied to the Dask blocks of a Scan (no MPI needed).

A *piece* is the run of consecutive frames one rank receives from one Dask
block (ptypy's chunk). :func:`plan_pieces` deals every block out with one
:class:`~ptydask.parallel.split.FrameSplitter`, blocks in order, so the frame
sets are exactly those of ptypy's load manager (spec: ptyscan-semantics.md §6.2).
Pieces are numbered in frame order (block-major, then rank), skipping empty ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .split import FrameSplitter


@dataclass(frozen=True)
class Piece:
    """Frames ``start:stop`` (global frame numbers) of Dask block ``block``, owned by ``rank``.

    ``number`` is the piece's position among all non-empty pieces in frame
    order; ``offset`` is ``start`` minus the first frame of the block.
    """

    number: int
    block: int
    rank: int
    start: int
    stop: int
    offset: int

    @property
    def size(self) -> int:
        """Frames in the piece."""
        return self.stop - self.start


def plan_pieces(block_sizes: Sequence[int], ranks: int) -> list[Piece]:
    """Every non-empty piece of a scan with Dask blocks of ``block_sizes`` frames, for ``ranks`` ranks."""
    splitter = FrameSplitter(ranks)
    pieces: list[Piece] = []
    first = 0
    for b, size in enumerate(block_sizes):
        parts = splitter.split(range(first, first + int(size)))
        for r, frames in enumerate(parts):
            if len(frames):
                pieces.append(Piece(len(pieces), b, r, frames[0], frames[-1] + 1, frames[0] - first))
        first += int(size)
    return pieces


def own_pieces(pieces: Sequence[Piece], rank: int) -> list[Piece]:
    """The pieces of ``rank``, in frame order."""
    return [p for p in pieces if p.rank == rank]


def frames_of(pieces: Sequence[Piece]) -> np.ndarray:
    """Global frame numbers (int64) covered by ``pieces``, in their order."""
    if not pieces:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(p.start, p.stop, dtype=np.int64) for p in pieces])


def block_sizes_of(chunks: Sequence[int]) -> list[int]:
    """Plain ``int`` block sizes from Dask chunk sizes."""
    return [int(c) for c in chunks]
