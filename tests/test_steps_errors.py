"""Bad input: every parameter is validated before a frame is read, with a message naming it."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from ptydask.errors import GeometryError, ParameterError, ScanError
from ptydask.scan import from_arrays
from ptydask.steps import prepare

N, H, W = 12, 16, 20


def untouchable(block: np.ndarray) -> np.ndarray:
    raise AssertionError("a frame block was read before the parameters were validated")


@pytest.fixture
def scan():
    frames = da.ones((N, H, W), dtype=np.uint16, chunks=(5, -1, -1)).map_blocks(untouchable, dtype=np.uint16)
    return from_arrays(frames, np.zeros((N, 2)), psize=1e-4)


CASES = [
    # (parameters, exception, words the message must contain)
    (dict(shape=16, rebin=3), ParameterError, ["rebin", "3", "(16, 16)"]),
    (dict(shape=64, rebin=64), ParameterError, ["rebin", "64", "1..32"]),
    (dict(rebin=0), ParameterError, ["rebin", "0", "1..32"]),
    (dict(rebin=-2), ParameterError, ["rebin", "-2"]),
    (dict(rebin=2.0), ParameterError, ["rebin", "2.0"]),
    (dict(rebin=True), ParameterError, ["rebin", "True"]),
    (dict(rebin_mode="median"), ParameterError, ["rebin_mode", "median", "sum"]),
    (dict(center=(0, 5)), GeometryError, ["center", "outside", "0 < row < 16"]),
    (dict(center=(8, 20)), GeometryError, ["center", "outside", "0 < col < 20"]),
    (dict(center=(-3.0, 5.0)), GeometryError, ["center", "-3.0"]),
    (dict(center="fft"), GeometryError, ["'fft'", "never", "inside"]),
    (dict(center="middle"), ParameterError, ["center", "'middle'", "fftshift", "geometric"]),
    (dict(center=7), ParameterError, ["center", "7", "(row, col)"]),
    (dict(center=(1, float("nan"))), ParameterError, ["center", "finite"]),
    (dict(auto_center="yes"), ParameterError, ["auto_center", "'yes'", "True"]),
    (dict(orientation=8), ParameterError, ["orientation", "8", "0-7"]),
    (dict(orientation=-1), ParameterError, ["orientation", "-1", "0-7"]),
    (dict(orientation=(1, 0)), ParameterError, ["orientation", "(1, 0)", "three booleans"]),
    (dict(orientation=(True, 2, False)), ParameterError, ["orientation", "three booleans", "2"]),
    (dict(orientation="3"), ParameterError, ["orientation", "'3'"]),
    (dict(orientation=True), ParameterError, ["orientation", "boolean", "0-7"]),
    (dict(shape=0), ParameterError, ["shape", ">= 2"]),
    (dict(shape=1), ParameterError, ["shape", ">= 2", "got 1"]),
    (dict(shape=4, rebin=4), ParameterError, ["rebin", "1 x 1", "at least 2 x 2"]),
    (dict(shape=(4, 5, 6)), ParameterError, ["shape", "(4, 5, 6)"]),
    (dict(shape="big"), ParameterError, ["shape", "'big'"]),
    (dict(padding=(1, 2, 3)), ParameterError, ["padding", "(1, 2, 3)", "top, bottom, left, right"]),
    (dict(padding=(1, -2, 3, 4)), ParameterError, ["padding", ">= 0"]),
    (dict(num_frames=0), ParameterError, ["num_frames", "0", ">= 1"]),
    (dict(dark=np.zeros((H, W + 1))), ParameterError, ["dark", f"({H}, {W + 1})", f"({H}, {W})", f"({N}, {H}, {W})"]),
    (dict(flat=np.ones((N + 1, H, W))), ParameterError, ["flat", f"({N + 1}, {H}, {W})", f"({H}, {W})"]),
    (dict(mask=np.ones((W, H))), ParameterError, ["mask", f"({W}, {H})", f"({H}, {W})"]),
    (dict(mask=np.array(["a"] * (H * W)).reshape(H, W)), ParameterError, ["mask", "dtype"]),
    (dict(normalisation=np.ones(N - 1)), ParameterError, ["normalisation", f"({N - 1},)", f"({N},)"]),
    (dict(normalisation={"monitor": np.ones(N), "sigma": 0}), ParameterError, ["normalisation", "sigma", "> 0"]),
    (dict(normalisation={"monitr": np.ones(N)}), ParameterError, ["normalisation", "monitr"]),
    (dict(normalisation={"sigma": 2}), ParameterError, ["normalisation", "monitor"]),
    (dict(normalisation=np.r_[np.ones(N - 1), np.nan]), ParameterError, ["normalisation", "NaN"]),
    (dict(hot_pixels=-1), ParameterError, ["hot_pixels", "-1", "> 0"]),
    (dict(saturation="max"), ParameterError, ["saturation", "'max'"]),
    (dict(dead_pixels="yes"), ParameterError, ["dead_pixels", "'yes'", "True or False"]),
]


@pytest.mark.parametrize("kwargs, exc, words", CASES, ids=[f"{i}-{next(iter(c[0]))}" for i, c in enumerate(CASES)])
def test_bad_parameter(scan, kwargs, exc, words) -> None:
    with pytest.raises(exc) as info:
        prepare(scan, **kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_errors_are_value_errors(scan) -> None:
    with pytest.raises(ValueError):
        prepare(scan, rebin=99)


def test_frames_split_along_y_are_refused() -> None:
    scan = from_arrays(np.ones((4, 8, 8), dtype=np.uint16))
    split = scan.copy()
    split["data"] = (("frame", "y", "x"), da.ones((4, 8, 8), dtype=np.uint16, chunks=(2, 4, 8)))
    with pytest.raises(ScanError, match="whole frames"):
        prepare(split, shape=4)


def test_not_a_scan() -> None:
    with pytest.raises(ScanError, match="xarray.Dataset"):
        prepare(np.zeros((2, 4, 4)))


def test_automatic_centre_without_intensity() -> None:
    scan = from_arrays(np.zeros((4, 8, 8), dtype=np.uint16))
    with pytest.raises(GeometryError, match="auto_center: no frame has masked intensity"):
        prepare(scan, shape=4, center=None)


def test_automatic_centre_outside_the_frame() -> None:
    frames = np.zeros((3, 8, 8), dtype=np.uint16)
    frames[:, 0, 4] = 10  # all intensity on row 0: the centre of mass sits on the edge
    with pytest.raises(GeometryError, match="automatic centre.*outside"):
        prepare(from_arrays(frames), shape=4, center=None)


def test_no_frames_for_the_automatic_centre() -> None:
    scan = from_arrays(np.zeros((0, 8, 8), dtype=np.uint16), chunks=(0,))
    with pytest.raises(ParameterError, match="no frame"):
        prepare(scan, shape=4, center=None)
