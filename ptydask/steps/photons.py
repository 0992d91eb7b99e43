"""Detector counts to photon counts: ``adu_per_photon``, ``photon_threshold``, ``round_photons``.

A per-pixel step (:class:`~ptydask.steps.base.PixelStep`) after the corrections (dark, flat,
monitor) and before padding and the window:

``photons = corrected / adu_per_photon`` (a number, or a per-pixel map; map pixels that are
zero, negative or not finite give 0 and weight 0), then values below ``photon_threshold``
(photons) become 0, then ``round_photons`` rounds to the nearest integer (half to even).
The frames become float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError
from .base import PixelStep, side_of


def _number(name: str, value: Any, lo: float, strict: bool, meaning: str) -> Optional[float]:
    """``None`` or a finite number above ``lo`` (``>=`` unless ``strict``)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or (value <= lo if strict else value < lo):
        rel = ">" if strict else ">="
        raise ParameterError(f"{name}: expected None or a finite number {rel} {lo:g} ({meaning}), got {value!r}")
    return float(value)


def _map(value: Any) -> Any:
    """The per-pixel map of ``adu_per_photon``: an array as given, or read from a ``{file, key}`` reference."""
    if isinstance(value, Mapping):
        from ..sources.refs import load_small

        return load_small("adu_per_photon", value, None).astype(np.float64)
    return value


@dataclass(frozen=True)
class Photons(PixelStep):
    """Counts -> photons. ``scale``: ADU per photon when one number for every pixel (``None``: a map,
    the side array); ``threshold`` photons (``None``: off); ``rounding``: round to integers."""

    ORDER = 10
    PARAMS = ("adu_per_photon", "photon_threshold", "round_photons")

    scale: Optional[float]
    threshold: Optional[float]
    rounding: bool
    origin: str

    @classmethod
    def build(cls, params: Mapping[str, Any], scan: xr.Dataset,
              frames: da.Array) -> Optional[tuple["Photons", Optional[da.Array]]]:
        adu, threshold, rounding = (params[k] for k in cls.PARAMS)
        if not isinstance(rounding, (bool, np.bool_)):
            raise ParameterError(f"round_photons: expected True or False, got {rounding!r}")
        threshold = _number("photon_threshold", threshold, 0.0, False, "photons")
        if adu is None and threshold is None and not rounding:
            return None
        if adu is None or isinstance(adu, (int, float, np.integer, np.floating, bool, np.bool_)):
            scale = 1.0 if adu is None else _number("adu_per_photon", adu, 0.0, True, "detector counts per photon")
            return cls(scale, threshold, bool(rounding), "1" if adu is None else "number"), None
        side = side_of("adu_per_photon", _map(adu), scan, frames).astype(np.float64)
        origin = "file" if isinstance(adu, Mapping) else "argument"
        return cls(None, threshold, bool(rounding), origin), side

    def apply(self, block: np.ndarray, side: Optional[np.ndarray]) -> np.ndarray:
        if side is None:
            out = np.true_divide(block, self.scale, dtype=np.float64)
        else:
            out = np.divide(block, side, out=np.zeros(np.broadcast_shapes(block.shape, side.shape)),
                            where=self.valid(side))
        if self.threshold is not None:
            out[out < self.threshold] = 0.0
        if self.rounding:
            np.rint(out, out=out)
        return out

    def valid(self, side: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return None if side is None else np.isfinite(side) & (side > 0)

    def info(self) -> dict[str, Any]:
        return {"photons": {"adu_per_photon": self.scale if self.scale is not None else f"map ({self.origin})",
                            "photon_threshold": self.threshold, "round_photons": self.rounding}}


STEP = Photons
