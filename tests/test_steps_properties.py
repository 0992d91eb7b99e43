"""Property tests: each step of ``prepare`` against a plain per-frame reference written here.

The references loop over frames and pixels with Python arithmetic; they share
no code with ``ptydask.steps``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptydask.errors import GeometryError
from ptydask.scan import from_arrays
from ptydask.steps import prepare

pytestmark = pytest.mark.filterwarnings("ignore:shape. non-square ROI")
#: Examples per property; raise it for a deeper run, e.g. PTYDASK_HYPOTHESIS_EXAMPLES=500.
SETTINGS = settings(max_examples=int(os.environ.get("PTYDASK_HYPOTHESIS_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.uint16, np.int32, np.float64]


# --------------------------------------------------------------------------- references


def ref_orient_flags(o: int | tuple) -> tuple[bool, bool, bool]:
    if isinstance(o, tuple):
        return o
    return (o >= 4, o % 4 >= 2, o % 2 == 1)


def ref_crop_pad(frame: np.ndarray, roi: int, center: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The ROI of one frame (float64) and a bool map of pixels that came from the frame."""
    h, w = frame.shape
    c0, c1 = round(center[0]), round(center[1])  # Python rounds half to even
    out = np.zeros((roi, roi))
    inside = np.zeros((roi, roi), dtype=bool)
    for i in range(roi):
        for j in range(roi):
            r, c = i + c0 - roi // 2, j + c1 - roi // 2
            if 0 <= r < h and 0 <= c < w:
                out[i, j] = frame[r, c]
                inside[i, j] = True
    return out, inside


def ref_orient(a: np.ndarray, flags: tuple[bool, bool, bool]) -> np.ndarray:
    if flags[0]:
        a = np.transpose(a)
    if flags[1]:
        a = np.flipud(a)
    if flags[2]:
        a = np.fliplr(a)
    return a


def ref_blocks(a: np.ndarray, r: int, how: str) -> np.ndarray:
    h, w = a.shape
    out = np.zeros((h // r, w // r))
    for i in range(h // r):
        for j in range(w // r):
            vals = [float(a[i * r + y, j * r + x]) for y in range(r) for x in range(r)]
            out[i, j] = math.fsum(vals) / (r * r if how == "mean" else 1)
    return out


def ref_prepare(frames, weights, roi, center, o, r, mode):
    """Per-frame reference of the geometric part: data, weights (per frame), centre, padded?, processed?"""
    n, h, w = frames.shape
    flags = ref_orient_flags(o)
    per_frame_w = weights if weights.ndim == 3 else np.broadcast_to(weights, frames.shape)
    if not (any(flags) or roi != h or roi != w or r != 1):
        return frames, per_frame_w, center, False, False
    datas, masks, padded = [], [], False
    for f in range(n):
        d, inside = ref_crop_pad(frames[f], roi, center)
        wv, _ = ref_crop_pad(per_frame_w[f], roi, center)
        padded |= not inside.all()
        datas.append(ref_orient(d, flags))
        masks.append(ref_orient(wv, flags))
    if r > 1:
        fractions = [ref_blocks(m > 0, r, "mean") for m in masks]
        best = max(fr.max() for fr in fractions)
        masks = [fr == best for fr in fractions]
        datas = [ref_blocks(d, r, mode) for d in datas]
    c = [float(roi // 2), float(roi // 2)]
    if flags[0]:
        c = c[::-1]
    if flags[1]:
        c[0] = roi - 1 - c[0]
    if flags[2]:
        c[1] = roi - 1 - c[1]
    return np.array(datas), np.array(masks), (c[0] / r, c[1] / r), padded, True


def ref_corrections(frames, dark, flat):
    out = np.zeros(frames.shape)
    valid = np.ones(frames.shape, dtype=bool)
    for f in range(frames.shape[0]):
        for y in range(frames.shape[1]):
            for x in range(frames.shape[2]):
                v = max(float(frames[f, y, x]) - float(dark[y, x]), 0.0)
                fl = float(flat[y, x])
                if fl == 0 or not math.isfinite(fl):
                    valid[f, y, x] = False
                else:
                    out[f, y, x] = v / fl
    return out, valid


def ref_mass_centre(frames, weights):
    cs = []
    for frame in frames:
        m = [(y, x, float(frame[y, x])) for y in range(frame.shape[0]) for x in range(frame.shape[1]) if weights[y, x] > 0]
        total = math.fsum(v for _, _, v in m)
        cs.append((math.fsum(y * v for y, _, v in m) / total, math.fsum(x * v for _, x, v in m) / total))
    return tuple(float(v) for v in np.mean(np.array(cs), axis=0))


# --------------------------------------------------------------------------- strategies


@st.composite
def stacks(draw, min_side=2, max_side=10, min_value=0):
    n = draw(st.integers(1, 6))
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    frames = rng.integers(min_value, 50, size=(n, h, w)).astype(dtype)
    kind = draw(st.sampled_from(["none", "2d", "3d"]))
    weights = {
        "none": None,
        "2d": rng.random((h, w)) > 0.2,
        "3d": (rng.random((n, h, w)) > 0.2).astype(np.uint8),
    }[kind]
    chunks = draw(st.integers(1, n))
    return frames, weights, chunks


def half_steps(n: int):
    """Centres strictly inside (0, n) on a half-pixel grid (exercises half-to-even rounding)."""
    return st.integers(1, 2 * n - 1).map(lambda k: k / 2)


def scan_of(frames, weights, chunks):
    return from_arrays(frames, np.zeros((len(frames), 2)), weights=weights, psize=1e-4, chunks=chunks)


def weights_of(out, n):
    w = out["weights"].values
    return np.broadcast_to(w, (n,) + w.shape) if w.ndim == 2 else w


# --------------------------------------------------------------------------- tests


@SETTINGS
@given(data=st.data(), stack=stacks(min_value=1))
def test_crop_pad_orientation_rebin_match_reference(data, stack):
    frames, weights, chunks = stack
    n, h, w = frames.shape
    r = data.draw(st.sampled_from([1, 1, 2, 3]), label="rebin")
    roi = r * data.draw(st.integers(2, max(2, 12 // r)), label="roi/r")
    center = (data.draw(half_steps(h), label="row"), data.draw(half_steps(w), label="col"))
    o = data.draw(st.one_of(st.integers(0, 7), st.tuples(st.booleans(), st.booleans(), st.booleans())), label="o")
    mode = data.draw(st.sampled_from(["mean", "sum"]), label="mode")
    out = prepare(scan_of(frames, weights, chunks), shape=roi, center=center, auto_center=False,
                  orientation=o, rebin=r, rebin_mode=mode)
    base_w = np.ones((h, w)) if weights is None else weights
    ref_d, ref_w, ref_c, padded, processed = ref_prepare(frames, base_w, roi, center, o, r, mode)

    got_d, got_w = out["data"].values, weights_of(out, n)
    if processed:
        np.testing.assert_allclose(got_d, ref_d, rtol=1e-12, atol=0)
    else:  # ptypy's gate is closed: frames and weights untouched, meta keeps the raw centre
        np.testing.assert_array_equal(got_d, frames, strict=True)
    np.testing.assert_array_equal(got_w != 0, ref_w != 0)
    assert tuple(out.attrs["center"]) == ref_c
    assert tuple(out.attrs["shape"]) == ref_d.shape[1:]
    # dtype rules: zero padding promotes like numpy with a float; mean rebin gives float64 for integers
    expect = np.dtype(frames.dtype)
    if padded:
        expect = np.result_type(expect, 0.0)
    if r > 1:
        expect = np.dtype(np.float64) if mode == "mean" or expect.kind == "f" else np.dtype(np.int64)
    assert got_d.dtype == expect
    if r > 1:
        assert got_w.dtype == bool


@SETTINGS
@given(data=st.data(), stack=stacks(min_value=1))
def test_weights_zero_where_padded(data, stack):
    frames, weights, chunks = stack
    n, h, w = frames.shape
    roi = data.draw(st.integers(max(h, w) + 1, max(h, w) + 6), label="roi")  # larger than the frame: pads
    center = (data.draw(half_steps(h)), data.draw(half_steps(w)))
    out = prepare(scan_of(frames, weights, chunks), shape=roi, center=center, auto_center=False)
    d, wt = out["data"].values, weights_of(out, n)
    padded = d == 0  # raw values are >= 1, so 0 marks padding
    assert padded.any()
    assert (wt[padded] == 0).all()
    assert d.dtype == np.result_type(frames.dtype, 0.0)


@SETTINGS
@given(data=st.data(), stack=stacks(min_side=4))
def test_orientation_composes_and_moves_the_centre(data, stack):
    frames, weights, chunks = stack
    n, h, w = frames.shape
    roi = min(h, w) - 1  # always cropped, so the geometric pass runs for every o
    center = (float(data.draw(st.integers(1, h - 1))), float(data.draw(st.integers(1, w - 1))))
    o = data.draw(st.integers(0, 7))
    marked = frames.astype(np.float64)
    marked[:, int(center[0]), int(center[1])] = 1000.0  # a marker on the optical axis
    out = prepare(scan_of(marked, weights, chunks), shape=roi, center=center, auto_center=False, orientation=o)
    got = out["data"].values
    base = [ref_crop_pad(f, roi, center)[0] for f in marked]
    t, ud, lr = o & 4, o & 2, o & 1
    expected = np.array([ref_orient(f, (bool(t), bool(ud), bool(lr))) for f in base])
    np.testing.assert_array_equal(got, expected)
    cy, cx = out.attrs["center"]
    assert (got[:, int(cy), int(cx)] == 1000.0).all()  # meta.center still points at the marker


@SETTINGS
@given(data=st.data(), stack=stacks(min_value=0))
def test_sum_rebin_preserves_counts(data, stack):
    frames, weights, chunks = stack
    n, h, w = frames.shape
    r = data.draw(st.sampled_from([2, 3, 4]))
    side = max(2, min(h, w) // r) * r  # prepared frames are at least 2 x 2
    center = (float(h // 2), float(w // 2))
    out = prepare(scan_of(frames, weights, chunks), shape=side, center=center, auto_center=False,
                  rebin=r, rebin_mode="sum")
    crop = prepare(scan_of(frames, weights, chunks), shape=side, center=center, auto_center=False, orientation=1)
    np.testing.assert_array_equal(out["data"].values.sum(axis=(1, 2)), crop["data"].values.sum(axis=(1, 2)))


@SETTINGS
@given(data=st.data(), stack=stacks())
def test_dark_flat_match_reference(data, stack):
    frames, weights, chunks = stack
    m = min(frames.shape[1:])  # square frames: shape=None keeps them whole
    frames = frames[:, :m, :m]
    weights = None if weights is None else weights[..., :m, :m]
    n, h, w = frames.shape
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    dark = rng.integers(0, 30, size=(h, w)).astype(np.float64)
    flat = rng.choice([0.0, 0.5, 1.0, 2.0, np.inf], size=(h, w))
    out = prepare(scan_of(frames, weights, chunks), shape=None, center="fftshift", dark=dark, flat=flat)
    ref, valid = ref_corrections(frames, dark, flat)
    np.testing.assert_array_equal(out["data"].values, ref)
    base = np.ones((h, w)) if weights is None else weights
    np.testing.assert_array_equal(weights_of(out, n) != 0, valid & (np.broadcast_to(base, frames.shape) != 0))


@SETTINGS
@given(stack=stacks(min_value=1))
def test_auto_centre_is_mean_of_masked_centres(stack):
    frames, weights, chunks = stack
    n, h, w = frames.shape
    w2 = np.ones((h, w), dtype=bool) if weights is None or weights.ndim == 3 else weights
    if not w2.any():
        return
    scan = scan_of(frames, w2, chunks)
    expected = ref_mass_centre(frames, w2)
    if not (0 < expected[0] < h and 0 < expected[1] < w):
        with pytest.raises(GeometryError, match="automatic centre"):
            prepare(scan, shape=None, center=None)
        return
    out = prepare(scan, shape=None, center=None)
    if h == w:  # gate closed: meta.center is the raw automatic centre
        np.testing.assert_allclose(out.attrs["center"], expected, rtol=1e-12)
    assert out.attrs["info"]["center"] == pytest.approx(list(expected), rel=1e-12)


@SETTINGS
@given(data=st.data(), stack=stacks(min_value=0))
def test_chunking_does_not_change_the_result(data, stack):
    frames, weights, _ = stack
    n, h, w = frames.shape
    if weights is not None and weights.ndim == 3:
        weights = weights.copy()
        weights[1:, ::2, :] = 0  # only frame 0 can hold fully valid super-pixels: the max over ALL frames decides
    kwargs = dict(shape=4, center=None, orientation=data.draw(st.integers(0, 7)), rebin=2,
                  dead_pixels=True, saturation=45, hot_pixels=3.0)
    ones = from_arrays(frames, weights=weights, chunks=n)
    many = from_arrays(frames, weights=weights, chunks=data.draw(st.integers(1, n)))
    try:
        a = prepare(ones, **kwargs)
    except ValueError as err:  # e.g. an automatic centre outside the frame: must fail the same way
        with pytest.raises(type(err)):
            prepare(many, **kwargs)
        return
    b = prepare(many, **kwargs)
    np.testing.assert_array_equal(a["data"].values, b["data"].values, strict=True)
    np.testing.assert_array_equal(a["weights"].values, b["weights"].values, strict=True)
    assert a.attrs["center"] == b.attrs["center"]
    assert a.attrs["info"]["masks"] == b.attrs["info"]["masks"]
