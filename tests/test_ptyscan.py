"""``ptydask.ptyscan.PtyScan``: ptypy's PtyScan contract (spec: ptyscan-semantics.md §1-§5).

The reference cases were prepared by ptypy itself through a minimal PtyScan
subclass; the same subclass, written in ptypy style (only the import
changed), must reproduce them bit for bit through ptydask.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptydask.errors import OutputExistsError, ParameterError, ScanError
from ptydask.ptyscan import EOS, WAIT, PtydScan, PtyScan, ScanPtyScan

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "ptypy"
CASES = sorted(p for p in FIXTURES.glob("case_*.json") if not p.name.endswith(".recipe.json"))


# ----------------------------------------------------------------------------- a subclass written for ptypy


class GenericScan(PtyScan):
    """
    Reads frames, positions and a mask from one HDF5 file (ptypy style).

    Defaults:

    [name]
    default = GenericScan
    type = str

    [raw]
    default = None
    type = dict
    help = file, data, pos_slow, pos_fast, mask
    """

    def __init__(self, pars=None, **kwargs):
        p = self.DEFAULT.copy(99)
        p.update(pars)
        p.update(kwargs)
        super(GenericScan, self).__init__(p)
        self.calls = []

    def _file(self):
        return h5py.File(FIXTURES / self.info.raw["file"], "r")

    def load_positions(self):
        with self._file() as f:
            return np.stack([f[self.info.raw["pos_slow"]][()], f[self.info.raw["pos_fast"]][()]], axis=1)

    def load_weight(self):
        if self.info.raw.get("mask"):
            with self._file() as f:
                return f[self.info.raw["mask"]][()]

    def load(self, indices):
        self.calls.append(list(indices))
        raw, pos, weights = {}, {}, {}
        with self._file() as f:
            data = f[self.info.raw["data"]]
            for i in indices:
                raw[i] = data[i]
        return raw, pos, weights


def _reference(path: Path):
    with h5py.File(path, "r") as f:
        keys = sorted(f["chunks"], key=int)
        ref = {n: np.concatenate([f["chunks"][k][n][()] for k in keys]) for n in ("data", "weights", "positions")}
        meta = {k: f["meta"][k][()] for k in f["meta"]}
    return ref, meta


def _run(ps: PtyScan, frames: int) -> list:
    ps.initialize()
    out = []
    for _ in range(1000):
        msg = ps.auto(frames)
        if msg in (WAIT, EOS):
            return out + [msg]
        out.append(msg)
    raise AssertionError("no EOS")


def _case_pars(case: dict) -> dict:
    pars = {k: v for k, v in case["data"].items() if k not in ("save", "dfile")}
    for k in ("psize", "center", "orientation"):
        if isinstance(pars.get(k), list):
            pars[k] = tuple(pars[k])
    return pars


@pytest.mark.filterwarnings("ignore:shape. non-square")
@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_ptypy_style_subclass_reproduces_ptypy(case_path: Path, tmp_path: Path) -> None:
    if not case_path.exists():
        pytest.skip("fixtures not found")
    case = json.loads(case_path.read_text())
    pars = _case_pars(case)
    pars.update(raw=case["raw"], save="append", dfile=str(tmp_path / "out.ptyd"))
    ps = GenericScan(pars)
    msgs = _run(ps, case["frames_per_call"])
    assert msgs[-1] == EOS
    ref, meta = _reference(case_path.with_suffix(".ptyd"))
    pk = msgs[:-1]
    data = np.stack([it["data"] for m in pk for it in m["iterable"]])
    weights = np.stack([m["chunk"].weights[i] for m in pk for i in m["chunk"].indices_node])
    positions = np.concatenate([m["chunk"].positions for m in pk])
    assert data.dtype == ref["data"].dtype and weights.dtype == ref["weights"].dtype
    np.testing.assert_array_equal(data, ref["data"])
    np.testing.assert_array_equal(weights, ref["weights"])
    np.testing.assert_array_equal(positions, ref["positions"])
    common = pk[0]["common"]
    np.testing.assert_allclose(common.center, meta["center"])
    np.testing.assert_array_equal(common.shape, meta["shape"])
    np.testing.assert_allclose(common.psize, meta["psize"])
    assert common.num_frames == meta["num_frames"] and common.energy == meta["energy"]
    assert all(isinstance(c, list) for c in ps.calls)
    # the saved file holds the same frames (to_ptyd semantics for save/dfile)
    saved, saved_meta = _reference(tmp_path / "out.ptyd")
    np.testing.assert_array_equal(saved["data"], ref["data"])
    np.testing.assert_array_equal(saved["weights"], ref["weights"])
    assert sorted(saved_meta) == sorted(meta)


# ----------------------------------------------------------------------------- WAIT / EOS (spec §3)


class ArrayScan(PtyScan):
    """A small in-memory scan; records every load() call."""

    def __init__(self, frames, positions=None, pars=None, **kw):
        self.frames, self.positions, self.calls = frames, positions, []
        super().__init__(pars, **kw)

    def load_positions(self):
        return self.positions

    def load(self, indices):
        self.calls.append(list(indices))
        return {i: self.frames[i] for i in indices}, {}, {}


def _frames(n=6, h=8, w=8, seed=1):
    return np.random.default_rng(seed).poisson(20, (n, h, w)).astype(np.uint16)


def _pos(n):
    return np.stack([np.arange(n) * 1e-7, np.arange(n) * 2e-7], axis=1)


def test_auto_returns_remainder_then_eos() -> None:
    ps = ArrayScan(_frames(), _pos(6), shape=8)
    ps.initialize()
    first = ps.auto(3)
    second = ps.auto(100)
    assert first["chunk"].indices == [0, 1, 2] and second["chunk"].indices == [3, 4, 5]
    assert second["chunk"].num == 1 and ps.end_of_scan
    assert ps.auto(100) == EOS == "msgEOS"
    assert ps.auto(1) == EOS


def test_fewer_than_min_frames_waits_for_ever_unless_end() -> None:
    ps = ArrayScan(_frames(), _pos(6), shape=8, min_frames=4)
    ps.initialize()
    assert ps.auto(3) == WAIT == "msg1" and ps.auto(3) == WAIT
    assert ps.framestart == 0
    assert ps.auto(4)["chunk"].indices == [0, 1, 2, 3]
    assert ps.auto(3)["chunk"].indices == [4, 5]  # reaches the end: served although < min_frames
    assert ps.auto(3) == EOS


def test_package_shape_matches_ptypy() -> None:
    frames = _frames()
    ps = ArrayScan(frames, _pos(6), shape=8)
    ps.initialize()
    pk = ps.auto(10)
    assert set(pk) == {"common", "chunk", "iterable"}
    chunk = pk["chunk"]
    assert set(chunk) == {"indices", "indices_node", "num", "data", "weights", "positions"}
    assert chunk.indices == chunk.indices_node == list(range(6))
    assert chunk.positions.shape == (6, 2)
    np.testing.assert_array_equal(chunk.positions, _pos(6))
    for i, item in enumerate(pk["iterable"]):
        assert set(item) == {"index", "data", "position", "mask"}
        assert item["index"] == i and item["mask"].dtype == bool
        np.testing.assert_array_equal(item["data"], frames[i])
        np.testing.assert_array_equal(item["position"], _pos(6)[i])
    assert set(pk["common"]) == set(PtyScan.METAKEYS)
    assert pk["common"].shape.tolist() == [8, 8] and pk["common"].center.tolist() == [4.0, 4.0]


# ----------------------------------------------------------------------------- num_frames, positions, weights


def test_num_frames_reconciliation() -> None:
    frames = _frames(8)
    assert _served(ArrayScan(frames, _pos(8), shape=8)) == 8
    assert _served(ArrayScan(frames, _pos(8), shape=8, num_frames=5)) == 5
    assert _served(ArrayScan(frames, _pos(6), shape=8, num_frames=7)) == 6
    assert _served(ArrayScan(frames, None, shape=8, positions_theory=_pos(4))) == 4
    ps = ArrayScan(frames, None, shape=8)
    ps.initialize()
    with pytest.raises(ScanError, match="num_frames"):
        ps.auto(3)


def _served(ps: PtyScan) -> int:
    return sum(len(m["chunk"].indices) for m in _run(ps, 3)[:-1])


def test_positions_precedence() -> None:
    frames = _frames(4)

    class WithLoadPositions(ArrayScan):
        def load(self, indices):
            raw, _, w = super().load(indices)
            return raw, {i: np.array([9.0, float(i)]) for i in indices}, w

    theory = _pos(4) * 3
    pk = _run(WithLoadPositions(frames, _pos(4), shape=8, positions_theory=theory), 10)[0]
    np.testing.assert_array_equal(pk["chunk"].positions[:, 1], np.arange(4))  # load() wins
    pk = _run(ArrayScan(frames, _pos(4), shape=8, positions_theory=theory), 10)[0]
    np.testing.assert_array_equal(pk["chunk"].positions, theory)
    pk = _run(ArrayScan(frames, _pos(4), shape=8), 10)[0]
    np.testing.assert_array_equal(pk["chunk"].positions, _pos(4))

    class DefaultPositions(ArrayScan):
        load_positions = PtyScan.load_positions

    pk = _run(DefaultPositions(frames, None, shape=8, num_frames=4), 10)[0]  # ptypy's dummy positions [i, i+1]
    np.testing.assert_array_equal(pk["chunk"].positions, np.stack([np.arange(4), np.arange(4) + 1], axis=1))


def test_weights_fallback_raw_shape_and_per_frame() -> None:
    frames = _frames(3, 10, 10)
    # no weights at all: all-ones of the RAW shape, so padding gets weight 0 (ptypy defect §8.8 not copied)
    pk = _run(ArrayScan(frames, _pos(3), shape=12, center=(5, 5), auto_center=False), 10)[0]
    w = pk["chunk"].weights[0]
    assert w.shape == (12, 12) and w[0, 0] == 0 and w[5, 5] == 1

    class PerFrame(ArrayScan):
        def load(self, indices):
            raw, pos, _ = super().load(indices)
            return raw, pos, {i: (np.arange(100).reshape(10, 10) % (i + 2) > 0).astype(np.uint8) for i in indices}

        def load_weight(self):
            return np.zeros((10, 10))  # per-frame weights from load() win over it

    pk = _run(PerFrame(frames, _pos(3), shape=None), 10)[0]
    for i in range(3):
        np.testing.assert_array_equal(pk["chunk"].weights[i], (np.arange(100).reshape(10, 10) % (i + 2) > 0))
        np.testing.assert_array_equal(pk["iterable"][i]["mask"], pk["chunk"].weights[i] > 0)

    class Wrong(ArrayScan):
        def load_weight(self):
            return np.ones((4, 4))

    with pytest.raises(ScanError, match="load_weight"):
        _run(Wrong(frames, _pos(3), shape=None), 10)


def test_correct_hook_and_common() -> None:
    frames = _frames(3)

    class Corrected(ArrayScan):
        def load_common(self):
            return {"offset": 5}

        def correct(self, raw, weights, common):
            return {i: raw[i].astype(np.int64) - common.offset for i in raw}, weights

    ps = Corrected(frames, _pos(3), shape=None)
    pk = _run(ps, 10)[0]
    assert ps.common.offset == 5
    np.testing.assert_array_equal(pk["iterable"][1]["data"], frames[1].astype(np.int64) - 5)


# ----------------------------------------------------------------------------- centre freezing


def _peak_frames(n, centres, h=32, w=32):
    yy, xx = np.mgrid[:h, :w]
    return np.stack([100 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0) for cy, cx in centres[:n]])


def test_auto_centre_complete_scan_uses_all_frames() -> None:
    centres = [(14.0, 15.0)] * 4 + [(18.0, 19.0)] * 4
    frames = _peak_frames(8, centres)
    ps = ArrayScan(frames, _pos(8), shape=16, center=None)
    _run(ps, 4)
    np.testing.assert_allclose(ps.info.center, (16.0, 17.0), atol=1e-6)
    assert ps.info.center_rule == "auto over all frames"


def test_auto_centre_live_scan_freezes_first_chunk() -> None:
    centres = [(14.0, 15.0)] * 4 + [(18.0, 19.0)] * 4
    frames = _peak_frames(8, centres)

    class Live(ArrayScan):
        available = 4

        def check(self, frames=None, start=None):
            return max(0, min(frames, self.available - start)), self.available >= 8

    ps = Live(frames, _pos(8), shape=16, center=None)
    ps.initialize()
    first = ps.auto(8)
    assert first["chunk"].indices == [0, 1, 2, 3]
    assert ps.auto(8) == WAIT
    ps.available = 8
    second = ps.auto(8)
    np.testing.assert_allclose(ps.info.center, (14.0, 15.0), atol=1e-6)  # frozen from the first chunk
    assert ps.info.center_rule == "auto over the first chunk"
    # later frames are cut with the same window: their peak is off the ROI centre
    assert np.unravel_index(np.argmax(second["iterable"][0]["data"]), (16, 16)) == (12, 12)
    assert ps.auto(8) == EOS


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"rebin": 0}, "rebin"), ({"rebin": 33}, "rebin"), ({"orientation": 9}, "orientation"),
        ({"min_frames": 0}, "min_frames"), ({"save": "zip", "dfile": "x"}, "save"), ({"save": "link"}, "dfile"),
        ({"center": "fft"}, "center"), ({"center": (-1, 3)}, "center"), ({"auto_center": "yes"}, "auto_center"),
        ({"energy": -1}, "energy"), ({"psize": (1e-5, 0)}, "psize"), ({"shape": 0}, "shape"),
        ({"load_parallel": "everything"}, "load_parallel"), ({"num_frames": 0}, "num_frames"),
        ({"positions_theory": np.zeros((3, 3))}, "positions_theory"), ({"shpe": 3}, "shpe"),
    ],
)
def test_parameters_validated_up_front(kw, key) -> None:
    with pytest.raises(ParameterError, match=key):
        ArrayScan(_frames(), _pos(6), **kw)


def test_defaults_merge_and_constants() -> None:
    ps = ArrayScan(_frames(), _pos(6), {"shape": 8, "energy": 9.0}, energy=6.0)
    assert ps.info.shape == 8 and ps.info.energy == 6.0 and ps.info.distance == 7.19
    assert ps.info.psize == 172e-6 and ps.info.center == "fftshift" and ps.info.min_frames == 1
    assert PtyScan.WAIT == WAIT == "msg1" and PtyScan.EOS == EOS == "msgEOS"
    assert not ps.is_initialized and ps.calls == []  # construction reads nothing
    assert GenericScan.DEFAULT.name == "GenericScan" and GenericScan.DEFAULT.raw is None
    assert "raw" not in PtyScan.DEFAULT


def test_existing_output_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "o.ptyd"
    _run(ArrayScan(_frames(), _pos(6), shape=8, save="link", dfile=str(out)), 4)
    with pytest.raises(OutputExistsError):
        ArrayScan(_frames(), _pos(6), shape=8, save="link", dfile=str(out)).initialize()
    _run(ArrayScan(_frames(), _pos(6), shape=8, save="link", dfile=str(out), overwrite=True), 6)
    with h5py.File(out, "r") as f:
        assert sorted(f["chunks"]) == ["0"] and f["meta/num_frames"][()] == 6


# ----------------------------------------------------------------------------- Scan-backed and .ptyd readers


def test_scan_ptyscan_matches_prepare(tmp_path: Path) -> None:
    import ptydask
    from ptydask.steps import prepare

    frames = _peak_frames(7, [(14.0 + k, 15.0) for k in range(7)])
    scan = ptydask.from_arrays(frames, _pos(7), energy=6.2, distance=3.0, psize=5e-5, chunks=3)
    ps = ScanPtyScan(scan, shape=16, center=None, rebin=2)
    pk = [m for m in _run(ps, 3)[:-1]]
    ref = prepare(scan, shape=16, center=None, rebin=2)
    got = np.stack([it["data"] for m in pk for it in m["iterable"]])
    np.testing.assert_array_equal(got, ref["data"].values)
    assert pk[0]["common"].energy == 6.2 and pk[0]["common"].psize.tolist() == [1e-4, 1e-4]


def test_ptydscan_reads_ptypy_files() -> None:
    append = FIXTURES / "moonflower_append.ptyd"
    if not append.exists():
        pytest.skip("fixtures not found")
    full = _run(PtydScan(dfile=str(append)), 15)
    assert full[-1] == EOS and [len(m["chunk"].indices) for m in full[:-1]] == [15, 15, 15, 5]
    with h5py.File(append, "r") as f:
        stored = np.concatenate([f["chunks"][k]["data"][()] for k in sorted(f["chunks"], key=int)])
    np.testing.assert_array_equal(np.stack([it["data"] for m in full[:-1] for it in m["iterable"]]), stored)
    ps = PtydScan(dfile=str(FIXTURES / "moonflower_incomplete.ptyd"))
    msgs = _run(ps, 100)
    assert len(msgs[0]["chunk"].indices) == 40 and msgs[-1] == WAIT
    assert ps.auto(100) == WAIT and ps.auto(1) == WAIT and ps.meta.num_frames == 50
    merge = PtydScan(dfile=str(FIXTURES / "moonflower_merge.ptyd"))
    merge.initialize()
    assert merge.auto(10) == WAIT


def test_ptydscan_follows_growing_file(tmp_path: Path) -> None:
    from ptydask.ptyd.live_writer import LiveWriter

    frames = _frames(7)
    path = tmp_path / "grow.ptyd"
    writer = LiveWriter(path, "link")
    writer.start({"note": "test"})
    reader = PtydScan(dfile=str(path), retries=0)
    reader.initialize()
    assert reader.auto(5) == WAIT  # no meta, no chunk yet
    meta = {"version": 0.1, "num_frames": 7, "label": "g", "shape": (8, 8), "psize": (1e-5, 1e-5),
            "energy": 5.0, "center": (4.0, 4.0), "distance": 1.0}
    writer.write_chunk(frames[:3], np.ones((8, 8), bool), _pos(3), [0, 1, 2], meta)
    got = reader.auto(5)
    assert got["chunk"].indices == [0, 1, 2] and reader.auto(5) == WAIT
    writer.write_chunk(frames[3:], np.ones((8, 8), bool), _pos(7)[3:], [3, 4, 5, 6])
    got = reader.auto(5)
    assert got["chunk"].indices == [3, 4, 5, 6]
    np.testing.assert_array_equal(got["iterable"][0]["data"], frames[3])
    assert reader.auto(5) == EOS


# ----------------------------------------------------------------------------- MPI

MPI_WORKER = '''
import json, sys
import numpy as np
from mpi4py import MPI
from ptydask.ptyscan import PtyScan

comm = MPI.COMM_WORLD
mode, out = sys.argv[1], sys.argv[2]
load_parallel = None if mode == "none" else mode
n = 23
yy, xx = np.mgrid[:24, :24]
frames = np.stack([(50 * np.exp(-((yy - 11 - k % 3) ** 2 + (xx - 12) ** 2) / 5.0)).astype(np.float32) for k in range(n)])
positions = np.stack([np.arange(n) * 1e-7, -np.arange(n) * 1e-7], axis=1)


class Raw(PtyScan):
    def __init__(self, pars=None, **kwargs):
        super().__init__(pars, **kwargs)
        self.calls = []

    def load_positions(self):
        return positions

    def load(self, indices):
        self.calls.append(list(indices))
        return {i: frames[i] for i in indices}, {}, {}


def run(comm, **kw):
    ps = Raw(dict(shape=16, center=None, rebin=2, load_parallel=load_parallel, **kw), comm=comm)
    ps.initialize()
    packs = []
    while True:
        m = ps.auto(10)
        if m in (ps.WAIT, ps.EOS):
            break
        packs.append(m)
    return ps, packs


ps, packs = run(comm, save="link", dfile=out)
mine = {i: p["chunk"]["data"][i].tolist() for p in packs for i in p["chunk"]["indices_node"]}
report = {"nodes": [p["chunk"]["indices_node"] for p in packs], "calls": ps.calls,
          "center": list(ps.info.center), "meta_center": packs[0]["common"]["center"].tolist()}
gathered = comm.gather((report, mine), root=0)
if comm.rank == 0:
    serial, spacks = run(None)
    ref = {i: p["chunk"]["data"][i].tolist() for p in spacks for i in p["chunk"]["indices"]}
    merged = {}
    for _, m in gathered:
        merged.update(m)
    same = sorted(merged) == sorted(ref) and all(merged[i] == ref[i] for i in ref)
    print(json.dumps({"ranks": [r for r, _ in gathered], "same": same, "serial_center": list(serial.info.center)}))
'''


@pytest.mark.mpi
@pytest.mark.parametrize("ranks, mode", [(2, "data"), (3, "data"), (3, "none")])
def test_mpi_ptyscan(tmp_path: Path, ranks: int, mode: str) -> None:
    import os
    import subprocess
    import sys

    from ptydask.parallel.split import FrameSplitter

    mpiexec = Path(sys.executable).with_name("mpiexec")
    if not mpiexec.exists():
        pytest.skip("mpiexec not available")
    pytest.importorskip("mpi4py")
    script = tmp_path / "worker.py"
    script.write_text(MPI_WORKER)
    out = tmp_path / "mpi.ptyd"
    res = subprocess.run([str(mpiexec), "-n", str(ranks), sys.executable, str(script), mode, str(out)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["same"]
    splitter = FrameSplitter(ranks)
    expected = [splitter.split(list(range(s, min(23, s + 10)))) for s in (0, 10, 20)]
    for rank, rep in enumerate(result["ranks"]):
        assert rep["nodes"] == [parts[rank] for parts in expected]
        np.testing.assert_allclose(rep["center"], result["serial_center"])  # auto-centre over all frames, all ranks
        loaded = sorted(i for c in rep["calls"] for i in c)
        if mode == "data":  # every rank loads its own frames: its share of all frames for the centre, then its chunks
            share = FrameSplitter(ranks).split(list(range(23)))[rank]
            assert loaded == sorted(share + [i for parts in expected for i in parts[rank]])
        elif rank == 0:  # load_parallel=None: rank 0 loads everything and sends each rank its part
            assert loaded == sorted(list(range(23)) * 2)
        else:
            assert loaded == []
    import ptydask

    saved = ptydask.open_ptyd(out)
    assert saved.sizes["frame"] == 23 and saved.attrs["num_frames"] == 23


def test_default_hooks_like_ptypy() -> None:
    ps = PtyScan(num_frames=3, shape=6, center=(3, 3))
    msgs = _run(ps, 10)
    pk = msgs[0]
    np.testing.assert_array_equal(pk["iterable"][2]["data"], np.full((6, 6), 2.0))
    np.testing.assert_array_equal(pk["chunk"].positions, [[0, 1], [1, 2], [2, 3]])
    assert msgs[-1] == EOS


def test_hook_blocks_are_lazy_and_load_each_frame_once() -> None:
    frames = _peak_frames(7, [(14.0 + k % 3, 15.0) for k in range(7)])
    ps = ArrayScan(frames, _pos(7), shape=16, center=(15, 15), load_block=2)
    ps.initialize()
    raw, _ = ps._raw_part(list(range(7)), [list(range(7))])
    assert ps.calls == [[0, 1]]  # only the probe block: the other blocks are Dask tasks not yet run
    assert raw["data"].data.numblocks[0] == 4
    np.testing.assert_array_equal(raw["data"].values, frames)
    assert sorted(ps.calls) == [[0, 1], [2, 3], [4, 5], [6]]  # each block once (threads: any order)
    # auto-centre over a chunk: the centre pass and the blockwise pass share one load per frame
    ps = ArrayScan(frames, _pos(7), shape=16, center=None, load_block=3)
    pk = _run(ps, 7)[0]
    assert sorted(i for c in ps.calls for i in c) == list(range(7)) and len(ps.calls) == 3
    assert len(pk["chunk"].indices) == 7


def test_ptydscan_reprocess_on_request(tmp_path: Path) -> None:
    append = FIXTURES / "moonflower_append.ptyd"
    if not append.exists():
        pytest.skip("fixtures not found")
    import ptydask
    from ptydask.steps import prepare

    msgs = _run(PtydScan(dfile=str(append), reprocess=True, shape=32, center="fftshift", rebin=2), 50)
    stored = ptydask.open_ptyd(append)
    ref = prepare(stored, shape=32, center="fftshift", rebin=2)
    got = np.stack([it["data"] for it in msgs[0]["iterable"]])
    np.testing.assert_array_equal(got, ref["data"].values)
    assert msgs[0]["common"].shape.tolist() == [16, 16] and msgs[0]["common"].num_frames == 50
    plain = _run(PtydScan(dfile=str(append), shape=32, rebin=2), 50)[0]  # not asked: stored frames as stored
    assert plain["iterable"][0]["data"].shape == (64, 64)


PTYD_MPI_WORKER = '''
import json, sys
import numpy as np
from mpi4py import MPI
from ptydask.ptyscan import PtydScan
comm = MPI.COMM_WORLD
ps = PtydScan(dfile=sys.argv[1], comm=comm)
ps.initialize()
nodes, ok, last = [], True, None
while True:
    m = ps.auto(15)
    if m in (ps.WAIT, ps.EOS):
        last = m
        break
    nodes.append(m["chunk"]["indices_node"])
    ok &= sorted(m["chunk"]["data"]) == m["chunk"]["indices_node"]
res = comm.gather({"nodes": nodes, "ok": bool(ok), "last": last}, root=0)
if comm.rank == 0:
    print(json.dumps(res))
'''


@pytest.mark.mpi
def test_mpi_ptydscan_no_deadlock(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from ptydask.parallel.split import FrameSplitter

    append = FIXTURES / "moonflower_append.ptyd"
    mpiexec = Path(sys.executable).with_name("mpiexec")
    if not append.exists() or not mpiexec.exists():
        pytest.skip("fixtures or mpiexec not available")
    (tmp_path / "w.py").write_text(PTYD_MPI_WORKER)
    res = subprocess.run([str(mpiexec), "-n", "2", sys.executable, "w.py", str(append)], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    sp = FrameSplitter(2)
    expected = [sp.split(list(range(s, min(50, s + 15)))) for s in range(0, 50, 15)]
    for rank, rep in enumerate(result):
        assert rep["ok"] and rep["last"] == EOS
        assert rep["nodes"] == [e[rank] for e in expected]


def test_parse_defaults_reads_ptypy_docstrings() -> None:
    """ptypy's own PtyScan docstring gives ptydask's defaults; nested Hdf5Loader entries become dicts."""
    import ast
    import os

    from ptydask.ptyscan import PTYSCAN_DEFAULTS, parse_defaults

    src = Path(os.environ.get("PTYPY_SRC", "/nonexistent")) / "ptypy"
    if not (src / "core" / "data.py").exists():
        pytest.skip("ptypy source not available (set PTYPY_SRC)")

    def doc(path: Path, name: str) -> str:
        tree = ast.parse(path.read_text())
        return ast.get_docstring(next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name),
                                 clean=False)

    ptyscan = parse_defaults(doc(src / "core" / "data.py", "PtyScan"))
    assert ptyscan == {k: v for k, v in PTYSCAN_DEFAULTS.items() if k in ptyscan}
    assert set(PTYSCAN_DEFAULTS) - set(ptyscan) == {"overwrite", "rebin_mode", "load_block"}
    loader = parse_defaults(doc(src / "experiment" / "hdf5_loader.py", "Hdf5Loader"))
    assert loader["name"] == "Hdf5Loader" and loader["intensities"] == {"file": None, "key": None}
    assert loader["normalisation"]["sigma"] == 3 and loader["positions"]["bounding_box"]["slow_axis_bounds"] is None


def test_ptydscan_source_form_writes_a_new_ptyd(tmp_path: Path) -> None:
    """ptypy's ``PtydScan(pars, source=path)``: read ``source``, save to ``dfile``; given geometry re-prepares."""
    append = FIXTURES / "moonflower_append.ptyd"
    if not append.exists():
        pytest.skip("fixtures not found")
    import ptydask
    from ptydask.steps import prepare

    stored = ptydask.open_ptyd(append)
    copy = tmp_path / "copy.ptyd"
    copier = PtydScan({"dfile": str(copy), "save": "append"}, source=str(append))
    assert copier.info.reprocess is False  # nothing asked: the stored frames as stored
    msgs = _run(copier, 20)
    assert msgs[-1] == EOS
    again = ptydask.open_ptyd(copy)
    np.testing.assert_array_equal(again["data"].values, stored["data"].values)
    np.testing.assert_array_equal(again["positions"].values, stored["positions"].values)
    np.testing.assert_array_equal(ptydask.meta_of(again)["center"], ptydask.meta_of(stored)["center"])
    # geometry given: re-prepared from the stored frames (centre defaults to the source's meta)
    small = tmp_path / "small.ptyd"
    smaller = PtydScan({"dfile": str(small), "save": "append", "shape": 32, "rebin": 2}, source=str(append))
    assert smaller.info.reprocess is True
    _run(smaller, 100)
    m = ptydask.meta_of(stored)
    ref = prepare(stored, shape=32, center=tuple(m["center"]), auto_center=False, rebin=2)
    np.testing.assert_array_equal(ptydask.open_ptyd(small)["data"].values, ref["data"].values)
    # never writes into its source; a source without data is refused by name
    same = PtydScan({"dfile": str(append)}, source=str(append))
    assert same.info.dfile.endswith("moonflower_append_n.ptyd") and same.path == str(append)
    empty = tmp_path / "empty.ptyd"
    with h5py.File(empty, "w") as f:
        f.create_group("chunks")
    with pytest.raises(OSError, match="empty.ptyd.*no data"):
        PtydScan({"dfile": str(tmp_path / "x.ptyd")}, source=str(empty))


def test_defaults_sections_render_the_parameter_table() -> None:
    """PtyScan/Hdf5Loader carry ptypy-style ``Defaults:`` sections (for ptypy's parse_doc) with ptydask's defaults."""
    from ptydask.ptyscan import PTYSCAN_DEFAULTS, Hdf5Loader, parse_defaults
    from ptydask.params.registry import RECIPE_PARAMS as PARAMS

    d = parse_defaults(PtyScan.__doc__)
    assert {k: d[k] for k in PTYSCAN_DEFAULTS} == PTYSCAN_DEFAULTS and set(d) == set(PTYSCAN_DEFAULTS)
    h = parse_defaults(Hdf5Loader.__doc__)
    for p in PARAMS:
        if p.path in ("name", "source"):
            continue
        node = h
        for part in p.path.split("."):
            node = node[part]
        expected = p.default_for("Hdf5Loader")
        assert node == (list(expected) if isinstance(expected, tuple) else expected), p.path
    assert h["name"] == Hdf5Loader.DEFAULT.name == "Hdf5Loader" and Hdf5Loader.DEFAULT.intensities.file is None


def test_defaults_sections_parse_in_ptypys_descriptor() -> None:
    import os
    import subprocess
    import sys

    ptypy_src = os.environ.get("PTYPY_SRC", "")
    if not (ptypy_src and (Path(ptypy_src) / "ptypy").is_dir()):
        pytest.skip("ptypy source not available (set PTYPY_SRC)")

    code = ("from ptypy.utils.descriptor import EvalDescriptor\n"
            "from ptydask.ptyscan import PtyScan, Hdf5Loader, PTYSCAN_DEFAULTS, parse_defaults\n"
            "for cls in (PtyScan, Hdf5Loader):\n"
            "    root = EvalDescriptor('root')\n"
            "    root.parse_doc('scandata.X', True)(type('X', (object,), {'__doc__': cls.__doc__}))\n"
            "    got = root['scandata.X'].make_default(depth=99)\n"
            "    want = parse_defaults(cls.__doc__)\n"
            "    assert set(got) == set(want), set(got) ^ set(want)\n"
            "    for k, v in want.items():\n"
            "        assert (dict(got[k]) if hasattr(got[k], 'items') else got[k]) == v or not isinstance(v, dict) "
            "and list(got[k]) == v, (k, got[k], v)\n")
    env = dict(os.environ, PYTHONPATH=ptypy_src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
