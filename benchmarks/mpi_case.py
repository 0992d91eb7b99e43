"""Run under ``mpiexec -n N``: the benchmark recipe with ``ptydask.parallel`` (split_scan -> prepare_mpi
-> to_ptyd_mpi, ``save='link'``: every rank writes its own part files). Rank 0 prints one JSON line."""

from __future__ import annotations

import json
import resource
import sys
import time

from mpi4py import MPI


def main() -> None:
    recipe_path = sys.argv[1]
    comm = MPI.COMM_WORLD
    from ptydask.parallel import prepare_mpi, split_scan, to_ptyd_mpi
    from ptydask.recipe import load_recipe
    from ptydask.recipe.run import open_recipe_source, output_path, prepare_kwargs

    recipe = load_recipe(recipe_path)
    comm.Barrier()
    t0 = time.perf_counter()
    scan = open_recipe_source(recipe)
    local = split_scan(scan, comm)
    prepared = prepare_mpi(local, comm, **prepare_kwargs(recipe, scan))
    path = to_ptyd_mpi(prepared, output_path(recipe), comm, save="link", overwrite=True,
                       compression=recipe["compression"])
    comm.Barrier()
    seconds = time.perf_counter() - t0
    peaks = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, root=0)
    if comm.Get_rank() == 0:
        print(json.dumps({"seconds": seconds, "ranks": comm.Get_size(), "peak_rss_bytes": max(peaks),
                          "path": str(path)}))


if __name__ == "__main__":
    main()
