"""``ptydask prepare``: the fixture recipes end to end, dry runs, overrides, summaries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptydask.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("PTYDASK_SHARED", REPO.parent / "shared")) / "fixtures" / "ptypy"
RECIPES = sorted(FIXTURES.glob("case_*.recipe.json"))


def read_ptyd(path: Path) -> dict:
    """Everything a comparison needs, read with plain h5py; chunks concatenated in integer order."""
    with h5py.File(path, "r") as f:
        names = sorted(f["chunks"], key=int)
        out = {k: np.concatenate([f["chunks"][n][k][()] for n in names]) for k in ("data", "weights", "positions", "indices")}
        out["meta"] = {k: f["meta"][k][()] for k in f["meta"]}
        out["meta_tags"] = {k: f["meta"][k].attrs.get("type") for k in f["meta"]}
        out["chunk_names"] = names
    return out


@pytest.mark.skipif(not RECIPES, reason=f"no fixture recipes at {FIXTURES}")
@pytest.mark.filterwarnings("ignore:shape. non-square ROI")
@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name.split(".")[0] for p in RECIPES])
def test_fixture_recipe_matches_ptypy(recipe: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative raw paths must resolve against the recipe's folder, not here
    out = tmp_path / "out.ptyd"
    assert main(["prepare", str(recipe), "--dfile", str(out), "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    ref = read_ptyd(recipe.with_name(recipe.name.replace(".recipe.json", ".ptyd")))
    got = read_ptyd(out)
    for key in ("data", "weights", "positions", "indices"):
        assert got[key].dtype == ref[key].dtype, key
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert set(got["meta"]) == set(ref["meta"])
    for key, value in ref["meta"].items():
        assert got["meta_tags"][key] == ref["meta_tags"][key], key
        np.testing.assert_array_equal(got["meta"][key], value, err_msg=key)
        assert np.asarray(got["meta"][key]).dtype == np.asarray(value).dtype, key
    assert got["chunk_names"] == [str(i) for i in range(len(got["chunk_names"]))]
    n, h, w = ref["data"].shape
    assert line.startswith(f"wrote {n} frames of {h}x{w} {ref['data'].dtype}, centre ") and str(out) in line
    assert line.count("\n") == 0 and line.endswith(" s")


@pytest.mark.skipif(not RECIPES, reason=f"no fixture recipes at {FIXTURES}")
def test_dry_run_plan_names_values_origins_and_writes_nothing(tmp_path: Path, capsys) -> None:
    recipe = FIXTURES / "case_orient5_rebin2.recipe.json"
    out = tmp_path / "never.ptyd"
    code = main(["prepare", str(recipe), "--dry-run", "--dfile", str(out), "--set", "rebin=4", "--set", "label=x y"])
    assert code == 0
    text = capsys.readouterr().out
    assert not out.exists() and list(tmp_path.iterdir()) == []
    lines = {ln.split("=")[0].strip(): ln for ln in text.splitlines() if " = " in ln}
    assert lines["rebin"].endswith("= 4  [command line]")
    assert lines["label"].endswith("= 'x y'  [command line]")
    assert lines["orientation"].endswith("= 5  [recipe]")
    assert lines["auto_center"].endswith("= null  [default]")
    assert lines["shape"].endswith("= 32 px  [recipe]")
    assert lines["dfile"].endswith(f"= {str(out)!r}  [command line]")
    assert f"intensities {(FIXTURES / 'raw_test.h5').resolve()}:entry/data" in text  # paths are shown resolved
    assert "30 of 30 frames of 40x48 uint32" in text
    assert f"{out} (new); save append" in text


@pytest.mark.skipif(not RECIPES, reason=f"no fixture recipes at {FIXTURES}")
def test_set_overrides_and_refuses_existing_output(tmp_path: Path, capsys) -> None:
    recipe = FIXTURES / "case_orient5_rebin2.recipe.json"
    out = tmp_path / "s.ptyd"
    args = ["prepare", str(recipe), "--dfile", str(out), "--set", "rebin=4", "--set", "frames_per_block=8",
            "--set", "save=link"]
    assert main(args) == 0
    capsys.readouterr()
    with h5py.File(out, "r") as f:
        assert f["meta/shape"][()].tolist() == [8, 8]
        assert sorted(f["chunks"], key=int) == ["0", "1", "2", "3"]
        assert [f["chunks"][n]["data"].shape[0] for n in ("0", "1", "2", "3")] == [8, 8, 8, 6]
        assert f["chunks"].get("0", getlink=True).filename == "s.ptyd.chunk00"
        recipe_info = f["info/recipe"]
        assert recipe_info["rebin"][()] == 4
    before = out.stat().st_mtime_ns
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("ptydask: error: ") and "exists" in err and err.count("\n") == 1
    assert out.stat().st_mtime_ns == before
    assert main(args + ["--overwrite", "--set", "save=append"]) == 0
    with h5py.File(out, "r") as f:
        assert not isinstance(f["chunks"].get("0", getlink=True), h5py.ExternalLink)


def test_yaml_recipe_with_relative_paths_and_ptypy_numbers(tmp_path: Path, capsys) -> None:
    """A YAML recipe in ptypy's vocabulary; ``75e-6`` (no dot) is a number; paths are relative to the recipe."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "raw.h5"
    raw.parent.mkdir()
    frames = rng.integers(0, 50, (6, 10, 12), dtype=np.uint16)
    with h5py.File(raw, "w") as f:
        f["d"] = frames
        f["y"] = np.arange(6) * 1.0
        f["x"] = np.arange(6) * 2.0
    (tmp_path / "data" / "r.yaml").write_text(
        "name: Hdf5Loader\npsize: 75e-6\nenergy: 8\ndistance: 2.0\ncenter: [5, 6]\norientation: 1\n"
        "dfile: ../out/scan.ptyd\nintensities: {file: raw.h5, key: d}\n"
        "positions:\n  file: raw.h5\n  slow_key: y\n  fast_key: x\n  slow_multiplier: 1.0e-6\n"
    )
    assert main(["prepare", str(tmp_path / "data" / "r.yaml")]) == 0
    assert "wrote 6 frames of 10x10 uint16" in capsys.readouterr().out
    with h5py.File(tmp_path / "out" / "scan.ptyd", "r") as f:
        np.testing.assert_array_equal(f["chunks/0/data"][()], frames[:, :, 1:11][:, :, ::-1])
        np.testing.assert_array_equal(f["chunks/0/positions"][()], np.stack([np.arange(6) * 1e-6, np.arange(6) * 2.0], 1))
        assert f["meta/psize"][()].tolist() == [75e-6, 75e-6]
        assert f["meta/center"][()].tolist() == [5.0, 4.0]


def test_ptydscan_reprocesses_a_ptyd(tmp_path: Path, capsys) -> None:
    src = FIXTURES / "case_full_frame.ptyd"
    if not src.exists():
        pytest.skip("fixture missing")
    recipe = tmp_path / "re.json"
    recipe.write_text(json.dumps({"name": "PtydScan", "source": str(src), "rebin": 2, "dfile": "re.ptyd"}))
    assert main(["prepare", str(recipe)]) == 0
    capsys.readouterr()
    ref = read_ptyd(src)
    got = read_ptyd(tmp_path / "re.ptyd")
    # the file's centre (20, 19) is re-centred on (20, 20) first (ptypy's crop/pad rule), then mean-rebinned
    shifted = np.zeros_like(ref["data"])
    shifted[:, :, 1:] = ref["data"][:, :, :-1]
    expected = shifted.reshape(30, 20, 2, 20, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(got["data"], expected)
    np.testing.assert_array_equal(got["positions"], ref["positions"])
    assert got["meta"]["shape"].tolist() == [20, 20]
    assert got["meta"]["psize"].tolist() == (ref["meta"]["psize"] * 2).tolist()
    assert got["meta"]["energy"] == ref["meta"]["energy"] and got["meta"]["distance"] == ref["meta"]["distance"]
    assert ref["meta"]["center"].tolist() == [20, 19] and got["meta"]["center"].tolist() == [10, 10]
