"""Shared test fixtures: where the shared fixtures and real data live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
