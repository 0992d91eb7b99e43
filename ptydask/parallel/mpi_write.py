"""``to_ptyd_mpi``: write one ``.ptyd`` from all MPI ranks, each computing only its own frames.

``save="link"``: every rank writes one part file per piece it holds (its
frames of one Dask block), in parallel, with no frame leaving the rank; after
a gather of what was written, rank 0 writes the master with ``chunks/<n>``
linking the parts in frame order (piece number ``n``). The frames are those
of the serial ``to_ptyd``; there are more, smaller chunks (one per piece
instead of one per block) — exactly what the serial ``to_ptyd`` writes for
the Scan rechunked to the pieces.

``save="append"``: rank 0 writes the master; the other ranks compress their
pieces (whole HDF5 chunks) and send each to rank 0 point to point, in frame
order, as soon as it is ready; rank 0 assembles ``chunks/<b>`` per Dask block
``b`` — the same chunk groups, datasets and stored HDF5 chunk bytes as the
serial ``to_ptyd``.

Atomic like ``to_ptyd``: files are written as ``*.incomplete`` and renamed by
rank 0 (shared file system) only when every rank succeeded; an error on any
rank removes them all and raises on every rank (:class:`ParallelWriteError`
on the ranks that did not fail). Without parallel HDF5 (``h5py.get_config().mpi``
is False for the PyPI wheel of h5py) no two ranks ever write one file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import config
from ..blocks import iter_blocks
from ..errors import OutputError, ParameterError
from ..ptyd.layout import BlockWriter, finalize, remove, tmp_name
from ..ptyd.options import WriteOptions, check_output
from ..ptyd.plan import PtydPlan
from .mpi import PARALLEL_ATTR, check_load_parallel, is_local, local_pieces, ordered, split_scan
from .plan import Piece

TAG_APPEND = 31
TAG_ABORT = 32


class ParallelWriteError(OutputError):
    """Another rank failed while writing; nothing was left that looks complete."""


def to_ptyd_mpi(
    scan: xr.Dataset,
    path: str | os.PathLike,
    comm: Any,
    save: str = "link",
    chunk_format: str | None = None,
    overwrite: bool = False,
    *,
    load_parallel: str | None = "data",
    options: WriteOptions | None = None,
    **write: Any,
) -> Path:
    """Write ``scan`` to ``path`` from every rank of ``comm`` (collective).

    ``scan``: the same lazy Scan on every rank (it is split with
    :func:`~ptydask.parallel.mpi.split_scan` and ``load_parallel``), or each
    rank's part from ``split_scan`` (possibly prepared since). ``save``:
    ``"link"`` (every rank writes its own part files) or ``"append"`` (rank 0
    writes everything it receives). The other options are ``to_ptyd``'s
    (:class:`~ptydask.ptyd.WriteOptions`); ``max_in_flight``: blocks each rank computes
    at once (``None``: the ``ptydask.max-in-flight`` setting, else 2). Returns the master path.
    """
    if save not in ("link", "append"):
        raise ParameterError(f"save: to_ptyd_mpi writes 'link' or 'append', got {save!r}")
    opts = WriteOptions.of(options, save=save, chunk_format=chunk_format, **write)
    max_in_flight = opts.max_in_flight or config.get("max-in-flight") or 2
    check_load_parallel(load_parallel)
    path = Path(os.path.abspath(path))
    local = scan if is_local(scan) else split_scan(scan, comm, load_parallel)
    comm = comm.Dup()
    try:
        rank, ranks = comm.Get_rank(), comm.Get_size()
        if local.attrs[PARALLEL_ATTR]["ranks"] != ranks:
            raise ParameterError(f"the scan was split for {local.attrs[PARALLEL_ATTR]['ranks']} ranks, comm has {ranks}")
        writer = _shared_writer(local, path, opts, overwrite, comm)
        everyone = local_pieces(local, everyone=True)
        mine = [p for p in everyone if p.rank == rank]
        if save == "link":
            _write_link(local, writer, everyone, mine, comm, overwrite, max_in_flight)
        else:
            _write_append(local, writer, everyone, mine, comm, overwrite, max_in_flight)
    finally:
        comm.Free()
    return path


# --------------------------------------------------------------------------- set-up


def _shared_writer(local: xr.Dataset, path: Path, opts: WriteOptions, overwrite: bool, comm: Any) -> BlockWriter:
    """The same BlockWriter on every rank; a check that fails anywhere fails everywhere."""
    has = local.sizes["frame"] > 0
    writer, error = None, None
    try:
        if comm.Get_rank() == 0:
            check_output(path, overwrite)
        if has:
            writer = PtydPlan(local, path, opts).writer
    except Exception as exc:  # noqa: BLE001 - re-raised below on every rank
        error = exc
    flags = comm.allgather((None if error is None else f"{type(error).__name__}: {error}", has))
    _raise_if_any(comm, error, [f for f, _ in flags])
    root = next(r for r, (_, h) in enumerate(flags) if h)
    return comm.bcast(writer, root=root)


def _raise_if_any(comm: Any, mine: BaseException | None, errors: list[str | None]) -> None:
    if mine is not None:
        raise mine
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        text = "; ".join(f"rank {r}: {e}" for r, e in failed)
        raise ParallelWriteError(f"writing failed on {len(failed)} rank(s): {text}")


def _arrays(local: xr.Dataset, writer: BlockWriter) -> list:
    data = local["data"].data
    arrays = [data]
    if writer.per_frame_weights:
        arrays.append(local["weights"].data)
    return arrays


def _local_blocks(local: xr.Dataset, writer: BlockWriter, mine: list[Piece], max_in_flight: int | None):
    """``(piece, numpy arrays)`` of this rank's pieces, in frame order (a few computed at once)."""
    if not mine:
        return
    arrays = _arrays(local, writer)
    for j, results in ordered(iter_blocks(arrays, max_in_flight=max_in_flight), range(len(mine))):
        yield mine[j], results


def _small(local: xr.Dataset, mine: list[Piece]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """positions (n, 2) m and indices (n,) of each own piece, by piece number."""
    pos = np.asarray(local["positions"].values, dtype=np.float64)
    idx = np.asarray(local["indices"].values, dtype=np.int64) if "indices" in local else None
    out, at = {}, 0
    for p in mine:
        out[p.number] = (pos[at:at + p.size], idx[at:at + p.size] if idx is not None else np.arange(p.start, p.stop))
        at += p.size
    return out


def _remove_all(paths: list[Path]) -> None:
    """Delete ``paths`` that exist (clean-up after a failure)."""
    for p in paths:
        remove(Path(p))


# --------------------------------------------------------------------------- link


def _write_link(local, writer: BlockWriter, everyone: list[Piece], mine: list[Piece], comm: Any, overwrite: bool,
                max_in_flight: int | None) -> None:
    small = _small(local, mine)
    written: list[Path] = []
    error: BaseException | None = None
    try:
        for p, results in _local_blocks(local, writer, mine, max_in_flight):
            tmp = tmp_name(writer.part_path(p.number))
            written.append(tmp)
            writer.write_part(tmp, writer.encode_payload(results, 0, p.size), *small[p.number])
    except Exception as exc:  # noqa: BLE001
        error = exc
    reports = comm.gather((None if error is None else f"{type(error).__name__}: {error}", [str(p) for p in written]), root=0)
    outcome: Any = None
    if comm.Get_rank() == 0:
        files = [Path(f) for _, fs in reports for f in fs]
        errors = [e for e, _ in reports]
        if not any(errors):
            try:
                master = tmp_name(writer.path)
                files.append(master)
                import h5py

                with h5py.File(master, "w") as f:
                    chunks = writer.write_skeleton(f, {"parallel": {"ranks": comm.Get_size(), "chunks": "one per piece"}})
                    for p in everyone:
                        chunks[str(p.number)] = h5py.ExternalLink(writer.part_path(p.number).name, "/")
                finalize(writer, files, overwrite, len(everyone))
            except Exception as exc:  # noqa: BLE001
                error = exc
                errors[0] = f"{type(exc).__name__}: {exc}"
        if any(errors):
            _remove_all(files)
        outcome = errors
    errors = comm.bcast(outcome, root=0)
    _raise_if_any(comm, error, errors)


# --------------------------------------------------------------------------- append


def _write_append(local, writer: BlockWriter, everyone: list[Piece], mine: list[Piece], comm: Any, overwrite: bool,
                  max_in_flight: int | None) -> None:
    """Ranks > 0 send one message per own piece ('ok' + payload, or 'skip'/'error'); rank 0 receives
    every one of them whatever happens (so no sender blocks forever) and writes the blocks in order."""
    small = _small(local, mine)
    block_frames: dict[int, int] = {}
    for p in everyone:
        block_frames[p.block] = block_frames.get(p.block, 0) + p.size
    if comm.Get_rank() != 0:
        _send_pieces(local, writer, mine, small, block_frames, comm, max_in_flight)
    else:
        _receive_and_write(local, writer, everyone, mine, small, block_frames, comm, overwrite, max_in_flight)


def _send_pieces(local, writer, mine, small, block_frames, comm, max_in_flight) -> None:
    error: BaseException | None = None
    left = list(mine)
    try:
        for p, results in _local_blocks(local, writer, mine, max_in_flight):
            if comm.Iprobe(source=0, tag=TAG_ABORT):
                break
            payload = writer.encode_payload(results, p.offset, block_frames[p.block])
            comm.send(("ok", payload, *small[p.number]), dest=0, tag=TAG_APPEND)
            left.pop(0)
    except Exception as exc:  # noqa: BLE001
        error = exc
    for _ in left:
        comm.send(("skip" if error is None else "error", None, None, None), dest=0, tag=TAG_APPEND)
    errors, aborted = comm.bcast(None, root=0)
    if aborted:
        comm.recv(source=0, tag=TAG_ABORT)
    _raise_if_any(comm, error, errors)


def _receive_and_write(local, writer, everyone, mine, small, block_frames, comm, overwrite, max_in_flight) -> None:
    import h5py

    ranks = comm.Get_size()
    errors: list[str | None] = [None] * ranks
    error: BaseException | None = None
    aborts: list[Any] = []

    def fail(exc: BaseException) -> None:
        nonlocal error
        if error is None:
            error = exc
            aborts.extend(comm.isend(True, dest=r, tag=TAG_ABORT) for r in range(1, ranks))

    master = tmp_name(writer.path)
    own = _local_blocks(local, writer, mine, max_in_flight)
    f = chunks = None
    try:
        f = h5py.File(master, "w")
        chunks = writer.write_skeleton(f, {"parallel": {"ranks": ranks}})
    except Exception as exc:  # noqa: BLE001
        fail(exc)
    for b in sorted(block_frames):
        grp, positions, indices = None, [], []
        if error is None:
            try:
                grp = writer.new_group(chunks, b, block_frames[b])
            except Exception as exc:  # noqa: BLE001
                fail(exc)
        for p in (q for q in everyone if q.block == b):
            got = None
            if p.rank == 0:
                if error is None:
                    try:
                        _, results = next(own)
                        got = (writer.encode_payload(results, p.offset, block_frames[p.block]), *small[p.number])
                    except Exception as exc:  # noqa: BLE001
                        fail(exc)
            else:
                status, *rest = comm.recv(source=p.rank, tag=TAG_APPEND)
                if status == "ok":
                    got = rest
                elif status == "error":
                    errors[p.rank] = errors[p.rank] or "failed (see that rank's traceback)"
                    fail(ParallelWriteError(f"rank {p.rank} failed"))
            if error is None and got is not None:
                try:
                    writer.write_payload(grp, p.offset, got[0])
                    positions.append(got[1])
                    indices.append(got[2])
                except Exception as exc:  # noqa: BLE001
                    fail(exc)
        if error is None:
            try:
                writer.write_small(grp, np.concatenate(positions), np.concatenate(indices))
            except Exception as exc:  # noqa: BLE001
                fail(exc)
    if f is not None:
        f.close()
    if error is None:
        try:
            finalize(writer, [master], overwrite, None)
        except Exception as exc:  # noqa: BLE001
            fail(exc)
    if error is not None:
        _remove_all([master])
        if not isinstance(error, ParallelWriteError):
            errors[0] = f"{type(error).__name__}: {error}"
    comm.bcast((errors, bool(aborts)), root=0)
    for req in aborts:
        req.wait()
    _raise_if_any(comm, None if isinstance(error, ParallelWriteError) else error, errors)
