"""A ptypy reconstruction (DM then ML) from data prepared by ptydask's ``Hdf5Loader`` gives the same
errors as from ptypy's own ``Hdf5Loader`` on the same raw file (issue #16, done-when 3).

Needs ptypy (``PTYPY_SRC``). The raw file holds moonflower frames made by ptypy's own
``MoonFlowerScan``; each reconstruction runs in its own process: one with ptypy's
``Hdf5Loader``, one where ``ptydask.ptypy_plugin.register()`` serves that name.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

PTYPY_SRC = os.environ.get("PTYPY_SRC", "")


def _has_ptypy() -> bool:
    if PTYPY_SRC:
        return (Path(PTYPY_SRC) / "ptypy" / "__init__.py").exists()
    return importlib.util.find_spec("ptypy") is not None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not _has_ptypy(), reason="ptypy not importable (set PTYPY_SRC to a ptypy checkout)")]

MAKE_RAW = textwrap.dedent(
    """
    import h5py, numpy as np
    from ptypy import utils as u
    from ptypy.core.data import MoonFlowerScan
    u.verbose.set_level("error")
    ms = MoonFlowerScan(u.Param(shape=64, num_frames=60, save=None, density=0.2, photons=1e8, psf=0.0))
    ms.initialize()
    msg = ms.auto(1000)
    frames = np.array([it["data"] for it in msg["iterable"]])
    pos = np.array([it["position"] for it in msg["iterable"]])
    with h5py.File("raw.h5", "w") as f:
        f["entry/data"] = frames
        f["entry/y"], f["entry/x"] = pos[:, 0], pos[:, 1]
        f["entry/energy"], f["entry/distance"] = float(ms.meta.energy), float(ms.meta.distance)
        f["entry/psize"] = float(np.ravel(ms.meta.psize)[0])
    """
)

RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    import ptypy
    from ptypy.core import Ptycho
    from ptypy import utils as u

    which = sys.argv[1]
    if which == "ptypy":
        ptypy.load_ptyscan_module("hdf5_loader")
    else:
        import ptydask.ptypy_plugin as plugin
        plugin.register()
    u.verbose.set_level("error")
    p = u.Param()
    p.verbose_level = "error"
    p.io = u.Param(home="./home", rfile=None, autosave=u.Param(active=False), autoplot=u.Param(active=False),
                   interaction=u.Param(active=False))
    p.scans = u.Param()
    p.scans.MF = u.Param(name="Full")
    p.scans.MF.data = u.Param(name="Hdf5Loader", shape=64, center=[32, 32], auto_center=False, save=None)
    p.scans.MF.data.intensities = u.Param(file="raw.h5", key="entry/data")
    p.scans.MF.data.positions = u.Param(file="raw.h5", slow_key="entry/y", fast_key="entry/x")
    p.scans.MF.data.recorded_energy = u.Param(file="raw.h5", key="entry/energy")
    p.scans.MF.data.recorded_distance = u.Param(file="raw.h5", key="entry/distance")
    p.scans.MF.data.recorded_psize = u.Param(file="raw.h5", key="entry/psize")
    p.engines = u.Param()
    p.engines.e0 = u.Param(name="DM", numiter=30)
    p.engines.e1 = u.Param(name="ML", numiter=20, ML_type="Gaussian", floating_intensities=False)
    P = Ptycho(p, level=5)
    ps = P.model.scans["MF"].ptyscan
    errors = np.array([np.ravel(i["error"]) for i in P.runtime.iter_info], dtype=float)
    diff = next(iter(P.diff.storages.values())).data
    np.savez(which + ".npz", errors=errors, diff=diff, module=type(ps).__module__)
    """
)


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    if PTYPY_SRC:
        env["PYTHONPATH"] = PTYPY_SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(tmp_path: Path, script: str, *args: str) -> None:
    (tmp_path / "script.py").write_text(script)
    res = subprocess.run([sys.executable, "script.py", *args], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]


def test_dm_then_ml_errors_equal_ptypys_own_hdf5loader(tmp_path: Path) -> None:
    _run(tmp_path, MAKE_RAW)
    _run(tmp_path, RUN, "ptypy")
    _run(tmp_path, RUN, "ptydask")
    theirs, ours = np.load(tmp_path / "ptypy.npz"), np.load(tmp_path / "ptydask.npz")
    assert "ptypy.experiment.hdf5_loader" == str(theirs["module"])
    assert "ptydask.ptypy_plugin" == str(ours["module"])
    np.testing.assert_array_equal(ours["diff"], theirs["diff"])  # the same prepared frames
    assert theirs["errors"].shape == (50, 3) and np.isfinite(theirs["errors"]).all()
    assert theirs["errors"][-1, 0] < theirs["errors"][0, 0]  # a real reconstruction: the error falls
    np.testing.assert_allclose(ours["errors"], theirs["errors"], rtol=1e-6, atol=0)
