"""A new user's first commands: ``--version``, ``python -m ptydask``, ``--debug`` anywhere, a ``--help``
that loads no heavy library, help texts pointing at documentation that exists, a pinned public surface."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import ptydask
from ptydask.cli import DOCS, main
from conftest import REPO

HEAVY = ("dask", "distributed", "xarray", "numba", "h5py", "numpy", "hdf5plugin", "matplotlib")

PUBLIC = sorted([
    "EOS", "FormatError", "GeometryError", "GrowingHdf5", "Hdf5Loader", "LiveScan", "META_KEYS", "OutputError",
    "OutputExistsError", "ParameterError", "PtyScan", "PtydScan", "PtydaskError", "RecipeError", "ScanError",
    "ScanPtyScan", "SourceError", "TiffFolder", "WAIT", "connect", "follow", "frames_expected",
    "frames_present", "from_arrays", "is_complete", "meta_of", "open_frames", "open_ptyd", "packages",
    "prepare", "prepare_mpi", "prepare_to_ptyd", "split_scan", "to_ptyd", "to_ptyd_distributed",
    "to_ptyd_mpi", "validate_scan", "WriteOptions", "to_cxi",
])


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def _loaded_after(code: str) -> list[str]:
    proc = _python(code + "\nimport sys, json\n"
                   f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_public_surface_is_pinned():
    assert sorted(ptydask.__all__) == PUBLIC
    assert dir(ptydask) == sorted([*PUBLIC, "__version__"])
    for name in PUBLIC:
        assert getattr(ptydask, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ptydask.nope  # noqa: B018


@pytest.mark.parametrize("code", [
    "import ptydask", "import ptydask.errors", "import ptydask.cli",
    "from ptydask.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from ptydask.cli import main\ntry:\n    main(['prepare', '--help'])\nexcept SystemExit:\n    pass",
])
def test_start_up_imports_no_heavy_library(code):
    assert _loaded_after(code) == []


def test_a_public_name_imports_its_module_on_first_use():
    assert "dask" in _loaded_after("import ptydask\nptydask.prepare")


def test_the_packages_function_survives_importing_its_module():
    proc = _python("import ptydask.packages, ptydask\nimport inspect\n"
                   "print(inspect.isfunction(ptydask.packages), ptydask.packages.__module__)")
    assert proc.stdout.split() == ["True", "ptydask.packages"], proc.stderr


def test_version_from_one_place():
    from importlib.metadata import version

    proc = subprocess.run([sys.executable, "-m", "ptydask", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ptydask {ptydask.__version__}"
    assert version("ptydask") == ptydask.__version__
    assert re.search(r'dynamic = \["version"\]', (REPO / "pyproject.toml").read_text())


def test_python_dash_m_ptydask_is_the_command():
    proc = subprocess.run([sys.executable, "-m", "ptydask", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: ptydask" in proc.stdout and "prepare" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "ptydask"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: ptydask" in proc.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_subcommand(tmp_path, capsys, where):
    bad = tmp_path / "not.ptyd"
    bad.write_text("nope")
    argv = ["--debug", "inspect", str(bad)] if where == "before" else ["inspect", str(bad), "--debug"]
    with pytest.raises(ptydask.FormatError):
        main(argv)
    assert main(["inspect", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_help_points_at_documentation_that_exists(capsys):
    for argv in (["--help"], ["prepare", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = " ".join(capsys.readouterr().out.split())
        assert " ".join(DOCS.split()) in out
    for path in re.findall(r"(docs/[\w/.]+)", DOCS):
        assert (REPO / path).exists(), path
    assert main(["params"]) == 0
    assert capsys.readouterr().out == (REPO / "docs" / "recipe.md").read_text()
