"""Frame-to-rank assignment exactly as ptypy's load manager does it (spec: ptyscan-semantics.md §6.2).

Each chunk of frames is dealt out in contiguous runs, in rank order, balanced
against the number of frames every rank has *already* received. The state
persists across chunks, so every rank must apply the same sequence of chunks.
Unlike ptypy (one global manager per process), the state lives in a
:class:`FrameSplitter` object per scan.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_counts(loads: Sequence[int], n: int) -> list[int]:
    """How many of ``n`` new frames each rank gets, given the frames ``loads`` it holds already.

    Ranks whose load is at or above the new average get none; the others are
    brought towards it, and the remainder goes to the highest-numbered eligible ranks.
    """
    if n < 0:
        raise ValueError(f"n: expected frames >= 0, got {n}")
    ranks = len(loads)
    if ranks < 1:
        raise ValueError("loads: expected at least one rank")
    total = sum(loads) + n
    eligible = [r for r in range(ranks) if loads[r] * ranks < total]
    k = len(eligible)
    counts = [0] * ranks
    if k == 0 or n == 0:
        return counts
    share = sum(loads[r] for r in eligible) + n
    quota = {r: share - k * loads[r] for r in eligible}
    for r in eligible:
        counts[r] = quota[r] // k
    extra = sum(q % k for q in quota.values()) // k
    for r in eligible[len(eligible) - extra :] if extra else []:
        counts[r] += 1
    return counts


class FrameSplitter:
    """Stateful splitter for ``ranks`` processes: ``split(indices)`` -> one list of indices per rank."""

    def __init__(self, ranks: int):
        if ranks < 1:
            raise ValueError(f"ranks: expected >= 1, got {ranks}")
        self.loads = [0] * ranks

    def __eq__(self, other: object) -> bool:  # same state = equal (a PtyScan's __dict__ compares after pickling)
        return isinstance(other, FrameSplitter) and other.loads == self.loads

    __hash__ = None  # type: ignore[assignment]

    @property
    def ranks(self) -> int:
        return len(self.loads)

    def split(self, indices: Sequence[int]) -> list[list[int]]:
        """Deal ``indices`` (one chunk, in order) out to the ranks; update the loads."""
        counts = split_counts(self.loads, len(indices))
        out, start = [], 0
        for r, c in enumerate(counts):
            out.append(list(indices[start : start + c]))
            start += c
            self.loads[r] += c
        return out
