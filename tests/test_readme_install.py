"""The README's two commands, run as a new user runs them: one after the other in one fresh clone.

The clone is made from this repository's committed HEAD. The demo command (``pip install .``, then
``ptydask demo``) compiles numba's kernels; their cache must not land inside the installed package,
or the next command's ``pip install -e`` leaves a namespace package behind that shadows the editable
install. After each command, ``ptydask demo`` must work from a folder outside the clone.

The test command's final ``python -m pytest`` is given a few test files here (the whole suite would
run this test again, inside itself); everything before it runs exactly as the README writes it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SHARED

pytestmark = pytest.mark.slow

#: Seconds per command: a fresh venv and a pip install from a warm cache take a minute or two on an idle
#: machine, the shared CI machine may be several times slower.
COMMAND_TIMEOUT = 1800
#: Test files the clone runs with the README's test command (quick, and they import the installed package).
CLONE_TESTS = ["tests/test_readme.py", "tests/test_cli.py"]


def _readme_commands() -> tuple[str, str]:
    commands = re.findall(r"```bash\n(.+?)\n```", (REPO / "README.md").read_text())
    return commands[0], commands[1]


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)
    assert proc.returncode == 0, f"{command!r} in {cwd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _site_package(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages")) + sorted(venv.glob("Lib/site-packages"))
    assert found, f"no site-packages in {venv}"
    return found[0] / "ptydask"


def _demo_elsewhere(clone: Path, elsewhere: Path, env: dict[str, str]) -> None:
    out = elsewhere / "out"
    shutil.rmtree(out, ignore_errors=True)
    proc = _run(f"{clone / '.venv' / 'bin' / 'ptydask'} demo {out} --frames 40", elsewhere, env)
    assert "wrote" in proc.stdout and (out / "demo.ptyd").is_file()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout (or no git): nothing to clone")
    target = tmp_path / "ptydask"
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True, timeout=600)
    return target


def test_readme_commands_in_one_clone_then_demo_elsewhere(clone: Path, tmp_path: Path) -> None:
    demo_cmd, test_cmd = _readme_commands()
    assert test_cmd.rstrip().endswith("python -m pytest"), test_cmd
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PTYDASK_CACHE_DIR"] = str(tmp_path / "cache")
    env["PTYDASK_SHARED"] = str(SHARED.resolve())
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(REPO / ".venv")))

    _run(demo_cmd, clone, env)                               # pip install . && ptydask demo demo-out
    assert (clone / "demo-out" / "demo.ptyd").is_file()
    installed = _site_package(clone / ".venv")
    left = [p for p in installed.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert not left, f"numba cache files inside the installed package: {left[:3]}"
    assert list((tmp_path / "cache" / "numba").rglob("*.nbi")), "numba's cache is not in PTYDASK_CACHE_DIR"
    _demo_elsewhere(clone, elsewhere, env)

    _run(f"{test_cmd} {' '.join(CLONE_TESTS)} -q", clone, env)  # pip install -q -e ".[test]" && python -m pytest
    assert not installed.exists(), f"{installed} survived the editable install"
    _demo_elsewhere(clone, elsewhere, env)

    _run(demo_cmd, clone, env)                               # again: back to a regular install
    _demo_elsewhere(clone, elsewhere, env)
