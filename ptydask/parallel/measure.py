"""Global quantities of ``prepare`` under MPI: per-rank partials, combined so every rank gets the serial result.

``prepare`` measures, before its blockwise pass, quantities over ALL frames
(``ptydask.steps.reductions.measure``): per-frame centres of mass (auto-centre),
per-pixel maximum and sum (saturation / dead / hot-pixel masks) and the
largest valid super-pixel fraction (rebin mask rule). On one rank's part
of a Scan these are partial; :func:`combine_measurements` combines them:

===============  ============================================================  ===========
value            combination                                                   identical?
===============  ============================================================  ===========
``centres``      (n, 2) px per frame: gathered and put back in global frame      bit for bit
                 order (``allgather``), then averaged as in serial
``max``          (H, W): ``Allreduce(MAX)``                                     bit for bit
``sum``          (H, W) float64: ``Allreduce(SUM)``                             exact for integer
                                                                               counts < 2**53 per
                                                                               pixel; else ~1 ulp
``fraction``     scalar: ``Allreduce(MAX)``                                     bit for bit
===============  ============================================================  ===========

:func:`prepare_mpi` runs ``prepare`` on a rank's part with these combined
values, through its ``combine`` hook.

Two reads under MPI: the one-read pipeline (:func:`ptydask.prepare_to_ptyd`) folds the
partials in the one process that writes, but an MPI write (:func:`~ptydask.parallel.to_ptyd_mpi`)
has no such process for ``link`` parts, so the ranks combine the measurements first and write after.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..steps.reductions import Combine
from .mpi import PARALLEL_ATTR, is_local, local_pieces

log = logging.getLogger(__name__)

def combine_measurements(comm: Any, local: xr.Dataset) -> Combine:
    """A function that turns one rank's computed reduction values into the global ones (collective).

    ``values`` is the dict ``reductions.measure`` computes (``centres``,
    ``max``, ``sum``, ``fraction``, ``valid``, extras); unknown keys are left as
    they are. Every rank must call it with the same keys, in the same order.
    """
    from mpi4py import MPI

    pieces = local_pieces(local)
    total = int(local.attrs[PARALLEL_ATTR]["frames"])

    def combine(values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        if "centres" in values:
            mine = np.asarray(values["centres"], dtype=np.float64)
            everyone = comm.allgather(([(p.start, p.stop) for p in pieces], mine))
            full = np.full((total, 2), np.nan)
            for ranges, arr in everyone:
                at = 0
                for a, b in ranges:
                    full[a:b] = arr[at:at + b - a]
                    at += b - a
            out["centres"] = full
        if "frames" in values:
            out["frames"] = comm.allreduce(int(values["frames"]), op=MPI.SUM)
        for key, op in (("max", MPI.MAX), ("sum", MPI.SUM), ("fraction", MPI.MAX)):
            if key in values:
                mine = np.ascontiguousarray(np.asarray(values[key], dtype=np.float64))
                result = np.empty_like(mine)
                comm.Allreduce(mine, result, op=op)
                out[key] = result if np.ndim(values[key]) else result[()]
        return out

    return combine


def prepare_mpi(local: xr.Dataset, comm: Any, **params: Any) -> xr.Dataset:
    """``ptydask.steps.prepare`` of one rank's part (from ``split_scan``), global quantities over all ranks.

    Collective: every rank calls it with the same ``params``. The prepared
    frames of each rank equal the serial ``prepare(scan)`` frames at the same
    global frame numbers. Per-frame arguments (``mask``, ``dark``, ``flat`` of
    shape (N, H, W) for the whole scan) are cut to the rank's frames.
    Not supported under MPI (ParameterError): ``num_frames`` (select frames
    before splitting) and monitor normalisation (its mean/std over all frames
    need a hook in ``steps.inputs``). Reads the raw frames twice (the ranks measure, then write:
    see the module docstring); ``ptydask.prepare_to_ptyd`` reads them once on threads or a cluster.
    """
    from ..steps import prepare

    log.info("prepare_mpi: two reads of the raw frames (ranks combine the measurements before any writes)")

    if not is_local(local):
        raise ParameterError("prepare_mpi: expects one rank's part of a Scan, from ptydask.parallel.split_scan")
    par = local.attrs[PARALLEL_ATTR]
    if par["ranks"] > 1:
        if params.get("num_frames") is not None:
            raise ParameterError("prepare_mpi: num_frames is not supported across ranks; select the frames "
                                 "(scan.isel(frame=slice(0, n))) before split_scan")
        norm = params.get("normalisation")
        if norm is not False and (norm is not None or "monitor" in local):
            raise ParameterError("prepare_mpi: monitor normalisation needs the monitor's mean/std over all ranks, "
                                 "which prepare cannot take yet; pass normalisation=False or normalise serially")
    own = np.concatenate([np.arange(p.start, p.stop) for p in local_pieces(local)] or [np.zeros(0, int)])
    for name in ("mask", "dark", "flat"):
        value = params.get(name)
        if value is not None and value is not False and getattr(value, "ndim", 0) == 3 \
                and value.shape[0] == par["frames"] != local.sizes["frame"]:
            params[name] = value[own]
    return prepare(local, combine=combine_measurements(comm, local), **params)
