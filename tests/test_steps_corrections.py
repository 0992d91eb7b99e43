"""Corrections, masks, padding and frame selection of ``prepare`` (spec §7 in float arithmetic, §9 options)."""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import pytest

from ptydask.scan import from_arrays
from ptydask.steps import prepare

REPO = Path(__file__).resolve().parents[1]
RAW_PEAK = Path(os.environ.get("PTYDASK_SHARED", REPO.parent / "shared")) / "fixtures" / "ptypy" / "raw_peak.h5"


def full(scan, **kw):
    """Prepare whole square frames without moving them (the gate stays closed)."""
    return prepare(scan, shape=None, center="fftshift", **kw)


def test_no_truncation_of_integer_frames() -> None:
    # Hdf5Loader computes (126 - 5) / 2 = 60 in uint16; ptydask keeps 60.5
    frames = np.full((2, 4, 4), 126, dtype=np.uint16)
    out = full(from_arrays(frames), dark=np.full((4, 4), 5, dtype=np.uint16), flat=np.full((4, 4), 2.0))
    assert out["data"].dtype == np.float64
    assert (out["data"].values == 60.5).all()


def test_dark_negatives_clipped_and_per_frame_dark() -> None:
    frames = np.arange(2 * 4 * 4, dtype=np.uint16).reshape(2, 4, 4)
    dark = np.full((2, 4, 4), 20, dtype=np.uint16)
    dark[1] = 3
    out = full(from_arrays(frames, chunks=1), dark=dark)
    expected = np.maximum(frames.astype(float) - dark, 0)
    np.testing.assert_array_equal(out["data"].values, expected)
    assert out["weights"].dims == ("y", "x")  # a dark never changes the weights


def test_zero_flat_masks_pixel_and_keeps_weights_2d() -> None:
    frames = np.full((3, 4, 4), 8, dtype=np.uint32)
    flat = np.full((4, 4), 2.0)
    flat[1, 2] = 0.0
    flat[3, 3] = np.nan
    weights = np.ones((4, 4), dtype=np.uint8)
    out = full(from_arrays(frames, weights=weights), flat=flat)
    w = out["weights"]
    assert w.dims == ("y", "x") and w.dtype == np.uint8
    assert w.values[1, 2] == 0 and w.values[3, 3] == 0 and w.values.sum() == 14
    d = out["data"].values
    assert (d[:, 1, 2] == 0).all() and (d[:, 3, 3] == 0).all() and np.isfinite(d).all()
    assert (d[:, 0, 0] == 4.0).all()


def test_per_frame_flat_makes_weights_per_frame() -> None:
    frames = np.full((3, 4, 4), 6, dtype=np.uint16)
    flat = np.ones((3, 4, 4))
    flat[2, 0, 0] = 0
    out = full(from_arrays(frames, chunks=2), flat=flat)
    w = out["weights"].values
    assert out["weights"].dims == ("frame", "y", "x")
    assert w[2, 0, 0] == 0 and w[:2, 0, 0].all() and w.sum() == 3 * 16 - 1


def test_scan_variables_used_by_default_and_switched_off_with_false() -> None:
    frames = np.full((2, 4, 4), 10, dtype=np.uint16)
    scan = from_arrays(frames, dark=np.full((4, 4), 4.0), flat=np.full((4, 4), 2.0), monitor=np.array([1.0, 1.0]))
    out = full(scan)
    assert (out["data"].values == 3.0).all()
    assert out.attrs["info"]["prepare"]["dark"] == "scan" and out.attrs["info"]["prepare"]["flat"] == "scan"
    assert "dark" not in out and "flat" not in out and "monitor" not in out  # applied once, not again
    plain = full(scan, dark=False, flat=False, normalisation=False)
    assert plain["data"].dtype == np.uint16 and (plain["data"].values == 10).all()


def test_normalisation_rule() -> None:
    rng = np.random.default_rng(3)
    n = 40
    frames = rng.integers(1, 100, size=(n, 4, 4)).astype(np.uint16)
    monitor = rng.normal(1000.0, 10.0, n)
    monitor[7] = 5000.0  # an outlier beyond 3 sigma: left unnormalised
    out = full(from_arrays(frames, chunks=6), normalisation=monitor)
    mean, std = monitor.mean(), monitor.std()
    expected = frames.astype(np.float64)
    for i in range(n):
        if abs(monitor[i] - mean) < 3 * std:
            expected[i] = expected[i] / monitor[i] * mean
    np.testing.assert_array_equal(out["data"].values, expected)
    assert (out["data"].values[7] == frames[7]).all()
    tight = full(from_arrays(frames), normalisation={"monitor": monitor, "sigma": 0.1})
    assert tight.attrs["info"]["prepare"]["normalisation"] == {"source": "argument", "sigma": 0.1}
    assert not np.array_equal(tight["data"].values, out["data"].values)


def test_lazy_monitor_gives_the_same_result() -> None:
    rng = np.random.default_rng(5)
    frames = rng.integers(1, 100, size=(12, 4, 4)).astype(np.uint32)
    monitor = rng.normal(50.0, 2.0, 12)
    eager = full(from_arrays(frames, chunks=5), normalisation=monitor)
    lazy = full(from_arrays(frames, chunks=5, monitor=da.from_array(monitor, chunks=4)))
    np.testing.assert_array_equal(lazy["data"].values, eager["data"].values)
    assert lazy.attrs["info"]["prepare"]["normalisation"]["source"] == "scan"


def test_padding_before_the_roi_step() -> None:
    frames = np.arange(2 * 4 * 6, dtype=np.uint16).reshape(2, 4, 6) + 1
    out = prepare(from_arrays(frames, weights=np.ones((4, 6), dtype=bool)), shape=None, center="fftshift",
                  padding=(1, 3, 0, 2))
    # padded frame: 8 x 8, square, gate closed: nothing else happens
    d, w = out["data"].values, out["weights"].values
    assert d.shape == (2, 8, 8) and d.dtype == np.uint16 and w.dtype == bool
    np.testing.assert_array_equal(d[:, 1:5, 0:6], frames)
    assert (d[:, 0] == 0).all() and (d[:, 5:] == 0).all() and (d[:, :, 6:] == 0).all()
    assert w[1:5, 0:6].all() and w.sum() == 24
    assert out.attrs["center"] == (4.0, 4.0)  # 'fftshift' of the padded 8 x 8 frame


def test_user_mask_combined_with_scan_weights() -> None:
    frames = np.ones((2, 4, 4), dtype=np.uint16)
    weights = np.ones((4, 4), dtype=np.uint8)
    weights[0, 0] = 0
    mask = np.ones((4, 4), dtype=bool)
    mask[3, 3] = False
    mask[0, 0] = False
    out = full(from_arrays(frames, weights=weights), mask=mask)
    w = out["weights"].values
    assert w.dtype == np.uint8 and w[0, 0] == 0 and w[3, 3] == 0 and w.sum() == 14
    assert out.attrs["info"]["masks"] == {"user": 2}


def test_automatic_masks_synthetic() -> None:
    rng = np.random.default_rng(7)
    frames = rng.poisson(20.0, size=(30, 16, 16)).astype(np.uint16)
    frames[:, :, 5] = 0  # dead column
    frames[:, 9, 9] = 4000  # hot pixel
    frames[11, 2, 13] = 65535  # saturated once
    out = full(from_arrays(frames, chunks=7), hot_pixels=5.0, dead_pixels=True, saturation=65535)
    w = out["weights"].values
    assert out["weights"].dims == ("y", "x")
    assert out.attrs["info"]["masks"] == {"saturated": 1, "dead": 16, "hot": 1}
    assert (w[:, 5] == 0).all() and w[9, 9] == 0 and w[2, 13] == 0
    assert w.sum() == 16 * 16 - 18
    assert (out["data"].values == frames).all()  # masks touch the weights only


@pytest.mark.skipif(not RAW_PEAK.is_file(), reason=f"{RAW_PEAK} not found (set PTYDASK_SHARED)")
def test_hot_pixels_found_next_to_a_bright_beam() -> None:
    with h5py.File(RAW_PEAK, "r") as f:
        frames = f["entry/data"][()]
    out = prepare(from_arrays(frames, chunks=9), shape=None, center=None, hot_pixels=5.0, dead_pixels=True)
    bad = np.argwhere(out["weights"].values == 0)
    hot = sorted(tuple(int(v) for v in p) for p in bad if p[1] != 50)
    assert hot == [(5, 60), (40, 12), (58, 3)]  # the three hot pixels, none in the beam
    assert out.attrs["info"]["masks"] == {"dead": 64, "hot": 3}


def test_automatic_centre_ignores_hot_pixels_found_by_the_masks() -> None:
    """A symmetric beam at a known centre plus bright hot pixels off to one side: with hot-pixel
    detection the centre is the beam's; the plain masked centre of mass is pulled away."""
    yy, xx = np.mgrid[:48, :48]
    beam = 1000.0 * np.exp(-((yy - 20.0) ** 2 + (xx - 27.0) ** 2) / (2 * 3.0**2))
    frames = np.repeat(np.round(beam)[None], 12, axis=0).astype(np.uint16)
    frames[:, 44, 3] = 30000
    frames[:, 2, 45] = 30000
    scan = from_arrays(frames, chunks=5)
    found = prepare(scan, shape=32, center=None, auto_center=True, hot_pixels=5.0)
    plain = prepare(scan, shape=32, center=None, auto_center=True)
    assert found.attrs["info"]["masks"]["hot"] == 2
    np.testing.assert_allclose(found.attrs["info"]["center"], (20.0, 27.0), atol=1e-6)
    assert abs(plain.attrs["info"]["center"][0] - 20.0) > 1.0


def test_num_frames_selects_first_frames_and_caps_meta() -> None:
    frames = np.arange(10 * 4 * 4, dtype=np.uint16).reshape(10, 4, 4)
    positions = np.arange(20, dtype=float).reshape(10, 2)
    scan = from_arrays(frames, positions, chunks=3, monitor=np.ones(10))
    few = full(scan, num_frames=4)
    assert few.sizes["frame"] == 4 and few.attrs["num_frames"] == 4
    np.testing.assert_array_equal(few["data"].values, frames[:4])
    np.testing.assert_array_equal(few["positions"].values, positions[:4])
    np.testing.assert_array_equal(few["indices"].values, np.arange(4))
    many = full(scan, num_frames=25)
    assert many.sizes["frame"] == 10 and many.attrs["num_frames"] == 10
    live = from_arrays(frames, num_frames=30)  # a scan still growing: 10 of 30 frames present
    assert full(live, num_frames=25).attrs["num_frames"] == 25
    assert full(live).attrs["num_frames"] == 30


def test_info_names_parameters_and_deviations() -> None:
    frames = np.random.default_rng(0).poisson(5.0, size=(6, 8, 8)).astype(np.uint16)
    out = prepare(from_arrays(frames), shape=4, center=(4, 4), auto_center=True, orientation=5, rebin=2,
                  rebin_mode="sum", dark=np.ones((8, 8)))
    info = out.attrs["info"]
    assert info["orientation"] == 5 and info["rebin"] == 2 and info["shape"] == [4, 4]
    assert info["prepare"]["rebin_mode"] == "sum" and info["prepare"]["dark"] == "argument"
    text = " ".join(info["deviations"])
    for words in ("all 6 frames", "overrides the given centre", "rebin mask rule", "rebin_mode='sum'", "float64"):
        assert words in text
