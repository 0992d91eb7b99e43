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

    return (
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"dask {dask.__version__}, h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})"
    )


def peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
