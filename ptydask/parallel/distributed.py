"""``to_ptyd`` on a ``distributed`` cluster: the one ``.ptyd`` sink on a :class:`DistributedRunner`.

``save="link"`` (the default here): each Dask block is computed, compressed **and written** as
its part file (``<name><chunk_format % n>.incomplete``) by the worker that computed it — the
frames never travel to the client, only the part's name and size do (the folder must be on a
file system the workers and the client share). The client then links the parts from the master
and renames everything into place (atomic: any failure removes every part, finished or not).

``save="append"``/``"merge"``: the workers compute and compress blocks and stream them to the
client, at most ``max_in_flight`` (default 2 per worker) at once, so the client's memory stays
bounded by a few compressed blocks whatever the scan size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from ..execution import DistributedRunner
from ..ptyd import WriteOptions
from ..ptyd.writer import write_scan

__all__ = ["to_ptyd_distributed", "write_link_parts"]


def _runner(client: Any) -> DistributedRunner:
    if client is None:
        from distributed import default_client

        client = default_client()
    return DistributedRunner(client)


def to_ptyd_distributed(scan: xr.Dataset, path: str | os.PathLike, client: Any = None, save: str = "link",
                        chunk_format: str | None = None, overwrite: bool = False, *,
                        options: WriteOptions | None = None, **write: Any) -> Path:
    """Write ``scan`` as ``to_ptyd`` does, on the ``distributed.Client`` ``client`` (default: the current one).

    The file is the one the serial ``to_ptyd`` writes (same chunks, same stored bytes). ``save``:
    ``"link"`` (workers write the part files), ``"append"`` or ``"merge"`` (blocks streamed to the
    client); the other options are ``to_ptyd``'s (:class:`~ptydask.ptyd.WriteOptions`). Returns the
    master path.
    """
    return write_link_parts(scan, path, client, chunk_format, overwrite, save=save, options=options,
                            **write)["path"]


def write_link_parts(scan: xr.Dataset, path: str | os.PathLike, client: Any, chunk_format: str | None = None,
                     overwrite: bool = False, *, save: str = "link", options: WriteOptions | None = None,
                     **write: Any) -> dict[str, Any]:
    """:func:`to_ptyd_distributed`, returning ``{"path", "parts": [(name, bytes, pid)]}`` (``link``:
    each part file's name and size and the id of the worker process that wrote it; else empty)."""
    opts = WriteOptions.of(options, save=save, chunk_format=chunk_format, **write)
    sink = write_scan(scan, Path(os.path.abspath(path)), opts, overwrite=overwrite, progress=False,
                      runner=_runner(client))
    return {"path": sink.path, "parts": [sink.parts[i] for i in sorted(sink.parts)]}
