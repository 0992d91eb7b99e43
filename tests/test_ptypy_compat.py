"""Files ptydask writes load in ptypy's own PtydScan with identical frames, masks, positions and meta.

Runs only where ptypy can be imported: ptypy is not on PyPI, so point ``PTYPY_SRC`` at a
source checkout (it needs numpy, scipy, h5py). ptypy runs in a subprocess, as a user would.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ptydask

HERE = Path(__file__).parent
PTYPY_SRC = os.environ.get("PTYPY_SRC", "")


def _ptypy_env():
    env = dict(os.environ)
    if PTYPY_SRC:
        env["PYTHONPATH"] = PTYPY_SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _has_ptypy() -> bool:
    if PTYPY_SRC:
        return (Path(PTYPY_SRC) / "ptypy" / "__init__.py").exists()
    return importlib.util.find_spec("ptypy") is not None


pytestmark = pytest.mark.skipif(not _has_ptypy(), reason="ptypy not importable (set PTYPY_SRC to a ptypy checkout)")


def ptypy_load(path: Path, tmp_path: Path) -> dict:
    out = tmp_path / (path.name + ".npz")
    subprocess.run([sys.executable, str(HERE / "ptypy_load.py"), str(path), str(out)], check=True, env=_ptypy_env(),
                   cwd=tmp_path, capture_output=True, timeout=600)
    return dict(np.load(out))


@pytest.mark.parametrize("save", ["append", "link", "merge"])
@pytest.mark.parametrize("dtype,compression", [(np.uint16, "gzip"), (np.int32, "gzip"), (np.float32, "gzip"),
                                               (np.uint16, None)])
def test_ptypy_reads_our_files(tmp_path, save, dtype, compression):
    rng = np.random.default_rng(7)
    n, h, w = 23, 16, 16
    frames = rng.integers(0, 60000, (n, h, w)).astype(dtype)
    positions = rng.standard_normal((n, 2)) * 1e-6
    weights = rng.random((n, h, w)) > 0.1
    scan = ptydask.from_arrays(frames, positions, weights, energy=6.2, distance=3.5, psize=(5.5e-5, 7.5e-5),
                               chunks=5, center=(7.5, 8.0), label="compat")
    path = ptydask.to_ptyd(scan, tmp_path / "out" / "scan.ptyd", save=save, compression=compression)
    got = ptypy_load(path, tmp_path)
    assert str(got["last"]) == "msgEOS"
    np.testing.assert_array_equal(got["data"], frames)
    np.testing.assert_array_equal(got["mask"], weights)
    np.testing.assert_array_equal(got["positions"], positions)
    np.testing.assert_array_equal(got["indices"], np.arange(n))
    np.testing.assert_array_equal(got["center"], [7.5, 8.0])
    np.testing.assert_array_equal(got["shape"], [h, w])
    np.testing.assert_array_equal(got["psize"], [5.5e-5, 7.5e-5])
    assert (float(got["energy"]), float(got["distance"]), int(got["num_frames"]), str(got["label"])) == (6.2, 3.5, n, "compat")


def test_ptypy_reads_reopened_fixture_rewritten(tmp_path, ptypy_fixtures):
    """A ptypy file read by ptydask and written again gives ptypy the same frames as the original."""
    src = ptypy_fixtures / "moonflower_append.ptyd"
    path = ptydask.to_ptyd(ptydask.open_ptyd(src), tmp_path / "again.ptyd", save="link")
    ours, theirs = ptypy_load(path, tmp_path), ptypy_load(src, tmp_path)
    for key in ("data", "mask", "positions", "center", "shape", "psize"):
        np.testing.assert_array_equal(ours[key], theirs[key])
