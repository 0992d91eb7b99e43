"""A ptypy-compatible ``PtyScan`` on top of ptydask's lazy pipeline (spec: ptyscan-semantics.md §1-§6).

Write a subclass exactly as for ptypy (``load_positions``, ``load_weight``,
``load_common``, ``load(indices=...)``, ``correct``, ``check``,
``post_initialize``), then ``initialize()`` and ``auto(frames)`` until
``EOS``. Internally each chunk becomes a lazy Scan whose Dask blocks call
``load(indices=...)`` and ``correct``; :func:`ptydask.steps.prepare` does the
preprocessing with the same parameters, :mod:`ptydask.packages` builds the
data packages and :class:`ptydask.ptyd.live_writer.LiveWriter` saves chunks
(``save``/``dfile``). :class:`ScanPtyScan` serves an existing Scan the same
way; :class:`PtydScan` follows a ``.ptyd`` file (also while it grows).

Deviations from ptypy (each deliberate, spec §8/§9): default weights have the
raw frame shape; an automatic centre covers all frames when the whole scan is
available at the first chunk (ptypy: first chunk only; identical when the first
chunk is the whole scan); ``auto_center=True`` overrides a given centre (the
documented meaning); parameters are validated at construction; an existing
``dfile`` is refused unless ``overwrite=True`` (ptypy renames it to ``.old``);
each MPI rank loads its own frames (``load_parallel`` 'data'/'all'), rank 0
scatters each rank's part otherwise.
"""

from __future__ import annotations

import threading
from itertools import count
from typing import Any, Mapping, Optional, Sequence

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..blocks import block_ranges
from ..errors import ParameterError, ScanError
from ..packages import AttrDict, make_package, own_blocks, rank_and_size
from ..parallel.split import FrameSplitter
from ..scan import META_KEYS, from_arrays, meta_of
from ..steps import prepare
from ..steps.params import AUTO, center_of, padding_of
from ..steps.pipeline import plan_prepare
from .params import EOS, PREPARE_OPTIONS, PTYSCAN_DEFAULTS, WAIT, Param, check_params, is_int, parse_defaults
from .ptypy_doc import defaults_section, with_defaults



# --------------------------------------------------------------------------- MPI helpers


def _bcast(comm: Any, obj: Any) -> Any:
    return obj if comm is None else comm.bcast(obj, root=0)


def _allgather(comm: Any, obj: Any) -> list[Any]:
    return [obj] if comm is None else comm.allgather(obj)


def _barrier(comm: Any) -> None:
    if comm is not None:
        comm.Barrier()


# --------------------------------------------------------------------------- hook loading


class _HookLoader:
    """Calls ``load(indices=...)`` and ``correct`` for one block of indices, serialised by a lock.

    Results are kept in a cache when ``keep`` (the block is needed by more than
    one computation), otherwise handed out once. Returns (frames (n, H, W),
    weights (n, H, W) or None, positions {index: (y, x)}).
    """

    _ids = count()

    def __init__(self, owner: "PtyScan", blocks: list[list[int]], keep: bool):
        self.owner, self.blocks, self.keep = owner, blocks, keep
        self.cache: dict[int, tuple] = {}
        self.lock = threading.Lock()
        self.token = f"ptyscan-load-{next(self._ids)}"

    def __dask_tokenize__(self) -> str:
        return self.token

    def __call__(self, b: int) -> tuple[np.ndarray, Optional[np.ndarray], dict]:
        with self.lock:
            if b in self.cache:
                return self.cache[b] if self.keep else self.cache.pop(b)
            out = self._load(self.blocks[b])
            if self.keep:
                self.cache[b] = out
            return out

    def probe(self, b: int) -> tuple[np.ndarray, Optional[np.ndarray], dict]:
        """Load block ``b`` now and keep it for the first computation that needs it."""
        with self.lock:
            if b not in self.cache:
                self.cache[b] = self._load(self.blocks[b])
            return self.cache[b]

    def _load(self, indices: list[int]) -> tuple[np.ndarray, Optional[np.ndarray], dict]:
        o = self.owner
        raw, pos, weights = o.load(indices=list(indices))
        raw, weights = o.correct(raw, weights if weights is not None else {}, o.common)
        try:
            frames = np.stack([np.asarray(raw[i]) for i in indices])
        except KeyError as exc:
            raise ScanError(f"load(indices=...): no frame returned for index {exc.args[0]}") from None
        except ValueError as exc:
            raise ScanError(f"load(indices=...): frames of different shapes ({exc}); all frames of a scan "
                            "must have the same shape") from None
        w = None
        if weights and all(np.size(weights.get(i, [])) > 0 for i in indices):
            w = np.stack([np.asarray(weights[i]) for i in indices])
            if w.shape != frames.shape:
                raise ScanError(f"load()/correct(): weights {w.shape} do not match the frames {frames.shape}")
        return frames, w, dict(pos or {})


def _get(t: tuple, i: int, dtype: Any = None) -> Any:
    v = t[i]
    return v if dtype is None or v is None else np.asarray(v, dtype=dtype)


# --------------------------------------------------------------------------- PtyScan


class PtyScan:
    """ptypy's ``PtyScan`` contract on ptydask's pipeline.

    ``PtyScan(pars=None, comm=None, prepare_options=None, **kwargs)``:
    parameters are the defaults (``DEFAULT``, including any ``Defaults:``
    docstring section of a subclass) updated by ``pars`` then ``kwargs``;
    ``comm`` is an optional mpi4py communicator; ``prepare_options`` are
    further :func:`ptydask.steps.prepare` keywords: those of the parameter registry's
    ``prepare`` vocabulary that are no PtyScan parameter (``PREPARE_OPTIONS``, e.g.
    ``padding``, the automatic masks, ``dark``/``flat``/``mask``/``normalisation`` and the photon
    step). The automatic centre is ``prepare``'s own. Construction reads no data.
    """

    WAIT = WAIT
    EOS = EOS
    DEFAULT: Param = Param(PTYSCAN_DEFAULTS)
    METAKEYS = META_KEYS

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        base = Param(getattr(super(cls, cls), "DEFAULT", PTYSCAN_DEFAULTS)).copy()
        own = cls.__dict__.get("DEFAULT")
        base.update(parse_defaults(cls.__doc__))
        if own is not None:
            base.update(own)
        cls.DEFAULT = base

    def __init__(self, pars: Optional[Mapping[str, Any]] = None, comm: Any = None, *,
                 prepare_options: Optional[Mapping[str, Any]] = None, **kwargs: Any):
        unknown = sorted(set(prepare_options or {}) - set(PREPARE_OPTIONS))
        if unknown:
            raise ParameterError(f"prepare_options: unknown key {unknown[0]!r}; allowed: {', '.join(PREPARE_OPTIONS)}")
        self.prepare_options = dict(prepare_options or {})
        p = self.DEFAULT.copy(99)
        p.update(pars or {})
        p.update(kwargs)
        check_params(p, self.DEFAULT)
        self.info = p
        self.comm = comm
        self.rank, self.size = rank_and_size(comm)
        if p.positions_theory is not None:
            p.positions_theory = np.asarray(p.positions_theory, dtype=np.float64)
            p.num_frames = len(p.positions_theory)
        self.num_frames = p.num_frames
        self.min_frames = p.min_frames * self.size
        self.meta = AttrDict({k: p.get(k) for k in META_KEYS})
        self.meta.psize = None if p.psize is None else pair(p.psize)
        self.common = AttrDict()
        self.is_initialized = False
        self.end_of_scan = False
        self.framestart = 0
        self.chunknum = 0
        self.has_weight2d = False
        self.weight2d: Optional[np.ndarray] = None
        self._splitter = FrameSplitter(self.size)
        self._frozen_center: Optional[tuple[float, float]] = None
        self._writer: Any = None
        self._writer_done = False
        self._common_pkg: Optional[AttrDict] = None

    # ------------------------------------------------------------------ hooks (override)
    def load_positions(self) -> Optional[np.ndarray]:
        """(N, 2) positions (y, x) in metres, or ``None``. Default: ptypy's dummy ``[i, i+1]`` if num_frames is set."""
        if self.num_frames is None:
            return None
        i = np.arange(self.num_frames)
        return np.stack([i, i + 1], axis=1)

    def load_weight(self) -> Optional[np.ndarray]:
        """2-D weights (raw frame shape) for all frames, nonzero = valid, or ``None`` (= all ones, raw shape)."""
        return None

    def load_common(self) -> dict:
        """Anything ``load``/``correct`` need for every chunk; stored as ``self.common``."""
        return {}

    def load(self, indices: Sequence[int]) -> tuple[dict, dict, dict]:
        """(frames, positions, weights): three dicts keyed by global index (positions (y, x) metres,
        weights nonzero = valid; both may be empty). Default, as ptypy: frame ``k`` = ``k`` everywhere,
        float64 of the ``shape`` parameter."""
        sh = self.info.shape
        if sh is None:
            raise ParameterError("shape: the default load() makes frames of this shape; set it or override load()")
        sh = (int(sh), int(sh)) if is_int(sh) else tuple(int(v) for v in sh)
        return {int(k): float(k) * np.ones(sh) for k in indices}, {}, {}

    def correct(self, raw: dict, weights: dict, common: Any) -> tuple[dict, dict]:
        """Per-chunk corrections of ``raw`` frames and ``weights`` (dicts by index); default: unchanged."""
        return raw, weights

    def check(self, frames: Optional[int] = None, start: Optional[int] = None) -> tuple[int, Optional[bool]]:
        """(frames accessible from ``start``, end of scan: True/False/None = can't say)."""
        if start is None:
            start = self.framestart
        if frames is None:
            frames = self.min_frames
        if self.num_frames is None:
            raise ScanError("num_frames: unknown; set num_frames, give positions, or override check() "
                            "to tell the end of the scan")
        return min(frames, self.num_frames - start), None

    def post_initialize(self) -> None:
        """Called at the end of ``initialize()``."""

    # ------------------------------------------------------------------ life cycle
    def initialize(self) -> None:
        """Load positions, weights and common data; reconcile ``num_frames``; prepare the output file."""
        p = self.info
        self._open_writer()
        everyone = p.load_parallel in ("common", "all")
        if everyone or self.rank == 0:
            positions, weight, common = self.load_positions(), self.load_weight(), self.load_common()
        else:
            positions = weight = common = None
        if not everyone:
            positions, weight, common = _bcast(self.comm, (positions, weight, common))
        self.common = AttrDict(common or {})
        if weight is not None and np.size(weight) > 0:
            self.weight2d = np.asarray(weight)
            self.has_weight2d = True
            p.weight2d = True
        self._reconcile(positions)
        self.meta.num_frames = self.num_frames
        if self._writer is not None:
            self._writer.start(self._info_doc())
        _barrier(self.comm)
        self.post_initialize()
        self.is_initialized = True

    def _open_writer(self) -> None:
        """The ``.ptyd`` writer of ``save``/``dfile`` (rank 0), if saving."""
        p = self.info
        if p.save is not None and self.rank == 0:
            from ..ptyd.live_writer import LiveWriter

            self._writer = LiveWriter(p.dfile, p.save, p.chunk_format, p.overwrite)

    def _reconcile(self, positions: Any) -> None:
        p = self.info
        pos = None if positions is None else np.asarray(positions)
        m = 0 if pos is None or pos.size == 0 else len(pos)
        if p.positions_theory is not None:
            self.num_frames = len(p.positions_theory)
        elif m > 0:
            p.positions_scan = pos
            if self.num_frames is None or self.num_frames > m:
                self.num_frames = m
        p.num_frames = self.num_frames

    def auto(self, frames: int) -> Any:
        """Prepare the next chunk of up to ``frames`` frames: a data package, ``WAIT`` or ``EOS``."""
        if not self.is_initialized:
            self.initialize()
        if not is_int(frames) or frames < 0:
            raise ParameterError(f"frames: expected an integer >= 0, got {frames!r}")
        checked = self.check(frames, self.framestart) if self.rank == 0 else None
        accessible, eos = _bcast(self.comm, checked)
        if eos is None:
            if self.num_frames is None:
                raise ScanError("Load routine incapable to determine the end-of-scan: check() returned None "
                                "and num_frames is unknown")
            eos = self.framestart + accessible >= self.num_frames
        self.end_of_scan = bool(eos)
        if accessible < self.min_frames and not eos:
            return WAIT
        if eos and accessible <= 0:
            if self._writer is not None and not self._writer_done:
                self._writer.finish(self._info_doc())  # ptypy rewrites info/ at the end of the scan
                self._writer_done = True
            return EOS
        package = self._chunk(self.framestart, int(accessible))
        self.framestart += int(accessible)
        self.chunknum += 1
        return package

    # ------------------------------------------------------------------ one chunk
    def _chunk(self, start: int, n: int) -> dict[str, Any]:
        indices = list(range(start, start + n))
        parts = self._splitter.split(indices)
        mine = parts[self.rank]
        raw, chunk_positions = self._raw_part(indices, parts)
        if self._frozen_center is None:
            self._freeze_center(raw, indices)
        prepared = None if raw is None else self._prepare_part(raw)
        self._update_meta(prepared)
        data_d: dict[int, np.ndarray] = {}
        weights_d: dict[int, np.ndarray] = {}
        if prepared is not None:
            self._fill(prepared, data_d, weights_d)
        package = make_package(self._common(), self.chunknum, indices, mine, data_d, weights_d, chunk_positions)
        if self.info.save is not None:
            self._save(indices, data_d, weights_d, chunk_positions)
        return package

    def _common(self) -> AttrDict:
        if self._common_pkg is None:
            self._common_pkg = self.meta
        return self._common_pkg

    def _fill(self, prepared: xr.Dataset, data_d: dict, weights_d: dict) -> None:
        data = prepared["data"].data
        node = [int(i) for i in prepared["indices"].values]
        w = prepared["weights"]
        arrays = [data] + ([w.data] if w.ndim == 3 else [])
        w2 = None if w.ndim == 3 else np.asarray(w.values)
        for k, blocks in own_blocks(arrays, block_ranges(data.chunks[0])):
            a = block_ranges(data.chunks[0])[k][0]
            for j in range(blocks[0].shape[0]):
                data_d[node[a + j]] = blocks[0][j]
                weights_d[node[a + j]] = blocks[1][j] if w2 is None else w2

    def _raw_part(self, indices: list[int], parts: list[list[int]], *,
                  centre_pass: bool = False) -> tuple[Optional[xr.Dataset], Any]:
        """This rank's raw frames of the chunk as a lazy Scan (``None`` if it has none), and the
        positions of every chunk index (``None`` if the scan has none), per spec §2.3.

        ``parts``: the chunk's indices per rank (contiguous, in rank order)."""
        mine = parts[self.rank]
        block = self.info.load_block or max(1, len(mine))
        blocks = [mine[s : s + block] for s in range(0, len(mine), block)]
        rank0_loads = self.info.load_parallel not in ("data", "all") and self.size > 1
        if rank0_loads:
            return self._raw_part_rank0(indices, parts)
        loader = _HookLoader(self, blocks, keep=False)
        probe = loader.probe(0) if blocks else None
        if probe is not None and probe[2] and len(blocks) > 1:
            loader.keep = True  # positions come from load(): every block is needed now and later
            for b in range(1, len(blocks)):
                loader.probe(b)
        if self._needs_chunk_center() and not centre_pass:
            loader.keep = True  # the centre pass and the blockwise pass both read these frames
        found = dict(probe[2]) if probe is not None else {}
        for b in range(1, len(blocks)):
            if b in loader.cache:
                found.update(loader.cache[b][2])
        chunk_positions = self._chunk_positions(indices, found)
        shape = _allgather(self.comm, None if probe is None else (probe[0].shape[1:], probe[0].dtype.str,
                                                                 None if probe[1] is None else probe[1].dtype.str))
        if probe is None:
            return None, chunk_positions
        dsh = tuple(int(v) for v in np.max([s[0] for s in shape if s is not None], axis=0))
        frames_parts, weight_parts = [], []
        for b, idx in enumerate(blocks):
            d = dask.delayed(loader, pure=True)(b, dask_key_name=f"{loader.token}-{b}")
            frames_parts.append(da.from_delayed(dask.delayed(_get)(d, 0, probe[0].dtype), (len(idx),) + dsh, probe[0].dtype))
            if probe[1] is not None:
                weight_parts.append(da.from_delayed(dask.delayed(_get)(d, 1, probe[1].dtype), (len(idx),) + dsh, probe[1].dtype))
        data = da.concatenate(frames_parts, axis=0)
        weights = da.concatenate(weight_parts, axis=0) if weight_parts else self._weights2d(dsh)
        return self._scan_of(data, weights, mine, chunk_positions, indices), chunk_positions

    def _raw_part_rank0(self, indices: list[int], parts: list[list[int]]) -> tuple[Optional[xr.Dataset], Any]:
        """``load_parallel`` 'common'/None: rank 0 loads the chunk and sends each rank its part."""
        mine = parts[self.rank]
        loaded = None
        if self.rank == 0:
            frames, w, pos = _HookLoader(self, [indices], keep=False)._load(indices)
            split, at = [], 0
            for r_idx in parts:
                split.append((frames[at : at + len(r_idx)], None if w is None else w[at : at + len(r_idx)]))
                at += len(r_idx)
            loaded = (split, pos, frames.shape[1:])
        split, pos, dsh = (None, None, None) if loaded is None else loaded
        pos, dsh = _bcast(self.comm, (pos, dsh))
        frames, w = self.comm.scatter(split, root=0)
        chunk_positions = self._chunk_positions(indices, pos)
        if not mine:
            return None, chunk_positions
        data = da.from_array(frames, chunks=(len(mine), -1, -1))
        weights = da.from_array(w, chunks=(len(mine), -1, -1)) if w is not None else self._weights2d(tuple(dsh))
        return self._scan_of(data, weights, mine, chunk_positions, indices), chunk_positions

    def _weights2d(self, dsh: tuple[int, ...]) -> np.ndarray:
        if self.weight2d is None:
            return np.ones(dsh, dtype=np.float64)
        if self.weight2d.shape != tuple(dsh):
            raise ScanError(f"load_weight(): returned weights of shape {self.weight2d.shape}, expected the raw frame "
                            f"shape {tuple(dsh)} (ptydask applies 2-D weights to raw frames, before the ROI cut)")
        return self.weight2d

    def _scan_of(self, data: da.Array, weights: Any, mine: list[int], chunk_positions: Any,
                 indices: list[int]) -> xr.Dataset:
        p = self.info
        pos = None
        if chunk_positions is not None:
            at = indices.index(mine[0])
            pos = np.asarray(chunk_positions, dtype=np.float64)[at : at + len(mine)]
        # energy/distance: a subclass may set self.meta (ptypy's recorded values), which then wins as in ptypy
        energy, distance = (p[k] if self.meta.get(k) is None else self.meta[k] for k in ("energy", "distance"))
        return from_arrays(data, pos, weights, energy=energy, distance=distance, psize=p.psize,
                           indices=np.asarray(mine, dtype=np.int64), label=p.label, version=float(p.version),
                           num_frames=self.num_frames if self.num_frames is not None else len(mine))

    def _chunk_positions(self, indices: list[int], found: Optional[dict]) -> Optional[np.ndarray]:
        """Positions of every chunk index: load() (gathered from all ranks) > positions_theory > load_positions()."""
        merged: dict = {}
        for part in _allgather(self.comm, found or {}) if self.info.load_parallel in ("data", "all") else [found or {}]:
            merged.update(part)
        if merged:
            try:
                return np.asarray([merged[i] for i in indices], dtype=np.float64)
            except KeyError as exc:
                raise ScanError(f"load(): returned positions, but none for index {exc.args[0]}") from None
        if self.info.positions_theory is not None:
            return np.asarray(self.info.positions_theory, dtype=np.float64)[indices]
        scan_pos = self.info.get("positions_scan")
        if scan_pos is not None and len(scan_pos):
            return np.asarray(scan_pos, dtype=np.float64)[indices]
        return None

    # ------------------------------------------------------------------ centre
    def _center_rule(self, dsh: tuple[int, int]) -> Any:
        """The fixed raw centre (row, col) px, or ``AUTO`` (spec §4.3, documented meaning)."""
        return center_of(self.info.center, self.info.auto_center, dsh)[0]

    def _needs_chunk_center(self) -> bool:
        p = self.info
        if self._frozen_center is not None:
            return False
        return p.auto_center is True or p.center is None and p.auto_center is not False

    def _freeze_center(self, raw: Optional[xr.Dataset], indices: list[int]) -> None:
        """Resolve the raw-frame centre at the first chunk and keep it for the whole scan."""
        shapes = _allgather(self.comm, None if raw is None else tuple(raw["data"].shape[1:]))
        top, bottom, left, right = padding_of(self.prepare_options.get("padding"))
        raw_shape = tuple(int(v) for v in np.max([s for s in shapes if s is not None], axis=0))
        dsh = (raw_shape[0] + top + bottom, raw_shape[1] + left + right)  # the frame the centre refers to
        rule = self._center_rule(dsh)
        if rule is not AUTO:
            self._frozen_center = tuple(float(v) for v in rule)
        else:
            whole = self.num_frames is not None and len(indices) < self.num_frames and self._complete()
            source = self._all_frames_part() if whole else raw
            self._frozen_center = self._auto_centre(source, raw_shape)
            self.info.center_rule = "auto over all frames" if whole else "auto over the first chunk"
        self.info.center = list(self._frozen_center)

    def _complete(self) -> bool:
        """True when every frame of the scan is available now (asked once, at the first chunk)."""
        got = self.check(self.num_frames, 0) if self.rank == 0 else None
        accessible, _ = _bcast(self.comm, got)
        return accessible >= self.num_frames

    def _all_frames_part(self) -> Optional[xr.Dataset]:
        """This rank's share of all frames, for a centre over the whole scan."""
        everything = list(range(self.num_frames))
        raw, _ = self._raw_part(everything, FrameSplitter(self.size).split(everything), centre_pass=True)
        return raw

    def _auto_centre(self, source: Optional[xr.Dataset], raw_shape: tuple[int, ...]) -> tuple[float, float]:
        """The automatic centre of ``prepare`` (its reductions: corrections, masks, the masked centre of
        mass over the frames of ``source``), combined over the ranks under MPI."""
        if source is None:  # no frame on this rank: it still joins the combining
            source = from_arrays(np.zeros((0, *raw_shape)), np.zeros((0, 2)), self._weights2d(tuple(raw_shape)),
                                 energy=1.0, distance=1.0, psize=1.0)
        combine = None if self.comm is None else rank_combine(self.comm)
        plan = plan_prepare(source, shape=None, center=None, auto_center=True, combine=combine,
                            **self._prepare_kwargs())
        measured, _ = plan.measure()
        return tuple(float(v) for v in plan.center(measured))  # type: ignore[return-value]

    # ------------------------------------------------------------------ prepare and save
    def _prepare_kwargs(self) -> dict[str, Any]:
        """``prepare`` keywords besides the geometry: no Scan corrections unless given, then the options."""
        kw: dict[str, Any] = dict(dark=False, flat=False, normalisation=False)
        kw.update(self.prepare_options)
        return kw

    def _prepare_part(self, raw: xr.Dataset) -> xr.Dataset:
        p = self.info
        return prepare(raw, shape=p.shape, center=self._frozen_center, auto_center=False,
                       orientation=p.orientation, rebin=p.rebin, rebin_mode=p.rebin_mode, **self._prepare_kwargs())

    def _update_meta(self, prepared: Optional[xr.Dataset]) -> None:
        found = None if prepared is None else meta_of(prepared)
        metas = [m for m in _allgather(self.comm, found) if m is not None]
        if not metas:
            return
        m = metas[0]
        for key in ("center", "shape", "psize"):
            self.meta[key] = m[key]
        for key in ("energy", "distance", "label", "version"):
            if m.get(key) is not None or key == "label":
                self.meta[key] = m[key]
        self.meta.num_frames = self.num_frames
        if prepared is not None:
            self.info.shape = [int(v) for v in prepared.attrs["info"].get("shape", self.meta["shape"])]

    def _save(self, indices: list[int], data_d: dict, weights_d: dict, positions: Any) -> None:
        parts = _gather(self.comm, (data_d, weights_d))
        if self.rank != 0:
            return
        data_all: dict = {}
        weights_all: dict = {}
        for d, w in parts:
            data_all.update(d)
            weights_all.update(w)
        data = np.stack([data_all[i] for i in indices])
        weights = np.stack([np.asarray(weights_all[i]) for i in indices])
        if positions is None:
            raise ScanError("positions: this scan has none (load(), positions_theory and load_positions() gave "
                            "nothing); a .ptyd needs (y, x) positions for every frame")
        self._writer.write_chunk(data, weights, positions, indices, meta=dict(self.meta))
        if self.chunknum == 0:
            self._writer.write_info(self._info_doc())

    def _info_doc(self) -> dict:
        doc = {k: v for k, v in self.info.items()}
        doc["ptydask_class"] = type(self).__name__
        return doc


#: ptypy's ``Defaults:`` section (for ``@defaults_tree.parse_doc`` on subclasses), from the parameter table.
PtyScan.__doc__ = with_defaults(PtyScan.__doc__, defaults_section("PtyScan", PTYSCAN_DEFAULTS, extra={
    "overwrite": (False, "bool", "Replace an existing dfile when saving (ptypy renames it to .old)"),
    "load_block": (None, "int, None", "Frames per load() call (default: the frames of a chunk)"),
}))


def pair(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    return np.repeat(a, 2) if a.size == 1 else a


def _gather(comm: Any, obj: Any) -> list[Any]:
    return [obj] if comm is None else comm.gather(obj, root=0)


def rank_combine(comm: Any) -> Any:
    """The ``combine`` hook of :func:`ptydask.steps.pipeline.plan_prepare` for a PtyScan chunk split over
    ``comm``'s ranks (contiguous frames in rank order): per-frame centres gathered in rank order, per-pixel
    maxima and sums reduced over the ranks."""

    def combine(values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        if "centres" in values:
            out["centres"] = np.concatenate([np.reshape(c, (-1, 2)) for c in comm.allgather(values["centres"])])
        for key, fold in (("max", np.maximum), ("sum", np.add), ("fraction", np.maximum)):
            if key in values:
                parts = comm.allgather(np.asarray(values[key], dtype=np.float64))
                total = parts[0].copy()
                for part in parts[1:]:
                    total = fold(total, part)
                out[key] = total
        return out

    return combine
