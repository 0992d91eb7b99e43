"""Compare two full runs side by side: ``python -m benchmarks.compare BEFORE.json AFTER.json``.

Prints a Markdown table of every timed case of ``python -m benchmarks run`` (medians, the range of
the repeats, after / before) for a same-session before/after check of a change: a case is slower
only when its after-median lies above the before-run's slowest repeat and the ratio exceeds 1.10.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

#: (section, case, key inside the run's results, sub-key or None): what is compared.
CASES = [
    ("end to end, uncompressed", "I/O floor", ("e2e", "plain", "floor")),
    ("end to end, uncompressed", "ptydask in-process", ("e2e", "plain", "ptydask")),
    ("end to end, uncompressed", "`ptydask prepare` whole process", ("e2e", "plain", "ptydask_cli")),
    ("end to end, uncompressed", "ptypy's pipeline", ("e2e", "plain", "ptypy")),
    ("end to end, bitshuffle-LZ4", "single-thread h5py floor", ("e2e", "bslz4", "floor")),
    ("end to end, bitshuffle-LZ4", "ptydask in-process", ("e2e", "bslz4", "ptydask")),
    ("end to end, bitshuffle-LZ4", "`ptydask prepare` whole process", ("e2e", "bslz4", "ptydask_cli")),
    ("end to end, bitshuffle-LZ4", "ptypy's pipeline", ("e2e", "bslz4", "ptypy")),
    ("reading", "`open_ptyd(...).data.sum()`", ("reading", "open_ptyd")),
    ("reading", "raw h5py", ("reading", "h5py")),
    ("scaling", "threads", ("scaling", "threads")),
    ("scaling", "2 distributed workers", ("scaling", "processes")),
    ("scaling", "2 MPI ranks", ("scaling", "mpi")),
]


def _times(run: dict, path: tuple[str, ...]) -> list[float]:
    node = run
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return [float(r["seconds"]) for r in node] if isinstance(node, list) else []


def _peaks(run: dict) -> tuple[float, float] | None:
    rows = run.get("memory_e2e", {}).get("rows", [])
    if len(rows) < 2:
        return None
    return float(rows[0]["peak_rss_bytes"]), float(rows[-1]["peak_rss_bytes"])


def table(before: dict, after: dict) -> str:
    """The Markdown comparison of two ``results.json`` ``run`` sections."""
    lines = ["| case | before: median (min-max, n) s | after: median (min-max, n) s | after / before | verdict |",
             "|---|---:|---:|---:|---|"]
    for section, name, path in CASES:
        b, a = _times(before, path), _times(after, path)
        if not b or not a:
            continue
        mb, ma = statistics.median(b), statistics.median(a)
        slower = ma > max(b) and ma / mb > 1.10
        verdict = "slower" if slower else ("faster" if ma < min(b) and mb / ma > 1.10 else "within the spread")
        lines.append(f"| {section}: {name} | {mb:.2f} ({min(b):.2f}-{max(b):.2f}, {len(b)}) | "
                     f"{ma:.2f} ({min(a):.2f}-{max(a):.2f}, {len(a)}) | {ma / mb:.2f} | {verdict} |")
    pb, pa = _peaks(before), _peaks(after)
    if pb and pa:
        lines.append(f"| peak RSS 4x / 1x scan | {pb[1] / pb[0]:.2f} | {pa[1] / pa[0]:.2f} | | |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    before, after = (json.loads(Path(p).read_text())["run"] for p in argv)
    print(table(before, after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
