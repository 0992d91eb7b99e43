"""One path for metadata (issue 17): the recipe, the API and the CLI write the same file for every real file.

What a file knows (geometry with units, mask, positions) reaches the Scan through ``open_frames``;
a recipe that names only the frames must write that, not ptypy's default geometry, and an explicit
recipe value must override it. Each real file of ``../shared/data/real`` is prepared three ways:
``open_frames`` + ``prepare`` + ``to_ptyd`` (the API), ``run_recipe`` and ``ptydask prepare``;
the three files must hold identical frames, weights, positions and meta.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import ptydask
from ptydask.cli import main
from ptydask.errors import ScanError
from ptydask.params.registry import param
from ptydask.recipe import run_recipe

R = "ptycho_xray/cdtools_PETRAIII_P25_Near_Field_Ptycho.cxi"
#: (file under data/real, frames key or None, frames) for every real file ptydask reads
CASES = {
    "cxi": (R, None, 200),
    "cxi-key": (R, "entry_1/instrument_1/detector_1/data", 200),
    "nexus-series": ("xray_area_detector/nexus_aps/nexus-example.hdf5", "entry/data/frames", 10),
    "nexus-agbeh": ("xray_area_detector/nexus_aps/AgBehenate_228.hdf5", "entry/data/data", 1),
    "lambda": ("xray_area_detector/dioptas_lambda_3module/testasapo1_1009_00002_m1_part00000.nxs",
               "entry/instrument/detector/data", 10),
    "pilatus-tiff": ("xray_area_detector/dioptas_pilatus1M/CeO2_Pilatus1M.tif", None, 1),
    "cbf": ("xray_area_detector/dials_misc/DLS_I03_smargon_0001.cbf.gz", None, 1),
    "merlin": ("4dstem_electron/merlin_mib/001_4x2_6bit.mib", None, 8),
    "arina": ("4dstem_electron/arina_blank_format_only/test_00_master.h5", None, 16),
    "smv": ("electron_diffraction/TIMEPIX_SU_512-stdgoni_0001.img", None, 1),
    "dm3": ("electron_diffraction/rsciio_test_diffraction_pattern.dm3", None, 1),
}
PREPARE = dict(shape=32, center="fftshift")


def _recipe(path: Path, key: str | None, frames: int, has_positions: bool, out: Path, **extra) -> dict:
    recipe: dict = {"intensities": {"file": str(path)}, "shape": 32, "dfile": str(out), **extra}
    if key is not None:
        recipe["intensities"]["key"] = key
    if not has_positions:
        recipe["positions_theory"] = [[1e-6 * i, 0.0] for i in range(frames)]
    return recipe


def _read(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        names = sorted(f["chunks"], key=int)
        out = {k: np.concatenate([f["chunks"][n][k][()] for n in names]) for k in ("data", "weights", "positions")}
        out.update({f"meta/{k}": f["meta"][k][()] for k in f["meta"]})
    return out


def _same(a: dict, b: dict, what: str) -> None:
    assert sorted(a) == sorted(b), what
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


@pytest.mark.parametrize("case", list(CASES))
def test_recipe_api_and_cli_write_the_same_file(real_data, tmp_path: Path, case: str) -> None:
    name, key, frames = CASES[case]
    path = real_data / name
    if name.endswith(".dm3"):
        pytest.importorskip("rsciio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # non-square frames made square, as ptypy does
        raw = ptydask.open_frames(str(path), key)
        for q in ("energy", "distance", "psize"):  # what the file does not know: ptypy's default, as recipes do
            if raw.attrs[q] is None:
                value = param(q).default
                raw.attrs[q] = (value, value) if q == "psize" else value
        has_positions = "positions" in raw
        if not has_positions:
            raw = raw.assign(positions=(("frame", "axis"), np.array([[1e-6 * i, 0.0] for i in range(frames)])))
        api = tmp_path / "api.ptyd"
        ptydask.to_ptyd(ptydask.prepare(raw, **PREPARE), api)
        by_recipe = tmp_path / "recipe.ptyd"
        run_recipe(_recipe(path, key, frames, has_positions, by_recipe))
        recipe_file = tmp_path / "r.json"
        by_cli = tmp_path / "cli.ptyd"
        recipe_file.write_text(json.dumps(_recipe(path, key, frames, has_positions, by_cli)))
        assert main(["prepare", str(recipe_file), "--no-progress"]) == 0
    a, b, c = _read(api), _read(by_recipe), _read(by_cli)
    for q in ("energy", "distance"):
        assert a[f"meta/{q}"] == raw.attrs[q]
    _same(a, b, f"{case}: API vs recipe")
    _same(a, c, f"{case}: API vs CLI")


def test_cxi_geometry_mask_and_positions_reach_the_recipe(real_data, tmp_path: Path) -> None:
    """The issue's case: a recipe naming only the CXI frames wrote 7.2 keV, 7.19 m, 172 um and no mask."""
    out = tmp_path / "cxi.ptyd"
    run_recipe({"intensities": {"file": str(real_data / R)}, "shape": 64, "dfile": str(out)})
    got = _read(out)
    np.testing.assert_allclose(got["meta/energy"], 12.658, rtol=1e-4)
    np.testing.assert_allclose(got["meta/distance"], 1.12, rtol=1e-6)
    np.testing.assert_allclose(got["meta/psize"], 55e-6, rtol=1e-6)
    with h5py.File(real_data / R, "r") as f:
        bad = f["entry_1/instrument_1/detector_1/mask"][()] != 0
    assert bad.sum() == 5 and (got["weights"] == 0).sum() >= 1  # the file's mask (inside the 64x64 ROI)


def test_explicit_recipe_values_override_the_file(real_data, tmp_path: Path) -> None:
    out = tmp_path / "given.ptyd"
    run_recipe({"intensities": {"file": str(real_data / R)}, "shape": 64, "dfile": str(out), "energy": 8.0,
                "distance": 2.0})
    got = _read(out)
    assert got["meta/energy"] == 8.0 and got["meta/distance"] == 2.0
    np.testing.assert_allclose(got["meta/psize"], 55e-6, rtol=1e-6)  # not given: the file's


def test_recorded_values_honour_units_unless_a_multiplier_is_given(tmp_path: Path) -> None:
    """NeXus ``units`` attributes: 12000 eV is 12 keV, 55 micrometer is 55e-6 m; an explicit multiplier
    keeps ptypy's meaning (the stored number times the multiplier)."""
    path = tmp_path / "nx.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.ones((2, 8, 8), np.uint16)
        f["x"], f["y"] = np.zeros(2), np.arange(2.0)
        f["beam_energy"] = 12000.0
        f["beam_energy"].attrs["units"] = "eV"
        f["pixel"] = 55.0
        f["pixel"].attrs["units"] = "micrometer"
    base = {"intensities": {"file": str(path), "key": "data"}, "shape": 8,
            "positions": {"slow_key": "y", "fast_key": "x"},
            "recorded_energy": {"key": "beam_energy"}, "recorded_psize": {"key": "pixel"}}
    run_recipe({**base, "dfile": str(tmp_path / "a.ptyd")})
    got = _read(tmp_path / "a.ptyd")
    np.testing.assert_allclose(got["meta/energy"], 12.0)
    np.testing.assert_allclose(got["meta/psize"], 55e-6)
    run_recipe({**base, "recorded_energy": {"key": "beam_energy", "multiplier": 1e-3}, "dfile": str(tmp_path / "b.ptyd")})
    np.testing.assert_allclose(_read(tmp_path / "b.ptyd")["meta/energy"], 12.0)


def test_dry_run_shows_where_each_value_came_from(real_data, tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"intensities": {"file": str(real_data / R)}, "shape": 64, "energy": 9.5}))
    assert main(["prepare", str(recipe), "--dry-run", "--dfile", str(tmp_path / "o.ptyd")]) == 0
    text = capsys.readouterr().out
    geometry = text[text.index("geometry and metadata"):]
    assert "energy      9.5 keV  [recipe (" in geometry
    assert "distance    1.12 m  [source file" in geometry and "detector_1/distance (1.12 m)" in geometry
    assert "mask        source file entry_1/instrument_1/detector_1/mask (bad)" in geometry
    assert "positions   source file" in geometry and "translation" in geometry
    assert "distance                                = 7.19 m  [default; not used" in text
    assert not (tmp_path / "o.ptyd").exists()


def test_missing_positions_fail_the_dry_run_in_one_line(real_data, tmp_path: Path, capsys) -> None:
    """A source without positions and none named: refused before any work, naming the keys to set."""
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"intensities": {"file": str(real_data / CASES["merlin"][0])}, "shape": 32}))
    for extra in (["--dry-run"], []):
        assert main(["prepare", str(recipe), "--dfile", str(tmp_path / "o.ptyd"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds no scan positions" in err[0] and "positions.slow_key" in err[0]
    assert not (tmp_path / "o.ptyd").exists()
    with pytest.raises(ScanError, match="positions_theory"):
        run_recipe(json.loads(recipe.read_text()) | {"dfile": str(tmp_path / "o.ptyd")})


@pytest.mark.parametrize("extra", [{"shape": 10**6}, {"shape": 64, "padding": [10**5, 10**5, 10**5, 10**5]}])
def test_frames_too_large_for_memory_are_refused_by_the_dry_run(real_data, tmp_path: Path, capsys, extra) -> None:
    """A ROI or padding bigger than memory: one line naming the parameter, at --dry-run, not a MemoryError."""
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"intensities": {"file": str(real_data / R)}, **extra}))
    for more in (["--dry-run"], []):
        assert main(["prepare", str(recipe), "--dfile", str(tmp_path / "o.ptyd"), *more]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        name = "padding" if "padding" in extra else "shape"
        assert len(err) == 1 and f"{name}: " in err[0] and "GiB" in err[0] and "fit this machine" in err[0]
    assert not (tmp_path / "o.ptyd").exists()


def test_cli_writes_cxi_that_open_frames_reads_back(real_data, tmp_path: Path) -> None:
    """``ptydask prepare --format cxi``: the prepared frames, weights, positions and geometry of the API,
    in the CXI layout, read back by ``open_frames`` (issue 15)."""
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"intensities": {"file": str(real_data / R)}, "shape": 64}))
    out = tmp_path / "prepared.cxi"
    assert main(["prepare", str(recipe), "--dfile", str(out), "--format", "cxi", "--no-progress"]) == 0
    api = ptydask.prepare(ptydask.open_frames(str(real_data / R)), shape=64, center="fftshift")
    back = ptydask.open_frames(str(out))
    np.testing.assert_array_equal(back["data"].values, api["data"].values)
    np.testing.assert_array_equal(back["weights"].values > 0, api["weights"].values > 0)
    np.testing.assert_allclose(back["positions"].values, api["positions"].values, rtol=1e-12, atol=1e-15)
    for q in ("energy", "distance"):
        np.testing.assert_allclose(back.attrs[q], api.attrs[q], rtol=1e-9)
    np.testing.assert_allclose(back.attrs["psize"], api.attrs["psize"], rtol=1e-9)
    assert main(["prepare", str(recipe), "--dfile", str(out), "--format", "cxi", "--resume"]) == 2
