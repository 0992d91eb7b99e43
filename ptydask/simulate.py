"""A small but realistic far-field ptychography scan, written as a detector would write it.

Used by ``ptydask demo``, the notebooks and the benchmarks. The frames are
the far-field intensities ``|FFT(probe * object)|^2`` of a focused probe
scanned on a spiral over a complex object, scaled to photon counts with
Poisson noise, with the beam off the detector centre, a dead column, a dead
block and a few hot pixels (below saturation). Nothing here is needed to use ptydask on real data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

#: Where :func:`write_raw` puts things inside the raw HDF5 file.
KEYS = {
    "frames": "entry/data/data",
    "y": "entry/sample/positions/y",
    "x": "entry/sample/positions/x",
    "energy": "entry/instrument/beam/energy",
    "distance": "entry/instrument/detector/distance",
    "psize": "entry/instrument/detector/x_pixel_size",
    "mask": "entry/instrument/detector/pixel_mask",
}


@dataclass(frozen=True)
class SimulatedScan:
    """Parameters of a simulated scan (SI units unless stated)."""

    num_frames: int = 200
    frame_shape: tuple[int, int] = (128, 128)
    energy_kev: float = 8.0
    distance: float = 5.0
    psize: float = 75e-6
    beam_center: tuple[float, float] = (70.0, 59.0)  # (row, col) px on the detector
    photons: float = 2e6  # per frame
    step: float = 0.4e-6  # spiral step, m
    dead_column: int = 17
    dead_block: tuple[slice, slice] = (slice(100, 104), slice(20, 24))
    hot_pixels: tuple[tuple[int, int], ...] = ((5, 120), (90, 10), (64, 80))
    hot_level: int = 30000  # counts a hot pixel reads in every frame (below saturation)
    seed: int = 2026
    extra: dict = field(default_factory=dict)

    @property
    def wavelength(self) -> float:
        """Photon wavelength, m."""
        return 12.398419843320026e-10 / self.energy_kev

    @property
    def object_pixel(self) -> float:
        """Real-space pixel size of the far-field geometry, m."""
        return self.wavelength * self.distance / (self.frame_shape[0] * self.psize)


def spiral_positions(n: int, step: float) -> np.ndarray:
    """(n, 2) Fermat-spiral (y, x) positions in metres, centred on 0."""
    k = np.arange(n)
    r = step * np.sqrt(k)
    theta = k * np.pi * (3 - np.sqrt(5))
    return np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)


def simulate_frames(sim: SimulatedScan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (frames uint16 (N, H, W), positions (N, 2) m, valid-pixel mask (H, W) bool)."""
    rng = np.random.default_rng(sim.seed)
    h, w = sim.frame_shape
    positions = spiral_positions(sim.num_frames, sim.step)
    pix = positions / sim.object_pixel
    span = int(np.ceil(np.abs(pix).max())) + 2
    obj_size = (h + 2 * span, w + 2 * span)
    amplitude = 0.6 + 0.4 * _smooth(rng.random(obj_size), 3)
    phase = 2.0 * _smooth(rng.random(obj_size), 5)
    obj = amplitude * np.exp(1j * phase)
    yy, xx = np.mgrid[:h, :w]
    radius = 0.18 * h
    pupil = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.2 * h) ** 2).astype(complex)
    probe = np.fft.ifft2(np.fft.ifftshift(pupil * np.exp(1j * 0.001 * ((yy - h / 2) ** 2 + (xx - w / 2) ** 2))))
    probe = np.fft.fftshift(probe)
    probe *= ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (1.5 * radius) ** 2)
    shift = (np.array(sim.beam_center) - np.array([h // 2, w // 2])).round().astype(int)
    frames = np.empty((sim.num_frames, h, w), dtype=np.uint16)
    for i, (py, px) in enumerate(pix):
        oy, ox = int(round(py)) + span, int(round(px)) + span
        exit_wave = probe * obj[oy : oy + h, ox : ox + w]
        intensity = np.abs(np.fft.fftshift(np.fft.fft2(exit_wave))) ** 2
        intensity = np.roll(intensity, tuple(shift), axis=(0, 1))
        intensity *= sim.photons / intensity.sum()
        frames[i] = np.minimum(rng.poisson(intensity), 65534)
    mask = np.ones((h, w), dtype=bool)
    frames[:, :, sim.dead_column] = 0
    mask[:, sim.dead_column] = False
    frames[:, sim.dead_block[0], sim.dead_block[1]] = 0
    mask[sim.dead_block] = False
    for r, c in sim.hot_pixels:
        frames[:, r, c] = sim.hot_level
        mask[r, c] = False
    return frames, positions, mask


def _smooth(a: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    for axis in (0, 1):
        a = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, a)
    return (a - a.min()) / (np.ptp(a) or 1.0)


def write_raw(path: str | os.PathLike, sim: SimulatedScan | None = None, *, with_mask: bool = False) -> Path:
    """Write a simulated scan as a detector/NeXus-style raw HDF5 file; return its path.

    Frames are stored gzip-compressed with one frame per HDF5 chunk; geometry
    datasets carry ``units`` attributes (keV, m). The known bad pixels are
    written as an NXmx ``pixel_mask`` bit field (0 = good) only with
    ``with_mask`` (the demo finds bad pixels on its own).
    """
    sim = sim or SimulatedScan()
    frames, positions, mask = simulate_frames(sim)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(KEYS["frames"], data=frames, chunks=(1,) + frames.shape[1:], compression="gzip", compression_opts=1)
        for key, value, unit in (
            ("y", positions[:, 0], "m"),
            ("x", positions[:, 1], "m"),
            ("energy", sim.energy_kev, "keV"),
            ("distance", sim.distance, "m"),
            ("psize", sim.psize, "m"),
        ):
            f.create_dataset(KEYS[key], data=value).attrs["units"] = unit
        if with_mask:  # NXmx bit field: 0 = good, bit 1 (2) = dead, bit 3 (8) = over-responding (hot)
            bits = np.where(mask, 0, 2).astype(np.uint32)
            for r, c in sim.hot_pixels:
                bits[r, c] = 8
            f.create_dataset(KEYS["mask"], data=bits)
        f["entry"].attrs["beam_center_row_col"] = np.asarray(sim.beam_center)
    return path
