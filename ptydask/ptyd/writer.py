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
``commit``, ``abort``); :func:`write_scan` drives them, optionally feeding each block of
another array (the raw frames) to an :class:`Observer` as it goes (the one-read preparation,
:mod:`ptydask.onepass`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..execution import Runner, resolve_runner
from .options import WriteOptions
from .plan import PtydPlan
from .sink import BlockEncoder, PtydSink

__all__ = ["to_ptyd", "write_scan", "Observer"]


class Observer(Protocol):
    """Measures blocks of ``array`` while the sink writes the frames computed from them.

    ``record(i, block)`` runs where block ``i`` was computed (pure, picklable: no state changed) and
    returns a *partial* (a tuple of small numpy arrays or ``None``); ``add(i, partial)`` folds it in
    this process (also for the partials a resumed run kept)."""

    array: da.Array

    def record(self, i: int, block: np.ndarray) -> tuple[np.ndarray | None, ...]: ...

    def add(self, i: int, partial: tuple[np.ndarray | None, ...]) -> None: ...


class _Observed:
    """The sink's encoder on the first ``n`` blocks, the observer's ``record`` on the last (picklable)."""

    def __init__(self, encoder: BlockEncoder, observer: Observer, n: int):
        self.encoder, self.observer, self.n = encoder, observer, n

    def __call__(self, i: int, blocks: tuple[np.ndarray, ...]) -> tuple[Any, Any]:
        return self.encoder(i, blocks[: self.n]), self.observer.record(i, blocks[self.n])


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
        _write_blocks(sink, runner, todo, observer, progress)
        if observer is None:
            sink.commit()
    except BaseException as exc:
        fail(sink, runner, exc)
        raise
    return sink


def fail(sink: PtydSink, runner: Runner, exc: BaseException) -> None:
    """After ``exc``: wait for the runner's tasks, remove what was written, or (Ctrl-C in an
    ``append`` write) keep the ``.incomplete`` master and say how to resume it."""
    runner.wait_idle()  # part writes still under way must not create files after the clean-up
    kept = sink.abort(keep=isinstance(exc, KeyboardInterrupt))
    if kept is not None:
        warnings.warn(f"interrupted: the finished chunk groups are kept in {kept}; "
                      "run again with resume=True (CLI: --resume) to complete it", stacklevel=3)


def _write_blocks(sink: PtydSink, runner: Runner, todo: Iterable[int], observer: Observer | None,
                  progress: bool | None) -> None:
    todo = list(todo)
    arrays = sink.plan.arrays
    post: Any = sink.encoder
    if observer is not None:
        post = _Observed(sink.encoder, observer, len(arrays))
        raw = observer.array
        arrays = arrays + [raw.rechunk((sink.plan.data.chunks[0],) + raw.shape[1:])]
    total = len(sink.plan.ranges)
    bar = _progress_bar(total, progress, sink.path.name, initial=total - len(todo))
    blocks = runner.iter_blocks(arrays, blocks=todo, max_in_flight=sink.plan.options.max_in_flight, post=post)
    try:
        for i, out in blocks:
            partial = None
            if observer is not None:
                out, partial = out
                observer.add(i, partial)
            sink.write_block(i, out, partial)
            if bar is not None:
                bar.update(1)
    finally:
        blocks.close()
        if bar is not None:
            bar.close()


def _progress_bar(total: int, progress: bool | None, desc: str, initial: int = 0):
    """A tqdm bar counting written blocks, or ``None`` (also when tqdm is not installed).

    ``progress=None`` shows one only when someone watches: stderr is a terminal,
    or the code runs in a Jupyter kernel (a widget with ipywidgets, else a text
    bar, never tqdm's "IProgress not found" warning). Scripts, pipes, batch jobs
    and CI logs get none.
    """
    import sys
    from importlib.util import find_spec

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    in_kernel = getattr(shell, "kernel", None) is not None
    if progress is None:
        progress = in_kernel or bool(sys.stderr is not None and sys.stderr.isatty())
    if not progress:
        return None
    try:
        if in_kernel and find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=f"writing {desc}", unit="block")


