"""``prepare`` against ptypy's own reference preparations (``case_*.ptyd``), bit for bit.

Each case's raw input is read with h5py, wrapped with ``from_arrays`` and
prepared with the case's ``data`` parameters; the result must equal ptypy's
output (data, weights and their dtypes, positions, indices, meta) for every
Dask chunking.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptydask.scan import from_arrays
from ptydask.steps import prepare

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("PTYDASK_SHARED", REPO.parent / "shared")) / "fixtures" / "ptypy"
CASES = sorted(p for p in FIXTURES.glob("case_*.json") if not p.name.endswith(".recipe.json"))
#: Parameters of ``scan.data`` that go to ``from_arrays`` or only concern saving.
NOT_PREPARE = ("save", "dfile", "psize", "energy", "distance", "label")
CHUNKINGS = {"1-per-block": 1, "7-per-block": 7, "one-block": None}


@lru_cache(maxsize=None)
def raw_input(name: str, data: str, slow: str, fast: str, mask: str | None):
    with h5py.File(FIXTURES / name, "r") as f:
        frames = f[data][()]
        positions = np.stack([f[slow][()], f[fast][()]], axis=1)
        weights = None if mask is None else f[mask][()]
    return frames, positions, weights


def reference(path: Path) -> dict:
    """ptypy's output read with plain h5py; chunks concatenated in integer order."""
    with h5py.File(path, "r") as f:
        names = sorted(f["chunks"], key=int)
        out = {k: np.concatenate([f["chunks"][n][k][()] for n in names]) for k in ("data", "weights", "positions", "indices")}
        meta = f["meta"]
        out["meta"] = {k: meta[k][()] for k in meta}
        out["label_type"] = meta["label"].attrs.get("type")
    return out


def run_case(case_path: Path, chunks: int | None):
    case = json.loads(case_path.read_text())
    raw, pars = case["raw"], dict(case["data"])
    frames, positions, weights = raw_input(raw["file"], raw["data"], raw["pos_slow"], raw["pos_fast"], raw["mask"])
    scan = from_arrays(
        frames, positions, weights=weights, energy=pars["energy"], distance=pars["distance"],
        psize=pars["psize"], label=pars.get("label"), chunks=chunks or len(frames),
    )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in pars.items() if k not in NOT_PREPARE}
    return prepare(scan, **kwargs)


@pytest.mark.skipif(not CASES, reason=f"no ptypy fixtures at {FIXTURES} (set PTYDASK_SHARED)")
@pytest.mark.filterwarnings("ignore:shape. non-square ROI")
@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_matches_ptypy(case_path: Path, chunks: int | None) -> None:
    ref = reference(case_path.with_suffix(".ptyd"))
    out = run_case(case_path, chunks)
    data = out["data"].values
    weights = out["weights"].values
    if weights.ndim == 2:
        weights = np.broadcast_to(weights, data.shape)

    assert data.dtype == ref["data"].dtype
    assert weights.dtype == ref["weights"].dtype
    np.testing.assert_array_equal(data, ref["data"], strict=True)
    np.testing.assert_array_equal(weights, ref["weights"])
    np.testing.assert_array_equal(out["positions"].values, ref["positions"], strict=True)
    np.testing.assert_array_equal(out["indices"].values, ref["indices"])

    meta, a = ref["meta"], out.attrs
    np.testing.assert_array_equal(np.asarray(a["center"], dtype=np.float64), meta["center"], strict=True)
    np.testing.assert_array_equal(np.asarray(a["shape"], dtype=np.int64), meta["shape"], strict=True)
    np.testing.assert_array_equal(np.asarray(a["psize"], dtype=np.float64), meta["psize"], strict=True)
    assert a["num_frames"] == meta["num_frames"]
    assert a["energy"] == meta["energy"]
    assert a["distance"] == meta["distance"]
    if ref["label_type"] == "None":
        assert a["label"] is None
    else:
        assert a["label"] == meta["label"].decode()


@pytest.mark.skipif(not CASES, reason=f"no ptypy fixtures at {FIXTURES} (set PTYDASK_SHARED)")
def test_every_case_is_covered() -> None:
    """The README promises 11 reference preparations; all of them are exercised above."""
    assert len(CASES) == 11
