"""Compute Dask blocks a few at a time, so that sinks can consume them with bounded memory.

Sinks (the ``.ptyd`` writer, the package iterator) need the frames of one block
as numpy arrays, block after block, never the whole scan. ``iter_blocks``
optimises the graph once, then computes each block's culled sub-graph with at
most ``max_in_flight`` blocks under way: in a thread pool by default, or on the
``distributed`` client passed in (see :mod:`ptydask.execution`, which chooses).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import dask.array as da
import numpy as np
from dask.core import flatten
from dask.highlevelgraph import HighLevelGraph
from dask.local import get_sync
from dask.optimization import cull

from . import buffers
from .progress import JobCallbacks


def block_ranges(chunks: Sequence[int]) -> list[tuple[int, int]]:
    """(start, stop) of each block along an axis with Dask chunk sizes ``chunks``."""
    out, start = [], 0
    for size in chunks:
        out.append((start, start + size))
        start += size
    return out


def iter_blocks(
    arrays: Sequence[da.Array],
    *,
    blocks: Sequence[int] | None = None,
    max_in_flight: int | None = None,
    post: Callable[[int, tuple[np.ndarray, ...]], Any] | None = None,
    client: Any = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(block_index, result)`` as blocks finish, in completion order.

    ``arrays`` share their chunking along axis 0 and are unchunked elsewhere;
    block ``i`` of every array is computed together (shared inputs are read
    once). ``result`` is the tuple of numpy blocks, or ``post(i, blocks)`` when
    ``post`` is given; ``post`` runs in the worker (e.g. to compress a block
    off the main thread). ``blocks`` selects which block indices to compute
    (default: all). At most ``max_in_flight`` blocks (default: CPU count + 1, so that
    every CPU computes while the consumer takes a result) are computed, waiting
    or being consumed at any time, on at most one thread per CPU. ``client``: a ``distributed.Client``
    whose workers compute the blocks (and run ``post``) instead of this process's threads.
    """
    if not arrays:
        return
    chunks0 = arrays[0].chunks[0]
    for a in arrays:
        if a.chunks[0] != chunks0 or any(len(c) != 1 for c in a.chunks[1:]):
            raise ValueError("iter_blocks: arrays must share frame chunks and be unchunked on other axes")
    todo = list(range(len(chunks0))) if blocks is None else list(blocks)
    if not todo:
        return
    graph = _optimized(arrays)
    names = [a.name for a in arrays]

    def keys_of(i: int) -> list:
        return [(name, i) + (0,) * (a.ndim - 1) for name, a in zip(names, arrays)]

    if client is not None:
        yield from _iter_distributed(client, graph, todo, keys_of, max_in_flight, post)
        return
    workers = max_in_flight or (os.cpu_count() or 1) + 1
    job = JobCallbacks(graph)  # dask.diagnostics.ProgressBar & co. see one compute, not one per block

    def run(i: int) -> Any:
        keys = keys_of(i)
        sub, _ = cull(graph, keys)
        results = tuple(get_sync(sub, keys, callbacks=job.for_block()))
        return post(i, results) if post is not None else results

    with job, buffers.reuse(keep=workers), _older_objects_frozen():
        yield from _bounded(todo, workers, min(workers, os.cpu_count() or 1), run)


def _optimized(arrays: Sequence[da.Array]) -> dict:
    """The merged graph of ``arrays``, optimised once with every array's keys kept: a task whose
    result is one of the arrays (e.g. the raw frames beside the frames prepared from them) is
    computed once, never fused into its dependents' tasks (``dask.optimize`` optimises each
    collection alone, which would compute it twice)."""
    merged = HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays))
    keys = list(flatten([a.__dask_keys__() for a in arrays]))
    return dict(da.Array.__dask_optimize__(merged, keys))


@contextlib.contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Leave the objects that exist before a pass out of the garbage collector's passes during it
    (``gc.freeze``): a pass allocates many small objects, and each full collection would walk every
    object of the process (0.1 s with dask, xarray and numba loaded). Not when the process froze
    objects itself (its choice stays untouched)."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _bounded(todo: list[int], workers: int, threads: int, run: Callable[[int], Any]) -> Iterator[tuple[int, Any]]:
    """Run ``run(i)`` for ``todo`` on ``threads`` threads, with at most ``workers`` blocks submitted,
    computing or held by the consumer at any time (a submitted block waits for a thread: no memory)."""
    pending: dict[Future, int] = {}
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ptydask-block") as pool:
        def fill(held: int) -> None:
            """Submit blocks while fewer than ``workers`` are computing or held by the consumer."""
            while len(pending) + held < workers:
                nxt = next(queue, None)
                if nxt is None:
                    return
                pending[pool.submit(run, nxt)] = nxt

        try:
            fill(0)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                finished = [(pending.pop(fut), fut) for fut in done]
                for k, (i, fut) in enumerate(finished):
                    fill(len(finished) - k)  # the workers go on while the consumer takes this result
                    yield i, fut.result()
                    fill(len(finished) - k - 1)
        finally:
            for fut in pending:
                fut.cancel()


def _iter_distributed(client, graph, todo, keys_of, max_in_flight, post) -> Iterator[tuple[int, Any]]:
    from distributed import as_completed

    window = max_in_flight or max(2, 2 * len(client.scheduler_info().get("workers", {})))

    def submit(i: int):
        keys = keys_of(i)
        sub, _ = cull(graph, keys)
        futures = client.get(sub, keys, sync=False)
        if post is None:
            return futures
        return client.submit(_apply_post, post, i, futures, pure=False)

    queue = iter(todo)
    meta: dict = {}
    ac = as_completed()
    for i in queue:
        fut = submit(i)
        handle = fut if post is not None else client.submit(tuple, fut, pure=False)
        meta[handle.key] = i
        ac.add(handle)
        if len(meta) >= window:
            break
    for fut in ac:
        i = meta.pop(fut.key)
        result = fut.result()
        fut.release()
        yield i, result
        nxt = next(queue, None)
        if nxt is not None:
            handle = submit(nxt)
            handle = handle if post is not None else client.submit(tuple, handle, pure=False)
            meta[handle.key] = nxt
            ac.add(handle)


def _apply_post(post: Callable, i: int, results: Sequence[np.ndarray]) -> Any:
    return post(i, tuple(results))
