"""``prepare``: ptypy's per-chunk preprocessing (spec §4) as one lazy, blockwise Dask pass."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Optional

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import ParameterError, ScanError
from ..params.api import bind, parameters_doc, signature
from ..params.registry import param
from ..scan import frames_expected, validate_scan, with_data
from . import kernels
from .geometry import Orientation, Window, inside
from .base import build_steps
from .inputs import Inputs, gather
from .params import (
    AUTO,
    Geometry,
    check_frame_sizes,
    center_of,
    flag_of,
    frames_to_keep,
    padded_shape,
    padding_of,
    positive_or_none,
    rebin_of,
    roi_shape,
)
from .reductions import Combine, MaskRequest, Measured, fusable, measure, measure_fused

#: The values of ``rebin_mode`` (from the registry).
REBIN_MODES = param("rebin_mode").kind.values


def prepare(scan: xr.Dataset, **params: Any) -> xr.Dataset:
    """Prepare frames as ptypy's ``PtyScan`` does (spec §4), lazily.

    The keywords, their defaults and allowed values are the registry's ``prepare``
    vocabulary (:mod:`ptydask.params`); the signature shown is built from it.

    Parameters
    ----------
    scan : xarray.Dataset
        A Scan (see :mod:`ptydask.scan`) with whole frames per Dask block.
{parameters}

    Returns
    -------
    xarray.Dataset
        A new lazy Scan; meta ``center``, ``shape``, ``psize``, ``num_frames`` and ``info`` are updated.

    Raises
    ------
    ParameterError, GeometryError, ScanError
        On bad input, naming the parameter.

    Notes
    -----
    Order: first ``num_frames`` frames -> corrections (``dark`` subtracted, negatives set to 0,
    ``/ flat``, monitor ``normalisation``; float64) -> masks -> ``padding`` -> ROI/centre ->
    crop/pad -> orientation -> rebin. Pixels are raw-frame pixels after ``padding``; centres (row, col).

    ``shape`` is made square (smaller side). ``center``: 'fftshift' (shape // 2), 'geometric'
    (shape / 2 - 0.5), a sequence (last two entries) or ``None`` (automatic); ``auto_center=True``
    always centres automatically (overrides ``center``), ``False`` makes ``center=None`` the frame
    centre. The automatic centre is the mean of the per-frame masked centres of mass over ALL frames
    (pixels valid in the weights, ``mask`` and ``flat``, and not in the automatic masks; both come
    from one pass over the frames, see ``reductions.measure_fused``, or two when a pixel turns bad
    that the first block did not make a candidate).

    ``rebin`` must divide the ROI and leave frames of at least 2 x 2 pixels. ``rebin_mode`` 'sum'
    keeps counts (integers summed as int64). Weights become bool: valid where the super-pixel's
    valid fraction equals the largest fraction over ALL frames (ptypy: over the chunk) -- so the
    result is independent of the Dask chunking.

    ``dark``/``flat``/``mask`` are (H, W) or (N, H, W); flat pixels that are zero or not finite get
    data 0, weight 0; ``mask`` is combined with the Scan's weights (both valid).
    ``normalisation``: frame <- frame / m * mean(m) where |m - mean| < sigma * std (sigma 3 unless
    given as ``{{"monitor": array, "sigma": s}}``). ``num_frames``: meta ``num_frames`` =
    min(num_frames, the scan's expected frames). The automatic masks (``hot_pixels``, see
    ``badpixels.hot_pixels``; ``dead_pixels``: ``badpixels.dead_pixels``; ``saturation``) are judged on the raw counts of all
    frames; their counts go to ``info['masks']``. ``combine`` (not a ``scan.data`` parameter): for a
    part of a scan (one MPI rank's frames), turns the global reductions computed on the part into
    those of the whole scan (see ``ptydask.parallel.prepare_mpi``).

    Without corrections, the raw dtype is kept unless ptypy's own rules promote it (zero padding in
    the ROI step: float64; mean rebin: float64). Weights stay 2-D (y, x) unless a per-frame input
    (weights, mask, flat) makes them (frame, y, x).

    Laziness: building reads nothing, except the global reductions the parameters require
    (automatic centre, automatic masks, and the rebin mask rule of per-frame weights), evaluated
    over all frames before the blockwise pass, in one ``dask.compute`` over the frames.
    """
    plan = plan_prepare(scan, **params)
    return plan.build(*plan.measure())


prepare.__signature__ = signature(  # type: ignore[attr-defined]
    "prepare",
    first=[inspect.Parameter("scan", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=xr.Dataset)],
    last=[inspect.Parameter("combine", inspect.Parameter.KEYWORD_ONLY, default=None)],
)
prepare.__doc__ = prepare.__doc__.format(parameters=parameters_doc("prepare"))


@dataclass
class PreparePlan:
    """What :func:`prepare` knows before reading a frame: the checked parameters and inputs.

    ``measure`` runs the global reductions (reading the frames); ``build`` makes the lazy
    prepared Scan from their results. Split so that a sink can obtain the reductions
    another way (``ptydask.steps.speculative``: during the pass that writes the frames).
    """

    scan: xr.Dataset
    sub: xr.Dataset
    frames: da.Array
    keep: int
    meta_frames: int
    geom: Geometry
    raw_center: Any
    center_rule: str
    auto_center: Optional[bool]
    rebin_mode: str
    masks: MaskRequest
    inputs: Inputs
    mask: Any
    combine: Optional[Combine]
    square_note: Optional[str]

    def measure(self) -> tuple[Measured, dict[str, Any]]:
        """The global reductions the parameters need, computed now (see :func:`_global_pass`)."""
        return _global_pass(self.frames, self.inputs, self.geom, self.raw_center, self.masks, self.mask, self.combine)

    def center(self, measured: Measured) -> tuple[float, float]:
        """The centre (row, col) px of the padded frame: given, or the measured automatic one."""
        if self.raw_center is not AUTO:
            return self.raw_center
        return inside(measured.center, self.geom.padded, "automatic centre")

    def build(self, measured: Measured, counted: dict[str, Any]) -> xr.Dataset:
        """The lazy prepared Scan for the reductions ``measured``/``counted``."""
        geom, inputs = self.geom, self.inputs
        resolved = self.center(measured)
        window = geom.window(resolved)
        data = _frames(self.frames, inputs, geom, window, self.rebin_mode)
        weights = _weights(self.frames, inputs, geom, window, measured)
        info = _info(self.scan, geom, resolved, self.center_rule, self.auto_center, self.rebin_mode, self.keep,
                     inputs, measured, self.square_note, counted, self.masks)
        psize = self.scan.attrs.get("psize")
        out = with_data(
            self.sub, data, weights,
            center=geom.output_center(resolved),
            psize=None if psize is None else (psize[0] * geom.rebin, psize[1] * geom.rebin),
            num_frames=self.meta_frames,
            info=info,
        )
        if "normalisation" in inputs.origin and "monitor" in out:
            out = out.drop_vars("monitor")
        return out


def plan_prepare(scan: xr.Dataset, *, combine: Optional[Combine] = None, **params: Any) -> PreparePlan:
    """Check the parameters of :func:`prepare` (same names, defaults and meaning) against ``scan``;
    reads no frame."""
    p = bind("prepare", params, "prepare")
    validate_scan(scan)
    n_all = scan.sizes["frame"]
    keep, meta_frames = frames_to_keep(p["num_frames"], n_all, frames_expected(scan))
    sub = scan.isel(frame=slice(0, keep)) if keep < n_all else scan
    frames = sub["data"].data
    if not isinstance(frames, da.Array):
        frames = da.from_array(frames, chunks=(max(1, keep), -1, -1))
    if frames.numblocks[1:] != (1, 1):
        raise ScanError(
            f"scan['data']: frames are split into blocks along y/x (chunks {frames.chunks[1:]}); "
            "prepare needs whole frames per block (chunks along 'frame' only)"
        )

    frame_shape = (int(frames.shape[1]), int(frames.shape[2]))
    pads = padding_of(p["padding"])
    roi, square_note = roi_shape(p["shape"], padded_shape(frame_shape, pads))
    geom = Geometry(frame_shape, pads, roi, Orientation.parse(p["orientation"]), rebin_of(p["rebin"], roi))
    check_frame_sizes(geom, p["shape"], p["padding"])
    rebin_mode = p["rebin_mode"]
    if rebin_mode not in REBIN_MODES:
        raise ParameterError(f"rebin_mode: expected one of {REBIN_MODES}, got {rebin_mode!r}")
    raw_center, center_rule = center_of(p["center"], p["auto_center"], geom.padded)
    masks = MaskRequest(
        saturation=positive_or_none("saturation", p["saturation"], "raw count level"),
        dead=flag_of("dead_pixels", p["dead_pixels"]),
        hot=positive_or_none("hot_pixels", p["hot_pixels"], "sigma of the hot-pixel test"),
    )
    inputs = gather(scan, frames, dark=p["dark"], flat=p["flat"], mask=p["mask"], normalisation=p["normalisation"])
    inputs.steps, inputs.sides = build_steps(p, scan, frames)
    if keep == 0 and raw_center is AUTO and combine is None:  # a part of a scan may hold no frame
        raise ParameterError("num_frames/auto_center: no frame to compute the automatic centre from")

    return PreparePlan(scan, sub, frames, keep, meta_frames, geom, raw_center, center_rule, p["auto_center"],
                       rebin_mode, masks, inputs, p["mask"], combine, square_note)


def _global_pass(frames: da.Array, inputs: Inputs, geom: Geometry, raw_center: Any, masks: MaskRequest,
                 mask: Any, combine: Optional[Combine]) -> tuple[Measured, dict[str, Any]]:
    """Run the reductions the parameters need, in one compute over the frames.

    An automatic centre with automatic masks takes the centre from the frames
    with the masks applied (a hot pixel would pull it off): one pass when the
    validity is the same for every frame (``measure_fused``: the first block is
    read once more to pick candidate pixels), else -- or when a pixel turns bad
    that was no candidate -- a second compute reads the frames again.
    The rebin mask rule of per-frame weights needs the largest valid fraction
    over all frames; it joins that compute when the window and the masks are
    known beforehand, else a second compute reads the weights (not the frames).
    The user mask's invalid-pixel count is evaluated when the mask is in memory
    or a compute runs anyway.
    """
    need_center = raw_center is AUTO
    center_after_masks = need_center and masks.any()
    need_fraction = inputs.per_frame_weights and geom.processes() and geom.rebin > 1
    fraction_first = need_fraction and not need_center and not masks.any()
    extra: dict[str, Any] = {}
    if inputs.mask is not None and (not isinstance(mask, da.Array) or need_center or masks.any() or need_fraction):
        extra["user"] = user_invalid(inputs)
    if not (need_center or masks.any() or need_fraction or extra):
        return Measured(), {}
    fraction = (geom.window(raw_center), geom.orientation, geom.rebin) if fraction_first else None
    fused = None
    if center_after_masks and combine is None and fusable(frames, inputs):
        fused = measure_fused(frames, inputs, padding=geom.padding, masks=masks, extra=extra)
    if fused is not None:
        measured, counted = fused
    else:
        measured, counted = measure(frames, inputs, padding=geom.padding,
                                    need_center=need_center and not center_after_masks, masks=masks,
                                    fraction=fraction, extra=extra, combine=combine)
    if center_after_masks and measured.center is None:
        masked_centre_pass(frames, inputs, geom, measured, combine)
    if need_fraction and not fraction_first:
        center = inside(measured.center, geom.padded, "automatic centre") if need_center else raw_center
        second, _ = measure(frames, inputs_with_bad(inputs, measured.bad), padding=geom.padding, need_center=False,
                            masks=MaskRequest(), fraction=(geom.window(center), geom.orientation, geom.rebin), extra={},
                            combine=combine)
        measured.max_fraction = second.max_fraction
    return measured, counted


def masked_centre_pass(frames: da.Array, inputs: Inputs, geom: Geometry, measured: Measured,
                       combine: Optional[Combine] = None) -> None:
    """A second pass over the frames: the automatic centre with the automatic masks ``measured.bad``
    applied, set on ``measured``."""
    masked, _ = measure(frames, inputs_with_bad(inputs, measured.bad), padding=geom.padding, need_center=True,
                        masks=MaskRequest(), fraction=None, extra={}, combine=combine)
    measured.center, measured.empty_frames = masked.center, masked.empty_frames
    measured.center_with_masks = "second pass"


def user_invalid(inputs: Inputs) -> da.Array:
    """Lazy count of the pixels the user mask makes invalid (in any frame, for a per-frame mask)."""
    invalid = inputs.mask == 0
    return (invalid.any(axis=0) if invalid.ndim == 3 else invalid).sum()


def inputs_with_bad(inputs: Inputs, bad: Optional[np.ndarray]) -> Inputs:
    """``inputs`` whose user mask also excludes the automatic ``bad`` pixels (True = invalid)."""
    if bad is None:
        return inputs
    good = da.from_array(~bad, chunks=bad.shape)
    mask = good if inputs.mask is None else (inputs.mask != 0) & good
    return replace(inputs, mask=mask)


def _empty(arr: Optional[da.Array]) -> Optional[np.ndarray]:
    """A zero-frame numpy stand-in of a side array, for dry runs that find output dtypes."""
    if arr is None:
        return None
    shape = (0,) + arr.shape[1:] if arr.ndim == 3 else arr.shape
    return np.zeros(shape, dtype=arr.dtype)


def _frames(frames: da.Array, inputs: Inputs, geom: Geometry, window: Optional[Window], mode: str) -> da.Array:
    """The prepared frames: one ``map_blocks`` task per block (the input itself if nothing changes)."""
    if window is None and not inputs.corrects and not any(geom.padding):
        return frames
    kw = dict(padding=geom.padding, window=window, orientation=geom.orientation, rebin=geom.rebin, mode=mode,
              steps=inputs.steps)
    sides = (inputs.dark, inputs.flat, inputs.divisor, inputs.multiplier, *inputs.sides)
    meta = kernels.frames_block(_empty(frames), *(_empty(a) for a in sides), **kw)
    chunks = (frames.chunks[0], (meta.shape[1],), (meta.shape[2],))
    return da.map_blocks(kernels.frames_block, frames, *sides, **kw, chunks=chunks, meta=meta)


def _weights(frames: da.Array, inputs: Inputs, geom: Geometry, window: Optional[Window],
             measured: Measured) -> da.Array:
    """The prepared weights, 2-D (y, x) when every input is 2-D, else (frame, y, x)."""
    bad = None if measured.bad is None else da.from_array(measured.bad, chunks=measured.bad.shape)
    kw = dict(padding=geom.padding, window=window, orientation=geom.orientation, rebin=geom.rebin,
              steps=inputs.steps)
    sides = (inputs.mask, inputs.flat, bad, *inputs.sides)
    if inputs.per_frame_weights:
        kw["max_fraction"] = measured.max_fraction
        meta = kernels.weights_block(_empty(inputs.weights), *(_empty(a) for a in sides), **kw)
        return da.map_blocks(
            kernels.weights_block, inputs.weights, *sides, **kw,
            chunks=(frames.chunks[0], (meta.shape[1],), (meta.shape[2],)), meta=meta,
        )
    if window is None and all(a is None for a in sides) and not any(geom.padding):
        return inputs.weights
    kw["max_fraction"] = None  # 2-D weights: this one frame's maximum is the maximum over all frames

    def one(weights: np.ndarray, *rest: Optional[np.ndarray]) -> np.ndarray:
        return kernels.weights_block(weights, *rest, **kw)[0]

    meta = one(np.zeros(inputs.weights.shape, inputs.weights.dtype), *(_empty(a) for a in sides))
    return da.map_blocks(one, inputs.weights, *sides, chunks=tuple((s,) for s in meta.shape), meta=meta[:0, :0])


def _info(scan: xr.Dataset, geom: Geometry, center: tuple[float, float], rule: str, auto_center: Any, mode: str,
          keep: int, inputs: Inputs, measured: Measured, square_note: Optional[str], counted: dict[str, Any],
          masks: MaskRequest) -> dict[str, Any]:
    """``info`` of the output: the parameters used and every deviation from ptypy."""
    info = dict(scan.attrs.get("info") or {})
    info.update(
        shape=[int(v) for v in geom.roi],
        center=[float(v) for v in center],
        auto_center=auto_center,
        orientation=geom.orientation.as_int(),
        rebin=geom.rebin,
    )
    notes = []
    if square_note:
        notes.append(square_note)
    if rule.startswith("auto"):
        notes.append(f"automatic centre = mean of per-frame masked centres of mass over all {keep} frames "
                     "(ptypy: over the first chunk only)")
        if measured.empty_frames:
            notes.append(f"automatic centre skipped {measured.empty_frames} frame(s) without masked intensity")
        if measured.center_with_masks == "one pass":
            notes.append("automatic centre computed with the automatic masks applied (in the same pass over the "
                         "frames: the masked pixels' values taken out of each frame's sums)")
        elif measured.center_with_masks:
            notes.append("automatic centre computed with the automatic masks applied (a second pass over the frames)")
    if "ignored" in rule:
        notes.append("auto_center=True overrides the given centre (ptypy's documented meaning; PtyScan keeps the centre)")
    if geom.rebin > 1:
        notes.append("rebin mask rule: largest valid fraction over all frames (ptypy: over the chunk)")
        if mode == "sum":
            notes.append("rebin_mode='sum': r x r blocks summed, counts kept (ptypy: mean)")
    if inputs.corrects:
        notes.append("corrections in float64, flat zeros masked (ptypy's Hdf5Loader truncates integers)")
    if masks.any():
        notes.append("automatic masks (ptydask extension) judged on the raw counts of all frames")
    prep = {
        "center_rule": rule,
        "rebin_mode": mode,
        "padding": [int(v) for v in geom.padding],
        "num_frames": keep,
        "processed": geom.processes(),
        **inputs.origin,
    }
    for step in inputs.steps:
        prep.update(step.info())
    info["prepare"] = prep
    if masks.any() or "user" in counted:
        info["masks"] = dict(measured.counts, **{k: int(v) for k, v in counted.items()})
    if notes:
        info["deviations"] = notes
    return info
