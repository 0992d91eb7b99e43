"""A PtyScan subclass written for ptypy runs on ptydask with only its import changed (issue #16, deliver 3).

The same class body - ptypy's ``@register()`` decorator (``defaults_tree.parse_doc``),
a ``Defaults:`` docstring, hooks returning ptypy's types (``u.Param`` common data,
dicts of frames) - is built once on ptypy's ``PtyScan`` and once on ptydask's; both
must give the same packages. Needs ptypy (``PTYPY_SRC``).
"""

from __future__ import annotations

import importlib.util
import json
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


pytestmark = pytest.mark.skipif(not _has_ptypy(), reason="ptypy not importable (set PTYPY_SRC to a ptypy checkout)")

SCRIPT = textwrap.dedent(
    '''
    import sys
    import numpy as np
    from ptypy import utils as u
    from ptypy.experiment import register
    if sys.argv[1] == "ptypy":
        from ptypy.core.data import PtyScan
    else:
        from ptydask.ptyscan import PtyScan  # the only change

    @register()
    class ToyScan(PtyScan):
        """A toy beamline module.

        Defaults:

        [name]
        default = ToyScan
        type = str
        help =

        [npts]
        default = 7
        type = int
        help = Number of scan points

        [level]
        default = 3.0
        type = float
        help = Dark level subtracted in correct()
        """

        def __init__(self, pars=None, **kwargs):
            p = self.DEFAULT.copy(99)
            p.update(pars, in_place_depth=99)
            super(ToyScan, self).__init__(p, **kwargs)
            self.meta.energy = 6.5  # a recorded value, as beamline modules set it

        def load_positions(self):
            i = np.arange(self.info.npts)
            return np.stack([i * 1e-6, -i * 2e-6], axis=1)

        def load_weight(self):
            w = np.ones((20, 20))
            w[3, 4] = 0
            return w

        def load_common(self):
            return u.Param(dark=np.full((20, 20), self.info.level))

        def load(self, indices):
            yy, xx = np.mgrid[:20, :20]
            raw = {i: 10.0 + i + np.exp(-((yy - 9) ** 2 + (xx - 11) ** 2) / 8.0) * 100 for i in indices}
            return raw, {}, {}

        def correct(self, raw, weights, common):
            return {i: np.clip(f - common.dark, 0, None) for i, f in raw.items()}, weights

    u.verbose.set_level("error")
    scan = ToyScan(u.Param(shape=12, center=None, auto_center=True, rebin=2, orientation=3))
    scan.initialize()
    assert "npts" in scan.DEFAULT and scan.info.npts == 7
    pkgs = [scan.auto(4), scan.auto(4)]
    assert scan.auto(4) == scan.EOS
    its = [it for pkg in pkgs for it in pkg["iterable"]]
    m = pkgs[0]["common"]
    np.savez(sys.argv[1] + ".npz", data=np.array([it["data"] for it in its]), mask=np.array([it["mask"] for it in its]),
             pos=np.array([it["position"] for it in its]), idx=np.array([it["index"] for it in its]),
             center=np.asarray(m["center"], float), shape=np.asarray(m["shape"]), psize=np.asarray(m["psize"], float),
             energy=float(m["energy"]), num_frames=int(m["num_frames"]),
             mro=str([c.__module__ for c in type(scan).__mro__]))
    '''
)


def test_subclass_written_for_ptypy_gives_ptypys_packages(tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg")
    if PTYPY_SRC:
        env["PYTHONPATH"] = PTYPY_SRC + os.pathsep + env.get("PYTHONPATH", "")
    (tmp_path / "toy.py").write_text(SCRIPT)
    for which in ("ptypy", "ptydask"):
        res = subprocess.run([sys.executable, "toy.py", which], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-4000:]
    theirs, ours = np.load(tmp_path / "ptypy.npz"), np.load(tmp_path / "ptydask.npz")
    assert "ptydask.ptyscan.core" in str(ours["mro"]) and "ptydask" not in str(theirs["mro"])
    for key in ("idx", "pos", "mask", "center", "shape", "psize", "energy", "num_frames"):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    np.testing.assert_allclose(ours["data"], theirs["data"], rtol=1e-12)
    assert ours["data"].shape == (7, 6, 6)


LEGACY = textwrap.dedent(
    '''
    import json, sys
    from ptypy import utils as u
    import ptypy.core.data as data
    if sys.argv[1] == "ptydask":
        import ptydask.ptyscan
        data.PtyScan = ptydask.ptyscan.PtyScan  # what "only the import changed" means for a module we cannot edit
    from ptypy.experiment.legacy.I08 import I08Scan
    from ptypy.experiment.legacy.DLS import DlsScan
    u.verbose.set_level(0)
    out = {"mro": [c.__module__ for c in DlsScan.__mro__],
           "defaults": {c.__name__: sorted(c.DEFAULT) for c in (I08Scan, DlsScan)}}
    dls = DlsScan(u.Param(base_path=".", scan_number=3, shape=64))
    out["dls"] = [int(dls.info.scan_number), dls.info.base_path, int(dls.info.shape)]
    try:
        I08Scan(u.Param(base_path=".", scan_number=3))
    except AttributeError as exc:  # ptypy's I08Scan reads info.date, which it never declares
        out["i08"] = str(exc)
    print(json.dumps(out))
    '''
)


def test_ptypy_legacy_beamline_modules_import_and_construct_on_ptydask(tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg")
    if PTYPY_SRC:
        env["PYTHONPATH"] = PTYPY_SRC + os.pathsep + env.get("PYTHONPATH", "")
    (tmp_path / "legacy.py").write_text(LEGACY)
    got = {}
    for which in ("ptypy", "ptydask"):
        res = subprocess.run([sys.executable, "legacy.py", which], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-4000:]
        got[which] = json.loads(res.stdout.strip().splitlines()[-1])
    assert "ptydask.ptyscan.core" in got["ptydask"]["mro"] and "ptydask.ptyscan.core" not in got["ptypy"]["mro"]
    ours_keys, theirs_keys = got["ptydask"]["defaults"], got["ptypy"]["defaults"]
    for name in ("I08Scan", "DlsScan"):  # ptydask adds only its own PtyScan extensions
        assert set(theirs_keys[name]) <= set(ours_keys[name])
        assert set(ours_keys[name]) - set(theirs_keys[name]) <= {"overwrite", "rebin_mode", "load_block"}
    assert got["ptydask"]["dls"] == got["ptypy"]["dls"] == [3, ".", 64]
    assert got["ptydask"]["i08"] == got["ptypy"]["i08"]
