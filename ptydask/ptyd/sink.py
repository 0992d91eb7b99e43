"""The ``.ptyd`` sink: ``open / write_block / commit(meta, weights) / abort`` around one :class:`BlockWriter`.

Every strategy (threads, a ``distributed`` cluster, the one-read preparation) drives the same sink:

* :meth:`PtydSink.open` checks the output and creates ``<name>.incomplete`` (or, with ``resume``,
  reopens a matching one) and says which blocks are still to write;
* :attr:`PtydSink.encoder` is the picklable per-block step that runs where the block was computed
  (a worker thread or a cluster worker): it compresses the block, and in ``link`` mode writes its
  part file there, so frames never travel to this process;
* :meth:`PtydSink.write_block` stores an encoded block in the master (``append``: one group, marked
  complete and flushed; ``merge``: a slice of ``chunks/0``; ``link``: the link to the part file),
  with an optional *partial* (small arrays a reduction measured on the block), kept in a side file
  so that a resumed run has them for the blocks it does not compute again;
* :meth:`PtydSink.commit` replaces ``meta``/``info``/the shared 2-D weights when given, drops the
  resume markers and renames everything into place (atomic); :meth:`PtydSink.abort` removes what
  was written, or keeps the ``.incomplete`` master of an ``append`` run for ``resume``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .layout import BlockWriter, finalize, remove, tmp_name
from .options import check_output
from .plan import COMPLETE_ATTR, FINGERPRINT_ATTR, PtydPlan

__all__ = ["PtydSink", "BlockEncoder", "partials_name"]

Partial = tuple[np.ndarray | None, ...]


def partials_name(path: Path) -> Path:
    """The side file holding the per-block partials of a resumable one-read write of ``path``."""
    return tmp_name(path.with_name(path.name + ".partials"))


class BlockEncoder:
    """Runs where block ``i`` was computed: its payload (``append``/``merge``), or the name and size of
    the part file it wrote and the writing process id (``link``). Picklable: no frame data inside."""

    def __init__(self, writer: BlockWriter, ranges: list[tuple[int, int]], positions: np.ndarray,
                 indices: np.ndarray, total: int):
        self.writer, self.ranges, self.positions, self.indices, self.total = writer, ranges, positions, indices, total

    def __call__(self, i: int, blocks: tuple[np.ndarray, ...]) -> Any:
        start, stop = self.ranges[i]
        w = self.writer
        if w.save == "merge":
            return w.encode_payload(blocks, start, self.total)
        payload = w.encode_payload(blocks, 0, stop - start)
        if w.save != "link":
            return payload
        tmp = tmp_name(w.part_path(i))
        size = w.write_part(tmp, payload, self.positions[start:stop], self.indices[start:stop])
        return str(tmp), size, os.getpid()


class PtydSink:
    """One ``.ptyd`` output of the plan ``plan`` (see the module docstring for the protocol)."""

    def __init__(self, plan: PtydPlan, overwrite: bool = False):
        self.plan, self.overwrite = plan, bool(overwrite)
        self.path, self.writer = plan.path, plan.writer
        self.encoder = BlockEncoder(plan.writer, plan.ranges, plan.positions, plan.indices, plan.shape[0])
        self.master = tmp_name(self.path)
        self.arrays, self.ranges, self.max_in_flight = plan.arrays, plan.ranges, plan.options.max_in_flight
        self.partials: dict[int, Partial] = {}
        #: ``link``: (name, bytes, process id) of the part file of each block written by this run.
        self.parts: dict[int, tuple[str, int, int]] = {}
        self._file: h5py.File | None = None
        self._side: h5py.File | None = None
        self._merged: h5py.Group | None = None
        self._files: list[Path] = []

    # -- open
    def open(self, resume: bool = False, keep_partials: bool = False) -> list[int]:
        """Create (or, ``resume``, reopen) the ``.incomplete`` master; returns the blocks left to write.
        ``keep_partials``: keep each block's partial (:meth:`write_block`) in a side file, for resume."""
        check_output(self.path, self.overwrite)
        plan = self.plan
        done = self._resumable() if resume else None
        if done is None and self.master.exists() and not resume:
            warnings.warn(f"removing {self.master}, left behind by an interrupted write "
                          "(resume=True, CLI --resume, would have continued it)", stacklevel=4)
        self._files = [self.master]
        if plan.save == "link":
            self._files += [tmp_name(self.writer.part_path(i)) for i in range(len(plan.ranges))]
        f = self._reopen(done) if done is not None else None
        if f is None:
            done = None
            f = self._create()
        self._file = f
        if keep_partials:
            done = self._open_partials(done)
        if plan.save == "merge":
            self._merged = self.writer.new_group(f["chunks"], 0, plan.shape[0])
            self.writer.write_small(self._merged, plan.positions, plan.indices)
        return [i for i in range(len(plan.ranges)) if not done or i not in done]

    def _create(self) -> h5py.File:
        from ..errors import OutputError

        try:
            f = h5py.File(self.master, "w")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create {self.master}: {exc}") from exc
        self.writer.write_skeleton(f)
        if self.plan.save == "append":
            f.attrs[FINGERPRINT_ATTR] = self.plan.fingerprint()
        f.flush()
        return f

    def _reopen(self, done: set[int]) -> h5py.File | None:
        """The old master with its partial groups removed, or ``None`` (it cannot be cleaned: start over)."""
        f = None
        try:
            f = h5py.File(self.master, "a")
            chunks = f["chunks"]
            for name in [n for n in chunks if not n.isdigit() or int(n) not in done]:
                del chunks[name]
            return f
        except Exception as exc:  # noqa: BLE001 - any HDF5 damage means: start over
            if f is not None:
                f.close()
            warnings.warn(f"cannot resume {self.master} ({exc}); starting over", stacklevel=5)
            return None

    def _resumable(self) -> set[int] | None:
        """Indices of the complete chunk groups of a matching ``.incomplete`` master, or ``None``."""
        if not self.master.exists():
            warnings.warn(f"nothing to resume: {self.master} does not exist; writing from the beginning",
                          stacklevel=5)
            return None
        try:
            with h5py.File(self.master, "r") as f:
                found = f.attrs.get(FINGERPRINT_ATTR)
                if isinstance(found, bytes):
                    found = found.decode()
                if found != self.plan.fingerprint():
                    reason = "it holds no plan fingerprint" if found is None else "it was written for a different plan"
                    warnings.warn(f"cannot resume {self.master}: {reason}; starting over", stacklevel=5)
                    return None
                return {int(name) for name, grp in f["chunks"].items() if self.plan.complete(name, grp)}
        except Exception as exc:  # noqa: BLE001 - a file damaged by the interruption: start over
            warnings.warn(f"cannot resume {self.master}: it cannot be read ({exc}); starting over", stacklevel=5)
            return None

    def _open_partials(self, done: set[int] | None) -> set[int] | None:
        """Open the partials side file; a finished block without its partial is written again."""
        side = partials_name(self.path)
        self._files.append(side)
        if done:
            try:
                self._side = h5py.File(side, "a")
                for name in list(self._side):
                    grp = self._side[name]
                    if int(name) in done and grp.attrs.get(COMPLETE_ATTR) == 1:
                        self.partials[int(name)] = tuple(grp[str(j)][()] if str(j) in grp else None
                                                         for j in range(int(grp.attrs["n"])))
            except Exception:  # noqa: BLE001 - a damaged side file: those blocks are computed again
                if self._side is not None:
                    self._side.close()
                self._side, self.partials = None, {}
            done = {i for i in done if i in self.partials}
            if self._side is not None:
                return done
        self._side = h5py.File(side, "w")
        return done

    # -- write
    def write_block(self, i: int, encoded: Any, partial: Partial | None = None) -> None:
        """Store block ``i`` encoded by :attr:`encoder` (and its ``partial``, kept for resume)."""
        plan, bw, chunks = self.plan, self.writer, self._file["chunks"]
        start, stop = plan.ranges[i]
        if partial is not None and self._side is not None:
            self._keep_partial(i, partial)
        if plan.save == "merge":
            bw.write_payload(self._merged, start, encoded)
        elif plan.save == "append":
            if str(i) in chunks:
                del chunks[str(i)]
            grp = bw.new_group(chunks, i, stop - start)
            bw.write_payload(grp, 0, encoded)
            bw.write_small(grp, plan.positions[start:stop], plan.indices[start:stop])
            grp.attrs[COMPLETE_ATTR] = 1
            self._file.flush()
        else:
            chunks[str(i)] = h5py.ExternalLink(bw.part_path(i).name, "/")
            self.parts[i] = encoded

    def _keep_partial(self, i: int, partial: Partial) -> None:
        side = self._side
        if str(i) in side:
            del side[str(i)]
        grp = side.create_group(str(i))
        for j, arr in enumerate(partial):
            if arr is not None:
                grp.create_dataset(str(j), data=arr)
        grp.attrs["n"] = len(partial)
        grp.attrs[COMPLETE_ATTR] = 1
        side.flush()
        self.partials[i] = partial

    # -- finish
    def commit(self, meta: dict[str, Any] | None = None, weights: np.ndarray | None = None,
               info: dict[str, Any] | None = None) -> Path:
        """Finish: replace ``meta``, ``info`` (the eight ptypy keys; documentation) and the shared 2-D
        ``weights`` (H, W) when given, drop the resume markers, rename everything into place."""
        f, bw, plan = self._file, self.writer, self.plan
        if meta is not None or info is not None:
            bw.meta = meta if meta is not None else bw.meta
            bw.info = info if info is not None else bw.info
            bw.write_meta_info(f)
        if weights is not None and not np.array_equal(weights, bw.weights2d):
            bw.set_weights2d(weights)
            self._rewrite_weights()
        if plan.save == "append":
            chunks = f["chunks"]
            for name in chunks:
                if COMPLETE_ATTR in chunks[name].attrs:
                    del chunks[name].attrs[COMPLETE_ATTR]
            if FINGERPRINT_ATTR in f.attrs:
                del f.attrs[FINGERPRINT_ATTR]
        self._close()
        side = partials_name(self.path)
        files = [p for p in self._files if p != side]
        finalize(bw, [p for p in files if p.exists()], self.overwrite,
                 len(plan.ranges) if plan.save == "link" else None)
        remove(side)
        self._files = []
        return self.path

    def _rewrite_weights(self) -> None:
        plan, bw, chunks = self.plan, self.writer, self._file["chunks"]
        if plan.save == "merge":
            bw.write_weights2d(chunks["0"]["weights"], 0, plan.shape[0])
            return
        for i, (start, stop) in enumerate(plan.ranges):
            if plan.save == "append":
                bw.write_weights2d(chunks[str(i)]["weights"], 0, stop - start)
            else:
                with h5py.File(tmp_name(bw.part_path(i)), "r+") as part:
                    bw.write_weights2d(part["weights"], 0, stop - start)

    def abort(self, keep: bool = False) -> Path | None:
        """Remove every file written; ``keep`` (an ``append`` run): keep the ``.incomplete`` master
        (and the partials) for ``resume``. Returns the kept master or ``None``."""
        self._close()
        kept = self.master if keep and self.plan.save == "append" and self.master.exists() else None
        for p in set(self._files) | {partials_name(self.path)}:
            if kept is None or p not in (kept, partials_name(self.path)):
                remove(p)
        self._files = []
        return kept

    def _close(self) -> None:
        for f in (self._file, self._side):
            if f is not None:
                try:
                    f.close()
                except Exception:  # noqa: BLE001 - closing after an HDF5 error: nothing more to save
                    pass
        self._file = self._side = self._merged = None
