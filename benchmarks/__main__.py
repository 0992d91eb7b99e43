"""Run benchmarks and write ``benchmarks/RESULTS.md`` (and ``benchmarks/results.png``).

    python -m benchmarks run [--quick]               # end to end, memory, reading, scaling (issue 7)
    python -m benchmarks memory [--sizes 1 2 4 8]   # writer peak memory against scan size

Each case runs in a fresh child process that reports its wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .common import HERE, machine, run_child


def _memory(args: argparse.Namespace) -> dict:
    rows = []
    for gib in args.sizes:
        r = run_child("write_memory", "--gib", str(gib), "--save", args.save)
        rows.append(r)
        print(f"{gib:>5} GiB: {r['seconds']:.1f} s, peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
    return {"memory": {"save": args.save, "rows": rows}}


def _run(args: argparse.Namespace) -> dict:
    from .run import run

    t0 = time.time()
    results = run(quick=args.quick)
    results["minutes"] = (time.time() - t0) / 60
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["machine"] = machine()
    return {"run_quick" if args.quick else "run": results}  # a smoke run never replaces the full run's results


def _write_markdown(results: dict, folder: Path) -> None:
    lines = ["# Benchmark results", "", f"Machine: {results.get('machine', '?')}  ", f"Date: {results.get('date', '?')}", ""]
    run, png = results.get("run"), "results.png"
    if run is None and results.get("run_quick"):
        run, png = results["run_quick"], "results_quick.png"
    if run:
        from .report import markdown, plot

        lines += [f"Run of {run['date']} ({run.get('minutes', 0):.0f} min). Plot: `{png}`.", ""]
        if results.get("run_quick") and run is not results["run_quick"]:
            q = results["run_quick"]
            lines += [f"(The latest `--quick` smoke run, {q['date']}, {q.get('minutes', 0):.1f} min, is kept in "
                      "`results.json` only.)", ""]
        lines += markdown(run)
        plot(run, folder / png)
        if results.get("run_quick"):
            plot(results["run_quick"], folder / "results_quick.png")
    mem = results.get("memory")
    if mem:
        lines += [
            "## Writer memory against scan size (`python -m benchmarks memory`)",
            "",
            f"`to_ptyd(save={mem['save']!r})` of lazily generated 512x512 uint16 frames (a bright disk plus counting noise, "
            "generated inside the Dask graph, 128 frames per block), gzip level 1 with shuffle, one frame per HDF5 chunk. "
            "Peak RSS of the whole child process (Python, numpy, dask and h5py included).",
            "",
            "| frames | data (GiB) | time (s) | MB/s | peak RSS (MiB) | RSS before writing (MiB) | file (GiB) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in mem["rows"]:
            mbs = r["data_gib"] * 1024 / r["seconds"]
            lines.append(
                f"| {r['frames']} | {r['data_gib']:.1f} | {r['seconds']:.1f} | {mbs:.0f} | {r['peak_rss_bytes'] / 2**20:.0f} | "
                f"{r['rss_before_write_bytes'] / 2**20:.0f} | {r['file_bytes'] / 2**30:.2f} |"
            )
        first, last = mem["rows"][0], mem["rows"][-1]
        ratio = last["peak_rss_bytes"] / first["peak_rss_bytes"]
        lines += ["", f"Peak memory of the largest scan / smallest scan: **{ratio:.2f}x** "
                      f"({last['data_gib']:.0f} GiB against {first['data_gib']:.0f} GiB of frames).", ""]
    (folder / "RESULTS.md").write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = p.add_subparsers(dest="case", required=True)
    r = sub.add_parser("run", help="end to end, memory, reading and scaling, side by side (issue 7)")
    r.add_argument("--quick", action="store_true", help="small scan, one repeat (a smoke test, ~2 min)")
    r.set_defaults(run=_run)
    m = sub.add_parser("memory", help="writer peak memory against scan size")
    m.add_argument("--sizes", type=float, nargs="+", default=[1, 2, 4, 8], help="GiB of frames per run")
    m.add_argument("--save", default="append")
    m.set_defaults(run=_memory)
    for sp in (r, m):
        sp.add_argument("--results", type=Path, default=HERE,
                        help="folder of results.json, RESULTS.md and the plots (default: benchmarks/)")
    args = p.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    results_json = args.results / "results.json"
    results = json.loads(results_json.read_text()) if results_json.exists() else {}
    new = args.run(args)
    if "run" in new and results.get("run") and results["run"]["config"].get("frames") == new["run"]["config"].get("frames"):
        from .report import history_entry  # keep the target ratios of the run being replaced

        new["run"]["history"] = (results["run"].get("history", []) + [history_entry(results["run"])])[-4:]
    results.update(new)
    results["machine"] = machine()
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results_json.write_text(json.dumps(results, indent=1))
    _write_markdown(results, args.results)
    print(f"wrote {args.results / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
