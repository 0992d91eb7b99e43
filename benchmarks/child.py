"""One benchmark case in a fresh process: ``python -m benchmarks.child CASE JSON-ARGS``.

Prints one JSON line: ``seconds`` (the work only: imports and once-per-process set-up excluded,
for ptydask by a warm-up run on a tiny in-memory scan; the whole-command case times everything),
``peak_rss_bytes`` (``ru_maxrss`` of this process) and case-specific values.
Cases:

- ``floor``: plain h5py, the raw frames block by block (``read_direct`` into one
  reused buffer) and as many output bytes written as the prepared ``.ptyd`` holds;
  no processing. The I/O floor of the end-to-end preparation.
- ``ptydask``: the product, ``ptydask.recipe.run_recipe`` (open_frames -> prepare
  -> to_ptyd) on the benchmark recipe; ``cluster=N`` runs it on a distributed
  LocalCluster of N single-threaded worker processes.
- ``numpy``: what a user writes by hand: a per-frame h5py + numpy loop doing the
  same steps (pass 1: centres of mass, pixel sum/max for the masks; pass 2:
  correct, cut, flip, rebin, write frame by frame).
- ``ptypy``: ptypy's own ``PtyScan`` pipeline on the same input (see ``ptypy_driver``).
- ``read_ptydask`` / ``read_h5py``: sum of all frames of a ``.ptyd``, via ``open_ptyd``
  or via plain h5py chunk group by chunk group.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------- end to end


def floor(raw: str, out: str, block: int, out_bytes: int, num_frames: int | None = None) -> dict:
    import h5py

    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    t0 = time.perf_counter()
    with h5py.File(raw, "r") as f, h5py.File(out, "w") as g:
        ds = f["entry/data/data"]
        n = ds.shape[0] if num_frames is None else num_frames
        per_frame = out_bytes // n
        dst = g.create_dataset("bytes", shape=(out_bytes,), dtype=np.uint8)
        buf = np.empty((block,) + ds.shape[1:], dtype=ds.dtype)
        flat = buf.reshape(-1).view(np.uint8)
        pos = 0
        for s in range(0, n, block):
            e = min(n, s + block)
            ds.read_direct(buf, source_sel=np.s_[s:e], dest_sel=np.s_[0 : e - s])
            nbytes = per_frame * (e - s) if e < n else out_bytes - pos
            dst.write_direct(flat, source_sel=np.s_[0:nbytes], dest_sel=np.s_[pos : pos + nbytes])
            pos += nbytes
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames": n, "written": os.path.getsize(out)}


def _warm_up_ptydask() -> None:
    """Pay the once-per-process costs before the clock starts, as a session that has already
    prepared something would have paid them: dask imports ``distributed`` on its first graph,
    numba loads its compiled kernels on their first call, h5py opens its first file. A tiny
    in-memory scan goes through the same steps (same dtypes) and is written to a temporary file."""
    import tempfile

    import ptydask
    from ptydask.steps import prepare

    from .data import PARAMS

    rng = np.random.default_rng(0)
    frames = rng.poisson(50.0, (8, 32, 32)).astype(np.uint16)
    scan = ptydask.from_arrays(frames, rng.random((8, 2)) * 1e-6, energy=8.0, distance=5.0, psize=75e-6, chunks=4,
                               dark=np.ones((32, 32), np.float32), flat=np.ones((32, 32), np.float32))
    out = prepare(scan, shape=16, center=None, orientation=PARAMS["orientation"], rebin=PARAMS["rebin"],
                  hot_pixels=PARAMS["hot_pixels"], dead_pixels=PARAMS["dead_pixels"])
    with tempfile.TemporaryDirectory() as d:
        ptydask.to_ptyd(out, Path(d) / "warm.ptyd", compression=None, progress=False)


def ptydask(recipe: str, cluster: int = 0, fast_read: bool = True) -> dict:
    import dask

    dask.config.set({"ptydask.fast-read": bool(fast_read)})
    from ptydask.recipe import run_recipe

    _warm_up_ptydask()
    reductions = _time_reductions()

    client = None
    startup = 0.0
    if cluster:
        from distributed import Client, LocalCluster

        t0 = time.perf_counter()
        lc = LocalCluster(n_workers=cluster, threads_per_worker=1, processes=True, dashboard_address=None,
                          memory_limit=0)
        client = Client(lc)
        startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_recipe(recipe, overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    if client is not None:
        client.close()
        lc.close()
    return {"seconds": seconds, "frames": result.frames, "file_bytes": _ptyd_bytes(result.path),
            "cluster_startup": startup, "reductions_seconds": sum(reductions)}


def _time_reductions() -> list[float]:
    """Record the time ``run_recipe`` spends before the pass that writes the frames: ``prepare``'s
    global reductions when they take a pass of their own (``pipeline._global_pass``), or the
    first-block guess of the one-read write (``onepass.speculate``). The rest of a run is opening,
    the pass that cuts and writes the frames (measuring the reductions on the way) and finishing.
    Returns the list the durations are appended to."""
    from ptydask import onepass
    from ptydask.steps import pipeline

    spent: list[float] = []

    def timed(original):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - t0)
        return run

    pipeline._global_pass = timed(pipeline._global_pass)
    onepass.speculate = timed(onepass.speculate)
    return spent


def _ptyd_bytes(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def numpy_loop(raw: str, out: str, num_frames: int | None = None) -> dict:
    """The same preparation as a plain per-frame h5py/numpy loop (the benchmark's parameters)."""
    import h5py
    from scipy.ndimage import median_filter

    from .data import KEYS, PARAMS

    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    t0 = time.perf_counter()
    with h5py.File(raw, "r") as f:
        ds = f[KEYS["frames"]]
        n = ds.shape[0] if num_frames is None else num_frames
        h, w = ds.shape[1:]
        dark = f[KEYS["dark"]][()].astype(np.float64)
        flat = f[KEYS["flat"]][()].astype(np.float64)
        ok = np.isfinite(flat) & (flat != 0)
        rows, cols = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
        # pass 1: per-frame centres of mass, per-pixel sum and max
        total = np.zeros((h, w))
        peak = np.zeros((h, w), dtype=ds.dtype)
        centres = np.empty((n, 2))
        for i in range(n):
            frame = ds[i]
            c = np.zeros((h, w))
            np.divide(np.maximum(frame - dark, 0), flat, out=c, where=ok)
            s = c.sum()
            centres[i] = (c.sum(axis=1) @ rows / s, c.sum(axis=0) @ cols / s)
            total += frame
            np.maximum(peak, frame, out=peak)
        centre = np.round(centres.mean(axis=0)).astype(int)
        logs = np.log1p(total)
        excess = logs - median_filter(logs, size=3, mode="nearest")
        mad = 1.4826 * np.median(np.abs(excess - np.median(excess)))
        bad = (peak == 0) | (excess > PARAMS["hot_pixels"] * max(mad, 1 / np.sqrt(1 + np.median(total))))
        valid = ok & ~bad
        # pass 2: correct, cut the ROI, flip, rebin, write
        size, r = PARAMS["shape"], PARAMS["rebin"]
        r0, c0 = centre - size // 2
        m = size // r
        weights = valid[r0 : r0 + size, c0 : c0 + size][::-1, ::-1].reshape(m, r, m, r).all(axis=(1, 3))
        with h5py.File(out, "w") as g:
            data = g.create_dataset("data", shape=(n, m, m), dtype=np.float64)
            wds = g.create_dataset("weights", shape=(n, m, m), dtype=bool)
            for i in range(n):
                frame = ds[i, r0 : r0 + size, c0 : c0 + size]
                c = np.zeros((size, size))
                np.divide(np.maximum(frame - dark[r0 : r0 + size, c0 : c0 + size], 0),
                          flat[r0 : r0 + size, c0 : c0 + size], out=c, where=ok[r0 : r0 + size, c0 : c0 + size])
                data[i] = c[::-1, ::-1].reshape(m, r, m, r).mean(axis=(1, 3))
                wds[i] = weights
    return {"seconds": time.perf_counter() - t0, "frames": n, "bad_pixels": int(bad.sum())}


def ptypy(raw: str, out: str, frames_per_call: int, num_frames: int | None = None) -> dict:
    from .ptypy_driver import run_prepare

    t0 = time.perf_counter()
    n = run_prepare(raw, out, frames_per_call, num_frames)
    return {"seconds": time.perf_counter() - t0, "frames": n, "file_bytes": _ptyd_bytes(Path(out))}


# --------------------------------------------------------------------------- reading


def read_ptydask(path: str) -> dict:
    import tempfile

    import ptydask

    with tempfile.TemporaryDirectory() as d:  # once-per-process costs first, as in the ``ptydask`` case
        tiny = ptydask.from_arrays(np.ones((4, 8, 8)), np.zeros((4, 2)), energy=8.0, distance=5.0, psize=75e-6)
        ptydask.to_ptyd(tiny, Path(d) / "warm.ptyd", compression=None, progress=False)
        ptydask.open_ptyd(Path(d) / "warm.ptyd")["data"].data.sum().compute()
    t0 = time.perf_counter()
    total = float(ptydask.open_ptyd(path)["data"].data.sum().compute())
    return {"seconds": time.perf_counter() - t0, "sum": total}


def read_h5py(path: str) -> dict:
    import h5py

    t0 = time.perf_counter()
    total = 0.0
    with h5py.File(path, "r") as f:
        for name in sorted(f["chunks"], key=int):
            ds = f["chunks"][name]["data"]
            buf = np.empty(ds.shape, ds.dtype)
            ds.read_direct(buf)
            total += float(buf.sum())
    return {"seconds": time.perf_counter() - t0, "sum": total}


def read_ptypy(path: str, frames_per_call: int) -> dict:
    from .ptypy_driver import run_read

    t0 = time.perf_counter()
    n, total = run_read(path, frames_per_call)
    return {"seconds": time.perf_counter() - t0, "frames": n, "sum": total}


def write_ptypy_copy(path: str, out: str, frames_per_call: int) -> dict:
    from .ptypy_driver import run_copy

    t0 = time.perf_counter()
    n = run_copy(path, out, frames_per_call)
    return {"seconds": time.perf_counter() - t0, "frames": n}


CASES = {
    "floor": floor,
    "ptydask": ptydask,
    "numpy": numpy_loop,
    "ptypy": ptypy,
    "read_ptydask": read_ptydask,
    "read_h5py": read_h5py,
    "read_ptypy": read_ptypy,
    "write_ptypy_copy": write_ptypy_copy,
}


def main() -> None:
    case, args = sys.argv[1], json.loads(sys.argv[2])
    cap = args.pop("cap", None)
    if cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    result = CASES[case](**args)
    result["peak_rss_bytes"] = _peak()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
