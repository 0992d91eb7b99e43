"""ptypy-style data packages from any Scan (spec: ptyscan-semantics.md §5, §6.2).

A package is what ptypy's ``PtyScan.auto()`` returns for one chunk of frames::

    {'common': meta (attribute access; the same object in every package),
     'chunk': {indices, indices_node, num, data: {index: frame}, weights: {index: frame},
               positions: (n, 2) metres (y, x) or a list of None},
     'iterable': [{'index', 'data', 'position', 'mask'}, ...]}

:func:`packages` cuts a Scan (prepared or raw) into chunks and computes the
frames block by block (:func:`ptydask.blocks.iter_blocks`), so memory stays
bounded by a few blocks. With an mpi4py communicator, the chunk's frames are
split between ranks exactly as ptypy's load manager does
(:class:`ptydask.parallel.split.FrameSplitter`) and every rank computes only
its own frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Optional

import dask.array as da
import numpy as np
import xarray as xr

from .blocks import block_ranges
from .errors import ParameterError
from .execution import Runner, resolve_runner
from .parallel.split import FrameSplitter
from .scan import meta_of, validate_scan


class AttrDict(dict):
    """A dict whose keys are also attributes (what ptypy's ``Param`` offers to consumers)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def copy(self) -> "AttrDict":
        return AttrDict(self)


def rank_and_size(comm: Any) -> tuple[int, int]:
    """(rank, number of ranks) of an mpi4py communicator, (0, 1) for ``None``."""
    if comm is None:
        return 0, 1
    return int(comm.Get_rank()), int(comm.Get_size())


def make_package(common: AttrDict, num: int, indices: Sequence[int], indices_node: Sequence[int],
                 data: dict[int, np.ndarray], weights: dict[int, np.ndarray], positions: Any) -> dict[str, Any]:
    """Assemble one ptypy data package.

    ``indices``: global indices of the chunk (all ranks); ``indices_node``: this
    rank's; ``data``/``weights``: 2-D (y, x) frames of this rank keyed by global
    index; ``positions``: (n, 2) metres for every chunk index, or ``None``
    (then a list of ``None``, as ptypy does for scans without positions).
    """
    indices = [int(i) for i in indices]
    if positions is None:
        pos_list: list[Any] = [None] * len(indices)
        positions = list(pos_list)
    else:
        positions = np.asarray(positions, dtype=np.float64).reshape(len(indices), 2)
        pos_list = list(positions)
    masks: dict[int, np.ndarray] = {}
    shared: dict[int, np.ndarray] = {}
    for i, w in weights.items():
        key = id(w)
        if key not in shared:  # one 2-D weight broadcast to all frames -> one mask
            shared[key] = np.asarray(w) > 0
        masks[i] = shared[key]
    iterable = [
        {"index": i, "data": data.get(i), "position": p, "mask": masks.get(i) if i in data else None}
        for i, p in zip(indices, pos_list)
    ]
    chunk = AttrDict(indices=indices, indices_node=[int(i) for i in indices_node], num=int(num),
                     data=data, weights=weights, positions=positions)
    return {"common": common, "chunk": chunk, "iterable": iterable}


def common_of(scan: xr.Dataset) -> AttrDict:
    """The package ``common``: the eight ptypy meta values of the Scan's stored frames."""
    return AttrDict(meta_of(scan))


def chunk_ranges(n: int, frames: Optional[int], block_chunks: Sequence[int]) -> list[tuple[int, int]]:
    """(start, stop) of each chunk: the Dask blocks (``frames=None``) or runs of ``frames`` frames."""
    if frames is None:
        return [r for r in block_ranges(block_chunks) if r[1] > r[0]]
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ParameterError(f"frames: expected None or an integer >= 1 (frames per package), got {frames!r}")
    return [(s, min(n, s + int(frames))) for s in range(0, n, int(frames))]


def _frame_arrays(scan: xr.Dataset) -> tuple[da.Array, Optional[da.Array], Optional[np.ndarray]]:
    data = scan["data"].data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(max(1, data.shape[0]), -1, -1))
    w3, w2 = None, None
    if "weights" in scan:
        if scan["weights"].ndim == 3:
            w3 = scan["weights"].data
            if not isinstance(w3, da.Array):
                w3 = da.from_array(np.asarray(w3), chunks=(data.chunks[0], -1, -1))
        else:
            w2 = np.asarray(scan["weights"].values)
    else:
        w2 = np.ones(data.shape[1:], dtype=np.float64)
    return data, w3, w2


def own_blocks(arrays: Sequence[da.Array], ranges: Sequence[tuple[int, int]], *,
               max_in_flight: Optional[int] = None,
               runner: Runner | str | None = None) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """Yield ``(k, blocks)`` for the frame ranges ``ranges`` of ``arrays``, in order.

    Only the tasks the ranges need are computed; at most ``max_in_flight``
    ranges (default 4) are under way or buffered at any time, on ``runner``
    (see :func:`ptydask.execution.resolve_runner`).
    """
    if not ranges:
        return
    runner = resolve_runner(runner)
    sizes = [b - a for a, b in ranges]
    picked = []
    for arr in arrays:
        parts = [arr[a:b] for a, b in ranges]
        picked.append(da.concatenate(parts, axis=0).rechunk({0: tuple(sizes)}))
    window = max(1, max_in_flight or 4)
    for first in range(0, len(ranges), window):
        todo = [k for k in range(first, min(len(ranges), first + window)) if sizes[k] > 0]
        done: dict[int, tuple[np.ndarray, ...]] = {}
        for k, result in runner.iter_blocks(picked, blocks=todo, max_in_flight=window):
            done[k] = result
        for k in range(first, min(len(ranges), first + window)):
            if sizes[k] == 0:
                yield k, tuple(np.zeros((0,) + a.shape[1:], a.dtype) for a in picked)
            else:
                yield k, done.pop(k)


def packages(scan: xr.Dataset, frames: Optional[int] = None, comm: Any = None, *,
             max_in_flight: Optional[int] = None, runner: Runner | str | None = None) -> Iterator[dict[str, Any]]:
    """Yield ptypy data packages of ``scan``, one per chunk, computing frames block by block.

    Parameters
    ----------
    scan : a Scan (raw or prepared); ``weights`` 2-D or per frame.
    frames : frames per package; ``None`` = one package per Dask block of ``scan['data']``.
    comm : an mpi4py communicator; each rank then gets ``indices_node``, ``data`` and
        ``weights`` for its own frames only (ptypy's split, state kept across chunks)
        and computes only those. ``None`` = one process holding every frame.
    max_in_flight : blocks computed at once.
    runner : where the blocks are computed (:func:`ptydask.execution.resolve_runner`; default: the
        ``ptydask.runner`` setting).

    ``chunk.num`` counts packages from 0; ``common`` is the same object in every package.
    """
    scan = validate_scan(scan)
    runner = resolve_runner(runner)
    rank, size = rank_and_size(comm)
    data, w3, w2 = _frame_arrays(scan)
    n = int(data.shape[0])
    chunks = chunk_ranges(n, frames, data.chunks[0])
    indices = np.asarray(scan["indices"].values, dtype=np.int64) if "indices" in scan else np.arange(n)
    positions = np.asarray(scan["positions"].values, dtype=np.float64) if "positions" in scan else None
    splitter = FrameSplitter(size)
    own: list[tuple[int, int]] = []
    for a, b in chunks:
        parts = splitter.split(list(range(a, b)))
        mine = parts[rank]
        own.append((mine[0], mine[-1] + 1) if mine else (a, a))
    common = common_of(scan)
    arrays = [data] + ([w3] if w3 is not None else [])
    for k, blocks in own_blocks(arrays, own, max_in_flight=max_in_flight, runner=runner):
        (a, b), (s, e) = chunks[k], own[k]
        node = [int(i) for i in indices[s:e]]
        frames_d = {i: blocks[0][j] for j, i in enumerate(node)}
        if w3 is not None:
            weights_d = {i: blocks[1][j] for j, i in enumerate(node)}
        else:
            weights_d = {i: w2 for i in node}
        yield make_package(common, k, indices[a:b], node, frames_d, weights_d,
                           None if positions is None else positions[a:b])


__all__ = ["AttrDict", "packages", "make_package", "common_of", "own_blocks", "chunk_ranges", "rank_and_size"]
