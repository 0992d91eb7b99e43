"""Dead and hot pixels: counts over all frames that Poisson statistics cannot explain from the neighbours.

Both rules look at ``S``, a pixel's counts summed over all frames, and at its 8 neighbours'
sums (a neighbour outside the frame or outside ``population`` counts 0). They compare Poisson
counts, the pixel's and its neighbours', with the exact conditional argument: given their total
``T``, a pixel whose rate is at least (at most) a neighbour's has a binomial share ``Bin(T, 1/2)``
or more (less). No model of the intensity is needed, so sparse frames, empty high-q regions and
dim halos are never masked for being dim or empty.

- **dead**: ``S == 0`` while most neighbours counted much. A good pixel is taken to count at
  least ``DEAD_CONTRAST`` (1/25) of what its neighbours count: pixel-integrated, oversampled
  (2x-4x) coherent diffraction, speckle and dark fringes included, has no pixel below 1/19 of the
  lower median of its 8 neighbours (simulated: 94,000 bright pixels, ``tests/test_badpixels.py``).
  If that lower median of the neighbours' sums is ``N``, the 5 neighbours at or above it counted
  at least ``T = 5 N`` together, and a pixel of 1/25 their brightness counts nothing with
  probability at most ``(5 / (5 + 1/25))**T`` given that; dead where that is below
  ``Φ(-DEAD_SIGMA)`` (2.9e-7: ``N >= 377`` counts).
  This judges zero clusters of up to 4 pixels (isolated dead pixels, pairs, 2x2 clusters). Dead
  blocks up to about 8x8 are judged by the same test on 2x2 and 4x4 binned sums (at 4 alignments
  each), where they are such clusters again. A larger zero region is taken for a shadow (beamstop,
  module gap, frame edge) and kept whole, not cut at its rim (a beamstop 16 pixels across or more).
  Dead lines in dim regions, where no single pixel's neighbours counted enough, are judged as a
  whole: a run of zero pixels along a row (column) is dead where the rows (columns) on *both*
  sides counted so much over the run (each side: its lower median over the run times the run's
  length; ``T``: twice the smaller side) that ``(2 / (2 + 1/25))**T`` is below the same level;
  along the frame's edge the one side there is must give ``(1 / (1 + 1/25))**T_side``.
  Bins, alignments, runs and the choice of neighbours make about 20 tests per pixel: at most
  1e-5 false positives per good pixel.
- **hot**: ``S`` is more than ``factor`` (2) times the brightest neighbour's sum ``B`` *and*
  the Chernoff bound ``exp(-T KL(S/T || 1/2))`` of the binomial tail is below ``Φ(-sigma)``.
  A real feature of a pattern, however sharp (a Bragg peak, the rim of a bright-field disk),
  has a neighbour about as bright as itself; a hot pixel has none. The bound is above the
  exact tail, so the false-positive rate per good pixel is at most ``Φ(-sigma)``
  (2.9e-7 at sigma 5, 6.2e-16 at sigma 8); with ``B = 0`` a pixel needs ``log2(1/Φ(-sigma))``
  counts (22 at sigma 5, 51 at sigma 8) to be hot. Given each pixel's brightest frame
  (``peak``), a pixel must be hot without that frame too: a Bragg spot that flashes in one frame
  (a crystal passing through the beam) is no hot pixel, and a single frame, which cannot tell
  the two apart, shows none; a pixel that goes bad during a scan is found from its second
  bad frame on.

Counts are read in units of :func:`count_quantum`: detectors that report each photon or electron
as several counts (an event-counting Medipix reporting ~10 counts per electron, an integrating
detector in ADU) would otherwise look far less noisy than they are. Both rules take float64 sums
of counts clipped at 0 (corrected frames give non-integer sums; the rules then read them as
counts). Arrays are (H, W); work goes in bands of rows to bound memory.
"""

from __future__ import annotations

import math

import numpy as np

#: sigma of the dead-pixel test (its false-positive probability per comparison is Φ(-DEAD_SIGMA)).
DEAD_SIGMA = 5.0
#: the least a good pixel counts, relative to its neighbours (module docstring).
DEAD_CONTRAST = 1.0 / 25.0
#: rows per band: 8 neighbour planes of float64 for 512 rows of a 4148-pixel-wide detector = 136 MiB.
BAND_ROWS = 512


def tail_probability(sigma: float) -> float:
    """One-sided Gaussian tail ``Φ(-sigma)``: the false-positive probability per pixel a sigma stands for."""
    return 0.5 * math.erfc(sigma / math.sqrt(2.0))


def count_quantum(peak: np.ndarray, total: np.ndarray, frames: int, population: np.ndarray) -> float:
    """Counts per detected quantum (photon, electron), measured: 1 for photon-counting data.

    In pixels that counted in one frame only (``total == peak > 0``), the value is one or a few
    quanta: their median is the quantum when such pixels are common (at least 1 % of the pixels
    and 100 of them; sparse event data), else 1. A single frame (``frames < 2``) says nothing
    about it: 1.

    Examples
    --------
    >>> peak = np.array([[10., 0, 30], [10, 11, 0]]); total = np.array([[10., 0, 60], [10, 11, 0]])
    >>> count_quantum(peak, total, 9, np.ones((2, 3), bool)) == 1.0   # too few pixels to tell
    True
    """
    if frames < 2:
        return 1.0
    single = population & (total > 0) & (total == peak)
    n = int(single.sum())
    if n < max(100, 0.01 * population.size):
        return 1.0
    return max(1.0, float(np.median(total[single])))


def _neighbours(counts: np.ndarray, population: np.ndarray, rows: slice) -> np.ndarray:
    """The 8 neighbours' counts of the pixels in ``rows``, (8, r, W); 0 outside the frame or ``population``."""
    h, w = counts.shape
    padded = np.pad(np.where(population, counts, 0.0), 1, mode="constant")
    a, b = rows.start, rows.stop
    return np.stack([padded[a + i : b + i, j : j + w] for i in range(3) for j in range(3) if (i, j) != (1, 1)])


def _bands(h: int) -> list[slice]:
    return [slice(a, min(a + BAND_ROWS, h)) for a in range(0, h, BAND_ROWS)]


def _counts(total: np.ndarray, population: np.ndarray) -> np.ndarray:
    return np.where(population, np.maximum(np.nan_to_num(total, nan=0.0), 0.0), 0.0).astype(np.float64)


def dead_pixels(total: np.ndarray, population: np.ndarray, sigma: float = DEAD_SIGMA) -> np.ndarray:
    """Pixels that counted nothing where their neighbours predict many counts: dead, bool (H, W).

    Parameters
    ----------
    total : (H, W) float
        Counts summed over all frames (negative values count as 0).
    population : (H, W) bool
        Pixels to judge and to use as neighbours (valid before the automatic masks).
    sigma : float
        The false-positive probability of one comparison is ``Φ(-sigma)`` (module docstring).

    Examples
    --------
    >>> s = np.full((6, 6), 1000.0); s[3, 3] = 0; s[:2, :] = 0   # a dead pixel, and a shadow
    >>> np.argwhere(dead_pixels(s, np.ones((6, 6), bool))).tolist()
    [[3, 3]]
    """
    counts = _counts(total, population)
    log_alpha = math.log(tail_probability(sigma))
    out = _dead_single(counts, population, log_alpha)
    h, w = counts.shape
    for b in (2, 4):
        for oy in range(0, b, b // 2):
            for ox in range(0, b, b // 2):
                sums, seen = _binned(counts, population, b, oy, ox)
                dead = np.repeat(np.repeat(_dead_single(sums, seen, log_alpha), b, 0), b, 1)
                out[oy : oy + dead.shape[0], ox : ox + dead.shape[1]] |= dead
    out |= _dead_runs(counts, population, log_alpha) | _dead_runs(counts.T, population.T, log_alpha).T
    return out & population


def _dead_single(counts: np.ndarray, population: np.ndarray, log_alpha: float) -> np.ndarray:
    """The lower-median neighbour test of every pixel (module docstring)."""
    out = np.zeros(counts.shape, dtype=bool)
    for rows in _bands(counts.shape[0]):
        fourth = np.partition(_neighbours(counts, population, rows), 3, axis=0)[3]  # the lower median of 8
        log_p = 5.0 * fourth * math.log(5.0 / (5.0 + DEAD_CONTRAST))
        out[rows] = population[rows] & (counts[rows] <= 0) & (log_p < log_alpha)
    return out & _small_zero_cluster(counts, population)


def _small_zero_cluster(counts: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Zero pixels of a cluster of at most 4 (8-connected): a pixel with at most 3 zero neighbours, each
    of which has at most 3 too. A pixel on the rim of a larger zero region (a corner of a beamstop's
    staircase outline) has a neighbour deep inside it, with more."""
    zero = (counts <= 0) & population
    padded = np.pad(zero, 1)
    h, w = zero.shape
    shifts = [(i, j) for i in range(3) for j in range(3) if (i, j) != (1, 1)]
    many = np.sum([padded[i : i + h, j : j + w] for i, j in shifts], axis=0, dtype=np.int8)
    crowded = np.pad(np.where(zero, many, 0), 1)
    around = np.max([crowded[i : i + h, j : j + w] for i, j in shifts], axis=0)
    return zero & (many <= 3) & (around <= 3)


def _binned(counts: np.ndarray, population: np.ndarray, b: int, oy: int, ox: int) -> tuple[np.ndarray, np.ndarray]:
    """``b`` x ``b`` sums of ``counts`` starting at (oy, ox), and which bins lie wholly in ``population``."""
    h, w = counts.shape
    ny, nx = (h - oy) // b, (w - ox) // b
    part = (slice(oy, oy + ny * b), slice(ox, ox + nx * b))
    sums = counts[part].reshape(ny, b, nx, b).sum(axis=(1, 3))
    seen = population[part].reshape(ny, b, nx, b).all(axis=(1, 3))
    return sums, seen


def _dead_runs(counts: np.ndarray, population: np.ndarray, log_alpha: float) -> np.ndarray:
    """Runs of zero pixels along each row that the rows above and below both say should have counted.

    Each side counts as its lower median over the run times the run's length, so that a few bright
    pixels beside a run (a hot pixel, a sharp feature) do not make a whole row of zeros dead.
    """
    h, w = counts.shape
    zero = (counts <= 0) & population
    seen = np.where(population, counts, 0.0)
    flat = zero.ravel()
    starts = flat.copy()
    starts[1:] &= ~flat[:-1]
    starts[::w] = flat[::w]  # a run ends with its row
    where = np.flatnonzero(flat)
    if where.size == 0:
        return zero
    run = (np.cumsum(starts) - 1)[where]
    length = np.bincount(run).astype(np.float64)
    first = np.concatenate([[0], np.cumsum(length[:-1])]).astype(np.int64)
    sides = []
    for side in (np.vstack([np.zeros((1, w)), seen[:-1]]), np.vstack([seen[1:], np.zeros((1, w))])):
        values = side.ravel()[where]
        ordered = values[np.lexsort((values, run))]
        sides.append(ordered[first + (length.astype(np.int64) - 1) // 2] * length)
    row = where[first] // w  # each run's row: the first and last have one side only
    log_p = np.where(row == 0, sides[1] * math.log(1.0 / (1.0 + DEAD_CONTRAST)),
                     np.where(row == h - 1, sides[0] * math.log(1.0 / (1.0 + DEAD_CONTRAST)),
                              2.0 * np.minimum(*sides) * math.log(2.0 / (2.0 + DEAD_CONTRAST))))
    out = np.zeros(h * w, dtype=bool)
    out[where] = (log_p < log_alpha)[run]
    return out.reshape(h, w)


def hot_pixels(total: np.ndarray, population: np.ndarray, sigma: float, factor: float = 2.0,
               peak: np.ndarray | None = None) -> np.ndarray:
    """Isolated spikes in the summed counts: hot pixels, bool (H, W).

    Parameters
    ----------
    total : (H, W) float
        Counts summed over all frames (negative values count as 0).
    population : (H, W) bool
        Pixels to judge and to use as neighbours.
    sigma : float
        Hot where the binomial tail bound is below ``Φ(-sigma)`` (module docstring).
    factor : float
        ... and the pixel's sum exceeds ``factor`` times its brightest neighbour's.
    peak : (H, W) float, optional
        Each pixel's brightest frame, in the units of ``total``: the pixel must be hot without it too.

    Examples
    --------
    >>> s = np.full((5, 5), 10.0); s[1, 3] = 500.0; s[3, 1] = 30.0   # a spike, and a mere fluctuation
    >>> np.argwhere(hot_pixels(s, np.ones((5, 5), bool), sigma=5.0)).tolist()
    [[1, 3]]
    >>> flash = np.full((5, 5), 5.0); flash[1, 3] = 495.0             # all of it in one frame
    >>> hot_pixels(s, np.ones((5, 5), bool), sigma=5.0, peak=flash).any()
    np.False_
    """
    out = _hot(total, population, sigma, factor)
    if peak is not None:
        out &= _hot(np.asarray(total) - np.asarray(peak), population, sigma, factor)
    return out


def _hot(total: np.ndarray, population: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    counts = _counts(total, population)
    log_alpha = math.log(tail_probability(sigma))
    out = np.zeros(counts.shape, dtype=bool)
    for rows in _bands(counts.shape[0]):
        brightest = _neighbours(counts, population, rows).max(axis=0)
        s = counts[rows]
        t = s + brightest
        with np.errstate(divide="ignore", invalid="ignore"):
            a = s / t
            kl = np.where(a < 1.0, a * np.log(2.0 * a) + (1.0 - a) * np.log(2.0 * (1.0 - a)), math.log(2.0))
        out[rows] = (s > factor * brightest) & (a > 0.5) & (-t * kl < log_alpha)
    return out & population


__all__ = ["DEAD_CONTRAST", "DEAD_SIGMA", "count_quantum", "dead_pixels", "hot_pixels", "tail_probability"]
