"""Run under ``mpiexec -n N``: ptydask.Hdf5Loader over MPI; each rank saves the frames of its packages.

``python hdf5loader_worker.py RAW OUT CHUNKS LOAD_PARALLEL`` (CHUNKS e.g. ``10,10,3``): every rank
calls ``auto(n)`` for each chunk size and writes ``OUT/rank<r>.npz`` with the
indices it got per chunk (``chunk.indices_node``) and their prepared frames,
masks and positions. When ptypy can be imported, ``OUT/rank<r>_ptypy.json``
holds ptypy's ``LoadManager`` assignment of the same chunks on this rank.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario import loader_pars  # noqa: E402

from ptydask.ptyscan import EOS, Hdf5Loader  # noqa: E402


def main(raw: str, out: str, chunks: list[int], load_parallel: str | None) -> None:
    comm = MPI.COMM_WORLD
    scan = Hdf5Loader(loader_pars(raw), comm=comm, num_frames=sum(chunks), load_parallel=load_parallel)
    scan.initialize()
    got: dict[str, list] = {"indices": [], "data": [], "mask": [], "positions": []}
    for n in chunks:
        pkg = scan.auto(n)
        mine = [int(i) for i in pkg["chunk"]["indices_node"]]
        got["indices"].append(mine)
        for it in pkg["iterable"]:
            if it["index"] in mine:
                got["data"].append(it["data"])
                got["mask"].append(it["mask"])
                got["positions"].append(it["position"])
    assert scan.auto(1) == EOS
    np.savez(Path(out) / f"rank{comm.rank}.npz", data=np.array(got["data"]), mask=np.array(got["mask"]),
             positions=np.array(got["positions"]), flat=np.array(sum(got["indices"], []), dtype=np.int64),
             chunks=json.dumps(got["indices"]))
    try:
        from ptypy.utils import parallel
    except ImportError:
        return
    manager, start, theirs = parallel.LoadManager(), 0, []
    for n in chunks:
        chunk = list(range(start, start + n))
        theirs.append([chunk[int(i)] for i in manager.assign(chunk)[comm.rank]])  # positions in the chunk
        start += n
    (Path(out) / f"rank{comm.rank}_ptypy.json").write_text(json.dumps(theirs))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(v) for v in sys.argv[3].split(",")], None if sys.argv[4] == "None" else sys.argv[4])
