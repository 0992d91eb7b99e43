"""``to_ptyd`` and ``prepare`` on a distributed LocalCluster (2 worker processes): same results as threads,
part files written by the workers themselves, bounded client memory while streaming a large scan."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import h5py
import numpy as np
import psutil
import pytest

from ptydask import from_arrays, open_ptyd, to_ptyd
from ptydask.parallel.distributed import to_ptyd_distributed, write_link_parts
from ptydask.steps import prepare

sys.path.insert(0, str(Path(__file__).resolve().parent / "mpi"))
from scenario import PREPARE, make_raw, open_raw  # noqa: E402

pytest.importorskip("distributed")
from conftest import local_client  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with local_client(memory_limit="3GiB") as c:
        yield c


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("dist") / "raw.h5")


def _stored(path: Path) -> dict[str, bytes | np.ndarray]:
    """Every dataset of a .ptyd (following links) with the stored HDF5 chunk bytes of data/weights."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        for name in f["chunks"]:
            grp = f["chunks"][name]
            for ds in ("positions", "indices"):
                out[f"{name}/{ds}"] = grp[ds][()]
            for ds in ("data", "weights"):
                d = grp[ds]
                out[f"{name}/{ds}"] = b"".join(d.id.read_direct_chunk((i, 0, 0))[1] for i in range(d.shape[0]))
        for key in f["meta"]:
            out[f"meta/{key}"] = f["meta"][key][()]
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], bytes):
            assert a[key] == b[key], key
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_prepare_and_to_ptyd_on_the_cluster_equal_threads(client, raw, tmp_path):
    scan = open_raw(raw)
    with dask.config.set(scheduler="threads"):
        ref = prepare(scan, **PREPARE)
        ref_file = to_ptyd(ref, tmp_path / "threads.ptyd", progress=False)
    with client.as_current(), dask.config.set(scheduler="dask.distributed"):
        before = sum(client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count).values())
        got = prepare(scan, **PREPARE)
        got_file = to_ptyd(got, tmp_path / "cluster.ptyd", progress=False)
        after = sum(client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count).values())
    assert after > before  # the work really ran on the workers
    assert got.attrs["info"]["center"] == ref.attrs["info"]["center"]
    assert got.attrs["info"]["masks"] == ref.attrs["info"]["masks"]
    _assert_same(_stored(got_file), _stored(ref_file))


def test_link_parts_are_written_by_the_workers(client, raw, tmp_path):
    scan = prepare(open_raw(raw), **PREPARE)
    ref = to_ptyd(scan, tmp_path / "threads.ptyd", save="link", progress=False)
    out = write_link_parts(scan, tmp_path / "cluster.ptyd", client, ".chunk%02d", False, compression="gzip",
                           compression_level=1, shuffle=True, frames_per_hdf5_chunk=1, max_in_flight=None)
    worker_pids = set(client.run(os.getpid).values())
    assert len(out["parts"]) == 3
    assert {pid for _, _, pid in out["parts"]} <= worker_pids and os.getpid() not in worker_pids
    assert not list(tmp_path.glob("*.incomplete"))
    _assert_same(_stored(out["path"]), _stored(ref))
    np.testing.assert_array_equal(open_ptyd(out["path"])["data"].values, scan["data"].values)
    again = to_ptyd_distributed(scan, tmp_path / "cluster.ptyd", client, overwrite=True)
    _assert_same(_stored(again), _stored(ref))


def _boom(block):
    raise RuntimeError("injected failure on a worker")


def test_a_failing_block_leaves_no_file_that_looks_complete(client, raw, tmp_path):
    scan = open_raw(raw)
    bad = scan.copy()
    bad["data"] = (("frame", "y", "x"), scan["data"].data.map_blocks(_boom, dtype=scan["data"].dtype))
    with pytest.raises(RuntimeError, match="injected failure"):
        to_ptyd_distributed(bad, tmp_path / "bad.ptyd", client)
    assert [p.name for p in tmp_path.iterdir()] == []  # not even *.incomplete parts of blocks under way


def _fill(block: np.ndarray, block_info=None) -> np.ndarray:
    start = block_info[None]["array-location"][0][0]
    out = np.empty(block.shape, dtype=np.uint16)
    out[:] = (np.arange(block.shape[0]) + start)[:, None, None] % 65521
    return out


def test_append_streams_a_large_scan_with_bounded_client_memory(client, tmp_path):
    frames_per_block, blocks, h, w = 64, 24, 512, 512  # 24 blocks of 32 MiB = 768 MiB of uint16 frames
    n = frames_per_block * blocks
    lazy = da.map_blocks(_fill, da.empty((n, h, w), dtype=np.uint16, chunks=(frames_per_block, h, w)),
                         dtype=np.uint16)
    scan = from_arrays(lazy, np.zeros((n, 2)), np.ones((h, w), dtype=np.uint8), energy=8.0, distance=5.0, psize=75e-6)
    scan_bytes = n * h * w * 2
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        path = to_ptyd_distributed(scan, tmp_path / "big.ptyd", client, save="append", compression=None)
    finally:
        stop.set()
        watcher.join()
    grown = peak[0] - base
    assert grown < scan_bytes / 3, f"client grew by {grown / 2**20:.0f} MiB for a {scan_bytes / 2**20:.0f} MiB scan"
    with h5py.File(path, "r") as f:
        assert len(f["chunks"]) == blocks
        last = f["chunks"][str(blocks - 1)]["data"]
        assert int(last[-1, 0, 0]) == (n - 1) % 65521 and last.shape == (frames_per_block, h, w)
    print(f"client RSS grew by {grown / 2**20:.0f} MiB while streaming {scan_bytes / 2**20:.0f} MiB")


ONE_READ = dict(shape=16, center=None, hot_pixels=6.0, dead_pixels=True)


@pytest.mark.parametrize("save", ["append", "link"])
def test_one_read_on_the_cluster_equals_the_two_step_file(client, raw, tmp_path, save):
    """``prepare_to_ptyd`` on a distributed runner: the raw blocks are measured on the workers while they
    are written, and the file equals ``to_ptyd(prepare(...))`` on threads, stored byte for byte."""
    from ptydask import prepare_to_ptyd
    from ptydask.execution import DistributedRunner
    from ptydask.steps import speculative

    scan = open_raw(raw)
    ref = to_ptyd(prepare(scan, **ONE_READ), tmp_path / "threads.ptyd", save=save, progress=False,
                  runner="threads")
    assert speculative.speculate(scan, **ONE_READ) is not None  # a one-read case
    before = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    prepare_to_ptyd(scan, tmp_path / "cluster.ptyd", ONE_READ, save=save, progress=False,
                    runner=DistributedRunner(client))
    after = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    assert after > before
    _assert_same(_stored(tmp_path / "cluster.ptyd"), _stored(ref))
    assert not list(tmp_path.glob("*.incomplete"))


def test_the_runner_setting_wins_over_a_default_client(client, raw, tmp_path):
    """``ptydask.runner = "threads"``: a write runs in this process even while a default client exists."""
    scan = open_raw(raw)
    with client.as_current(), dask.config.set({"ptydask.runner": "threads"}):
        before = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
        to_ptyd(scan, tmp_path / "local.ptyd", progress=False)
        after = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    assert after == before
    ref = to_ptyd(scan, tmp_path / "ref.ptyd", progress=False, runner="threads")
    _assert_same(_stored(tmp_path / "local.ptyd"), _stored(ref))


def test_ctrl_c_on_the_cluster_keeps_incomplete_and_resume_finishes(client, raw, tmp_path, monkeypatch):
    """An interrupted append write on a distributed runner keeps its finished chunk groups; ``resume=True``
    on the cluster computes the others and writes the file the threads write."""
    from ptydask.execution import DistributedRunner
    from ptydask.ptyd.layout import tmp_name
    from ptydask.ptyd.sink import PtydSink

    scan = prepare(open_raw(raw), **PREPARE)
    ref = to_ptyd(scan, tmp_path / "threads.ptyd", progress=False, runner="threads")
    write_block, written = PtydSink.write_block, []

    def interrupt_at_the_second(sink, i, encoded, partial=None):
        if len(written) == 1:
            raise KeyboardInterrupt
        written.append(i)
        return write_block(sink, i, encoded, partial)

    monkeypatch.setattr(PtydSink, "write_block", interrupt_at_the_second)
    out = tmp_path / "cluster.ptyd"
    with pytest.warns(UserWarning, match="resume=True"), pytest.raises(KeyboardInterrupt):
        to_ptyd(scan, out, progress=False, runner=DistributedRunner(client))
    assert tmp_name(out).exists() and not out.exists()
    again: list[int] = []

    def counted(sink, i, encoded, partial=None):
        again.append(i)
        return write_block(sink, i, encoded, partial)

    monkeypatch.setattr(PtydSink, "write_block", counted)
    to_ptyd(scan, out, progress=False, resume=True, runner=DistributedRunner(client))
    assert sorted(again + written) == list(range(len(scan["data"].data.chunks[0])))  # each block once
    _assert_same(_stored(out), _stored(ref))
    assert not list(tmp_path.glob("*.incomplete"))
