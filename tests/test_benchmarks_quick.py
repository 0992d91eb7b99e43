"""The benchmark keeps working: ``python -m benchmarks run --quick`` on a small generated scan,
results written to a temporary folder (the committed results are not touched).

This checks that every case runs and reports, not how fast: timings belong to the full run
(benchmarks/RESULTS.md), never to the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_benchmark_runs_every_case(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--quick", "--results", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["run_quick"]
    failed = {f"{section}/{kind}/{case}": [r.get("error") for r in rows if "error" in r]
              for section, kinds in (("e2e", results["e2e"]),)
              for kind, cases in kinds.items() for case, rows in cases.items()}
    failed = {k: v for k, v in failed.items() if v}
    assert not failed, failed
    for section in ("reading", "scaling"):
        errors = {case: [r.get("error") for r in rows if "error" in r] for case, rows in results[section].items()}
        assert not any(errors.values()), errors
    assert "seconds" in results["memory_e2e"]["capped"], results["memory_e2e"]["capped"]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "### Targets" in text and "I/O floor" in text
    assert (tmp_path / "results_quick.png").exists()
