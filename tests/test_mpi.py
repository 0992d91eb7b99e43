"""MPI: ptypy's frame split over Dask blocks, own-frame reads, combined global quantities, parallel .ptyd writes.

The MPI part runs ``tests/mpi/worker.py`` under ``mpiexec -n 2`` and ``-n 3`` (a subprocess with a
timeout: a deadlock in any ``load_parallel`` mode or failure scenario fails the test); everything it
saved is compared here with the serial ptydask on the same raw file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptydask import open_ptyd, to_ptyd
from ptydask.parallel.mpi import FrameSubset, ParallelReadWarning, from_array_source, ordered, own_frames
from ptydask.parallel.plan import frames_of, plan_pieces
from ptydask.parallel.split import FrameSplitter
from ptydask.steps import prepare

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "mpi"))
from scenario import PREPARE, make_raw, open_raw, tiny_scan  # noqa: E402

MODES = ("data", "all", "common", "None")
pytestmark = pytest.mark.mpi


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


# --------------------------------------------------------------------------- no MPI needed


def test_pieces_follow_ptypy_split_of_the_spec_examples():
    pieces = plan_pieces([10, 10, 3], 3)
    got = [[list(range(p.start, p.stop)) for p in pieces if p.rank == r] for r in range(3)]
    assert got == [[[0, 1, 2], [10, 11, 12], [20]], [[3, 4, 5], [13, 14, 15, 16], [21]],
                   [[6, 7, 8, 9], [17, 18, 19], [22]]]
    # second sequence of the spec: chunks of 5, 5, 1, 6 frames; rank 2 not eligible for the 1-frame chunk
    pieces = plan_pieces([5, 5, 1, 6], 3)
    per_rank = [frames_of([p for p in pieces if p.rank == r]).tolist() for r in range(3)]
    assert per_rank == [[0, 5, 6, 11, 12], [1, 2, 7, 10, 13, 14], [3, 4, 8, 9, 15, 16]]
    assert [p.number for p in pieces] == list(range(len(pieces)))
    assert all(p.start - sum([5, 5, 1, 6][:p.block]) == p.offset for p in pieces)


@pytest.mark.parametrize("ranks", [1, 2, 3, 5])
def test_pieces_equal_frame_splitter_on_uneven_blocks(ranks):
    sizes = [7, 1, 0, 12, 3, 9]
    splitter, expected, start = FrameSplitter(ranks), [[] for _ in range(ranks)], 0
    for s in sizes:
        for r, part in enumerate(splitter.split(list(range(start, start + s)))):
            expected[r] += part
        start += s
    pieces = plan_pieces(sizes, ranks)
    assert [frames_of([p for p in pieces if p.rank == r]).tolist() for r in range(ranks)] == expected
    assert sorted(frames_of(pieces).tolist()) == list(range(sum(sizes)))


def test_own_frames_reads_only_the_pieces(tmp_path):
    scan = open_raw(make_raw(tmp_path / "raw.h5"))
    data = scan["data"].data
    source = from_array_source(data)
    assert source is not None
    log = []

    class Logged:
        shape, dtype = source.shape, source.dtype

        def __getitem__(self, key):
            log.append((key[0].start, key[0].stop))
            return source[key]

    pieces = [p for p in plan_pieces(data.chunks[0], 2) if p.rank == 1]
    own = own_frames(data, pieces)
    sub = FrameSubset(Logged(), [(p.start, p.stop) for p in pieces], data.shape[1:], data.dtype)
    np.testing.assert_array_equal(sub[0:sub.shape[0]], data.compute()[frames_of(pieces)])
    assert log == [(p.start, p.stop) for p in pieces]
    np.testing.assert_array_equal(own.compute(), data.compute()[frames_of(pieces)])
    assert own.chunks[0] == tuple(p.size for p in pieces)


def test_processed_frames_fall_back_to_slicing_with_a_warning(tmp_path):
    scan = open_raw(make_raw(tmp_path / "raw.h5"))
    processed = scan["data"].data + 1
    pieces = [p for p in plan_pieces(processed.chunks[0], 3) if p.rank == 2]
    with pytest.warns(ParallelReadWarning, match="whole source blocks"):
        own = own_frames(processed, pieces, rank=2)
    np.testing.assert_array_equal(own.compute(), processed.compute()[frames_of(pieces)])


def test_ordered_restores_the_order_and_refuses_strays():
    assert list(ordered(iter([(2, "c"), (0, "a"), (1, "b")]), range(3))) == [(0, "a"), (1, "b"), (2, "c")]
    with pytest.raises(RuntimeError, match="not expected"):
        list(ordered(iter([(5, "x")]), range(2)))


# --------------------------------------------------------------------------- under mpiexec


@pytest.fixture(scope="module", params=[2, 3], ids=["n2", "n3"])
def mpi_run(request, tmp_path_factory):
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec: pip install 'ptydask[mpi]' (mpi4py + the mpich wheel)")
    pytest.importorskip("mpi4py")
    ranks = request.param
    out = tmp_path_factory.mktemp(f"mpi{ranks}")
    raw = make_raw(out / "raw.h5")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    cmd = [mpiexec, "-n", str(ranks), sys.executable, str(HERE / "mpi" / "worker.py"), str(raw), str(out)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n {ranks} did not finish in 150 s (deadlock?):\n{exc.stderr}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks_out = [dict(np.load(out / f"rank{r}.npz")) for r in range(ranks)]
    errors = [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]
    return ranks, out, raw, ranks_out, errors


@pytest.fixture(scope="module")
def serial(mpi_run):
    _, out, raw, _, _ = mpi_run
    scan = open_raw(raw)
    prepared = prepare(scan, **PREPARE)
    return scan, scan["data"].values, prepared


@pytest.mark.parametrize("mode", MODES)
def test_each_rank_gets_ptypys_frames_and_the_serial_values(mpi_run, serial, mode):
    ranks, _, _, saved, _ = mpi_run
    scan, frames, _ = serial
    splitter, expected, start = FrameSplitter(ranks), [[] for _ in range(ranks)], 0
    for size in scan["data"].data.chunks[0]:
        for r, part in enumerate(splitter.split(list(range(start, start + size)))):
            expected[r] += part
        start += size
    union = []
    for r in range(ranks):
        idx = saved[r][f"index_{mode}"]
        assert idx.tolist() == expected[r]
        np.testing.assert_array_equal(saved[r][f"frames_{mode}"], frames[idx])
        np.testing.assert_array_equal(saved[r][f"positions_{mode}"], scan["positions"].values[idx])
        union += idx.tolist()
    assert sorted(union) == list(range(frames.shape[0]))  # whole scan, no duplicates


@pytest.mark.parametrize("mode", MODES)
def test_frames_read_per_rank(mpi_run, mode):
    """'data'/'all': each rank reads exactly its own frames; 'common'/None: rank 0 reads every frame once."""
    ranks, _, _, saved, _ = mpi_run
    for r in range(ranks):
        reads = sorted(map(tuple, saved[r][f"reads_{mode}"].tolist()))
        read_frames = [f for a, b in reads for f in range(a, b)]
        if mode in ("data", "all"):
            assert read_frames == sorted(saved[r][f"index_{mode}"].tolist())
        elif r == 0:
            assert read_frames == list(range(23))
        else:
            assert read_frames == []
    total = sum(sum(b - a for a, b in saved[r][f"reads_{mode}"].tolist()) for r in range(ranks))
    assert total == 23  # every frame read once in all


def test_prepare_mpi_equals_serial_prepare(mpi_run, serial):
    ranks, _, _, saved, _ = mpi_run
    _, _, prepared = serial
    want = prepared["data"].values
    for r in range(ranks):
        idx = saved[r]["index_data"]
        np.testing.assert_array_equal(saved[r]["prepared"], want[idx])
        np.testing.assert_array_equal(saved[r]["prepared_weights"], prepared["weights"].values)
        np.testing.assert_array_equal(saved[r]["center"], prepared.attrs["info"]["center"])
        counts = prepared.attrs["info"]["masks"]
        assert saved[r]["masks"].tolist() == [counts.get(k, -1) for k in ("saturated", "dead", "hot")]
    masks = prepared.attrs["info"]["masks"]
    assert masks["dead"] > 0 and masks["hot"] > 0  # the max and the sum reductions were really exercised


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("info"):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def _raw_chunks(path: Path) -> dict[str, list[bytes]]:
    out = {}
    with h5py.File(path, "r") as f:
        for name in f["chunks"]:
            for ds in ("data", "weights"):
                d = f["chunks"][name][ds]
                out[f"{name}/{ds}"] = [d.id.read_direct_chunk((i, 0, 0))[1] for i in range(d.shape[0])]
    return out


def test_append_file_equals_serial_byte_for_byte(mpi_run, serial, tmp_path):
    _, out, _, _, _ = mpi_run
    _, frames, prepared = serial
    ref = to_ptyd(prepared, tmp_path / "serial.ptyd", save="append")
    mine, theirs = _datasets(out / "append.ptyd"), _datasets(ref)
    assert sorted(mine) == sorted(theirs) and any(k.startswith("chunks/2/") for k in mine)
    for key in theirs:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
    assert _raw_chunks(out / "append.ptyd") == _raw_chunks(ref)
    raw = to_ptyd(open_raw(out / "raw.h5"), tmp_path / "raw.ptyd", save="append")
    assert _raw_chunks(out / "raw_none.ptyd") == _raw_chunks(raw)


def test_link_file_has_one_part_per_piece_with_the_serial_frames(mpi_run, serial, tmp_path):
    ranks, out, _, _, _ = mpi_run
    _, _, prepared = serial
    pieces = plan_pieces(prepared["data"].data.chunks[0], ranks)
    parts = sorted(p.name for p in out.glob("link.ptyd.chunk*"))
    assert parts == [f"link.ptyd.chunk{p.number:02d}" for p in pieces]
    back = open_ptyd(out / "link.ptyd")
    np.testing.assert_array_equal(back["data"].values, prepared["data"].values)
    np.testing.assert_array_equal(back["positions"].values, prepared["positions"].values)
    # exactly what the serial writer makes of the same frames in the same chunks
    rechunked = prepared.chunk({"frame": tuple(p.size for p in pieces)})
    ref = to_ptyd(rechunked, tmp_path / "link.ptyd", save="link")
    mine, theirs = _datasets(out / "link.ptyd"), _datasets(ref)
    assert sorted(mine) == sorted(theirs)
    for key in theirs:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
    assert _raw_chunks(out / "link.ptyd") == _raw_chunks(ref)


def test_a_failing_rank_fails_every_rank_and_leaves_nothing(mpi_run):
    ranks, out, _, _, errors = mpi_run
    for failing in (0, 1):
        for save in ("link", "append"):
            name = f"fail_{save}_rank{failing}"
            for r in range(ranks):
                msg = errors[r][name]
                assert msg is not None, (name, r)
                assert msg.startswith("RuntimeError" if r == failing else "ParallelWriteError"), msg
            assert not list(out.glob(f"{name}.ptyd*")), name


def test_ranks_without_frames_write_the_same_file(mpi_run, tmp_path):
    ranks, out, _, _, _ = mpi_run
    tiny = tiny_scan()
    assert [p.rank for p in plan_pieces([2], ranks)] == ([0, 1] if ranks == 2 else [1, 2])
    ref = to_ptyd(tiny, tmp_path / "tiny.ptyd", save="append", progress=False)
    for name in ("tiny_link.ptyd", "tiny_append.ptyd"):
        back = open_ptyd(out / name)
        np.testing.assert_array_equal(back["data"].values, tiny["data"].values)
        np.testing.assert_array_equal(back["positions"].values, tiny["positions"].values)
    assert _raw_chunks(out / "tiny_append.ptyd") == _raw_chunks(ref)


def test_importing_ptydask_does_not_import_mpi4py_or_jobqueue():
    code = ("import sys, ptydask, ptydask.parallel as p; p.split_scan; p.to_ptyd_mpi; p.connect; "
            "print('mpi4py' in sys.modules, 'dask_jobqueue' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr


@pytest.mark.parametrize("mode", MODES)
def test_small_lazy_variables_are_evaluated_where_load_parallel_says(mpi_run, mode):
    """'data'/None: rank 0 evaluates lazy small variables (e.g. 2-D weights) and broadcasts; 'all'/'common': every rank."""
    ranks, _, _, saved, _ = mpi_run
    evals = [int(saved[r][f"small_evals_{mode}"]) for r in range(ranks)]
    assert evals == ([1] + [0] * (ranks - 1) if mode in ("data", "None") else [1] * ranks)
    for r in range(ranks):
        np.testing.assert_array_equal(saved[r][f"small_weights_{mode}"], np.full((4, 4), 2.0))


@pytest.mark.parametrize("case", ["data_rank0", "all_rank1", "common_rank1", "None_rank0"])
def test_a_failed_read_in_split_scan_fails_every_rank_without_hanging(mpi_run, case):
    """Lazy small variables failing where they are evaluated, or rank 0 failing to read frames (None)."""
    ranks, _, _, _, errors = mpi_run
    failing = int(case[-1])
    for r in range(ranks):  # with 3 ranks, rank 0 holds no frame of the tiny scan and still learns of it
        msg = errors[r][f"split_{case}"]
        assert msg is not None, (case, r)
        assert msg.startswith("RuntimeError: injected" if r == failing else "SplitError"), msg
