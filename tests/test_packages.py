"""``ptydask.packages.packages``: ptypy data packages from any Scan, serial and under MPI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ptydask
from ptydask.errors import ParameterError
from ptydask.packages import AttrDict, packages
from ptydask.parallel.split import FrameSplitter

MPIEXEC = Path(sys.executable).with_name("mpiexec")


def _scan(n=11, chunks=4, per_frame_weights=False, positions=True):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 100, (n, 6, 6)).astype(np.int32)
    weights = (rng.random((n, 6, 6)) > 0.2) if per_frame_weights else None
    pos = rng.random((n, 2)) * 1e-6 if positions else None
    scan = ptydask.from_arrays(frames, pos, weights, energy=7.0, distance=2.0, psize=5e-5, chunks=chunks,
                               center=(3.0, 3.0))
    return scan, frames, weights, pos


def test_one_package_per_block_with_ptypy_layout() -> None:
    scan, frames, _, pos = _scan()
    pks = list(packages(scan))
    assert [p["chunk"].indices for p in pks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert [p["chunk"].num for p in pks] == [0, 1, 2]
    assert all(p["common"] is pks[0]["common"] for p in pks)  # ptypy hands out one meta object
    assert pks[0]["common"].energy == 7.0 and pks[0]["common"].center.tolist() == [3.0, 3.0]
    for p in pks:
        c = p["chunk"]
        assert c.indices_node == c.indices
        np.testing.assert_array_equal(c.positions, pos[c.indices])
        for item in p["iterable"]:
            i = item["index"]
            np.testing.assert_array_equal(item["data"], frames[i])
            np.testing.assert_array_equal(c.data[i], frames[i])
            assert item["mask"].all() and c.weights[i].shape == (6, 6)


def test_frames_per_package_and_per_frame_weights() -> None:
    scan, frames, weights, _ = _scan(per_frame_weights=True)
    pks = list(packages(scan, frames=5))
    assert [len(p["chunk"].indices) for p in pks] == [5, 5, 1]
    for p in pks:
        for item in p["iterable"]:
            np.testing.assert_array_equal(item["mask"], weights[item["index"]])
            np.testing.assert_array_equal(p["chunk"].weights[item["index"]], weights[item["index"]])
    with pytest.raises(ParameterError, match="frames"):
        list(packages(scan, frames=0))


def test_no_positions_gives_list_of_none() -> None:
    scan, *_ = _scan(n=3, positions=False)
    (pk,) = list(packages(scan, frames=10))
    assert pk["chunk"].positions == [None, None, None]
    assert [it["position"] for it in pk["iterable"]] == [None, None, None]


def test_attrdict() -> None:
    d = AttrDict(a=1)
    d.b = 2
    assert d["b"] == 2 and d.a == 1 and isinstance(d.copy(), AttrDict)
    with pytest.raises(AttributeError):
        d.missing


def test_only_needed_blocks_are_computed_serially() -> None:
    scan, *_ = _scan(n=12, chunks=4)
    seen = []

    def record(block, block_info=None):
        seen.append(block_info[0]["array-location"][0][0])
        return block

    data = scan["data"].data.map_blocks(record, dtype=scan["data"].dtype)
    scan = scan.assign(data=(("frame", "y", "x"), data))
    it = packages(scan)
    next(it)
    assert len(seen) <= 4  # bounded: a window of blocks, not the whole scan up front
    list(it)
    assert sorted(seen) == [0, 4, 8]


# ----------------------------------------------------------------------------- MPI

WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import dask.array as da
    from mpi4py import MPI
    import ptydask
    from ptydask.packages import packages

    comm = MPI.COMM_WORLD
    n, per_call = int(sys.argv[1]), int(sys.argv[2])
    frames = np.arange(n * 16, dtype=np.float64).reshape(n, 4, 4)
    computed = []

    def frame(block, block_info=None):
        computed.append(int(block_info[0]["array-location"][0][0]))
        return block

    lazy = da.from_array(frames, chunks=(1, 4, 4)).map_blocks(frame, dtype=np.float64)
    scan = ptydask.from_arrays(lazy, np.zeros((n, 2)), energy=1.0, distance=1.0, psize=1e-5)
    out = []
    for p in packages(scan, frames=per_call, comm=comm):
        c = p["chunk"]
        ok = all(np.array_equal(c.data[i], frames[i]) for i in c.indices_node)
        ok &= all((it["data"] is None) == (it["index"] not in c.indices_node) for it in p["iterable"])
        out.append({"indices": c.indices, "node": c.indices_node, "keys": sorted(c.data), "ok": bool(ok)})
    result = comm.gather({"packages": out, "computed": sorted(computed)}, root=0)
    if comm.rank == 0:
        print(json.dumps(result))
    """
)


def _mpirun(tmp_path: Path, script: str, ranks: int, *args: str) -> list:
    if not MPIEXEC.exists() or shutil.which(str(MPIEXEC)) is None:
        pytest.skip("mpiexec not available")
    pytest.importorskip("mpi4py")
    path = tmp_path / "worker.py"
    path.write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, str(path), *args], capture_output=True,
                         text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_mpi_split_matches_ptypy_and_ranks_compute_only_their_frames(tmp_path: Path, ranks: int) -> None:
    n, per_call = 23, 10
    result = _mpirun(tmp_path, WORKER, ranks, str(n), str(per_call))
    splitter = FrameSplitter(ranks)
    expected = [splitter.split(list(range(s, min(n, s + per_call)))) for s in range(0, n, per_call)]
    union = set()
    for rank, got in enumerate(result):
        nodes = [p["node"] for p in got["packages"]]
        assert nodes == [parts[rank] for parts in expected]
        assert all(p["ok"] and p["keys"] == p["node"] for p in got["packages"])
        own = [i for node in nodes for i in node]
        assert got["computed"] == own  # each rank computed exactly its own frames
        union |= set(own)
    assert union == set(range(n))
    if ranks == 3:  # the worked example of ptyscan-semantics.md §6.2
        assert [p["node"] for p in result[2]["packages"]] == [[6, 7, 8, 9], [17, 18, 19], [22]]
