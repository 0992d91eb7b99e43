"""Write a Scan as a ptypy-compatible ``.ptyd`` file (spec: ptyd-format.md §1, §2, §5, §6).

Each Dask block of frames becomes one ``chunks/<n>`` group (``save="append"``),
one part file linked from the master (``"link"``), or a slice of the single
group ``chunks/0`` (``"merge"``). Blocks are computed a few at a time by the
runner (threads of this process, or the workers of a ``distributed`` cluster,
:mod:`ptydask.execution`) and compressed where they were computed (``link``:
the part files are written there too); this process only writes finished
HDF5 chunks (``write_direct_chunk``) into the master, so memory stays bounded
by a few blocks and gzip runs in parallel. HDF5 chunks hold whole frames (one
frame per chunk by default), which is what makes ptypy's own per-frame reader fast.

Writes are atomic: everything goes to ``<name>.incomplete`` files that are
renamed into place only when the whole scan is written; an error or an
interruption leaves no file that looks complete.

``append`` runs are resumable (``resume=True``): the ``.incomplete`` master
carries a fingerprint of the plan, and each chunk group is marked complete
(and the file flushed) once it is fully written. A resumed run that finds the
same plan keeps the complete groups, deletes partial ones and computes only
the missing blocks; a damaged file or a different plan starts over (with a
warning). Markers and fingerprint are removed before the final rename.

The steps are those of :class:`~ptydask.ptyd.sink.PtydSink` (``open``, ``write_block``,
``commit``, ``abort``); :func:`write_scan` drives them through :func:`ptydask.execution.passes.run_blocks`,
optionally feeding each block of another array (the raw frames) to an
:class:`~ptydask.execution.passes.Observer` as it goes (the one-read preparation, :mod:`ptydask.onepass`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from ..errors import ParameterError
from ..execution import Runner, resolve_runner
from ..execution.passes import Observer, fail, run_blocks
from ..progress import one_report
from .options import WriteOptions
from .plan import PtydPlan
from .sink import PtydSink

__all__ = ["to_ptyd", "write_scan"]


@one_report()
def to_ptyd(
    scan: xr.Dataset,
    path: str | os.PathLike,
    save: str | None = None,
    chunk_format: str | None = None,
    overwrite: bool = False,
    *,
    progress: bool | None = None,
    resume: bool = False,
    runner: Runner | str | None = None,
    options: WriteOptions | None = None,
    **write: Any,
) -> Path:
    """Write ``scan`` to ``path`` as a ``.ptyd`` file that ptypy's ``PtydScan`` reads.

    Parameters
    ----------
    scan : the Scan (lazy or not) with positions and the geometry ptypy needs.
    path : the master file.
    save, chunk_format, compression, compression_level, shuffle, frames_per_hdf5_chunk, max_in_flight :
        the write options (:class:`~ptydask.ptyd.options.WriteOptions`, which holds their defaults:
        ``save="append"``, gzip level 1 with shuffle, one frame per HDF5 chunk); ``options``: a
        :class:`WriteOptions` these keywords change.
    overwrite : replace an existing output; otherwise an existing output is an error.
    progress : show a progress bar; ``None`` = only when stderr is a terminal.
    resume : ``save="append"`` only: continue an interrupted write from
        ``<path>.incomplete`` when it holds the same plan (frames, blocks, dtypes,
        frame shape, options, meta, positions); else start over with a warning.
        An interrupted (Ctrl-C) append run keeps its ``.incomplete`` file for this.
    runner : where blocks are computed: ``"threads"``, ``"distributed"``, ``"auto"`` or a
        :class:`~ptydask.execution.Runner`; default: the ``ptydask.runner`` setting. On a cluster,
        in ``link`` mode the workers write the part files themselves (the folder must be shared).

    Returns
    -------
    Path : the master file.
    """
    opts = WriteOptions.of(options, save=save, chunk_format=chunk_format, **write)
    sink = write_scan(scan, Path(path), opts, overwrite=overwrite, progress=progress, resume=resume,
                      runner=resolve_runner(runner))
    return sink.path


def write_scan(scan: xr.Dataset, path: Path, options: WriteOptions, *, overwrite: bool = False,
               progress: bool | None = None, resume: bool = False, runner: Runner | None = None,
               observer: Observer | None = None) -> PtydSink:
    """Write ``scan`` through a :class:`PtydSink` and commit it; returns the committed sink.

    ``observer``: fed every block of ``observer.array`` (computed with the frames, so inputs they
    share are read once), before the sink is committed; then the caller commits (the sink is
    returned open: :meth:`PtydSink.commit` or :meth:`PtydSink.abort` is the caller's). A resumed run
    hands the partials kept for the finished blocks to ``observer.add`` first."""
    if resume and options.save != "append":
        raise ParameterError(f"resume: only save='append' writes can be resumed, got save={options.save!r}")
    runner = runner if runner is not None else resolve_runner()
    sink = PtydSink(PtydPlan(scan, path, options), overwrite)
    todo = sink.open(resume, keep_partials=observer is not None and options.save == "append")
    try:
        if observer is not None:
            for i, partial in sorted(sink.partials.items()):
                observer.add(i, partial)
        run_blocks(sink, runner, todo, observer, progress)
        if observer is None:
            sink.commit()
    except BaseException as exc:
        fail(sink, runner, exc)
        raise
    return sink


