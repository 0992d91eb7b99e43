"""Interrupted writes (issue 9): a writer killed with SIGKILL at any point leaves either no output
(or, when overwriting, the previous output, byte-identical) or the complete new output — never a
file that looks complete but is not.

A *zygote* process imports ptydask once and forks one writer per kill point (fork is cheap; the
zygote has started no threads). The writer runs ``to_ptyd`` on a scan whose Dask blocks, HDF5 block
writes, finished-block callback, renames and removals are instrumented: at the chosen point the
writer sends one byte through a pipe and sleeps; the zygote then SIGKILLs it. Random-delay kills
are added on top (the zygote kills after a random time within the undisturbed write's duration).
After every kill the test (not the zygote) inspects the output folder.

``--resume`` is tested by the recipe engineer (tests/test_resume.py) and not repeated here.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ptydask
from ptydask import open_ptyd

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

N, H, W, PER_BLOCK = 8, 16, 16, 2
GEOM = dict(energy=6.2, distance=3.0, psize=5.5e-5)


def make_frames(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 60000, (N, H, W)).astype(np.uint16)


def make_positions(seed):
    return np.random.default_rng(seed + 1000).standard_normal((N, 2)) * 1e-6


#: The same definitions for the zygote: the scans it writes are the ones the test expects.
SHARED = (f"import numpy as np\nN, H, W, PER_BLOCK = {N}, {H}, {W}, {PER_BLOCK}\nGEOM = {GEOM!r}\n\n"
          + inspect.getsource(make_frames) + "\n" + inspect.getsource(make_positions))
NEW, OLD = 1, 2  # seeds of the scan being written and of the previous output (overwrite runs)
NBLOCKS = N // PER_BLOCK

ZYGOTE = SHARED + textwrap.dedent('''
    import json, os, select, signal, sys, time
    import dask.array as da
    import ptydask
    from ptydask.ptyd import writer
    from ptydask.execution import passes

    def child(cfg, w):
        point = cfg["point"]
        kind, target = (point.split(":") + ["0"])[:2] if point else ("", "0")
        target = int(target)

        def fire():
            os.write(w, b"!")
            time.sleep(60)

        def hook(block, block_info=None):
            if kind == "compute" and block_info[0]["chunk-location"][0] == target:
                fire()
            return block

        frames = da.from_array(make_frames(cfg["seed"]), chunks=(PER_BLOCK, H, W))
        frames = frames.map_blocks(hook, dtype=frames.dtype)
        scan = ptydask.from_arrays(frames, make_positions(cfg["seed"]), **GEOM)
        counts = {"write": 0, "block": 0, "replace": 0, "replaced": 0, "remove": 0, "removed": 0}

        def counted(name):
            counts[name] += 1
            if kind == name and counts[name] == target:
                fire()

        # the frames of a block are written, its group/part not finished yet
        from ptydask.ptyd import layout
        for method in ("write_payload", "write_part"):
            def wrapped(self, *a, _orig=getattr(layout.BlockWriter, method), **k):
                out = _orig(self, *a, **k)
                counted("write")
                return out
            setattr(layout.BlockWriter, method, wrapped)

        class Bar:
            def update(self, n):
                counted("block")  # a block completely written (group complete / part linked)
            def close(self):
                pass
        passes.progress_bar = lambda *a, **k: Bar()

        orig_replace = os.replace
        def replace(src, dst):
            counted("replace")    # before the k-th rename into place
            orig_replace(src, dst)
            counted("replaced")   # after it
        os.replace = replace      # the writer's modules call os.replace

        orig_remove = layout.remove
        def remove(p):
            counted("remove")
            orig_remove(p)
            counted("removed")
        layout.remove = remove

        writer.to_ptyd(scan, cfg["path"], save=cfg["save"], overwrite=cfg["overwrite"], compression="gzip")

    def serve():
        for line in sys.stdin:
            cfg = json.loads(line)
            r, w = os.pipe()
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                code = 0
                try:
                    child(cfg, w)
                except BaseException as exc:
                    print(f"writer failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                    code = 3
                os._exit(code)
            os.close(w)
            delay = cfg.get("delay")
            ready, _, _ = select.select([r], [], [], delay if delay is not None else 120)
            fired = bool(ready) and os.read(r, 1) == b"!"
            killed = False
            if fired or (delay is not None and not ready):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                except ProcessLookupError:
                    pass
            _, status = os.waitpid(pid, 0)
            os.close(r)
            killed = killed and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            out = {"killed": killed, "fired": fired, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                   "seconds": time.perf_counter() - t0}
            print(json.dumps(out), flush=True)

    def warm_up():
        """Import everything a write needs once, so that every fork starts writing at once."""
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            scan = ptydask.from_arrays(make_frames(0), make_positions(0), chunks=PER_BLOCK, **GEOM)
            for save in ("append", "link", "merge"):
                writer.to_ptyd(scan, os.path.join(d, save + ".ptyd"), save=save)
                ptydask.open_ptyd(os.path.join(d, save + ".ptyd"))["data"].data.compute(scheduler="sync")
        import threading
        names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        assert not names, f"the zygote must not fork with threads running: {names}"

    warm_up()
    serve()
''')


class Zygote:
    def __init__(self, folder: Path):
        script = folder / "zygote.py"
        script.write_text(ZYGOTE)
        self.log = open(folder / "zygote.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})

    def run(self, **cfg) -> dict:
        self.proc.stdin.write(json.dumps(cfg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"zygote died: {self.log.read()[-2000:]}")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _deterministic_points(save: str, overwrite: bool) -> list[str]:
    renames = NBLOCKS + 1 if save == "link" else 1
    points = [f"compute:{j}" for j in range(NBLOCKS)]
    points += [f"write:{k}" for k in range(1, NBLOCKS + 1)]
    points += [f"block:{k}" for k in range(1, NBLOCKS + 1)]
    points += [f"replace:{k}" for k in range(1, renames + 1)] + [f"replaced:{k}" for k in range(1, renames)]
    if overwrite:
        points += ["remove:1", "removed:1"]
    return points


def _violation(folder: Path, name: str, previous: dict[str, bytes] | None, may_vanish: bool = False) -> str | None:
    """What is wrong with the output after a kill, or None.

    Fine: no output (unless a previous one existed and ``may_vanish`` is false), the previous output
    with every one of its files byte-identical, or the complete new scan. Never a mix.
    """
    master = folder / name
    if not master.exists():
        return "the previous output was lost" if previous and not may_vanish else None
    if previous is not None:
        changed = [n for n, b in previous.items() if not (folder / n).exists() or (folder / n).read_bytes() != b]
        if not changed:
            return None
    try:
        scan = open_ptyd(master)
        data = scan["data"].values
        ok = (data.shape == (N, H, W) and np.array_equal(data, make_frames(NEW))
              and np.array_equal(scan["positions"].values, make_positions(NEW))
              and ptydask.is_complete(scan) and ptydask.frames_expected(scan) == N)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the violation we look for
        return f"{name} exists but cannot be read: {type(exc).__name__}: {exc}"
    if ok:
        return None
    if previous is not None:
        return f"{name} is neither the previous output (changed: {changed}) nor the complete new scan"
    return f"{name} exists and opens, but does not hold the complete new scan"


def _previous_output(folder: Path, save: str) -> dict[str, bytes]:
    old = ptydask.from_arrays(make_frames(OLD), make_positions(OLD), chunks=PER_BLOCK, **GEOM)
    ptydask.to_ptyd(old, folder / "o.ptyd", save=save)
    return _files(folder)


def _campaign(zygote, tmp_path, save: str, overwrite: bool, n_random: int, seed: int):
    # an undisturbed run: the reference duration for random kills, and a check that it succeeds
    ref = tmp_path / "reference"
    ref.mkdir()
    if overwrite:
        _previous_output(ref, save)
    base = zygote.run(path=str(ref / "o.ptyd"), save=save, overwrite=overwrite, seed=NEW, point="")
    assert base["exit"] == 0 and not base["killed"], base
    assert _violation(ref, "o.ptyd", None) is None
    rng = random.Random(seed)
    plan = [(p, None) for p in _deterministic_points(save, overwrite)]
    plan += [("", rng.uniform(0.0, base["seconds"])) for _ in range(n_random)]
    results, violations = [], []
    for i, (point, delay) in enumerate(plan):
        folder = tmp_path / f"run{i:03d}"
        folder.mkdir()
        previous = _previous_output(folder, save) if overwrite else None
        res = zygote.run(path=str(folder / "o.ptyd"), save=save, overwrite=overwrite, seed=NEW, point=point, delay=delay)
        label = point or f"after {delay:.3f} s"
        if res["exit"] not in (0, None):
            violations.append(f"{label}: the writer failed by itself (exit {res['exit']}; see zygote.log)")
        if point and not point.startswith("remove") and not res["killed"]:
            violations.append(f"{label}: kill point never reached (exit {res['exit']})")
        # link mode replaces several files (parts, then the master): no rename order can swap them all
        # at once, so there an overwrite may leave no output (the old master goes first) — never a mix.
        problem = _violation(folder, "o.ptyd", previous, may_vanish=save == "link")
        if problem:
            violations.append(f"{label}: {problem}")
        results.append((label, res["killed"]))
    killed = sum(k for _, k in results)
    print(f"\n{save} overwrite={overwrite}: {len(plan)} kill points tried, {killed} writers killed "
          f"({sum(1 for p, _ in plan if p)} instrumented, {n_random} random delays), "
          f"{len(violations)} violations")
    return killed, violations


@pytest.mark.slow
@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_killed_writer_leaves_nothing_or_a_complete_file(zygote, tmp_path, save):
    killed, violations = _campaign(zygote, tmp_path, save, overwrite=False, n_random=12, seed=11)
    assert not violations, "\n".join(violations)
    assert killed >= len(_deterministic_points(save, False))


@pytest.mark.slow
@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_killed_overwrite_keeps_the_previous_file_or_the_new_one(zygote, tmp_path, save):
    """append/merge outputs are one file: ``os.replace`` swaps it atomically, so a killed overwrite must
    leave the previous file in place (or the new one). link: the previous output or nothing, never a mix."""
    killed, violations = _campaign(zygote, tmp_path, save, overwrite=True, n_random=12, seed=12)
    assert not violations, "\n".join(violations)
    assert killed >= len(_deterministic_points(save, True)) - 2
