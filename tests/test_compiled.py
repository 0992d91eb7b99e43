"""The compiled kernels against the plain numpy kernels they replace on the hot paths.

``window_frames`` must be bit for bit what ``correct`` -> ``orient`` -> ``rebin_mean`` give
(the data written to .ptyd files); ``mass_centres`` agrees to rounding (it multiplies by
1/flat and sums in any order); ``pixel_stats`` is exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptydask.steps import compiled, kernels
from ptydask.steps.geometry import Orientation

DTYPES = [np.uint8, np.uint16, np.int32, np.float32, np.float64]


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, h, w = draw(st.integers(0, 5)), draw(st.integers(1, 24)), draw(st.integers(1, 24))
    dtype = draw(st.sampled_from(DTYPES))
    frames = (rng.normal(20, 15, (n, h, w))).clip(0 if np.dtype(dtype).kind == "u" else -50, 200).astype(dtype)
    r = draw(st.integers(1, 7))
    sr, sc = draw(st.integers(1, max(1, h // r))) * r, draw(st.integers(1, max(1, w // r))) * r
    if sr > h or sc > w:
        sr, sc, r = h, w, 1
    r0, c0 = draw(st.integers(0, h - sr)), draw(st.integers(0, w - sc))
    dark = rng.normal(5, 3, (h, w)).astype(draw(st.sampled_from([np.float32, np.float64]))) if draw(st.booleans()) else None
    flat = None
    if draw(st.booleans()):
        flat = rng.uniform(0.5, 1.5, (h, w))
        flat[rng.random((h, w)) < 0.1] = 0.0
        flat[rng.random((h, w)) < 0.05] = np.nan
    divisor = multiplier = None
    if draw(st.booleans()):
        divisor = rng.uniform(0.5, 2.0, (n, 1, 1))
        multiplier = np.full((n, 1, 1), 1.25)
    return frames, (r0, c0), (sr, sc), dark, flat, divisor, multiplier, Orientation.parse(draw(st.integers(0, 7))), r


@settings(max_examples=200, deadline=None)
@given(cases())
def test_window_frames_bit_for_bit(case):
    frames, (r0, c0), (sr, sc), dark, flat, divisor, multiplier, o, r = case
    rows, cols = slice(r0, r0 + sr), slice(c0, c0 + sc)
    expected = kernels.correct(frames[:, rows, cols], None if dark is None else dark[rows, cols],
                               None if flat is None else flat[rows, cols], divisor, multiplier)
    expected = kernels.orient(expected, o)
    expected = np.ascontiguousarray(kernels.rebin_mean(expected, r) if r > 1 else expected)
    got = compiled.window_frames(frames, (r0, c0), (sr, sc), dark, flat, divisor, multiplier,
                                 o.transpose, o.flipud, o.fliplr, r)
    assert got.dtype == expected.dtype == np.float64 and got.shape == expected.shape
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))  # same bits, NaN and -0.0 too


@settings(max_examples=200, deadline=None)
@given(cases())
def test_mass_centres_agree_with_numpy(case):
    frames, _, _, dark, flat, divisor, multiplier, _, _ = case
    rng = np.random.default_rng(frames.size)
    valid = rng.random(frames.shape[1:]) > 0.2
    data = kernels.correct(frames, dark, flat) if (dark is not None or flat is not None) else frames
    ok = valid & (kernels.flat_valid(flat) if flat is not None else True)
    expected = kernels.mass_centres(data, ok)
    got = compiled.mass_centres(frames, valid, dark, flat)
    assert got.shape == expected.shape == (frames.shape[0], 2)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    fin = np.isfinite(expected)
    np.testing.assert_allclose(got[fin], expected[fin], rtol=1e-9, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_pixel_stats_exact(case):
    frames = case[0]
    stats = compiled.pixel_stats(frames)
    if frames.shape[0] == 0:
        assert np.all(stats[0] == -np.inf) and np.all(stats[1] == 0)
        return
    np.testing.assert_array_equal(stats[0], frames.max(axis=0).astype(np.float64))
    np.testing.assert_array_equal(stats[1], frames.sum(axis=0, dtype=np.float64))


def test_pixel_stats_nan_propagates_like_numpy():
    frames = np.ones((3, 2, 2), np.float32)
    frames[1, 0, 0] = np.nan
    frames[0, 1, 1] = np.nan
    stats = compiled.pixel_stats(frames)
    np.testing.assert_array_equal(stats[0], frames.max(axis=0).astype(np.float64))


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int8, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                                   np.float32])
def test_statistics_exact_for_every_frame_type(dtype):
    """Integer frames of up to 4 bytes are accumulated as integers: the same float64 results."""
    frames = (np.random.default_rng(3).random((9, 5, 4)) * 120 - (0 if np.dtype(dtype).kind in "bu" else 60)).astype(dtype)
    frames[4, 2, 2] = 1 if dtype is bool else 100
    expected = np.stack([frames.max(axis=0).astype(np.float64), frames.sum(axis=0, dtype=np.float64)])
    np.testing.assert_array_equal(compiled.pixel_stats(frames), expected)
    stats, sums, values = compiled.stats_and_sums(frames, np.ones((5, 4), bool), None, None, np.array([3, 10]))
    np.testing.assert_array_equal(stats, expected)
    assert values.dtype == frames.dtype and sums.shape == (9, 3)
    np.testing.assert_array_equal(values[:, 0], frames[:, 0, 3])


def test_candidate_values_give_what_each_pixel_added_to_the_sums():
    rng = np.random.default_rng(4)
    frames = rng.poisson(30, (6, 5, 7)).astype(np.uint16)
    valid = rng.random((5, 7)) > 0.2
    dark = rng.uniform(0, 40, (5, 7))
    flat = rng.uniform(0.5, 1.5, (5, 7))
    flat[1, 1] = 0.0
    every = np.arange(5 * 7)
    _, sums, values = compiled.stats_and_sums(frames, valid, dark, flat, every)
    added = compiled.corrected_at(values, every, 7, valid, dark, flat)
    gain = np.where(valid & (flat != 0), 1 / np.where(flat != 0, flat, 1), 0.0).reshape(-1)
    expected = np.maximum(frames.reshape(6, -1) - dark.reshape(-1), 0.0) * gain
    np.testing.assert_allclose(added, expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(added.sum(axis=1), sums[:, 0], rtol=1e-12)
