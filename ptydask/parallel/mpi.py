"""MPI: give every rank a Scan of only its own frames (ptypy's split, spec: ptyscan-semantics.md §6).

``split_scan(scan, comm)`` is collective: every rank passes the same lazy
Scan (building one reads no frames) and gets back a *local* Scan holding only
the frames :func:`~ptydask.parallel.plan.plan_pieces` assigns to it — one
Dask block per piece, in frame order. ``local.attrs["parallel"]`` records the
split (``rank``, ``ranks``, the global ``blocks`` sizes, ``frames``,
``load_parallel``) so that :func:`~ptydask.parallel.mpi_write.to_ptyd_mpi`
and :func:`~ptydask.parallel.measure.prepare_mpi` can put the pieces back in place.

``load_parallel`` (ptypy's parameter):

========== =============================================== =============================================
value      frames (3-D per-frame variables)                small variables (positions, indices, 2-D
                                                           weights/dark/flat, monitor) if still lazy
========== =============================================== =============================================
``'data'`` each rank reads its own frames                  rank 0 evaluates, then broadcasts
``'all'``  each rank reads its own frames                  every rank evaluates
``'common'`` rank 0 reads, sends each rank its own pieces  every rank evaluates
``None``   rank 0 reads, sends each rank its own pieces    rank 0 evaluates, then broadcasts
========== =============================================== =============================================

With ``'data'``/``'all'`` the local Scan stays lazy and reads only its own
frames: a frame variable that is a plain ``from_array`` of a sliceable source
(every ptydask raw source, h5py datasets, numpy) is rebuilt over just the
rank's frame ranges. Any other Dask graph (e.g. frames already selected or
processed) is sliced instead, which reads whole source blocks; a
:class:`ParallelReadWarning` says so — split the raw Scan, then prepare.
With ``'common'``/``None`` rank 0 reads one block at a time and sends every
piece point to point (never a broadcast: traffic = the frames, not ranks x
frames; ptypy broadcasts whole chunks); each rank then holds its own frames
in memory, as in ptypy.

Importing this module does not import ``mpi4py``; ``comm`` is any mpi4py
communicator (``MPI.COMM_WORLD``). Every collective call duplicates it, so
its messages never mix with the caller's.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..blocks import iter_blocks
from ..errors import ParameterError, SourceError
from ..scan import validate_scan
from .plan import Piece, block_sizes_of, frames_of, own_pieces, plan_pieces

LOAD_PARALLEL = ("data", "all", "common", None)
TAG_FRAMES = 21

#: keys of ``local.attrs["parallel"]``
PARALLEL_ATTR = "parallel"


class SplitError(SourceError):
    """Another rank failed to read what this rank needs to build its part of the Scan."""


class ParallelReadWarning(UserWarning):
    """A rank's frames could not be read on their own; whole source blocks are read."""


def check_load_parallel(value: Any) -> str | None:
    """Normalise ``load_parallel`` (``'none'`` = ``None``); :class:`ParameterError` otherwise."""
    if isinstance(value, str) and value.lower() == "none":
        return None
    if value not in LOAD_PARALLEL:
        raise ParameterError(f"load_parallel: expected one of 'data', 'all', 'common' or None, got {value!r}")
    return value


def split_scan(scan: xr.Dataset, comm: Any, load_parallel: str | None = "data") -> xr.Dataset:
    """This rank's part of ``scan`` (collective: call on every rank with the same Scan).

    Returns a Scan with the rank's frames in frame order, one Dask block per
    piece (frames of one global block); per-frame variables are cut alike,
    other variables and all attrs are kept. ``attrs["parallel"]`` describes the split.
    """
    scan = validate_scan(scan)
    mode = check_load_parallel(load_parallel)
    if is_local(scan):
        raise ParameterError("split_scan: the scan is already one rank's part (attrs['parallel'] is set)")
    comm = comm.Dup()
    try:
        rank, ranks = comm.Get_rank(), comm.Get_size()
        blocks = block_sizes_of(_frame_chunks(scan))
        pieces = plan_pieces(blocks, ranks)
        mine = own_pieces(pieces, rank)
        own = frames_of(mine)
        big = [name for name, v in scan.data_vars.items() if v.dims[:1] == ("frame",) and v.ndim == 3]
        small = _small_values(scan, [n for n in scan.variables if n not in big and n not in scan.dims], comm, mode)
        local: dict[str, Any] = {}
        if mode in ("data", "all"):
            for name in big:
                local[name] = own_frames(_as_frame_dask(scan[name].data, blocks), mine, rank)
        else:
            received, error = {}, None
            try:
                received = _scatter_frames(scan, big, pieces, comm)
            except Exception as exc:  # noqa: BLE001 - every rank learns of it, then raises
                error = exc
            failed = [(r, e) for r, e in enumerate(comm.allgather(None if error is None else repr(error))) if e]
            if error is not None:
                raise error
            if failed:
                raise SplitError("; ".join(f"rank {r}: {e}" for r, e in failed))
            for name in big:
                arr = received[name]
                local[name] = da.from_array(arr, chunks=(tuple(p.size for p in mine) or (0,),) + arr.shape[1:])
    finally:
        comm.Free()
    out_vars = {}
    for name, v in scan.variables.items():
        if name in scan.dims and name not in scan.data_vars:
            continue
        if name in local:
            out_vars[name] = (v.dims, local[name])
        else:
            value = small[name]
            out_vars[name] = (v.dims, value[own] if v.dims[:1] == ("frame",) else value)
    coords = {c: scan.coords[c].values for c in scan.coords if "frame" not in scan.coords[c].dims}
    out = xr.Dataset({k: v for k, v in out_vars.items() if k not in coords}, coords=coords)
    out.attrs = dict(scan.attrs)
    out.attrs["info"] = dict(scan.attrs.get("info") or {})
    out.attrs[PARALLEL_ATTR] = {
        "rank": rank, "ranks": ranks, "blocks": blocks, "frames": int(sum(blocks)), "load_parallel": mode,
    }
    return out


def is_local(scan: xr.Dataset) -> bool:
    """True for a Scan returned by :func:`split_scan` (one rank's part)."""
    return isinstance(scan.attrs.get(PARALLEL_ATTR), dict)


def local_pieces(local: xr.Dataset, *, everyone: bool = False) -> list[Piece]:
    """The pieces held by a local Scan (or, with ``everyone``, the pieces of all ranks)."""
    par = local.attrs[PARALLEL_ATTR]
    pieces = plan_pieces(par["blocks"], par["ranks"])
    return pieces if everyone else own_pieces(pieces, par["rank"])


def local_frames(local: xr.Dataset) -> np.ndarray:
    """Global frame numbers of the frames of a local Scan, in order."""
    return frames_of(local_pieces(local))


# --------------------------------------------------------------------------- lazy own reads


def own_frames(arr: da.Array, pieces: Sequence[Piece], rank: int = 0) -> da.Array:
    """The frames of ``pieces`` of a frame-chunked Dask array, one block per piece.

    Reads only those frames when ``arr`` is a plain ``from_array`` of a
    sliceable object; otherwise slices ``arr`` (whole source blocks are read)
    and warns with :class:`ParallelReadWarning`.
    """
    sizes = tuple(p.size for p in pieces)
    if not pieces:
        return arr[:0]
    source = from_array_source(arr)
    rest = arr.shape[1:]
    if source is not None:
        subset = FrameSubset(source, [(p.start, p.stop) for p in pieces], rest, arr.dtype)
        token = hashlib.sha1(repr([(p.start, p.stop) for p in pieces]).encode()).hexdigest()[:12]
        return da.from_array(
            subset, chunks=(sizes,) + tuple((s,) for s in rest), name=f"{arr.name}-own-{token}",
            asarray=False, fancy=False, lock=False, meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
        )
    if not _in_memory(arr):
        warnings.warn(
            f"rank {rank}: frames of {arr.name!r} are not a plain source array (selected or processed "
            "frames); whole source blocks are read to cut this rank's frames — split the raw Scan, then prepare",
            ParallelReadWarning, stacklevel=3,
        )
    return arr[frames_of(pieces)].rechunk({0: sizes})


class FrameSubset:
    """Frames ``ranges`` (global ``(start, stop)`` pairs) of a sliceable ``base``, as one stack.

    ``base[start:stop]`` must return those frames as an array (FrameReader,
    h5py dataset, numpy). Picklable whenever ``base`` is.
    """

    def __init__(self, base: Any, ranges: Sequence[tuple[int, int]], rest: tuple[int, ...], dtype: Any):
        self.base, self.ranges = base, [(int(a), int(b)) for a, b in ranges]
        self.offsets = np.cumsum([0] + [b - a for a, b in self.ranges])
        self.shape = (int(self.offsets[-1]),) + tuple(rest)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: tuple) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        first, rest = key[0], key[1:]
        lo, hi, step = first.indices(self.shape[0])
        if step != 1:
            raise IndexError("FrameSubset: only unit steps along frames")
        parts = []
        for j, (a, b) in enumerate(self.ranges):
            s, e = max(lo, int(self.offsets[j])), min(hi, int(self.offsets[j + 1]))
            if s < e:
                g = a + s - int(self.offsets[j])
                parts.append(np.asarray(self.base[(slice(g, g + e - s),) + rest]))
        if not parts:
            return np.empty((0,) + self.shape[1:], self.dtype)[(slice(None),) + rest]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def from_array_source(arr: da.Array) -> Any:
    """The object a Dask array was made from with ``da.from_array`` (chunked along axis 0 only), or ``None``."""
    layers = getattr(arr.dask, "layers", {})
    key = "original-" + arr.name
    if set(layers) != {key, arr.name} or any(n != 1 for n in arr.numblocks[1:]):
        return None
    values = dict(layers[key])
    obj = values.get(key)
    obj = getattr(obj, "value", obj) if type(obj).__name__ == "DataNode" else obj
    if obj is None or not hasattr(obj, "__getitem__") or tuple(getattr(obj, "shape", ())) != arr.shape:
        return None
    return obj


def _in_memory(arr: da.Array) -> bool:
    return isinstance(from_array_source(arr), np.ndarray) or len(getattr(arr.dask, "layers", {})) == 0


def _frame_chunks(scan: xr.Dataset) -> tuple[int, ...]:
    data = scan["data"].data
    return data.chunks[0] if isinstance(data, da.Array) else (data.shape[0],)


def _as_frame_dask(data: Any, blocks: Sequence[int]) -> da.Array:
    if isinstance(data, da.Array):
        return data if data.chunks[0] == tuple(blocks) else data.rechunk({0: tuple(blocks)})
    arr = np.asarray(data)
    return da.from_array(arr, chunks=(tuple(blocks),) + arr.shape[1:])


# --------------------------------------------------------------------------- small values


def _small_values(scan: xr.Dataset, names: list[str], comm: Any, mode: str | None) -> dict[str, np.ndarray]:
    """Evaluate the small variables: on rank 0 then broadcast ('data', None), or on every rank.

    An error anywhere is raised on every rank (:class:`SplitError` on the others), never left
    for a later collective call to hang on.
    """
    lazy = {n: scan[n].data for n in names if isinstance(scan[n].data, da.Array)}
    eager = {n: np.asarray(scan[n].values) for n in names if n not in lazy}
    if not lazy:
        return eager
    rank = comm.Get_rank()
    computed, error = None, None
    if mode in ("all", "common") or rank == 0:
        try:
            computed = dict(zip(lazy, dask.compute(*lazy.values())))
        except Exception as exc:  # noqa: BLE001 - raised below, on every rank
            error = exc
    if mode in ("all", "common"):
        failed = [(r, e) for r, e in enumerate(comm.allgather(None if error is None else repr(error))) if e]
    else:
        payload = comm.bcast(("ok", computed) if error is None else ("error", repr(error)), root=0)
        failed = [] if payload[0] == "ok" else [(0, payload[1])]
        computed = payload[1] if payload[0] == "ok" else None
    if error is not None:
        raise error
    if failed:
        raise SplitError("; ".join(f"rank {r} could not evaluate {sorted(lazy)}: {e}" for r, e in failed))
    return {**eager, **computed}


# --------------------------------------------------------------------------- rank 0 reads and sends


def _scatter_frames(scan: xr.Dataset, names: list[str], pieces: list[Piece], comm: Any) -> dict[str, np.ndarray]:
    """Rank 0 computes every block once and sends each piece to its owner (point to point, in frame order)."""
    rank = comm.Get_rank()
    mine = own_pieces(pieces, rank)
    n_own = sum(p.size for p in mine)
    shapes = {n: scan[n].shape[1:] for n in names}
    out = {n: np.empty((n_own,) + shapes[n], dtype=scan[n].dtype) for n in names}
    pos = 0
    if rank == 0:
        blocks = block_sizes_of(_frame_chunks(scan))
        arrays = [_as_frame_dask(scan[n].data, blocks) for n in names]
        by_block: dict[int, list[Piece]] = {}
        for p in pieces:
            by_block.setdefault(p.block, []).append(p)
        owed = {r: len(own_pieces(pieces, r)) for r in range(1, comm.Get_size())}
        error: BaseException | None = None
        try:
            for b, results in ordered(iter_blocks(arrays, max_in_flight=2), range(len(blocks))):
                for p in by_block.get(b, []):
                    part = [np.ascontiguousarray(r[p.offset:p.offset + p.size]) for r in results]
                    if p.rank == 0:
                        for n, arr in zip(names, part):
                            out[n][pos:pos + p.size] = arr
                        pos += p.size
                    else:
                        comm.send(("ok", part), dest=p.rank, tag=TAG_FRAMES)
                        owed[p.rank] -= 1
        except BaseException as exc:  # tell the others, so that nobody waits forever
            error = exc
        if error is not None:
            for r in (r for r, left in owed.items() if left):
                comm.send(("error", f"rank 0 could not read the frames: {error!r}"), dest=r, tag=TAG_FRAMES)
            raise error
    else:
        for p in mine:
            status, part = comm.recv(source=0, tag=TAG_FRAMES)
            if status != "ok":
                raise SplitError(part)
            for n, arr in zip(names, part):
                out[n][pos:pos + p.size] = arr
            pos += p.size
    return out


def ordered(items: Iterator[tuple[int, Any]], order: Sequence[int]) -> Iterator[tuple[int, Any]]:
    """Re-yield ``(index, value)`` pairs that arrive in any order in the sequence ``order``
    (buffering those that come early; iter_blocks keeps at most ``max_in_flight`` under way)."""
    pending: dict[int, Any] = {}
    wanted = iter(order)
    want = next(wanted, None)
    for i, value in items:
        pending[i] = value
        while want is not None and want in pending:
            yield want, pending.pop(want)
            want = next(wanted, None)
    if pending:
        raise RuntimeError(f"ordered: blocks {sorted(pending)} arrived but were not expected")
