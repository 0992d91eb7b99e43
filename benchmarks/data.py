"""Realistic raw detector data for the benchmarks, written as a detector writes it.

512 x 512 uint16 frames: a bright central disk (the direct beam through a
focusing optic, slightly off the detector centre and drifting with the scan
position) with a weak halo, multiplied by a flat field, Poisson counting noise,
plus a Poisson dark current; a dead column, dead pixels and hot pixels. A
(H, W) dark and flat field are stored beside the frames; positions are a
Fermat spiral in metres.

Generating 10^9 Poisson values would take longer than the benchmarks, so a
pool of distinct noisy frames is generated and repeated in scan order; every
HDF5 chunk still holds one real noisy frame, so compression ratios and decode
costs are those of real data.

Two layouts of the same frames: ``raw_plain.h5`` (uncompressed, contiguous)
and ``raw_bslz4.h5`` (bitshuffle-LZ4 via hdf5plugin, one frame per chunk, as
DECTRIS/Jungfrau/... detectors write it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np

KEYS = {
    "frames": "entry/data/data",
    "y": "entry/sample/positions/y",
    "x": "entry/sample/positions/x",
    "dark": "entry/instrument/detector/dark",
    "flat": "entry/instrument/detector/flat",
}
SHAPE = (512, 512)
BEAM = (261.3, 248.7)  # (row, col) of the disk centre, px
RADIUS = 46.0


def spiral(n: int, step: float = 0.3e-6) -> np.ndarray:
    k = np.arange(n)
    r = step * np.sqrt(k)
    t = k * np.pi * (3 - np.sqrt(5))
    return np.stack([r * np.sin(t), r * np.cos(t)], axis=1)


def detector(seed: int = 7) -> dict:
    """Static detector properties: dark (H, W), flat (H, W), dead and hot pixel lists."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    dark = (3.0 + 0.5 * rng.standard_normal(SHAPE)).clip(1.0, None).astype(np.float32)
    flat = (1.0 + 0.04 * rng.standard_normal(SHAPE)).astype(np.float32)
    dead = rng.integers(0, h, size=(12, 2))
    hot = rng.integers(0, h, size=(16, 2))
    return {"dark": dark, "flat": flat, "dead": dead, "hot": hot, "dead_column": 300}


def frame_pool(count: int, det: dict, seed: int = 11) -> np.ndarray:
    """``count`` distinct noisy frames (uint16)."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    out = np.empty((count, h, w), dtype=np.uint16)
    for i in range(count):
        cy = BEAM[0] + 1.5 * np.sin(i * 0.7)
        cx = BEAM[1] + 1.5 * np.cos(i * 0.4)
        r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        edge = np.clip((RADIUS - r) / 1.5 + 0.5, 0.0, 1.0)  # soft disk edge
        flux = 1.0 + 0.1 * rng.standard_normal()
        signal = flux * (300.0 * edge + 40.0 * np.exp(-np.maximum(r - RADIUS, 0) / 12.0) * (1 - edge) + 0.3)
        counts = rng.poisson(signal * det["flat"]) + rng.poisson(det["dark"])
        counts[:, det["dead_column"]] = 0
        counts[det["dead"][:, 0], det["dead"][:, 1]] = 0
        counts[det["hot"][:, 0], det["hot"][:, 1]] = 60000 + rng.integers(0, 5000, len(det["hot"]))
        out[i] = np.minimum(counts, 65535)
    return out


def write_raw(folder: Path, num_frames: int, pool_size: int = 64, block: int = 256) -> dict[str, Path]:
    """Write ``raw_plain.h5`` and ``raw_bslz4.h5`` with ``num_frames`` frames; reuse them if present."""
    import hdf5plugin

    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "raw.json"
    want = {"frames": num_frames, "pool": pool_size, "shape": SHAPE, "version": 2}
    paths = {"plain": folder / "raw_plain.h5", "bslz4": folder / "raw_bslz4.h5"}
    if stamp.exists() and json.loads(stamp.read_text()) == json.loads(json.dumps(want)) and all(p.exists() for p in paths.values()):
        return paths
    t0 = time.perf_counter()
    det = detector()
    pool = frame_pool(min(pool_size, num_frames), det)
    pos = spiral(num_frames)
    for kind, path in paths.items():
        opts = {} if kind == "plain" else dict(chunks=(1,) + SHAPE, **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        with h5py.File(path, "w") as f:
            ds = f.create_dataset(KEYS["frames"], shape=(num_frames,) + SHAPE, dtype=np.uint16, **opts)
            for s in range(0, num_frames, block):
                e = min(num_frames, s + block)
                ds[s:e] = pool[np.arange(s, e) % len(pool)]
            f.create_dataset(KEYS["y"], data=pos[:, 0]).attrs["units"] = "m"
            f.create_dataset(KEYS["x"], data=pos[:, 1]).attrs["units"] = "m"
            f.create_dataset(KEYS["dark"], data=det["dark"])
            f.create_dataset(KEYS["flat"], data=det["flat"])
    stamp.write_text(json.dumps(want))
    print(f"generated {num_frames} frames x2 layouts in {time.perf_counter() - t0:.1f} s", flush=True)
    return paths


#: The preparation every end-to-end case performs (ptypy scan.data names).
PARAMS = {
    "shape": 256,
    "center": None,  # automatic: mean of the per-frame masked centres of mass
    "orientation": 3,  # flipud + fliplr
    "rebin": 2,
    "hot_pixels": 8.0,
    "dead_pixels": True,
    "psize": 75e-6,
    "energy": 8.0,
    "distance": 5.0,
}


def recipe(raw: Path, out: Path, num_frames: int | None = None, compression: str | None = None) -> dict:
    """The ptydask recipe of the benchmark preparation."""
    r = {
        "name": "Hdf5Loader",
        "save": "append",
        "dfile": str(out),
        "intensities": {"file": str(raw), "key": KEYS["frames"]},
        "positions": {"slow_key": KEYS["y"], "fast_key": KEYS["x"]},
        "darkfield": {"key": KEYS["dark"]},
        "flatfield": {"key": KEYS["flat"]},
        "compression": compression,
        **PARAMS,
    }
    if num_frames is not None:
        r["num_frames"] = num_frames
    return r
