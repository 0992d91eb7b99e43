"""Pure numpy kernels on a block of frames.

Every function takes a stack ``(n, H, W)`` (frame, row, column) and returns a
new stack (or per-frame / per-pixel statistics); none of them knows about
Dask. Pixel coordinates are (row, col) in pixels of the array handed in.
Weights follow ptypy's rule: nonzero = valid.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .geometry import Orientation, Window

#: An optional side array (dark, flat, mask, ...) of a block.
Array = Optional[np.ndarray]
#: Zero padding (top, bottom, left, right), pixels.
Padding = tuple[int, int, int, int]

# --------------------------------------------------------------------------- corrections


def flat_valid(flat: np.ndarray) -> np.ndarray:
    """Pixels of a flat field that can divide: finite and nonzero (bool, same shape)."""
    return np.isfinite(flat) & (flat != 0)


def correct(frames: np.ndarray, dark: Array = None, flat: Array = None, divisor: Array = None,
            multiplier: Array = None) -> np.ndarray:
    """Dark, flat and monitor corrections in float64 (``Hdf5Loader`` order).

    ``frame - dark`` with negatives set to 0, then ``/ flat`` (0 where the flat
    is zero or not finite), then ``/ divisor * multiplier`` per frame.
    ``dark``/``flat`` are (H, W) or (n, H, W); ``divisor``/``multiplier`` (n, 1, 1).
    """
    out = frames.astype(np.float64)
    if dark is not None:
        out -= dark
        np.maximum(out, 0.0, out=out)
    if flat is not None:
        valid = flat_valid(flat)
        out = np.divide(out, flat, out=np.zeros(np.broadcast_shapes(out.shape, flat.shape)), where=valid)
    if divisor is not None:
        out = out / divisor * multiplier
    return out


def monitor_factors(monitor: np.ndarray, sigma: float) -> np.ndarray:
    """Per-frame (divisor, multiplier), shape (2, n), of ``Hdf5Loader``'s normalisation rule.

    ``frame / value * mean`` where ``|value - mean| < sigma * std`` (mean, std over
    all ``monitor`` values); (1, 1), i.e. unchanged, elsewhere and where a value is 0
    or not finite.
    """
    v = monitor.astype(np.float64)
    mean, std = v.mean(), v.std()
    apply = (np.abs(v - mean) < sigma * std) & (v != 0) & np.isfinite(v)
    return np.stack([np.where(apply, v, 1.0), np.where(apply, mean, 1.0)])


def restrict(weights: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Weights set to 0 where ``valid`` is False, dtype kept; broadcasts (H, W) against (n, H, W)."""
    return np.where(valid, weights, np.zeros((), weights.dtype))


def pad(stack: np.ndarray, padding: Padding) -> np.ndarray:
    """Zero padding ``(top, bottom, left, right)`` pixels of the last two axes, dtype kept."""
    top, bottom, left, right = padding
    if not any(padding):
        return stack
    return np.pad(stack, ((0, 0), (top, bottom), (left, right)), mode="constant")


# --------------------------------------------------------------------------- geometry


def crop_pad(stack: np.ndarray, window: Window) -> np.ndarray:
    """Cut ``window`` out of every frame; pixels outside the frame become 0.

    Pure cropping keeps the dtype (a view); any padding promotes the dtype as
    numpy promotes it with a Python float (integers and bool -> float64).
    """
    n, h, w = stack.shape
    (r0, c0), (sh_r, sh_c) = window.start, window.shape
    rs, re = max(r0, 0), min(r0 + sh_r, h)
    cs, ce = max(c0, 0), min(c0 + sh_c, w)
    if (rs, re, cs, ce) == (r0, r0 + sh_r, c0, c0 + sh_c):
        return stack[:, rs:re, cs:ce]
    out = np.zeros((n, sh_r, sh_c), dtype=np.result_type(stack.dtype, 0.0))
    out[:, rs - r0 : re - r0, cs - c0 : ce - c0] = stack[:, rs:re, cs:ce]
    return out


def orient(stack: np.ndarray, orientation: Orientation) -> np.ndarray:
    """Transpose, then flip rows (up-down), then flip columns (left-right); a view."""
    if orientation.transpose:
        stack = stack.transpose(0, 2, 1)
    if orientation.flipud:
        stack = stack[:, ::-1, :]
    if orientation.fliplr:
        stack = stack[:, :, ::-1]
    return stack


def _blocks(stack: np.ndarray, r: int) -> np.ndarray:
    n, h, w = stack.shape
    if h % r or w % r:
        raise ValueError(f"rebin {r} does not divide the frame shape {(h, w)}")
    return stack.reshape(n, h // r, r, w // r, r)


def rebin_mean(stack: np.ndarray, r: int) -> np.ndarray:
    """Mean of r x r blocks (ptypy's rebin: mean over columns, then rows; float64 for integers)."""
    return _blocks(stack, r).mean(-1).mean(-2)


def rebin_sum(stack: np.ndarray, r: int) -> np.ndarray:
    """Sum of r x r blocks; integers and bool are summed as int64 (counts kept exactly)."""
    dtype = np.int64 if stack.dtype.kind in "biu" else stack.dtype
    return _blocks(stack, r).sum(axis=(2, 4), dtype=dtype)


def valid_fraction(weights: np.ndarray, r: int) -> np.ndarray:
    """Fraction of valid (``weights > 0``) sub-pixels of each r x r block, float64."""
    return rebin_mean(weights > 0, r)


def geometry(stack: np.ndarray, window: Window, orientation: Orientation, r: int, mode: str) -> np.ndarray:
    """Crop/pad -> orientation -> data rebin (``mode`` 'mean' or 'sum'), C-contiguous."""
    out = orient(crop_pad(stack, window), orientation)
    if r > 1:
        out = rebin_mean(out, r) if mode == "mean" else rebin_sum(out, r)
    return np.ascontiguousarray(out)


def weights_geometry(weights: np.ndarray, window: Window, orientation: Orientation, r: int,
                     max_fraction: Optional[float]) -> np.ndarray:
    """Crop/pad -> orientation -> ptypy's mask rule for weights: with r > 1 a super-pixel is valid
    (True) where its valid fraction equals ``max_fraction`` (``None``: this stack's maximum)."""
    out = orient(crop_pad(weights, window), orientation)
    if r > 1:
        frac = valid_fraction(out, r)
        best = frac.max(initial=0.0) if max_fraction is None else max_fraction
        out = frac == best
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- statistics


def mass_centres(frames: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-frame centre of mass (row, col) of ``frames * valid`` in pixels, float64, shape (n, 2).

    ``valid`` is bool (H, W) or (n, H, W). A frame without masked intensity gives NaN.
    """
    n, h, w = frames.shape
    masked = frames.astype(np.float64) * valid
    total = masked.sum(axis=(1, 2))
    rows = masked.sum(axis=2) @ np.arange(h, dtype=np.float64)
    cols = masked.sum(axis=1) @ np.arange(w, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([rows / total, cols / total], axis=1).reshape(n, 2)


def pixel_max(frames: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the frames of the block, float64 (1, H, W); -inf for an empty block."""
    if frames.shape[0] == 0:
        return np.full((1,) + frames.shape[1:], -np.inf)
    return frames.max(axis=0).astype(np.float64)[None]


def pixel_sum(frames: np.ndarray) -> np.ndarray:
    """Per-pixel sum over the frames of the block, float64 (1, H, W)."""
    return frames.sum(axis=0, dtype=np.float64)[None]


def median3x3(image: np.ndarray) -> np.ndarray:
    """Median of each pixel's 3 x 3 neighbourhood (edges replicated), (H, W)."""
    h, w = image.shape
    padded = np.pad(image, 1, mode="edge")
    shifted = [padded[i : i + h, j : j + w] for i in range(3) for j in range(3)]
    return np.median(np.stack(shifted), axis=0)


def hot_pixels(total: np.ndarray, population: np.ndarray, sigma: float) -> np.ndarray:
    """Pixels much brighter than their 3 x 3 neighbourhood in the summed counts (bool (H, W)).

    ``S`` = per-pixel sum over all frames (counts, clipped at 0), ``r = log1p(S)
    - median3x3(log1p(S))`` (the log of the pixel-to-neighbourhood ratio); hot
    where ``r > sigma * scale`` with ``scale = max(1.4826 * MAD(r),
    1 / sqrt(1 + median(S)))`` over the ``population`` pixels — a robust spread,
    floored at the Poisson spread of ``log1p(S)`` at the typical count level.
    A ratio test in log space leaves smooth beams alone: a sharp, intense
    peak differs from its neighbours by tens of percent, a hot pixel by orders
    of magnitude.
    """
    logs = np.log1p(np.maximum(total, 0.0))
    excess = logs - median3x3(logs)
    sample = excess[population]
    if sample.size == 0:
        return np.zeros(total.shape, dtype=bool)
    mad = 1.4826 * np.median(np.abs(sample - np.median(sample)))
    scale = max(mad, 1.0 / np.sqrt(1.0 + np.median(np.maximum(total[population], 0.0))))
    return population & (excess > sigma * scale)


# --------------------------------------------------------------------------- whole pipeline on a block


def corrected_frames(frames: np.ndarray, dark: Array, flat: Array, divisor: Array, multiplier: Array,
                     padding: Padding) -> np.ndarray:
    """Corrections (float64, only if any is given; raw dtype otherwise), then zero padding."""
    if dark is not None or flat is not None or divisor is not None:
        frames = correct(frames, dark, flat, divisor, multiplier)
    return pad(frames, padding)


def valid_weights(weights: np.ndarray, mask: Array, flat: Array, bad: Array, padding: Padding) -> np.ndarray:
    """Weights zeroed where the user ``mask`` is 0, the flat cannot divide, or ``bad`` (H, W or n, H, W) is True;
    then zero padded; (n, H, W) out, 2-D (H, W) weights count as one frame. The dtype is kept."""
    if weights.ndim == 2:
        weights = weights[None]
    if mask is not None:
        weights = restrict(weights, mask != 0)
    if flat is not None:
        weights = restrict(weights, flat_valid(flat))
    if bad is not None:
        weights = restrict(weights, ~bad)
    return pad(weights, padding)


def frames_block(frames: np.ndarray, dark: Array, flat: Array, divisor: Array, multiplier: Array, *,
                 padding: Padding, window: Optional[Window], orientation: Orientation, rebin: int,
                 mode: str) -> np.ndarray:
    """One block of prepared frames: corrections, padding, then (gate open: ``window`` set) geometry."""
    out = corrected_frames(frames, dark, flat, divisor, multiplier, padding)
    return out if window is None else geometry(out, window, orientation, rebin, mode)


def weights_block(weights: np.ndarray, mask: Array, flat: Array, bad: Array, *, padding: Padding,
                  window: Optional[Window], orientation: Orientation, rebin: int,
                  max_fraction: Optional[float]) -> np.ndarray:
    """One block of prepared weights (n, h, w); 2-D weights are passed as (H, W) and broadcast."""
    out = valid_weights(weights, mask, flat, bad, padding)
    return out if window is None else weights_geometry(out, window, orientation, rebin, max_fraction)


def fraction_block(weights: np.ndarray, mask: Array, flat: Array, *, padding: Padding, window: Window,
                   orientation: Orientation, rebin: int) -> np.ndarray:
    """Largest valid fraction of any r x r super-pixel in this block, shape (1,) (0 for an empty block)."""
    out = valid_weights(weights, mask, flat, None, padding)
    return np.array([valid_fraction(orient(crop_pad(out, window), orientation), rebin).max(initial=0.0)])


def centres_block(frames: np.ndarray, weights: np.ndarray, mask: Array, flat: Array, dark: Array, divisor: Array,
                  multiplier: Array, *, padding: Padding, saturation: Optional[float]) -> np.ndarray:
    """Per-frame masked centres of mass (n, 2), (row, col) px of the padded, corrected frames.

    Valid pixels: weights, user mask and flat as in ``valid_weights``; with a
    ``saturation`` level, also not at or above it (raw counts) in that frame.
    """
    data = corrected_frames(frames, dark, flat, divisor, multiplier, padding)
    saturated = None if saturation is None else frames >= saturation
    valid = valid_weights(weights, mask, flat, saturated, padding) > 0
    return mass_centres(data, valid)
