"""The Step type of per-pixel steps, and their discovery.

A :class:`PixelStep` changes each pixel from its own value (and a per-pixel side array), so
it commutes with cropping: the pipeline applies it to only the raw pixels the window sees,
after the corrections (dark, flat, monitor: ``kernels.correct``, the first step) and before
padding and the window. Each step is one object of one module of this package, defining:

- ``apply(block, side)``: the numpy reference kernel on a float64 block ``(n, h, w)``;
- ``valid(side)``: its weights rule -- the pixels it makes invalid (``None``: none);
- ``info()``: what it records in the prepared Scan's ``info['prepare']``;
- ``build(params, scan, frames)``: the step for the checked ``prepare`` keywords and the
  Dask array handed to every block with it (``None`` when the keywords leave the step off).
  The step object holds only small values: it travels with every block's task.

Its parameters are entries of the registry (:mod:`ptydask.params`), so recipes, ``prepare``,
``PtyScan(prepare_options=...)`` and the docs take them without further code. A module of this
package that defines ``STEP`` (a :class:`PixelStep` subclass) is found by :func:`pixel_steps`:
adding a step is writing one module and its registry entries. Steps run in the order of
their ``ORDER`` (ties: module name).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar, Optional

import dask.array as da
import numpy as np
import xarray as xr


class PixelStep:
    """A per-pixel step after the corrections (see the module docstring)."""

    #: Position among the per-pixel steps (smaller first).
    ORDER: ClassVar[int] = 100
    #: The registry parameters (``prepare`` keywords) the step reads.
    PARAMS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build(cls, params: Mapping[str, Any], scan: xr.Dataset,
              frames: da.Array) -> Optional[tuple["PixelStep", Optional[da.Array]]]:
        """The step for ``params`` (every ``prepare`` keyword) and its side array ((H, W) or (n, H, W)
        Dask array, cut like the frames for each block; ``None``: no side array), or ``None`` when off."""
        raise NotImplementedError

    def apply(self, block: np.ndarray, side: Optional[np.ndarray]) -> np.ndarray:
        """The reference kernel: ``block`` (n, h, w) float64 -> a float64 block of the same shape."""
        raise NotImplementedError

    def valid(self, side: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The weights rule: bool (h, w) or (n, h, w) of pixels that stay valid (``None``: all)."""
        return None

    def info(self) -> dict[str, Any]:
        """What ``info['prepare']`` records about the step."""
        return {}


@lru_cache(maxsize=1)
def pixel_steps() -> tuple[type[PixelStep], ...]:
    """Every :class:`PixelStep` of this package (modules defining ``STEP``), in ``ORDER``."""
    from . import __path__ as here

    found = []
    for info in sorted(pkgutil.iter_modules(here), key=lambda m: m.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        step = getattr(module, "STEP", None)
        if isinstance(step, type) and issubclass(step, PixelStep):
            found.append(step)
    return tuple(sorted(found, key=lambda s: s.ORDER))


def build_steps(params: Mapping[str, Any], scan: xr.Dataset,
                frames: da.Array) -> tuple[tuple[PixelStep, ...], tuple[Optional[da.Array], ...]]:
    """The active per-pixel steps for the checked ``prepare`` keywords ``params``, in order, and their
    side arrays."""
    built = [b for b in (step.build(params, scan, frames) for step in pixel_steps()) if b is not None]
    return tuple(b[0] for b in built), tuple(b[1] for b in built)


def side_of(name: str, arr: Any, scan: xr.Dataset, frames: da.Array) -> da.Array:
    """A per-pixel side array, (H, W) or (N, H, W) like the Scan's frames, aligned with the prepared
    ``frames`` (the first n of the N); raises ParameterError naming ``name`` on a wrong shape."""
    from .inputs import frame_aligned

    return frame_aligned(name, arr, frames, scan.sizes["frame"])


__all__ = ["PixelStep", "pixel_steps", "build_steps", "side_of"]
