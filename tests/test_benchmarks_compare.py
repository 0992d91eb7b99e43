"""``python -m benchmarks.compare``: the same-session before/after table and its verdicts."""

from __future__ import annotations

from benchmarks.compare import table


def _run(ptydask: list[float], floor: list[float]) -> dict:
    return {"e2e": {"plain": {"ptydask": [{"seconds": s} for s in ptydask], "floor": [{"seconds": s} for s in floor]}}}


def test_verdicts_use_the_before_runs_spread():
    before = _run([1.0, 1.2, 1.4], [1.0, 1.0, 1.0])
    text = table(before, _run([1.3, 1.35, 1.5], [1.5, 1.6, 1.7]))
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()[2:]}
    assert "within the spread" in rows["end to end, uncompressed: ptydask in-process"]  # 1.35 <= 1.4
    assert "slower" in rows["end to end, uncompressed: I/O floor"] and "| 1.60 |" in rows["end to end, uncompressed: I/O floor"]
    assert "faster" in table(before, _run([0.5, 0.6, 0.7], [1.0, 1.0, 1.0])).splitlines()[3]
    assert len(text.splitlines()) == 4  # cases missing from either run are left out
