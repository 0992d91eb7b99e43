"""Raw-chunk reads with threaded decoding (ptydask.io.fastread) give exactly h5py's result."""

from __future__ import annotations

import threading

import h5py
import dask
import numpy as np
import pytest

from ptydask.errors import SourceError
from ptydask.io import fastread as _fastread
from ptydask.sources import hdf5 as hdf5src

hdf5plugin = pytest.importorskip("hdf5plugin")

SHAPE = (12, 24, 20)


def frames(dtype, shape=SHAPE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        a = rng.standard_normal(shape).astype(dtype) * 100
        a.flat[::97] = np.nan
        a.flat[5::101] = -0.0
        return a
    info = np.iinfo(dtype)
    a = rng.poisson(3.0, shape).astype(dtype)
    a[:, 3, :] = info.max  # a saturated row and a few extremes
    a[:, :, 7] = info.min
    return a


FILTERS = {
    "bslz4": lambda: dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4")),
    "bslz4_small_blocks": lambda: dict(hdf5plugin.Bitshuffle(nelems=64, cname="lz4")),
    "bitshuffle_only": lambda: dict(hdf5plugin.Bitshuffle(nelems=0, cname="none")),
    "lz4": lambda: dict(hdf5plugin.LZ4()),
    "zstd": lambda: dict(hdf5plugin.Zstd()),
    "gzip": lambda: dict(compression="gzip", compression_opts=4),
    "gzip_shuffle": lambda: dict(compression="gzip", compression_opts=1, shuffle=True),
}


def write(path, data, k=1, **opts) -> str:
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data", data=data, chunks=(k,) + data.shape[1:], **opts)
    return str(path)


def reader(path) -> hdf5src.Hdf5Reader:
    with h5py.File(path, "r") as f:
        ds = f["entry/data"]
        return hdf5src.Hdf5Reader(path, "entry/data", ds.shape, ds.dtype, None)


def h5py_read(path, start, stop) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["entry/data"][start:stop]


@pytest.fixture
def decoded(monkeypatch):
    """Counts chunks decoded by the fast path."""
    calls = []
    real = _fastread.decode

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(_fastread, "decode", counting)
    return calls


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("dtype", ["uint16", "uint32", "int16", "uint8", "float32", "float64"])
def test_bit_identical_to_h5py(tmp_path, name, dtype, decoded) -> None:
    data = frames(dtype)
    path = write(tmp_path / "raw.h5", data, **FILTERS[name]())
    r = reader(path)
    for start, stop in [(0, SHAPE[0]), (0, 1), (5, 9), (11, 12)]:
        got = r.read(start, stop)
        assert same(got, h5py_read(path, start, stop)), (start, stop)
        assert same(got, data[start:stop])
    assert decoded, "the fast path was not taken"


@pytest.mark.parametrize("k", [2, 5])
def test_multi_frame_chunks_and_partial_edge_chunk(tmp_path, k, decoded) -> None:
    data = frames("uint16", (11, 16, 8))  # 11 frames: the last chunk is only partly used
    path = write(tmp_path / "raw.h5", data, k=k, **FILTERS["bslz4"]())
    r = reader(path)
    for start in range(11):
        for stop in range(start + 1, 12):
            assert same(r.read(start, stop), data[start:stop]), (start, stop)
    assert decoded


def test_unwritten_chunks_read_as_fill_value(tmp_path, decoded) -> None:
    path = str(tmp_path / "raw.h5")
    data = frames("uint16", (6, 8, 8))
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("entry/data", shape=data.shape, dtype=data.dtype, chunks=(1, 8, 8), fillvalue=7,
                              **FILTERS["bslz4"]())
        ds[0] = data[0]
        ds[3:5] = data[3:5]
    got = reader(path).read(0, 6)
    assert same(got, h5py_read(path, 0, 6))
    assert (got[1] == 7).all() and (got[5] == 7).all()
    assert len(decoded) == 3


@pytest.mark.parametrize("opts", [
    dict(compression="gzip", fletcher32=True),  # a filter the fast path does not decode
    dict(scaleoffset=0),
    dict(),  # uncompressed chunks: h5py is already fast
])
def test_other_layouts_read_by_h5py(tmp_path, opts, decoded) -> None:
    data = frames("uint16", (6, 8, 8))
    path = write(tmp_path / "raw.h5", data, **opts)
    assert same(reader(path).read(1, 5), data[1:5])
    assert not decoded


def test_frame_split_over_chunks_and_big_endian_read_by_h5py(tmp_path, decoded) -> None:
    data = frames("uint16", (6, 8, 8))
    path = str(tmp_path / "raw.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data", data=data, chunks=(2, 4, 8), **FILTERS["bslz4"]())
        f.create_dataset("entry/big", data=data.astype(">u2"), chunks=(1, 8, 8), compression="gzip")
    assert same(reader(path).read(0, 6), data)
    with h5py.File(path, "r") as f:
        r = hdf5src.Hdf5Reader(path, "entry/big", f["entry/big"].shape, f["entry/big"].dtype, None)
    assert np.array_equal(r.read(0, 6), data) and r.read(0, 6).dtype == np.dtype("uint16")
    assert not decoded


def test_switch_off(tmp_path, monkeypatch, decoded) -> None:
    data = frames("uint16", (4, 8, 8))
    path = write(tmp_path / "raw.h5", data, **FILTERS["bslz4"]())
    with dask.config.set({"ptydask.fast-read": False}):
        assert same(reader(path).read(0, 4), data)
    assert not decoded


def test_lazy_frames_and_concurrent_reads(tmp_path) -> None:
    data = frames("uint16", (40, 32, 32))
    path = write(tmp_path / "raw.h5", data, **FILTERS["bslz4"]())
    lazy, _, _ = hdf5src.hdf5_frames(path, "entry/data", block_bytes=5 * 32 * 32 * 2)
    assert lazy.numblocks[0] == 8
    assert same(lazy.compute(scheduler="threads"), data)
    r = reader(path)
    results: dict[int, bool] = {}

    def work(i: int) -> None:
        results[i] = all(same(r.read(s, s + 7), data[s : s + 7]) for s in range(0, 33, 3))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results.values()) and len(results) == 4


def test_damaged_chunk_is_an_error_not_garbage(tmp_path) -> None:
    data = frames("uint16", (3, 16, 16))
    path = write(tmp_path / "raw.h5", data, **FILTERS["bslz4"]())
    with h5py.File(path, "r+") as f:
        ds = f["entry/data"]
        mask, raw = ds.id.read_direct_chunk((1, 0, 0))
        broken = raw[:12] + bytes(len(raw) - 12)  # valid header, payload zeroed
        ds.id.write_direct_chunk((1, 0, 0), broken, filter_mask=mask)
    with pytest.raises(OSError):
        h5py_read(path, 0, 3)
    with pytest.raises(SourceError):
        reader(path).read(0, 3)
    assert same(reader(path).read(2, 3), data[2:3])


# --------------------------------------------------------------------------- unfiltered storage


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
@pytest.mark.parametrize("layout", ["contiguous", "chunks", "interleaved"])
def test_unfiltered_frames_read_by_plain_file_reads(tmp_path, dtype, layout):
    """Contiguous data are mapped (copy-on-write, no copy); whole-frame chunks are read at their offsets
    (``interleaved``: written last to first with another dataset's chunks between them, so that no
    two chunks are adjacent in frame order)."""
    from ptydask import open_frames

    data = frames(dtype)
    path = tmp_path / "u.h5"
    with h5py.File(path, "w") as f:
        if layout == "contiguous":
            f.create_dataset("data", data=data)
        else:
            ds = f.create_dataset("data", shape=data.shape, dtype=dtype, chunks=(2,) + data.shape[1:])
            other = f.create_dataset("other", shape=data.shape, dtype=dtype, chunks=(2,) + data.shape[1:])
            starts = range(0, data.shape[0], 2)
            for i in (reversed(starts) if layout == "interleaved" else starts):  # reversed: runs not adjacent
                ds[i : i + 2] = data[i : i + 2]
                if layout == "interleaved":
                    other[i : i + 2] = data[i : i + 2] + 1
    with h5py.File(path, "r") as f:
        runs = _fastread.stored_runs(f["data"])
    assert runs is not None
    assert len(runs.runs) == (data.shape[0] // 2 if layout == "interleaved" else 1)
    arr = open_frames(str(path), "data", block_bytes=3 * data[0].nbytes)["data"].data
    np.testing.assert_array_equal(arr.compute(), data)
    reader = hdf5src.Hdf5Reader(str(path), "data", data.shape, np.dtype(dtype), None)
    first = reader.read(0, 3)
    np.testing.assert_array_equal(first, data[:3])
    if layout != "interleaved":
        assert first.base is not None and not first.flags.owndata  # a map of the file, not a copy
    first[:] = 0  # writable like any block; the file does not change
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data"][:3], data[:3])
    np.testing.assert_array_equal(reader.read(0, 3), data[:3])


def test_unwritten_chunks_fall_back_to_h5py(tmp_path):
    data = frames(np.uint16)
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", shape=data.shape, dtype=np.uint16, chunks=(1,) + data.shape[1:], fillvalue=7)
        ds[:3] = data[:3]
    with h5py.File(path, "r") as f:
        assert _fastread.stored_runs(f["data"]) is None  # not every chunk stored: h5py supplies fill values
    from ptydask import open_frames

    got = open_frames(str(path), "data")["data"].values
    np.testing.assert_array_equal(got[:3], data[:3])
    assert np.all(got[3:] == 7)
