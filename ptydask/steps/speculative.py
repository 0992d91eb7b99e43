"""``prepare`` with its global reductions measured during the pass that computes the prepared frames.

:func:`~ptydask.steps.prepare` needs the automatic masks (and the automatic
centre) before it can cut a frame, so it reads the raw frames twice: once to
measure, once to cut. A sink that can replace a few small things after the
frames are written -- the ``.ptyd`` writer: ``meta``, ``info`` and the 2-D
weights -- can do with one read:

1. the first block is read and measured alone (on all CPUs): its masks, and
   the centre of its frames with those masks, are the *guess* (its statistics
   also choose the candidate pixels of
   :class:`~ptydask.steps.reductions.FusedPass`, as in the two-pass way);
2. the prepared frames are built on the guessed window; the sink computes every
   raw block together with the prepared block made from it (one read) and hands
   it to a :class:`Recorder` (an observer of the write), which folds
   the same per-block statistics the two-pass reduction computes, in the same
   order (:meth:`~ptydask.steps.reduction.Reduction.stream`);
3. after the last block, :meth:`Speculation.finish` turns the records into the
   final masks and centre. The prepared frames depend on them only through the
   window, so when the final window is the guessed one the frames written are
   exactly those of ``prepare`` and only meta, info and weights change. Else
   (the centre moved by a pixel or more after the first block) the frames must
   be computed again: :meth:`Speculation.final` is the right Scan, with the
   measurements kept (one more pass, as many as ``prepare`` takes).

Only for the one-pass cases of ``prepare``: automatic masks (with or without
the automatic centre), validity, dark and flat the same for every frame, not a
part of a scan (``combine``). :func:`speculate` returns ``None`` otherwise.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import xarray as xr

from ..blocks import block_ranges
from ..errors import GeometryError
from . import compiled
from .params import AUTO
from .pipeline import PreparePlan, masked_centre_pass, plan_prepare, user_invalid
from .reduction import PIXEL_STATS
from .reductions import (FusedPass, Measured, base_valid, compute_named, first_block_stats, fusable, in_pieces,
                         mean_centre)


class Recorder:
    """Folds the per-block statistics of a :class:`FusedPass` over the blocks of the raw ``frames``
    (n, H, W): :meth:`record` measures one block wherever it was computed (pure; a copy of the
    recorder pickles as this half only), :meth:`add` folds a block's partial here (in any order,
    from any thread; a block added twice counts once). The ``.ptyd`` sink feeds it as an
    :class:`~ptydask.ptyd.writer.Observer` (``array`` = the raw frames)."""

    def __init__(self, fused: FusedPass, frames: Any):
        self.fused, self.array = fused, frames
        chunks = frames.chunks[0]
        self.ranges = block_ranges(chunks)
        self.token = uuid.uuid4().hex
        self._start(sum(chunks))

    def _start(self, n: int) -> None:
        fused = self.fused
        self._stats = PIXEL_STATS.stream(len(self.ranges))
        # every frame's centre sums and candidates' raw values, filled in place (no copy of them all at the end)
        self._sums = np.empty((n, 3)) if fused.center else None
        self._values = np.empty((n, fused.candidates.size), dtype=fused.dtype) if fused.center else None
        self._done: set[int] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"fused": self.fused, "ranges": self.ranges, "token": self.token}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, array=None)
        self._start(self.ranges[-1][1] if self.ranges else 0)

    def __dask_tokenize__(self) -> str:
        return self.token

    def record(self, i: int, frames: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
        """The partial of block ``i`` of raw frames (n, H, W): (stats, centre sums, candidates' values)."""
        return self.fused.block(frames)

    def add(self, i: int, partial: tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]) -> None:
        """Fold the partial of block ``i`` (from :meth:`record`)."""
        stats, sums, values = partial
        with self._lock:
            if i in self._done:
                return
            self._done.add(i)
        if sums is not None:
            start, stop = self.ranges[i]
            self._sums[start:stop] = sums
            self._values[start:stop] = values
        self._stats.add(i, stats)

    def complete(self) -> bool:
        """True when every block was measured."""
        return len(self._done) == len(self.ranges)

    def measured(self) -> Measured:
        """The final masks (and centre, ``None`` if a pixel turned bad that was no candidate)."""
        return self.fused.result(self._stats.result, self._sums, self._values)


@dataclass
class Speculation:
    """A prepared Scan (``scan``) built on guessed reductions whose frames measure the real ones as they
    are computed; :meth:`finish` after all of them were."""

    plan: PreparePlan
    guess: Measured
    counted: dict[str, Any]
    recorder: Recorder
    scan: xr.Dataset
    measured: Optional[Measured] = field(default=None)
    prepared: Optional[xr.Dataset] = field(default=None)

    def finish(self) -> Optional[xr.Dataset]:
        """The final prepared Scan when its frames are those of ``scan`` (the same window), else ``None``.

        Call once every frame block of ``scan`` was computed. Raises what ``prepare`` raises on
        the measured values (e.g. an automatic centre outside the frame)."""
        if not self.recorder.complete():  # not every block was computed through ``scan``
            return None
        measured = self.recorder.measured()
        plan = self.plan
        if plan.raw_center is AUTO and measured.center is None:
            masked_centre_pass(plan.frames, plan.inputs, plan.geom, measured)
        self.measured = measured
        if plan.geom.window(plan.center(measured)) != plan.geom.window(plan.center(self.guess)):
            return None
        self.prepared = plan.build(measured, self.counted)
        return self.prepared

    def final(self) -> xr.Dataset:
        """The prepared Scan (what ``prepare`` returns): the one :meth:`finish` returned, or built now on
        its measurements (measuring now if it did not)."""
        if self.prepared is None:
            self.prepared = (self.plan.build(*self.plan.measure()) if self.measured is None
                             else self.plan.build(self.measured, self.counted))
        return self.prepared


def speculate(scan: xr.Dataset, **params: Any) -> Optional[Speculation]:
    """A :class:`Speculation` for ``prepare(scan, **params)``, or ``None`` when ``prepare`` needs no global
    reductions or not one-pass ones. Reads the first block of frames when the centre is automatic.
    Raises what ``prepare`` raises on bad parameters."""
    plan = plan_prepare(scan, **params)
    frames, inputs = plan.frames, plan.inputs
    if not plan.masks.any() or plan.combine is not None or frames.shape[0] == 0 or not fusable(frames, inputs):
        return None
    center = plan.raw_center is AUTO
    counted: dict[str, Any] = {}
    small = {"valid": base_valid(inputs), "dark": inputs.dark, "flat": inputs.flat}
    if inputs.mask is not None:
        small["user"] = user_invalid(inputs)
    got = compute_named(small)
    valid, dark, flat = got["valid"], got["dark"], got["flat"]
    if "user" in got:
        counted["user"] = got["user"]
    first = stats0 = None
    if center:
        first = np.asarray(frames.blocks[0].to_delayed().ravel()[0].compute())  # the block itself, not a copy
        stats0 = first_block_stats(first)
    fused = FusedPass.from_first(stats0, valid, dark, flat, frames, masks=plan.masks, padding=plan.geom.padding,
                                 center=center)
    if fused is None:
        return None
    if center:
        guess = Measured()
        guess.bad, guess.counts = fused.masks_of(stats0, int(first.shape[0]))
        good = fused.valid & ~guess.bad
        centres = np.concatenate(in_pieces(lambda f: compiled.mass_centres(f, good, dark, flat), first))
        del first
        pad = plan.geom.padding
        try:  # no guess (no valid intensity, a centre outside the frame): the two-pass way says why
            guess.center, _ = mean_centre(centres + (pad[0], pad[2]))
            plan.center(guess)
        except GeometryError:
            return None
    else:
        guess = Measured(bad=np.zeros(frames.shape[1:], dtype=bool))
    return Speculation(plan, guess, counted, Recorder(fused, frames), plan.build(guess, counted))


__all__ = ["Speculation", "Recorder", "speculate"]
