"""``ptydask demo``: the whole job on a built-in example, end to end.

Simulate a raw far-field scan as a detector writes it (HDF5 with frames,
positions, energy, distance, pixel size; a dead column, a dead block, hot
pixels; the beam off the detector centre), open it lazily, find the beam
centre and the bad pixels over all frames, cut a square ROI around the centre,
and write a ``.ptyd`` that ptypy reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import OutputExistsError
from .ptyd import open_ptyd, to_ptyd
from .labels import info_of
from .scan import describe
from .simulate import KEYS, SimulatedScan, write_raw
from .sources import open_frames
from .steps import prepare

#: ROI cut around the found centre, pixels.
DEMO_SHAPE = 96


def run_demo(outdir: str | os.PathLike, *, frames: int = 200, save: str = "append", overwrite: bool = False) -> Iterator[str]:
    """Run the demo in ``outdir``; yield one line of report per step."""
    outdir = Path(outdir)
    raw_path, ptyd_path = outdir / "raw_demo.h5", outdir / "demo.ptyd"
    if ptyd_path.exists() and not overwrite:
        raise OutputExistsError(f"{ptyd_path}: exists; pass --overwrite to run the demo again")
    sim = SimulatedScan(num_frames=frames)
    write_raw(raw_path, sim)
    yield (f"1. simulated a raw scan: {frames} frames of {sim.frame_shape[0]}x{sim.frame_shape[1]} uint16, "
           f"{sim.energy_kev} keV, {sim.distance} m, {sim.psize * 1e6:g} um pixels, beam at {sim.beam_center} px "
           f"-> {raw_path} ({raw_path.stat().st_size / 2**20:.1f} MiB)")

    raw = open_frames(
        raw_path,
        KEYS["frames"],
        positions={"file": str(raw_path), "slow_key": KEYS["y"], "fast_key": KEYS["x"]},
        recorded_energy={"file": str(raw_path), "key": KEYS["energy"]},
        recorded_distance={"file": str(raw_path), "key": KEYS["distance"]},
        recorded_psize={"file": str(raw_path), "key": KEYS["psize"]},
        label="ptydask demo",
    )
    yield f"2. opened lazily (nothing read yet): {describe(raw)}"

    prepared = prepare(raw, shape=DEMO_SHAPE, center=None, auto_center=True, dead_pixels=True, hot_pixels=8.0,
                       saturation=65535)
    info = info_of(prepared)
    masks = info.get("masks", {})
    center = info.get("center")
    yield (f"3. reductions over all frames (bad pixels, then the centre without them): beam centre at ({center[0]:.2f}, {center[1]:.2f}) px "
           f"(simulated {sim.beam_center}); bad pixels: "
           + ", ".join(f"{k} {v}" for k, v in masks.items()))
    yield f"4. prepared lazily: {describe(prepared)}"

    to_ptyd(prepared, ptyd_path, save=save, overwrite=overwrite)
    back = open_ptyd(ptyd_path)
    size = sum(p.stat().st_size for p in outdir.glob(ptyd_path.name + "*"))
    valid = float(np.mean(back["weights"].values > 0))
    yield (f"5. wrote {ptyd_path} ({save} mode, {len(back['data'].data.chunks[0])} chunk block(s), {size / 2**20:.1f} MiB); "
           f"read back {int(back.sizes['frame'])} of {back.attrs['num_frames']} frames, {100 * valid:.2f}% valid pixels")
    yield f"   look inside with: ptydask inspect {ptyd_path}"
