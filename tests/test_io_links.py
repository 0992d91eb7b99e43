"""The one link policy (ptydask.io.links) on every object read: each kind of link out of the folder is refused
unless allowed, for frames, masks, positions and geometry of raw sources, and for every object of a .ptyd."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import tifffile

import ptydask
from ptydask.errors import FormatError, SourceError
from ptydask.io import LinkPolicy, open_hdf5
from ptydask.sources import open_frames

FRAMES = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
GEOM = dict(energy=7.0, distance=1.0, psize=55e-6)


@pytest.fixture
def dirs(tmp_path):
    inside, outside = tmp_path / "scan", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    with h5py.File(outside / "data.h5", "w") as f:
        f["frames"] = FRAMES
        f["mask"] = np.ones((8, 8), np.uint8)
        f["translation"] = np.zeros((4, 3))
        f["energy"] = 8.0 * 1.602176634e-16
    return inside, outside


def _link(f, kind: str, name: str, target_key: str) -> None:
    """``name`` reaching ``../outside/data.h5:target_key`` by a link of ``kind``."""
    if kind == "external":
        f[name] = h5py.ExternalLink("../outside/data.h5", target_key)
    elif kind == "soft->external":
        f[f"hidden/{os.path.basename(name)}"] = h5py.ExternalLink("../outside/data.h5", target_key)
        f[name] = h5py.SoftLink(f"/hidden/{os.path.basename(name)}")
    elif kind == "vds":
        src = h5py.File(os.path.join(os.path.dirname(f.filename), "../outside/data.h5"), "r")
        shape, dtype = src[target_key].shape, src[target_key].dtype
        src.close()
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource("../outside/data.h5", target_key, shape=shape)
        f.create_virtual_dataset(name, layout)
    else:
        raise ValueError(kind)


KINDS = ["external", "soft->external", "vds"]


@pytest.mark.parametrize("kind", KINDS)
def test_frames_behind_any_link_out_of_the_folder_are_refused(dirs, kind):
    inside, _ = dirs
    path = inside / "m.h5"
    with h5py.File(path, "w") as f:
        _link(f, kind, "entry/data/data", "/frames")
    with pytest.raises(SourceError, match=r"m\.h5: .*outside the folder.*allow_external_links=True"):
        open_frames(path, "entry/data/data")
    with pytest.raises(SourceError, match="outside the folder"):
        open_frames(path)  # found by NeXus conventions: the same check
    cwd = os.getcwd()
    try:
        os.chdir(inside)  # HDF5 resolves relative VDS sources from the working directory
        allowed = open_frames(path, "entry/data/data", allow_external_links=True, positions=np.zeros((4, 2)))
        np.testing.assert_array_equal(allowed["data"].values, FRAMES)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("what", ["mask", "positions", "energy"])
def test_mask_positions_and_geometry_behind_links_are_refused(dirs, kind, what):
    inside, _ = dirs
    path = inside / "own.h5"
    with h5py.File(path, "w") as f:
        f["frames"] = FRAMES
        _link(f, kind, f"entry/{what}", {"mask": "/mask", "positions": "/translation", "energy": "/energy"}[what])
    spec = {"mask": {"mask": {"key": "entry/mask"}},
            "positions": {"positions": {"slow_key": "entry/positions", "fast_key": "entry/positions"}},
            "energy": {"recorded_energy": {"key": "entry/energy"}}}[what]
    with pytest.raises(SourceError, match=rf"entry/{what}.*outside the folder"):
        open_frames(path, "frames", **spec)


@pytest.mark.parametrize("kind", ["external", "soft->external"])
def test_cxi_metadata_behind_links_is_refused(dirs, kind):
    inside, _ = dirs
    path = inside / "scan.cxi"
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 150
        f["entry_1/data_1/data"] = FRAMES
        _link(f, kind, "entry_1/sample_1/geometry_1/translation", "/translation")
    with pytest.raises(SourceError, match=r"translation.*outside the folder"):
        open_frames(path)


def test_a_symlinked_file_is_resolved_to_its_real_target(dirs):
    inside, outside = dirs
    os.symlink(outside / "data.h5", inside / "alias.h5")
    path = inside / "m.h5"
    with h5py.File(path, "w") as f:
        f["frames"] = h5py.ExternalLink("alias.h5", "/frames")  # a same-folder name, a file elsewhere
    with pytest.raises(SourceError, match=r"outside the folder"):
        open_frames(path, "frames")
    np.testing.assert_array_equal(open_frames(path, "frames", allow_external_links=True)["data"].values, FRAMES)
    # the file the user names is taken as named, even as a symlink
    np.testing.assert_array_equal(open_frames(inside / "alias.h5", "frames")["data"].values, FRAMES)


def test_a_symlink_out_of_a_listed_folder_is_refused(dirs):
    inside, outside = dirs
    for i in (1, 2):
        tifffile.imwrite(inside / f"f{i}.tif", FRAMES[i])
    tifffile.imwrite(outside / "secret.tif", FRAMES[3])
    os.symlink(outside / "secret.tif", inside / "f3.tif")
    with pytest.raises(SourceError, match=r"f3\.tif points to .*secret\.tif.*outside the folder"):
        open_frames(inside)
    with pytest.raises(SourceError, match="outside the folder"):
        open_frames(str(inside / "*.tif"))


def test_links_inside_the_folder_work(dirs):
    inside, _ = dirs
    with h5py.File(inside / "data.h5", "w") as f:
        f["frames"] = FRAMES
    path = inside / "m.h5"
    with h5py.File(path, "w") as f:
        f["hidden/x"] = h5py.ExternalLink("data.h5", "/frames")
        f["entry/data/data"] = h5py.SoftLink("/hidden/x")
    np.testing.assert_array_equal(open_frames(path, "entry/data/data")["data"].values, FRAMES)
    with open_hdf5(str(path)) as f:
        node, real, key = LinkPolicy(str(path)).locate(f, "entry/data/data")
        assert os.path.samefile(real, inside / "data.h5") and key == "frames"


# --------------------------------------------------------------------------- the .ptyd reader


@pytest.fixture
def ptyd(tmp_path):
    (tmp_path / "out").mkdir()
    scan = ptydask.from_arrays(FRAMES, np.zeros((4, 2)), chunks=2, **GEOM)
    master = ptydask.to_ptyd(scan, tmp_path / "out" / "s.ptyd", save="link")
    with h5py.File(tmp_path / "elsewhere.h5", "w") as f:
        f["data"] = FRAMES[:2] + 1
        f["energy"] = 99.0
    return master, tmp_path


@pytest.mark.parametrize("kind", ["external", "soft->external"])
def test_ptyd_dataset_links_inside_a_chunk_group_are_refused(ptyd, kind):
    master, root = ptyd
    part = sorted((root / "out").glob("s.ptyd.chunk*"))[0]
    with h5py.File(part, "a") as f:
        del f["data"]
        if kind == "external":
            f["data"] = h5py.ExternalLink("../elsewhere.h5", "/data")
        else:
            f["x"] = h5py.ExternalLink("../elsewhere.h5", "/data")
            f["data"] = h5py.SoftLink("/x")
    with pytest.raises(FormatError, match=r"outside the master file's folder"):
        ptydask.open_ptyd(master)


def test_ptyd_symlinked_part_file_is_refused(ptyd):
    master, root = ptyd
    part = sorted((root / "out").glob("s.ptyd.chunk*"))[0]
    moved = root / "moved.part"
    os.replace(part, moved)
    os.symlink(moved, part)
    with pytest.raises(FormatError, match=r"chunks/0.*outside the master file's folder"):
        ptydask.open_ptyd(master)
    np.testing.assert_array_equal(ptydask.open_ptyd(master, allow_external_links=True)["data"].values, FRAMES)


def test_ptyd_linked_meta_value_is_refused(ptyd):
    master, _ = ptyd
    with h5py.File(master, "a") as f:
        del f["meta/energy"]
        f["meta/energy"] = h5py.ExternalLink("../elsewhere.h5", "/energy")
    with pytest.raises(FormatError, match=r"meta/energy.*outside the master file's folder"):
        ptydask.open_ptyd(master)


def test_external_raw_storage_out_of_the_folder_is_refused(dirs):
    inside, outside = dirs
    raw = outside / "raw.bin"
    FRAMES.tofile(raw)
    path = inside / "ext.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", shape=FRAMES.shape, dtype=FRAMES.dtype,
                         external=[(str(raw), 0, FRAMES.nbytes)])
    with pytest.raises(SourceError, match=r"external raw storage is in .*raw\.bin.*outside the folder"):
        open_frames(path, "frames")
    np.testing.assert_array_equal(open_frames(path, "frames", allow_external_links=True)["data"].values, FRAMES)
