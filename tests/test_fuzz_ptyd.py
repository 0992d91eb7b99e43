"""Fuzzing the reader: mutated .ptyd files raise only ptydask errors, never hang, never over-allocate.

Mutations: byte flips and overwrites anywhere in the file, truncation, and structural edits made
with h5py (type tags, dtypes, shapes, deleted or replaced objects, huge declared sizes, links).
Every opened file is also read to the end (data, weights, positions).
"""

from __future__ import annotations

import shutil
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ptydask
from ptydask.errors import PtydaskError

FUZZ_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNTS = {"opened": 0, "refused": 0}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 500, (9, 8, 8)).astype(np.uint16)
    scan = ptydask.from_arrays(frames, rng.standard_normal((9, 2)) * 1e-6, rng.random((9, 8, 8)) > 0.1,
                               energy=6.2, distance=3.0, psize=5.5e-5, chunks=4, center=(4, 4), label="seed")
    ptydask.to_ptyd(scan, d / "append.ptyd", compression=None)
    ptydask.to_ptyd(scan, d / "link.ptyd", save="link")
    return d


def _read_everything(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan = ptydask.open_ptyd(path)
        scan["data"].data.sum().compute(scheduler="sync")
        scan["weights"].sum().compute(scheduler="sync")
        if "positions" in scan:
            np.asarray(scan["positions"].values).sum()
    return scan


def _check(path):
    try:
        _read_everything(path)
        COUNTS["opened"] += 1
    except PtydaskError:
        COUNTS["refused"] += 1


@FUZZ_SETTINGS
@given(data=st.data())
def test_byte_mutations(seeds, tmp_path, data):
    name = data.draw(st.sampled_from(["append.ptyd", "link.ptyd"]))
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(seeds, work)
    target = data.draw(st.sampled_from([name] + ([f"link.ptyd.chunk0{i}" for i in range(3)] if name == "link.ptyd" else [])))
    raw = bytearray((work / target).read_bytes())
    kind = data.draw(st.sampled_from(["flip", "overwrite", "truncate"]))
    if kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = raw[pos] ^ (1 << data.draw(st.integers(0, 7))) if kind == "flip" else data.draw(st.integers(0, 255))
    (work / target).write_bytes(bytes(raw))
    _check(work / name)


def _pick(rng: np.random.Generator, options: list):
    return options[int(rng.integers(len(options)))]


def _structural(f: h5py.File, rng: np.random.Generator, kind: str) -> None:
    objs = []
    f.visit(objs.append)
    victim = objs[rng.integers(len(objs))]
    if kind == "tag":
        f[victim].attrs["type"] = _pick(rng, ["pickle", "record_array", "bogus", "None", "scalar", "dict", "list", "array"])
    elif kind == "delete":
        del f[victim]
    elif kind == "to_group":
        del f[victim]
        f.create_group(victim)
    elif kind == "to_string":
        del f[victim]
        f[victim] = "not a number"
        f[victim].attrs["type"] = "string"
    elif kind == "dtype":
        if isinstance(f[victim], h5py.Dataset) and f[victim].shape not in (None,):
            try:
                data = np.asarray(f[victim][()]).astype(_pick(rng, ["f4", "i1", "u8", "S4", "c8"]))
            except (ValueError, TypeError):  # e.g. a text value that is no number: keep it
                return
            tag = f[victim].attrs.get("type")
            del f[victim]
            f[victim] = data
            if tag is not None:
                f[victim].attrs["type"] = tag
    elif kind == "huge":
        del f[victim]
        f.create_dataset(victim, shape=(2**31, 4096, 4096), dtype="f8", chunks=(1, 64, 64))
        f[victim].attrs["type"] = "array"
    elif kind == "num_frames":
        del f["meta/num_frames"]
        f["meta/num_frames"] = _pick(rng, [-5, 2**62, 1.5, np.nan])
        f["meta/num_frames"].attrs["type"] = "scalar"
    elif kind == "center":
        del f["meta/center"]
        f["meta/center"] = _pick(rng, [np.array([0.0, 0.0]), np.array([np.nan, 1.0]), np.array([1.0, 2.0, 3.0]), np.array([1e300, 4.0])])
        f["meta/center"].attrs["type"] = "array"
    elif kind == "link":
        if "chunks/0" in f:
            del f["chunks/0"]
        f["chunks/0"] = h5py.ExternalLink(_pick(rng, ["/etc/passwd", "../x.h5", "missing.h5", "link.ptyd"]), "/")
    elif kind == "softlink":
        if "chunks/1" in f:
            del f["chunks/1"]
        f["chunks/1"] = h5py.SoftLink("/chunks")  # a cycle


@FUZZ_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(
    ["tag", "delete", "to_group", "to_string", "dtype", "huge", "num_frames", "center", "link", "softlink"]))
def test_structural_mutations(seeds, tmp_path, seed, kind):
    work = tmp_path / "s"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(seeds, work)
    rng = np.random.default_rng(seed)
    name = "append.ptyd" if rng.random() < 0.6 else "link.ptyd"
    with h5py.File(work / name, "a") as f:
        _structural(f, rng, kind)
    _check(work / name)


def test_fuzz_reached_both_outcomes():
    """The fuzzing above exercised both outcomes (run in the same session, after it)."""
    if COUNTS["opened"] + COUNTS["refused"] == 0:
        pytest.skip("fuzz tests did not run in this session")
    print(f"fuzz cases: {COUNTS}")
    assert COUNTS["opened"] > 0 and COUNTS["refused"] > 0
