"""A damaged global heap (where HDF5 keeps variable-length strings) is refused, not left to hang HDF5.

HDF5 2.0 loops for ever inside one C call when a collection's free-space object
declares size 0 (found by tests/test_fuzz_ptyd.py); these tests make that exact
damage on purpose and expect a clear error naming the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

import ptydask
from ptydask.errors import FormatError, SourceError
from ptydask.io.heap import heap_problem


def _free_space_at(raw: bytes) -> int:
    """Byte offset of the size field of the free-space object (index 0) of the first collection."""
    start = raw.index(b"GCOL")
    total = struct.unpack("<Q", raw[start + 8 : start + 16])[0]
    p = 16
    while p < total:
        index = struct.unpack("<H", raw[start + p : start + p + 2])[0]
        size = struct.unpack("<Q", raw[start + p + 8 : start + p + 16])[0]
        if index == 0:
            return start + p + 8
        p += 16 + (size + 7) // 8 * 8
    raise AssertionError("no free-space object")


def _damage(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    at = _free_space_at(bytes(raw))
    raw[at : at + 8] = bytes(8)  # free space of size 0: HDF5 would step by nothing, for ever
    path.write_bytes(bytes(raw))


@pytest.fixture
def scan():
    rng = np.random.default_rng(0)
    return ptydask.from_arrays(rng.integers(0, 9, (4, 8, 8)).astype(np.uint16), rng.random((4, 2)) * 1e-6,
                               energy=6.2, distance=3.0, psize=5.5e-5, center=(4, 4), label="heap")


def test_healthy_files_pass(tmp_path, scan):
    ptydask.to_ptyd(scan, tmp_path / "a.ptyd")
    with h5py.File(tmp_path / "a.ptyd", "r") as f:
        assert heap_problem(f) is None
    assert ptydask.open_ptyd(tmp_path / "a.ptyd").sizes["frame"] == 4


def test_damaged_master_is_refused(tmp_path, scan):
    path = tmp_path / "a.ptyd"
    ptydask.to_ptyd(scan, path)
    _damage(path)
    with pytest.raises(FormatError, match=r"a\.ptyd.*global heap.*declares 0 bytes"):
        ptydask.open_ptyd(path)


def test_damaged_part_file_is_refused(tmp_path, scan):
    path = tmp_path / "l.ptyd"
    ptydask.to_ptyd(scan.chunk({"frame": 2}), path, save="link")
    part = sorted(tmp_path.glob("l.ptyd.*"))[-1]
    _damage(part)
    with pytest.raises(FormatError, match=rf"{part.name}.*global heap"):
        ptydask.open_ptyd(path)


def test_damaged_raw_file_is_refused(tmp_path):
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("entry/data/data", data=np.zeros((3, 8, 8), np.uint16))
        ds.attrs["units"] = "counts"  # a variable-length string: lives in the global heap
    _damage(path)
    with pytest.raises(SourceError, match=r"raw\.h5.*global heap"):
        ptydask.open_frames(str(path), "entry/data/data")
