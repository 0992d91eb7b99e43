"""Validation of ``prepare``'s geometric parameters, before any frame is touched.

Every check raises :class:`~ptydask.errors.ParameterError` or
:class:`~ptydask.errors.GeometryError` naming the parameter, the value found
and what is allowed.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ParameterError
from ..params.registry import param
from .geometry import Orientation, Window, inside, translate_center

#: Largest rebin factor ptypy accepts (the registry's bound).
MAX_REBIN = param("rebin").kind.hi
#: Smallest side of a ROI and of a prepared frame, pixels (the registry's bound; the Scan model's minimum).
MIN_SIDE = param("shape").kind.lo

AUTO = "auto"
#: The largest share of this machine's memory one prepared (float64) frame may need.
MAX_FRAME_SHARE = 1 / 8


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def padding_of(padding: Any) -> tuple[int, int, int, int]:
    """``None`` or (top, bottom, left, right) integers >= 0, pixels."""
    if padding is None:
        return (0, 0, 0, 0)
    vals = tuple(padding) if isinstance(padding, (list, tuple, np.ndarray)) else (padding,)
    if len(vals) != 4 or not all(_is_int(v) and v >= 0 for v in vals):
        raise ParameterError(f"padding: expected four integers >= 0 (top, bottom, left, right) in pixels, got {padding!r}")
    return tuple(int(v) for v in vals)  # type: ignore[return-value]


def padded_shape(frame_shape: tuple[int, int], padding: tuple[int, int, int, int]) -> tuple[int, int]:
    """Frame shape (rows, cols) after zero ``padding`` (top, bottom, left, right)."""
    top, bottom, left, right = padding
    return (frame_shape[0] + top + bottom, frame_shape[1] + left + right)


def roi_shape(shape: Any, frame_shape: tuple[int, int]) -> tuple[tuple[int, int], Optional[str]]:
    """ROI (rows, cols): ``None`` = frame, ``k`` = (k, k), or a pair; made square with the smaller side.

    Returns the ROI and a note when it had to be made square (ptypy warns, too).
    """
    if shape is None:
        sh = tuple(int(v) for v in frame_shape)
    elif _is_int(shape):
        sh = (int(shape), int(shape))
    elif isinstance(shape, (list, tuple, np.ndarray)) and len(shape) == 2 and all(_is_int(v) for v in shape):
        sh = (int(shape[0]), int(shape[1]))
    else:
        raise ParameterError(f"shape: expected None, an integer or a (rows, cols) pair of integers, got {shape!r}")
    if min(sh) < MIN_SIDE:
        raise ParameterError(f"shape: every side must be >= {MIN_SIDE} pixels (a prepared frame has at least "
                             f"{MIN_SIDE} x {MIN_SIDE}), got {shape!r}")
    if sh[0] != sh[1]:
        m = min(sh)
        note = f"non-square ROI {sh} made square ({m}, {m}), as ptypy does"
        warnings.warn(f"shape: {note}", stacklevel=3)
        return (m, m), note
    return sh, None  # type: ignore[return-value]


def rebin_of(rebin: Any, roi: tuple[int, int]) -> int:
    """Rebin factor 1..32 that divides the ROI (``None`` = 1)."""
    if rebin is None:
        return 1
    if not _is_int(rebin) or not 1 <= rebin <= MAX_REBIN:
        raise ParameterError(f"rebin: expected None or an integer 1..{MAX_REBIN}, got {rebin!r}")
    if roi[0] % rebin or roi[1] % rebin:
        raise ParameterError(
            f"rebin: {rebin} does not divide the ROI shape {roi}; choose a shape that is a multiple of the rebin factor"
        )
    if min(roi) // rebin < MIN_SIDE:
        raise ParameterError(f"rebin: {rebin} leaves frames of {roi[0] // rebin} x {roi[1] // rebin} pixels from the "
                             f"ROI {roi}; prepared frames need at least {MIN_SIDE} x {MIN_SIDE}")
    return int(rebin)


def center_of(center: Any, auto_center: Any, frame_shape: tuple[int, int]) -> tuple[Any, str]:
    """The raw-frame centre (row, col) px, or ``AUTO``, and how it was chosen.

    ptydask rule (spec §4.3, ptypy's documented meaning): ``auto_center=True``
    always auto-centres; otherwise a given centre wins; ``center=None`` is the
    automatic centre unless ``auto_center=False``, which gives ``frame_shape // 2``.
    Names are translated on ``frame_shape``; a sequence uses its last two entries.
    """
    if auto_center not in (None, True, False):
        raise ParameterError(f"auto_center: expected None, True or False, got {auto_center!r}")
    if isinstance(center, str):
        fixed = translate_center(center, frame_shape)
        how = f"'{center}'"
    elif center is None:
        fixed, how = None, "none"
    else:
        vals = list(center) if isinstance(center, (list, tuple, np.ndarray)) else None
        if vals is None or len(vals) < 2 or not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)
            for v in vals[-2:]
        ):
            raise ParameterError(
                f"center: expected 'fftshift', 'geometric', a (row, col) pair of finite numbers in pixels "
                f"or None, got {center!r}"
            )
        fixed, how = (float(vals[-2]), float(vals[-1])), "given"
    if auto_center is True:
        return AUTO, "auto (auto_center=True" + (", given centre ignored)" if fixed is not None else ")")
    if fixed is not None:
        return inside(fixed, frame_shape), how
    if auto_center is False:
        return (float(frame_shape[0] // 2), float(frame_shape[1] // 2)), "frame centre (center=None, auto_center=False)"
    return AUTO, "auto (center=None)"


@dataclass(frozen=True)
class Geometry:
    """The resolved frame geometry of a preparation.

    ``frame_shape``: raw frames (rows, cols); ``padded``: after ``padding``
    (the frame the centre refers to); ``roi``: square ROI; ``rebin``: factor.
    """

    frame_shape: tuple[int, int]
    padding: tuple[int, int, int, int]
    roi: tuple[int, int]
    orientation: Orientation
    rebin: int

    @property
    def padded(self) -> tuple[int, int]:
        return padded_shape(self.frame_shape, self.padding)

    def processes(self) -> bool:
        """ptypy's gate: crop/pad, orientation and rebin run only if one of them is needed."""
        do_crop = any(abs(s - d) > 0.5 for s, d in zip(self.roi, self.padded))
        return self.orientation.any() or do_crop or self.rebin != 1

    def window(self, center: Sequence[float]) -> Optional[Window]:
        """The crop/pad window around ``center``, or ``None`` when the gate is closed."""
        return Window.around((center[0], center[1]), self.roi) if self.processes() else None

    def output_center(self, center: Sequence[float]) -> tuple[float, float]:
        """meta.center: ``roi // 2`` through the orientation (or the raw centre if the gate is closed), / rebin."""
        if self.processes():
            c = self.orientation.map_center((float(self.roi[0] // 2), float(self.roi[1] // 2)), self.roi)
        else:
            c = (float(center[0]), float(center[1]))
        return (c[0] / self.rebin, c[1] / self.rebin)


def machine_memory() -> int:
    """Physical memory of this machine, bytes (16 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not Linux/macOS
        return 16 * 2**30


def check_frame_sizes(geom: Geometry, shape: Any, padding: Any) -> None:
    """Refuse a ROI or padding whose frames could not be held in memory, before anything is built.

    A prepared frame is float64 (padding and corrections promote it); one frame may take at most
    :data:`MAX_FRAME_SHARE` of the machine's memory, as a block holds several.
    """
    limit = machine_memory() * MAX_FRAME_SHARE
    for name, value, (rows, cols) in (("padding", padding, geom.padded), ("shape", shape, geom.roi)):
        need = rows * cols * 8
        if need > limit:
            raise ParameterError(
                f"{name}: {value!r} makes {rows} x {cols} frames of float64, {need / 2**30:.3g} GiB each; "
                f"at most {limit / 2**30:.3g} GiB per frame fit this machine ({machine_memory() / 2**30:.3g} GiB) "
                f"-- the detector frames are {geom.frame_shape[0]} x {geom.frame_shape[1]} pixels")


def flag_of(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def positive_or_none(name: str, value: Any, meaning: str) -> Optional[float]:
    """``None`` or a finite number > 0 (e.g. a sigma or a count level)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name}: expected None or a number > 0 ({meaning}), got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"{name}: expected a finite number > 0 ({meaning}), got {value!r}")
    return float(value)


def frames_to_keep(num_frames: Any, present: int, expected: int) -> tuple[int, int]:
    """(frames to prepare, meta num_frames) per spec §2.2.

    ``None`` keeps every frame present and ``expected``; ``k`` keeps the first
    ``min(k, present)`` frames and reports ``min(k, expected)``.
    """
    if num_frames is None:
        return present, expected
    if not _is_int(num_frames) or num_frames < 1:
        raise ParameterError(f"num_frames: expected None or an integer >= 1, got {num_frames!r}")
    return min(int(num_frames), present), min(int(num_frames), max(expected, present))
