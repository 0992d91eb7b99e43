"""Pure numpy kernels on a block of frames.

Every function takes a stack ``(n, H, W)`` (frame, row, column) and returns a
new stack (or per-frame / per-pixel statistics); none of them knows about
Dask. Pixel coordinates are (row, col) in pixels of the array handed in.
Weights follow ptypy's rule: nonzero = valid.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import compiled
from .geometry import Orientation, Window

#: An optional side array (dark, flat, mask, ...) of a block.
Array = Optional[np.ndarray]
#: Zero padding (top, bottom, left, right), pixels.
Padding = tuple[int, int, int, int]
#: Per-pixel steps after the corrections (``base.PixelStep``), and their side arrays (one each, or None).
Steps = tuple
Sides = tuple

#: The block kernels work through a block a few frames at a time, so that their float64
#: temporaries stay about this small: the allocator recycles small buffers, while large
#: fresh arrays must be page-faulted in (slow, and several times the block in memory).
#: Every step is per pixel or per frame, so the results do not depend on the grouping.
GROUP_BYTES = 4 * 2**20


def group_frames(frame_pixels: int, itemsize: int = 8) -> int:
    """Frames per group so that one float64 temporary of the group is about ``GROUP_BYTES``."""
    return max(1, GROUP_BYTES // max(1, frame_pixels * itemsize))


def _rows(arr: Array, start: int, stop: int) -> Array:
    """Frames ``start:stop`` of a per-frame side array ((n, ...) 3-D); 2-D side arrays are shared."""
    return arr[start:stop] if arr is not None and arr.ndim == 3 else arr


def _cut(arr: Array, start: int, stop: int, rows: slice, cols: slice) -> Array:
    """Frames ``start:stop`` (if per frame) and pixels ``rows, cols`` of an (H, W) / (n, H, W) side array."""
    if arr is None:
        return None
    return arr[start:stop, rows, cols] if arr.ndim == 3 else arr[rows, cols]

# --------------------------------------------------------------------------- corrections


def flat_valid(flat: np.ndarray) -> np.ndarray:
    """Pixels of a flat field that can divide: finite and nonzero (bool, same shape)."""
    return np.isfinite(flat) & (flat != 0)


def correct(frames: np.ndarray, dark: Array = None, flat: Array = None, divisor: Array = None,
            multiplier: Array = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Dark, flat and monitor corrections in float64 (``Hdf5Loader`` order): THE correction rule.

    ``frame - dark`` with negatives set to 0, then ``/ flat`` (0 where the flat
    is zero or not finite), then ``/ divisor * multiplier`` per frame.
    ``dark``/``flat`` are (H, W) or (n, H, W); ``divisor``/``multiplier`` (n, 1, 1).
    ``out``: a float64 buffer of the frames' shape to work in (the result), else a new array.
    The compiled kernels (``compiled``) perform these operations in this order (tested bit for bit).
    """
    if out is None:
        out = frames.astype(np.float64)
    else:
        np.copyto(out, frames, casting="unsafe")
    if dark is not None:
        np.subtract(out, dark, out=out)
        np.maximum(out, 0.0, out=out)
    if flat is not None:
        valid = flat_valid(flat)
        shape = np.broadcast_shapes(out.shape, flat.shape)
        if shape == out.shape:
            np.divide(out, flat, out=out, where=valid)
            np.copyto(out, 0.0, where=~valid)
        else:
            out = np.divide(out, flat, out=np.zeros(shape), where=valid)
    if divisor is not None:
        np.divide(out, divisor, out=out)
        np.multiply(out, multiplier, out=out)
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
    blocks = _blocks(stack, r)
    if 1 < r < 8:  # numpy sums fewer than 8 elements in order: the same additions, without a slow short reduction
        return _mean_in_order(_mean_in_order(blocks, 4, r), 2, r)
    return blocks.mean(-1).mean(-2)


def _mean_in_order(a: np.ndarray, axis: int, r: int) -> np.ndarray:
    """``a.mean(axis)`` for an axis of length ``r`` < 8, as elementwise additions in index order
    (bit for bit what ``mean`` computes: sum in float64 for integers and bool, then / r)."""
    dtype = np.dtype(np.float64) if a.dtype.kind in "biu" else a.dtype
    take = [slice(None)] * a.ndim

    def part(k: int) -> np.ndarray:
        take[axis] = k
        return a[tuple(take)]

    acc = np.add(part(0), part(1), dtype=dtype)
    for k in range(2, r):
        np.add(acc, part(k), out=acc, dtype=dtype)
    return np.true_divide(acc, r, out=acc)


def rebin_sum(stack: np.ndarray, r: int) -> np.ndarray:
    """Sum of r x r blocks; integers and bool are summed as int64 (counts kept exactly)."""
    dtype = np.int64 if stack.dtype.kind in "biu" else stack.dtype
    return _blocks(stack, r).sum(axis=(2, 4), dtype=dtype)


def valid_fraction(weights: np.ndarray, r: int) -> np.ndarray:
    """Fraction of valid (``weights > 0``) sub-pixels of each r x r block, float64.

    Computed as an exact integer count divided by r * r, so that equal counts give
    identical fractions wherever they occur (a float mean can differ in the last bit
    with the positions of the valid sub-pixels, and the mask rule compares fractions
    for equality)."""
    return _blocks(weights > 0, r).sum(axis=(2, 4), dtype=np.int64) / float(r * r)


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
    return _centres_of(*_mass_sums(frames, valid))


def _mass_sums(frames: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame masked totals (n,), row sums (n, H) and column sums (n, W), float64 (per frame: any grouping)."""
    masked = frames.astype(np.float64) * valid
    return masked.sum(axis=(1, 2)), masked.sum(axis=2), masked.sum(axis=1)


def _centres_of(total: np.ndarray, row_sums: np.ndarray, col_sums: np.ndarray) -> np.ndarray:
    """Centres (n, 2) from ``_mass_sums`` (one matrix product per axis for the whole block)."""
    n, h = row_sums.shape
    rows = row_sums @ np.arange(h, dtype=np.float64)
    cols = col_sums @ np.arange(col_sums.shape[1], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([rows / total, cols / total], axis=1).reshape(n, 2)


# --------------------------------------------------------------------------- whole pipeline on a block


def pixel_steps(frames: np.ndarray, dark: Array, flat: Array, divisor: Array, multiplier: Array,
                steps: Steps = (), sides: Sides = ()) -> np.ndarray:
    """Every per-pixel step in order: the corrections (float64, only if any is given), then each of
    ``steps`` (:class:`~ptydask.steps.base.PixelStep`, float64) with its side array; the raw dtype
    when there is nothing to do."""
    if dark is not None or flat is not None or divisor is not None:
        frames = correct(frames, dark, flat, divisor, multiplier)
    for step, side in zip(steps, sides):
        frames = step.apply(frames, side)
    return frames


def corrected_frames(frames: np.ndarray, dark: Array, flat: Array, divisor: Array, multiplier: Array,
                     padding: Padding, steps: Steps = (), sides: Sides = ()) -> np.ndarray:
    """The per-pixel steps (:func:`pixel_steps`), then zero padding."""
    return pad(pixel_steps(frames, dark, flat, divisor, multiplier, steps, sides), padding)


def valid_weights(weights: np.ndarray, mask: Array, flat: Array, bad: Array, padding: Padding,
                  steps: Steps = (), sides: Sides = ()) -> np.ndarray:
    """Weights zeroed where the user ``mask`` is 0, the flat cannot divide, ``bad`` (H, W or n, H, W) is True,
    or a per-pixel step's weights rule says invalid; then zero padded; (n, H, W) out, 2-D (H, W) weights
    count as one frame. The dtype is kept."""
    if weights.ndim == 2:
        weights = weights[None]
    if mask is not None:
        weights = restrict(weights, mask != 0)
    if flat is not None:
        weights = restrict(weights, flat_valid(flat))
    if bad is not None:
        weights = restrict(weights, ~bad)
    for step, side in zip(steps, sides):
        ok = step.valid(side)
        if ok is not None:
            weights = restrict(weights, ok)
    return pad(weights, padding)


def frames_block(frames: np.ndarray, dark: Array, flat: Array, divisor: Array, multiplier: Array, *sides: Array,
                 padding: Padding, window: Optional[Window], orientation: Orientation, rebin: int,
                 mode: str, steps: Steps = ()) -> np.ndarray:
    """One block of prepared frames: corrections, padding, then (gate open: ``window`` set) geometry.

    With a window, only the raw pixels the window sees are corrected (every correction
    is per pixel), a few frames at a time: the same values as correcting whole frames,
    padding and cutting the window, at a fraction of the work and memory.
    """
    if window is None:
        return corrected_frames(frames, dark, flat, divisor, multiplier, padding, steps, sides)
    n, h, w = frames.shape
    top, bottom, left, right = padding
    (r0, c0), (sr, sc) = window.start, window.shape
    # the window in raw-frame pixels, and the part of it that lies on the raw frame
    a0, a1 = max(r0 - top, 0), min(r0 + sr - top, h)
    b0, b1 = max(c0 - left, 0), min(c0 + sc - left, w)
    on_raw = (a0, a1, b0, b1) == (r0 - top, r0 + sr - top, c0 - left, c0 + sc - left)
    corrects = dark is not None or flat is not None or divisor is not None or bool(steps)
    base = np.dtype(np.float64) if corrects else frames.dtype
    inside = r0 >= 0 and c0 >= 0 and r0 + sr <= h + top + bottom and c0 + sc <= w + left + right
    dtype = base if inside else np.result_type(base, 0.0)  # crop_pad's promotion when the window leaves the frame
    rows, cols = slice(a0, max(a0, a1)), slice(b0, max(b0, b1))
    shared = all(a is None or a.ndim == 2 for a in (dark, flat))
    if corrects and not steps and on_raw and shared and (rebin == 1 or (rebin < 8 and mode == "mean")):
        # the same operations, fused in one compiled pass per frame (bit for bit, see ``compiled``)
        return compiled.window_frames(frames, (a0, b0), (sr, sc), dark, flat, divisor, multiplier,
                                      orientation.transpose, orientation.flipud, orientation.fliplr, rebin)

    def piece(s: int, e: int) -> np.ndarray:
        sub = frames[s:e, rows, cols]
        if corrects:
            sub = pixel_steps(sub, _cut(dark, s, e, rows, cols), _cut(flat, s, e, rows, cols),
                              _rows(divisor, s, e), _rows(multiplier, s, e), steps,
                              tuple(_cut(a, s, e, rows, cols) for a in sides))
        if not on_raw:
            win = np.zeros((e - s, sr, sc), dtype=dtype)
            if a1 > a0 and b1 > b0:
                win[:, a0 + top - r0 : a1 + top - r0, b0 + left - c0 : b1 + left - c0] = sub
            sub = win
        out = orient(sub, orientation)
        if rebin > 1:
            out = rebin_mean(out, rebin) if mode == "mean" else rebin_sum(out, rebin)
        return out

    g = group_frames(max(1, (a1 - a0) * (b1 - b0)))
    if n <= g:
        return np.ascontiguousarray(piece(0, n))
    first = piece(0, g)
    result = np.empty((n,) + first.shape[1:], dtype=first.dtype)
    result[:g] = first
    for s in range(g, n, g):
        result[s : s + g] = piece(s, min(n, s + g))
    return result


def weights_block(weights: np.ndarray, mask: Array, flat: Array, bad: Array, *sides: Array, padding: Padding,
                  window: Optional[Window], orientation: Orientation, rebin: int,
                  max_fraction: Optional[float], steps: Steps = ()) -> np.ndarray:
    """One block of prepared weights (n, h, w); 2-D weights are passed as (H, W) and broadcast."""
    out = valid_weights(weights, mask, flat, bad, padding, steps, sides)
    return out if window is None else weights_geometry(out, window, orientation, rebin, max_fraction)


def fraction_block(weights: np.ndarray, mask: Array, flat: Array, *sides: Array, padding: Padding, window: Window,
                   orientation: Orientation, rebin: int, steps: Steps = ()) -> np.ndarray:
    """Largest valid fraction of any r x r super-pixel in this block, shape (1,) (0 for an empty block)."""
    out = valid_weights(weights, mask, flat, None, padding, steps, sides)
    return np.array([valid_fraction(orient(crop_pad(out, window), orientation), rebin).max(initial=0.0)])


def centres_block(frames: np.ndarray, weights: np.ndarray, mask: Array, flat: Array, dark: Array, divisor: Array,
                  multiplier: Array, *sides: Array, padding: Padding, steps: Steps = ()) -> np.ndarray:
    """Per-frame masked centres of mass (n, 2), (row, col) px of the padded frames after the per-pixel steps.

    Valid pixels: weights, user mask, flat and the steps' rules as in ``valid_weights`` (automatic
    masks reach it through the user mask, see ``reductions.measure``).
    """
    n, h, w = frames.shape
    if not steps and all(a is None or a.ndim == 2 for a in (weights, mask, flat, dark)) \
            and frames.dtype.kind in "biuf":
        # one compiled pass per frame; padding adds zeros only, so it shifts the centres
        valid = valid_weights(weights, mask, flat, None, (0, 0, 0, 0))[0] > 0
        centres = compiled.mass_centres(frames, valid, dark, flat)
        return centres + np.array([padding[0], padding[2]], dtype=np.float64)
    g = group_frames(h * w)
    if n <= g:
        return mass_centres(*_centres_inputs(frames, weights, mask, flat, dark, divisor, multiplier, padding,
                                             steps, sides))
    if any(padding) or steps:
        parts = (_mass_sums(*_centres_inputs(frames[s:e], _rows(weights, s, e), _rows(mask, s, e), _rows(flat, s, e),
                                             _rows(dark, s, e), _rows(divisor, s, e), _rows(multiplier, s, e),
                                             padding, steps, tuple(_rows(a, s, e) for a in sides)))
                 for s, e in _groups(n, g))
    else:
        parts = _mass_sums_unpadded(frames, weights, mask, flat, dark, divisor, multiplier, g)
    sums = None
    for (s, e), part in zip(_groups(n, g), parts):  # a few frames at a time: the same per-frame sums
        if sums is None:
            sums = [np.empty((n,) + p.shape[1:], dtype=p.dtype) for p in part]
        for whole, p in zip(sums, part):
            whole[s:e] = p
    return _centres_of(*sums)


def _groups(n: int, g: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + g)) for s in range(0, n, g)]


def _mass_sums_unpadded(frames, weights, mask, flat, dark, divisor, multiplier, g):
    """``_mass_sums`` of ``_centres_inputs`` group by group, corrected by ``correct`` in one reused
    float64 buffer (the same values as into fresh arrays); 2-D validity is prepared once."""
    n, h, w = frames.shape
    buf = np.empty((g, h, w), dtype=np.float64)
    zero = (0, 0, 0, 0)
    shared = all(a is None or a.ndim == 2 for a in (weights, mask, flat))
    base = valid_weights(weights, mask, flat, None, zero) > 0 if shared else None
    for s, e in _groups(n, g):
        b = correct(frames[s:e], _rows(dark, s, e), _rows(flat, s, e), _rows(divisor, s, e),
                    _rows(multiplier, s, e), out=buf[: e - s])
        if base is not None:
            valid = base
        else:
            valid = valid_weights(_rows(weights, s, e), _rows(mask, s, e), _rows(flat, s, e), None, zero) > 0
        np.multiply(b, valid, out=b)
        yield b.sum(axis=(1, 2)), b.sum(axis=2), b.sum(axis=1)


def _centres_inputs(frames: np.ndarray, weights: np.ndarray, mask: Array, flat: Array, dark: Array, divisor: Array,
                    multiplier: Array, padding: Padding, steps: Steps = (),
                    sides: Sides = ()) -> tuple[np.ndarray, np.ndarray]:
    """Corrected, padded frames and their valid pixels (bool), as ``mass_centres`` takes them."""
    data = corrected_frames(frames, dark, flat, divisor, multiplier, padding, steps, sides)
    valid = valid_weights(weights, mask, flat, None, padding, steps, sides) > 0
    return data, valid
