"""``prepare_to_ptyd``: the global reductions measured while the frames are written (one read of the
raw frames) must give the file of ``to_ptyd(prepare(...))``, value for value, in every case: the first
block's guess right, the centre moving to another pixel (frames written again), the masks growing
after the first block (weights replaced), a pixel turning bad late (second pass for the centre)."""

from __future__ import annotations

import dask
import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptydask import prepare, prepare_to_ptyd, to_ptyd
from ptydask.errors import GeometryError
from ptydask.ptyd.layout import tmp_name
from ptydask.scan import from_arrays
from ptydask.steps import pipeline, speculative
from ptydask.steps.reduction import TreeFold, fold_stats, tree

H = W = 32


def make_scan(seed=0, n=48, chunks=8, centre=(14.3, 17.6), drift=0.0, late_hot=False, dtype=np.uint16,
              weights=True):
    """Frames with a bright disk (its centre moving by ``drift`` px over the scan), hot/dead pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    frames = np.empty((n, H, W), dtype=dtype)
    for f in range(n):
        cy, cx = centre[0] + drift * f / n, centre[1] + drift * f / n
        disk = 300.0 * (((yy - cy) ** 2 + (xx - cx) ** 2) < 30)
        frames[f] = rng.poisson(disk + 3.0)
    frames[:, 2, 28] = 9000  # hot from the start
    frames[:, 25, 3] = 0  # dead
    if late_hot:
        frames[-3:, 29, 29] = 60000  # hot only in the last block
    w = np.ones((H, W), np.uint8)
    w[6, 6] = 0
    scan = from_arrays(frames, rng.random((n, 2)) * 1e-6, w if weights else None, energy=6.0, distance=2.0,
                       psize=5e-5, chunks=chunks)
    dark = rng.uniform(0.5, 3.0, (H, W))
    flat = rng.uniform(0.8, 1.2, (H, W))
    flat[9, 9] = 0.0
    return scan, dark, flat


def assert_same_files(a, b):
    """Every group, dataset and attribute of two HDF5 files equal."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        def walk(x, y, name):
            assert dict(x.attrs).keys() == dict(y.attrs).keys(), name
            for k in x.attrs:
                if k not in ("ctime", "mtime"):  # ptypy's root time stamps
                    assert np.array_equal(x.attrs[k], y.attrs[k]), (name, k)
            if isinstance(x, h5py.Dataset):
                vx, vy = x[()], y[()]
                assert x.dtype == y.dtype and x.shape == y.shape, name
                if isinstance(vx, np.ndarray) and vx.dtype.kind == "f":
                    assert np.array_equal(vx, vy, equal_nan=True), name
                else:
                    assert np.array_equal(vx, vy), name
                return
            assert set(x) == set(y), (name, set(x) ^ set(y))
            for k in x:
                walk(x[k], y[k], f"{name}/{k}")
        walk(fa, fb, "")


def both(tmp_path, scan, params, **write):
    """Write the scan both ways (same file name, two folders); return the paths and the one-pass Scan."""
    (tmp_path / "two").mkdir(exist_ok=True)
    (tmp_path / "one").mkdir(exist_ok=True)
    two, one = tmp_path / "two" / "out.ptyd", tmp_path / "one" / "out.ptyd"
    to_ptyd(prepare(scan, **params), two, progress=False, **write)
    prepared = prepare_to_ptyd(scan, one, params, progress=False, **write)
    return two, one, prepared


class Counted:
    """Counts what the one-pass write does: passes of ``prepare``'s own global reductions, guesses kept
    or abandoned, blocks recorded."""

    def __init__(self, monkeypatch):
        self.measure = self.finish_none = self.recorded = 0
        measure, finish, record = pipeline.PreparePlan.measure, speculative.Speculation.finish, \
            speculative.Recorder.record

        def counted_measure(plan):
            self.measure += 1
            return measure(plan)

        def counted_finish(spec):
            out = finish(spec)
            self.finish_none += out is None
            return out

        def counted_record(rec, i, frames):
            self.recorded += 1
            return record(rec, i, frames)

        monkeypatch.setattr(pipeline.PreparePlan, "measure", counted_measure)
        monkeypatch.setattr(speculative.Speculation, "finish", counted_finish)
        monkeypatch.setattr(speculative.Recorder, "record", counted_record)


MASKS = dict(hot_pixels=6.0, dead_pixels=True)


@pytest.mark.parametrize("save", ["append", "merge", "link"])
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_auto_centre_and_masks_one_read_same_file(tmp_path, monkeypatch, save, compression):
    scan, dark, flat = make_scan()
    params = dict(shape=16, center=None, orientation=3, rebin=2, dark=dark, flat=flat, **MASKS)
    (tmp_path / "two").mkdir()
    two = tmp_path / "two" / "out.ptyd"
    to_ptyd(prepare(scan, **params), two, progress=False, save=save, compression=compression)
    counted = Counted(monkeypatch)
    (tmp_path / "one").mkdir()
    one = tmp_path / "one" / "out.ptyd"
    prepared = prepare_to_ptyd(scan, one, params, progress=False, save=save, compression=compression)
    assert counted.measure == 0 and counted.finish_none == 0
    assert counted.recorded == 6  # every block once
    assert_same_files(two, one)
    assert prepared.attrs["info"]["masks"]["hot"] >= 1
    assert any("same pass" in d for d in prepared.attrs["info"]["deviations"])
    assert not list(tmp_path.glob("*/*.incomplete"))


def test_masks_only_one_read_same_file(tmp_path, monkeypatch):
    scan, dark, flat = make_scan(seed=3)
    params = dict(shape=20, center=(15, 16), dark=dark, saturation=8000.0, **MASKS)
    counted = Counted(monkeypatch)
    two, one, prepared = both(tmp_path, scan, params)
    assert counted.measure == 1  # the two-step write only
    assert counted.recorded == 6
    assert_same_files(two, one)
    assert prepared.attrs["info"]["masks"]["saturated"] == 1


def test_centre_moving_to_another_pixel_writes_the_frames_again(tmp_path, monkeypatch):
    scan, dark, flat = make_scan(seed=4, drift=6.0)  # the first block's centre is pixels off the mean
    params = dict(shape=16, center=None, dark=dark, flat=flat, **MASKS)
    counted = Counted(monkeypatch)
    two, one, prepared = both(tmp_path, scan, params, save="merge")
    assert counted.finish_none == 1
    assert counted.measure == 1  # the two-step write; the fallback keeps the measured values
    assert_same_files(two, one)
    assert not list((tmp_path / "one").glob("*.incomplete"))


def test_masks_growing_after_the_first_block_replace_the_weights(tmp_path):
    scan, dark, flat = make_scan(seed=5, late_hot=True)
    params = dict(shape=32, center="fftshift", saturation=30000.0)
    two, one, prepared = both(tmp_path, scan, params)
    assert_same_files(two, one)
    with h5py.File(one, "r") as f:
        assert not f["chunks/0/weights"][0, 29, 29]  # written True with the first block's guess


def test_pixel_bad_only_late_second_pass_for_the_centre(tmp_path):
    scan, dark, flat = make_scan(seed=6, late_hot=True)
    params = dict(shape=16, center=None, dark=dark, flat=flat, **MASKS)
    two, one, prepared = both(tmp_path, scan, params, save="append")
    assert any("second pass" in d for d in prepared.attrs["info"]["deviations"])
    assert_same_files(two, one)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), chunks=st.sampled_from([5, 16, 48]), drift=st.sampled_from([0.0, 0.7, 3.0]),
       dtype=st.sampled_from([np.uint16, np.int32, np.float32]), corrections=st.booleans(),
       orientation=st.integers(0, 7), rebin=st.sampled_from([1, 2]))
def test_any_scan_same_file(tmp_path_factory, seed, chunks, drift, dtype, corrections, orientation, rebin):
    tmp_path = tmp_path_factory.mktemp("onepass")
    scan, dark, flat = make_scan(seed=seed, chunks=chunks, drift=drift, dtype=dtype)
    params = dict(shape=16, center=None, orientation=orientation, rebin=rebin, **MASKS)
    if corrections:
        params.update(dark=dark, flat=flat)
    two, one, _ = both(tmp_path, scan, params, compression=None)
    assert_same_files(two, one)


def test_not_one_pass_without_masks_or_with_a_cluster_part(tmp_path):
    scan, dark, flat = make_scan()
    assert speculative.speculate(scan, shape=16, center=None) is None  # no automatic masks
    assert speculative.speculate(scan, shape=16, center=None, combine=lambda v: v, **MASKS) is None
    two, one, _ = both(tmp_path, scan, dict(shape=16, center=None))
    assert_same_files(two, one)


def test_interrupted_one_pass_write_keeps_incomplete_and_resume_gives_the_same_file(tmp_path, monkeypatch):
    """Ctrl-C during a one-read append write keeps the ``.incomplete`` master and the blocks' partials;
    ``resume=True`` computes only the missing blocks and writes the file of ``to_ptyd(prepare(...))``."""
    scan, dark, flat = make_scan()
    params = dict(shape=16, center=None, dark=dark, flat=flat, **MASKS)
    (tmp_path / "two").mkdir()
    two = to_ptyd(prepare(scan, **params), tmp_path / "two" / "out.ptyd", progress=False)
    add, seen = speculative.Recorder.add, []

    def interrupt_at_the_third(rec, i, partial):
        seen.append(i)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return add(rec, i, partial)

    monkeypatch.setattr(speculative.Recorder, "add", interrupt_at_the_third)
    out = tmp_path / "out.ptyd"
    with pytest.warns(UserWarning, match="resume=True"), pytest.raises(KeyboardInterrupt):
        prepare_to_ptyd(scan, out, params, progress=False)
    assert not out.exists() and tmp_name(out).exists()
    monkeypatch.setattr(speculative.Recorder, "add", add)
    counted = Counted(monkeypatch)
    prepare_to_ptyd(scan, out, params, progress=False, resume=True)
    assert counted.recorded == 6 - 2  # the two blocks finished before the interruption are not read again
    assert_same_files(two, out)
    assert not list(tmp_path.glob("*.incomplete"))


def test_interrupted_one_pass_write_in_link_mode_leaves_nothing(tmp_path, monkeypatch):
    scan, dark, flat = make_scan()

    def interrupt(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(speculative.Speculation, "finish", interrupt)
    out = tmp_path / "out.ptyd"
    with pytest.raises(KeyboardInterrupt):
        prepare_to_ptyd(scan, out, dict(shape=16, center=None, **MASKS), progress=False, save="link")
    assert list(tmp_path.iterdir()) == []


def test_error_in_the_final_measurement_leaves_nothing(tmp_path, monkeypatch):
    """An error once the frames are written (here: raised by the final measurement) leaves no output,
    and an old output in place."""
    scan, dark, flat = make_scan()
    out = tmp_path / "out.ptyd"
    out.write_bytes(b"old")

    def fail(spec):
        raise GeometryError("automatic centre: outside the frame")

    monkeypatch.setattr(speculative.Speculation, "finish", fail)
    with pytest.raises(GeometryError, match="automatic centre"):
        prepare_to_ptyd(scan, out, dict(shape=16, center=None, **MASKS), progress=False, overwrite=True)
    assert out.read_bytes() == b"old" and not tmp_name(out).exists()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 80), split_every=st.integers(2, 9), seed=st.integers(0, 1000))
def test_tree_fold_in_any_order_equals_the_lazy_tree(n, split_every, seed):
    rng = np.random.default_rng(seed)
    parts = [np.stack([rng.random((3, 4)), rng.random((3, 4)) * 1e6]) for _ in range(n)]
    expected = dask.compute(tree(fold_stats, parts, split_every))[0]
    fold = TreeFold(fold_stats, n, split_every)
    for i in rng.permutation(n):
        fold.add(int(i), parts[i])
    assert np.array_equal(fold.result, expected)


def _counting(block, block_info=None, *, seen):
    seen.append(block_info[0]["chunk-location"][0])
    return block


@pytest.mark.parametrize("save", ["append", "link"])
def test_the_raw_frames_are_read_once(tmp_path, save):
    """Every raw block is computed once for the write (the first one once more, for the guess), never
    once for the prepared frames and again for the reductions (the two-step way computes each twice)."""
    scan, dark, flat = make_scan()
    seen: list[int] = []
    counted = scan.copy()
    counted["data"] = (("frame", "y", "x"), scan["data"].data.map_blocks(_counting, dtype=scan["data"].dtype,
                                                                          seen=seen))
    params = dict(shape=16, center=None, dark=dark, flat=flat, **MASKS)
    prepare_to_ptyd(counted, tmp_path / "one.ptyd", params, progress=False, save=save)
    assert sorted(seen) == [0, 0, 1, 2, 3, 4, 5]
    seen.clear()
    to_ptyd(prepare(counted, **params), tmp_path / "two.ptyd", progress=False, save=save)
    assert all(seen.count(i) >= 2 for i in range(6))  # once to measure, once to write
