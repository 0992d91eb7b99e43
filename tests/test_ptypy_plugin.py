"""``ptydask.ptypy_plugin``: ``p.scans.X.data.name = 'PtydaskScan'`` inside ``ptypy.core.Ptycho``.

The reconstruction runs in a subprocess with ptypy on ``PYTHONPATH`` (skipped
unless ``PTYPY_SRC`` points at a ptypy checkout); the diffraction data ptypy
received must equal ptydask's own preparation of the same raw file.
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

from ptydask.errors import ParameterError
from ptydask.ptypy_plugin import build_scan, load_spec

PTYPY_SRC = os.environ.get("PTYPY_SRC", "")
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "ptypy"
RECIPE_CASES = ["case_peak_auto_center_mask", "case_crop_orient3_rebin2", "case_edge_pad"]


def _has_ptypy() -> bool:
    if PTYPY_SRC:
        return (Path(PTYPY_SRC) / "ptypy" / "__init__.py").exists()
    return importlib.util.find_spec("ptypy") is not None


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if PTYPY_SRC:
        env["PYTHONPATH"] = PTYPY_SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ptypy.core import Ptycho
    from ptypy import utils as u
    import ptydask.ptypy_plugin as plugin
    from ptydask.simulate import KEYS, SimulatedScan, write_raw

    model, engine, recipe_file = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None
    assert plugin.register() is plugin.register()  # idempotent
    sim = SimulatedScan(num_frames=30, frame_shape=(64, 64), beam_center=(34.0, 30.0), hot_pixels=((5, 60),),
                        dead_column=17, dead_block=(slice(50, 52), slice(20, 22)))
    raw = write_raw("raw.h5", sim)
    recipe = {"positions": {"slow_key": KEYS["y"], "fast_key": KEYS["x"]},
              "recorded_energy": {"key": KEYS["energy"]}, "recorded_distance": {"key": KEYS["distance"]},
              "recorded_psize": {"key": KEYS["psize"]}}
    u.verbose.set_level("error")
    p = u.Param()
    p.verbose_level = "error"
    p.io = u.Param(home="./home", autosave=u.Param(active=False), autoplot=u.Param(active=False),
                   interaction=u.Param(active=False))
    p.scans = u.Param()
    p.scans.S = u.Param(name=model)
    if recipe_file:
        p.scans.S.data = u.Param(name="PtydaskScan", recipe=recipe_file)
    else:
        p.scans.S.data = u.Param(name="PtydaskScan", source=str(raw), key=KEYS["frames"], spec=json.dumps(recipe),
                                 shape=48, center=None, save=None)
    p.scans.S.illumination = u.Param(aperture=u.Param(form="circ", size=3e-6))
    p.engines = u.Param()
    p.engines.e0 = u.Param(name=engine, numiter=3)
    P = Ptycho(p, level=5)
    diff = next(iter(P.diff.storages.values())).data
    mask = next(iter(P.mask.storages.values())).data
    ps = P.model.scans["S"].ptyscan
    errors = [list(map(float, np.ravel(i["error"]))) for i in P.runtime.iter_info]
    np.savez("out.npz", diff=diff, mask=mask, center=np.asarray(ps.meta.center, float), energy=ps.meta.energy,
             psize=np.asarray(ps.meta.psize, float), cls=type(ps).__name__, iters=len(P.runtime.iter_info),
             errors=np.array(errors), mro=str([c.__module__ for c in type(ps).__mro__]))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not _has_ptypy(), reason="ptypy not importable (set PTYPY_SRC to a ptypy checkout)")
@pytest.mark.parametrize("model, engine", [("BlockFull", "DM"), ("Full", "EPIE")])
def test_ptycho_runs_with_ptydask_scan(tmp_path: Path, model: str, engine: str) -> None:
    (tmp_path / "run.py").write_text(RUN)
    res = subprocess.run([sys.executable, "run.py", model, engine], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    out = np.load(tmp_path / "out.npz")
    assert str(out["cls"]) == "PtydaskScan" and "ptypy.core.data" in str(out["mro"])
    assert int(out["iters"]) == 3 and np.isfinite(out["errors"]).all()

    import ptydask
    from ptydask.simulate import KEYS
    from ptydask.sources import open_frames
    from ptydask.steps import prepare

    raw = tmp_path / "raw.h5"
    scan = open_frames(raw, KEYS["frames"], positions={"slow_key": KEYS["y"], "fast_key": KEYS["x"]},
                       recorded_energy={"key": KEYS["energy"]}, recorded_distance={"key": KEYS["distance"]},
                       recorded_psize={"key": KEYS["psize"]})
    ref = prepare(scan, shape=48, center=None)
    diff = out["diff"]
    assert diff.shape == (30, 48, 48)
    np.testing.assert_allclose(diff, ref["data"].values.astype(diff.dtype))
    np.testing.assert_allclose(out["center"], ptydask.meta_of(ref)["center"])
    assert float(out["energy"]) == pytest.approx(8.0)
    np.testing.assert_allclose(out["psize"], [75e-6, 75e-6])


def test_importing_ptydask_never_imports_ptypy() -> None:
    code = ("import sys, ptydask, ptydask.ptyscan, ptydask.packages, ptydask.live, ptydask.ptypy_plugin; "
            "print('ptypy' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_register_without_ptypy_returns_none() -> None:
    if importlib.util.find_spec("ptypy") is not None:
        pytest.skip("ptypy is installed in this interpreter")
    code = "import ptydask.ptypy_plugin as p; print(p.register())"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "None", res.stderr


def test_load_spec(tmp_path: Path) -> None:
    assert load_spec(None) == {} and load_spec('{"a": 1}') == {"a": 1}
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"positions": {"slow_key": "y"}}))
    assert load_spec(str(f)) == {"positions": {"slow_key": "y"}}
    with pytest.raises(ParameterError, match="spec"):
        load_spec("{not json")
    with pytest.raises(ParameterError, match="spec"):
        load_spec(str(tmp_path / "missing.json"))
    with pytest.raises(ParameterError, match="source"):
        build_scan({"name": "PtydaskScan", "spec": None})


def _fixture_frames(case: str) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(FIXTURES / f"{case}.ptyd", "r") as f:
        keys = sorted(f["chunks"], key=int)
        return (np.concatenate([f["chunks"][k]["data"][()] for k in keys]),
                np.concatenate([f["chunks"][k]["weights"][()] for k in keys]))


@pytest.mark.filterwarnings("ignore:shape. non-square")
@pytest.mark.parametrize("case", RECIPE_CASES)
def test_recipe_file_through_plugin_matches_ptypy(case: str) -> None:
    """The PtyScan that ptypy would drive, built from a ptydask recipe file (no ptypy needed)."""
    recipe = FIXTURES / f"{case}.recipe.json"
    if not recipe.exists():
        pytest.skip("fixtures not found")
    pytest.importorskip("ptydask.recipe")
    ps = build_scan({"name": "PtydaskScan", "recipe": str(recipe), "save": None, "dfile": None})
    ps.initialize()
    frames, weights = [], []
    while True:
        msg = ps.auto(100000)
        if msg in (ps.WAIT, ps.EOS):
            break
        frames += [it["data"] for it in msg["iterable"]]
        weights += [msg["chunk"].weights[i] for i in msg["chunk"].indices_node]
    assert msg == ps.EOS
    ref_data, ref_weights = _fixture_frames(case)
    np.testing.assert_array_equal(np.stack(frames), ref_data)
    np.testing.assert_array_equal(np.stack(weights) > 0, ref_weights > 0)


@pytest.mark.slow
@pytest.mark.skipif(not _has_ptypy(), reason="ptypy not importable (set PTYPY_SRC to a ptypy checkout)")
def test_ptycho_with_recipe_file(tmp_path: Path) -> None:
    case = "case_peak_auto_center_mask"
    recipe = FIXTURES / f"{case}.recipe.json"
    if not recipe.exists():
        pytest.skip("fixtures not found")
    (tmp_path / "run.py").write_text(RUN)
    res = subprocess.run([sys.executable, "run.py", "BlockFull", "DM", str(recipe)], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    out = np.load(tmp_path / "out.npz")
    ref_data, ref_weights = _fixture_frames(case)
    np.testing.assert_allclose(out["diff"], ref_data.astype(out["diff"].dtype))
    np.testing.assert_array_equal(out["mask"], ref_weights > 0)
    np.testing.assert_allclose(out["center"], [16.0, 16.0])
    assert float(out["energy"]) == pytest.approx(6.2) and int(out["iters"]) == 3
