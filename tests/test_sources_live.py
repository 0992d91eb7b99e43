"""Growing sources (ptydask.live) on the sources' readers: natural file order, the link policy, checked files,
and a replaced (shorter) file reported instead of waited for."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import tifffile

from ptydask.errors import SourceError
from ptydask.live import GrowingHdf5, TiffFolder
from ptydask.sources import open_frames

FRAMES = np.arange(12 * 6 * 6, dtype=np.uint16).reshape(12, 6, 6)


def _tiffs(folder, n=12, name="frame{}.tif"):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        tifffile.imwrite(folder / name.format(i), FRAMES[i])


def test_tiff_folder_uses_the_natural_order_of_open_frames(tmp_path):
    folder = tmp_path / "live"
    _tiffs(folder)  # frame0 .. frame11: plain string order puts frame10 before frame2
    src = TiffFolder(folder)
    assert [os.path.basename(f) for f in src.files()][:4] == ["frame0.tif", "frame1.tif", "frame2.tif", "frame3.tif"]
    frames, pos = src.read(range(12))
    np.testing.assert_array_equal(frames, FRAMES)
    assert pos is None
    np.testing.assert_array_equal(frames, open_frames(folder, positions=np.zeros((12, 2)))["data"].values)
    np.testing.assert_array_equal(src.read([10, 2])[0], FRAMES[[10, 2]])


def test_tiff_folder_refuses_a_symlink_out_of_the_folder(tmp_path):
    folder = tmp_path / "live"
    _tiffs(folder, 2)
    tifffile.imwrite(tmp_path / "secret.tif", FRAMES[5])
    os.symlink(tmp_path / "secret.tif", folder / "frame2.tif")
    with pytest.raises(SourceError, match=r"frame2\.tif points to .*secret\.tif.*outside the folder"):
        TiffFolder(folder).available()
    assert TiffFolder(folder, allow_external_links=True).available() == 3


@pytest.mark.parametrize("odd", ["dtype", "shape", "pages"])
def test_tiff_folder_refuses_a_file_unlike_the_first(tmp_path, odd):
    folder = tmp_path / "live"
    _tiffs(folder, 2)
    bad = {"dtype": FRAMES[2].astype(np.float32) * 1e6, "shape": FRAMES[2][:5], "pages": FRAMES[2:4]}[odd]
    tifffile.imwrite(folder / "frame2.tif", bad, photometric="minisblack")
    tifffile.imwrite(folder / "frame3.tif", FRAMES[3])
    with pytest.raises(SourceError, match=r"frame2\.tif"):
        TiffFolder(folder).read([0, 1, 2, 3])


def _growing(path, n, key="d"):
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=FRAMES[:n], maxshape=(None, 6, 6), chunks=(1, 6, 6))
        f["p"] = np.zeros((n, 2))


def test_growing_hdf5_reads_runs_and_reports_a_shorter_replacement(tmp_path):
    path = tmp_path / "raw.h5"
    _growing(path, 8)
    src = GrowingHdf5(path, "d", positions_key="p")
    assert src.available() == 8
    frames, pos = src.read([0, 1, 2, 5, 7])
    np.testing.assert_array_equal(frames, FRAMES[[0, 1, 2, 5, 7]])
    assert pos.shape == (5, 2)
    _growing(path, 3)  # replaced by a shorter file
    with pytest.raises(SourceError, match=r"raw\.h5: now holds 3 frames, fewer than the 8 already seen"):
        src.available()


def test_growing_hdf5_applies_the_link_policy(tmp_path):
    (tmp_path / "scan").mkdir()
    _growing(tmp_path / "outside.h5", 4)
    path = tmp_path / "scan" / "raw.h5"
    with h5py.File(path, "w") as f:
        f["d"] = h5py.ExternalLink("../outside.h5", "/d")
    with pytest.raises(SourceError, match="outside the folder"):
        GrowingHdf5(path, "d").available()
    assert GrowingHdf5(path, "d", allow_external_links=True).available() == 4
