"""``python -m benchmarks run [--quick]``: end to end, memory, reading and scaling, side by side.

Every measurement is one fresh child process (``benchmarks.child``), so peak RSS
is per case and no case inherits another's memory or caches (the page cache is
shared and warm: every raw file is read once before timing). Cases are
interleaved within each repeat (A B C, A B C, ...), so slow spells of the
machine hit all cases alike; medians and the min-max spread are reported.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import HERE, WORK
from .data import PARAMS, recipe, write_raw

PYTHON = sys.executable
PTYPY_SRC = Path(os.environ.get("PTYPY_SRC", "/work/ptypy-src"))

#: ``repeats``: runs of every fast case; ``slow_repeats``: runs of the minute-long cases (the numpy
#: loop, ptypy); ``memory``: scan lengths (frames) of the memory section (1x, 2x, 4x); ``cap_gib``:
#: address-space limit of the over-the-cap run (the full-length scan, uncompressed input).
CONFIGS = {
    "full": {"frames": 4096, "repeats": 3, "slow_repeats": 1, "memory": [1024, 2048, 4096], "memory_repeats": 1,
             "cap_gib": 1.5, "frames_per_call": 256},
    "quick": {"frames": 128, "repeats": 1, "slow_repeats": 1, "memory": [32, 64, 128], "memory_repeats": 1,
              "cap_gib": 1.5, "frames_per_call": 64, "ptypy_inputs": ["bslz4"]},
}


def _env(ptypy: bool = False, **extra: str) -> dict:
    env = dict(os.environ)
    paths = [str(HERE.parent)] + ([str(PTYPY_SRC)] if ptypy else []) + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def ptypy_available() -> str | None:
    """ptypy's version string when it can be imported (from ``PTYPY_SRC`` or installed), else ``None``."""
    out = subprocess.run([PYTHON, "-c", "import ptypy.core.data, ptypy; print(getattr(ptypy, 'version', '') or 'source')"],
                         env=_env(ptypy=True), capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None


def child(case: str, ptypy: bool = False, timeout: float = 3600, **args) -> dict:
    """Run one case in a fresh process; its JSON report plus ``wall`` (the whole process, s)."""
    os.sync()  # the previous case's output goes to disk now, not during this case
    t0 = time.perf_counter()
    out = subprocess.run([PYTHON, "-m", "benchmarks.child", case, json.dumps(args)], cwd=HERE.parent,
                         env=_env(ptypy=ptypy), capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:] or ["failed"], "wall": wall,
                "returncode": out.returncode}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def cli(recipe_path: Path) -> dict:
    """The whole ``ptydask prepare`` command, timed from outside (interpreter start included)."""
    exe = Path(PYTHON).with_name("ptydask")
    cmd = [str(exe)] if exe.exists() else [PYTHON, "-m", "ptydask.cli"]
    os.sync()
    t0 = time.perf_counter()
    out = subprocess.run(cmd + ["prepare", str(recipe_path), "--overwrite", "--no-progress"], env=_env(),
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:], "wall": wall}
    return {"seconds": wall, "wall": wall}


def mpi(recipe_path: Path, ranks: int = 2) -> dict:
    exe = Path(PYTHON).with_name("mpiexec")
    os.sync()
    t0 = time.perf_counter()
    out = subprocess.run([str(exe), "-n", str(ranks), PYTHON, "-m", "benchmarks.mpi_case", str(recipe_path)],
                         cwd=HERE.parent, env=_env(), capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-3:], "wall": wall}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def warm(path: Path) -> None:
    """Read a file once so that every timed case finds it in the page cache."""
    with open(path, "rb") as f:
        while f.read(64 * 2**20):
            pass


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def run(quick: bool = False) -> dict:
    cfg = CONFIGS["quick" if quick else "full"]
    n = cfg["frames"]
    work = WORK / ("quick" if quick else "full")
    data_dir = WORK / f"data{n}"
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    raw = {k: p.resolve() for k, p in write_raw(data_dir, n).items()}
    for p in raw.values():
        warm(p)
    ptypy_version = ptypy_available()
    m = PARAMS["shape"] // PARAMS["rebin"]
    out_bytes = n * m * m * 9  # float64 data + bool weights per frame: what the .ptyd holds
    results: dict = {"config": cfg, "ptypy": ptypy_version, "ptypy_src": str(PTYPY_SRC), "frames": n, "raw_bytes": {k: p.stat().st_size for k, p in raw.items()},
                     "frame_bytes": 512 * 512 * 2, "loads": []}

    def recipe_file(name: str, raw_path: Path, dfile: Path, **kw) -> Path:
        path = out / f"{name}.json"
        path.write_text(json.dumps(recipe(raw_path, dfile, **kw)))
        return path

    # ---------------------------------------------------------------- 1. end to end
    e2e: dict = {}
    for rep in range(cfg["repeats"]):
        for kind in ("plain", "bslz4"):
            results["loads"].append(load())
            cases = {
                "floor": lambda: child("floor", raw=str(raw[kind]), out=str(out / "floor.h5"), block=256, out_bytes=out_bytes),
                "ptydask": lambda: child("ptydask", recipe=str(recipe_file("e2e", raw[kind], out / f"pd_{kind}.ptyd"))),
                "ptydask_cli": lambda: cli(recipe_file("e2e_cli", raw[kind], out / "cli.ptyd")),
            }
            if rep < cfg["slow_repeats"]:
                cases["numpy"] = lambda: child("numpy", raw=str(raw[kind]), out=str(out / "numpy.h5"))
            if kind == "bslz4":
                cases["ptydask_h5py_decode"] = lambda: child(
                    "ptydask", recipe=str(recipe_file("e2e_nofast", raw[kind], out / "pd_nofast.ptyd")), fast_read=False)
            if ptypy_version and rep < cfg["slow_repeats"] and kind in cfg.get("ptypy_inputs", ("plain", "bslz4")):
                cases["ptypy"] = lambda: child("ptypy", ptypy=True, raw=str(raw[kind]), out=str(out / "ptypy.ptyd"),
                                               frames_per_call=cfg["frames_per_call"])
            for name, fn in cases.items():
                r = fn()
                e2e.setdefault(kind, {}).setdefault(name, []).append(r)
                print(f"[e2e {kind} rep {rep}] {name}: {r.get('seconds', r.get('error'))} (load {load()})", flush=True)
    results["e2e"] = e2e

    # ---------------------------------------------------------------- 2. memory
    mem: dict = {"rows": []}
    for rep in range(cfg["memory_repeats"]):
        for frames in cfg["memory"]:
            r = child("ptydask", recipe=str(recipe_file(f"mem{frames}", raw["plain"], out / "mem.ptyd", num_frames=frames)))
            r["frames_scan"] = frames
            mem["rows"].append(r)
            print(f"[memory] {frames} frames: {r.get('peak_rss_bytes', r.get('error'))}", flush=True)
    cap = int(cfg["cap_gib"] * 2**30)
    r = child("ptydask", cap=cap, recipe=str(recipe_file("cap", raw["plain"], out / "cap.ptyd")))
    r.update(cap_bytes=cap, scan_bytes=n * 512 * 512 * 2)
    mem["capped"] = r
    print(f"[memory] capped {cap}: {r}", flush=True)
    results["memory_e2e"] = mem

    # ---------------------------------------------------------------- 3. reading
    target = out / "pd_plain.ptyd"
    warm(target)
    reading: dict = {}
    ptypy_copy = out / "ptypy_copy.ptyd"
    if ptypy_version:
        results["ptypy_copy"] = child("write_ptypy_copy", ptypy=True, path=str(target), out=str(ptypy_copy),
                                      frames_per_call=cfg["frames_per_call"])
    for rep in range(cfg["repeats"]):
        cases = {"open_ptyd": lambda: child("read_ptydask", path=str(target)),
                 "h5py": lambda: child("read_h5py", path=str(target))}
        if ptypy_version and rep < cfg["slow_repeats"] and ptypy_copy.exists():
            cases["ptypy_on_ptydask_file"] = lambda: child("read_ptypy", ptypy=True, path=str(target),
                                                           frames_per_call=cfg["frames_per_call"])
            cases["ptypy_on_ptypy_file"] = lambda: child("read_ptypy", ptypy=True, path=str(ptypy_copy),
                                                         frames_per_call=cfg["frames_per_call"])
        for name, fn in cases.items():
            r = fn()
            reading.setdefault(name, []).append(r)
            print(f"[read rep {rep}] {name}: {r.get('seconds', r.get('error'))}", flush=True)
    results["reading"] = reading
    results["reading_bytes"] = {"ptydask": _bytes(target), "ptypy": _bytes(ptypy_copy)}

    # ---------------------------------------------------------------- 4. scaling (compressed input)
    scaling: dict = {}
    for rep in range(cfg["repeats"]):
        cases = {
            "threads": lambda: child("ptydask", recipe=str(recipe_file("sc_t", raw["bslz4"], out / "sc_t.ptyd"))),
            "processes": lambda: child("ptydask", recipe=str(recipe_file("sc_p", raw["bslz4"], out / "sc_p.ptyd")), cluster=2),
            "mpi": lambda: mpi(recipe_file("sc_m", raw["bslz4"], out / "sc_m.ptyd")),
        }
        for name, fn in cases.items():
            r = fn()
            scaling.setdefault(name, []).append(r)
            print(f"[scaling rep {rep}] {name}: {r.get('seconds', r.get('error'))}", flush=True)
    results["scaling"] = scaling
    results["loads"].append(load())
    shutil.rmtree(out, ignore_errors=True)
    return results


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) if path.exists() else 0
