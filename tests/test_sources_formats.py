"""Non-HDF5 sources (TIFF, EDF, MIB, Zarr, npy, arrays) and format recognition errors."""

from __future__ import annotations

import pickle

import dask.array as da
import fabio
import numpy as np
import pytest
import tifffile
import zarr

from ptydask.errors import ParameterError, SourceError
from ptydask.sources import open_frames


def _frames(n, h=6, w=5, dtype=np.uint16, seed=1):
    return np.random.default_rng(seed).integers(0, 5000, size=(n, h, w)).astype(dtype)


def test_multipage_tiff(tmp_path):
    frames = _frames(7)
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    scan = open_frames(tmp_path / "stack.tif", block_bytes=3 * 6 * 5 * 2)
    assert scan["data"].data.chunks[0] == (3, 3, 1)
    np.testing.assert_array_equal(scan["data"].values, frames)


def test_tiff_sequence_natural_order_folder_and_glob(tmp_path):
    frames = _frames(12)
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / f"img_{i}.tif", frame)  # img_10 must come after img_9
    for source in (folder, str(folder / "img_*.tif")):
        scan = open_frames(source)
        np.testing.assert_array_equal(scan["data"].values, frames)
    listed = open_frames([folder / "img_3.tif", folder / "img_1.tif"])
    np.testing.assert_array_equal(listed["data"].values, frames[[3, 1]])


def test_tiff_sequence_with_a_different_last_file(tmp_path):
    tifffile.imwrite(tmp_path / "a_1.tif", _frames(1)[0])
    tifffile.imwrite(tmp_path / "a_2.tif", _frames(1, h=7)[0])
    with pytest.raises(SourceError, match=r"a_2\.tif: holds 1 frame\(s\) of \(7, 5\).*sequence needs equal files"):
        open_frames(tmp_path)


def test_edf_sequence_with_fabio(tmp_path):
    frames = _frames(3, dtype=np.float32)
    for i, frame in enumerate(frames):
        fabio.edfimage.EdfImage(data=frame).write(str(tmp_path / f"f{i:03d}.edf"))
    scan = open_frames(tmp_path / "f*.edf")
    assert scan["data"].dtype == np.float32
    np.testing.assert_array_equal(scan["data"].values, frames)


def _write_mib(path, frames, ptype="U16", header_bytes=384):
    n, h, w = frames.shape
    dtype = {"U08": ">u1", "U16": ">u2", "U32": ">u4"}[ptype]
    with open(path, "wb") as fh:
        for i, frame in enumerate(frames):
            head = f"MQ1,{i + 1:06d},{header_bytes:05d},01,{w:04d},{h:04d},{ptype},   1x1,01,2024-01-01".encode()
            fh.write(head.ljust(header_bytes, b"\0"))
            fh.write(frame.astype(dtype).tobytes())


@pytest.mark.parametrize("ptype, dtype", [("U08", np.uint8), ("U16", np.uint16), ("U32", np.uint32)])
def test_synthetic_mib(tmp_path, ptype, dtype):
    frames = _frames(5, h=3, w=7, dtype=np.uint8)
    _write_mib(tmp_path / "s.mib", frames, ptype)
    scan = open_frames(tmp_path / "s.mib")
    assert scan["data"].dtype == dtype and scan["data"].shape == (5, 3, 7)
    np.testing.assert_array_equal(scan["data"].values, frames)
    assert pickle.loads(pickle.dumps(scan["data"].data))[2:4].compute().tolist() == frames[2:4].tolist()


def test_mib_truncated_and_not_mib(tmp_path):
    _write_mib(tmp_path / "t.mib", _frames(2, h=3, w=7))
    with open(tmp_path / "t.mib", "ab") as fh:
        fh.write(b"\0" * 10)
    with pytest.raises(SourceError, match=r"t\.mib: size .* is not a whole number of frames"):
        open_frames(tmp_path / "t.mib")
    (tmp_path / "x.mib").write_bytes(b"hello, this is not a detector file")
    with pytest.raises(SourceError, match=r"x\.mib: not a Merlin MIB file"):
        open_frames(tmp_path / "x.mib")
    _write_mib(tmp_path / "q.mib", _frames(1, h=3, w=7), "U16")
    raw = (tmp_path / "q.mib").read_bytes().replace(b"U16", b"U12", 1)
    (tmp_path / "q.mib").write_bytes(raw)
    with pytest.raises(SourceError, match=r"unknown MIB pixel type 'U12'; supported: U08, U16, U32"):
        open_frames(tmp_path / "q.mib")


def test_zarr_group_key_and_chunk_aligned_blocks(tmp_path):
    frames = _frames(20)
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    arr = root.create_array("entry/frames", shape=frames.shape, chunks=(4, 6, 5), dtype=frames.dtype)
    arr[:] = frames
    scan = open_frames(tmp_path / "s.zarr", "entry/frames", block_bytes=9 * 6 * 5 * 2)
    assert scan["data"].data.chunks[0] == (8, 8, 4)
    np.testing.assert_array_equal(scan["data"].values, frames)
    with pytest.raises(SourceError, match=r"key 'entry/nothing' not found"):
        open_frames(tmp_path / "s.zarr", "entry/nothing")
    with pytest.raises(SourceError, match=r"is a group; pass key="):
        open_frames(tmp_path / "s.zarr")


def test_npy_memory_mapped_raster(tmp_path):
    raster = _frames(6).reshape(2, 3, 6, 5)
    np.save(tmp_path / "r.npy", raster)
    scan = open_frames(tmp_path / "r.npy", positions=np.arange(12.0).reshape(6, 2))
    np.testing.assert_array_equal(scan["data"].values, raster.reshape(6, 6, 5))
    big = np.zeros((50, 64, 64), np.uint16)
    np.save(tmp_path / "big.npy", big)
    assert len(pickle.dumps(open_frames(tmp_path / "big.npy")["data"].data)) < big.nbytes // 10  # data not in the graph


def test_numpy_and_dask_arrays(tmp_path):
    frames = _frames(9)
    scan = open_frames(frames)
    np.testing.assert_array_equal(scan["data"].values, frames)
    lazy = da.from_array(frames, chunks=(3, 6, 5))
    scan = open_frames(lazy)
    assert scan["data"].data.chunks[0] == (3, 3, 3)
    single = open_frames(frames[0])
    assert single["data"].shape == (1, 6, 5)


def test_unknown_format_lists_supported(tmp_path):
    (tmp_path / "frames.xyz").write_text("nothing")
    with pytest.raises(SourceError, match=r"frames\.xyz: unknown format; supported: hdf5: .*tiff: \.tif .*mib: \.mib"):
        open_frames(tmp_path / "frames.xyz")
    with pytest.raises(SourceError, match=r"format='jpeg' is not supported; choose one of hdf5, tiff"):
        open_frames(tmp_path / "frames.xyz", format="jpeg")


def test_path_errors(tmp_path):
    with pytest.raises(SourceError, match=r"glob pattern matches no files"):
        open_frames(str(tmp_path / "none_*.tif"))
    with pytest.raises(SourceError, match=r"folder holds no files of a supported format"):
        open_frames(tmp_path)
    tifffile.imwrite(tmp_path / "a.tif", _frames(1)[0])
    np.save(tmp_path / "b.npy", _frames(1))
    with pytest.raises(SourceError, match=r"folder mixes formats \(npy, tiff\)"):
        open_frames(tmp_path)
    with pytest.raises(SourceError, match=r"missing\.tif: no such file"):
        open_frames([tmp_path / "a.tif", tmp_path / "missing.tif"])
    with pytest.raises(SourceError, match=r"expected a path, glob pattern"):
        open_frames(42)


def test_unknown_spec_key_suggests(tmp_path):
    with pytest.raises(ParameterError, match=r"unknown key 'posiitons' \(did you mean 'positions'\?\)"):
        open_frames(_frames(2), posiitons=np.zeros((2, 2)))
    with pytest.raises(ParameterError, match=r"either 'dark' or 'darkfield'"):
        open_frames(_frames(2), dark=np.zeros((6, 5)), darkfield=np.zeros((6, 5)))
