"""Shared test fixtures: where the shared fixtures and real data live; a local Dask cluster."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # allow running the suite from a plain checkout
    sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("PTYDASK_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "ptypy"
REAL = SHARED / "data" / "real"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared folder not found at {SHARED} (set PTYDASK_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def ptypy_fixtures(shared_dir: Path) -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def real_data(shared_dir: Path) -> Path:
    return REAL


@contextmanager
def local_client(**cluster_options: Any) -> Iterator[Any]:
    """A ``distributed.Client`` (not the default one) of a LocalCluster with 2 single-threaded worker
    processes; LocalCluster sets OMP_NUM_THREADS=1 & co. in this process, so the environment is
    restored afterwards."""
    import distributed

    environ = dict(os.environ)
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None,
                                       **cluster_options)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        os.environ.clear()
        os.environ.update(environ)
