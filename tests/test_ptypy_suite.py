"""ptypy's own data-layer tests, run unchanged with ptypy's data layer swapped for ptydask's (issue #16).

Needs a ptypy checkout: ``PTYPY_SRC=/path/to/ptypy``; skipped otherwise. The
test files are copied from the checkout into a temporary folder at test time
(none of ptypy's files live in this repository) and run by pytest in a
subprocess with the plugin ``tests/ptypy_harness/ptydask_swap.py``, which puts
ptydask's ``PtyScan``, ``PtydScan``, ``Hdf5Loader`` and a ``MoonFlowerScan``
on ptydask's base in place of ptypy's before the tests import them. Two
variants: ptypy's ``@defaults_tree.parse_doc`` decorator kept on the
subclasses (as ptypy's beamline modules are written), and without it.
Tests that ptypy itself skips (missing beamline data) stay skipped; the only
test expected to fail is listed in :data:`DEVIATIONS` (docs/ptypy-deviations.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

PTYPY_SRC = os.environ.get("PTYPY_SRC", "")
HARNESS = Path(__file__).parent / "ptypy_harness"
#: ptypy's test files of the data layer (paths inside its ``test`` folder).
FILES = ("ptyscan_tests", "io_tests/h5rw_load_test.py", "io_tests/load_run_test.py",
         "template_tests/prep_and_run_moonflower_test.py")

#: ptypy's tests that fail with ptydask on purpose (docs/ptypy-deviations.md), with the reason.
DEVIATIONS = {
    "test.ptyscan_tests.diamond_nexus_test.DiamondNexusTest::test_position_data_mapping_case_2_with_exclusion":
        "DiamondNexus.load_mapped_and_arbitrary_scan keys its frames by file index, not by the index asked for",
}

pytestmark = [
    pytest.mark.skipif(not (PTYPY_SRC and (Path(PTYPY_SRC) / "test" / "ptyscan_tests").is_dir()),
                       reason="PTYPY_SRC does not point at a ptypy checkout with its test folder"),
    pytest.mark.slow,
]


def copy_tests(dest: Path) -> list[str]:
    """Copy ptypy's ``test`` package (only the files run here) to ``dest``; return the pytest arguments."""
    src = Path(PTYPY_SRC) / "test"
    (dest / "test").mkdir()
    for name in ("__init__.py", "utils.py"):
        shutil.copy(src / name, dest / "test" / name)
    for item in FILES:
        part = Path(item)
        target = dest / "test" / part
        if (src / part).is_dir():
            shutil.copytree(src / part, target)
        else:
            target.parent.mkdir(exist_ok=True)
            shutil.copy(src / part.parent / "__init__.py", target.parent / "__init__.py")
            shutil.copy(src / part, target)
    return [str(Path("test") / f) for f in FILES]


def run_suite(workdir: Path, decorator: bool) -> dict[str, list[str]]:
    """Run ptypy's tests in ``workdir`` with ptydask swapped in; outcome -> test ids."""
    args = copy_tests(workdir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HARNESS), PTYPY_SRC, env.get("PYTHONPATH", "")])
    env["PTYDASK_SWAP_DECORATOR"] = "1" if decorator else "0"
    env.setdefault("MPLBACKEND", "Agg")
    report = workdir / "report.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "ptydask_swap", "-p", "no:cacheprovider", "-q", "--continue-on-collection-errors",
           "--junitxml", str(report), "-o", "junit_family=xunit2", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    if not report.exists():
        raise AssertionError(f"ptypy's tests did not run:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return outcomes(report)


def outcomes(report: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"passed": [], "failed": [], "error": [], "skipped": []}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        out[{"failure": "failed", "error": "error", "skipped": "skipped"}.get(kinds[0] if kinds else "", "passed")] \
            .append(name)
    return out


@pytest.mark.parametrize("decorator", [False, True], ids=["plain", "parse_doc"])
def test_ptypy_data_layer_suite(tmp_path: Path, decorator: bool) -> None:
    got = run_suite(tmp_path, decorator)
    counts = {k: len(v) for k, v in got.items()}
    print(f"ptypy suite with ptydask ({'with' if decorator else 'without'} parse_doc): {counts}")
    assert counts["passed"] > 0
    assert sorted(got["failed"] + got["error"]) == sorted(DEVIATIONS), f"{counts}; failing: {got['failed'] + got['error']}"
