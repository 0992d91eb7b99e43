"""Resuming an interrupted ``append`` write (``to_ptyd(resume=True)``, ``ptydask prepare --resume``).

The kill test runs the writer in a subprocess whose Dask block function
signals when it starts block ``k`` (so blocks ``0..k-1`` are written) and
then waits; the parent SIGKILLs it there, or a moment later while a chunk
group is being written, resumes, and checks every frame and the chunk names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import ptydask
from ptydask.cli import main
from ptydask.ptyd.plan import COMPLETE_ATTR, FINGERPRINT_ATTR

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("PTYDASK_SHARED", REPO.parent / "shared")) / "fixtures" / "ptypy"

#: Shared by the parent (expected values) and the child (the scan it writes).
COMMON = textwrap.dedent(
    """
    import numpy as np
    N_BLOCKS, B, H, W = 8, 4, 96, 96

    def frames_of(i):
        return np.random.default_rng(1000 + i).integers(0, 5000, (B, H, W)).astype(np.float32)

    def positions():
        return np.stack([np.arange(N_BLOCKS * B) * 1e-6, -np.arange(N_BLOCKS * B) * 2e-6], axis=1)
    """
)

CHILD = COMMON + textwrap.dedent(
    """
    import os, sys, time
    import dask.array as da
    import ptydask

    signals, out, kill_block, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def hold():
        open(os.path.join(signals, "ready"), "w").close()
        time.sleep(float(os.environ.get("PTYDASK_TEST_HOLD", "600")))

    if where == "group":  # stop inside chunk group k: data written, positions/marker not yet
        from ptydask.ptyd.layout import BlockWriter
        original = BlockWriter.write_small

        def write_small(self, grp, positions, indices):
            if indices[0] == kill_block * B and grp.name != "/":  # indices are the frame numbers here
                hold()
            return original(self, grp, positions, indices)

        BlockWriter.write_small = write_small

    def block(x, block_info=None):
        i = block_info[None]["chunk-location"][0]
        open(os.path.join(signals, f"computed_{i}"), "a").close()
        if i == kill_block and where == "block":
            hold()
        return frames_of(i)

    zeros = da.zeros((N_BLOCKS * B, H, W), chunks=(B, H, W), dtype=np.float32)
    data = da.map_blocks(block, zeros, dtype=np.float32)
    weights = data % 7 != 0
    scan = ptydask.from_arrays(data, positions(), weights, energy=6.2, distance=3.5, psize=5.5e-5, center=(48, 48))
    ptydask.to_ptyd(scan, out, max_in_flight=1, resume=True, progress=False)
    """
)

ns: dict = {}
exec(COMMON, ns)  # noqa: S102 - the test's own constant code
N_BLOCKS, B = ns["N_BLOCKS"], ns["B"]
EXPECTED = np.concatenate([ns["frames_of"](i) for i in range(N_BLOCKS)])


def run_child(tmp_path: Path, out: Path, kill_block: int, signals: Path, where: str = "block",
              hold: float = 600.0) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    signals.mkdir(exist_ok=True)
    env = dict(os.environ, PTYDASK_TEST_HOLD=str(hold), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(script), str(signals), str(out), str(kill_block), where], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child ended early: {proc.stderr.read().decode()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("child never reached the kill point")
        time.sleep(0.01)


def check_output(out: Path) -> None:
    """Every frame exactly once, chunk groups exactly 0..n-1, no resume bookkeeping left."""
    assert out.exists() and not out.with_name(out.name + ".incomplete").exists()
    with h5py.File(out, "r") as f:
        names = sorted(f["chunks"], key=int)
        assert names == [str(i) for i in range(N_BLOCKS)]
        data = np.concatenate([f["chunks"][n]["data"][()] for n in names])
        weights = np.concatenate([f["chunks"][n]["weights"][()] for n in names])
        positions = np.concatenate([f["chunks"][n]["positions"][()] for n in names])
        indices = np.concatenate([f["chunks"][n]["indices"][()] for n in names])
        assert FINGERPRINT_ATTR not in f.attrs
        assert not any(COMPLETE_ATTR in f["chunks"][n].attrs for n in names)
        assert f["meta/num_frames"][()] == N_BLOCKS * B
    np.testing.assert_array_equal(data, EXPECTED, strict=True)
    np.testing.assert_array_equal(weights, EXPECTED % 7 != 0)
    np.testing.assert_array_equal(positions, ns["positions"]())
    np.testing.assert_array_equal(indices, np.arange(N_BLOCKS * B))


def computed(signals: Path) -> set[int]:
    return {int(p.name.split("_")[1]) for p in signals.glob("computed_*")}


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_block, where, delay",
    [(1, "block", None), (3, "group", None), (7, "group", None), (2, "block", 0.0)],
    ids=["before-block-1", "inside-group-3", "inside-group-7", "random-after-block-2"],
)
def test_sigkill_then_resume(tmp_path: Path, kill_block: int, where: str, delay: float | None) -> None:
    """Kill points: waiting in block k (groups 0..k-1 flushed); inside group k after its frames were
    written (group not marked complete, metadata not flushed); and at a random moment after block k."""
    out = tmp_path / "scan.ptyd"
    first = tmp_path / "first"
    proc = run_child(tmp_path, out, kill_block, first, where, hold=600.0 if delay is None else 0.0)
    wait_for(first / "ready", proc)
    if delay:
        time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = out.exists()  # only possible for the random kill point
    assert delay is not None or (not finished and out.with_name("scan.ptyd.incomplete").exists())

    second = tmp_path / "second"
    if not finished:
        proc = run_child(tmp_path, out, -1, second, "none")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    check_output(out)
    if delay is not None:
        assert computed(second) <= set(range(N_BLOCKS))
    elif where == "block":  # a clean kill point: only the missing blocks are computed again
        assert computed(second) == set(range(kill_block, N_BLOCKS)), err.decode()
        assert b"starting over" not in err
    else:  # the partial group is dropped and recomputed, or the damaged file is started over (with a warning)
        redo = computed(second)
        assert redo == set(range(kill_block, N_BLOCKS)) or (redo == set(range(N_BLOCKS)) and b"starting over" in err)


def small_scan(frames: np.ndarray, chunks: int):
    return ptydask.from_arrays(frames, np.zeros((len(frames), 2)), energy=1.0, distance=1.0, psize=1e-4,
                               chunks=chunks)


def interrupted(tmp_path: Path, frames: np.ndarray, chunks: int, stop_at: int, **write) -> Path:
    """Write ``frames`` but raise KeyboardInterrupt in block ``stop_at`` (Ctrl-C keeps the .incomplete)."""
    import dask.array as da

    def block(x, block_info=None):
        if block_info[None]["chunk-location"][0] == stop_at:
            raise KeyboardInterrupt
        return x

    data = da.from_array(frames, chunks=(chunks, -1, -1)).map_blocks(block, dtype=frames.dtype)
    out = tmp_path / "s.ptyd"
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="run again with resume=True"):
        ptydask.to_ptyd(small_scan(data, chunks), out, max_in_flight=1, **write)
    assert not out.exists() and (tmp_path / "s.ptyd.incomplete").exists()
    return out


@pytest.mark.parametrize("compression", ["gzip", None])
def test_ctrl_c_keeps_incomplete_and_resume_finishes(tmp_path: Path, compression) -> None:
    frames = np.arange(10 * 4 * 4, dtype=np.int32).reshape(10, 4, 4)
    out = interrupted(tmp_path, frames, 3, stop_at=2, compression=compression)
    with h5py.File(tmp_path / "s.ptyd.incomplete", "r") as f:
        assert sorted(f["chunks"], key=int) == ["0", "1"]
    ptydask.to_ptyd(small_scan(frames, 3), out, resume=True, compression=compression)
    back = ptydask.open_ptyd(out)
    np.testing.assert_array_equal(back["data"].values, frames)
    assert back["data"].data.chunks[0] == (3, 3, 3, 1)


def test_resume_starts_over_on_a_different_plan(tmp_path: Path) -> None:
    frames = np.arange(10 * 4 * 4, dtype=np.int32).reshape(10, 4, 4)
    out = interrupted(tmp_path, frames, 3, stop_at=2)
    with pytest.warns(UserWarning, match="different plan; starting over"):
        ptydask.to_ptyd(small_scan(frames + 1, 2), out, resume=True)  # other blocks: must not reuse anything
    back = ptydask.open_ptyd(out)
    np.testing.assert_array_equal(back["data"].values, frames + 1)
    assert back["data"].data.chunks[0] == (2, 2, 2, 2, 2)


def test_resume_starts_over_on_a_damaged_file(tmp_path: Path) -> None:
    frames = np.arange(10 * 4 * 4, dtype=np.int32).reshape(10, 4, 4)
    out = interrupted(tmp_path, frames, 3, stop_at=2)
    inc = tmp_path / "s.ptyd.incomplete"
    inc.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # what a crash during the first write can leave
    with pytest.warns(UserWarning, match="cannot be read.*starting over"):
        ptydask.to_ptyd(small_scan(frames, 3), out, resume=True)
    np.testing.assert_array_equal(ptydask.open_ptyd(out)["data"].values, frames)


def test_resume_only_for_append(tmp_path: Path) -> None:
    with pytest.raises(ptydask.ParameterError, match="resume: only save='append'"):
        ptydask.to_ptyd(small_scan(np.zeros((2, 4, 4)), 1), tmp_path / "s.ptyd", save="link", resume=True)


CLI_CHILD = textwrap.dedent(
    """
    import os, sys
    import ptydask.execution.runner as writer

    original, stop = writer.iter_blocks, int(sys.argv[1])

    def dying(*args, **kwargs):  # die like a killed job once `stop` chunk groups are written
        for j, item in enumerate(original(*args, **kwargs)):
            if j == stop:
                os._exit(9)
            yield item

    writer.iter_blocks = dying
    from ptydask.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.skipif(not (FIXTURES / "raw_peak.h5").exists(), reason="no ptypy fixtures")
def test_cli_resume_of_a_killed_recipe_run(tmp_path: Path, capsys) -> None:
    recipe = FIXTURES / "case_peak_auto_orient6_rebin4.recipe.json"
    out, ref = tmp_path / "killed.ptyd", tmp_path / "fresh.ptyd"
    args = ["prepare", str(recipe), "--set", "frames_per_block=6", "--no-progress"]
    script = tmp_path / "cli_child.py"
    script.write_text(CLI_CHILD)
    proc = subprocess.run([sys.executable, str(script), "3", *args, "--dfile", str(out)], capture_output=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert proc.returncode == 9, proc.stderr.decode()
    assert not out.exists() and (tmp_path / "killed.ptyd.incomplete").exists()
    assert main(args + ["--dfile", str(out), "--resume"]) == 0
    assert main(args + ["--dfile", str(ref)]) == 0
    captured = capsys.readouterr()
    assert "starting over" not in captured.err
    with h5py.File(out, "r") as a, h5py.File(ref, "r") as b:
        names = sorted(a["chunks"], key=int)
        assert names == sorted(b["chunks"], key=int) == [str(i) for i in range(7)]
        for n in names:
            for key in ("data", "weights", "positions", "indices"):
                np.testing.assert_array_equal(a["chunks"][n][key][()], b["chunks"][n][key][()], strict=True)
        for key in ("center", "shape", "psize", "num_frames"):
            np.testing.assert_array_equal(a["meta"][key][()], b["meta"][key][()], strict=True)
