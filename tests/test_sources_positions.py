"""Frame <-> position mapping (the four Hdf5Loader layouts) and lazy scan-point selection."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ptydask.errors import ParameterError, ScanError
from ptydask.sources import open_frames
from ptydask.sources import hdf5 as hdf5_mod

H = W = 4


def _write(path, frames, **datasets):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=frames, chunks=(1,) * (frames.ndim - 2) + frames.shape[-2:])
        for name, value in datasets.items():
            f[name] = value
    return path


def _stack(n):
    """Frames whose pixel values are their flat index, so a frame tells where it came from."""
    return np.broadcast_to(np.arange(n, dtype=np.uint16)[:, None, None], (n, H, W)).copy()


def _frame_ids(scan):
    return scan["data"].values[:, 0, 0].astype(int)


def test_layout1_mapped_list(tmp_path):
    slow, fast = np.linspace(0, 5, 6), np.linspace(10, 15, 6)
    path = _write(tmp_path / "a.h5", _stack(6), sy=slow, sx=fast)
    scan = open_frames(path, "data", positions={"slow_key": "sy", "fast_key": "sx",
                                                "slow_multiplier": 1e-6, "fast_multiplier": -1e-6})
    np.testing.assert_allclose(scan["positions"].values, np.stack([slow * 1e-6, -fast * 1e-6], axis=1))
    assert scan.attrs["info"]["layout"].startswith("(1)")


def test_layout1_mapped_raster_skip_and_bounding_box(tmp_path):
    frames = _stack(12).reshape(3, 4, H, W)
    sy, sx = np.meshgrid(np.arange(3.0), np.arange(4.0) * 10, indexing="ij")
    path = _write(tmp_path / "b.h5", frames, sy=sy, sx=sx)
    pos = {"slow_key": "sy", "fast_key": "sx"}
    scan = open_frames(path, "data", positions={**pos, "skip": 2})
    assert list(_frame_ids(scan)) == [0, 2, 8, 10]
    np.testing.assert_array_equal(scan["indices"].values, [0, 2, 8, 10])
    np.testing.assert_allclose(scan["positions"].values, [[0, 0], [0, 20], [2, 0], [2, 20]])
    boxed = open_frames(path, "data", positions={**pos, "bounding_box": {"slow_axis_bounds": (1, 3), "fast_axis_bounds": 1}})
    assert list(_frame_ids(boxed)) == [5, 6, 7, 9, 10, 11]
    np.testing.assert_allclose(boxed["positions"].values[0], [1, 10])


def test_layout2_raster_positions_frames_as_list(tmp_path):
    sy, sx = np.meshgrid(np.arange(3.0), np.arange(4.0), indexing="ij")
    path = _write(tmp_path / "c.h5", _stack(12), sy=sy, sx=sx)
    scan = open_frames(path, "data", positions={"slow_key": "sy", "fast_key": "sx", "bounding_box": {"slow_axis_bounds": 2}})
    assert list(_frame_ids(scan)) == [8, 9, 10, 11]  # frame s*D + f
    np.testing.assert_allclose(scan["positions"].values, [[2, 0], [2, 1], [2, 2], [2, 3]])
    assert scan.attrs["info"]["layout"].startswith("(2)")


def test_layout3_meshed_axes_raster_frames(tmp_path):
    path = _write(tmp_path / "d.h5", _stack(12).reshape(3, 4, H, W), sy=np.array([0.0, 1, 2]), sx=np.array([5.0, 6, 7, 8]))
    scan = open_frames(path, "data", positions={"slow_key": "sy", "fast_key": "sx"})
    np.testing.assert_allclose(scan["positions"].values[6], [1, 7])
    assert list(_frame_ids(scan)) == list(range(12))
    assert scan.attrs["info"]["layout"].startswith("(3)")


def test_layout4_meshed_axes_frames_as_list_with_filter(tmp_path):
    keep = np.zeros((3, 4), bool)
    keep[1, 1] = keep[2, 3] = True
    path = _write(tmp_path / "e.h5", _stack(12), sy=np.array([0.0, 1, 2]), sx=np.array([5.0, 6, 7, 8]), keep=keep.astype(np.uint8))
    scan = open_frames(path, "data", positions={"slow_key": "sy", "fast_key": "sx"}, framefilter={"key": "keep"})
    assert list(_frame_ids(scan)) == [5, 11]
    np.testing.assert_allclose(scan["positions"].values, [[1, 6], [2, 8]])
    assert scan.attrs["info"]["layout"].startswith("(4)")


def test_slow_and_fast_index_pick_columns(tmp_path):
    table = np.stack([np.arange(5.0), np.arange(5.0) * 2, np.arange(5.0) * 3], axis=1)
    path = _write(tmp_path / "f.h5", _stack(5), motors=table)
    scan = open_frames(path, "data", positions={"slow_key": "motors", "fast_key": "motors", "slow_index": 2, "fast_index": 0})
    np.testing.assert_allclose(scan["positions"].values, table[:, [2, 0]])


def test_positions_from_another_file(tmp_path):
    _write(tmp_path / "pos.h5", _stack(1), y=np.arange(3.0), x=np.arange(3.0) + 1)
    frames = _write(tmp_path / "frames.h5", _stack(3))
    scan = open_frames(frames, "data", positions={"file": tmp_path / "pos.h5", "slow_key": "y", "fast_key": "x"})
    np.testing.assert_allclose(scan["positions"].values, [[0, 1], [1, 2], [2, 3]])


def test_frameorder_subset_keeps_global_indices_and_permutation_renumbers(tmp_path):
    path = _write(tmp_path / "g.h5", _stack(6))
    subset = open_frames(path, "data", frameorder={"indices": [1, 3, 4]})
    np.testing.assert_array_equal(subset["indices"].values, [1, 3, 4])
    permuted = open_frames(path, "data", positions=np.arange(12.0).reshape(6, 2), frameorder=[5, 0, 2])
    assert list(_frame_ids(permuted)) == [5, 0, 2]
    np.testing.assert_allclose(permuted["positions"].values, [[10, 11], [0, 1], [4, 5]])
    np.testing.assert_array_equal(permuted["indices"].values, [0, 1, 2])
    assert permuted.attrs["info"]["reordered"] is True


def test_selection_is_lazy_and_reads_only_needed_blocks(tmp_path, monkeypatch):
    frames = _stack(40)
    with h5py.File(tmp_path / "h.h5", "w") as f:
        f.create_dataset("data", data=frames, chunks=(5, H, W))
    calls = []
    original = hdf5_mod.Hdf5Reader.read
    monkeypatch.setattr(hdf5_mod.Hdf5Reader, "read", lambda self, a, b: calls.append((a, b)) or original(self, a, b))
    keep = np.zeros(40, bool)
    keep[[1, 4, 33, 36]] = True
    scan = open_frames(tmp_path / "h.h5", "data", framefilter=keep, block_bytes=10 * H * W * 2)
    assert calls == []
    assert list(_frame_ids(scan)) == [1, 4, 33, 36]
    assert sorted(calls) == [(0, 10), (30, 40)]  # the two blocks with selected frames, each once
    skipped = open_frames(tmp_path / "h.h5", "data", positions=np.zeros((40, 2)), block_bytes=10 * H * W * 2,
                          frameorder=np.arange(0, 40, 4))
    assert skipped["data"].data.chunks[0] == (10,)  # small blocks left by a selection are merged


# --------------------------------------------------------------------------- errors


def test_count_mismatch_names_file_key_and_layouts(tmp_path):
    path = _write(tmp_path / "m.h5", _stack(6), sy=np.arange(5.0), sx=np.arange(5.0))
    with pytest.raises(ScanError, match=r"m\.h5:data: cannot map 6 frames laid out as \(6,\).*slow \(5,\).*allowed layouts: \(1\)"):
        open_frames(path, "data", positions={"slow_key": "sy", "fast_key": "sx"})


def test_raster_frames_with_wrong_grid(tmp_path):
    path = _write(tmp_path / "n.h5", _stack(12).reshape(3, 4, H, W), sy=np.arange(4.0), sx=np.arange(3.0))
    with pytest.raises(ScanError, match=r"cannot map 12 frames laid out as \(3, 4\).*slow \(4,\), fast \(3,\)"):
        open_frames(path, "data", positions={"slow_key": "sy", "fast_key": "sx"})


def test_slow_bounds_on_a_1d_scan_are_refused(tmp_path):
    path = _write(tmp_path / "o.h5", _stack(6))
    with pytest.raises(ScanError, match=r"slow_axis_bounds.*1-D list of 6.*fast_axis_bounds"):
        open_frames(path, "data", positions={"slow": np.arange(6.0), "fast": np.arange(6.0),
                                             "bounding_box": {"slow_axis_bounds": 2}})


@pytest.mark.parametrize("spec, error, words", [
    ({"skip": 0}, ParameterError, r"positions\.skip: expected an integer >= 1"),
    ({"bounding_box": {"fast_axis_bounds": (2, 9)}}, ScanError, r"fast_axis_bounds=\(2, 9\): must select within 0\.\.6"),
    ({"bounding_box": {"fast_axes_bounds": 1}}, ParameterError, r"did you mean 'fast_axis_bounds'"),
    ({"slow_multiplyer": 2}, ParameterError, r"unknown key 'slow_multiplyer' \(did you mean 'slow_multiplier'\?\)"),
    ({"fast_index": 3}, ScanError, r"fast_index=3: the fast positions have shape \(6,\), no such column"),
    ({"fast": None}, ParameterError, r"fast_key \(or fast\) is required"),
])
def test_bad_position_options(tmp_path, spec, error, words):
    path = _write(tmp_path / "p.h5", _stack(6))
    full = {"slow": np.arange(6.0), "fast": np.arange(6.0), **spec}
    with pytest.raises(error, match=words):
        open_frames(path, "data", positions=full)


def test_bad_frameorder_framefilter_and_empty_selection(tmp_path):
    path = _write(tmp_path / "q.h5", _stack(6))
    with pytest.raises(ScanError, match=r"frameorder\.indices reach 6, but only 6 scan points"):
        open_frames(path, "data", frameorder=[0, 6])
    with pytest.raises(ScanError, match=r"framefilter: shape \(5,\) matches neither"):
        open_frames(path, "data", framefilter=np.ones(5))
    with pytest.raises(ScanError, match="leaves no scan points"):
        open_frames(path, "data", framefilter=np.zeros(6))
    with pytest.raises(ScanError, match=r"positions: expected an \(N, 2\) array"):
        open_frames(path, "data", positions=np.zeros((6, 3)))
