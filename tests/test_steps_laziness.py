"""Laziness: building ``prepare`` reads no frame, and the graph grows with the number of blocks only."""

from __future__ import annotations

import time

import dask.array as da
import numpy as np
import pytest

from ptydask.scan import from_arrays
from ptydask.steps import prepare

N_FRAMES = 1_000_000
FRAMES_PER_BLOCK = 1000


def untouchable(block: np.ndarray) -> np.ndarray:
    raise AssertionError("a frame block was read while the graph was being built")


def counting_frames(frames: np.ndarray, chunks: int):
    """A lazy stack whose blocks count how often they are read."""
    reads: list[int] = []

    def read(block: np.ndarray, block_info=None) -> np.ndarray:
        reads.append(block_info[0]["chunk-location"][0])
        return block

    arr = da.from_array(frames, chunks=(chunks, -1, -1)).map_blocks(read, dtype=frames.dtype)
    return arr, reads


def test_million_frames_build_without_reading() -> None:
    frames = da.zeros((N_FRAMES, 64, 64), dtype=np.uint16, chunks=(FRAMES_PER_BLOCK, -1, -1))
    frames = frames.map_blocks(untouchable, dtype=np.uint16)
    scan = from_arrays(frames, np.zeros((N_FRAMES, 2)), energy=8.0, distance=2.0, psize=75e-6)
    before = len(scan["data"].data.__dask_graph__())
    nblocks = scan["data"].data.npartitions

    start = time.perf_counter()
    out = prepare(scan, shape=32, center=(30.5, 33), orientation=3, rebin=2, dark=np.ones((64, 64)))
    elapsed = time.perf_counter() - start
    print(f"prepare built on {N_FRAMES} frames in {nblocks} blocks in {elapsed:.3f} s")

    graph = out["data"].data.__dask_graph__()
    added = len(graph) - before
    assert added <= nblocks + 10  # one task per block, plus a few shared inputs
    assert out["data"].data.npartitions == nblocks
    assert out["data"].shape == (N_FRAMES, 16, 16)
    assert out["weights"].shape == (16, 16)  # 2-D weights stay 2-D
    assert elapsed < 10.0
    assert out.attrs["center"] == (7.5, 7.5) and out.attrs["shape"] == (16, 16)


def test_untouched_when_nothing_to_do() -> None:
    frames = da.zeros((100, 16, 16), dtype=np.uint32, chunks=(10, -1, -1)).map_blocks(untouchable, dtype=np.uint32)
    scan = from_arrays(frames)
    out = prepare(scan, shape=16, center="fftshift")
    assert out["data"].data is scan["data"].data  # the gate is closed: no task added
    assert out["data"].dtype == np.uint32


@pytest.mark.parametrize("per_frame_weights", [False, True])
@pytest.mark.parametrize("auto_center, masks, passes", [
    (True, False, 1),   # automatic centre alone: one pass
    (False, True, 1),   # automatic masks alone: one pass
    (True, True, 2),    # both: one pass (after the first block, read for the candidate pixels), or
                        # with per-frame validity masks first, then the centre with the masks applied
])
def test_global_reductions_read_every_frame_once_per_pass(per_frame_weights: bool, auto_center: bool, masks: bool,
                                                          passes: int) -> None:
    rng = np.random.default_rng(1)
    raw = rng.poisson(5.0, size=(40, 16, 16)).astype(np.uint16)
    arr, reads = counting_frames(raw, 6)
    # per-frame weights + rebin: the max-fraction rule needs one more reduction, over the weights only
    weights = (rng.random((40, 16, 16)) > 0.1).astype(np.uint8) if per_frame_weights else None
    scan = from_arrays(arr, weights=weights)
    mask_kw = dict(hot_pixels=5.0, dead_pixels=True, saturation=60000) if masks else {}
    out = prepare(scan, shape=12, center=None if auto_center else (8, 8), orientation=2, rebin=2, **mask_kw)
    nblocks = arr.npartitions
    if auto_center and masks and not per_frame_weights:
        assert sorted(reads) == sorted([0] + list(range(nblocks)))  # block 0, then one pass
        assert any("same pass" in d for d in out.attrs["info"]["deviations"])
    else:
        assert sorted(reads) == sorted(list(range(nblocks)) * passes)  # each block once per pass
    reads.clear()
    out["data"].values
    assert sorted(reads) == list(range(nblocks))  # the blockwise pass reads each block once more
    if masks:
        assert out.attrs["info"]["masks"] == {"saturated": 0, "dead": 0, "hot": 0}


@pytest.mark.parametrize("chunks", [1, 7, 40])
def test_output_keeps_the_frame_blocks(chunks: int) -> None:
    raw = np.arange(40 * 8 * 8, dtype=np.float32).reshape(40, 8, 8)
    scan = from_arrays(raw, chunks=chunks)
    out = prepare(scan, shape=6, center=(4, 4), rebin=3)
    assert out["data"].data.chunks[0] == scan["data"].data.chunks[0]
    assert out["data"].data.chunks[1:] == ((2,), (2,))
