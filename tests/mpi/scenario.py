"""The raw scan shared by tests/test_mpi.py (serial reference) and tests/mpi/worker.py (MPI ranks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptydask.simulate import KEYS, SimulatedScan, write_raw
from ptydask.sources import open_frames

#: 23 frames in Dask blocks of 10, 10, 3: the worked example of ptyscan-semantics.md §6.2.
SIM = SimulatedScan(num_frames=23, frame_shape=(48, 48), beam_center=(27.0, 21.0), photons=5e5,
                    dead_column=7, dead_block=(slice(40, 43), slice(30, 33)), hot_pixels=((3, 44), (30, 5)))
FRAMES_PER_BLOCK = 10
FRAME_BYTES = 48 * 48 * 2
PREPARE = dict(shape=32, center=None, auto_center=True, dead_pixels=True, hot_pixels=4.0, saturation=60000, rebin=2)


def make_raw(path: Path) -> Path:
    return write_raw(path, SIM)


def open_raw(path: str | Path):
    return open_frames(
        str(path), KEYS["frames"],
        positions={"file": str(path), "slow_key": KEYS["y"], "fast_key": KEYS["x"]},
        recorded_energy={"file": str(path), "key": KEYS["energy"]},
        recorded_distance={"file": str(path), "key": KEYS["distance"]},
        recorded_psize={"file": str(path), "key": KEYS["psize"]},
        block_bytes=FRAMES_PER_BLOCK * FRAME_BYTES,
    )


def frame_bytes(dtype=np.uint16) -> int:
    return 48 * 48 * np.dtype(dtype).itemsize


def tiny_scan():
    """Two 4 x 4 frames in one block: with 3 ranks, ptypy's split gives rank 0 no frame."""
    from ptydask import from_arrays

    frames = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    return from_arrays(frames, [[0.0, 1e-6], [2e-6, 3e-6]], energy=8.0, distance=5.0, psize=75e-6, chunks=2)


def loader_pars(path: str | Path) -> dict:
    """ptypy ``Hdf5Loader`` parameters of the raw file (fixed centre: the same frames serially and under MPI)."""
    path = str(path)
    return {
        "intensities": {"file": path, "key": KEYS["frames"]},
        "positions": {"file": path, "slow_key": KEYS["y"], "fast_key": KEYS["x"]},
        "recorded_energy": {"file": path, "key": KEYS["energy"]},
        "recorded_distance": {"file": path, "key": KEYS["distance"]},
        "recorded_psize": {"file": path, "key": KEYS["psize"]},
        "shape": 32, "center": [27.0, 21.0], "auto_center": False, "rebin": 2,
    }
