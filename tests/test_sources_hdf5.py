"""HDF5 sources: laziness, chunk-aligned blocks, links, virtual datasets, filters and errors."""

from __future__ import annotations

import time

import dask
import h5py
import hdf5plugin
import numpy as np
import pytest

from ptydask.errors import SourceError
from ptydask.sources import open_frames
from ptydask.sources import hdf5 as hdf5_mod


@pytest.fixture
def reads(monkeypatch):
    """Record every hyperslab the sources read with ``read_direct``, or by plain file reads or maps (``_fastread``)."""
    from ptydask.io import fastread as _fastread

    calls = []
    original = h5py.Dataset.read_direct
    original_plan = _fastread.FastPlan.read
    original_map = _fastread.map_stored
    original_stored = _fastread.read_stored

    def recording(self, dest, source_sel=None, dest_sel=None):
        calls.append((self.name, source_sel))
        return original(self, dest, source_sel, dest_sel)

    def recording_plan(plan, start, stop, out, fallback):
        calls.append((plan.name, (slice(start, stop),)))
        return original_plan(plan, start, stop, out, fallback)

    def recording_map(path, plan, start, stop, dtype, frame_shape):
        mapped = original_map(path, plan, start, stop, dtype, frame_shape)
        if mapped is not None:  # else the read goes on through read_stored
            calls.append((path, (slice(start, stop),)))
        return mapped

    def recording_stored(path, plan, start, stop, out):
        calls.append((path, (slice(start, stop),)))
        return original_stored(path, plan, start, stop, out)

    monkeypatch.setattr(h5py.Dataset, "read_direct", recording)
    monkeypatch.setattr(_fastread.FastPlan, "read", recording_plan)
    monkeypatch.setattr(_fastread, "map_stored", recording_map)
    monkeypatch.setattr(_fastread, "read_stored", recording_stored)
    return calls


def _frames(n, h=16, w=16, dtype=np.uint16, seed=0):
    return np.random.default_rng(seed).integers(0, 1000, size=(n, h, w)).astype(dtype)


def test_100_gb_virtual_dataset_opens_fast_and_reads_nothing(tmp_path, reads):
    src = tmp_path / "src.h5"
    small = _frames(4, 1024, 1024, np.uint32)
    with h5py.File(src, "w") as f:
        f.create_dataset("data", data=small, chunks=(1, 1024, 1024), compression="gzip")
    n = 25_600  # 25600 frames of 4 MiB = 100 GiB
    layout = h5py.VirtualLayout(shape=(n, 1024, 1024), dtype=np.uint32)
    vsource = h5py.VirtualSource(str(src), "data", shape=small.shape)
    for start in (0, 10_000, n - 4):  # few small files behind a huge virtual shape
        layout[start:start + 4] = vsource
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("entry/data/data", layout, fillvalue=7)
    t0 = time.perf_counter()
    scan = open_frames(tmp_path / "vds.h5")
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    assert reads == []
    assert scan["data"].shape == (n, 1024, 1024)
    assert scan["data"].nbytes >= 100 * 2**30
    np.testing.assert_array_equal(scan["data"][10_000:10_004].values, small)
    assert int(scan["data"][5000, :2, :2].values.max()) == 7  # fill value where no source maps


def test_huge_declared_dataset_without_chunks_written(tmp_path, reads):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", shape=(200_000, 512, 512), dtype=np.uint16, chunks=(6, 512, 512))  # ~100 GB
    t0 = time.perf_counter()
    scan = open_frames(path, "frames")
    assert time.perf_counter() - t0 < 1.0
    assert reads == []
    sizes = scan["data"].data.chunks[0]
    assert all(s % 6 == 0 for s in sizes[:-1])  # whole storage chunks per Dask block
    assert 64 * 2**20 <= sizes[0] * 512 * 512 * 2 <= 256 * 2**20


def test_100_gb_behind_external_links_opens_fast_and_reads_nothing(tmp_path, reads):
    for i in range(3):
        with h5py.File(tmp_path / f"part{i}.h5", "w") as f:  # ~10.5 GB declared, nothing written
            f.create_dataset("entry/data/data", shape=(20_000, 512, 512), dtype=np.uint16, chunks=(1, 512, 512),
                             compression=hdf5plugin.Bitshuffle())
    with h5py.File(tmp_path / "master.h5", "w") as f:
        for i in range(1, 11):  # ten links onto three small files
            f[f"entry/data/data_{i:06d}"] = h5py.ExternalLink(f"part{i % 3}.h5", "/entry/data/data")
    t0 = time.perf_counter()
    scan = open_frames(tmp_path / "master.h5")
    assert time.perf_counter() - t0 < 1.0
    assert reads == []
    assert scan["data"].shape == (200_000, 512, 512) and scan["data"].nbytes > 100 * 10**9


def _chunked_file(path, frames, chunk_frames=4):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=frames, chunks=(chunk_frames,) + frames.shape[1:], compression="gzip")


def _corrupt_chunks_except(path, keep_first, keep_last):
    """Overwrite the bytes of every storage chunk outside frames keep_first:keep_last."""
    with h5py.File(path, "r") as f:
        d = f["data"]
        infos = [d.id.get_chunk_info(i) for i in range(d.id.get_num_chunks())]
    with open(path, "r+b") as fh:
        for info in infos:
            if not keep_first <= info.chunk_offset[0] < keep_last:
                fh.seek(info.byte_offset)
                fh.write(b"\xff" * info.size)


def test_a_block_touches_only_its_own_storage_chunks(tmp_path, reads):
    frames = _frames(64, 32, 32)
    path = tmp_path / "chunked.h5"
    _chunked_file(path, frames)
    block_bytes = 8 * 32 * 32 * 2  # two storage chunks of 4 frames per block
    arr = open_frames(path, "data", block_bytes=block_bytes)["data"].data
    assert arr.chunks[0] == (8,) * 8
    _corrupt_chunks_except(path, 16, 24)
    np.testing.assert_array_equal(arr.blocks[2].compute(), frames[16:24])  # only its chunks are decoded
    with pytest.raises(Exception):
        arr.blocks[1].compute()  # reading any other chunk hits the corruption
    # one hyperslab for the block, and the storage chunks it intersects are exactly the block's two
    assert reads[0][1][0] == slice(16, 24)
    sel = reads[0][1][0]
    with h5py.File(path, "r") as f:
        d = f["data"]
        offsets = [d.id.get_chunk_info(i).chunk_offset[0] for i in range(d.id.get_num_chunks())]
    touched = {o for o in offsets if o < sel.stop and o + 4 > sel.start}
    assert touched == {16, 20}


def test_each_block_read_once_when_computing_everything(tmp_path, reads):
    frames = _frames(40, 8, 8)
    path = tmp_path / "c.h5"
    _chunked_file(path, frames, chunk_frames=5)
    arr = open_frames(path, "data", block_bytes=10 * 8 * 8 * 2)["data"].data
    assert arr.chunks[0] == (10, 10, 10, 10)
    np.testing.assert_array_equal(arr.compute(), frames)
    assert sorted((s[0].start, s[0].stop) for _, s in reads) == [(0, 10), (10, 20), (20, 30), (30, 40)]


def test_raster_4d_flattened_row_major_with_whole_row_blocks(tmp_path, reads):
    raster = _frames(6 * 5, 8, 8).reshape(6, 5, 8, 8)
    path = tmp_path / "raster.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=raster, chunks=(2, 5, 8, 8))
    scan = open_frames(path, "data", block_bytes=2 * 5 * 8 * 8 * 2)
    assert scan["data"].shape == (30, 8, 8)
    assert scan["data"].data.chunks[0] == (10, 10, 10)
    np.testing.assert_array_equal(scan["data"].values, raster.reshape(30, 8, 8))
    assert len(reads) == 3


def test_outer_index_picks_one_stack(tmp_path):
    stacks = _frames(3 * 4, 8, 8).reshape(3, 4, 8, 8)
    path = tmp_path / "spectro.h5"
    with h5py.File(path, "w") as f:
        f["data"] = stacks
        f["energy"] = np.array([7.0, 7.1, 7.2])
    scan = open_frames(path, "data", outer_index=1, recorded_energy={"key": "energy"})
    np.testing.assert_array_equal(scan["data"].values, stacks[1])
    assert scan.attrs["energy"] == pytest.approx(7.1)


def test_external_link_and_dectris_links_stop_at_first_missing(tmp_path):
    parts = [_frames(3, 8, 8, seed=i) for i in range(3)]
    for i, part in enumerate(parts[:2], start=1):
        with h5py.File(tmp_path / f"scan_data_{i:06d}.h5", "w") as f:
            f.create_dataset("entry/data/data", data=part, compression=hdf5plugin.Bitshuffle())
    with h5py.File(tmp_path / "scan_master.h5", "w") as f:
        g = f.create_group("entry/data")
        for i in range(1, 4):  # the third data file was never written
            g[f"data_{i:06d}"] = h5py.ExternalLink(f"scan_data_{i:06d}.h5", "/entry/data/data")
    scan = open_frames(tmp_path / "scan_master.h5")
    assert scan["data"].shape == (6, 8, 8)
    np.testing.assert_array_equal(scan["data"].values, np.concatenate(parts[:2]))


def test_graph_runs_with_processes_scheduler(tmp_path):
    frames = _frames(12, 8, 8)
    _chunked_file(tmp_path / "p.h5", frames, chunk_frames=3)
    arr = open_frames(tmp_path / "p.h5", "data", block_bytes=3 * 8 * 8 * 2)["data"].data
    with dask.config.set(scheduler="processes", num_workers=2):
        np.testing.assert_array_equal(arr.compute(), frames)


# --------------------------------------------------------------------------- errors


def test_missing_filter_names_filter_and_package(tmp_path):
    path = tmp_path / "unknown_filter.h5"
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1, 8, 8))
        dcpl.set_filter(40123, h5py.h5z.FLAG_OPTIONAL, ())
        h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_UINT16, h5py.h5s.create_simple((4, 8, 8)), dcpl=dcpl)
    with pytest.raises(SourceError, match=r"unknown_filter\.h5.*'data'.*filter 40123.*pip install hdf5plugin"):
        open_frames(path, "data")


def test_missing_bitshuffle_is_reported_up_front(tmp_path, monkeypatch):
    path = tmp_path / "bslz4.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=_frames(2, 8, 8), compression=hdf5plugin.Bitshuffle())
    real = h5py.h5z.filter_avail
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda code: False if code == 32008 else real(code))
    with pytest.raises(SourceError, match=r"filter 32008 \(bitshuffle\).*pip install hdf5plugin"):
        open_frames(path, "data")


def test_missing_file():
    with pytest.raises(SourceError, match=r"nope\.h5: no such file"):
        open_frames("/nonexistent/folder/nope.h5")


def test_missing_key_lists_siblings(tmp_path):
    path = tmp_path / "k.h5"
    with h5py.File(path, "w") as f:
        f["entry/data/frames"] = _frames(2)
        f["entry/data/blank"] = _frames(1)[0]
    with pytest.raises(SourceError, match=r"k\.h5: key 'entry/data/framez' not found; 'entry/data' holds: blank, frames"):
        open_frames(path, "entry/data/framez")


def test_key_to_group_without_frames_lists_candidates(tmp_path):
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        f["stuff/a/frames_here"] = _frames(2)
        f["stuff/b/other"] = np.arange(3)
    with pytest.raises(SourceError, match=r"no frames found in group 'stuff'.*a/frames_here \(2, 16, 16\)"):
        open_frames(path, "stuff")


@pytest.mark.parametrize("shape", [(10,), (2, 2, 2, 2, 4, 4)])
def test_wrong_rank(tmp_path, shape):
    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(shape, np.uint8)
    with pytest.raises(SourceError, match=r"r\.h5:data.*is not frames; expected \(H, W\), \(N, H, W\)"):
        open_frames(path, "data")


def test_five_d_needs_outer_index_and_range_is_checked(tmp_path):
    path = tmp_path / "five.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros((2, 2, 3, 4, 4), np.uint8)
    with pytest.raises(SourceError, match="pass outer_index="):
        open_frames(path, "data")
    with pytest.raises(SourceError, match=r"outer_index=5 is out of range for 2"):
        open_frames(path, "data", outer_index=5)
    assert open_frames(path, "data", outer_index=1)["data"].shape == (6, 4, 4)


def test_outer_index_on_3d_data_is_refused(tmp_path):
    path = tmp_path / "three.h5"
    with h5py.File(path, "w") as f:
        f["data"] = _frames(3)
    with pytest.raises(SourceError, match=r"outer_index=0 needs an outer axis.*3-D"):
        open_frames(path, "data", outer_index=0)


def test_reader_reads_arbitrary_ranges_across_raster_rows(tmp_path):
    raster = _frames(4 * 3, 4, 4).reshape(4, 3, 4, 4)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"] = raster
    reader = hdf5_mod.Hdf5Reader(str(tmp_path / "x.h5"), "data", raster.shape, raster.dtype, None)
    np.testing.assert_array_equal(reader.read(2, 10), raster.reshape(12, 4, 4)[2:10])
    np.testing.assert_array_equal(reader[1:11:3], raster.reshape(12, 4, 4)[1:11:3])
