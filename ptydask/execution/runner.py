"""Runners: threads in this process, or the workers of a ``distributed`` cluster.

A sink asks its runner for the blocks of some Dask arrays (:meth:`Runner.iter_blocks`); the
runner is chosen once, at the public entry point (:func:`resolve_runner`), from its ``runner``
argument or the ``ptydask.runner`` setting, and never again from whether a default client
happens to exist deeper down. MPI ranks compute their own blocks on a :class:`ThreadRunner`
each; what crosses ranks is the writers' business (:mod:`ptydask.parallel.mpi_write`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from .. import config
from ..blocks import iter_blocks
from ..errors import ParameterError

__all__ = ["Runner", "ThreadRunner", "DistributedRunner", "resolve_runner", "default_client"]

Post = Callable[[int, tuple[np.ndarray, ...]], Any]


class Runner:
    """Computes blocks of frames; ``kind`` names it (``"threads"`` or ``"distributed"``)."""

    kind = "runner"
    #: True when ``post`` runs in another process (it must be picklable, its results are shipped back).
    remote = False

    def iter_blocks(self, arrays: Sequence[da.Array], *, blocks: Sequence[int] | None = None,
                    max_in_flight: int | None = None, post: Post | None = None) -> Iterator[tuple[int, Any]]:
        """``(block index, post(i, blocks) or the numpy blocks)`` in completion order (see
        :func:`ptydask.blocks.iter_blocks`); ``max_in_flight`` ``None``: ``ptydask.max-in-flight``."""
        raise NotImplementedError

    def wait_idle(self) -> None:
        """Return once no task of this runner is still under way (before cleaning up after a failure)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class ThreadRunner(Runner):
    """Blocks computed in a thread pool of this process (buffers reused, GC frozen during the pass)."""

    kind = "threads"

    def iter_blocks(self, arrays, *, blocks=None, max_in_flight=None, post=None):
        yield from iter_blocks(arrays, blocks=blocks, max_in_flight=_in_flight(max_in_flight), post=post)


class DistributedRunner(Runner):
    """Blocks computed by the workers of ``client`` (a ``distributed.Client``); ``post`` is sent to
    the workers once (scattered) and runs there."""

    kind = "distributed"
    remote = True

    def __init__(self, client: Any):
        self.client = client

    def iter_blocks(self, arrays, *, blocks=None, max_in_flight=None, post=None):
        client = self.client
        with client.as_current():
            shared = client.scatter(post, broadcast=True, hash=False) if post is not None else None
            yield from iter_blocks(arrays, blocks=blocks, max_in_flight=_in_flight(max_in_flight), post=shared,
                                   client=client)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait (at most ``timeout`` s) until the scheduler has no task under way on any worker."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not any(self.client.processing().values()):
                    return
            except Exception:  # noqa: BLE001 - a closing client: nothing more will run for us
                return
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"<DistributedRunner {self.client!r}>"


def _in_flight(max_in_flight: int | None) -> int | None:
    return max_in_flight if max_in_flight is not None else config.get("max-in-flight")


def default_client() -> Any:
    """The ``distributed.Client`` Dask would use now, or ``None`` (also when ``distributed`` is missing
    or the ``scheduler`` setting names another scheduler)."""
    scheduler = dask.config.get("scheduler", None)
    if scheduler not in (None, "dask.distributed", "distributed"):
        return None
    try:
        from distributed import default_client as current
    except ImportError:  # pragma: no cover - distributed is a core dependency
        return None
    try:
        return current()
    except ValueError:
        return None


def resolve_runner(runner: Runner | str | None = None, client: Any = None) -> Runner:
    """The runner of one call: ``runner`` itself, a :class:`DistributedRunner` of ``client``, or by name
    (``"threads"``, ``"distributed"``: the default client, ``"auto"``: the default client if any,
    else threads); ``None``: the ``ptydask.runner`` setting."""
    if isinstance(runner, Runner):
        return runner
    if client is not None:
        return DistributedRunner(client)
    name = config.get("runner") if runner is None else runner
    if name not in config.RUNNERS:
        raise ParameterError(f"runner: expected one of {', '.join(map(repr, config.RUNNERS))} or a Runner, "
                             f"got {name!r}")
    if name == "threads":
        return ThreadRunner()
    found = default_client()
    if found is not None:
        return DistributedRunner(found)
    if name == "distributed":
        raise ParameterError("runner: 'distributed' needs a distributed.Client (create one, or pass client=)")
    return ThreadRunner()
