"""Shared helpers: run a case in a child process and report its time and peak memory."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"


def run_child(module: str, *args: str, memory_cap_bytes: int | None = None) -> dict:
    """Run ``python -m benchmarks.<module> args`` in a fresh process; return its JSON report.

    The child measures its own wall time and peak RSS (``ru_maxrss``); with
    ``memory_cap_bytes`` it runs under an address-space limit (``RLIMIT_AS``).
    """
    cmd = [sys.executable, "-m", f"benchmarks.{module}", *args]
    if memory_cap_bytes:
        cmd += ["--cap", str(memory_cap_bytes)]
    out = subprocess.run(cmd, cwd=HERE.parent, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    import dask
    import h5py
    import numpy

    import os

    cpu, mem = "", ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        mem = f", {int(open('/proc/meminfo').readline().split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    extra = ""
    for name in ("hdf5plugin", "distributed", "mpi4py"):
        try:
            extra += f", {name} {__import__(name).__version__}"
        except Exception:  # noqa: BLE001 - optional
            pass
    return (
        f"{platform.node()}: {os.cpu_count()} cores{' (' + cpu + ')' if cpu else ''}{mem}, Python "
        f"{platform.python_version()}, numpy {numpy.__version__}, dask {dask.__version__}, h5py {h5py.__version__} "
        f"(HDF5 {h5py.version.hdf5_version}){extra}"
    )


def peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
