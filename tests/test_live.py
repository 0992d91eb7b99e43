"""Live acquisition: preparing while the scan is recorded, and following the growing ``.ptyd``.

A writer process grows a raw HDF5 file (frames and positions); a preparer
process runs :class:`ptydask.live.LiveScan` with ``save='link'``; this process
follows the growing ``.ptyd`` with :class:`ptydask.ptyscan.PtydScan` (and,
when ``PTYPY_SRC`` is set, with ptypy's own ``PtydScan``). The result must
equal an offline preparation of the finished raw file.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import ptydask
from ptydask.live import GrowingHdf5, LiveScan, TiffFolder, follow
from ptydask.ptyd.live_writer import LiveWriter
from ptydask.ptyscan import EOS, WAIT, PtydScan
from ptydask.steps import prepare

N, H, W, BATCH = 24, 20, 20, 3
PTYPY_SRC = os.environ.get("PTYPY_SRC", "")

WRITER = textwrap.dedent(
    """
    import sys, time
    import h5py, numpy as np
    path, n, h, w, batch, pause = sys.argv[1], *map(int, sys.argv[2:6]), float(sys.argv[6])
    rng = np.random.default_rng(5)
    frames = rng.poisson(30, (n, h, w)).astype(np.uint16)
    frames[:, h // 2 - 1:h // 2 + 2, w // 2 - 2:w // 2 + 1] += 500
    pos = np.stack([np.arange(n) * 1e-7, np.sin(np.arange(n)) * 1e-6], axis=1)
    with h5py.File(path + ".tmp", "w") as f:
        f.create_dataset("entry/data", shape=(0, h, w), maxshape=(None, h, w), dtype=np.uint16, chunks=(1, h, w))
        for k in ("y", "x"):
            f.create_dataset("entry/" + k, shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(64,))
    import os; os.replace(path + ".tmp", path)
    while not all(os.path.exists(p) for p in sys.argv[7:]):  # start recording once the readers are up
        time.sleep(0.01)
    for s in range(0, n, batch):
        time.sleep(pause)
        e = min(n, s + batch)
        while True:
            try:
                f = h5py.File(path, "a")
                break
            except OSError:
                time.sleep(0.01)
        with f:
            d = f["entry/data"]; d.resize(e, axis=0); d[s:e] = frames[s:e]
            for j, k in enumerate(("y", "x")):
                ds = f["entry/" + k]; ds.resize(e, axis=0); ds[s:e] = pos[s:e, j]
            if e == n:
                f.attrs["finished"] = True
    """
)

PREPARER = textwrap.dedent(
    """
    import sys
    from ptydask.live import GrowingHdf5, LiveScan, follow
    raw, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    src = GrowingHdf5(raw, "entry/data", slow_key="entry/y", fast_key="entry/x", num_frames=n, end_attr="finished")
    scan = LiveScan(src, shape=16, center="fftshift", rebin=2, orientation=1, energy=6.0, distance=2.0,
                    psize=5e-5, min_frames=2, save="link", dfile=out, label="live")
    chunks = [len(p["chunk"]["indices"]) for p in follow(scan, 5, poll=0.02, timeout=60)]
    print("chunks", chunks)
    """
)

PTYPY_READER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from ptypy.core.data import PtydScan
    from ptypy.utils import Param
    from ptypy import utils as u
    u.verbose.set_level(0)
    src, out = sys.argv[1], sys.argv[2]
    open("ptypy_ready", "w").close()  # ptypy imported: the raw scan may start
    deadline = time.time() + 90
    while True:  # ptypy refuses a file without chunks/0: wait for the first chunk
        try:
            ps = PtydScan(Param(dfile=src, source='file'))
            ps.initialize()
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    frames, waits, msg = [], 0, None
    while time.time() < deadline:
        msg = ps.auto(5)
        if msg == ps.EOS:
            break
        if msg == ps.WAIT:
            waits += 1
            time.sleep(0.02)
            continue
        frames += [it['data'] for it in msg['iterable']]
    np.savez(out, data=np.array(frames), waits=waits, last=str(msg))
    """
)


def _offline(raw: Path) -> np.ndarray:
    with h5py.File(raw, "r") as f:
        frames = f["entry/data"][()]
        pos = np.stack([f["entry/y"][()], f["entry/x"][()]], axis=1)
    scan = ptydask.from_arrays(frames, pos, energy=6.0, distance=2.0, psize=5e-5)
    return prepare(scan, shape=16, center="fftshift", rebin=2, orientation=1)["data"].values


def _has_ptypy() -> bool:
    if PTYPY_SRC:
        return (Path(PTYPY_SRC) / "ptypy" / "__init__.py").exists()
    return importlib.util.find_spec("ptypy") is not None


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_live_pipeline_writer_preparer_readers(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw.h5", tmp_path / "live.ptyd"
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "prep.py").write_text(PREPARER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    gates = [str(out)]
    ptypy = None
    if _has_ptypy():
        (tmp_path / "ptypy_reader.py").write_text(PTYPY_READER)
        # ptypy opens the master without retrying; with HDF5 file locking it would fail whenever it
        # opens the file during the writer's brief link addition
        penv = dict(env, HDF5_USE_FILE_LOCKING="FALSE")
        if PTYPY_SRC:
            penv["PYTHONPATH"] = PTYPY_SRC + os.pathsep + penv.get("PYTHONPATH", "")
        ptypy = subprocess.Popen([sys.executable, "ptypy_reader.py", str(out), "ptypy.npz"], cwd=tmp_path, env=penv,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        gates.append(str(tmp_path / "ptypy_ready"))
    writer = subprocess.Popen([sys.executable, "writer.py", str(raw), str(N), str(H), str(W), str(BATCH), "0.3",
                               *gates], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for(raw)
    preparer = subprocess.Popen([sys.executable, "prep.py", str(raw), str(out), str(N)], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out)
    reader = PtydScan(dfile=str(out))
    reader.initialize()
    got, waits, deadline, growing = [], 0, time.monotonic() + 90, []
    while time.monotonic() < deadline:
        msg = reader.auto(4)
        if msg == EOS:
            break
        if msg == WAIT:
            waits += 1
            time.sleep(0.02)
            continue
        growing.append(preparer.poll() is None)
        got += [it["data"] for it in msg["iterable"]]
    assert writer.wait(60) == 0, writer.stderr.read()
    out_p, err_p = preparer.communicate(timeout=60)
    assert preparer.returncode == 0, err_p[-3000:]
    # the reader really followed a growing file: several packages, the first while the scan was running
    assert msg == EOS and len(growing) > 2 and growing[0], (waits, growing)
    chunks = [int(c) for c in out_p.split("[")[-1].strip(" ]\n").split(",")]
    assert sum(chunks) == N and len(chunks) > 2  # prepared in several chunks while the raw file grew
    offline = _offline(raw)
    np.testing.assert_array_equal(np.stack(got), offline)
    final = ptydask.open_ptyd(out)
    np.testing.assert_array_equal(final["data"].values, offline)
    assert final.attrs["num_frames"] == N and final.attrs["label"] == "live"
    if ptypy is not None:
        _, err = ptypy.communicate(timeout=120)
        assert ptypy.returncode == 0, err[-3000:]
        res = np.load(tmp_path / "ptypy.npz")
        assert str(res["last"]) == "msgEOS" and int(res["waits"]) > 0  # ptypy saw WAIT, then data, then EOS
        np.testing.assert_array_equal(res["data"], offline)


def test_live_scan_waits_then_ends_on_marker(tmp_path: Path) -> None:
    """In-process: the end comes from an end marker (num_frames unknown); meta/num_frames is set at the end."""
    raw, out = tmp_path / "raw.h5", tmp_path / "m.ptyd"
    frames = np.random.default_rng(1).poisson(10, (7, 8, 8)).astype(np.int32)
    pos = np.stack([np.arange(7) * 1e-7, np.arange(7) * 1e-7], axis=1)
    with h5py.File(raw, "w") as f:
        f.create_dataset("d", data=frames[:2], maxshape=(None, 8, 8))
        f.create_dataset("p", data=pos[:2], maxshape=(None, 2))
    src = GrowingHdf5(raw, "d", positions_key="p", end_attr="done")
    scan = LiveScan(src, shape=None, min_frames=3, save="link", dfile=str(out))
    scan.initialize()
    assert scan.auto(10) == WAIT  # 2 < min_frames, end not reached
    with h5py.File(raw, "a") as f:
        for k, v in (("d", frames), ("p", pos)):
            f[k].resize(5, axis=0)
            f[k][2:5] = v[2:5]
    first = scan.auto(10)
    assert first["chunk"].indices == [0, 1, 2, 3, 4] and first["common"].num_frames is None
    assert scan.auto(10) == WAIT
    with h5py.File(raw, "a") as f:
        for k, v in (("d", frames), ("p", pos)):
            f[k].resize(7, axis=0)
            f[k][5:7] = v[5:7]
        f.attrs["done"] = True
    assert scan.auto(1)["chunk"].indices == [5]  # end reached: fewer than min_frames are served
    assert scan.auto(10)["chunk"].indices == [6]
    assert scan.auto(10) == EOS and scan.meta.num_frames == 7
    back = ptydask.open_ptyd(out)
    assert back.attrs["num_frames"] == 7
    np.testing.assert_array_equal(back["data"].values, frames)
    np.testing.assert_array_equal(back["positions"].values, pos)


@pytest.mark.filterwarnings("ignore:shape. non-square")
def test_tiff_folder_live(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    folder = tmp_path / "tiffs"
    folder.mkdir()
    frames = np.random.default_rng(2).integers(0, 1000, (5, 10, 12)).astype(np.uint16)
    pos = np.stack([np.arange(5) * 1e-7, np.zeros(5)], axis=1)

    def put(i):
        tmp = folder / f"f{i:04d}.part"
        tifffile.imwrite(tmp, frames[i])
        os.replace(tmp, folder / f"f{i:04d}.tif")

    src = TiffFolder(folder, positions=pos)
    scan = LiveScan(src, shape=None, center="fftshift", min_frames=2)
    scan.initialize()
    assert scan.num_frames == 5 and scan.auto(4) == WAIT
    for i in range(3):
        put(i)
    pk = scan.auto(4)
    assert pk["chunk"].indices == [0, 1, 2]
    np.testing.assert_array_equal(pk["iterable"][2]["data"], frames[2][:, 1:11])  # 10x12 -> square 10x10 ROI
    for i in range(3, 5):
        put(i)
    served = list(follow(scan, 4, poll=0.01, timeout=5))
    assert [p["chunk"].indices for p in served] == [[3, 4]]
    np.testing.assert_array_equal(served[0]["chunk"].positions, pos[3:])


def test_live_writer_modes_and_refusal(tmp_path: Path) -> None:
    frames = np.arange(5 * 4 * 4, dtype=np.float32).reshape(5, 4, 4)
    meta = {"version": 0.1, "num_frames": 5, "label": None, "shape": (4, 4), "psize": (1e-5, 1e-5),
            "energy": 5.0, "center": (2.0, 2.0), "distance": 1.0}
    pos = np.zeros((5, 2))
    for save in ("link", "append", "merge"):
        path = tmp_path / f"{save}.ptyd"
        w = LiveWriter(path, save, chunk_format=".part%03d")
        w.start({})
        w.write_chunk(frames[:2], np.ones((4, 4), bool), pos[:2], [0, 1], meta)
        w.write_chunk(frames[2:], np.ones((5 - 2, 4, 4), np.uint8), pos[2:], [2, 3, 4])
        back = ptydask.open_ptyd(path)
        np.testing.assert_array_equal(back["data"].values, frames)
        assert back.attrs["num_frames"] == 5 and back.attrs["center"] == (2.0, 2.0)
        with h5py.File(path, "r") as f:
            assert sorted(f["chunks"]) == (["0"] if save == "merge" else ["0", "1"])
            if save == "link":
                assert f["chunks"].get("1", getlink=True).filename == "link.ptyd.part001"
    with pytest.raises(ptydask.OutputExistsError):
        LiveWriter(tmp_path / "link.ptyd").start()
    with pytest.raises(ptydask.ScanError, match="meta"):
        w = LiveWriter(tmp_path / "nometa.ptyd")
        w.start()
        w.write_chunk(frames, np.ones((4, 4)), pos, range(5))


@pytest.mark.slow
@pytest.mark.skipif(not _has_ptypy(), reason="ptypy not importable (set PTYPY_SRC to a ptypy checkout)")
@pytest.mark.parametrize("save", ["link", "append", "merge"])
def test_ptypy_reads_live_writer_files(tmp_path: Path, save: str) -> None:
    frames = np.random.default_rng(4).integers(0, 500, (9, 8, 8)).astype(np.uint16)
    weights = np.random.default_rng(5).random((9, 8, 8)) > 0.1
    pos = np.stack([np.arange(9) * 1e-7, np.arange(9) * -1e-7], axis=1)
    meta = {"version": 0.1, "num_frames": 9, "label": "lw", "shape": (8, 8), "psize": (1e-5, 2e-5),
            "energy": 5.0, "center": (4.0, 3.5), "distance": 1.5}
    w = LiveWriter(tmp_path / "lw.ptyd", save)
    w.start({"x": 1})
    for s, e in ((0, 4), (4, 9)):
        w.write_chunk(frames[s:e], weights[s:e], pos[s:e], range(s, e), meta if s == 0 else None)
    env = dict(os.environ)
    if PTYPY_SRC:
        env["PYTHONPATH"] = PTYPY_SRC + os.pathsep + env.get("PYTHONPATH", "")
    loader = Path(__file__).with_name("ptypy_load.py")
    subprocess.run([sys.executable, str(loader), str(tmp_path / "lw.ptyd"), "out.npz"], check=True, env=env,
                   cwd=tmp_path, capture_output=True, timeout=300)
    got = np.load(tmp_path / "out.npz")
    assert str(got["last"]) == "msgEOS"
    np.testing.assert_array_equal(got["data"], frames)
    np.testing.assert_array_equal(got["mask"], weights)
    np.testing.assert_array_equal(got["positions"], pos)
    np.testing.assert_allclose(got["center"], [4.0, 3.5])
    assert int(got["num_frames"]) == 9 and str(got["label"]) == "lw"


def _relink_absolute(master: Path, folder: Path) -> list[str]:
    """Replace the master's part links by absolute paths into ``folder`` (what ptypy writes for an absolute dfile)."""
    with h5py.File(master, "r+") as f:
        names = list(f["chunks"])
        for name in names:
            link = f["chunks"].get(name, getlink=True)
            target = str((folder / Path(link.filename).name).resolve())
            del f["chunks"][name]
            f["chunks"][name] = h5py.ExternalLink(target, link.path)
    return names


def _link_file(tmp_path: Path, n: int, total: int) -> tuple[Path, np.ndarray]:
    frames = np.arange(n * 16, dtype=np.float64).reshape(n, 4, 4)
    pos = np.stack([np.arange(n) * 1e-7, np.arange(n) * 2e-7], axis=1)
    meta = {"version": 0.1, "num_frames": total, "label": None, "shape": (4, 4), "psize": (1e-5, 1e-5),
            "energy": 5.0, "center": (2.0, 2.0), "distance": 1.5}
    w = LiveWriter(tmp_path / "live.ptyd", "link")
    w.start({"x": 1})
    for s in range(0, n, 3):
        e = min(n, s + 3)
        w.write_chunk(frames[s:e], np.ones((e - s, 4, 4), bool), pos[s:e], range(s, e), meta if s == 0 else None)
    return tmp_path / "live.ptyd", frames


def test_partial_link_file_with_absolute_part_links_in_its_folder_is_followed(tmp_path: Path) -> None:
    master, frames = _link_file(tmp_path, 6, 10)
    _relink_absolute(master, tmp_path)
    scan = PtydScan(dfile=str(master), retries=0)
    scan.initialize()
    assert scan.num_frames == scan.info.num_frames == 10  # the expected count, as ptypy
    pkg = scan.auto(100)
    np.testing.assert_array_equal(np.array([it["data"] for it in pkg["iterable"]]), frames)
    assert scan.check(5) == (0, None)  # ptypy: end of scan left to auto(), from num_frames
    assert scan.auto(100) == WAIT


def test_absolute_part_links_outside_the_folder_stay_refused(tmp_path: Path) -> None:
    """The allowed folder is the master's and what lies below it (ptydask's one link policy); parts
    moved to a sibling folder are outside it."""
    (tmp_path / "scan").mkdir()
    master, _ = _link_file(tmp_path / "scan", 6, 6)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for part in (tmp_path / "scan").glob("live.ptyd.*"):
        part.rename(elsewhere / part.name)
    _relink_absolute(master, elsewhere)
    with pytest.raises(ptydask.errors.FormatError, match="outside the master file's folder"):
        ptydask.open_ptyd(master)


PTYPY_LIVE = textwrap.dedent(
    """
    import os, sys
    from ptypy import utils as u
    from ptypy.core.data import MoonFlowerScan
    u.verbose.set_level("error")
    ms = MoonFlowerScan(u.Param(dfile=os.path.abspath(sys.argv[1]), save="link", shape=32, num_frames=20,
                                psize=1e-5, energy=1.0, distance=1.0))
    ms.initialize()
    ms.auto(12)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not _has_ptypy(), reason="ptypy not importable (set PTYPY_SRC to a ptypy checkout)")
def test_ptypy_live_link_file_with_absolute_dfile_is_read(tmp_path: Path) -> None:
    env = dict(os.environ)
    if PTYPY_SRC:
        env["PYTHONPATH"] = PTYPY_SRC + os.pathsep + env.get("PYTHONPATH", "")
    (tmp_path / "w.py").write_text(PTYPY_LIVE)
    subprocess.run([sys.executable, "w.py", "mf.ptyd"], check=True, env=env, cwd=tmp_path, capture_output=True,
                   timeout=300)
    with h5py.File(tmp_path / "mf.ptyd") as f:
        assert all(Path(f["chunks"].get(k, getlink=True).filename).is_absolute() for k in f["chunks"])
    scan = PtydScan(dfile=str(tmp_path / "mf.ptyd"), retries=0)
    scan.initialize()
    assert scan.info.num_frames == 20
    pkg = scan.auto(100)
    assert len(pkg["iterable"]) == 12
    assert scan.auto(100) == WAIT
