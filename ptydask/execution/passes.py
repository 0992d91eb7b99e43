"""One pass of a sink over the blocks of a Scan, on a runner: the loop every sink strategy shares.

A *sink* (the ``.ptyd`` sink :class:`ptydask.ptyd.PtydSink`, the CXI sink
:class:`ptydask.sinks.cxi.CxiSink`) says which Dask ``arrays`` it stores, their block
``ranges``, its write ``options`` and a picklable ``encoder`` run where each block is
computed; :func:`run_blocks` asks the runner for the blocks, hands each encoded block to
``sink.write_block`` in this process, and optionally feeds each block of another array
(the raw frames) to an :class:`Observer` (a reduction measured during the same read).
The caller then commits or aborts the sink (:func:`fail` after an error).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import dask.array as da
import numpy as np

from ..progress import job_bar as progress_bar  # one bar per job, counting frames (a name tests replace)
from .runner import Runner

__all__ = ["Sink", "Observer", "run_blocks", "fail"]


class Sink(Protocol):
    """What :func:`run_blocks` needs of a sink (opened before, committed or aborted after)."""

    path: Path
    arrays: list[da.Array]
    ranges: list[tuple[int, int]]
    max_in_flight: int | None
    encoder: Any

    def write_block(self, i: int, encoded: Any, partial: Any = None) -> None: ...

    def abort(self, keep: bool = False) -> Path | None: ...


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

    def __init__(self, encoder: Any, observer: Observer, n: int):
        self.encoder, self.observer, self.n = encoder, observer, n

    def __call__(self, i: int, blocks: tuple[np.ndarray, ...]) -> tuple[Any, Any]:
        return self.encoder(i, blocks[: self.n]), self.observer.record(i, blocks[self.n])


def run_blocks(sink: Sink, runner: Runner, todo: Iterable[int], observer: Observer | None,
                  progress: bool | None) -> None:
    """Compute the blocks ``todo`` of ``sink.arrays`` on ``runner`` and write each with ``sink.write_block``
    (``observer``: also fed each block of ``observer.array``); ``progress``: a bar (``None``: when watched)."""
    todo = list(todo)
    arrays = list(sink.arrays)
    post: Any = sink.encoder
    if observer is not None:
        post = _Observed(sink.encoder, observer, len(arrays))
        raw = observer.array
        arrays = arrays + [raw.rechunk((arrays[0].chunks[0],) + raw.shape[1:])]
    done = set(range(len(sink.ranges))) - set(todo)
    frame_bytes = int(np.prod(arrays[0].shape[1:])) * arrays[0].dtype.itemsize
    bar = progress_bar(sink.ranges[-1][1] if sink.ranges else 0, progress, f"writing {sink.path.name}",
                       initial=sum(sink.ranges[i][1] - sink.ranges[i][0] for i in done), frame_bytes=frame_bytes)
    blocks = runner.iter_blocks(arrays, blocks=todo, max_in_flight=sink.max_in_flight, post=post)
    try:
        for i, out in blocks:
            partial = None
            if observer is not None:
                out, partial = out
                observer.add(i, partial)
            sink.write_block(i, out, partial)
            if bar is not None:
                bar.update(sink.ranges[i][1] - sink.ranges[i][0])
    finally:
        blocks.close()
        if bar is not None:
            bar.close()


def fail(sink: Sink, runner: Runner, exc: BaseException) -> None:
    """After ``exc``: wait for the runner's tasks, remove what was written, or (Ctrl-C in an
    ``append`` write) keep the ``.incomplete`` master and say how to resume it."""
    runner.wait_idle()  # part writes still under way must not create files after the clean-up
    kept = sink.abort(keep=isinstance(exc, KeyboardInterrupt))
    if kept is not None:
        warnings.warn(f"interrupted: the finished chunk groups are kept in {kept}; "
                      "run again with resume=True (CLI: --resume) to complete it", stacklevel=3)
