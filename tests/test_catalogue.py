"""A catalogue of bad inputs (issue 9): the specific error, a message naming the culprit, nothing written.

One table, :data:`CATALOGUE`: recipes, raw files, positions, geometry, .ptyd inputs and outputs. Each
row builds its bad input in ``in/`` and then runs the whole pipeline (recipe -> open -> prepare ->
write) into ``out/``; the row states the exception class and the words the message must contain
(file, key or parameter, and the offending value where there is one). After the error the output
folder must be exactly as before: no .ptyd, no ``.incomplete``, no part files.

Recipe rows also run through the ``ptydask prepare`` command: one line on stderr, exit code 2, no
traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest

import ptydask
from ptydask import open_frames, open_ptyd, prepare, to_ptyd
from ptydask.cli import main
from ptydask.errors import (
    FormatError,
    GeometryError,
    OutputError,
    OutputExistsError,
    ParameterError,
    PtydaskError,
    RecipeError,
    ScanError,
    SourceError,
)
from ptydask.recipe import load_recipe, run_recipe

N, H, W = 6, 16, 16
GEOM = dict(energy=8.0, distance=2.0, psize=7.5e-5)
POS = np.stack([np.arange(N) * 1e-6, np.arange(N) * 2e-6], axis=1)


# --------------------------------------------------------------------------- inputs


def _raw(d: Path) -> Path:
    path = d / "raw.h5"
    frames = np.random.default_rng(0).integers(0, 100, (N, H, W)).astype(np.uint16)
    with h5py.File(path, "w") as f:
        f["entry/data"] = frames
        f["entry/y"], f["entry/x"] = POS[:, 0], POS[:, 1]
        f["entry/monitor"] = np.ones(N)
        f["entry/line"] = np.ones(N)
        f["entry/text"] = np.array([b"abc"] * N)
        f["entry/energy"] = np.full(N, 8.0)
        f["entry/energy"].attrs["units"] = "keV"
    return path


def _good_ptyd(d: Path, save: str = "append") -> Path:
    frames = np.arange(N * 8 * 8, dtype=np.uint16).reshape(N, 8, 8)
    scan = ptydask.from_arrays(frames, POS, chunks=3, **GEOM)
    return to_ptyd(scan, d / f"in_{save}.ptyd", save=save)


def _recipe(d: Path, **changes: Any) -> dict:
    raw = _raw(d)
    r = {"name": "Hdf5Loader", "save": "append", "shape": 16, "auto_center": False, **GEOM,
         "dfile": str(d.parent / "out" / "o.ptyd"),
         "intensities": {"file": str(raw), "key": "entry/data"},
         "positions": {"file": str(raw), "slow_key": "entry/y", "fast_key": "entry/x"}}
    for k, v in changes.items():
        if v is None:
            r.pop(k, None)
        elif isinstance(v, dict) and isinstance(r.get(k), dict):
            r[k] = {**r[k], **v}
        else:
            r[k] = v
    return r


class Recipe:
    """A recipe row: the mapping is written to ``in/recipe.json`` (or the text to ``in/recipe.yaml``)."""

    def __init__(self, text: str | None = None, **changes: Any):
        self.text, self.changes = text, changes

    def file(self, d: Path) -> Path:
        if self.text is not None:
            _raw(d)
            path = d / "recipe.yaml"
            path.write_text(self.text.format(raw=d / "raw.h5", out=d.parent / "out" / "o.ptyd"))
        else:
            path = d / "recipe.json"
            path.write_text(json.dumps(_recipe(d, **self.changes)))
        return path

    def __call__(self, d: Path) -> Callable[[], Any]:
        path = self.file(d)
        return lambda: run_recipe(load_recipe(path))


def pipeline(**spec: Any) -> Callable[[Path], Callable[[], Any]]:
    """open_frames(raw.h5) with ``spec`` -> prepare -> to_ptyd(out/o.ptyd)."""
    prep = spec.pop("prep", {})
    source = spec.pop("source", None)

    def build(d: Path) -> Callable[[], Any]:
        raw = _raw(d)
        src = source(d) if callable(source) else (raw if source is None else source)
        key = spec.pop("key", "entry/data") if not isinstance(src, np.ndarray) else None
        full = {"positions": POS, **GEOM, **spec}
        full = {k: v for k, v in full.items() if v is not None}
        return lambda: to_ptyd(prepare(open_frames(src, key, **full), **{"shape": 16, **prep}), d.parent / "out" / "o.ptyd")

    return build


def ptyd_input(mutate: Callable[[Path], Any], save: str = "append", **open_kw: Any) -> Callable[[Path], Callable[[], Any]]:
    """A damaged .ptyd input, re-prepared and written to out/o.ptyd (as PtydScan recipes do)."""

    def build(d: Path) -> Callable[[], Any]:
        path = _good_ptyd(d, save)
        mutate(path)

        def act():
            scan = open_ptyd(path, **open_kw)
            scan["data"].data.sum().compute()  # read to the end
            return to_ptyd(prepare(scan, shape=None), d.parent / "out" / "o.ptyd")

        return act

    return build


def _h5edit(fn: Callable[[h5py.File], Any]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "a") as f:
            fn(f)

    return mutate


def _truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _replace(name: str, **kw: Any) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        del f[name]
        f.create_dataset(name, **kw)

    return fn


def _huge_chunk(f: h5py.File) -> None:
    del f["chunks/0/data"]
    f.create_dataset("chunks/0/data", shape=(3, 100_000, 100_000), dtype=np.float64, chunks=(1, 64, 64))


def _link_chunk(target: str) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        del f["chunks/1"]
        f["chunks/1"] = h5py.ExternalLink(target, "/")

    return fn


def _file_source(name: str, content: bytes | str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p

    return make


def _truncated_raw(d: Path) -> Path:
    p = d / "cut.h5"
    p.write_bytes(_raw(d).read_bytes()[:3000])
    return p


def _huge_raw(d: Path, name: str, shape: tuple[int, ...]) -> Path:
    """raw.h5's content plus a dataset declaring ``shape`` with nothing stored (a hostile or damaged file)."""
    p = d / "huge.h5"
    p.write_bytes(_raw(d).read_bytes())
    with h5py.File(p, "a") as f:
        f.create_dataset(name, shape=shape, dtype=np.float64, chunks=(1,) * (len(shape) - 1) + (64,))
    return p


def _dangling_dectris(d: Path) -> Path:
    p = d / "scan_master.h5"
    with h5py.File(p, "w") as f:
        f["entry/data/data_000001"] = h5py.ExternalLink("scan_data_000001.h5", "/entry/data/data")
    return p


def _escaping_dectris(d: Path) -> Path:
    outside = d.parent / "elsewhere.h5"
    with h5py.File(outside, "w") as f:
        f["entry/data/data"] = np.ones((N, H, W), np.uint16)
    p = d / "scan_master.h5"
    with h5py.File(p, "w") as f:
        f["entry/data/data_000001"] = h5py.ExternalLink("../elsewhere.h5", "/entry/data/data")
    return p


def _existing_output(d: Path) -> Callable[[], Any]:
    raw = _raw(d)
    out = d.parent / "out" / "o.ptyd"
    out.write_bytes(b"previous results")  # part of the 'before' snapshot: must stay untouched
    return lambda: to_ptyd(prepare(open_frames(raw, "entry/data", positions=POS, **GEOM), shape=16), out)


def _output_is_folder(d: Path) -> Callable[[], Any]:
    raw = _raw(d)
    (d.parent / "out" / "o.ptyd").mkdir()
    return lambda: to_ptyd(prepare(open_frames(raw, "entry/data", positions=POS, **GEOM), shape=16),
                           d.parent / "out" / "o.ptyd")


NAN_POS = POS.copy()
NAN_POS[2, 1] = np.nan
INF_POS = POS.copy()
INF_POS[4, 0] = np.inf

# (id, builder, exception class, words the message must contain)
CATALOGUE: list[tuple[str, Callable[[Path], Callable[[], Any]], type, list[str]]] = [
    # ---- recipes (also run through the CLI)
    ("recipe-unknown-key", Recipe(rebinn=2), RecipeError, ["recipe.json", "'rebinn'", "did you mean 'rebin'"]),
    ("recipe-wrong-type", Recipe(rebin="two"), RecipeError, ["recipe.json", "rebin", "'two'"]),
    ("recipe-bad-choice", Recipe(save="pickle"), RecipeError, ["recipe.json", "save", "'pickle'", "'append'"]),
    ("recipe-zero-energy", Recipe(energy=0), RecipeError, ["recipe.json", "energy", "got 0", "> 0"]),
    ("recipe-negative-distance", Recipe(distance=-2.0), RecipeError, ["recipe.json", "distance", "-2.0"]),
    ("recipe-missing-raw-file", Recipe(intensities={"file": "/nonexistent/scan.h5"}), RecipeError,
     ["recipe.json", "intensities.file", "/nonexistent/scan.h5"]),
    ("recipe-missing-key", Recipe(intensities={"key": "entry/dat"}), RecipeError,
     ["intensities.key", "'entry/dat'", "raw.h5", "'entry/data'"]),
    ("recipe-half-positions", Recipe(positions={"fast_key": None}), RecipeError, ["positions.fast_key", "required"]),
    ("recipe-not-a-mapping", Recipe("- name: PtyScan\n- rebin: 2\n"), RecipeError, ["recipe.yaml", "mapping", "list"]),
    ("recipe-yaml-syntax", Recipe("name: Hdf5Loader\nrebin: [2\nshape: 16\n"), RecipeError,
     ["recipe.yaml", "line", "invalid YAML"]),
    ("recipe-yaml-python-tag", Recipe("name: Hdf5Loader\nlabel: !!python/object/apply:os.getcwd []\n"), RecipeError,
     ["recipe.yaml", "line 2"]),
    ("recipe-rebin-not-dividing", Recipe(rebin=3), RecipeError, ["rebin", "3", "16"]),
    # ---- raw files
    ("raw-truncated-hdf5", pipeline(source=_truncated_raw), SourceError, ["cut.h5", "truncated"]),
    ("raw-not-hdf5", pipeline(source=_file_source("notes.h5", "hello")), SourceError, ["notes.h5", "HDF5"]),
    ("raw-unknown-format", pipeline(source=_file_source("frames.xyz", "x")), SourceError,
     ["frames.xyz", "unknown format"]),
    ("raw-missing-file", pipeline(source=lambda d: d / "absent.h5"), SourceError, ["absent.h5", "no such file"]),
    ("raw-missing-key", pipeline(key="entry/frames"), SourceError, ["raw.h5", "'entry/frames'", "data"]),
    ("raw-1d-dataset", pipeline(key="entry/line"), SourceError, ["raw.h5", "entry/line", "(6,)", "not frames"]),
    ("raw-text-dtype", pipeline(key="entry/text"), SourceError, ["raw.h5", "entry/text", "dtype"]),
    ("raw-outer-index-on-3d", pipeline(outer_index=3), SourceError, ["raw.h5", "outer_index=3", "(6, 16, 16)"]),
    ("raw-dangling-dectris-link", pipeline(source=_dangling_dectris, key=None), SourceError,
     ["scan_master.h5", "data_000001", "scan_data_000001.h5", "missing"]),
    ("raw-link-leaves-folder", pipeline(source=_escaping_dectris, key=None), SourceError,
     ["scan_master.h5", "../elsewhere.h5", "outside the folder", "allow_external_links"]),
    ("raw-huge-declared-frame", pipeline(source=lambda d: _huge_raw(d, "frames", (2, 10**6, 10**6)), key="frames"),
     SourceError, ["huge.h5:frames", "(1000000, 1000000)", "implausibly large"]),
    ("raw-huge-declared-positions", pipeline(positions={"slow_key": "huge_y", "fast_key": "entry/x"},
                                             source=lambda d: _huge_raw(d, "huge_y", (10**12,))), SourceError,
     ["huge.h5", "'huge_y'", "(1000000000000,)", "bytes"]),
    ("raw-unknown-spec-key", pipeline(positons=POS), ParameterError, ["open_frames", "'positons'", "'positions'"]),
    ("raw-dark-shape", pipeline(dark=np.zeros((3, 3))), ScanError, ["dark", "(3, 3)", "(16, 16)"]),
    ("raw-mask-shape", pipeline(mask=np.ones((16, 15))), ScanError, ["mask", "(16, 15)", "(16, 16)"]),
    ("raw-monitor-count", pipeline(normalisation=np.ones(N + 2)), ScanError, ["normalisation", "8", "6 frames"]),
    # ---- positions
    ("positions-nan", pipeline(positions=NAN_POS), ScanError, ["positions", "NaN or infinite", "frame 2"]),
    ("positions-inf", pipeline(positions=INF_POS), ScanError, ["positions", "NaN or infinite", "frame 4"]),
    ("positions-count", pipeline(positions=POS[:-1]), ScanError, ["raw.h5", "6 frames", "(5,)"]),
    ("positions-missing-key", pipeline(positions={"slow_key": "entry/y", "fast_key": "entry/xx"}), SourceError,
     ["raw.h5", "'entry/xx'"]),
    ("positions-empty-selection", pipeline(framefilter=np.zeros(N)), ScanError, ["raw.h5", "leaves no scan points"]),
    ("positions-empty-scan", pipeline(source=lambda d: np.zeros((0, H, W), np.uint16), positions=np.zeros((0, 2))),
     ScanError, ["no scan points"]),
    # ---- geometry
    ("geometry-zero-energy", pipeline(energy=0.0), GeometryError, ["energy", "0.0", "> 0"]),
    ("geometry-negative-distance", pipeline(distance=-1.5), GeometryError, ["distance", "-1.5", "> 0"]),
    ("geometry-nan-psize", pipeline(psize=float("nan")), GeometryError, ["psize", "nan", "finite"]),
    ("geometry-inf-energy", pipeline(energy=float("inf")), GeometryError, ["energy", "inf"]),
    ("geometry-missing-energy", pipeline(energy=None), GeometryError, ["energy", "not set", "meta/energy"]),
    ("geometry-recorded-missing-key", pipeline(energy=None, recorded_energy={"key": "entry/nothere"}), SourceError,
     ["raw.h5", "'entry/nothere'"]),
    ("geometry-center-outside", pipeline(prep={"center": (0, 40)}), GeometryError, ["center", "(0.0, 40.0)", "outside"]),
    ("geometry-rebin-not-dividing", pipeline(prep={"rebin": 3}), ParameterError, ["rebin", "3", "(16, 16)"]),
    # ---- .ptyd inputs
    ("ptyd-truncated", ptyd_input(_truncate), FormatError, ["in_append.ptyd"]),
    ("ptyd-not-hdf5", ptyd_input(lambda p: p.write_text("not a ptyd")), FormatError, ["in_append.ptyd", "not a .ptyd"]),
    ("ptyd-no-meta", ptyd_input(_h5edit(lambda f: f.__delitem__("meta"))), FormatError, ["in_append.ptyd", "'meta/'"]),
    ("ptyd-energy-as-text", ptyd_input(_h5edit(_replace("meta/energy", data="eight"))), FormatError,
     ["in_append.ptyd", "meta/energy"]),
    ("ptyd-negative-num-frames", ptyd_input(_h5edit(_replace("meta/num_frames", data=-4))), FormatError,
     ["in_append.ptyd", "meta/num_frames", "-4"]),
    ("ptyd-data-2d", ptyd_input(_h5edit(_replace("chunks/0/data", data=np.zeros((8, 8))))), FormatError,
     ["in_append.ptyd", "chunks/0/data", "3 dims"]),
    ("ptyd-positions-count", ptyd_input(_h5edit(_replace("chunks/0/positions", data=np.zeros((4, 2))))), FormatError,
     ["in_append.ptyd", "chunks/0/positions", "(3, 2)", "(4, 2)"]),
    ("ptyd-huge-declared-shape", ptyd_input(_h5edit(_huge_chunk)), FormatError, ["in_append.ptyd", "chunks/0/data"]),
    ("ptyd-link-leaves-folder", ptyd_input(_h5edit(_link_chunk("../x.ptyd.chunk01")), save="link"), FormatError,
     ["in_link.ptyd", "chunks/1", "../x.ptyd.chunk01", "outside"]),
    ("ptyd-link-absolute", ptyd_input(_h5edit(_link_chunk("/etc/passwd")), save="link"), FormatError,
     ["in_link.ptyd", "chunks/1", "/etc/passwd", "allow_external_links"]),
    ("ptyd-pickle-tag", ptyd_input(_h5edit(lambda f: f["meta/label"].attrs.__setitem__("type", "pickle"))), FormatError,
     ["in_append.ptyd", "meta/label", "'pickle'"]),
    # ---- outputs
    ("output-exists", _existing_output, OutputExistsError, ["o.ptyd", "exists", "overwrite"]),
    ("output-is-a-folder", _output_is_folder, OutputError, ["o.ptyd", "directory"]),
]


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
    return out


def test_the_catalogue_is_large_and_distinct():
    ids = [row[0] for row in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    print(f"\ncatalogue: {len(ids)} bad inputs")


@pytest.mark.parametrize("case, build, exc, words", CATALOGUE, ids=[row[0] for row in CATALOGUE])
def test_bad_input(tmp_path, case, build, exc, words):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (out / "unrelated.txt").write_text("keep me")
    act = build(src)
    before = _snapshot(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. dangling-link warnings of the reader
        with pytest.raises(PtydaskError) as err:
            act()
    assert type(err.value) is exc, f"{type(err.value).__name__}: {err.value}"
    msg = str(err.value)
    missing = [w for w in words if w not in msg]
    assert not missing, f"message lacks {missing}: {msg}"
    assert "\n" not in msg.strip(), msg
    assert _snapshot(out) == before, "the output folder changed"
    assert not list(src.glob("*.incomplete")) and not list(tmp_path.rglob("*.incomplete"))


RECIPE_ROWS = [row for row in CATALOGUE if isinstance(row[1], Recipe)]


@pytest.mark.parametrize("case, recipe, exc, words", RECIPE_ROWS, ids=[row[0] for row in RECIPE_ROWS])
def test_bad_recipe_on_the_command_line(tmp_path, capsys, case, recipe, exc, words):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    path = recipe.file(src)
    before = _snapshot(out)
    assert main(["prepare", str(path)]) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("ptydask: error: ") and "Traceback" not in cap.err
    assert all(w in lines[0] for w in words), lines[0]
    assert _snapshot(out) == before


def test_command_line_process_exit_code_and_one_line(tmp_path):
    """The real process: exit status 2, one stderr line, no traceback (in-process runs cannot show a crash)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    path = Recipe(energy=-1).file(tmp_path / "in")
    proc = subprocess.run([sys.executable, "-m", "ptydask.cli", "prepare", str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "energy" in proc.stderr and "recipe.json" in proc.stderr
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("shape, square", [((16, 12), 12), ([10, 14], 10)])
def test_non_square_roi_is_made_square_with_a_warning(tmp_path, shape, square):
    """ptypy makes a non-square ROI square (smaller side) with a warning; ptydask does the same, and says so."""
    raw = _raw(tmp_path)
    scan = open_frames(raw, "entry/data", positions=POS, **GEOM)
    with pytest.warns(UserWarning, match=rf"shape: non-square ROI \({shape[0]}, {shape[1]}\) made square \({square}, {square}\)"):
        prepared = prepare(scan, shape=shape, center="fftshift")
    assert prepared["data"].shape == (N, square, square)
    written = open_ptyd(to_ptyd(prepared, tmp_path / "sq.ptyd"))
    assert written["data"].shape == (N, square, square)
    # and through a recipe (the CLI prints the same warning on one line)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(_recipe(tmp_path, shape=list(shape), dfile=str(tmp_path / "r.ptyd"))))
    with pytest.warns(UserWarning, match=r"non-square ROI"):
        run_recipe(load_recipe(recipe))
    assert open_ptyd(tmp_path / "r.ptyd")["data"].shape == (N, square, square)
