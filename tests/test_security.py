"""Security (ptyd-format.md §7): nothing read from a file is unpickled or evaluated; links stay in their folder.

Every pickle used here is a *tripwire*: unpickling it creates a marker file
(``builtins.open(marker, "w")``), so a test fails if anything ever unpickles it,
whatever error is raised afterwards.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import ptydask
import ptydask.recipe
from ptydask import open_frames, open_ptyd
from ptydask.cli import main
from ptydask.errors import FormatError, RecipeError, SourceError

GEOM = dict(energy=6.2, distance=3.0, psize=5.5e-5)


class Tripwire:
    """Unpickling this object creates ``path`` (a harmless stand-in for arbitrary code)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tripwire_bytes(marker: Path) -> bytes:
    return pickle.dumps(Tripwire(marker))


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.fixture
def ptyd(tmp_path):
    frames = np.arange(6 * 8 * 8, dtype=np.uint16).reshape(6, 8, 8)
    scan = ptydask.from_arrays(frames, np.zeros((6, 2)), chunks=3, label="safe", **GEOM)
    return ptydask.to_ptyd(scan, tmp_path / "s.ptyd")


# --------------------------------------------------------------------------- h5rw pickle tags


def _tag_pickle(path: Path, where: str, tag: str, marker: Path) -> None:
    """Replace object ``where`` by an h5rw ``tag`` dataset holding a tripwire pickle (as ptypy writes them)."""
    with h5py.File(path, "a") as f:
        if where in f:
            del f[where]
        ds = f.create_dataset(where, data=np.void(_tripwire_bytes(marker)))
        ds.attrs["type"] = tag


@pytest.mark.parametrize("tag", ["pickle", "record_array"])
@pytest.mark.parametrize("where, words", [
    ("meta/label", ["meta/label"]),
    ("meta/energy", ["meta/energy"]),
    ("info/writer", ["info/writer"]),
    ("chunks/0/positions", ["chunks/0/positions"]),
])
def test_h5rw_pickle_tags_are_refused_never_unpickled(ptyd, tmp_path, tag, where, words):
    marker = tmp_path / "UNPICKLED"
    _tag_pickle(ptyd, where, tag, marker)
    with pytest.raises(FormatError) as err:
        scan = open_ptyd(ptyd)
        scan["data"].values  # noqa: B018 - read to the end if it opened
    msg = str(err.value).replace(str(tmp_path), "<tmp>")  # the tmp folder's name must not satisfy the check
    assert tag in msg and "s.ptyd" in msg, msg
    assert all(w in msg for w in words), msg
    assert not marker.exists(), "a pickle stored in the file was unpickled"


@pytest.mark.parametrize("tag", ["pickle", "record_array"])
def test_chunk_group_tagged_pickle_is_refused(ptyd, tmp_path, tag):
    with h5py.File(ptyd, "a") as f:
        f["chunks/1"].attrs["type"] = tag
    with pytest.raises(FormatError, match=rf"chunks/1.*{tag}"):
        open_ptyd(ptyd)


def test_cli_inspect_refuses_a_pickle_in_one_line(ptyd, tmp_path, capsys):
    marker = tmp_path / "UNPICKLED"
    _tag_pickle(ptyd, "meta/label", "pickle", marker)
    assert main(["inspect", str(ptyd)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pickle" in err and "Traceback" not in err
    assert not marker.exists()


# --------------------------------------------------------------------------- numpy files


def _object_frames(marker: Path) -> np.ndarray:
    arr = np.empty(3, dtype=object)
    arr[:] = [Tripwire(marker)] * 3
    return arr


def test_npy_with_python_objects_is_refused(tmp_path):
    marker = tmp_path / "UNPICKLED"
    np.save(tmp_path / "obj.npy", _object_frames(marker), allow_pickle=True)
    with pytest.raises(SourceError, match=r"obj\.npy.*(Python objects|object)"):
        open_frames(tmp_path / "obj.npy")
    assert not marker.exists()


def test_npz_is_loaded_without_pickle(tmp_path):
    marker = tmp_path / "UNPICKLED"
    np.savez(tmp_path / "obj.npz", frames=_object_frames(marker))
    with pytest.raises(SourceError, match=r"obj\.npz.*'frames'.*refused"):
        open_frames(tmp_path / "obj.npz")
    assert not marker.exists()
    np.savez(tmp_path / "ok.npz", frames=np.ones((3, 4, 4), np.uint16))  # the same path works for plain arrays
    assert open_frames(tmp_path / "ok.npz")["data"].shape == (3, 4, 4)


@pytest.mark.parametrize("name", ["obj.npy", "obj.npz"])
def test_monitor_file_with_python_objects_is_refused(tmp_path, name):
    marker = tmp_path / "UNPICKLED"
    frames = tmp_path / "frames.npy"
    np.save(frames, np.ones((3, 4, 4), np.uint16))
    if name.endswith(".npy"):
        np.save(tmp_path / name, _object_frames(marker), allow_pickle=True)
    else:
        np.savez(tmp_path / name, pos=_object_frames(marker))
    with pytest.raises(SourceError, match=rf"(?i){name.replace('.', '[.]')}.*(object|Python)"):
        open_frames(frames, normalisation={"file": str(tmp_path / name), "key": None if name.endswith("npy") else "pos"})
    assert not marker.exists()


# --------------------------------------------------------------------------- external links, raw sources


def _frames_file(path: Path, n: int = 4) -> np.ndarray:
    data = np.arange(n * 16, dtype=np.uint16).reshape(n, 4, 4)
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=data)
    return data


@pytest.fixture
def layout(tmp_path):
    """``outside/data.h5`` and a master folder ``scan/`` (with a same-folder DECTRIS data file)."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "scan").mkdir()
    data = _frames_file(tmp_path / "outside" / "data.h5")
    _frames_file(tmp_path / "scan" / "scan_data_000001.h5")
    return tmp_path, data


def _master(path: Path, target: str, key: str = "entry/data/data_000001") -> Path:
    with h5py.File(path, "w") as f:
        f[key] = h5py.ExternalLink(target, "/entry/data/data")
    return path


def test_dectris_links_in_the_same_folder_work(layout):
    root, data = layout
    master = _master(root / "scan" / "scan_master.h5", "scan_data_000001.h5")
    np.testing.assert_array_equal(open_frames(master)["data"].values, data)


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "dotdot-inside-name", "chained"])
def test_raw_links_leaving_the_folder_are_refused_unless_allowed(layout, kind):
    root, data = layout
    scan = root / "scan"
    if kind == "absolute":
        master, target = _master(scan / "m.h5", str(root / "outside" / "data.h5")), str(root / "outside" / "data.h5")
    elif kind == "dotdot":
        master, target = _master(scan / "m.h5", "../outside/data.h5"), "../outside/data.h5"
    elif kind == "dotdot-inside-name":
        (scan / "sub").mkdir()
        master, target = _master(scan / "m.h5", "sub/../../outside/data.h5"), "sub/../../outside/data.h5"
    else:  # same-folder link to a file that links out: the second hop is refused
        _master(scan / "hop.h5", "../outside/data.h5", key="entry/data/data")
        master, target = _master(scan / "m.h5", "hop.h5"), "../outside/data.h5"
    before = _listing(scan)
    with pytest.raises(SourceError) as err:
        open_frames(master)
    msg = str(err.value)
    assert target in msg and "outside the folder" in msg and "allow_external_links=True" in msg, msg
    assert _listing(scan) == before
    np.testing.assert_array_equal(open_frames(master, allow_external_links=True)["data"].values, data)


def test_raw_link_refusal_applies_to_explicit_keys_and_references(layout):
    root, data = layout
    master = _master(root / "scan" / "m.h5", "../outside/data.h5", key="frames")
    with pytest.raises(SourceError, match=r"'frames'.*outside the folder"):
        open_frames(master, "frames")
    # a mask (or positions, dark, ...) read through an escaping link is refused the same way
    inner = root / "scan" / "own.h5"
    _frames_file(inner)
    with h5py.File(inner, "a") as f:
        f["entry/mask"] = h5py.ExternalLink("../outside/data.h5", "/entry/data/data")
    with pytest.raises(SourceError, match=r"entry/mask.*outside the folder"):
        open_frames(inner, "entry/data/data", mask={"key": "entry/mask"})


def test_virtual_dataset_sources_outside_the_folder_are_refused(layout):
    root, data = layout
    layout_ = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
    layout_[:] = h5py.VirtualSource("../outside/data.h5", "entry/data/data", shape=data.shape)
    vds = root / "scan" / "vds.h5"
    with h5py.File(vds, "w") as f:
        f.create_virtual_dataset("entry/data/data", layout_)
    with pytest.raises(SourceError, match=r"virtual dataset.*\.\./outside/data\.h5.*outside the folder"):
        open_frames(vds)
    cwd = os.getcwd()  # HDF5 resolves relative VDS sources from the working directory or the VDS folder
    try:
        os.chdir(root / "scan")
        np.testing.assert_array_equal(open_frames(vds, allow_external_links=True)["data"].values, data)
    finally:
        os.chdir(cwd)


# --------------------------------------------------------------------------- external links, .ptyd


@pytest.mark.parametrize("target", ["ABS", "../elsewhere.ptyd.part000"])
def test_ptyd_links_leaving_the_folder_are_refused_unless_allowed(tmp_path, target):
    (tmp_path / "out").mkdir()
    frames = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    scan = ptydask.from_arrays(frames, np.zeros((4, 2)), chunks=4, **GEOM)
    master = ptydask.to_ptyd(scan, tmp_path / "out" / "s.ptyd", save="link")
    part = tmp_path / "out" / "s.ptyd.chunk00"
    moved = tmp_path / "elsewhere.ptyd.part000"
    os.replace(part, moved)
    target = str(moved) if target == "ABS" else target
    with h5py.File(master, "a") as f:
        del f["chunks/0"]
        f["chunks/0"] = h5py.ExternalLink(target, "/")
    with pytest.raises(FormatError, match=r"chunks/0.*outside the master file's folder.*allow_external_links"):
        open_ptyd(master)
    np.testing.assert_array_equal(open_ptyd(master, allow_external_links=True)["data"].values, frames)


# --------------------------------------------------------------------------- recipes are data


YAML_ATTACKS = [
    "!!python/object/apply:builtins.open [{marker}, 'w']",
    "!!python/object/new:builtins.open [{marker}, 'w']",
    "!!python/name:os.system",
    "!!python/module:os",
]


@pytest.mark.parametrize("attack", YAML_ATTACKS)
@pytest.mark.parametrize("where", ["label", "intensities.file"])
def test_yaml_recipes_are_safe_loaded(tmp_path, attack, where):
    marker = tmp_path / "EXECUTED"
    value = attack.format(marker=repr(str(marker)))
    group, _, leaf = where.rpartition(".")
    text = f"name: PtyScan\n{group}:\n  {leaf}: {value}\n" if group else f"name: PtyScan\n{leaf}: {value}\n"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError, match=r"r\.yaml.*line 2|r\.yaml.*line 3"):
        ptydask.recipe.load_recipe(recipe)
    assert not marker.exists()
    proc = subprocess.run([sys.executable, "-m", "ptydask.cli", "prepare", str(recipe)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60) if where == "label" and attack == YAML_ATTACKS[0] else None
    if proc is not None:
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "r.yaml" in proc.stderr
        assert not marker.exists()


def test_recipe_strings_are_never_evaluated(tmp_path):
    marker = tmp_path / "EXECUTED"
    code = f"__import__('builtins').open({str(marker)!r}, 'w')"
    for value in (code, f"eval({code!r})"):
        with pytest.raises(RecipeError):
            ptydask.recipe.load_recipe({"name": "PtyScan", "rebin": value, "dfile": str(tmp_path / "o.ptyd")})
    assert not marker.exists()
