"""``to_ptyd`` on a ``distributed`` cluster: workers write their own part files (``link``) or stream blocks.

``save="link"``: each Dask block is computed, compressed **and written** as
its part file (``<name><chunk_format % n>.incomplete``) by the worker that
computed it — the frames never travel to the client, only the part's name and
size do (the folder must be on a file system the workers and the client
share). The client then writes the master with links and renames everything
into place (atomic: any failure removes every part, finished or not).

``save="append"``/``"merge"``: the serial ``to_ptyd``; its ``iter_blocks``
computes and compresses blocks on the workers and streams them to the
client, at most ``max_in_flight`` (default 2 per worker) at once, so the
client's memory stays bounded by a few compressed blocks whatever the scan size.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..blocks import iter_blocks
from ..errors import ParameterError
from ..ptyd.writer import _check_output, to_ptyd
from ..scan import validate_scan
from ..ptyd.layout import BlockWriter, finalize, tmp_name
from .parts import make_plan, remove_all


class PartJob:
    """Runs on a worker: encode block ``i`` and write it as its part file; returns (name, bytes, pid)."""

    def __init__(self, writer: BlockWriter, positions: np.ndarray, indices: np.ndarray, ranges: list[tuple[int, int]]):
        self.writer, self.positions, self.indices, self.ranges = writer, positions, indices, ranges

    def __call__(self, i: int, blocks: tuple[np.ndarray, ...]) -> tuple[str, int, int]:
        start, stop = self.ranges[i]
        tmp = tmp_name(self.writer.part_path(i))
        size = self.writer.write_part(tmp, self.writer.encode_payload(blocks, 0, stop - start),
                                      self.positions[start:stop], self.indices[start:stop])
        return str(tmp), size, os.getpid()


def to_ptyd_distributed(
    scan: xr.Dataset,
    path: str | os.PathLike,
    client: Any = None,
    save: str = "link",
    chunk_format: str = ".chunk%02d",
    overwrite: bool = False,
    *,
    compression: str | None = "gzip",
    compression_level: int = 1,
    shuffle: bool = True,
    frames_per_hdf5_chunk: int = 1,
    max_in_flight: int | None = None,
) -> Path:
    """Write ``scan`` as ``to_ptyd`` does, on the ``distributed.Client`` ``client`` (default: the current one).

    The file is the one the serial ``to_ptyd`` writes (same chunks, same stored
    bytes; same defaults). ``save="link"``:
    workers write the part files (see :func:`write_link_parts`); other modes
    stream blocks to the client. Returns the master path.
    """
    check_mode(save)
    from distributed import default_client

    client = client if client is not None else default_client()
    path = Path(os.path.abspath(path))
    if save != "link":
        with client.as_current():
            return to_ptyd(scan, path, save=save, chunk_format=chunk_format, overwrite=overwrite,
                           compression=compression, compression_level=compression_level, shuffle=shuffle,
                           frames_per_hdf5_chunk=frames_per_hdf5_chunk, progress=False, max_in_flight=max_in_flight)
    written = write_link_parts(scan, path, client, chunk_format, overwrite, compression=compression,
                               compression_level=compression_level, shuffle=shuffle,
                               frames_per_hdf5_chunk=frames_per_hdf5_chunk, max_in_flight=max_in_flight)
    return written["path"]


def write_link_parts(scan: xr.Dataset, path: Path, client: Any, chunk_format: str, overwrite: bool, *,
                     compression: str | None, compression_level: int, shuffle: bool, frames_per_hdf5_chunk: int,
                     max_in_flight: int | None) -> dict[str, Any]:
    """The ``link`` writer of :func:`to_ptyd_distributed`; returns ``{"path", "parts": [(name, bytes, pid)]}``."""
    import h5py

    scan = validate_scan(scan)
    plan = make_plan(scan, path, "link", chunk_format, compression=compression, compression_level=compression_level,
                     shuffle=shuffle, frames_per_hdf5_chunk=frames_per_hdf5_chunk)
    _check_output(path, overwrite)
    writer = plan.writer
    job = PartJob(writer, plan.positions, plan.indices, plan.ranges)
    arrays = [plan.data] + ([plan.weights3d] if plan.weights3d is not None else [])
    n_parts = len(plan.ranges)
    every_tmp = [tmp_name(writer.part_path(i)) for i in range(n_parts)]
    master = tmp_name(path)
    parts: list[tuple[str, int, int]] = [("", 0, 0)] * n_parts
    try:
        with client.as_current():
            shared = client.scatter(job, broadcast=True, hash=False)
            blocks = iter_blocks(arrays, max_in_flight=max_in_flight, post=shared)
            try:
                for i, report in blocks:
                    parts[i] = report
            finally:
                blocks.close()
        with h5py.File(master, "w") as f:
            chunks = writer.write_skeleton(f)
            for i in range(n_parts):
                chunks[str(i)] = h5py.ExternalLink(writer.part_path(i).name, "/")
        finalize(writer, every_tmp + [master], overwrite, n_parts)
    except BaseException:
        _wait_idle(client)  # part writes still under way must not create files after the clean-up
        remove_all(every_tmp + [master])
        raise
    return {"path": path, "parts": parts}


def _wait_idle(client: Any, timeout: float = 30.0) -> None:
    """Wait (at most ``timeout`` s) until the scheduler has no task under way on any worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not any(client.processing().values()):
                return
        except Exception:  # noqa: BLE001 - a closing client: nothing more will run for us
            return
        time.sleep(0.05)


def check_mode(save: str) -> None:
    """:class:`ParameterError` for a save mode ``to_ptyd_distributed`` does not write."""
    if save not in ("link", "append", "merge"):
        raise ParameterError(f"save: expected 'link', 'append' or 'merge', got {save!r}")
