"""The arrays ``prepare`` combines with the frames: weights, dark, flat, user mask, monitor.

Each is validated against the frames ``(N, H, W)`` and made ready for
``map_blocks``: 2-D arrays (y, x) become single-block Dask arrays shared by
every block; per-frame arrays get the frames' block sizes along ``frame``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError
from . import kernels

#: Default sigma of the normalisation outlier rule (``Hdf5Loader``'s default).
DEFAULT_SIGMA = 3.0


@dataclass
class Inputs:
    """Validated side arrays, aligned with the first ``n`` frames.

    ``weights``/``dark``/``flat``/``mask``: Dask arrays, (H, W) or (n, H, W);
    ``divisor``/``multiplier``: (n, 1, 1) per-frame normalisation factors.
    ``origin`` says where each came from, for ``info``.
    """

    weights: da.Array
    dark: Optional[da.Array] = None
    flat: Optional[da.Array] = None
    mask: Optional[da.Array] = None
    divisor: Optional[da.Array] = None
    multiplier: Optional[da.Array] = None
    origin: dict[str, Any] = field(default_factory=dict)
    #: The per-pixel steps after the corrections (``base.PixelStep``) and their side arrays (or None).
    steps: tuple = ()
    sides: tuple = ()

    @property
    def corrects(self) -> bool:
        """True when frames go through float64 per-pixel steps (corrections and others)."""
        return self.dark is not None or self.flat is not None or self.divisor is not None or bool(self.steps)

    @property
    def per_frame_weights(self) -> bool:
        """True when the prepared weights must be (frame, y, x)."""
        return any(a is not None and a.ndim == 3 for a in (self.weights, self.mask, self.flat, *self.sides))


def _real(name: str, arr: Any) -> Any:
    if not isinstance(arr, da.Array):
        arr = np.asarray(arr)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ParameterError(f"{name}: expected a real numeric or bool array, got dtype {arr.dtype}")
    return arr


def frame_aligned(name: str, arr: Any, frames: da.Array, n_all: int) -> da.Array:
    """``arr`` as (H, W), or (N, H, W) cut to the prepared frames and chunked like them."""
    arr = _real(name, arr)
    n, h, w = frames.shape
    if arr.shape == (h, w):
        return arr.rechunk(-1) if isinstance(arr, da.Array) else da.from_array(arr, chunks=arr.shape)
    if arr.shape == (n_all, h, w):
        arr = arr[:n]
        if isinstance(arr, da.Array):
            return arr.rechunk((frames.chunks[0], -1, -1)) if arr.chunks[0] != frames.chunks[0] else arr
        return da.from_array(arr, chunks=(frames.chunks[0], -1, -1))
    raise ParameterError(
        f"{name}: shape {arr.shape} does not match the frames; expected ({h}, {w}) or ({n_all}, {h}, {w})"
    )


def _pick(name: str, value: Any, scan: xr.Dataset) -> tuple[Any, Optional[str]]:
    """The user's array, the Scan's own variable (``None``), or nothing (``False``)."""
    if value is False:
        return None, None
    if value is None:
        return (scan[name].data, "scan") if name in scan else (None, None)
    return value, "argument"


def normalisation_factors(normalisation: Any, scan: xr.Dataset, frames: da.Array) -> tuple[Any, Any, Optional[dict]]:
    """Per-frame (divisor, multiplier), each (n, 1, 1), from a monitor (``kernels.monitor_factors``),
    the mean and std taken over all the scan's monitor values (before ``num_frames``)."""
    sigma = DEFAULT_SIGMA
    if isinstance(normalisation, dict):
        unknown = sorted(set(normalisation) - {"monitor", "sigma"})
        if unknown:
            raise ParameterError(f"normalisation: unknown key(s) {unknown}; expected 'monitor' and optionally 'sigma'")
        sigma = normalisation.get("sigma", DEFAULT_SIGMA)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) or not sigma > 0:
            raise ParameterError(f"normalisation: 'sigma' must be a number > 0, got {sigma!r}")
        normalisation = normalisation.get("monitor")
        if normalisation is None:
            raise ParameterError("normalisation: the dict needs a 'monitor' array, one value per frame")
    monitor, origin = _pick("monitor", normalisation, scan)
    if monitor is None:
        return None, None, None
    monitor = _real("normalisation", monitor)
    n_all = scan.sizes["frame"]
    if monitor.shape != (n_all,):
        raise ParameterError(f"normalisation: monitor shape {monitor.shape} does not match the frames; expected ({n_all},)")
    if isinstance(monitor, da.Array):  # one block: the statistics do not depend on the chunking
        factors = da.map_blocks(kernels.monitor_factors, monitor.rechunk(-1), sigma=sigma, new_axis=0,
                                chunks=((2,), (n_all,)), dtype=np.float64)
    else:
        if not np.isfinite(monitor).all():
            raise ParameterError(f"normalisation: the monitor holds {int((~np.isfinite(monitor)).sum())} NaN/inf value(s)")
        factors = da.from_array(kernels.monitor_factors(monitor, sigma), chunks=-1)
    chunks = (frames.chunks[0], 1, 1)
    as3 = [factors[i, : frames.shape[0]].reshape(-1, 1, 1).rechunk(chunks) for i in (0, 1)]
    return as3[0], as3[1], {"source": origin, "sigma": float(sigma)}


def gather(scan: xr.Dataset, frames: da.Array, *, dark: Any, flat: Any, mask: Any, normalisation: Any) -> Inputs:
    """Validate and align every side array of ``prepare``."""
    n_all = scan.sizes["frame"]
    weights = frame_aligned("weights", scan["weights"].data, frames, n_all)
    out = Inputs(weights=weights)
    for name, value in (("dark", dark), ("flat", flat)):
        arr, origin = _pick(name, value, scan)
        if arr is not None:
            setattr(out, name, frame_aligned(name, arr, frames, n_all))
            out.origin[name] = origin
    if mask is not None and mask is not False:
        out.mask = frame_aligned("mask", mask, frames, n_all)
        out.origin["mask"] = "argument"
    out.divisor, out.multiplier, norm = normalisation_factors(normalisation, scan, frames)
    if norm is not None:
        out.origin["normalisation"] = norm
    return out
