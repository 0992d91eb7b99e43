"""Run under ``mpiexec -n N``: ``prepare_mpi`` for every combination of automatic masks, centre and user mask.

Usage: python masks_worker.py RAW.h5 OUTDIR. Writes OUTDIR/masks_rank<r>.npz (per combination: the
prepared frames, weights, centre, mask counts and global frame numbers); tests/test_steps_mask_combinations.py
compares them with the serial ``prepare``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ptydask.parallel.measure import prepare_mpi
from ptydask.parallel.mpi import local_frames, split_scan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario import open_raw  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_steps_mask_combinations import MPI_CASES, user_mask_of  # noqa: E402


def main(raw: str, out: str) -> None:
    comm = MPI.COMM_WORLD
    scan = open_raw(raw)
    local = split_scan(scan, comm, "data")
    saved: dict[str, np.ndarray] = {"index": local_frames(local)}
    for name, kw in MPI_CASES.items():
        prepared = prepare_mpi(local, comm, mask=user_mask_of(scan), **kw)
        saved[f"{name}/data"] = prepared["data"].values
        saved[f"{name}/weights"] = prepared["weights"].values
        saved[f"{name}/center"] = np.asarray(prepared.attrs["info"]["center"])
        counts = prepared.attrs["info"].get("masks", {})
        saved[f"{name}/masks"] = np.array([counts.get(k, -1) for k in ("saturated", "dead", "hot", "user")])
    np.savez(Path(out) / f"masks_rank{comm.Get_rank()}.npz", **saved)
    comm.Barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
