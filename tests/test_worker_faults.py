"""Distributed faults (issue 9): a Dask worker process killed while ``to_ptyd`` runs is survived.

A LocalCluster with two worker processes (and nannies, which restart a dead worker). A worker is
killed with SIGKILL (a) by the block function itself on a chosen block — the first attempt only, a
marker file makes the retry succeed — and (b) from a monitor thread in the test process, which
waits until a block reports the pid of the worker computing it and kills that pid. The scheduler
reschedules the lost tasks; the written file must be identical (every stored HDF5 chunk byte,
positions, indices, meta) to an undisturbed run, for ``to_ptyd`` on the cluster (append, merge)
and for ``to_ptyd_distributed`` (link parts written by the workers).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import h5py
import numpy as np
import pytest

from ptydask import from_arrays, open_ptyd, to_ptyd

pytest.importorskip("distributed")
from conftest import local_client  # noqa: E402
cloudpickle = pytest.importorskip("cloudpickle")
from ptydask.parallel.distributed import to_ptyd_distributed  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test module

N, H, W, PER_BLOCK = 24, 32, 32, 3
NBLOCKS = N // PER_BLOCK


def _frames() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 4000, (N, H, W)).astype(np.uint16)


def _positions() -> np.ndarray:
    return np.random.default_rng(6).standard_normal((N, 2)) * 1e-6


def sabotage(block: np.ndarray, block_info=None, *, folder: str, victim: int, how: str) -> np.ndarray:
    """Runs on a worker. On block ``victim``'s first attempt: kill this worker process (``self``), or
    report the pid and wait to be killed from outside (``monitor``)."""
    i = block_info[0]["chunk-location"][0]
    marker = os.path.join(folder, f"attempt-{i}")
    if i == victim and not os.path.exists(marker):
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        if how == "self":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(30)  # the monitor thread kills us
    time.sleep(0.05)  # keep both workers busy, so that the victim holds other work too
    return block + np.uint16(0)


def _scan(folder: Path | None, victim: int = -1, how: str = "self"):
    frames = da.from_array(_frames(), chunks=(PER_BLOCK, H, W))
    if folder is not None:
        frames = frames.map_blocks(sabotage, dtype=frames.dtype, folder=str(folder), victim=victim, how=how)
    return from_arrays(frames, _positions(), energy=6.2, distance=3.0, psize=5.5e-5)


def _stored(path: Path) -> dict:
    """Every stored HDF5 chunk byte of data/weights, positions, indices and meta (following links)."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        for name in f["chunks"]:
            grp = f["chunks"][name]
            for ds in ("positions", "indices"):
                out[f"{name}/{ds}"] = grp[ds][()].tobytes()
            for ds in ("data", "weights"):
                d = grp[ds]
                out[f"{name}/{ds}"] = b"".join(d.id.read_direct_chunk((i, 0, 0))[1] for i in range(0, d.shape[0], d.chunks[0]))
        for key in f["meta"]:
            out[f"meta/{key}"] = np.asarray(f["meta"][key][()]).tobytes()
    return out


@pytest.fixture(scope="module")
def client():
    with local_client() as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    return {save: _stored(to_ptyd(_scan(None), d / f"{save}.ptyd", save=save, progress=False))
            for save in ("append", "merge", "link")}


def _worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


class Monitor(threading.Thread):
    """Waits for the victim block's marker and SIGKILLs the pid written in it."""

    def __init__(self, marker: Path):
        super().__init__(daemon=True)
        self.marker, self.killed, self.stop = marker, None, threading.Event()

    def run(self):
        while not self.stop.is_set():
            if self.marker.exists():
                pid = int(self.marker.read_text())
                os.kill(pid, signal.SIGKILL)
                self.killed = pid
                return
            time.sleep(0.01)


def _run(client, tmp_path, save, victim, how):
    folder = tmp_path / "markers"
    folder.mkdir()
    before = _worker_pids(client)
    monitor = Monitor(folder / f"attempt-{victim}") if how == "monitor" else None
    if monitor is not None:
        monitor.start()
    out = tmp_path / f"{save}.ptyd"
    t0 = time.perf_counter()
    try:
        scan = _scan(folder, victim, how)
        if save == "link":
            to_ptyd_distributed(scan, out, client)
        else:
            with client.as_current(), dask.config.set(scheduler="dask.distributed"):
                to_ptyd(scan, out, save=save, progress=False)
    finally:
        if monitor is not None:
            monitor.stop.set()
            monitor.join(5)
    elapsed = time.perf_counter() - t0
    killed_pid = int((folder / f"attempt-{victim}").read_text())
    assert killed_pid in before, "the victim was not one of the cluster's workers"
    deadline = time.time() + 20
    while killed_pid in _worker_pids(client) and time.time() < deadline:
        time.sleep(0.1)
    assert killed_pid not in _worker_pids(client), "the worker was not killed"
    if monitor is not None:
        assert monitor.killed == killed_pid
    client.wait_for_workers(2, timeout=30)  # the nanny restarted it: the next case starts with two workers
    return out, elapsed


CASES = [("append", 0, "self"), ("merge", NBLOCKS - 1, "monitor"), ("link", 2, "monitor")]


@pytest.mark.slow
@pytest.mark.parametrize("save, victim, how", CASES, ids=[f"{s}-block{v}-{h}" for s, v, h in CASES])
def test_a_killed_worker_is_survived_with_identical_output(client, reference, tmp_path, save, victim, how):
    out, elapsed = _run(client, tmp_path, save, victim, how)
    print(f"\n{save}: worker killed on block {victim} ({how}); write finished in {elapsed:.1f} s")
    assert _stored(out) == reference[save]
    scan = open_ptyd(out)
    np.testing.assert_array_equal(scan["data"].values, _frames())
    np.testing.assert_array_equal(scan["positions"].values, _positions())
    assert not list(tmp_path.glob("*.incomplete"))
    if save == "link":
        assert sorted(p.name for p in tmp_path.glob(f"{save}.ptyd*")) == \
            [f"{save}.ptyd"] + [f"{save}.ptyd.chunk{i:02d}" for i in range(NBLOCKS)]
