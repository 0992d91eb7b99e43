"""``to_cxi``: the CXI ptychography layout, read back by ``open_frames`` to the same frames, positions,
mask and geometry; checked against the file's own datasets read with h5py (SI units, CXI conventions:
translation (x, y, z) in m, energy in J, mask nonzero = bad); atomic like the ``.ptyd`` writer."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptydask import from_arrays, open_frames
from ptydask.errors import OutputExistsError, ParameterError, ScanError
from ptydask.sinks import to_cxi

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "ptycho_xray" / \
    "cdtools_PETRAIII_P25_Near_Field_Ptycho.cxi"
JOULES_PER_KEV = 1e3 * 1.602176634e-19  # the SI elementary charge, exact


def _scan(seed=0, n=10, h=8, w=6, chunks=4, dtype=np.uint16, bad=((2, 3),), psize=(5e-5, 6e-5)):
    rng = np.random.default_rng(seed)
    frames = (rng.random((n, h, w)) * 1000).astype(dtype)
    weights = np.ones((h, w), np.uint8)
    for y, x in bad:
        weights[y, x] = 0
    positions = rng.standard_normal((n, 2)) * 1e-6
    scan = from_arrays(frames, positions, weights, energy=7.5, distance=3.0, psize=psize, chunks=chunks)
    return scan, frames, positions, weights


def _assert_round_trip(back, frames, positions, weights, energy, distance, psize):
    np.testing.assert_array_equal(back["data"].values, frames)
    assert back["data"].dtype == frames.dtype
    np.testing.assert_array_equal(back["positions"].values, positions)
    np.testing.assert_array_equal(np.asarray(back["weights"].values) != 0, weights != 0)
    assert back.attrs["energy"] == pytest.approx(energy, rel=1e-15)
    assert back.attrs["distance"] == distance
    assert tuple(back.attrs["psize"]) == tuple(psize)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 13), chunks=st.integers(1, 6),
       dtype=st.sampled_from([np.uint16, np.int32, np.float32]), compression=st.sampled_from([None, "gzip"]),
       k=st.integers(1, 4))
def test_open_frames_reads_back_what_to_cxi_wrote(tmp_path_factory, seed, n, chunks, dtype, compression, k):
    path = tmp_path_factory.mktemp("cxi") / "scan.cxi"
    scan, frames, positions, weights = _scan(seed, n=n, chunks=chunks, dtype=dtype)
    to_cxi(scan, path, progress=False, compression=compression, frames_per_hdf5_chunk=k)
    _assert_round_trip(open_frames(path), frames, positions, weights, 7.5, 3.0, (5e-5, 6e-5))
    assert [p.name for p in path.parent.iterdir()] == ["scan.cxi"]


def test_the_layout_and_units_are_those_of_cxi(tmp_path):
    scan, frames, positions, weights = _scan()
    path = to_cxi(scan, tmp_path / "scan.cxi", progress=False)
    with h5py.File(path, "r") as f:
        assert int(f["cxi_version"][()]) == 150
        det = f["entry_1/instrument_1/detector_1"]
        np.testing.assert_array_equal(det["data"][()], frames)
        assert f.get("entry_1/data_1/data", getlink=True).path == "/entry_1/instrument_1/detector_1/data"
        assert det["distance"][()] == 3.0
        assert (det["y_pixel_size"][()], det["x_pixel_size"][()]) == (5e-5, 6e-5)
        assert np.array_equal(det["mask"][()] != 0, weights == 0)  # CXI: nonzero = bad
        assert f["entry_1/instrument_1/source_1/energy"][()] == pytest.approx(7.5 * JOULES_PER_KEV, rel=1e-15)
        t = f["entry_1/sample_1/geometry_1/translation"][()]
        assert t.shape == (len(frames), 3)
        np.testing.assert_array_equal(t[:, 0], positions[:, 1])  # x
        np.testing.assert_array_equal(t[:, 1], positions[:, 0])  # y
        assert not t[:, 2].any()


@pytest.mark.skipif(not REAL.is_file(), reason=f"{REAL} not found")
def test_a_real_cxi_file_survives_open_frames_to_cxi_open_frames(tmp_path):
    src = open_frames(REAL)
    out = to_cxi(src, tmp_path / "again.cxi", progress=False)
    a = src.attrs
    _assert_round_trip(open_frames(out), src["data"].values, src["positions"].values,
                       np.asarray(src["weights"].values), a["energy"], a["distance"], a["psize"])


def _boom(block):
    raise RuntimeError("injected failure")


def test_a_failing_block_leaves_no_file_and_an_old_file_in_place(tmp_path):
    scan, *_ = _scan()
    out = tmp_path / "scan.cxi"
    out.write_bytes(b"old")
    scan["data"] = (("frame", "y", "x"), scan["data"].data.map_blocks(_boom, dtype=scan["data"].dtype))
    with pytest.raises(RuntimeError, match="injected failure"):
        to_cxi(scan, out, overwrite=True, progress=False)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["scan.cxi"]


def test_bad_requests_are_one_line_errors(tmp_path):
    scan, frames, positions, weights = _scan()
    (tmp_path / "there.cxi").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match=r"there.cxi: exists"):
        to_cxi(scan, tmp_path / "there.cxi")
    with pytest.raises(ParameterError, match=r"^save: a CXI file holds one frame dataset"):
        to_cxi(scan, tmp_path / "a.cxi", save="link")
    per_frame = scan.copy()
    per_frame["weights"] = (("frame", "y", "x"), da.ones(frames.shape, dtype=np.uint8, chunks=(4, 8, 6)))
    with pytest.raises(ScanError, match=r"per-frame weights; a CXI file holds one \(H, W\) mask"):
        to_cxi(per_frame, tmp_path / "b.cxi")
    assert [p.name for p in tmp_path.iterdir()] == ["there.cxi"]
