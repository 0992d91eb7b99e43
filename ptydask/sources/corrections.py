"""Masks (as ptypy weights) and correction inputs: dark, flat and the per-frame monitor.

Mask conventions (``kind``):

``"valid"``  nonzero = valid (ptypy's rule; the default for masks you pass);
``"bad"``    nonzero = bad (CXI masks);
``"nexus"``  NXmx ``pixel_mask`` bit field: any of the low 16 bits set = invalid.

A mask read from a key named ``pixel_mask`` is ``"nexus"`` unless ``kind`` says
otherwise. ``invert=True`` is a logical inversion (valid where the mask is
zero), correct for any integer, bool or float mask. ``"valid"`` masks that are
not inverted keep their values (float weights stay weights); all other cases
give bool weights.

Shapes: ``(H, W)`` (or ``(1, H, W)``) for every frame, or one entry per frame —
stored like the frames (raster and outer axes included) or as ``(N, H, W)``
over the flattened stack; per-frame entries are selected with the frames.
Dark and flat stacks of any other length are averaged (lazily); pass
``average=True`` to average a stack that happens to have one frame per frame.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import dask.array as da
import numpy as np

from ..errors import ParameterError, ScanError
from .base import FileRef
from .positions import Selection
from .refs import REF_KEYS, check_keys, load_frames_like, load_small

MASK_KINDS = ("valid", "bad", "nexus")
NEXUS_INVALID_BITS = 0xFFFF


def _squeeze_single(arr: Any) -> Any:
    return arr[0] if arr.ndim == 3 and arr.shape[0] == 1 else arr


def _per_frame(name: str, arr: Any, n_frames: int, frame_shape: tuple[int, int], sel: Selection, average: bool) -> Any:
    """``arr`` as (H, W) or as (n_selected, H, W) aligned with the selected frames."""
    arr = _squeeze_single(arr)
    if tuple(arr.shape[-2:]) != tuple(frame_shape):
        raise ScanError(f"{name}: frame shape {tuple(arr.shape[-2:])} differs from the frames' {tuple(frame_shape)}")
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise ScanError(f"{name}: expected (H, W) or a stack (K, H, W), got shape {arr.shape}")
    if arr.shape[0] == n_frames and not average:
        return arr[sel.frames]
    if average or name in ("dark", "flat"):
        stack = arr if isinstance(arr, da.Array) else da.from_array(arr, chunks=(max(1, arr.shape[0] // 8), -1, -1))
        return stack.astype(np.float64).mean(axis=0)
    raise ScanError(f"{name}: {arr.shape[0]} frames given for {n_frames} frames; expected (H, W) or one per frame")


def _flatten_like_frames(arr: Any, raw_shape: tuple[int, ...], outer_index: int | None) -> Any:
    """Apply the frames' outer index and raster flattening to an array stored like the raw frames."""
    if tuple(arr.shape) == tuple(raw_shape) and len(raw_shape) >= 3:
        if outer_index is not None:
            arr = arr[outer_index]
        return arr.reshape((-1,) + tuple(arr.shape[-2:]))
    return arr


def _load(name: str, value: Any, ctx: Mapping[str, Any]) -> Any:
    arr = load_frames_like(name, value, ctx["default_file"], ctx["outer_index"], ctx["raw_shape"], ctx["block_bytes"])
    if not isinstance(value, Mapping):
        arr = _flatten_like_frames(arr, ctx["raw_shape"], ctx["outer_index"])
    if arr.dtype.kind not in "biuf":
        raise ScanError(f"{name}: dtype {arr.dtype} is not numeric")
    return arr


def weights_from_mask(mask: Any, kind: str = "valid", invert: bool = False) -> Any:
    """ptypy weights (nonzero = valid) from a mask of the given ``kind``."""
    if kind not in MASK_KINDS:
        raise ParameterError(f"mask.kind: expected one of {', '.join(MASK_KINDS)}, got {kind!r}")
    if kind == "valid":
        return (mask == 0) if invert else mask
    if kind == "bad":
        valid = mask == 0
    else:
        if mask.dtype.kind not in "biu":
            raise ScanError(f"mask: an NXmx pixel_mask must be integers (bit field), got {mask.dtype}")
        valid = (mask.astype(np.uint64) & NEXUS_INVALID_BITS) == 0
    return ~valid if invert else valid


def mask_weights(spec: Any, file_mask: FileRef | None, ctx: Mapping[str, Any], sel: Selection) -> tuple[Any, str]:
    """Weights for the selected frames and a note of where they came from (``None`` = no mask)."""
    if spec is False or (spec is None and file_mask is None):
        return None, "none"
    if spec is None:
        spec = {"file": file_mask.file, "key": file_mask.key, "kind": file_mask.kind}
        origin = f"source file {file_mask.key} ({file_mask.kind})"
    else:
        origin = "mask="
    invert, kind = False, "valid"
    if isinstance(spec, Mapping):
        check_keys("mask", spec, REF_KEYS + ("invert", "kind"))
        invert = bool(spec.get("invert", False))
        key = str(spec.get("key") or "")
        kind = spec.get("kind") or ("nexus" if os.path.basename(key) == "pixel_mask" else "valid")
        ref = {k: v for k, v in spec.items() if k not in ("invert", "kind")}
        arr = _load("mask", ref, ctx)
    else:
        arr = _load("mask", spec, ctx)
    arr = _per_frame("mask", arr, ctx["n_frames"], ctx["frame_shape"], sel, average=False)
    return weights_from_mask(arr, kind, invert), origin


def dark_flat(name: str, spec: Any, ctx: Mapping[str, Any], sel: Selection) -> Any:
    """A dark or flat for the selected frames: (H, W) or (n, H, W); stacks are averaged lazily."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        check_keys(name, spec, REF_KEYS + ("average",))
    average = bool(spec.get("average", False)) if isinstance(spec, Mapping) else False
    ref = {k: v for k, v in spec.items() if k != "average"} if isinstance(spec, Mapping) else spec
    arr = _load(name, ref, ctx)
    return _per_frame(name, arr, ctx["n_frames"], ctx["frame_shape"], sel, average=average)


def monitor(spec: Any, ctx: Mapping[str, Any], sel: Selection) -> np.ndarray | None:
    """Per-frame normalisation monitor for the selected frames, shape (n,)."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        check_keys("normalisation", spec, REF_KEYS + ("sigma",))
    ref = {k: v for k, v in spec.items() if k != "sigma"} if isinstance(spec, Mapping) else spec
    values = np.asarray(load_small("normalisation", ref, ctx["default_file"]), dtype=np.float64)
    outer = ctx["outer_index"]
    n = ctx["n_frames"]
    if values.size != n and outer is not None and values.ndim >= 2 and values[outer].size == n:
        values = values[outer]
    if values.size != n:
        raise ScanError(f"normalisation: {values.size} values {values.shape} for {n} frames; expected one per frame")
    return values.ravel()[sel.frames]
