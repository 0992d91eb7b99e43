"""Masks as ptypy weights, dark/flat/monitor inputs, and geometry from values or file keys."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest

from ptydask.errors import GeometryError, ParameterError, ScanError
from ptydask.sources import open_frames
from ptydask.sources.corrections import weights_from_mask
from ptydask.sources.geometry import electron_to_photon_kev

H, W = 4, 5


def _frames(n, seed=2):
    return np.random.default_rng(seed).integers(0, 100, size=(n, H, W)).astype(np.uint16)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_invert_is_a_logical_inversion(dtype):
    mask = np.array([[0, 1, 2, 255 if dtype == np.uint8 else -3, 0]] * H, dtype=dtype)
    scan = open_frames(_frames(2), mask=mask)
    np.testing.assert_array_equal(scan["weights"].values, mask)  # not inverted: values kept as weights
    inverted = weights_from_mask(mask, "valid", invert=True)
    np.testing.assert_array_equal(inverted, mask == 0)  # 2 -> invalid, unlike 1 - mask
    assert inverted.dtype == bool


def test_mask_from_file_with_invert(tmp_path):
    mask = np.zeros((H, W), np.uint8)
    mask[1, 2] = 2
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["data"] = _frames(3)
        f["bad"] = mask
    scan = open_frames(tmp_path / "m.h5", "data", mask={"key": "bad", "invert": True})
    np.testing.assert_array_equal(scan["weights"].values, mask == 0)
    assert int((~scan["weights"].values).sum()) == 1


def test_nexus_pixel_mask_bits_and_cxi_kind():
    mask = np.array([[0, 1, 8, 1 << 15, 1 << 16, 1 << 31]], dtype=np.uint32)
    np.testing.assert_array_equal(weights_from_mask(mask, "nexus"), [[True, False, False, False, True, True]])
    np.testing.assert_array_equal(weights_from_mask(mask, "bad"), [[True, False, False, False, False, False]])
    with pytest.raises(Exception, match="bit field"):
        weights_from_mask(mask.astype(np.float32), "nexus")


def test_file_pixel_mask_used_automatically_and_mask_false_ignores_it(tmp_path):
    pm = np.zeros((1, H, W), np.uint32)
    pm[0, 0, 0] = 1  # gap
    pm[0, 3, 4] = 1 << 20  # a high bit only: still valid
    with h5py.File(tmp_path / "n.nxs", "w") as f:
        f["entry/instrument/detector/data"] = _frames(2)
        f["entry/instrument/detector/pixel_mask"] = pm
    scan = open_frames(tmp_path / "n.nxs")
    np.testing.assert_array_equal(scan["weights"].values, (pm[0] & 0xFFFF) == 0)
    assert scan.attrs["info"]["mask"].endswith("(nexus)")
    plain = open_frames(tmp_path / "n.nxs", mask=False)
    assert plain["weights"].values.all()


def test_per_frame_mask_follows_the_selection():
    masks = np.ones((6, H, W), bool)
    masks[4, 1, 1] = False
    scan = open_frames(_frames(6), mask=masks, framefilter=[0, 0, 0, 1, 1, 0])
    assert scan["weights"].dims == ("frame", "y", "x")
    assert not scan["weights"].values[1, 1, 1] and scan["weights"].values[0].all()


def test_mask_shape_errors():
    with pytest.raises(ScanError, match=r"mask: frame shape \(3, 3\) differs from the frames' \(4, 5\)"):
        open_frames(_frames(2), mask=np.ones((3, 3)))
    with pytest.raises(ScanError, match=r"mask: 3 frames given for 2 frames"):
        open_frames(_frames(2), mask=np.ones((3, H, W)))


def test_dark_stack_is_averaged_lazily_and_per_frame_dark_is_selected(tmp_path):
    darks = _frames(5, seed=9)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["data"] = _frames(8)
        f["darks"] = darks
    scan = open_frames(tmp_path / "d.h5", "data", dark={"key": "darks"}, flat=np.full((H, W), 2.0))
    assert isinstance(scan["dark"].data, da.Array) and scan["dark"].dims == ("y", "x")
    np.testing.assert_allclose(scan["dark"].values, darks.mean(axis=0))
    per_frame = _frames(8, seed=3)
    sel = open_frames(_frames(8), dark=per_frame, framefilter=np.arange(8) % 2)
    np.testing.assert_array_equal(sel["dark"].values, per_frame[1::2])
    alias = open_frames(_frames(8), darkfield=per_frame)  # ptypy's name
    assert alias["dark"].dims == ("frame", "y", "x")


def test_average_true_forces_averaging(tmp_path):
    stack = _frames(3, seed=4)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = _frames(3)
        f["flats"] = stack
    scan = open_frames(tmp_path / "a.h5", "data", flat={"key": "flats", "average": True})
    np.testing.assert_allclose(scan["flat"].values, stack.mean(axis=0))


def test_monitor_selected_and_checked(tmp_path):
    with h5py.File(tmp_path / "mon.h5", "w") as f:
        f["data"] = _frames(4)
        f["i0"] = np.array([1.0, 2.0, 3.0, 4.0])
    scan = open_frames(tmp_path / "mon.h5", "data", normalisation={"key": "i0", "sigma": 2}, framefilter=[1, 0, 1, 1])
    np.testing.assert_array_equal(scan["monitor"].values, [1.0, 3.0, 4.0])
    assert scan.attrs["info"]["normalisation_sigma"] == 2.0
    with pytest.raises(ScanError, match=r"normalisation: 3 values \(3,\) for 4 frames"):
        open_frames(tmp_path / "mon.h5", "data", normalisation=np.ones(3))


# --------------------------------------------------------------------------- geometry


def _geometry_file(path, **datasets):
    with h5py.File(path, "w") as f:
        f["data"] = _frames(2)
        for key, (value, units) in datasets.items():
            f[key] = value
            if units is not None:
                f[key].attrs["units"] = units
    return path


def test_units_are_converted_and_explicit_values_win(tmp_path):
    path = _geometry_file(tmp_path / "g.h5", e=(np.array([8000.0]), "eV"), d=(np.array(540.8), "mm"),
                          p=(np.array(75.0), b"micrometer"))
    spec = {"recorded_energy": {"key": "e"}, "recorded_distance": {"key": "d"}, "recorded_psize": {"key": "p"}}
    scan = open_frames(path, "data", **spec)
    assert scan.attrs["energy"] == pytest.approx(8.0)
    assert scan.attrs["distance"] == pytest.approx(0.5408)
    assert scan.attrs["psize"] == pytest.approx((75e-6, 75e-6))
    explicit = open_frames(path, "data", energy=9.5, **spec)
    assert explicit.attrs["energy"] == 9.5 and explicit.attrs["info"]["energy_from"] == "explicit"


def test_multiplier_and_offset_use_the_raw_number(tmp_path):
    path = _geometry_file(tmp_path / "g.h5", e=(np.array(8000.0), "eV"))
    scan = open_frames(path, "data", recorded_energy={"key": "e", "multiplier": 1e-3, "offset": 0.25})
    assert scan.attrs["energy"] == pytest.approx(8.25)


def test_joules_and_spectro_energies(tmp_path):
    path = _geometry_file(tmp_path / "g.h5", ej=(np.array(2.028e-15), "J"), spectro=(np.array([7.0, 7.5]), "keV"))
    assert open_frames(path, "data", recorded_energy={"key": "ej"}).attrs["energy"] == pytest.approx(12.658, abs=1e-3)
    with pytest.raises(GeometryError, match=r"g\.h5:spectro: 2 different energy values.*outer_index"):
        open_frames(path, "data", recorded_energy={"key": "spectro"})


def test_unknown_units_and_missing_electron_energy(tmp_path):
    path = _geometry_file(tmp_path / "g.h5", d=(np.array(3.0), "furlong"))
    with pytest.raises(GeometryError, match=r"units 'furlong' cannot be converted to m for distance"):
        open_frames(path, "data", recorded_distance={"key": "d"})
    with pytest.raises(GeometryError, match=r"electron_data=True needs an electron energy"):
        open_frames(path, "data", electron_data=True)
    with pytest.raises(Exception, match=r"key 'nope' not found"):
        open_frames(path, "data", recorded_distance={"key": "nope"})


def test_electron_conversion_matches_the_relativistic_wavelength():
    # 200 keV electrons: tabulated wavelength 2.5079 pm
    assert electron_to_photon_kev(200.0) == pytest.approx(1.23984198e-9 / 2.5079e-12, rel=1e-4)
    scan = open_frames(_frames(2), energy=200.0, electron_data=True)
    assert scan.attrs["energy"] == pytest.approx(electron_to_photon_kev(200.0))


def test_reference_typos_are_named(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["data"] = _frames(2)
        f["m"] = np.ones((H, W), np.uint8)
    with pytest.raises(ParameterError, match=r"mask: unknown key 'invrt' \(did you mean 'invert'\?\)"):
        open_frames(tmp_path / "t.h5", "data", mask={"key": "m", "invrt": True})
    with pytest.raises(ParameterError, match=r"mask\.kind: expected one of valid, bad, nexus, got 'good'"):
        open_frames(tmp_path / "t.h5", "data", mask={"key": "m", "kind": "good"})
    with pytest.raises(ParameterError, match=r"'key' is required to read from the HDF5 file"):
        open_frames(tmp_path / "t.h5", "data", flat={"average": True})
