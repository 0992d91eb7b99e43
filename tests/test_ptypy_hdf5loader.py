"""ptydask.ptyscan.Hdf5Loader: ptypy's generic loader and its parameter tree, serial and under MPI.

The MPI part runs ``tests/mpi/hdf5loader_worker.py`` under ``mpiexec -n 3``: each rank's
frames must be ptypy's split (the worked example of ptyscan-semantics.md §6.2, and
ptypy's own ``LoadManager`` when ``PTYPY_SRC`` is set) and equal the serial frames.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptydask.errors import ParameterError, RecipeError
from ptydask.ptyscan import EOS, Hdf5Loader
from ptydask.steps import prepare

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "mpi"))
from scenario import loader_pars, make_raw, open_raw  # noqa: E402

PTYPY_SRC = os.environ.get("PTYPY_SRC", "")
CHUNKS = (10, 10, 3)
#: ptypy's split of chunks of 10, 10, 3 frames over 3 ranks (the worked example of ptyscan-semantics.md §6.2).
SPEC_SPLIT = [[0, 1, 2, 10, 11, 12, 20], [3, 4, 5, 13, 14, 15, 16, 21], [6, 7, 8, 9, 17, 18, 19, 22]]


def _frames(scan: Hdf5Loader, chunks: tuple[int, ...]) -> dict[int, tuple]:
    out = {}
    for n in chunks:
        pkg = scan.auto(n)
        for it in pkg["iterable"]:
            out[it["index"]] = (it["data"], it["mask"], it["position"])
    assert scan.auto(1) == EOS
    return out


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return make_raw(tmp_path_factory.mktemp("h5l") / "raw.h5")


def test_serial_frames_equal_prepare_of_the_same_source(raw):
    scan = Hdf5Loader(loader_pars(raw))
    scan.initialize()
    got = _frames(scan, (7, 100))
    p = loader_pars(raw)
    ref = prepare(open_raw(raw), shape=32, center=tuple(p["center"]), auto_center=False, rebin=2)
    assert sorted(got) == list(range(ref.sizes["frame"]))
    for i, (data, mask, pos) in got.items():
        np.testing.assert_array_equal(data, ref["data"].values[i])
        np.testing.assert_array_equal(mask, ref["weights"].values[i] > 0 if ref["weights"].ndim == 3
                                      else ref["weights"].values > 0)
        np.testing.assert_array_equal(pos, ref["positions"].values[i])
    assert scan.meta.energy == ref.attrs["energy"] and scan.meta.distance == ref.attrs["distance"]


def test_ptypy_style_tree_with_numpy_values_and_raster_positions(tmp_path):
    import h5py

    a, b = 3, 4
    data = np.arange(a * b * 8 * 8, dtype=np.float64).reshape(a, b, 8, 8)
    fast, slow = np.meshgrid(np.arange(b) * 1e-6, np.arange(a) * 2e-6)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["entry/data"] = data
        f["y"], f["x"] = slow[..., None, None], fast[..., None, None]  # trailing singleton axes
    pars = {"intensities": {"file": str(tmp_path / "r.h5"), "key": "entry/data"},
            "positions": {"slow_key": "y", "fast_key": "x"}, "auto_center": False,
            "frameorder": {"indices": np.array([5, 0, 1])}}
    scan = Hdf5Loader(pars)
    scan.initialize()
    got = _frames(scan, (10,))
    order = [5, 0, 1]
    np.testing.assert_array_equal(np.array([got[i][0] for i in range(3)]), data.reshape(-1, 8, 8)[order])
    np.testing.assert_array_equal(np.array([got[i][2] for i in range(3)]),
                                  np.stack([slow.ravel(), fast.ravel()], axis=1)[order])


def test_explicit_key_wins_over_an_entry_1_group(tmp_path):
    import h5py

    data = np.arange(4 * 8 * 8, dtype=np.float64).reshape(4, 8, 8)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["entry_1/frames"] = data
        f["entry_1/y"], f["entry_1/x"] = np.arange(4) * 1e-6, np.arange(4) * 2e-6
    scan = Hdf5Loader({"intensities": {"file": str(tmp_path / "r.h5"), "key": "entry_1/frames"},
                       "positions": {"slow_key": "entry_1/y", "fast_key": "entry_1/x"}, "auto_center": False})
    scan.initialize()
    got = _frames(scan, (10,))
    np.testing.assert_array_equal(np.array([got[i][0] for i in range(4)]), data)


def test_bad_parameters_name_the_key(tmp_path):
    with pytest.raises(RecipeError, match="intensities.file"):
        Hdf5Loader({"intensities": {"file": str(tmp_path / "missing.h5"), "key": "d"}})
    with pytest.raises(ParameterError, match="bogus"):
        Hdf5Loader({"bogus": 1})


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


@pytest.mark.mpi
@pytest.mark.parametrize("load_parallel", ["data", "all", "common", "None"])
def test_mpi_three_ranks_split_as_ptypy_and_give_the_serial_frames(raw, tmp_path, load_parallel):
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec: pip install 'ptydask[mpi]' (mpi4py + the mpich wheel)")
    pytest.importorskip("mpi4py")
    paths = [str(HERE.parent)] + ([PTYPY_SRC] if PTYPY_SRC else []) + [os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    cmd = [mpiexec, "-n", "3", sys.executable, str(HERE / "mpi" / "hdf5loader_worker.py"), str(raw), str(tmp_path),
           ",".join(map(str, CHUNKS)), load_parallel]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n 3 did not finish in 300 s (deadlock?):\n{exc.stderr}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    serial = Hdf5Loader(loader_pars(raw), num_frames=sum(CHUNKS))
    serial.initialize()
    reference = _frames(serial, CHUNKS)
    for r in range(3):
        got = dict(np.load(tmp_path / f"rank{r}.npz"))
        assert got["flat"].tolist() == SPEC_SPLIT[r]
        ptypy_split = tmp_path / f"rank{r}_ptypy.json"
        if PTYPY_SRC:
            assert json.loads(str(got["chunks"])) == json.loads(ptypy_split.read_text())
        for j, i in enumerate(got["flat"]):
            np.testing.assert_array_equal(got["data"][j], reference[int(i)][0])
            np.testing.assert_array_equal(got["mask"][j], reference[int(i)][1])
            np.testing.assert_array_equal(got["positions"][j], reference[int(i)][2])
