"""The ``ptydask`` command: ``demo``, ``inspect``.

Errors in the input end the command with one line on stderr and exit code 2
(a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import PtydaskError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except PtydaskError as exc:
        if args.debug:
            raise
        print(f"ptydask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ptydask: interrupted; no output was left half-written", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptydask", description="Prepare ptychography data into ptypy .ptyd files, lazily and out of core.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command")

    demo = sub.add_parser("demo", help="simulate a raw far-field scan, prepare it and write a .ptyd")
    demo.add_argument("outdir", type=Path, help="folder for the raw file and the .ptyd")
    demo.add_argument("--frames", type=int, default=200, help="number of scan points (default 200)")
    demo.add_argument("--save", default="append", choices=["append", "link", "merge"], help="save mode (default append)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing demo output")
    demo.set_defaults(run=_demo)

    insp = sub.add_parser("inspect", help="print the tree of a .ptyd file with shapes, dtypes and meta")
    insp.add_argument("file", type=Path)
    insp.set_defaults(run=_inspect)
    return p


def _inspect(args: argparse.Namespace) -> int:
    from .ptyd.inspect import describe_ptyd

    print(describe_ptyd(args.file))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    t0 = time.perf_counter()
    for line in run_demo(args.outdir, frames=args.frames, save=args.save, overwrite=args.overwrite):
        print(line, flush=True)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
