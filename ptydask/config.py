"""ptydask's settings: the ``ptydask.*`` namespace of :mod:`dask.config`.

The defaults are registered with :func:`dask.config.update_defaults` when this module is imported;
change them per call with ``dask.config.set({"ptydask.runner": "threads"})``, in a dask YAML file
(``~/.config/dask/ptydask.yaml``), or with dask's environment variables (``DASK_PTYDASK__MAP_READ=False``,
read by dask when it starts). Every setting is read when it is used (:func:`get`), never at import.

``ptydask.runner``
    ``"auto"`` (a default ``distributed`` client if there is one, else threads), ``"threads"`` or
    ``"distributed"``: where the blocks of a write are computed, chosen once per write.
``ptydask.max-in-flight``
    blocks computed at once (``None``: CPU count + 1 on threads, 2 per worker on a cluster).
``ptydask.block-bytes.ptyd``
    bytes per Dask block when a ``.ptyd`` is opened (``open_ptyd``; 64 MiB).
``ptydask.block-bytes.sources``
    bytes per Dask block of a detector source (``open_frames``; 128 MiB).
``ptydask.block-bytes.arrays``
    bytes per Dask block of in-memory frames (``from_arrays``; 64 MiB).
``ptydask.map-read``
    map unfiltered frames onto the file (``True``) or read them into new arrays (``False``).
``ptydask.fast-read``
    decode compressed chunks in ptydask's own thread pool (``True``) or let HDF5 do it (``False``).
"""

from __future__ import annotations

from typing import Any

import dask.config

__all__ = ["DEFAULTS", "RUNNERS", "get"]

#: Where blocks are computed (``ptydask.runner``).
RUNNERS = ("auto", "threads", "distributed")

DEFAULTS: dict[str, Any] = {
    "ptydask": {
        "runner": "auto",
        "max-in-flight": None,
        "block-bytes": {"ptyd": 64 * 2**20, "sources": 128 * 2**20, "arrays": 64 * 2**20},
        "map-read": True,
        "fast-read": True,
    }
}

dask.config.update_defaults(DEFAULTS)


def get(key: str) -> Any:
    """The current value of setting ``ptydask.<key>`` (e.g. ``get("map-read")``)."""
    return dask.config.get(f"ptydask.{key}")
