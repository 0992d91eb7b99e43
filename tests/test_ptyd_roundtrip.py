"""Round trip from_arrays -> to_ptyd -> open_ptyd is bit-exact (every save mode, dtype, chunking)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ptydask
from ptydask.ptyd.h5rw import tag_of

DTYPES = [np.uint16, np.int32, np.float32, np.float64]


def _frames(rng, n, h, w, dtype):
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal((n, h, w)) * 1e3).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=(n, h, w), endpoint=True, dtype=dtype)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 23),
    h=st.integers(2, 9),
    w=st.integers(2, 9),
    dtype=st.sampled_from(DTYPES),
    save=st.sampled_from(["append", "link", "merge"]),
    block=st.integers(1, 25),
    k=st.integers(1, 4),
    per_frame_weights=st.booleans(),
    compression=st.sampled_from(["gzip", None]),
    seed=st.integers(0, 2**16),
)
def test_roundtrip_bit_exact(tmp_path_factory, n, h, w, dtype, save, block, k, per_frame_weights, compression, seed):
    rng = np.random.default_rng(seed)
    frames = _frames(rng, n, h, w, dtype)
    positions = rng.standard_normal((n, 2)) * 1e-6
    if per_frame_weights:
        weights = rng.integers(0, 2, size=(n, h, w)).astype(bool)
    else:
        weights = rng.random((h, w)).astype(np.float32)
    scan = ptydask.from_arrays(
        frames, positions, weights, energy=6.2, distance=7.0, psize=(5.5e-5, 7.5e-5), chunks=block,
        center=(h / 2, w / 2), label="hypo", indices=np.arange(n) * 3 + 1,
    )
    path = tmp_path_factory.mktemp("rt") / "scan.ptyd"
    ptydask.to_ptyd(scan, path, save=save, frames_per_hdf5_chunk=k, compression=compression)
    back = ptydask.open_ptyd(path)
    assert back["data"].dtype == frames.dtype
    np.testing.assert_array_equal(back["data"].values, frames)
    np.testing.assert_array_equal(back["positions"].values, positions)
    np.testing.assert_array_equal(back["indices"].values, np.arange(n) * 3 + 1)
    expected_w = weights if per_frame_weights else np.broadcast_to(weights, (n, h, w))
    assert back["weights"].dtype == weights.dtype
    np.testing.assert_array_equal(back["weights"].values, expected_w)
    assert back.attrs["center"] == (h / 2, w / 2)
    assert back.attrs["psize"] == (5.5e-5, 7.5e-5)
    assert (back.attrs["energy"], back.attrs["distance"], back.attrs["label"]) == (6.2, 7.0, "hypo")
    assert back.attrs["num_frames"] == n
    # Dask blocks follow the file's chunk groups (merge mode: one group)
    if save != "merge":
        assert back["data"].data.chunks[0] == scan["data"].data.chunks[0]
    # plain h5py sees whole-frame HDF5 chunks
    with h5py.File(path, "r") as f:
        first = f["chunks/0/data"]
        assert first.chunks[1:] == (h, w) and first.chunks[0] == min(k, first.shape[0])


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_layout_and_tags(tmp_path, save):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 100, (10, 8, 8), dtype=np.uint16)
    scan = ptydask.from_arrays(frames, np.zeros((10, 2)), energy=8.0, distance=2.0, psize=7.5e-5, chunks=4, center=(4, 4))
    path = ptydask.to_ptyd(scan, tmp_path / "s.ptyd", save=save)
    with h5py.File(path, "r") as f:
        assert set(f.attrs) >= {"h5rw_version", "ctime", "mtime"}
        assert set(f["meta"]) == set(ptydask.META_KEYS)
        tags = {k: tag_of(f["meta"][k]) for k in f["meta"]}
        assert tags == {"version": "scalar", "num_frames": "scalar", "label": "None", "shape": "array",
                        "psize": "array", "energy": "scalar", "center": "array", "distance": "scalar"}
        assert f["meta/num_frames"][()] == 10 and f["meta/num_frames"].dtype == np.int64
        assert tag_of(f["chunks"]) == "dict" and tag_of(f["meta"]) == "dict" and tag_of(f["info"]) == "dict"
        names = sorted(f["chunks"], key=int)
        assert names == (["0"] if save == "merge" else ["0", "1", "2"])
        c0 = f["chunks/0"]
        assert tag_of(c0["indices"]) == "arraylist" and tag_of(c0["positions"]) == "array"
        assert c0["positions"].dtype == np.float64 and c0["indices"].dtype == np.int64
        if save == "link":
            link = f["chunks"].get("0", getlink=True)
            assert isinstance(link, h5py.ExternalLink) and link.filename == "s.ptyd.chunk00" and link.path == "/"
        assert f["info/save"][()].decode() == save
    assert not list(tmp_path.glob("*.incomplete"))


def test_link_set_can_be_moved(tmp_path):
    frames = np.arange(6 * 4 * 4, dtype=np.int32).reshape(6, 4, 4)
    scan = ptydask.from_arrays(frames, np.zeros((6, 2)), energy=1.0, distance=1.0, psize=1e-4, chunks=2)
    ptydask.to_ptyd(scan, tmp_path / "a" / "m.ptyd", save="link", chunk_format=".part%03d")
    (tmp_path / "a").rename(tmp_path / "b")
    back = ptydask.open_ptyd(tmp_path / "b" / "m.ptyd")
    np.testing.assert_array_equal(back["data"].values, frames)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["m.ptyd", "m.ptyd.part000", "m.ptyd.part001", "m.ptyd.part002"]


def test_lazy_dask_input_and_threads(tmp_path):
    da = pytest.importorskip("dask.array")
    frames = da.arange(40 * 16 * 16, dtype=np.float32).reshape(40, 16, 16).rechunk((7, 16, 16))
    scan = ptydask.from_arrays(frames, np.zeros((40, 2)), energy=1.0, distance=1.0, psize=1e-4)
    ptydask.to_ptyd(scan, tmp_path / "s.ptyd", max_in_flight=3)
    back = ptydask.open_ptyd(tmp_path / "s.ptyd")
    np.testing.assert_array_equal(back["data"].values, frames.compute())
    assert back["data"].data.chunks[0] == (7, 7, 7, 7, 7, 5)


def test_overwrite_replaces_and_removes_stale_parts(tmp_path):
    a = ptydask.from_arrays(np.ones((9, 4, 4)), np.zeros((9, 2)), energy=1.0, distance=1.0, psize=1e-4, chunks=3)
    b = ptydask.from_arrays(np.zeros((4, 4, 4)), np.zeros((4, 2)), energy=1.0, distance=1.0, psize=1e-4, chunks=2)
    ptydask.to_ptyd(a, tmp_path / "s.ptyd", save="link")
    ptydask.to_ptyd(b, tmp_path / "s.ptyd", save="link", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ptyd", "s.ptyd.chunk00", "s.ptyd.chunk01"]
    np.testing.assert_array_equal(ptydask.open_ptyd(tmp_path / "s.ptyd")["data"].values, np.zeros((4, 4, 4)))


@pytest.mark.parametrize("compression", ["gzip", None])
def test_short_group_chunks_hold_exactly_their_frames(tmp_path, compression):
    """A chunk group with fewer frames than frames_per_hdf5_chunk gets HDF5 chunks of its own
    length, and every stored chunk (data and weights) holds exactly one chunk's bytes."""
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 99, (5, 4, 6)).astype(np.uint16)
    scan = ptydask.from_arrays(frames, rng.random((5, 2)) * 1e-6, energy=6.2, distance=3.0, psize=5.5e-5,
                               center=(2, 3), chunks=2)
    path = tmp_path / "short.ptyd"
    ptydask.to_ptyd(scan, path, frames_per_hdf5_chunk=4, compression=compression)
    with h5py.File(path, "r") as f:
        for name in f["chunks"]:
            for key in ("data", "weights"):
                ds = f["chunks"][name][key]
                sizes = []
                ds.id.chunk_iter(lambda c, sizes=sizes: sizes.append(c.size))
                if compression is None:
                    assert sizes == [ds.chunks[0] * 4 * 6 * ds.dtype.itemsize] * len(sizes)
        np.testing.assert_array_equal(np.concatenate([f["chunks"][n]["data"][()] for n in sorted(f["chunks"], key=int)]),
                                      frames)
    np.testing.assert_array_equal(ptydask.open_ptyd(path)["data"].values, frames)
