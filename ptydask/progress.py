"""One progress report per job, however many small computes the job is made of.

A sink computes its blocks a few at a time (:func:`ptydask.blocks.iter_blocks`),
one small Dask compute each. Two reports follow the whole job instead of each
compute:

- :func:`job_bar`: ptydask's own bar (tqdm; a widget in Jupyter with ipywidgets),
  counting frames and the bytes of the frames written;
- :class:`JobCallbacks`: the Dask callbacks active when the job starts
  (``with dask.diagnostics.ProgressBar(): ...``, ``Profiler``, ...) see the job
  as one compute of its whole graph: started once, told of every task, finished
  once. The per-block computes run with no callbacks of their own, and
  :class:`one_report` (around a whole job, e.g. ``to_ptyd``) holds the callbacks
  back from the job's other small computes (the 2-D weights, ...).
"""

from __future__ import annotations

import sys
import threading
from contextlib import ContextDecorator
from importlib.util import find_spec
from typing import Any, Mapping

from dask.callbacks import Callback

__all__ = ["JobCallbacks", "job_bar", "one_report", "watched"]

#: The order of the hooks in the tuples of ``dask.callbacks.Callback.active``.
_HOOKS = ("_start", "_start_state", "_pretask", "_posttask", "_finish")


_held_lock = threading.Lock()
_held: list = [None, 0]  # [the Dask callbacks held back by the outermost one_report, its depth]


class one_report(ContextDecorator):  # noqa: N801 - used as a decorator, like contextlib's
    """Around a job (decorator or ``with``): the Dask callbacks active when it starts report only its
    block pass (:class:`JobCallbacks`), once; the job's other computes run without them."""

    def __enter__(self) -> "one_report":
        with _held_lock:
            if _held[1] == 0:
                _held[0], Callback.active = tuple(Callback.active), set()
            _held[1] += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        with _held_lock:
            _held[1] -= 1
            if _held[1] == 0:
                Callback.active, _held[0] = set(_held[0]) | Callback.active, None


def _active() -> tuple:
    """The Dask callbacks that report the current job."""
    with _held_lock:
        return _held[0] if _held[0] is not None else tuple(Callback.active)


def watched() -> tuple[bool, bool]:
    """(someone watches: stderr is a terminal or this is a Jupyter kernel, it is a Jupyter kernel)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    in_kernel = getattr(shell, "kernel", None) is not None
    return in_kernel or bool(sys.stderr is not None and sys.stderr.isatty()), in_kernel


def job_bar(total: int, progress: bool | None, desc: str, initial: int = 0, frame_bytes: int = 0) -> Any:
    """A tqdm bar over the ``total`` frames of a job, or ``None``.

    Parameters
    ----------
    total : frames of the job.   initial : frames already done (a resumed write).
    progress : ``True``/``False``: a bar or none; ``None``: a bar only when someone watches (stderr
        is a terminal, or a Jupyter kernel: a widget with ipywidgets, else text, never tqdm's
        "IProgress not found" warning) and no Dask callback already reports the job
        (``dask.diagnostics.ProgressBar``). Scripts, pipes, batch jobs and CI logs get none.
    desc : the bar's label.   frame_bytes : bytes per frame (uncompressed), shown as MiB done.
    """
    someone, in_kernel = watched()
    if progress is None:
        progress = someone and not _active()
    if not progress:
        return None
    if in_kernel and find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return _FrameBar(tqdm(total=total, initial=initial, desc=desc, unit="frame"), frame_bytes, initial)


class _FrameBar:
    """A tqdm bar counting frames that shows the MiB of frames done beside them."""

    def __init__(self, bar: Any, frame_bytes: int, initial: int) -> None:
        self.bar, self.frame_bytes, self.frames = bar, frame_bytes, initial
        self._postfix()

    def _postfix(self) -> None:
        if self.frame_bytes:
            self.bar.set_postfix_str(f"{self.frames * self.frame_bytes / 2**20:.1f} MiB", refresh=False)

    def update(self, frames: int) -> None:
        """``frames`` more frames are done."""
        self.frames += frames
        self._postfix()
        self.bar.update(frames)

    def close(self) -> None:
        self.bar.close()


class JobCallbacks:
    """The Dask callbacks active when a job starts, told about the job's ``graph`` as one compute.

    Use as a context manager around the job; pass :meth:`for_block` as the ``callbacks`` of each
    block's compute. The state handed to the callbacks counts the graph's tasks: ``waiting`` until a
    block computes them, ``running``, then ``finished`` (a task that several blocks share counts once).
    """

    def __init__(self, graph: Mapping) -> None:
        self.active = _active()
        self.graph = graph
        self.state: dict[str, Any] = {"waiting": set(graph) if self.active else set(), "ready": [],
                                      "running": set(), "finished": set(), "cache": {}}
        self._lock = threading.Lock()
        self._forward = ((None, None, self._pretask, self._posttask, None),) if self.active else ()

    def _hooks(self, name: str) -> list:
        """The ``name`` hooks of the active callbacks (Dask keeps each as a tuple of its five hooks)."""
        index = _HOOKS.index(name)
        return [hooks[index] for hooks in self.active if hooks[index] is not None]

    def __enter__(self) -> "JobCallbacks":
        for hook in self._hooks("_start"):
            hook(self.graph)
        for hook in self._hooks("_start_state"):
            hook(self.graph, self.state)
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        for hook in self._hooks("_finish"):
            hook(self.graph, self.state, kind is not None and not issubclass(kind, GeneratorExit))

    def for_block(self) -> tuple:
        """The ``callbacks`` of one block's compute: forwarders to the job's callbacks, or none at all
        (``()``, so that Dask's global callbacks never report a single block)."""
        return self._forward

    def _pretask(self, key: Any, dsk: Mapping, state: Mapping) -> None:
        with self._lock:
            self.state["waiting"].discard(key)
            self.state["running"].add(key)
        for hook in self._hooks("_pretask"):
            hook(key, self.graph, self.state)

    def _posttask(self, key: Any, result: Any, dsk: Mapping, state: Mapping, worker: Any) -> None:
        with self._lock:
            self.state["running"].discard(key)
            self.state["finished"].add(key)
        for hook in self._hooks("_posttask"):
            hook(key, result, self.graph, self.state, worker)
