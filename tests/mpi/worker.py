"""Run under ``mpiexec -n N``: split, prepare and write a raw scan on every rank; save what each rank saw.

Usage: python worker.py RAW.h5 OUTDIR. Writes OUTDIR/rank<r>.npz (frames, global frame numbers and
the frame ranges each rank read from the raw file, per load_parallel value; prepared frames and
weights; the measured centre), the .ptyd files written by to_ptyd_mpi, and OUTDIR/rank<r>.json
(errors raised by the failure scenarios). The checks are made by tests/test_mpi.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dask.array as da
import numpy as np
from mpi4py import MPI

import ptydask.sources.hdf5 as hdf5
from ptydask.parallel.measure import prepare_mpi
from ptydask.parallel.mpi import local_frames, split_scan
from ptydask.parallel.mpi_write import to_ptyd_mpi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario import PREPARE, open_raw, tiny_scan  # noqa: E402

READS: list[tuple[int, int]] = []
_read = hdf5.Hdf5Reader.read


def logged_read(self, start, stop):
    READS.append((start, stop))
    return _read(self, start, stop)


hdf5.Hdf5Reader.read = logged_read


def main(raw: str, out: str) -> None:
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    out_dir = Path(out)
    scan = open_raw(raw)
    saved: dict[str, np.ndarray] = {}
    for mode in ("data", "all", "common", None):
        READS.clear()
        local = split_scan(scan, comm, mode)
        saved[f"frames_{mode}"] = local["data"].values
        saved[f"positions_{mode}"] = local["positions"].values
        saved[f"index_{mode}"] = local_frames(local)
        saved[f"reads_{mode}"] = np.array(READS, dtype=np.int64).reshape(-1, 2)
        saved[f"blocks_{mode}"] = np.array(local["data"].data.chunks[0])

    READS.clear()
    local = split_scan(scan, comm, "data")
    prepared = prepare_mpi(local, comm, **PREPARE)
    saved["prepared"] = prepared["data"].values
    saved["prepared_weights"] = prepared["weights"].values
    saved["center"] = np.asarray(prepared.attrs["info"]["center"])
    saved["masks"] = np.array([prepared.attrs["info"]["masks"].get(k, -1) for k in ("saturated", "dead", "hot")])
    to_ptyd_mpi(prepared, out_dir / "link.ptyd", comm, save="link")
    to_ptyd_mpi(prepared, out_dir / "append.ptyd", comm, save="append")
    to_ptyd_mpi(scan, out_dir / "raw_none.ptyd", comm, save="append", load_parallel=None)
    saved["reads_prepare_write"] = np.array(READS, dtype=np.int64).reshape(-1, 2)

    lazy_small = tiny_scan()  # lazy 2-D weights: who evaluates them depends on load_parallel
    lazy_small["weights"] = (("y", "x"), da.ones((4, 4), chunks=-1).map_blocks(_count_small, dtype=float))
    for mode in ("data", "all", "common", None):
        SMALL.clear()
        part = split_scan(lazy_small, comm, mode)
        saved[f"small_evals_{mode}"] = np.array(len(SMALL))
        saved[f"small_weights_{mode}"] = part["weights"].values
    np.savez(out_dir / f"rank{rank}.npz", **saved)

    tiny = tiny_scan()  # fewer frames than ranks: with 3 ranks, rank 0 gets none
    to_ptyd_mpi(tiny, out_dir / "tiny_link.ptyd", comm, save="link")
    to_ptyd_mpi(tiny, out_dir / "tiny_append.ptyd", comm, save="append", load_parallel=None)

    errors = {}
    for mode, failing in (("data", 0), ("all", 1), ("common", 1), (None, 0)):
        bad = tiny_scan()
        if mode is None:  # rank 0 reads every frame: make that fail
            bad["data"] = (("frame", "y", "x"), bad["data"].data.map_blocks(_boom, dtype=bad["data"].dtype))
        else:  # the rank that evaluates the lazy weights fails
            func = _boom if rank == failing else _count_small
            bad["weights"] = (("y", "x"), da.ones((4, 4), chunks=-1).map_blocks(func, dtype=float))
        try:
            split_scan(bad, comm, mode)
            errors[f"split_{mode}_rank{failing}"] = None
        except Exception as exc:  # noqa: BLE001
            errors[f"split_{mode}_rank{failing}"] = type(exc).__name__ + ": " + str(exc)[:200]
    for failing in (0, 1):
        for save in ("link", "append"):
            bad = local.copy()
            if rank == failing:
                bad["data"] = (("frame", "y", "x"), local["data"].data.map_blocks(_boom, dtype=local["data"].dtype))
            name = f"fail_{save}_rank{failing}"
            try:
                to_ptyd_mpi(bad, out_dir / f"{name}.ptyd", comm, save=save)
                errors[name] = None
            except Exception as exc:  # noqa: BLE001
                errors[name] = type(exc).__name__ + ": " + str(exc)[:200]
    (out_dir / f"rank{rank}.json").write_text(json.dumps(errors))
    comm.Barrier()


SMALL: list[int] = []


def _count_small(block: np.ndarray) -> np.ndarray:
    SMALL.append(1)
    return block * 2


def _boom(block: np.ndarray) -> np.ndarray:
    raise RuntimeError("injected failure while computing a block")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
