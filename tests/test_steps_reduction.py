"""A Reduction gives the same result as a lazy tree, streamed in any order, and merged across parts."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ptydask.steps.reduction import PIXEL_STATS


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), block=st.integers(1, 9),
       dtype=st.sampled_from([np.uint16, np.int32, np.float64]))
def test_pixel_stats_lazy_stream_and_across_agree_with_numpy(seed, n, block, dtype):
    rng = np.random.default_rng(seed)
    frames = (rng.random((n, 5, 4)) * 1000 - (0 if np.dtype(dtype).kind == "u" else 300)).astype(dtype)
    arr = da.from_array(frames, chunks=(block, -1, -1))
    (lazy,) = dask.compute(PIXEL_STATS.lazy(arr))
    want = np.stack([frames.max(axis=0).astype(np.float64), frames.sum(axis=0, dtype=np.float64)])
    if dtype is np.float64:  # the tree adds block sums: the float order differs from numpy's by rounding only
        np.testing.assert_array_equal(lazy[0], want[0])
        np.testing.assert_allclose(lazy[1], want[1], rtol=1e-12)
    else:
        np.testing.assert_array_equal(lazy, want)
    blocks = [frames[s:s + block] for s in range(0, n, block)]
    fold = PIXEL_STATS.stream(len(blocks))
    for i in rng.permutation(len(blocks)):
        fold.add(int(i), PIXEL_STATS.partial(blocks[i]))
    np.testing.assert_array_equal(fold.result, lazy)
    if len(blocks) > 1:  # two "ranks" holding consecutive blocks
        half = len(blocks) // 2
        parts = [PIXEL_STATS.merge([PIXEL_STATS.partial(b) for b in blocks[:half]]),
                 PIXEL_STATS.merge([PIXEL_STATS.partial(b) for b in blocks[half:]])]
        across = PIXEL_STATS.across(parts)
        np.testing.assert_array_equal(across[0], want[0])
        if dtype is not np.float64:
            np.testing.assert_array_equal(across, want)
