"""The Reduction type: a quantity over ALL frames as per-block partial -> merge -> result.

A :class:`Reduction` is computed the same way wherever the blocks are: as a lazy tree of
``dask.delayed`` merges (threads, a distributed cluster: :meth:`Reduction.lazy`), folded as the
blocks arrive in any order during a pass that also writes them (:meth:`Reduction.stream`, the
one-read preparation), or merged over the parts of MPI ranks (:meth:`Reduction.across`). The
groups and their order are the same in each, so the results are identical (see LiberTEM's UDF
``process``/``merge`` and dask's ``reduction(chunk, combine, aggregate, split_every)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from . import compiled


def tree(fold: Callable[[list], Any], parts: list, split_every: int = 8) -> Any:
    """``fold`` over delayed ``parts``, ``split_every`` at a time, level by level (block order kept)."""
    while len(parts) > 1:
        parts = [dask.delayed(fold)(parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def fold_stats(parts: list[np.ndarray]) -> np.ndarray:
    """Combine (2, H, W) partials of ``compiled.pixel_stats``: maximum (NaN propagates) and sum, in order."""
    out = parts[0].copy()
    for p in parts[1:]:
        np.maximum(out[0], p[0], out=out[0])
        np.add(out[1], p[1], out=out[1])
    return out


class TreeFold:
    """``tree(fold, parts, split_every)`` computed as the parts arrive, in any order: each group is folded
    as soon as it is complete, so at most a few groups per level are held, and the result is the
    same as the lazy tree's (same groups, same order). Thread-safe."""

    def __init__(self, fold: Callable[[list], Any], n: int, split_every: int = 8):
        self.fold, self.k = fold, split_every
        self.sizes = [n]
        while self.sizes[-1] > 1:
            self.sizes.append(-(-self.sizes[-1] // split_every))
        self.pending: list[dict[int, Any]] = [{} for _ in self.sizes]
        self.result: Any = None
        self._lock = threading.Lock()

    def add(self, i: int, part: Any) -> None:
        """Part ``i`` (0 <= i < n) of the bottom level."""
        with self._lock:
            self._add(0, i, part)

    def _add(self, level: int, i: int, part: Any) -> None:
        if self.sizes[level] == 1:
            self.result = part
            return
        pending = self.pending[level]
        pending[i] = part
        lo = (i // self.k) * self.k
        hi = min(lo + self.k, self.sizes[level])
        if all(j in pending for j in range(lo, hi)):
            self._add(level + 1, i // self.k, self.fold([pending.pop(j) for j in range(lo, hi)]))




@dataclass(frozen=True)
class Reduction:
    """A quantity over all frames: ``partial`` of each block of raw frames (n, H, W), ``merge`` of a
    list of partials in block order (associative), ``split_every`` partials per merge."""

    name: str
    partial: Callable[[np.ndarray], Any]
    merge: Callable[[list], Any]
    split_every: int = 8

    def lazy(self, frames: da.Array) -> Any:
        """The merged partials of every block of ``frames``, lazily (one ``dask.delayed`` tree)."""
        return self.tree([dask.delayed(self.partial)(block) for block in frames.to_delayed().ravel()])

    def tree(self, parts: list) -> Any:
        """The lazy merge tree of delayed ``parts`` (block order kept)."""
        return tree(self.merge, parts, self.split_every)

    def stream(self, n: int) -> "TreeFold":
        """A fold of ``n`` partials added as they come (any order, any thread): the tree's result."""
        return TreeFold(self.merge, n, self.split_every)

    def across(self, parts: Sequence[Any]) -> Any:
        """The merge of the ranks' results (rank order: the ranks hold consecutive blocks)."""
        return self.merge(list(parts))


#: Per-pixel maximum (NaN propagates) and sum over all frames, (2, H, W) float64 (``compiled.pixel_stats``,
#: exact: maxima, and sums of integers below 2**53).
PIXEL_STATS = Reduction("per-pixel maximum and sum", compiled.pixel_stats, fold_stats)

__all__ = ["Reduction", "PIXEL_STATS", "TreeFold", "tree", "fold_stats"]
