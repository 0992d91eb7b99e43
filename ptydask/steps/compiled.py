"""Compiled (numba) kernels for the hot loops of ``prepare``, on numpy arrays.

numpy runs every correction of a frame as a separate pass over memory (convert,
subtract, clip, divide, mask, then the sums); these kernels do one pass per
pixel. They are used by :mod:`.kernels` and :mod:`.reductions` for the common
cases and give the results of the numpy kernels there:

- :func:`window_frames` (data of the blockwise pass) performs the same IEEE
  operations in the same order as ``kernels.correct`` + ``orient`` +
  ``rebin_mean``, so its output is bit for bit identical (checked by tests).
- :func:`mass_centres` (auto-centre) multiplies by ``valid / flat`` instead of
  dividing by the flat, and sums in any order (``fastmath`` reassociation, so
  that the sums vectorise): each frame's sums agree with numpy's to a few ulp,
  and they depend only on that frame (never on the Dask chunking).
- :func:`pixel_stats` (automatic masks): per-pixel maximum and sum over frames,
  exact (maxima; sums of integers below 2**53).
- :func:`stats_and_sums`: both of the last two in one pass, plus the values of
  chosen pixels per frame (``reductions.measure_fused``).

Arrays are (frame, row, col); all compiled with ``nogil`` so Dask threads run
them in parallel, and cached on disk by numba. Absent inputs are passed as
placeholders with a flag, so that each kernel compiles once per frame dtype.
"""

from __future__ import annotations

import numba
import numpy as np

from .. import buffers
from ..cache import configure_numba_cache

configure_numba_cache()  # before the first njit: the cache goes to the user's cache folder, never into the package

#: Placeholders for absent inputs (never read: their flag is False).
_NONE_1D = np.zeros(1)
_NONE_2D = np.zeros((1, 1))
_NONE_OK = np.zeros((1, 1), dtype=bool)
_JIT = dict(nogil=True, cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in numpy


@numba.njit(**_JIT)
def _prepare(frames, r0, c0, has_dark, dark, has_flat, inv_ok, flat, has_divisor, divisor, multiplier, scratch,
             oriented, r, acc, out):  # pragma: no cover - compiled
    """Frame by frame: the corrected window into ``scratch``, then the mean rebin of ``oriented``
    (a transposed/flipped view of ``scratch``) into ``out``.

    Correction of raw pixel ``(r0 + i, c0 + j)``: ``max(x - dark, 0)`` (if ``dark``), ``/ flat`` where
    ``inv_ok`` (else 0), ``/ divisor[f] * multiplier[f]`` -- the operations of ``kernels.correct``.
    Rebin: per row of an r x r block the values added in index order then / r, the r row means
    added in order then / r (``kernels.rebin_mean`` for r < 8); r = 1 copies.
    """
    h, w = scratch.shape
    oh, ow = oriented.shape
    nb = ow // r
    for f in range(frames.shape[0]):
        for i in range(h):
            src = frames[f, r0 + i, c0 : c0 + w]  # 1-D slices: indices from range() vectorise
            dst = scratch[i]
            d = dark[i if has_dark else 0]
            fl = flat[i if has_flat else 0]
            ok = inv_ok[i if has_flat else 0]
            for j in range(w):
                v = np.float64(src[j])
                if has_dark:
                    v = v - d[j]
                    v = 0.0 if v < 0.0 else v
                if has_flat:
                    q = v / fl[j]
                    v = q if ok[j] else 0.0
                if has_divisor:
                    v = v / divisor[f] * multiplier[f]
                dst[j] = v
        if r == 1:
            for i in range(oh):
                for j in range(ow):
                    out[f, i, j] = oriented[i, j]
            continue
        for bi in range(oh // r):
            for a in range(r):
                row = oriented[bi * r + a]
                for bj in range(nb):
                    s = row[bj * r] + row[bj * r + 1]
                    for b in range(2, r):
                        s += row[bj * r + b]
                    s = s / r
                    acc[bj] = s if a == 0 else acc[bj] + s
            for bj in range(nb):
                out[f, bi, bj] = acc[bj] / r


def window_frames(frames: np.ndarray, start: tuple[int, int], shape: tuple[int, int], dark, flat, divisor,
                  multiplier, transpose: bool, flipud: bool, fliplr: bool, rebin: int) -> np.ndarray:
    """Corrected window ``shape`` at raw pixel ``start`` of every frame, oriented and mean-rebinned, float64.

    ``dark``/``flat`` (H, W) of the raw frame or ``None``; ``divisor``/``multiplier`` (n, 1, 1) or ``None``;
    the window must lie on the raw frame; ``rebin`` 1-7. Returns a new C-contiguous (n, h, w) array.
    """
    (r0, c0), (sr, sc) = start, shape
    rows, cols = slice(r0, r0 + sr), slice(c0, c0 + sc)
    # absent inputs are passed as 1-pixel placeholders with a False flag: one compiled version per dtype
    d = _NONE_2D if dark is None else np.ascontiguousarray(dark[rows, cols], dtype=np.float64)
    fl, inv_ok = _NONE_2D, _NONE_OK
    if flat is not None:
        fl = np.ascontiguousarray(flat[rows, cols], dtype=np.float64)
        inv_ok = np.isfinite(fl) & (fl != 0)
    div = mul = _NONE_1D
    if divisor is not None:
        div = np.ascontiguousarray(divisor, dtype=np.float64).reshape(-1)
        mul = np.ascontiguousarray(multiplier, dtype=np.float64).reshape(-1)
    oh, ow = (sc, sr) if transpose else (sr, sc)
    out = buffers.empty((frames.shape[0], oh // rebin, ow // rebin), np.float64)
    scratch = np.empty((sr, sc), dtype=np.float64)
    oriented = scratch.T if transpose else scratch
    oriented = oriented[::-1] if flipud else oriented
    oriented = oriented[:, ::-1] if fliplr else oriented
    _prepare(frames, r0, c0, dark is not None, d, flat is not None, inv_ok, fl, divisor is not None, div, mul,
             scratch, oriented, rebin, np.empty(ow // rebin), out)
    return out


def mass_centres(frames: np.ndarray, valid: np.ndarray, dark=None, flat=None) -> np.ndarray:
    """Per-frame centres of mass (row, col), shape (n, 2), of the corrected frames on ``valid`` (H, W) pixels.

    Corrected as in ``kernels.correct`` (dark clipped at 0, / flat; monitor factors do not move a centre);
    flat pixels that cannot divide count as invalid. A frame without masked intensity gives NaN.
    """
    d = _NONE_2D if dark is None else np.ascontiguousarray(dark, dtype=np.float64)
    sums = np.empty((frames.shape[0], 3), dtype=np.float64)
    none = np.zeros(0, dtype=np.int64)
    _frame_sums(frames, dark is not None, d, _gain(valid, flat), False, _NONE_2D, _NONE_2D, none, none, sums,
                np.empty((frames.shape[0], 0), dtype=frames.dtype))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([sums[:, 1] / sums[:, 0], sums[:, 2] / sums[:, 0]], axis=1)


@numba.njit(**_JIT, fastmath={"reassoc", "contract", "arcp"})
def _frame_sums(frames, has_dark, dark, gain, with_stats, peak, total, rows, cols, out, values):  # pragma: no cover
    """Per frame ``out[f, :3]`` = total, row and column moments of ``max(x - dark, 0) * gain`` (or
    ``x * gain``) and ``values[f, k]`` = the raw value at pixel ``(rows[k], cols[k])``; with ``with_stats``,
    in the same pass, the per-pixel maximum and sum into ``peak``/``total`` (exact, in frame order)."""
    n, h, w = frames.shape
    for f in range(n):
        s0 = 0.0
        sr = 0.0
        sc = 0.0
        for i in range(h):
            rs = 0.0
            cs = 0.0
            src = frames[f, i]
            g = gain[i]
            d = dark[i if has_dark else 0]
            top = peak[i if with_stats else 0]
            acc = total[i if with_stats else 0]
            for j in range(w):
                xi = src[j]
                if with_stats:
                    if f == 0 or xi > top[j] or xi != xi:
                        top[j] = xi
                    acc[j] += xi
                x = np.float64(xi)
                v = max(x - d[j], 0.0) if has_dark else x
                v = v * g[j]
                rs += v
                cs += v * j
            s0 += rs
            sr += rs * i
            sc += cs
        out[f, 0] = s0
        out[f, 1] = sr
        out[f, 2] = sc
        for k in range(rows.size):
            values[f, k] = frames[f, rows[k], cols[k]]


@numba.njit(**_JIT, fastmath={"reassoc", "contract", "arcp"})
def _corrected_at(values, has_dark, dark, gain, rows, cols, out):  # pragma: no cover - compiled
    """``out[f, k]`` = ``max(x - dark, 0) * gain`` (or ``x * gain``) of the raw ``values[f, k]`` at pixel
    ``(rows[k], cols[k])``: the value :func:`_frame_sums` adds for that pixel, by the same operations."""
    for f in range(values.shape[0]):
        for k in range(rows.size):
            x = np.float64(values[f, k])
            v = max(x - dark[rows[k], cols[k]], 0.0) if has_dark else x
            out[f, k] = v * gain[rows[k], cols[k]]


def stats_and_sums(frames: np.ndarray, valid: np.ndarray, dark, flat, candidates: np.ndarray) -> tuple:
    """Per-pixel statistics and per-frame centre sums of a block in one pass over its frames.

    Returns ``(stats, sums, values)``: ``stats`` (2, H, W) as :func:`pixel_stats`; ``sums`` (n, 3): per frame
    the total, row moment and column moment of the corrected frame on ``valid`` pixels (as in
    :func:`mass_centres`); ``values`` (n, K) in the frames' dtype: the raw value of each of the K
    ``candidates`` (flat pixel indices) -- :func:`corrected_at` gives what each added to the sums, so
    that a pixel found bad later can be taken out of them.
    """
    n, h, w = frames.shape
    sums = np.empty((n, 3), dtype=np.float64)
    values = np.empty((n, candidates.size), dtype=frames.dtype)
    if n == 0:
        return _no_stats(h, w), sums, values
    gain = _gain(valid, flat)
    d = _NONE_2D if dark is None else np.ascontiguousarray(dark, dtype=np.float64)
    rows, cols = np.divmod(np.asarray(candidates, dtype=np.int64), w)
    peak, total = _stat_arrays(frames.dtype, h, w)
    _frame_sums(frames, dark is not None, d, gain, True, peak, total, rows, cols, sums, values)
    return _as_stats(peak, total), sums, values


def corrected_at(values: np.ndarray, pixels: np.ndarray, width: int, valid: np.ndarray, dark, flat) -> np.ndarray:
    """(n, K) float64: what the raw ``values`` (n, K) at flat pixel indices ``pixels`` (K,) of frames
    ``width`` wide added to the centre sums of :func:`stats_and_sums` (0 where not valid)."""
    out = np.empty(values.shape, dtype=np.float64)
    d = _NONE_2D if dark is None else np.ascontiguousarray(dark, dtype=np.float64)
    rows, cols = np.divmod(np.asarray(pixels, dtype=np.int64), width)
    _corrected_at(np.ascontiguousarray(values), dark is not None, d, _gain(valid, flat), rows, cols, out)
    return out


def _no_stats(h: int, w: int) -> np.ndarray:
    """The statistics of no frame: maximum -inf, sum 0."""
    stats = np.zeros((2, h, w), dtype=np.float64)
    stats[0] = -np.inf
    return stats


def _stat_arrays(dtype: np.dtype, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel maximum and sum accumulators: integers in the frames' type and int64 for integer frames
    of up to 4 bytes (exact, and faster than float64), else float64."""
    kinds = (dtype, np.int64) if dtype.kind in "ui" and dtype.itemsize <= 4 else (np.float64, np.float64)
    arrays = tuple(buffers.empty((h, w), k) for k in kinds)
    for a in arrays:
        a.fill(0)
    return arrays


def _as_stats(peak: np.ndarray, total: np.ndarray) -> np.ndarray:
    """(2, H, W) float64 statistics from the accumulators."""
    stats = buffers.empty((2,) + peak.shape, np.float64)
    stats[0] = peak
    stats[1] = total
    return stats


def _gain(valid: np.ndarray, flat) -> np.ndarray:
    """``valid / flat`` (0 where not valid or the flat cannot divide), float64 (H, W)."""
    gain = valid.astype(np.float64)
    if flat is not None:
        f = np.asarray(flat, dtype=np.float64)
        ok = np.isfinite(f) & (f != 0)
        gain = np.divide(gain, f, out=np.zeros_like(gain), where=ok)
    return np.ascontiguousarray(gain)


@numba.njit(**_JIT)
def _pixel_stats(frames, peak, total):  # pragma: no cover - compiled
    n, h, w = frames.shape
    for f in range(n):
        for i in range(h):
            src = frames[f, i]
            top = peak[i]
            acc = total[i]
            for j in range(w):
                v = src[j]
                if f == 0 or v > top[j] or v != v:  # NaN propagates, as in numpy's max
                    top[j] = v
                acc[j] += v


def pixel_stats(frames: np.ndarray) -> np.ndarray:
    """Per-pixel maximum and sum over the frames, float64 (2, H, W); -inf / 0 for an empty block.

    """
    n, h, w = frames.shape
    if n == 0:
        return _no_stats(h, w)
    peak, total = _stat_arrays(frames.dtype, h, w)
    _pixel_stats(frames, peak, total)
    return _as_stats(peak, total)
