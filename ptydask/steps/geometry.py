"""Frame geometry: orientation flags, the crop/pad window and centre arithmetic.

Coordinates are (row, col) in pixels; a centre may be fractional.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GeometryError, ParameterError


@dataclass(frozen=True)
class Orientation:
    """ptypy's orientation: transpose, then flip rows (up-down), then flip columns (left-right)."""

    transpose: bool = False
    flipud: bool = False
    fliplr: bool = False

    @classmethod
    def parse(cls, value: Any) -> "Orientation":
        """``None``, an int 0-7 (bits 4 = transpose, 2 = flipud, 1 = fliplr) or 3 booleans."""
        if value is None:
            return cls()
        if isinstance(value, (bool, np.bool_)):
            raise ParameterError(
                f"orientation: got the boolean {value!r}; expected None, an integer 0-7 "
                "(4 = transpose, 2 = flipud, 1 = fliplr) or three booleans (transpose, flipud, fliplr)"
            )
        if isinstance(value, (int, np.integer)):
            if not 0 <= value <= 7:
                raise ParameterError(
                    f"orientation: {value} is out of range; expected an integer 0-7 "
                    "(4 = transpose, 2 = flipud, 1 = fliplr) or three booleans (transpose, flipud, fliplr)"
                )
            return cls(bool(value & 4), bool(value & 2), bool(value & 1))
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
            raise ParameterError(
                f"orientation: {value!r} is not understood; expected None, an integer 0-7 "
                "or three booleans (transpose, flipud, fliplr)"
            )
        flags = []
        for v in value:
            if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
                flags.append(bool(v))
            else:
                raise ParameterError(
                    f"orientation: {value!r} must hold three booleans (transpose, flipud, fliplr), found {v!r}"
                )
        return cls(*flags)

    def any(self) -> bool:
        return self.transpose or self.flipud or self.fliplr

    def as_int(self) -> int:
        return 4 * self.transpose + 2 * self.flipud + self.fliplr

    def map_center(self, center: tuple[float, float], shape: tuple[int, int]) -> tuple[float, float]:
        """Where pixel ``center`` of a ``shape`` frame lands after this orientation."""
        (r, c), (h, w) = center, shape
        if self.transpose:
            r, c, h, w = c, r, w, h
        if self.flipud:
            r = h - 1 - r
        if self.fliplr:
            c = w - 1 - c
        return (r, c)


@dataclass(frozen=True)
class Window:
    """The ROI cut out of a frame: output pixel ``(i, j)`` takes frame pixel ``(start + (i, j))``."""

    start: tuple[int, int]
    shape: tuple[int, int]

    @classmethod
    def around(cls, center: tuple[float, float], shape: tuple[int, int]) -> "Window":
        """Window of ``shape`` whose pixel ``shape // 2`` is the half-to-even rounded ``center``."""
        rounded = np.round(np.asarray(center, dtype=np.float64)).astype(np.int64)
        start = tuple(int(c - s // 2) for c, s in zip(rounded, shape))
        return cls(start, (int(shape[0]), int(shape[1])))  # type: ignore[arg-type]

    def pads(self, frame_shape: tuple[int, int]) -> bool:
        """True when the window reaches outside a ``frame_shape`` frame (zero padding needed)."""
        return any(s < 0 or s + n > f for s, n, f in zip(self.start, self.shape, frame_shape))


def translate_center(name: str, frame_shape: tuple[int, int]) -> tuple[float, float]:
    """ptypy's centre names on a ``frame_shape`` frame: 'fftshift' = shape // 2, 'geometric' = shape / 2 - 0.5."""
    h, w = frame_shape
    if name == "fftshift":
        return (float(h // 2), float(w // 2))
    if name == "geometric":
        return (h / 2 - 0.5, w / 2 - 0.5)
    if name == "fft":
        raise GeometryError(
            "center: 'fft' means pixel (0, 0), which can never lie strictly inside the frame "
            "(ptypy accepts the name but always fails its inside check); use 'fftshift', "
            "'geometric', a (row, col) pair, or None for the automatic centre"
        )
    raise ParameterError(
        f"center: unknown name {name!r}; expected 'fftshift', 'geometric', a (row, col) pair in pixels, "
        "or None (automatic centre)"
    )


def inside(center: tuple[float, float], frame_shape: tuple[int, int], what: str = "center") -> tuple[float, float]:
    """Check ``0 < c < frame_shape`` strictly on both axes (ptypy's rule); return ``center``."""
    for c, n, axis in zip(center, frame_shape, ("row", "col")):
        if not (np.isfinite(c) and 0 < c < n):
            raise GeometryError(
                f"{what}: {tuple(float(v) for v in center)} lies outside the {tuple(frame_shape)} frame "
                f"({axis} must satisfy 0 < {axis} < {n}, strictly); ptypy refuses centres on or outside the edge"
            )
    return center
