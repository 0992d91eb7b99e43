"""``prepare`` then ``to_ptyd``, reading the raw frames once where the preparation allows it.

``to_ptyd(prepare(scan, ...), path)`` reads the raw frames twice when ``prepare``
needs global reductions (automatic masks; automatic centre): once to measure
them, once to write. :func:`prepare_to_ptyd` measures them during the write
instead (see :mod:`ptydask.steps.speculative`) and fixes ``meta``, ``info`` and
the weights before the output is renamed into place. The file is the same as
the two-step one, value for value; when the centre measured over all frames
falls into another pixel than the first block's, the frames are written once
more (two reads, as before).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import xarray as xr

from .blocks import active_client
from .ptyd import to_ptyd
from .ptyd.writer import Mispredicted
from .steps import prepare
from .steps.speculative import speculate


def prepare_to_ptyd(scan: xr.Dataset, path: str | os.PathLike, prepare_kwargs: Mapping[str, Any] | None = None,
                    **to_ptyd_kwargs: Any) -> xr.Dataset:
    """Write ``prepare(scan, **prepare_kwargs)`` to ``path`` with ``to_ptyd(..., **to_ptyd_kwargs)``.

    Reads the raw frames once when ``prepare`` measures automatic masks (with or without the
    automatic centre) of frames whose validity, dark and flat are the same for every frame,
    and the write runs in this process (no ``distributed`` client, no ``resume``); else it is
    exactly ``to_ptyd(prepare(...))``. Returns the prepared (lazy) Scan that was written.
    """
    kwargs = dict(prepare_kwargs or {})
    one_pass = not to_ptyd_kwargs.get("resume") and active_client() is None
    spec = speculate(scan, **kwargs) if one_pass else None
    if spec is None:
        prepared = prepare(scan, **kwargs)
        to_ptyd(prepared, path, **to_ptyd_kwargs)
        return prepared
    try:
        to_ptyd(spec.scan, path, _late=spec.finish, **to_ptyd_kwargs)
    except Mispredicted:
        to_ptyd(spec.final(), path, **to_ptyd_kwargs)
    return spec.final()


__all__ = ["prepare_to_ptyd"]
