"""The photon step (``adu_per_photon``, ``photon_threshold``, ``round_photons``) against plain numpy.

The reference converts whole raw frames with numpy (dark, flat, then counts -> photons,
threshold, rounding) and hands them to ``prepare`` with the same geometry and no correction;
``prepare`` with the photon parameters must give the same frames and weights bit for bit (the
step runs after the corrections and before the window, on the pixels the window sees).
"""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptydask import open_ptyd
from ptydask.cli import main
from ptydask.errors import ParameterError, RecipeError
from ptydask.ptyscan import ScanPtyScan
from ptydask.recipe import load_recipe
from ptydask.scan import from_arrays
from ptydask.sources import open_frames
from ptydask.steps import prepare

pytestmark = pytest.mark.filterwarnings("ignore:shape. non-square ROI")
SETTINGS = settings(max_examples=int(os.environ.get("PTYDASK_HYPOTHESIS_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def reference(frames, dark, flat, adu, threshold, rounding):
    """(photon frames, valid pixels) by the documented rule, whole frames, plain numpy."""
    x = frames.astype(np.float64)
    valid = np.ones(frames.shape[1:], dtype=bool)
    if dark is not None:
        x = np.maximum(x - dark, 0.0)
    if flat is not None:
        ok = np.isfinite(flat) & (flat != 0)
        x = np.where(ok, x / np.where(ok, flat, 1.0), 0.0)
        valid &= ok
    adu = 1.0 if adu is None else adu
    if np.ndim(adu):
        ok = np.isfinite(adu) & (adu > 0)
        x = np.where(ok, x / np.where(ok, adu, 1.0), 0.0)
        valid &= ok
    else:
        x = x / adu
    if threshold is not None:
        x = np.where(x < threshold, 0.0, x)
    if rounding:
        x = np.round(x)
    return x, valid


@st.composite
def cases(draw):
    n, h, w = draw(st.integers(1, 5)), draw(st.integers(3, 9)), draw(st.integers(3, 9))
    dtype = draw(st.sampled_from([np.uint16, np.int32, np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = rng.integers(0, 200, (n, h, w)).astype(dtype)
    dark = rng.uniform(0, 20, (h, w)) if draw(st.booleans()) else None
    flat = rng.uniform(0.5, 1.5, (h, w)) if draw(st.booleans()) else None
    if flat is not None and draw(st.booleans()):
        flat[0, 0] = 0.0
    kind = draw(st.sampled_from(["none", "number", "map"]))
    adu = None
    if kind == "number":
        adu = draw(st.floats(0.1, 50.0))
    elif kind == "map":
        adu = rng.uniform(0.5, 20, (h, w))
        adu[rng.random((h, w)) < 0.15] = draw(st.sampled_from([0.0, -1.0, np.nan, np.inf]))
    threshold = draw(st.one_of(st.none(), st.floats(0.0, 30.0)))
    rounding = draw(st.booleans())
    if adu is None and threshold is None and not rounding:
        rounding = True
    r = draw(st.sampled_from([1, 1, 2]))
    roi = r * draw(st.integers(2, 4))
    geometry = dict(shape=roi, rebin=r, rebin_mode=draw(st.sampled_from(["mean", "sum"])),
                    orientation=draw(st.integers(0, 7)),
                    center=(draw(st.integers(1, h - 1)) + 0.5 * draw(st.integers(0, 1)),
                            draw(st.integers(1, w - 1)) + 0.0), auto_center=False)
    chunks = draw(st.integers(1, n))
    return frames, dark, flat, adu, threshold, rounding, geometry, chunks


def _scan(frames, chunks, weights=None):
    n = frames.shape[0]
    return from_arrays(da.from_array(frames, chunks=(chunks, -1, -1)), np.zeros((n, 2)), weights,
                       energy=7.2, distance=1.0, psize=1e-4)


@SETTINGS
@given(case=cases())
def test_photon_step_equals_the_numpy_reference(case):
    frames, dark, flat, adu, threshold, rounding, geometry, chunks = case
    got = prepare(_scan(frames, chunks), dark=dark, flat=flat, adu_per_photon=adu, photon_threshold=threshold,
                  round_photons=rounding, **geometry)
    photons, valid = reference(frames, dark, flat, adu, threshold, rounding)
    want = prepare(_scan(photons, chunks, valid.astype(np.float64)), **geometry)
    np.testing.assert_array_equal(got["data"].values, want["data"].values)
    np.testing.assert_array_equal(got["weights"].values, want["weights"].values)
    assert got["data"].dtype == np.float64


def test_automatic_centre_and_masks_see_the_photon_frames():
    rng = np.random.default_rng(3)
    frames = rng.poisson(40, (12, 16, 16)).astype(np.uint16)
    frames[:, 9:12, 4:7] += 400
    adu = np.full((16, 16), 8.0)
    adu[2, 3] = 0.0
    got = prepare(_scan(frames, 5), shape=8, center=None, adu_per_photon=adu, photon_threshold=3.0,
                  round_photons=True, saturation=1e9)
    photons, valid = reference(frames, None, None, adu, 3.0, True)
    want = prepare(_scan(photons, 5, valid.astype(np.float64)), shape=8, center=None, saturation=1e9)
    assert got.attrs["info"]["center"] == want.attrs["info"]["center"]
    np.testing.assert_array_equal(got["data"].values, want["data"].values)
    assert got.attrs["info"]["prepare"]["photons"] == {"adu_per_photon": "map (argument)", "photon_threshold": 3.0,
                                                       "round_photons": True}


@pytest.mark.parametrize("kw, words", [
    (dict(adu_per_photon=0), ["adu_per_photon", "> 0"]),
    (dict(adu_per_photon=-2.0), ["adu_per_photon"]),
    (dict(photon_threshold=-1), ["photon_threshold", ">= 0"]),
    (dict(round_photons=1), ["round_photons", "True or False"]),
    (dict(adu_per_photon=np.ones((3, 3))), ["adu_per_photon", "(3, 3)"]),
])
def test_bad_photon_parameters(kw, words):
    with pytest.raises(ParameterError) as info:
        prepare(_scan(np.ones((2, 4, 4)), 2), shape=4, **kw)
    for word in words:
        assert word in str(info.value)


def test_ptyscan_path_gives_the_prepare_frames():
    rng = np.random.default_rng(5)
    frames = rng.poisson(30, (6, 12, 12)).astype(np.int32)
    scan = from_arrays(frames, np.stack([np.arange(6.0), np.arange(6.0)], 1) * 1e-6, energy=7.2, distance=1.0,
                       psize=1e-4, chunks=3)
    options = dict(adu_per_photon=4.0, photon_threshold=2.0, round_photons=True)
    ps = ScanPtyScan(scan, dict(shape=8, center="fftshift"), prepare_options=options)
    ps.initialize()
    package = ps.auto(6)
    want = prepare(scan, shape=8, center="fftshift", **options)["data"].values
    got = np.stack([node["data"] for node in package["iterable"]])
    np.testing.assert_array_equal(got, want)


PETRA = "ptycho_xray/cdtools_PETRAIII_P25_Near_Field_Ptycho.cxi"


def test_cli_prepare_with_photons_on_a_real_file_equals_the_api(real_data, tmp_path, capsys):
    """``ptydask prepare`` with a per-pixel ADU map read from a file ref equals open_frames + prepare."""
    raw = real_data / PETRA
    adu = np.linspace(20.0, 40.0, 100 * 100).reshape(100, 100)
    adu[50, 50] = 0.0
    with h5py.File(tmp_path / "gain.h5", "w") as f:
        f["adu"] = adu
    recipe = {"name": "Hdf5Loader", "intensities": {"file": str(raw)}, "shape": 64, "center": None,
              "adu_per_photon": {"file": "gain.h5", "key": "adu"}, "photon_threshold": 0.5,
              "round_photons": True, "dfile": "out.ptyd", "compression": None}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["prepare", str(tmp_path / "r.yaml"), "--no-progress"]) == 0
    written = open_ptyd(tmp_path / "out.ptyd")
    api = prepare(open_frames(raw), shape=64, center=None, adu_per_photon=adu, photon_threshold=0.5,
                  round_photons=True)
    np.testing.assert_array_equal(written["data"].values, api["data"].values)
    want_weights = np.broadcast_to(api["weights"].values > 0, written["weights"].shape)  # .ptyd: one per frame
    np.testing.assert_array_equal(written["weights"].values > 0, want_weights)
    assert (~want_weights).sum() > 0  # the ADU map's 0 pixel and the file's own mask (recipes take it, issue 17)
    assert written.attrs["center"] == pytest.approx(api.attrs["center"])
    assert float(written["data"].values.max()) > 0 and np.all(written["data"].values == np.round(written["data"]))


def test_recipe_refuses_a_bad_adu_value(tmp_path):
    with pytest.raises(RecipeError, match="adu_per_photon"):
        load_recipe({"intensities": {"file": "x.h5"}, "adu_per_photon": {"fiel": "g.h5"}}, base=tmp_path,
                    check_files=False)
    got = load_recipe({"intensities": {"file": "x.h5"}, "adu_per_photon": {"file": "g.h5", "key": "a"}},
                      base=tmp_path, check_files=False)
    assert got["adu_per_photon"] == {"file": str((Path(tmp_path) / "g.h5").resolve()), "key": "a"}
