"""Bad input to the Scan model, the writer and the reader: clear errors, nothing left behind."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest

import ptydask
from ptydask.errors import FormatError, GeometryError, OutputError, OutputExistsError, ParameterError, ScanError

GEOM = dict(energy=6.2, distance=7.0, psize=5.5e-5)


def _scan(n=6, **kw):
    return ptydask.from_arrays(np.ones((n, 4, 4), np.uint16), np.zeros((n, 2)), **{**GEOM, **kw})


def _listing(d):
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((4, 4)), r"frames: expected 3 dimensions \(frame, y, x\)"),
        (np.zeros((2, 3, 4, 4)), r"reshape raster scans"),
        (np.zeros((3, 1, 8)), r"at least 2x2"),
        (np.zeros((3, 4, 4), dtype=complex), r"real numeric dtype"),
    ],
)
def test_bad_frames(frames, match):
    with pytest.raises(ScanError, match=match):
        ptydask.from_arrays(frames, None, **GEOM)


def test_bad_positions_and_weights():
    with pytest.raises(ScanError, match=r"positions: expected shape \(5, 2\).*got \(4, 2\)"):
        ptydask.from_arrays(np.zeros((5, 4, 4)), np.zeros((4, 2)))
    pos = np.zeros((5, 2))
    pos[3, 1] = np.nan
    with pytest.raises(ScanError, match=r"NaN or infinite, first at frame 3"):
        ptydask.from_arrays(np.zeros((5, 4, 4)), pos)
    with pytest.raises(ScanError, match=r"weights: expected shape \(4, 4\) or \(5, 4, 4\)"):
        ptydask.from_arrays(np.zeros((5, 4, 4)), None, np.ones((3, 3)))
    with pytest.raises(ScanError, match=r"indices: must be strictly ascending"):
        ptydask.from_arrays(np.zeros((3, 4, 4)), indices=[0, 2, 1])


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(energy=0), GeometryError, r"energy: must be a finite number > 0 keV"),
        (dict(distance=-1.0), GeometryError, r"distance: must be a finite number > 0 m"),
        (dict(psize=(1e-4, 0)), GeometryError, r"psize: must be finite numbers > 0"),
        (dict(center=(0, 2)), GeometryError, r"center: .* strictly inside"),
        (dict(num_frames=-3), ScanError, r"num_frames: expected an integer >= 0"),
        (dict(chunks=0), ParameterError, r"chunks: frames per block must be >= 1"),
        (dict(lable="x"), ParameterError, r"unknown keyword.*'lable' \(did you mean 'label'\?\)"),
    ],
)
def test_bad_meta(kw, err, match):
    with pytest.raises(err, match=match):
        ptydask.from_arrays(np.zeros((3, 4, 4)), np.zeros((3, 2)), **{**GEOM, **kw})


def test_writer_refusals(tmp_path):
    path = tmp_path / "s.ptyd"
    with pytest.raises(ParameterError, match=r"save: expected one of 'append', 'link', 'merge', got 'bogus'"):
        ptydask.to_ptyd(_scan(), path, save="bogus")
    with pytest.raises(ParameterError, match=r"chunk_format"):
        ptydask.to_ptyd(_scan(), path, chunk_format=".chunk")
    with pytest.raises(ParameterError, match=r"compression: expected 'gzip' or None"):
        ptydask.to_ptyd(_scan(), path, compression="bitshuffle")
    with pytest.raises(ScanError, match=r"positions: the scan has none"):
        ptydask.to_ptyd(ptydask.from_arrays(np.ones((3, 4, 4)), **GEOM), path)
    with pytest.raises(GeometryError, match=r"energy: not set on the scan"):
        ptydask.to_ptyd(ptydask.from_arrays(np.ones((3, 4, 4)), np.zeros((3, 2)), distance=1.0, psize=1e-4), path)
    with pytest.raises(ScanError, match=r"no frames"):
        ptydask.to_ptyd(ptydask.from_arrays(np.ones((0, 4, 4)), np.zeros((0, 2)), **GEOM), path)
    with pytest.raises(ScanError, match=r"expected a Scan"):
        ptydask.to_ptyd({"data": 1}, path)
    assert _listing(tmp_path) == []


def test_existing_output_and_unwritable_path(tmp_path):
    path = tmp_path / "s.ptyd"
    ptydask.to_ptyd(_scan(), path)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match=r"s.ptyd: exists; pass overwrite=True"):
        ptydask.to_ptyd(_scan(), path)
    assert path.read_bytes() == before
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"cannot create the output folder"):
        ptydask.to_ptyd(_scan(), blocker / "sub" / "s.ptyd")
    with pytest.raises(OutputError, match=r"is a directory"):
        ptydask.to_ptyd(_scan(), tmp_path)


def _failing_scan(n=12, fail_block=2):
    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == fail_block:
            raise RuntimeError("detector exploded")
        return block

    frames = da.ones((n, 4, 4), chunks=(3, 4, 4), dtype=np.float32).map_blocks(boom, dtype=np.float32)
    return ptydask.from_arrays(frames, np.zeros((n, 2)), **GEOM)


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_failure_mid_write_leaves_nothing_or_previous_file(tmp_path, save):
    path = tmp_path / "s.ptyd"
    with pytest.raises(RuntimeError, match="detector exploded"):
        ptydask.to_ptyd(_failing_scan(), path, save=save)
    assert _listing(tmp_path) == []
    ptydask.to_ptyd(_scan(), path, save=save)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError, match="detector exploded"):
        ptydask.to_ptyd(_failing_scan(), path, save=save, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    np.testing.assert_array_equal(ptydask.open_ptyd(path)["data"].values, np.ones((6, 4, 4)))


def test_reader_refusals(tmp_path):
    with pytest.raises(FormatError, match=r"no such file"):
        ptydask.open_ptyd(tmp_path / "missing.ptyd")
    (tmp_path / "text.ptyd").write_text("hello")
    with pytest.raises(FormatError, match=r"not a .ptyd file \(cannot be opened as HDF5"):
        ptydask.open_ptyd(tmp_path / "text.ptyd")
    with h5py.File(tmp_path / "nometa.ptyd", "w") as f:
        f.create_group("chunks")
    with pytest.raises(FormatError, match=r"no 'meta/' group"):
        ptydask.open_ptyd(tmp_path / "nometa.ptyd")
    with h5py.File(tmp_path / "nochunks.ptyd", "w") as f:
        f.create_group("meta")
    with pytest.raises(FormatError, match=r"no 'chunks/' group"):
        ptydask.open_ptyd(tmp_path / "nochunks.ptyd")


def _edit(src, dst, fn):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        fn(f)
    return dst


def test_reader_refuses_unsafe_and_malformed(tmp_path):
    good = ptydask.to_ptyd(_scan(), tmp_path / "good.ptyd")

    def pickle_tag(f):
        f["meta/label"].attrs["type"] = "pickle"

    with pytest.raises(FormatError, match=r"/meta/label: refusing to read an object tagged 'pickle'"):
        ptydask.open_ptyd(_edit(good, tmp_path / "p.ptyd", pickle_tag))

    def escaping_link(f):
        del f["chunks/0"]
        f["chunks/0"] = h5py.ExternalLink("../elsewhere.h5", "/")

    with pytest.raises(FormatError, match=r"chunks/0 is an external link to '../elsewhere.h5', outside"):
        ptydask.open_ptyd(_edit(good, tmp_path / "l.ptyd", escaping_link))

    def bad_name(f):
        f["chunks"].move("0", "two")

    with pytest.raises(FormatError, match=r"chunks/two: chunk names must be decimal integers"):
        ptydask.open_ptyd(_edit(good, tmp_path / "n.ptyd", bad_name))

    def no_data(f):
        del f["chunks/0/data"]

    with pytest.raises(FormatError, match=r"chunks/0 has no 'data' dataset"):
        ptydask.open_ptyd(_edit(good, tmp_path / "d.ptyd", no_data))

    def list_positions(f):
        del f["chunks/0/positions"]
        g = f["chunks/0"].create_group("positions")
        g.attrs["type"] = "list"

    with pytest.raises(FormatError, match=r"chunks/0/positions is a list, not an array"):
        ptydask.open_ptyd(_edit(good, tmp_path / "lp.ptyd", list_positions))


def test_dangling_link_is_skipped_with_warning(tmp_path):
    scan = ptydask.from_arrays(np.arange(32.0).reshape(2, 4, 4), np.zeros((2, 2)), chunks=1, **GEOM)
    path = ptydask.to_ptyd(scan, tmp_path / "s.ptyd", save="link")
    (tmp_path / "s.ptyd.chunk01").unlink()
    with pytest.warns(UserWarning, match=r"chunks/1 is a dangling link"):
        back = ptydask.open_ptyd(path)
    assert (ptydask.frames_present(back), ptydask.frames_expected(back)) == (1, 2)
