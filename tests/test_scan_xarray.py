"""The Scan as idiomatic xarray: coordinates, units, netCDF/Zarr round trips, ``open_ptyd(chunks=...)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import ptydask
from ptydask.errors import ParameterError
from ptydask.labels import META_UNITS, UNITS, info_of
from ptydask.simulate import SimulatedScan, simulate_frames

#: Planck constant times the speed of light, keV * Angstrom (CODATA), an independent reference.
HC_KEV_ANGSTROM = 12.398419843320026


def _scan(n=12, h=16, w=20, chunks=5, **meta):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 1000, (n, h, w)).astype(np.uint16)
    weights = (rng.random((h, w)) > 0.1).astype(np.float64)
    meta = {"energy": 8.0, "distance": 2.0, "psize": 75e-6, "center": (7.5, 9.0), **meta}
    return ptydask.from_arrays(frames, rng.random((n, 2)) * 1e-6, weights, chunks=chunks,
                               indices=np.arange(3, 3 + 2 * n, 2), label="xr test",
                               info={"masks": {"hot": 2}, "center": [7.5, 9.0], "deviations": ["a"]}, **meta)


def _prepared():
    sim = SimulatedScan(num_frames=24)
    frames, positions, _ = simulate_frames(sim)
    raw = ptydask.from_arrays(frames, positions, energy=sim.energy_kev, distance=sim.distance, psize=sim.psize,
                              chunks=8)
    return ptydask.prepare(raw, shape=64, center=None, auto_center=True, rebin=2, dead_pixels=True)


def test_coordinates_frame_pixels_and_units():
    scan = _scan()
    np.testing.assert_array_equal(scan["frame"].values, scan["indices"].values)
    np.testing.assert_array_equal(scan["y"].values, np.arange(16))
    np.testing.assert_array_equal(scan["x"].values, np.arange(20))
    assert scan.sel(frame=5)["data"].shape == (16, 20)  # select a scan point by its index
    for name, var in scan.variables.items():
        assert var.attrs.get("units") == UNITS[name], name
    for key, unit in META_UNITS.items():
        assert scan.attrs[f"{key}_units"] == unit


@settings(max_examples=25, deadline=None)
@given(energy=st.floats(1.0, 30.0), distance=st.floats(0.1, 10.0), psize=st.floats(1e-6, 2e-4),
       cy=st.floats(0.5, 15.5), cx=st.floats(0.5, 19.5))
def test_reciprocal_coordinates(energy, distance, psize, cy, cx):
    scan = _scan(energy=energy, distance=distance, psize=psize, center=(cy, cx))
    wavelength = HC_KEV_ANGSTROM / energy * 1e-10
    # spatial frequency of a pixel: sin(angle) / wavelength ~ (offset * psize / distance) / wavelength
    np.testing.assert_allclose(scan["qy"].values, (np.arange(16) - cy) * psize / distance / wavelength, rtol=1e-12)
    np.testing.assert_allclose(scan["qx"].values, (np.arange(20) - cx) * psize / distance / wavelength, rtol=1e-12)


def test_no_reciprocal_coordinates_without_geometry():
    scan = ptydask.from_arrays(np.zeros((3, 4, 4)), np.zeros((3, 2)), psize=1e-4)
    assert "qy" not in scan.coords and "qx" not in scan.coords and "y" in scan.coords


def test_prepared_scan_has_the_coordinates_of_its_frames():
    out = _prepared()
    assert out.sizes["y"] == out.sizes["x"] == 32
    np.testing.assert_array_equal(out["y"].values, np.arange(32))
    c = out.attrs["center"]
    assert np.argmin(np.abs(out["qy"].values)) == int(np.round(c[0]))
    assert out["data"].attrs["units"] == "counts" and out["weights"].attrs["units"] == "1"


def _same_scan(back, scan):
    for name in ("data", "weights", "positions", "indices"):
        np.testing.assert_array_equal(back[name].values, scan[name].values, err_msg=name)
        assert back[name].dtype == scan[name].dtype or name == "weights", name
        assert back[name].attrs["units"] == scan[name].attrs["units"]
    for name in scan.coords:
        np.testing.assert_array_equal(back[name].values, scan[name].values, err_msg=name)
    restored = ptydask.validate_scan(back)
    for key, value in ptydask.meta_of(scan).items():
        got = ptydask.meta_of(restored)[key]
        assert (got is None and value is None) or np.array_equal(got, value), key
    assert restored.attrs["info"] == json.loads(json.dumps(scan.attrs["info"], default=lambda v: v.tolist()))
    assert info_of(back) == restored.attrs["info"] and info_of(scan) == scan.attrs["info"]
    assert restored.attrs["propagation"] == scan.attrs["propagation"]


@pytest.mark.parametrize("make", [_scan, _prepared], ids=["raw", "prepared"])
def test_netcdf_round_trip(tmp_path, make):
    pytest.importorskip("h5netcdf")
    scan = make()
    scan.ptydask.to_netcdf(tmp_path / "s.nc")
    with xr.open_dataset(tmp_path / "s.nc") as back:
        _same_scan(back, scan)


def test_netcdf_round_trip_of_absent_meta(tmp_path):
    pytest.importorskip("h5netcdf")
    scan = ptydask.from_arrays(np.ones((3, 4, 4), dtype=np.float32), np.zeros((3, 2)), psize=1e-4)
    scan.ptydask.to_netcdf(tmp_path / "s.nc")
    with xr.open_dataset(tmp_path / "s.nc") as back:
        meta = ptydask.meta_of(back)
        assert meta["center"] is None and meta["energy"] is None and meta["label"] is None
        assert ptydask.validate_scan(back).attrs["info"] == {}


def test_zarr_round_trip(tmp_path):
    pytest.importorskip("zarr")
    scan = _prepared()
    scan.ptydask.to_zarr(tmp_path / "s.zarr")
    back = xr.open_zarr(tmp_path / "s.zarr")
    _same_scan(back, scan)


def test_written_scan_opens_lazily_with_chunks(tmp_path):
    scan = _scan(n=12, chunks=5)
    path = ptydask.to_ptyd(scan, tmp_path / "s.ptyd")
    assert ptydask.open_ptyd(path)["data"].data.chunks[0] == (5, 5, 2)
    assert ptydask.open_ptyd(path, chunks=4)["data"].data.chunks[0] == (4, 4, 4)
    assert ptydask.open_ptyd(path, chunks={"frame": 6, "y": -1})["data"].data.chunks[0] == (6, 6)
    assert ptydask.open_ptyd(path, chunks=-1)["data"].data.chunks[0] == (12,)
    assert ptydask.open_ptyd(path, chunks={})["data"].data.chunks[0] == (5, 5, 2)
    np.testing.assert_array_equal(ptydask.open_ptyd(path, chunks=4)["data"].values, scan["data"].values)
    via_xarray = xr.open_dataset(path, engine="ptyd", chunks={"frame": 3})
    assert via_xarray["data"].data.chunks[0] == (3, 3, 3, 3)
    np.testing.assert_array_equal(via_xarray["frame"].values, scan["indices"].values)


@pytest.mark.parametrize("chunks, words", [
    ({"y": 4}, "y=4"), ({"time": 2}, "'time'"), (0, "frame=0"), ("big", "frame='big'"), (True, "frame=True"),
])
def test_bad_chunks_name_the_parameter(tmp_path, chunks, words):
    path = ptydask.to_ptyd(_scan(), tmp_path / "s.ptyd")
    with pytest.raises(ParameterError, match="chunks") as err:
        ptydask.open_ptyd(path, chunks=chunks)
    assert words in str(err.value)


def test_frame_coordinate_follows_the_indices_everywhere(tmp_path):
    from ptydask.simulate import KEYS, write_raw

    raw_path = write_raw(tmp_path / "raw.h5", SimulatedScan(num_frames=20))
    raw = ptydask.open_frames(raw_path, KEYS["frames"], energy=8.0, distance=5.0, psize=75e-6,
                              positions={"file": str(raw_path), "slow_key": KEYS["y"], "fast_key": KEYS["x"], "skip": 2})
    np.testing.assert_array_equal(raw["indices"].values, np.arange(0, 20, 2))
    prepared = ptydask.prepare(raw, shape=32, center=None, auto_center=True)
    back = ptydask.open_ptyd(ptydask.to_ptyd(prepared, tmp_path / "s.ptyd"))
    for scan in (raw, prepared, back):
        np.testing.assert_array_equal(scan["frame"].values, scan["indices"].values)
