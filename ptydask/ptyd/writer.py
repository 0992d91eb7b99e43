"""Write a Scan as a ptypy-compatible ``.ptyd`` file (spec: ptyd-format.md §1, §2, §5, §6).

Each Dask block of frames becomes one ``chunks/<n>`` group (``save="append"``),
one part file linked from the master (``"link"``), or a slice of the single
group ``chunks/0`` (``"merge"``). Blocks are computed a few at a time and
compressed in worker threads; the main thread only writes finished HDF5
chunks (``write_direct_chunk``), so memory stays bounded by a few blocks and
gzip runs in parallel. HDF5 chunks hold whole frames (one frame per chunk by
default), which is what makes ptypy's own per-frame reader fast.

Writes are atomic: everything goes to ``<name>.incomplete`` files that are
renamed into place only when the whole scan is written; an error or an
interruption leaves no file that looks complete.

``append`` runs are resumable (``resume=True``): the ``.incomplete`` master
carries a fingerprint of the plan, and each chunk group is marked complete
(and the file flushed) once it is fully written. A resumed run that finds the
same plan keeps the complete groups, deletes partial ones and computes only
the missing blocks; a damaged file or a different plan starts over (with a
warning). Markers and fingerprint are removed before the final rename.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import h5py
import numpy as np
import xarray as xr

from .. import __name__ as _pkg
from ..blocks import active_client, block_ranges, iter_blocks
from ..progress import job_bar as _progress_bar  # a module name tests replace (tests/test_interrupted.py)
from ..progress import one_report
from ..errors import GeometryError, OutputError, OutputExistsError, ParameterError, ScanError
from ..scan import meta_of, validate_scan
from .layout import BlockWriter, finalize, remove, tmp_name

__all__ = ["to_ptyd", "Mispredicted", "SAVE_MODES", "COMPLETE_ATTR", "FINGERPRINT_ATTR"]

SAVE_MODES = ("append", "link", "merge")
#: Root attribute of an ``.incomplete`` append file: the plan's fingerprint (JSON).
FINGERPRINT_ATTR = "ptydask_plan"
#: Attribute of a chunk group that is fully written (append mode, removed at the end).
COMPLETE_ATTR = "ptydask_complete"


class Mispredicted(Exception):
    """A write with ``_late`` abandoned: the frames written are not those of the final Scan (nothing is left)."""


@one_report()
def to_ptyd(
    scan: xr.Dataset,
    path: str | os.PathLike,
    save: str = "append",
    chunk_format: str = ".chunk%02d",
    overwrite: bool = False,
    *,
    compression: str | None = "gzip",
    compression_level: int = 1,
    shuffle: bool = True,
    frames_per_hdf5_chunk: int = 1,
    progress: bool | None = None,
    max_in_flight: int | None = None,
    resume: bool = False,
    _late: Callable[[], xr.Dataset | None] | None = None,
) -> Path:
    """Write ``scan`` to ``path`` as a ``.ptyd`` file that ptypy's ``PtydScan`` reads.

    Parameters
    ----------
    save : ``"append"`` (one ``chunks/<n>`` group per Dask block), ``"link"``
        (one part file per block, named ``<file name><chunk_format % n>`` beside
        the master and linked by bare name), or ``"merge"`` (a single chunk group).
    chunk_format : printf pattern of the part-file suffix (``link`` mode).
    overwrite : replace an existing output; otherwise an existing output is an error.
    compression : ``"gzip"`` (readable by any h5py/ptypy) or ``None``.
    compression_level : gzip level 0-9.   shuffle : byte-shuffle before gzip.
    frames_per_hdf5_chunk : frames per HDF5 chunk (whole frames, never split).
    progress : show a progress bar; ``None`` = only when stderr is a terminal.
    max_in_flight : blocks computed at once (default: CPU count).
        On a ``distributed`` client, blocks are computed by its workers; in
        ``link`` mode the workers also write the part files themselves (the
        output folder must be shared).
    resume : ``save="append"`` only: continue an interrupted write from
        ``<path>.incomplete`` when it holds the same plan (frames, blocks, dtypes,
        frame shape, options, meta, positions); else start over with a warning.
        An interrupted (Ctrl-C) append run keeps its ``.incomplete`` file for this.
    _late : (internal, ``ptydask.onepass``) called once all frames are written, before the
        output is renamed into place: returns the Scan whose ``meta``, ``info`` and shared 2-D
        weights replace those of ``scan`` (same frames), or ``None`` to abandon the write
        (raises :class:`Mispredicted`).

    Returns the path of the master file.
    """
    scan = validate_scan(scan)
    path = Path(path)
    options = _check_options(save, chunk_format, compression, compression_level, frames_per_hdf5_chunk)
    options["shuffle"] = bool(shuffle)
    if resume and save != "append":
        raise ParameterError(f"resume: only save='append' writes can be resumed, got save={save!r}")
    client = active_client()
    if _late is not None and (resume or client is not None):
        raise ParameterError("_late: not with resume=True or a distributed client")
    if save == "link" and client is not None:  # on a cluster, workers write their own part files
        from ..parallel.distributed import write_link_parts

        return write_link_parts(scan, Path(os.path.abspath(path)), client, chunk_format, overwrite,
                                compression=compression, compression_level=compression_level, shuffle=shuffle,
                                frames_per_hdf5_chunk=frames_per_hdf5_chunk, max_in_flight=max_in_flight)["path"]
    plan = _Plan(scan, path, save, chunk_format, options, late=_late)
    _check_output(path, overwrite)
    written: list[Path] = []
    try:
        plan.write(written, progress, max_in_flight, resume)
        finalize(plan.writer, written, overwrite, len(plan.ranges) if save == "link" else None)
        written.clear()
    except BaseException as exc:
        resumable = isinstance(exc, KeyboardInterrupt) and save == "append" and _late is None
        keep = tmp_name(path) if resumable else None
        for p in written:
            if p != keep:
                remove(p)
        if keep is not None and keep.exists():
            warnings.warn(f"interrupted: the finished chunk groups are kept in {keep}; "
                          "run again with resume=True (CLI: --resume) to complete it", stacklevel=2)
        raise
    return path


# --------------------------------------------------------------------------- checks


def _check_options(save, chunk_format, compression, level, k) -> dict[str, Any]:
    if save not in SAVE_MODES:
        raise ParameterError(f"save: expected one of {', '.join(map(repr, SAVE_MODES))}, got {save!r}")
    try:
        first = chunk_format % 0
    except (TypeError, ValueError):
        raise ParameterError(
            f"chunk_format: expected a printf pattern with one integer field such as '.chunk%02d', got {chunk_format!r}"
        ) from None
    if not isinstance(chunk_format, str) or "/" in first or os.sep in first or first == chunk_format % 1:
        raise ParameterError(f"chunk_format: {chunk_format!r} must give distinct bare file-name suffixes")
    if compression not in (None, "gzip"):
        raise ParameterError(
            f"compression: expected 'gzip' or None, got {compression!r} (files for ptypy must use filters built into h5py)"
        )
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ParameterError(f"compression_level: expected an integer 0-9, got {level!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"frames_per_hdf5_chunk: expected an integer >= 1, got {k!r}")
    return {"compression": compression, "level": int(level), "k": int(k)}


def _check_output(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give the path of the .ptyd file to write")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True (CLI: --overwrite) to replace it")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the output folder {parent}: {exc.strerror or exc}") from exc
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: the folder {parent} is not writable")


def _required_geometry(scan: xr.Dataset) -> None:
    for key, unit in (("energy", "keV"), ("distance", "m"), ("psize", "m")):
        if scan.attrs.get(key) is None:
            raise GeometryError(
                f"{key}: not set on the scan; ptypy needs it in meta/{key} ({unit}); "
                f"pass {key}= to from_arrays/open_frames or set scan.attrs[{key!r}]"
            )


# --------------------------------------------------------------------------- plan


class _Plan:
    """Everything the writer needs, checked before the first byte is written: the Dask arrays,
    positions and indices, the block ranges, and the :class:`BlockWriter` of the file layout."""

    def __init__(self, scan: xr.Dataset, path: Path, save: str, chunk_format: str, options: dict[str, Any],
                 late: Callable[[], xr.Dataset | None] | None = None):
        n, h, w = scan["data"].shape
        if n == 0:
            raise ScanError(f"{path}: the scan has no frames; an empty .ptyd cannot be read by ptypy")
        if "positions" not in scan:
            raise ScanError(
                "positions: the scan has none; a .ptyd needs (y, x) positions in metres for every frame "
                "(ptypy cannot reconstruct without them); pass positions= to from_arrays"
            )
        _required_geometry(scan)
        self.path, self.save, self.chunk_format, self.options, self.late = path, save, chunk_format, options, late
        self.shape = (n, h, w)
        data = scan["data"].data
        self.data = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=(n, h, w))
        self.data = self.data.rechunk((self.data.chunks[0], h, w))
        self.ranges = block_ranges(self.data.chunks[0])
        wts = scan["weights"] if "weights" in scan else None
        weights2d: np.ndarray | None = None
        self.weights3d: da.Array | None = None
        if wts is None:
            weights2d = np.ones((h, w), dtype=np.float64)
        elif wts.dims == ("y", "x"):
            weights2d = np.asarray(wts.values)
        else:
            wdata = wts.data if isinstance(wts.data, da.Array) else da.from_array(np.asarray(wts.data))
            self.weights3d = wdata.rechunk((self.data.chunks[0], h, w))
        self.positions = np.asarray(scan["positions"].values, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(self.positions).all(axis=1))
        if bad.size:
            raise ScanError(f"positions: {bad.size} row(s) are NaN or infinite, first at frame {bad[0]}")
        self.indices = (
            np.asarray(scan["indices"].values, dtype=np.int64) if "indices" in scan else np.arange(n, dtype=np.int64)
        )
        k = min(options["k"], n)
        compression, level, shuffle = options["compression"], options["level"], options["shuffle"]
        info = _documentable(
            {
                **(scan.attrs.get("info") or {}),
                "writer": f"{_pkg} {_version()}",
                "save": save,
                "chunk_format": chunk_format,
                "dfile": path.name,
                "compression": "none" if compression is None else f"{compression}:{level}",
                "shuffle": shuffle,
                "frames_per_hdf5_chunk": k,
                "propagation": scan.attrs.get("propagation", "farfield"),
            }
        )
        self.writer = BlockWriter(
            path=path, save=save, chunk_format=chunk_format, frame_shape=(h, w), dtype=self.data.dtype,
            weights_dtype=weights2d.dtype if weights2d is not None else self.weights3d.dtype, weights2d=weights2d,
            k=k, compression=compression, level=level, shuffle=shuffle, meta=meta_of(scan), info=info,
        )

    # -- writing
    def write(self, written: list[Path], progress: bool | None, max_in_flight: int | None, resume: bool = False) -> None:
        master_tmp = tmp_name(self.path)
        done = self._resumable(master_tmp) if resume else None
        if done is None and master_tmp.exists() and not resume:
            warnings.warn(f"removing {master_tmp}, left behind by an interrupted write "
                          "(resume=True, CLI --resume, would have continued it)", stacklevel=3)
        written.append(master_tmp)
        f = self._open(master_tmp, done)
        if f is None:  # could not clean up the partial groups: start over
            done = None
            f = self._open(master_tmp, None)
        bw = self.writer
        with f:
            chunks = f["chunks"]
            merged = None
            if self.save == "merge":
                merged = bw.new_group(chunks, 0, self.shape[0])
                bw.write_small(merged, self.positions, self.indices)
            arrays = [self.data] + ([self.weights3d] if self.weights3d is not None else [])
            todo = [i for i in range(len(self.ranges)) if not done or i not in done]
            frame_bytes = int(np.prod(self.shape[1:])) * np.dtype(self.data.dtype).itemsize
            bar = _progress_bar(self.shape[0], progress, f"writing {self.path.name}", frame_bytes=frame_bytes,
                                initial=sum(self.ranges[i][1] - self.ranges[i][0] for i in (done or ())))
            try:
                for i, payload in iter_blocks(arrays, blocks=todo, max_in_flight=max_in_flight, post=self._encode_block):
                    start, stop = self.ranges[i]
                    if self.save == "merge":
                        bw.write_payload(merged, start, payload)
                    elif self.save == "append":
                        grp = bw.new_group(chunks, i, stop - start)
                        bw.write_payload(grp, 0, payload)
                        bw.write_small(grp, self.positions[start:stop], self.indices[start:stop])
                        grp.attrs[COMPLETE_ATTR] = 1
                        f.flush()
                    else:
                        part_tmp = tmp_name(bw.part_path(i))
                        written.append(part_tmp)
                        bw.write_part(part_tmp, payload, self.positions[start:stop], self.indices[start:stop])
                        chunks[str(i)] = h5py.ExternalLink(bw.part_path(i).name, "/")
                    if bar is not None:
                        bar.update(stop - start)
            finally:
                if bar is not None:
                    bar.close()
            if self.late is not None:
                self._replace_late(f)
            if self.save == "append":
                for name in chunks:
                    if COMPLETE_ATTR in chunks[name].attrs:
                        del chunks[name].attrs[COMPLETE_ATTR]
                if FINGERPRINT_ATTR in f.attrs:
                    del f.attrs[FINGERPRINT_ATTR]

    def _replace_late(self, f: h5py.File) -> None:
        """After the frames: ``meta``, ``info`` and the shared weights of the Scan ``late()`` returns."""
        final = self.late()
        if final is None:
            raise Mispredicted(f"{self.path}: the frames written are not those of the final Scan")
        new = _Plan(validate_scan(final), self.path, self.save, self.chunk_format, self.options)
        old, bw = self.writer, new.writer
        same = (new.shape == self.shape and new.ranges == self.ranges and bw.dtype == old.dtype
                and bw.weights_dtype == old.weights_dtype and not bw.per_frame_weights and not old.per_frame_weights
                and np.array_equal(new.positions, self.positions) and np.array_equal(new.indices, self.indices))
        if not same:
            raise Mispredicted(f"{self.path}: the final Scan does not match the frames written")
        bw.write_meta_info(f)
        self.writer = bw
        if np.array_equal(bw.weights2d, old.weights2d):  # the weights written with the frames are final
            return
        chunks = f["chunks"]
        if self.save == "merge":
            bw.write_weights2d(chunks["0"]["weights"], 0, self.shape[0])
        for i, (start, stop) in enumerate(self.ranges):
            if self.save == "append":
                bw.write_weights2d(chunks[str(i)]["weights"], 0, stop - start)
            elif self.save == "link":
                with h5py.File(tmp_name(bw.part_path(i)), "r+") as part:
                    bw.write_weights2d(part["weights"], 0, stop - start)

    def _encode_block(self, i: int, blocks: tuple[np.ndarray, ...]) -> dict[str, Any]:
        """Compress block ``i`` (runs in a worker thread or process)."""
        start, stop = self.ranges[i]
        if self.save == "merge":
            return self.writer.encode_payload(blocks, start, self.shape[0])
        return self.writer.encode_payload(blocks, 0, stop - start)

    # -- starting and resuming
    def _open(self, master_tmp: Path, done: set[int] | None) -> h5py.File | None:
        """The master ``.incomplete`` file: a new skeleton, or (``done`` given) the old one with partial groups removed."""
        if done is not None:
            f = None
            try:
                f = h5py.File(master_tmp, "a")
                chunks = f["chunks"]
                for name in [n for n in chunks if not n.isdigit() or int(n) not in done]:
                    del chunks[name]
                return f
            except Exception as exc:  # noqa: BLE001 - any HDF5 damage means: start over
                if f is not None:
                    f.close()
                warnings.warn(f"cannot resume {master_tmp} ({exc}); starting over", stacklevel=4)
                return None
        try:
            f = h5py.File(master_tmp, "w")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create {master_tmp}: {exc}") from exc
        self.writer.write_skeleton(f)
        if self.save == "append" and self.late is None:
            f.attrs[FINGERPRINT_ATTR] = self.fingerprint()
        f.flush()
        return f

    def fingerprint(self) -> str:
        """JSON text identifying the plan: frames, blocks, dtypes, shapes, options, meta, info, positions."""
        bw = self.writer
        digest = hashlib.sha256()
        for arr in (self.positions, self.indices, bw.weights2d):
            if arr is not None:
                digest.update(str(arr.dtype).encode() + np.ascontiguousarray(arr).tobytes())
        plan = {
            "format": 1, "shape": self.shape, "blocks": self.ranges, "dtype": str(bw.dtype),
            "weights_dtype": str(bw.weights_dtype), "weights_per_frame": bw.per_frame_weights, "save": self.save,
            "compression": bw.compression, "level": bw.level, "shuffle": bw.shuffle, "k": bw.k,
            "meta": bw.meta, "info": bw.info, "arrays": digest.hexdigest(),
        }
        return json.dumps(plan, sort_keys=True, default=_jsonable)

    def _resumable(self, master_tmp: Path) -> set[int] | None:
        """Indices of the complete chunk groups of a matching ``.incomplete`` file, or ``None`` (start over)."""
        if not master_tmp.exists():
            warnings.warn(f"nothing to resume: {master_tmp} does not exist; writing from the beginning", stacklevel=4)
            return None
        try:
            with h5py.File(master_tmp, "r") as f:
                found = f.attrs.get(FINGERPRINT_ATTR)
                if isinstance(found, bytes):
                    found = found.decode()
                if found != self.fingerprint():
                    reason = "it holds no plan fingerprint" if found is None else "it was written for a different plan"
                    warnings.warn(f"cannot resume {master_tmp}: {reason}; starting over", stacklevel=4)
                    return None
                return {int(name) for name, grp in f["chunks"].items() if self._complete(name, grp)}
        except Exception as exc:  # noqa: BLE001 - a file damaged by the interruption: start over
            warnings.warn(f"cannot resume {master_tmp}: it cannot be read ({exc}); starting over", stacklevel=4)
            return None

    def _complete(self, name: str, grp: h5py.Group) -> bool:
        """True when chunk group ``name`` is marked complete and holds exactly its block's frames."""
        if grp.attrs.get(COMPLETE_ATTR) != 1 or not name.isdigit() or int(name) >= len(self.ranges):
            return False
        start, stop = self.ranges[int(name)]
        n, (_, h, w) = stop - start, self.shape
        hdf5_chunks = math.ceil(n / min(self.writer.k, n))
        for ds_name, dtype in (("data", self.writer.dtype), ("weights", self.writer.weights_dtype)):
            ds = grp[ds_name]
            if ds.shape != (n, h, w) or ds.dtype != dtype or ds.id.get_num_chunks() != hdf5_chunks:
                return False
        return bool(
            np.array_equal(grp["positions"][()], self.positions[start:stop])
            and np.array_equal(grp["indices"][()], self.indices[start:stop])
        )


def _documentable(value: Any) -> Any:
    """A copy of ``value`` made of what h5rw can store (other objects become their repr)."""
    if isinstance(value, dict):
        return {str(k): _documentable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_documentable(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind in "biuf" else repr(value.tolist())
    if value is None or isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _jsonable(value: Any) -> Any:
    """JSON stand-in for numpy values and other objects in a fingerprint."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return repr(value)


def _version() -> str:
    from .. import __version__

    return __version__
