"""Global quantities over ALL frames, computed as Dask reductions before the blockwise pass.

``measure`` builds every reduction the parameters need (per-frame centres of
mass for the auto-centre, per-pixel statistics for the automatic masks, the
largest valid super-pixel fraction for the rebin mask rule) and evaluates them
with ONE ``dask.compute``, so the frames are read once. Results that are exact
sums of integers, maxima or per-frame values do not depend on the chunking.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed

from ..errors import GeometryError
from . import badpixels, compiled, kernels
from .geometry import Orientation, Window
from .inputs import Inputs
from .reduction import PIXEL_STATS


#: Turns the reduction values of a part of a scan into those of the whole scan.
Combine = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class MaskRequest:
    """Automatic masks: ``saturation`` level (counts), ``dead`` flag, ``hot`` sigma (``None`` = off)."""

    saturation: Optional[float] = None
    dead: bool = False
    hot: Optional[float] = None

    def any(self) -> bool:
        return self.saturation is not None or self.dead or self.hot is not None


@dataclass
class Measured:
    """Results of the global pass. ``center``: (row, col) px of the padded frame;
    ``bad``: automatic mask (H, W) of the raw frame, True = invalid."""

    center: Optional[tuple[float, float]] = None
    empty_frames: int = 0
    bad: Optional[np.ndarray] = None
    counts: dict[str, int] = field(default_factory=dict)
    max_fraction: Optional[float] = None
    #: how the centre got the automatic masks: "one pass" (their pixels taken out of each frame's
    #: sums) or "second pass" (the frames read again with the masks applied); "" without both.
    center_with_masks: str = ""


def compute_named(lazy: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the values of ``lazy`` (Dask arrays, ``dask.delayed`` objects, or anything else, kept as it
    is) in ONE ``dask.compute``, so that tasks they share (reading the frames) run once; returns the same
    keys with the computed values.

    Every Dask collection is handed over as a ``dask.delayed`` object: ``dask.compute`` does not keep
    the order of its results when arrays and delayed objects are mixed (dask 2026.8 returns
    ``(array, array, delayed)`` for ``compute(array, delayed, array)``, even inside a dict or list),
    so nothing here depends on how dask orders them.
    """
    keys = list(lazy)
    if not keys:
        return {}
    wrapped = [dask.delayed(v) if dask.is_dask_collection(v) and not isinstance(v, Delayed) else v
               for v in (lazy[k] for k in keys)]
    return dict(zip(keys, dask.compute(*wrapped)))


def _per_block(func: Any, *args: Any, nblocks: int, tail: tuple, **kw: Any) -> da.Array:
    """``func`` on every frame block, returning one (1, *tail) partial per block."""
    return da.map_blocks(
        func, *args, chunks=((1,) * nblocks,) + tuple((t,) for t in tail),
        drop_axis=list(range(1 + len(tail), 3)), dtype=np.float64, **kw,
    )


def centres(frames: da.Array, inputs: Inputs, padding: tuple[int, int, int, int]) -> da.Array:
    """Lazy (n, 2) per-frame masked centres of mass (row, col) px of the padded, corrected frames."""
    return da.map_blocks(
        kernels.centres_block, frames, inputs.weights, inputs.mask, inputs.flat, inputs.dark,
        inputs.divisor, inputs.multiplier, *inputs.sides, padding=padding, steps=inputs.steps,
        chunks=(frames.chunks[0], (2,)), drop_axis=2, dtype=np.float64,
    )


def pixel_stats(frames: da.Array) -> Any:
    """Lazy (``dask.delayed``) (2, H, W) float64: per-pixel maximum and sum over all frames
    (:data:`~.reduction.PIXEL_STATS`: one compiled pass per block, merged in a tree in place,
    without concatenating the partials as a Dask reduction would)."""
    return PIXEL_STATS.lazy(frames)


def max_fraction(frames: da.Array, inputs: Inputs, padding: tuple[int, int, int, int], window: Window,
                 orientation: Orientation, rebin: int) -> da.Array:
    """Lazy scalar: the largest valid fraction of any super-pixel over all frames (per-frame weights)."""
    parts = _per_block(
        kernels.fraction_block, inputs.weights, inputs.mask, inputs.flat, *inputs.sides,
        nblocks=len(frames.chunks[0]), tail=(), padding=padding, window=window,
        orientation=orientation, rebin=rebin, steps=inputs.steps,
    )
    return parts.max()


def base_valid(inputs: Inputs) -> da.Array:
    """Lazy (H, W) bool: pixels valid before the automatic masks (all True if validity is per frame)."""
    if inputs.per_frame_weights:
        return da.ones(inputs.weights.shape[-2:], dtype=bool, chunks=-1)
    valid = inputs.weights > 0
    if inputs.mask is not None:
        valid = valid & (inputs.mask != 0)
    if inputs.flat is not None:
        valid = valid & da.map_blocks(kernels.flat_valid, inputs.flat, dtype=bool)
    for step, side in zip(inputs.steps, inputs.sides):
        if side is not None:
            valid = valid & da.map_blocks(step.valid, side, dtype=bool)
    return valid


def measure(frames: da.Array, inputs: Inputs, *, padding: tuple[int, int, int, int], need_center: bool,
            masks: MaskRequest, fraction: Optional[tuple[Window, Orientation, int]],
            extra: dict[str, Any], combine: Optional[Combine] = None) -> tuple[Measured, dict[str, Any]]:
    """Evaluate every needed reduction with one ``dask.compute``.

    ``fraction`` = (window, orientation, rebin) when the max valid fraction of
    per-frame weights is needed and known before the pass; ``extra`` are other
    lazy values to evaluate in the same call (returned computed). ``combine``
    turns the computed values of a part of the scan into those of the whole
    scan (e.g. across MPI ranks): ``centres`` (n, 2) per frame, ``max`` and
    ``sum`` (H, W) per pixel, ``fraction`` scalar, ``valid`` (H, W).
    """
    lazy: dict[str, Any] = dict(extra)
    if need_center:
        lazy["centres"] = centres(frames, inputs, padding)
    if masks.any():
        lazy["stats"] = pixel_stats(frames)
        if masks.hot is not None or masks.dead:
            lazy["valid"] = base_valid(inputs)
            lazy["frames"] = frames.shape[0]
    if fraction is not None:
        lazy["fraction"] = max_fraction(frames, inputs, padding, *fraction)
    values = compute_named(lazy)
    if "stats" in values:
        stats = values.pop("stats")
        values["max"], values["sum"] = stats[0], stats[1]
    if combine is not None:
        values = combine(values)

    out = Measured()
    if need_center:
        out.center, out.empty_frames = mean_centre(values.pop("centres"))
    if masks.any():
        out.bad, out.counts = automatic_masks(values, masks)
    if fraction is not None:
        out.max_fraction = float(values.pop("fraction"))
    return out, {k: values[k] for k in extra}


#: Largest per-frame record of candidate pixels the one-pass centre may keep (bytes); beyond, two passes.
CANDIDATE_BYTES = 256 * 2**20


def fusable(frames: da.Array, inputs: Inputs) -> bool:
    """True when the automatic masks and the centre can come from one pass (:func:`measure_fused`):
    validity, dark and flat the same for every frame, numeric frames, and no per-pixel step after the
    corrections (the one-pass sums apply dark and flat only)."""
    return (not inputs.per_frame_weights and (inputs.dark is None or inputs.dark.ndim == 2)
            and frames.dtype.kind in "biuf" and not inputs.steps)


def measure_fused(frames: da.Array, inputs: Inputs, *, padding: tuple[int, int, int, int], masks: MaskRequest,
                  extra: dict[str, Any]) -> Optional[tuple[Measured, dict[str, Any]]]:
    """Automatic masks and the centre with them applied, from ONE pass over the frames.

    The centre needs the masks, which need all frames. So the pass records, per frame, the centre
    sums on the pixels valid before the automatic masks, and the values of *candidate* pixels (see
    :class:`FusedPass`); a candidate found bad at the end is taken out of each frame's sums.
    ``Measured.center`` is ``None`` when a pixel turned bad that was not a candidate (then a second
    pass must compute the centre; the masks are final). Returns ``None`` (nothing computed but the
    first block's statistics) when the candidates' record would exceed ``CANDIDATE_BYTES``.
    """
    first = compute_named({"stats0": dask.delayed(first_block_stats)(frames.blocks[0]), "valid": base_valid(inputs),
                           "dark": inputs.dark, "flat": inputs.flat})
    stats0, valid, dark, flat = (first[k] for k in ("stats0", "valid", "dark", "flat"))
    fused = FusedPass.from_first(stats0, valid, dark, flat, frames, masks=masks, padding=padding, center=True)
    if fused is None:
        return None
    parts = [dask.delayed(fused.block, nout=3)(block) for block in frames.to_delayed().ravel()]
    stats = PIXEL_STATS.tree([p[0] for p in parts])
    sums = dask.delayed(np.concatenate)([p[1] for p in parts])
    values = dask.delayed(np.concatenate)([p[2] for p in parts])
    got = compute_named({**extra, "stats": stats, "sums": sums, "values": values})
    return fused.result(got.pop("stats"), got.pop("sums"), got.pop("values")), {k: got[k] for k in extra}


def in_pieces(func: Callable[[np.ndarray], Any], frames: np.ndarray) -> list:
    """``func`` on consecutive frame ranges of ``frames`` (one per CPU), in threads; results in order."""
    n = frames.shape[0]
    k = max(1, min(os.cpu_count() or 1, n))
    bounds = [n * i // k for i in range(k + 1)]
    pieces = [frames[bounds[i] : bounds[i + 1]] for i in range(k)]
    if k == 1:
        return [func(pieces[0])]
    with ThreadPoolExecutor(max_workers=k, thread_name_prefix="ptydask-first") as pool:
        return list(pool.map(func, pieces))


def first_block_stats(frames: np.ndarray) -> np.ndarray:
    """``compiled.pixel_stats`` of the first block (the candidates of :class:`FusedPass`), on all CPUs."""
    return PIXEL_STATS.merge(in_pieces(PIXEL_STATS.partial, np.asarray(frames)))


@dataclass
class FusedPass:
    """The per-block work and the final step of a one-pass reduction: automatic masks, and (``center``)
    the centre with them applied.

    ``valid`` (H, W) bool: pixels valid before the automatic masks; ``dark``/``flat``: (H, W) or
    ``None``; ``candidates``: sorted flat indices of the pixels whose values each frame's record
    keeps -- those the first block already makes look hot (at half the sigma and a factor 1.25),
    saturated (at half the level) or dead (only where a dead pixel could count: signed or float
    frames, or a negative dark). A dead pixel of unsigned frames counts 0 anyway.
    """

    masks: MaskRequest
    padding: tuple[int, int, int, int]
    width: int
    valid: np.ndarray
    dark: Optional[np.ndarray]
    flat: Optional[np.ndarray]
    gain: np.ndarray
    candidates: np.ndarray
    dead_count_zero: bool
    center: bool
    dtype: np.dtype
    frames: int

    @classmethod
    def from_first(cls, stats0: np.ndarray, valid: Any, dark: Optional[np.ndarray], flat: Optional[np.ndarray],
                   frames: da.Array, *, masks: MaskRequest, padding: tuple[int, int, int, int],
                   center: bool) -> Optional["FusedPass"]:
        """The pass for ``frames`` given the first block's ``compiled.pixel_stats`` ``stats0``; ``None`` when
        the candidates' record would exceed ``CANDIDATE_BYTES``."""
        h, w = frames.shape[1:]
        valid = np.asarray(valid, dtype=bool)
        gain = valid if flat is None else valid & kernels.flat_valid(flat)
        dead_count_zero = frames.dtype.kind in "bu" and (dark is None or bool(np.all(dark >= 0)))
        cand = np.zeros((h, w), dtype=bool)
        if center:
            if masks.saturation is not None:
                cand |= stats0[0] >= masks.saturation / 2
            if masks.dead and not dead_count_zero:
                cand |= stats0[0] <= 0
            if masks.hot is not None:
                cand |= badpixels.hot_pixels(stats0[1], valid, masks.hot / 2, factor=1.25)
        candidates = np.flatnonzero(cand & gain)
        if candidates.size * frames.shape[0] * frames.dtype.itemsize > CANDIDATE_BYTES:
            return None
        return cls(masks, padding, int(w), valid, dark, flat, gain, candidates, dead_count_zero, center, frames.dtype,
                   int(frames.shape[0]))

    def block(self, frames: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
        """(stats (2, H, W), sums (n, 3), candidates' raw values (n, K)) of one block of raw frames
        (``None`` for the last two without the centre)."""
        if self.center:
            return compiled.stats_and_sums(frames, self.valid, self.dark, self.flat, self.candidates)
        return compiled.pixel_stats(frames), None, None

    def masks_of(self, stats: np.ndarray, frames: int) -> tuple[np.ndarray, dict[str, int]]:
        """The automatic masks (True = invalid) and their counts from per-pixel ``stats`` (2, H, W)
        of ``frames`` frames."""
        return automatic_masks({"max": stats[0], "sum": stats[1], "valid": self.valid, "frames": frames},
                               self.masks)

    def result(self, stats: np.ndarray, sums: Optional[np.ndarray], values: Optional[np.ndarray]) -> Measured:
        """The measured masks (and centre) from the folded ``stats`` and all frames' ``sums`` and ``values``."""
        out = Measured()
        out.bad, out.counts = self.masks_of(stats, self.frames)
        if not self.center:
            return out
        drop = out.bad & self.gain
        if self.dead_count_zero:
            drop &= ~(stats[0] <= 0)
        where = np.flatnonzero(drop)
        if np.isin(where, self.candidates).all():
            k = np.searchsorted(self.candidates, where)
            rows, cols = np.divmod(where, self.width)
            taken = compiled.corrected_at(values[:, k], where, self.width, self.valid, self.dark, self.flat)
            total = sums[:, 0] - taken.sum(axis=1)
            row_moment = sums[:, 1] - taken @ rows.astype(np.float64)
            col_moment = sums[:, 2] - taken @ cols.astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_frame = np.stack([row_moment / total + self.padding[0], col_moment / total + self.padding[2]],
                                     axis=1)
            out.center, out.empty_frames = mean_centre(per_frame)
            out.center_with_masks = "one pass"
        return out


def mean_centre(per_frame: np.ndarray) -> tuple[tuple[float, float], int]:
    """Arithmetic mean of the per-frame centres (ptypy's auto-centre), skipping frames without
    masked intensity (NaN); returns the centre and the number of frames skipped."""
    ok = np.isfinite(per_frame).all(axis=1)
    if not ok.any():
        raise GeometryError(
            f"auto_center: no frame has masked intensity ({per_frame.shape[0]} frames), so the centre of mass "
            "is undefined; give a centre, e.g. center='fftshift' or center=(row, col)"
        )
    mean = per_frame[ok].mean(0)
    return (float(mean[0]), float(mean[1])), int((~ok).sum())


def automatic_masks(values: dict[str, Any], masks: MaskRequest) -> tuple[np.ndarray, dict[str, int]]:
    """Combine the per-pixel statistics into one bad-pixel map (True = invalid) and per-kind counts.

    ``values``: ``max``, ``sum`` and ``valid`` (H, W) over ``frames`` frames (without ``frames``,
    counts are taken as single quanta: :func:`.badpixels.count_quantum`). Saturated:
    ``max >= saturation``. Dead: a pixel never above 0 that Poisson statistics say should have
    counted (:mod:`.badpixels`), or one whose values are all negative (detectors mark gaps and bad
    pixels so: Pilatus -1/-2). Hot:
    :func:`.badpixels.hot_pixels`, also without each pixel's brightest frame (a flash in one frame is
    no hot pixel; one frame shows none). Each kind is judged among the pixels the earlier kinds left valid.
    """
    counts: dict[str, int] = {}
    shape = np.shape(values["max"])
    bad = np.zeros(shape, dtype=bool)
    if masks.saturation is not None:
        sat = values["max"] >= masks.saturation
        counts["saturated"] = int(sat.sum())
        bad |= sat
    if not (masks.dead or masks.hot is not None):
        return bad, counts
    valid = np.asarray(values["valid"], dtype=bool) & np.ones(shape, dtype=bool)
    quanta_per_count = 1.0 / badpixels.count_quantum(values["max"], values["sum"], int(values.get("frames", 0)),
                                                     valid & ~bad)
    quanta = values["sum"] * quanta_per_count
    if masks.dead:
        judged = valid & ~bad
        dead = (judged & (values["max"] < 0)) | badpixels.dead_pixels(quanta, judged)
        counts["dead"] = int(dead.sum())
        bad |= dead
    if masks.hot is not None:
        hot = badpixels.hot_pixels(quanta, valid & ~bad, masks.hot, peak=values["max"] * quanta_per_count)
        counts["hot"] = int(hot.sum())
        bad |= hot
    return bad, counts
