"""Automatic masks and the automatic centre from one pass over the frames (``reductions.measure_fused``).

The result must be the centre of the two-pass definition: the mean over frames of the centre of
mass of each corrected frame on the pixels valid in the weights, the flat and NOT in the automatic
masks. Checked against a plain numpy reference, in the one-pass case and when a pixel turns bad
only late in the scan (not a candidate of the first block: the centre then needs a second pass).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptydask.scan import from_arrays
from ptydask.steps import kernels, prepare
from ptydask.steps.reductions import MaskRequest, automatic_masks

H = W = 24


def reference_centre(frames, weights, dark, flat, masks: MaskRequest):
    """Two plain passes: masks from whole-scan statistics, then masked centres of corrected frames."""
    values = {"max": frames.max(axis=0).astype(float), "sum": frames.sum(axis=0, dtype=float),
              "valid": (weights > 0) & (kernels.flat_valid(flat) if flat is not None else True)}
    bad, _ = automatic_masks(values, masks)
    data = kernels.correct(frames, dark, flat) if (dark is not None or flat is not None) else frames
    centres = kernels.mass_centres(data, values["valid"] & ~bad)
    ok = np.isfinite(centres).all(axis=1)
    return centres[ok].mean(0), bad


def make(seed, n=40, late_hot=False, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    disk = 200.0 * (((yy - 11.3) ** 2 + (xx - 13.6) ** 2) < 25)
    frames = rng.poisson(disk + 10.0, (n, H, W)).astype(dtype)  # bright enough to prove the dead pixels dead
    frames[:, 3, 20] = 5000  # hot from the start
    frames[:, 19, 2] = 0  # dead
    frames[:, :, 0] = 0  # a dead column
    if late_hot:
        frames[-4:, 21, 21] = 60000  # hot only in the last block
    weights = np.ones((H, W), np.uint8)
    weights[5, 5] = 0
    dark = rng.uniform(0.5, 3.0, (H, W))
    flat = rng.uniform(0.8, 1.2, (H, W))
    flat[7, 7] = 0.0
    return frames, weights, dark, flat


def centre_of(frames, weights, dark, flat, chunks, **kw):
    scan = from_arrays(frames, np.zeros((frames.shape[0], 2)), weights, energy=6.0, distance=2.0, psize=5e-5,
                       chunks=chunks)
    out = prepare(scan, shape=16, center=None, dark=dark, flat=flat, **kw)
    info = out.attrs["info"]
    return np.array(info["center"]), info


@pytest.mark.parametrize("chunks", [8, 40])
def test_one_pass_centre_equals_two_pass_definition(chunks):
    frames, weights, dark, flat = make(1)
    masks = MaskRequest(saturation=None, dead=True, hot=6.0)
    expected, bad = reference_centre(frames, weights, dark, flat, masks)
    assert bad[3, 20] and bad[19, 2] and bad[:, 0].all()
    got, info = centre_of(frames, weights, dark, flat, chunks, hot_pixels=6.0, dead_pixels=True)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert any("same pass" in d for d in info["deviations"])


def test_pixel_bad_only_late_takes_a_second_pass():
    frames, weights, dark, flat = make(2, late_hot=True)
    masks = MaskRequest(saturation=None, dead=True, hot=6.0)
    expected, bad = reference_centre(frames, weights, dark, flat, masks)
    assert bad[21, 21]
    got, info = centre_of(frames, weights, dark, flat, 8, hot_pixels=6.0, dead_pixels=True)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert any("second pass" in d for d in info["deviations"])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), chunks=st.integers(3, 40), saturation=st.sampled_from([None, 400.0, 5000.0]),
       dtype=st.sampled_from([np.uint16, np.int32, np.float32]), with_dark=st.booleans())
def test_any_masks_any_chunking(seed, chunks, saturation, dtype, with_dark):
    frames, weights, dark, flat = make(seed, late_hot=seed % 3 == 0, dtype=dtype)
    if dtype != np.uint16:
        frames[:, 10, 1] = -2  # a detector gap value: dead, and it counts unless masked
    dark = dark if with_dark else None
    masks = MaskRequest(saturation=saturation, dead=True, hot=6.0)
    expected, _ = reference_centre(frames, weights, dark, flat, masks)
    got, _ = centre_of(frames, weights, dark, flat, chunks, hot_pixels=6.0, dead_pixels=True, saturation=saturation)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)
