"""Render ``results.json`` of ``python -m benchmarks run`` as Markdown sections and a PNG plot."""

from __future__ import annotations

import statistics
from pathlib import Path

GB = 1e9
MiB = 2**20


def _ok(rows: list[dict]) -> list[float]:
    return [r["seconds"] for r in rows if "seconds" in r]


def _stats(rows: list[dict], key: str = "seconds") -> tuple[float, float, float, int] | None:
    vals = [r[key] for r in rows if key in r and "error" not in r]  # failed runs count nowhere
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals)


def _fmt(st) -> str:
    if st is None:
        return "failed"
    med, lo, hi, n = st
    return f"{med:.2f} ({lo:.2f}-{hi:.2f}, n={n})"


def _errors(rows: list[dict]) -> str:
    errs = [r for r in rows if "error" in r]
    return f" ({len(errs)} failed: {errs[0]['error']})" if errs else ""


E2E_LABELS = {
    "floor": "I/O floor: plain h5py read_direct by blocks + write the same output bytes",
    "ptydask": "ptydask `run_recipe` in-process (open_frames -> prepare -> to_ptyd)",
    "ptydask_cli": "`ptydask prepare recipe.json` whole command (interpreter start included)",
    "ptydask_h5py_decode": "ptydask in-process, raw-chunk decoding off (`ptydask.fast-read: false`: HDF5 decodes)",
    "numpy": "hand-written per-frame h5py + numpy loop, same steps",
    "ptypy": "ptypy's own PtyScan pipeline (minimal subclass driver), whole process",
}


def ratio_rows(results: dict) -> list[tuple[str, str, float | None, str]]:
    """(target, measured text, ratio, verdict) for the issue's targets."""
    e2e = results.get("e2e", {})
    out = []

    def med(kind: str, case: str, key: str = "seconds"):
        st = _stats(e2e.get(kind, {}).get(case, []), key)
        return None if st is None else st[0]

    f_plain, p_plain = med("plain", "floor"), med("plain", "ptydask")
    if f_plain and p_plain:
        r = f_plain / p_plain
        out.append(("end-to-end prepare, uncompressed input, in-process: >= 0.8x the I/O floor's speed",
                    f"floor {f_plain:.2f} s, ptydask {p_plain:.2f} s", r, "met" if r >= 0.8 else "NOT met"))
    f_c, p_c = med("bslz4", "floor"), med("bslz4", "ptydask")
    if f_c and p_c:
        r = f_c / p_c
        out.append(("end-to-end prepare, bitshuffle-LZ4 input: >= 1.5x the single-threaded h5py floor's speed",
                    f"floor {f_c:.2f} s, ptydask {p_c:.2f} s", r, "met" if r >= 1.5 else "NOT met"))
    for kind, label in (("bslz4", "bitshuffle-LZ4"), ("plain", "uncompressed")):
        c, p = med(kind, "ptydask_cli"), med(kind, "ptypy", "wall")
        if c and p:
            r = p / c
            out.append((f"`ptydask prepare` command >= 5x faster than ptypy's pipeline ({label} input, whole processes)",
                        f"ptypy {p:.1f} s, ptydask prepare {c:.1f} s", r, "met" if r >= 5 else "NOT met"))
        elif c and not results.get("ptypy"):
            out.append((f"`ptydask prepare` >= 5x faster than ptypy ({label})", "ptypy not importable: skipped", None, "skipped"))
    mem = results.get("memory_e2e", {})
    rows = [r for r in mem.get("rows", []) if "peak_rss_bytes" in r]
    if rows:
        sizes = sorted({r["frames_scan"] for r in rows})
        peak = {s: statistics.median([r["peak_rss_bytes"] for r in rows if r["frames_scan"] == s]) for s in sizes}
        r = peak[sizes[-1]] / peak[sizes[0]]
        out.append((f"peak memory flat: {sizes[-1] // sizes[0]}x scan <= 1.15x the peak of the 1x scan",
                    f"{peak[sizes[0]] / MiB:.0f} MiB -> {peak[sizes[-1]] / MiB:.0f} MiB", r, "met" if r <= 1.15 else "NOT met"))
    capped = mem.get("capped")
    if capped:
        over = capped["scan_bytes"] > capped["cap_bytes"]
        done = "seconds" in capped
        text = (f"{capped['scan_bytes'] / 2**30:.2f} GiB of frames under a {capped['cap_bytes'] / 2**30:.2f} GiB "
                f"address-space cap: {'finished in %.1f s' % capped['seconds'] if done else 'FAILED: %s' % capped.get('error')}")
        out.append(("scan larger than a memory cap completes", text, None,
                     ("met" if done else "NOT met") if over else ("finished, but the scan is not over the cap in this run" if done else "NOT met")))
    rd = results.get("reading", {})
    a, b = _stats(rd.get("open_ptyd", [])), _stats(rd.get("h5py", []))
    if a and b:
        r = b[0] / a[0]
        out.append(("reading: `open_ptyd(...).data.sum().compute()` >= 0.8x raw h5py's speed",
                    f"h5py {b[0]:.2f} s, open_ptyd {a[0]:.2f} s", r, "met" if r >= 0.8 else "NOT met"))
    return out


def _load_range(h: dict) -> str:
    vals = [float(v) for v in h.get("loads", [])]
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "?"


def history_entry(results: dict) -> dict:
    """The target ratios of a run, kept in ``results.json`` when a later run replaces it."""
    return {"date": results.get("date"), "loads": results.get("loads", []),
            "targets": [[t, r, v] for t, _, r, v in ratio_rows(results)]}


def markdown(results: dict) -> list[str]:
    cfg = results["config"]
    n = results["frames"]
    frame_bytes = results["frame_bytes"]
    raw_gb = n * frame_bytes / GB
    lines = [
        "## End to end, memory, reading, scaling (`python -m benchmarks run" + (" --quick" if cfg["frames"] < 1024 else "") + "`)",
        "",
        f"Input, generated by `benchmarks/data.py`: {n} frames of 512x512 uint16 ({n * frame_bytes / 2**30:.2f} GiB), "
        "a bright off-centre disk with a halo, flat-field variation, Poisson noise, Poisson dark current, a dead column, "
        "dead and hot pixels; dark and flat fields; spiral positions. Two files with the same frames: uncompressed "
        f"(contiguous, {results['raw_bytes']['plain'] / 2**30:.2f} GiB) and bitshuffle-LZ4, one frame per chunk "
        f"({results['raw_bytes']['bslz4'] / 2**30:.2f} GiB on disk).",
        "",
        "Preparation (every end-to-end case): dark subtraction and flat division (float64), automatic hot/dead-pixel "
        "mask, automatic centre (mean of per-frame masked centres of mass), ROI 256x256 around it, orientation 3 "
        "(flipud+fliplr), rebin 2 -> 128x128 float64 frames + bool weights, written as `.ptyd`.",
        "",
        "Output compression: **none** (`compression: null` in the recipe). The I/O floor writes exactly as many "
        "uncompressed bytes as the `.ptyd` holds; gzip (the default, for ptypy compatibility) would make ptydask "
        "spend its time in zlib on float64 data that barely compresses, which says nothing about the pipeline, and "
        "the floor would then have to write fewer bytes than it read anyway. ptypy writes its own way (gzip, h5py "
        "automatic chunks), as it always does.",
        "",
        f"Each case is a fresh process; cases interleaved in every repeat; {cfg['repeats']} repeats "
        f"({cfg['slow_repeats']} for the minute-long numpy-loop and ptypy cases, {cfg.get('memory_repeats', 1)} per "
        "memory size). Page cache warm (every file read once before timing); dirty pages flushed (`os.sync`) "
        "before every case, so that no case pays for the write-back of the previous one's output. Times in "
        "seconds: median (min-max, n). Speed ratio = the other's time / ptydask's time (>1: ptydask faster); "
        "for the floor, floor time / ptydask time (1.0 = as fast as the floor). 1-minute load averages seen during the "
        f"run (other engineers' test runs share these 2 cores): {', '.join(results.get('loads', []))}.",
        "",
        "### Targets",
        "",
        "| target | measured (medians) | ratio | verdict |",
        "|---|---|---:|---|",
    ]
    for target, text, r, verdict in ratio_rows(results):
        lines.append(f"| {target} | {text} | {'' if r is None else f'{r:.2f}x'} | {verdict} |")
    if not results.get("ptypy"):
        lines += ["", "ptypy was **not importable** in this run: every ptypy case was skipped."]
    else:
        lines += ["", f"ptypy: the source checkout at `{results.get('ptypy_src', 'PTYPY_SRC')}` on PYTHONPATH "
                      f"(it reports version `{results.get('ptypy')}`), driven by `benchmarks/ptypy_driver.py`: "
                      "ptypy's PtyScan does auto-centre (over its first chunk of "
                      f"{cfg['frames_per_call']} frames), ROI, orientation, rebin and writing; the driver only reads "
                      "frames one by one, corrects dark/flat and hands over the detector's known bad pixels as the "
                      "mask (ptypy has no automatic masks)."]
    lines += ["", "Where the time goes (column *before / pass* of section 1: the time before the pass that "
                  "writes the frames, and the rest): `run_recipe` reads the raw frames once "
                  "(`ptydask.prepare_to_ptyd`): it reads the first block alone to guess the automatic masks and "
                  "centre (and to pick the candidate pixels of the one-pass centre), then one pass cuts, corrects, "
                  "orients, rebins and writes every block on the guessed window while measuring the masks and the "
                  "centre on the same raw block; meta, info and weights are fixed before the file is renamed into "
                  "place (the frames are written again only if the centre over all frames falls into another pixel "
                  "than the first block's). Compared with the floor it does the float64 arithmetic (corrections, "
                  "per-pixel statistics, centre sums, rebin) on 2 cores, and reads the first block twice. "
                  "Measured per 256-frame 512x512 block on one core: statistics + centre sums 29 ms, cut + "
                  "corrections + orientation + rebin 31 ms, bitshuffle-LZ4 decoding 60 ms; the run is "
                  "CPU-bound (user + system time about 1.5 + 0.9 s uncompressed, 2.9 + 1.3 s bitshuffle-LZ4, "
                  "where the system time is the kernel copying the written bytes into the page cache, mapping "
                  "the raw file and zeroing fresh memory). 1.5x the compressed floor means about 1.1-1.2 s here: "
                  "2 cores give 2.2-2.5 s of CPU, of which the decoding (1.0 s) and the arithmetic (1.0 s) alone "
                  "take 2.0 s, before any writing. The floor's own time varies most between repeats, which moves "
                  "every ratio to it: its 36 MiB writes go through the kernel's copy into the page cache, which "
                  "on this machine is sometimes much slower (perf on a ptydask variant that wrote 32 MiB at once "
                  "found a third of its CPU there, and its runs varied as the floor's do; ptydask writes one "
                  "HDF5 chunk of 128 KiB at a time)."]

    history = [h for h in results.get("history", []) if h.get("date") != results.get("date")]
    if history:
        runs = history + [{"date": results.get("date", "this run"), "loads": results.get("loads", []),
                           "targets": [[t, r, v] for t, _, r, v in ratio_rows(results)]}]
        lines += ["", "Target ratios in earlier full runs (each of the code of its day; the machine's load differs between runs; "
                      "the tables below are this run's):", "",
                  "| target | " + " | ".join(f"{h['date']} (load {_load_range(h)})" for h in runs) + " |",
                  "|---|" + "---:|" * len(runs)]
        for i, (target, _, _, _) in enumerate(ratio_rows(results)):
            cells = []
            for h in runs:
                row = next((t for t in h["targets"] if t[0] == target), None)
                cells.append("" if row is None else (f"{row[1]:.2f}x" if row[1] is not None else str(row[2])))
            lines.append(f"| {target} | " + " | ".join(cells) + " |")

    lines += ["", "### 1. End-to-end preparation", ""]
    for kind, label in (("plain", "uncompressed input"), ("bslz4", "bitshuffle-LZ4 input")):
        rows = results["e2e"].get(kind, {})
        floor = _stats(rows.get("floor", []))
        lines += [f"**{label}**", "", "| case | time (s) | before / pass (s) | whole process (s) | "
                  "GB/s of raw frames | vs floor | peak RSS (MiB) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for case, rs in rows.items():
            st, wall = _stats(rs), _stats(rs, "wall")
            rss = _stats(rs, "peak_rss_bytes")
            red = _stats(rs, "reductions_seconds")
            split = f"{red[0]:.2f} / {st[0] - red[0]:.2f}" if red and st else ""
            speed = f"{raw_gb / st[0]:.2f}" if st else ""
            vs = f"{floor[0] / st[0]:.2f}x" if st and floor else ""
            lines.append(f"| {E2E_LABELS.get(case, case)} | {_fmt(st)}{_errors(rs)} | {split} | {_fmt(wall)} | {speed} | "
                         f"{vs} | {'' if rss is None else f'{rss[0] / MiB:.0f}'} |")
        lines.append("")

    mem = results.get("memory_e2e", {})
    if mem:
        lines += ["### 2. Memory of the whole preparation against scan length", "",
                  "ptydask `run_recipe` (uncompressed input, `num_frames` selects the first N frames of the same file); "
                  "peak RSS of the child process.", "",
                  "| frames | frames (GiB) | time (s) | peak RSS (MiB) |", "|---:|---:|---:|---:|"]
        for s in sorted({r["frames_scan"] for r in mem["rows"]}):
            rs = [r for r in mem["rows"] if r["frames_scan"] == s]
            rss = _stats(rs, "peak_rss_bytes")
            lines.append(f"| {s} | {s * frame_bytes / 2**30:.2f} | {_fmt(_stats(rs))} | "
                         f"{'failed' if rss is None else f'{rss[0] / MiB:.0f} ({rss[1] / MiB:.0f}-{rss[2] / MiB:.0f})'} |")
        c = mem.get("capped")
        if c:
            lines += ["", f"Over the cap: the {c['scan_bytes'] / 2**30:.2f} GiB scan run under `RLIMIT_AS` = "
                          f"{c['cap_bytes'] / 2**30:.2f} GiB (address space, stricter than resident memory): "
                          + (f"finished in {c['seconds']:.1f} s, peak RSS {c['peak_rss_bytes'] / MiB:.0f} MiB."
                             if "seconds" in c else f"**failed**: {c.get('error')}")]
        lines.append("")

    rd = results.get("reading", {})
    if rd:
        rb = results.get("reading_bytes", {})
        lines += ["### 3. Reading a `.ptyd`", "",
                  f"The uncompressed ptydask output of the end-to-end run ({rb.get('ptydask', 0) / MiB:.0f} MiB, "
                  f"{n} frames of 128x128 float64). `open_ptyd(path).data.sum().compute()` against plain h5py reading "
                  "each chunk group's `data` with `read_direct` and summing it. ptypy's `PtydScan` (`auto(n)` until "
                  "the end, summing every frame) on that file and on ptypy's own file of the same frames "
                  f"(written by ptypy's PtyScan from them: gzip, h5py automatic chunks, {rb.get('ptypy', 0) / MiB:.0f} MiB).",
                  "", "| case | time (s) | ratio (h5py time / time) |", "|---|---:|---:|"]
        base = _stats(rd.get("h5py", []))
        for case, rs in rd.items():
            st = _stats(rs)
            lines.append(f"| {case} | {_fmt(st)}{_errors(rs)} | {f'{base[0] / st[0]:.2f}x' if st and base else ''} |")
        a, b = _stats(rd.get("ptypy_on_ptydask_file", [])), _stats(rd.get("ptypy_on_ptypy_file", []))
        if a and b:
            lines += ["", f"ptypy reads the ptydask file **{b[0] / a[0]:.1f}x** faster than its own file of the same frames."]
        lines.append("")

    sc = results.get("scaling", {})
    if sc:
        lines += ["### 4. Scaling on compressed (bitshuffle-LZ4) input", "",
                  "The same end-to-end preparation with 2 workers: Dask threads (default, in-process), a distributed "
                  "LocalCluster of 2 single-threaded worker processes (cluster start-up excluded, given separately), "
                  "and 2 MPI ranks (`mpiexec -n 2`: `ptydask.parallel.split_scan` -> `prepare_mpi` -> `to_ptyd_mpi`, "
                  "save='link', each rank writes its own part files).", "",
                  "| mode | time (s) | whole process (s) | peak RSS (MiB, largest process) | vs threads |", "|---|---:|---:|---:|---:|"]
        base = _stats(sc.get("threads", []))
        for case, rs in sc.items():
            st, wall, rss = _stats(rs), _stats(rs, "wall"), _stats(rs, "peak_rss_bytes")
            extra = ""
            if case == "processes":
                su = _stats(rs, "cluster_startup")
                extra = f" (+ {su[0]:.1f} s cluster start-up)" if su else ""
            lines.append(f"| {case} | {_fmt(st)}{extra}{_errors(rs)} | {_fmt(wall)} | "
                         f"{'' if rss is None else f'{rss[0] / MiB:.0f}'} | {f'{base[0] / st[0]:.2f}x' if st and base else ''} |")
        lines.append("")
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = results["frames"]
    raw_gb = n * results["frame_bytes"] / GB
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    # 1. end to end throughput
    ax = axes[0, 0]
    cases = ["floor", "ptydask", "ptydask_cli", "ptydask_h5py_decode", "numpy", "ptypy"]
    labels = {"floor": "I/O floor", "ptydask": "ptydask", "ptydask_cli": "ptydask\nprepare CLI",
              "ptydask_h5py_decode": "ptydask\nHDF5 decode", "numpy": "numpy loop", "ptypy": "ptypy"}
    width = 0.38
    for j, (kind, color) in enumerate((("plain", "tab:blue"), ("bslz4", "tab:orange"))):
        rows = results["e2e"].get(kind, {})
        xs, ys, lo, hi = [], [], [], []
        for i, c in enumerate(cases):
            st = _stats(rows.get(c, []))
            if st:
                xs.append(i + (j - 0.5) * width)
                ys.append(raw_gb / st[0])
                lo.append(raw_gb / st[0] - raw_gb / st[2])
                hi.append(raw_gb / st[1] - raw_gb / st[0])
        ax.bar(xs, ys, width, yerr=[lo, hi], color=color, capsize=3,
               label="uncompressed" if kind == "plain" else "bitshuffle-LZ4")
        for x, y in zip(xs, ys):
            ax.text(x, y * 1.08, f"{y:.2f}" if y >= 0.1 else f"{y:.3f}", ha="center", fontsize=6.5)
    ax.set_xticks(range(len(cases)), [labels[c] for c in cases], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("GB/s of raw frames (log; higher is better)")
    ax.set_title(f"1. End-to-end prepare, {n} frames 512x512 uint16")
    ax.legend()
    # 2. memory
    ax = axes[0, 1]
    mem = results.get("memory_e2e", {})
    rows = [r for r in mem.get("rows", []) if "peak_rss_bytes" in r]
    if rows:
        sizes = sorted({r["frames_scan"] for r in rows})
        med = [statistics.median([r["peak_rss_bytes"] / MiB for r in rows if r["frames_scan"] == s]) for s in sizes]
        gib = [s * results["frame_bytes"] / 2**30 for s in sizes]
        ax.plot(gib, med, "o-", label="ptydask peak RSS")
        ax.plot(gib, [g * 1024 for g in gib], "k--", lw=0.8, label="size of the frames")
        c = mem.get("capped")
        if c and "peak_rss_bytes" in c:
            ax.plot([c["scan_bytes"] / 2**30], [c["peak_rss_bytes"] / MiB], "r*", ms=12,
                    label=f"under {c['cap_bytes'] / 2**30:.1f} GiB cap")
        ax.set_xlabel("frames in the scan (GiB)")
        ax.set_ylabel("peak RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    ax.set_title("2. Memory against scan length")
    # 3. reading
    ax = axes[1, 0]
    rd = results.get("reading", {})
    names = [k for k in ("h5py", "open_ptyd", "ptypy_on_ptydask_file", "ptypy_on_ptypy_file") if _stats(rd.get(k, []))]
    vals = [_stats(rd[k]) for k in names]
    ax.bar(range(len(names)), [v[0] for v in vals], yerr=[[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]],
           color=["tab:gray", "tab:blue", "tab:green", "tab:red"][: len(names)], capsize=3)
    for i, v in enumerate(vals):
        ax.text(i, v[0] * 1.1, f"{v[0]:.2f} s", ha="center", fontsize=7)
    ax.set_xticks(range(len(names)), ["h5py", "open_ptyd\n.sum()", "ptypy PtydScan\nptydask file",
                                      "ptypy PtydScan\nptypy's file"][: len(names)], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (log, lower is better)")
    ax.set_title("3. Reading the prepared .ptyd")
    # 4. scaling
    ax = axes[1, 1]
    sc = results.get("scaling", {})
    names = [k for k in ("threads", "processes", "mpi") if _stats(sc.get(k, []))]
    vals = [_stats(sc[k]) for k in names]
    ax.bar(range(len(names)), [raw_gb / v[0] for v in vals],
           yerr=[[raw_gb / v[0] - raw_gb / v[2] for v in vals], [raw_gb / v[1] - raw_gb / v[0] for v in vals]],
           color="tab:orange", capsize=3)
    for i, v in enumerate(vals):
        ax.text(i, raw_gb / v[0] * 1.15, f"{raw_gb / v[0]:.3f} GB/s, {v[0]:.1f} s", ha="center", fontsize=7)
    fl = _stats(results["e2e"].get("bslz4", {}).get("floor", []))
    if fl:
        ax.axhline(raw_gb / fl[0], color="k", ls="--", lw=0.8, label="single-threaded h5py floor")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)), ["2 threads", "2 processes\n(LocalCluster)", "2 MPI ranks"][: len(names)])
    ax.set_yscale("log")
    ax.set_ylabel("GB/s of raw frames (log)")
    ax.set_title("4. Scaling, bitshuffle-LZ4 input")
    fig.suptitle(results.get("machine", ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
