"""``prepare`` then ``to_ptyd``, reading the raw frames once where the preparation allows it.

``to_ptyd(prepare(scan, ...), path)`` reads the raw frames twice when ``prepare``
needs global reductions (automatic masks; automatic centre): once to measure
them, once to write. :func:`prepare_to_ptyd` measures them during the write
instead: the ``.ptyd`` sink computes each raw block together with the prepared
block made from it, hands the raw block to the reductions
(:class:`~ptydask.steps.speculative.Recorder`, an observer of the write) while it
stores the prepared one, then commits ``meta``, ``info`` and the weights of the
final measurement (:meth:`~ptydask.ptyd.PtydSink.commit`). The file is the same as
the two-step one, value for value; when the centre measured over all frames
falls into another pixel than the first block's, the frames are written once
more (two reads, as before). The same on threads and on a ``distributed``
cluster, and resumable (``save="append"``: the blocks' partials are kept beside
the ``.incomplete`` master). MPI: :func:`ptydask.parallel.prepare_mpi` measures first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from .execution import Runner, resolve_runner
from .execution.passes import fail
from .progress import one_report
from .ptyd import WriteOptions
from .ptyd.plan import PtydPlan
from .ptyd.writer import write_scan
from .steps import prepare
from .steps.speculative import speculate

__all__ = ["prepare_to_ptyd"]

log = logging.getLogger(__name__)


@one_report()
def prepare_to_ptyd(scan: xr.Dataset, path: str | os.PathLike, prepare_kwargs: Mapping[str, Any] | None = None, *,
                    overwrite: bool = False, progress: bool | None = None, resume: bool = False,
                    runner: Runner | str | None = None, options: WriteOptions | None = None,
                    **write: Any) -> xr.Dataset:
    """Write ``prepare(scan, **prepare_kwargs)`` to ``path`` as ``to_ptyd(..., **write)`` does.

    Reads the raw frames once when ``prepare`` measures automatic masks (with or without the
    automatic centre) of frames whose validity, dark and flat are the same for every frame;
    else (no automatic masks, a ``combine`` part of a scan, per-frame validity) it is exactly
    ``to_ptyd(prepare(...))``, two reads, because the centre alone has no per-block guess to
    cut the frames with. ``resume``: continue an interrupted ``save="append"`` run of the same
    plan. ``runner``: threads or a ``distributed`` cluster (see :func:`ptydask.to_ptyd`).
    Returns the prepared (lazy) Scan that was written.
    """
    kwargs = dict(prepare_kwargs or {})
    opts = WriteOptions.of(options, **write)
    runner = resolve_runner(runner)
    path = Path(path)
    common = dict(overwrite=overwrite, progress=progress, resume=resume, runner=runner)
    spec = speculate(scan, **kwargs)
    if spec is None:
        log.info("prepare_to_ptyd: two reads (no automatic masks to measure while writing)")
        prepared = prepare(scan, **kwargs)
        write_scan(prepared, path, opts, **common)
        return prepared
    sink = write_scan(spec.scan, path, opts, observer=spec.recorder, **common)
    try:
        final = spec.finish()
        new = PtydPlan(final, path, opts) if final is not None else None
        if new is not None and sink.plan.same_frames(new):
            bw = new.writer
            sink.commit(bw.meta, bw.weights2d, bw.info)
            return final
    except BaseException as exc:
        fail(sink, runner, exc)
        raise
    sink.abort()
    log.info("prepare_to_ptyd: the centre moved to another pixel after the first block; writing again")
    write_scan(spec.final(), path, opts, **{**common, "resume": False})
    return spec.final()
