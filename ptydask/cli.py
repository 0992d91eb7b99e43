"""The ``ptydask`` command: ``prepare``, ``demo``, ``inspect``, ``params``.

Errors in the input end the command with one line on stderr and exit code 2
(a traceback only with ``--debug``, accepted before or after the subcommand).
This module imports only the standard library and :mod:`ptydask.errors` until a
subcommand runs, so ``ptydask --help`` and ``ptydask --version`` are fast.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

from .version import __version__
from .errors import PtydaskError

#: Where the recipe parameters and the example recipes are documented (both exist whatever the install).
DOCS = ("every recipe parameter, with its default, unit and meaning: `ptydask params` "
        "(docs/recipe.md in the source tree); example recipes (HDF5/NeXus + positions, Eiger/ARINA master, "
        "CXI, TIFF folder, Merlin MIB): docs/examples/ in the source tree")


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
        print("ptydask: interrupted; the output was not written (an append run keeps its .incomplete file: "
              "continue it with --resume)", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptydask", description="Prepare ptychography data into ptypy .ptyd files, lazily and out of core.",
                                epilog=f"Documentation: {DOCS}.")
    p.add_argument("--version", action="version", version=f"ptydask {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors (also after the subcommand)")
    # the subcommands accept --debug too; SUPPRESS keeps a --debug given before the subcommand
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    prep = sub.add_parser("prepare", parents=[common],
                          help="run a recipe (ptypy scan.data parameters, JSON/YAML) and write the .ptyd",
                          description="Run a recipe end to end: read the raw frames, prepare them, write the .ptyd.",
                          epilog=f"Documentation: {DOCS}.")
    prep.add_argument("recipe", type=Path, help="recipe file (.json, .yaml)")
    prep.add_argument("--dfile", type=Path, help="output .ptyd (overrides the recipe's dfile)")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing output")
    prep.add_argument("--dry-run", action="store_true", help="print the resolved plan and write nothing")
    prep.add_argument("--resume", action="store_true", help="continue an interrupted append run")
    prep.add_argument("--format", choices=["ptyd", "cxi"], default="ptyd", dest="output_format",
                      help="write a ptypy .ptyd (default) or a CXI file (PyNX, cdtools, ptychodus)")
    prep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="progress bar (default: when stderr is a terminal)")
    prep.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                      help="override a recipe value (read as YAML), e.g. --set rebin=2; repeatable")
    prep.set_defaults(run=_prepare)

    demo = sub.add_parser("demo", parents=[common], help="simulate a raw far-field scan, prepare it and write a .ptyd")
    demo.add_argument("outdir", type=Path, help="folder for the raw file and the .ptyd")
    demo.add_argument("--frames", type=int, default=200, help="number of scan points (default 200)")
    demo.add_argument("--save", default="append", choices=["append", "link", "merge"], help="save mode (default append)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing demo output")
    demo.set_defaults(run=_demo)

    insp = sub.add_parser("inspect", parents=[common], help="print the tree of a .ptyd file with shapes, dtypes and meta")
    insp.add_argument("file", type=Path)
    insp.add_argument("--plot", type=Path, metavar="PNG", help="also write a quick-look overview (needs matplotlib)")
    insp.set_defaults(run=_inspect)

    params = sub.add_parser("params", parents=[common], help="print the reference of every recipe parameter (Markdown)",
                            description="Print the recipe reference generated from the installed parameter table "
                                        "(the text of docs/recipe.md).")
    params.set_defaults(run=_params)
    return p


def _params(args: argparse.Namespace) -> int:
    from .recipe import render_docs

    sys.stdout.write(render_docs())
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from .recipe import load_recipe, run_recipe

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        recipe = load_recipe(args.recipe, overrides=args.set, dfile=args.dfile)
        result = run_recipe(recipe, dry_run=args.dry_run, resume=args.resume, overwrite=args.overwrite,
                            progress=args.progress, output_format=args.output_format)
    if result.plan is not None:
        print(result.plan)
    print(result.summary())
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"ptydask: warning: {message}", file=sys.stderr)


def _inspect(args: argparse.Namespace) -> int:
    from .ptyd.inspect import describe_ptyd

    print(describe_ptyd(args.file))
    if args.plot is not None:
        from .plots import save_overview

        print(f"wrote {save_overview(args.file, args.plot)}")
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
