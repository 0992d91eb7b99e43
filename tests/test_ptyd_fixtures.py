"""Every .ptyd that ptypy wrote opens with open_ptyd and matches what plain h5py reads from it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import ptydask
from conftest import FIXTURES

PTYD_FILES = sorted(p.name for p in FIXTURES.glob("*.ptyd")) if FIXTURES.is_dir() else []


def _h5py_chunks(path):
    """Frames, weights, positions, indices of a .ptyd concatenated in integer chunk order, by plain h5py."""
    out = {k: [] for k in ("data", "weights", "positions", "indices")}
    with h5py.File(path, "r") as f:
        meta = {k: f["meta"][k][()] for k in f["meta"]}
        for name in sorted(f["chunks"], key=int):
            for k in out:
                out[k].append(f["chunks"][name][k][()])
    return {k: (np.concatenate(v) if v else None) for k, v in out.items()}, meta


@pytest.mark.parametrize("name", PTYD_FILES)
def test_fixture_matches_h5py(ptypy_fixtures, name):
    path = ptypy_fixtures / name
    ref, meta = _h5py_chunks(path)
    scan = ptydask.open_ptyd(path)
    assert scan.attrs["num_frames"] == int(meta["num_frames"])
    assert scan.attrs["shape"] == tuple(int(v) for v in meta["shape"])
    np.testing.assert_array_equal(np.asarray(scan.attrs["center"]), meta["center"])
    np.testing.assert_array_equal(np.asarray(scan.attrs["psize"]), meta["psize"])
    assert scan.attrs["energy"] == float(meta["energy"]) and scan.attrs["distance"] == float(meta["distance"])
    if ref["data"] is None:  # moonflower_merge: meta but no chunks
        assert ptydask.frames_present(scan) == 0 and not ptydask.is_complete(scan)
        return
    assert scan["data"].dtype == ref["data"].dtype
    np.testing.assert_array_equal(scan["data"].values, ref["data"])
    assert scan["weights"].dtype == ref["weights"].dtype
    np.testing.assert_array_equal(scan["weights"].values, ref["weights"])
    np.testing.assert_array_equal(scan["positions"].values, ref["positions"])
    np.testing.assert_array_equal(scan["indices"].values, ref["indices"])


def test_incomplete_and_link_fixtures(ptypy_fixtures):
    inc = ptydask.open_ptyd(ptypy_fixtures / "moonflower_incomplete.ptyd")
    full = ptydask.open_ptyd(ptypy_fixtures / "moonflower_append.ptyd")
    link = ptydask.open_ptyd(ptypy_fixtures / "moonflower_link.ptyd")
    assert (ptydask.frames_present(inc), ptydask.frames_expected(inc)) == (40, 50)
    assert not ptydask.is_complete(inc) and ptydask.is_complete(full)
    np.testing.assert_array_equal(inc["data"].values, full["data"].values[:40])
    np.testing.assert_array_equal(link["data"].values, full["data"].values)
    assert full.attrs["label"] == "moonflower"
    # Dask blocks follow the file's chunk groups (20, 20, 10)
    assert full["data"].data.chunks[0] == (20, 20, 10)


def test_xarray_engine(ptypy_fixtures):
    import xarray as xr

    ds = xr.open_dataset(ptypy_fixtures / "moonflower_append.ptyd", engine="ptyd")
    assert ds["data"].shape == (50, 64, 64) and ds.attrs["num_frames"] == 50
