"""Parallel execution: which rank owns which frames (MPI), MPI and distributed ``.ptyd`` writers, clusters.

- :mod:`.split` / :mod:`.plan`: ptypy's frame -> rank split, applied to the Dask blocks of a Scan;
- :mod:`.mpi`: ``split_scan`` (each rank's frames, ``load_parallel``); :mod:`.measure`: ``prepare_mpi``
  (global quantities combined over ranks); :mod:`.mpi_write`: ``to_ptyd_mpi``;
- :mod:`.distributed`: ``to_ptyd_distributed`` (workers write their own part files);
- :mod:`.cluster`: ``connect`` / ``make_cluster`` (local or dask-jobqueue batch clusters).

Nothing here imports ``mpi4py`` or ``dask_jobqueue`` until a function that needs it is called.
"""

from __future__ import annotations

import importlib
from typing import Any

from .split import FrameSplitter, split_counts

_LAZY = {
    "plan_pieces": ".plan", "Piece": ".plan",
    "split_scan": ".mpi", "local_frames": ".mpi", "ParallelReadWarning": ".mpi",
    "prepare_mpi": ".measure", "combine_measurements": ".measure",
    "to_ptyd_mpi": ".mpi_write", "ParallelWriteError": ".mpi_write",
    "to_ptyd_distributed": ".distributed",
    "connect": ".cluster", "make_cluster": ".cluster", "load_spec": ".cluster",
}

__all__ = ["FrameSplitter", "split_counts", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
