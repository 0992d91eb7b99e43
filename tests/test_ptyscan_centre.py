"""The PtyScan adapter's automatic centre is ``prepare``'s: the same reductions on the same frames.

Before, the adapter summed raw centres of mass itself (no dark/flat, no user or automatic
masks, no padding shift of the rules); now it runs ``prepare``'s plan on the frames it centres
on, so the centre equals ``prepare(scan, center=None, ...)`` bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from ptydask import from_arrays
from ptydask.ptyscan import PtyScan, ScanPtyScan
from ptydask.steps import prepare


def _scan(chunks: int = 4):
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:24, :24]
    beam = 300 * np.exp(-((yy - 13.2) ** 2 + (xx - 9.7) ** 2) / 10)
    frames = rng.poisson(beam + 2, (10, 24, 24)).astype(np.uint16)
    frames[:, 3, 20] += 3000  # a hot pixel far from the beam pulls a plain centre of mass away
    frames[:, :, 2] = 0
    positions = np.stack([np.arange(10.0), np.arange(10.0)], 1) * 1e-6
    return from_arrays(frames, positions, energy=7.0, distance=1.0, psize=1e-4, chunks=chunks)


OPTIONS = [
    {},
    dict(hot_pixels=5.0, dead_pixels=True),
    dict(hot_pixels=5.0, padding=(1, 2, 3, 0), dark=np.full((24, 24), 2.0), flat=np.full((24, 24), 0.9)),
    dict(mask=np.pad(np.ones((20, 20), bool), 2), saturation=2500, adu_per_photon=3.0, round_photons=True),
]


class Hooks(PtyScan):
    """A subclass written as for ptypy: its frames come from ``load`` (the adapter's own centre path)."""

    def __init__(self, scan, pars=None, **kw):
        self.scan = scan
        super().__init__(pars, **kw)

    def load_positions(self):
        return self.scan["positions"].values

    def load(self, indices):
        return {i: self.scan["data"].values[i] for i in indices}, {}, {}


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "masks", "dark-flat-padding", "mask-photons"])
@pytest.mark.parametrize("chunk", [10, 4])
@pytest.mark.parametrize("cls", [Hooks, ScanPtyScan])
def test_adapter_centre_equals_prepare(options, chunk, cls):
    scan = _scan()
    ps = cls(scan, dict(shape=12, center=None), prepare_options=options)
    ps.initialize()
    package = ps.auto(chunk)
    want = prepare(scan, shape=12, center=None, **options)
    assert ps.info.center == want.attrs["info"]["center"]
    got = np.stack([node["data"] for node in package["iterable"]])
    np.testing.assert_array_equal(got, want["data"].values[:chunk])


def test_first_chunk_centre_of_a_growing_scan_is_prepares_on_that_chunk():
    scan = _scan()
    frames = scan["data"].values

    class Growing(PtyScan):
        def load_positions(self):
            return scan["positions"].values

        def load(self, indices):
            return {i: frames[i] for i in indices}, {}, {}

        def check(self, frames=None, start=None):
            start = self.framestart if start is None else start
            return min(frames or 1, 6 - start if start < 6 else 10 - start), None

    ps = Growing(dict(shape=12, center=None), prepare_options=dict(hot_pixels=5.0))
    ps.initialize()
    ps.auto(6)
    first = from_arrays(frames[:6], scan["positions"].values[:6], energy=7.0, distance=1.0, psize=1e-4)
    assert ps.info.center_rule == "auto over the first chunk"
    assert ps.info.center == prepare(first, shape=12, center=None, hot_pixels=5.0).attrs["info"]["center"]


MPI_SCRIPT = '''
import json, sys
import numpy as np
from mpi4py import MPI
from ptydask.ptyscan import PtyScan
frames = np.random.default_rng(1).poisson(50, (2, 12, 12)).astype(np.uint16)
frames[:, 2, 9] += 900
class H(PtyScan):
    def load_positions(self): return np.zeros((2, 2))
    def load(self, indices): return {i: frames[i] for i in indices}, {}, {}
ps = H(dict(shape=8, center=None), comm=MPI.COMM_WORLD, prepare_options=dict(hot_pixels=5.0))
ps.initialize(); ps.auto(2)
got = MPI.COMM_WORLD.gather(ps.info.center)
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps(got))
'''


def test_adapter_centre_under_mpi_with_a_rank_without_frames(tmp_path):
    """3 ranks, 2 frames: ptypy's split gives rank 0 none; every rank gets prepare's serial centre."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("mpi4py")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec")
    (tmp_path / "run.py").write_text(MPI_SCRIPT)
    done = subprocess.run([mpiexec, "-n", "3", sys.executable, str(tmp_path / "run.py")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    centres = json.loads(done.stdout.strip().splitlines()[-1])
    frames = np.random.default_rng(1).poisson(50, (2, 12, 12)).astype(np.uint16)
    frames[:, 2, 9] += 900
    want = prepare(from_arrays(frames, np.zeros((2, 2)), energy=7.2, distance=7.19, psize=172e-6), shape=8,
                   center=None, hot_pixels=5.0, dark=False, flat=False, normalisation=False)
    assert centres == [want.attrs["info"]["center"]] * 3
