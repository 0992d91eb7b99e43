"""Recipes: the parameter table, loading (JSON/YAML/dict), validation errors, docs that cannot drift."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ptydask.cli import main
from ptydask.errors import RecipeError, ScanError
from ptydask.recipe import PARAMS, load_recipe, render_docs, run_recipe
from ptydask.params.registry import BY_PATH

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("PTYDASK_SHARED", REPO.parent / "shared")) / "fixtures" / "ptypy"
RAW = FIXTURES / "raw_test.h5"
needs_fixtures = pytest.mark.skipif(not RAW.exists(), reason=f"no ptypy fixtures at {FIXTURES}")

PTYPY_KEYS = (
    "name dfile save chunk_format auto_center load_parallel rebin orientation min_frames positions_theory num_frames "
    "label version shape center psize distance energy experimentID add_poisson_noise intensities.file "
    "intensities.key positions.file positions.slow_key positions.fast_key positions.slow_multiplier "
    "positions.fast_multiplier positions.slow_index positions.fast_index positions.skip "
    "positions.bounding_box.slow_axis_bounds positions.bounding_box.fast_axis_bounds mask.file mask.key mask.invert "
    "flatfield.file flatfield.key darkfield.file darkfield.key normalisation.file normalisation.key "
    "normalisation.sigma framefilter.file framefilter.key recorded_energy.file recorded_energy.key "
    "recorded_energy.multiplier recorded_energy.offset recorded_distance.file recorded_distance.key "
    "recorded_distance.multiplier recorded_psize.file recorded_psize.key recorded_psize.multiplier padding "
    "outer_index electron_data frameorder.indices"
).split()


def base_recipe(**changes) -> dict:
    r = {
        "name": "Hdf5Loader", "save": "append", "psize": 7.5e-5, "energy": 8.0, "distance": 2.0, "shape": 32,
        "center": [18, 20], "auto_center": False, "orientation": 3, "rebin": 2, "dfile": "out.ptyd",
        "intensities": {"file": str(RAW), "key": "entry/data"},
        "positions": {"file": str(RAW), "slow_key": "entry/y", "fast_key": "entry/x"},
        "mask": {"file": str(RAW), "key": "entry/mask"},
    }
    r.update(changes)
    return r


# --------------------------------------------------------------------------- the table


def test_docs_are_generated_from_the_table() -> None:
    committed = (REPO / "docs" / "recipe.md").read_text(encoding="utf-8")
    assert committed == render_docs(), "docs/recipe.md is stale: run  python -m ptydask.recipe > docs/recipe.md"


def test_every_ptypy_key_is_defined_once_and_defaults_are_valid() -> None:
    paths = [p.path for p in PARAMS]
    assert len(paths) == len(set(paths))
    assert set(PTYPY_KEYS) <= set(paths)
    assert {p.path for p in PARAMS if p.ext} >= {"rebin_mode", "hot_pixels", "dead_pixels", "saturation",
                                                  "compression", "frames_per_block"}
    for p in PARAMS:
        for default in [p.default, *p.by_name.values()]:
            if default is None:
                assert p.nullable, p.path
            else:
                p.kind(default)  # raises if a default is not allowed by its own kind
        assert p.doc and p.stage in ("source", "prepare", "meta", "output", "unused")
    assert BY_PATH["shape"].default_for("Hdf5Loader") is None and BY_PATH["shape"].default_for("PtyScan") == 256


@needs_fixtures
def test_defaults_and_origins(tmp_path: Path) -> None:
    r = load_recipe(base_recipe(), overrides=["rebin=4", "positions.skip=1"], base=tmp_path)
    assert r["rebin"] == 4 and r.origin("rebin") == "command line"
    assert r["orientation"] == 3 and r.origin("orientation") == "recipe"
    assert r["min_frames"] == 1 and r.origin("min_frames") == "default"
    assert r["dfile"] == str(tmp_path / "out.ptyd")
    pty = load_recipe({k: v for k, v in base_recipe(name="PtyScan").items() if k != "shape"}, base=tmp_path)
    h5 = load_recipe({k: v for k, v in base_recipe().items() if k != "shape"}, base=tmp_path)
    assert pty["shape"] == 256 and h5["shape"] is None


@needs_fixtures
def test_full_ptypy_hdf5loader_tree_works_unchanged(tmp_path: Path) -> None:
    """A ptypy user's Hdf5Loader parameters with every key spelled out at ptypy's defaults."""
    tree = base_recipe(
        dfile=str(tmp_path / "full.ptyd"), load_parallel="data", min_frames=1, positions_theory=None,
        num_frames=None, label=None, experimentID=None, version=0.1, add_poisson_noise=False, chunk_format=".chunk%02d",
        padding=None, outer_index=None, electron_data=False, frameorder={"indices": None},
        flatfield={"file": None, "key": None}, darkfield={"file": None, "key": None},
        normalisation={"file": None, "key": None, "sigma": 3}, framefilter={"file": None, "key": None},
        recorded_energy={"file": None, "key": None, "multiplier": 1.0, "offset": 0.0},
        recorded_distance={"file": None, "key": None, "multiplier": 1.0},
        recorded_psize={"file": None, "key": None, "multiplier": 1.0},
    )
    tree["positions"].update(slow_multiplier=1.0, fast_multiplier=1.0, slow_index=None, fast_index=None, skip=1,
                             bounding_box={"fast_axis_bounds": None, "slow_axis_bounds": None})
    tree["mask"]["invert"] = False
    result = run_recipe(tree, progress=False)
    short = run_recipe(base_recipe(dfile=str(tmp_path / "short.ptyd")), progress=False)
    import ptydask

    a, b = ptydask.open_ptyd(result.path), ptydask.open_ptyd(short.path)
    np.testing.assert_array_equal(a["data"].values, b["data"].values)
    assert result.frames == 30 and result.shape == (16, 16) and result.dtype == "float64"
    assert result.center == (7.5, 7.5) and result.size > 0 and "wrote 30 frames of 16x16 float64" in result.summary()


# --------------------------------------------------------------------------- bad input through the CLI

BAD = {
    "unknown key": ({"rebinn": 2}, ["'rebinn'", "did you mean 'rebin'?"]),
    "unknown nested key": ({"positions": {"file": str(RAW), "slow_key": "entry/y", "fast_key": "entry/x",
                                          "slow_multiplyer": 2}},
                           ["'positions.slow_multiplyer'", "did you mean 'positions.slow_multiplier'?"]),
    "wrong type": ({"rebin": "2"}, ["rebin: got '2'", "an integer 1..32"]),
    "rebin 33": ({"rebin": 33}, ["rebin: got 33", "an integer 1..32 or null"]),
    "orientation 9": ({"orientation": 9}, ["orientation: got 9", "0..7"]),
    "save bogus": ({"save": "bogus"}, ["save: got 'bogus'", "one of null, 'append', 'link', 'merge'"]),
    "negative energy": ({"energy": -8.0}, ["energy: got -8.0", "a number > 0"]),
    "group not a mapping": ({"mask": "mask.h5"}, ["mask: got 'mask.h5'", "a mapping with keys file, key, invert"]),
    "missing intensities file": ({"intensities": {"file": "missing.h5", "key": "entry/data"}},
                                 ["intensities.file: no such file", "missing.h5"]),
    "missing intensities key": ({"intensities": {"file": str(RAW), "key": "entry/dat"}},
                                ["intensities.key: 'entry/dat' not found", "did you mean 'entry/data'?"]),
    "no intensities": ({"intensities": None}, ["intensities.file: required"]),
    "rebin does not divide": ({"rebin": 3}, ["rebin: got 3", "divide"]),
    "centre outside the frame": ({"center": [100, 20]}, ["center", "outside"]),
}


@needs_fixtures
@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_recipe_one_line_exit_2_no_output(case: str, tmp_path: Path, capsys) -> None:
    changes, expected = BAD[case]
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(base_recipe(**changes), indent=1))
    assert main(["prepare", str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ptydask: error: {recipe}: ") and err.count("\n") == 1 and "Traceback" not in err
    for text in expected:
        assert text in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("bad.json", '{\n "rebin": 2,\n "shape" 32\n}\n', "line 3, column 10: invalid JSON"),
        ("bad.yaml", "rebin: 2\nshape: [32, 32\ncenter: x\n", "line 3, column 7: invalid YAML"),
        ("list.json", "[1, 2]", "the recipe must be a mapping of parameters"),
        ("empty.yaml", "", "got empty"),
        ("dup.json", '{"rebin": 2, "rebin": 4}', "duplicate key 'rebin'"),
    ],
)
def test_malformed_recipe_files(name: str, text: str, expected: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RecipeError, match=str(path).replace(".", r"\.")) as info:
        load_recipe(path)
    assert expected in str(info.value)
    assert main(["prepare", str(path), "--dfile", str(tmp_path / "o.ptyd")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "o.ptyd").exists()


def test_yaml_is_data_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(path)


@needs_fixtures
def test_bad_command_line_values(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(base_recipe()))
    assert main(["prepare", str(recipe), "--set", "positions.slow_multiplyer=2"]) == 2
    assert "did you mean 'positions.slow_multiplier'?" in capsys.readouterr().err
    assert main(["prepare", str(recipe), "--set", "orientation=9"]) == 2
    err = capsys.readouterr().err
    assert "--set: orientation: got 9" in err
    assert main(["prepare", str(recipe), "--set", "positions=1"]) == 2
    assert "is a group" in capsys.readouterr().err
    assert main(["prepare", str(recipe), "--set", "rebin"]) == 2
    assert "expected key.path=value" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    with pytest.raises(RecipeError):
        main(["--debug", "prepare", str(recipe), "--set", "rebin=0"])


def test_ptydscan_needs_a_source_and_no_raw_keys(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="source: required with name 'PtydScan'"):
        load_recipe({"name": "PtydScan", "dfile": "x.ptyd"})
    with pytest.raises(RecipeError, match="intensities.file: not used by name 'PtydScan'"):
        load_recipe({"name": "PtydScan", "source": "a.ptyd", "intensities": {"file": "raw.h5"}}, check_files=False)


def test_missing_output_is_named(tmp_path: Path) -> None:
    if not RAW.exists():
        pytest.skip("no fixtures")
    tree = base_recipe()
    del tree["dfile"]
    with pytest.raises(RecipeError, match="recipe: dfile: no output file"):
        run_recipe(tree)


def _raw_without_positions(folder: Path, n: int = 5) -> Path:
    import h5py

    raw = folder / "raw.h5"
    with h5py.File(raw, "w") as f:
        f["frames"] = np.arange(n * 8 * 8, dtype=np.int32).reshape(n, 8, 8)
    return raw


def test_positions_theory_supplies_positions_and_num_frames(tmp_path: Path) -> None:
    _raw_without_positions(tmp_path)
    tree = {"intensities": {"file": "raw.h5", "key": "frames"}, "shape": None, "dfile": "o.ptyd",
            "positions_theory": [[0.0, 1e-6], [1e-6, 0.0], [2e-6, 1e-6]], "orientation": [0, 1, 0]}
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(tree))
    result = run_recipe(recipe, progress=False)
    import ptydask

    back = ptydask.open_ptyd(result.path)
    frames = np.arange(5 * 8 * 8, dtype=np.int32).reshape(5, 8, 8)[:3]
    np.testing.assert_array_equal(back["data"].values, frames[:, ::-1, :])
    np.testing.assert_array_equal(back["positions"].values, tree["positions_theory"])
    assert back.attrs["num_frames"] == 3 and result.frames == 3


def test_no_positions_at_all_is_an_error_naming_the_recipe(tmp_path: Path) -> None:
    _raw_without_positions(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("intensities: {file: raw.h5, key: frames}\nshape: null\ndfile: o.ptyd\n")
    with pytest.raises(ScanError, match=f"^{recipe}: positions: the scan has none"):
        run_recipe(recipe, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml", "raw.h5"]


@needs_fixtures
def test_extensions_reach_prepare_rebin_mode_sum(tmp_path: Path) -> None:
    import h5py

    mean = run_recipe(base_recipe(dfile=str(tmp_path / "mean.ptyd")), progress=False)
    summed = run_recipe(base_recipe(dfile=str(tmp_path / "sum.ptyd"), rebin_mode="sum", compression=None),
                        progress=False)
    with h5py.File(mean.path, "r") as a, h5py.File(summed.path, "r") as b:
        m, s = a["chunks/0/data"][()], b["chunks/0/data"][()]
        assert b["chunks/0/data"].compression is None and a["chunks/0/data"].compression == "gzip"
    assert s.dtype == np.int64 and m.dtype == np.float64
    np.testing.assert_array_equal(s, m * 4)


@needs_fixtures
def test_allow_external_links_key(tmp_path: Path) -> None:
    """Frames behind an external link that leaves the input's folder: refused, unless the recipe allows it."""
    import h5py

    from ptydask.errors import SourceError

    (tmp_path / "outside").mkdir()
    (tmp_path / "scan").mkdir()
    with h5py.File(RAW, "r") as src, h5py.File(tmp_path / "outside" / "raw.h5", "w") as dst:
        dst.create_dataset("entry/data", data=src["entry/data"][()])
    with h5py.File(tmp_path / "scan" / "master.h5", "w") as f:
        f["entry/data"] = h5py.ExternalLink("../outside/raw.h5", "entry/data")
    recipe = base_recipe(dfile=str(tmp_path / "linked.ptyd"),
                         intensities={"file": str(tmp_path / "scan" / "master.h5"), "key": "entry/data"})
    with pytest.raises(SourceError, match="allow_external_links: true in a recipe"):
        run_recipe(recipe, progress=False)
    assert not (tmp_path / "linked.ptyd").exists()
    linked = run_recipe(dict(recipe, allow_external_links=True), progress=False)
    direct = run_recipe(base_recipe(dfile=str(tmp_path / "direct.ptyd")), progress=False)
    assert linked.frames == direct.frames
    with h5py.File(linked.path, "r") as a, h5py.File(direct.path, "r") as b:
        np.testing.assert_array_equal(a["chunks/0/data"][()], b["chunks/0/data"][()])
