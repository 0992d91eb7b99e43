"""Reused memory for block arrays (``ptydask.buffers``) and the pass's garbage-collector setting:
memory is reused only when no array or view refers to it, never outside a pass."""

from __future__ import annotations

import gc

import dask.array as da
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ptydask import buffers
from ptydask.blocks import iter_blocks

BIG = (buffers.MIN_BYTES // 8 + 16,)  # float64 elements: just above the pooling size


def test_reused_only_when_nothing_refers_to_it():
    with buffers.reuse():
        a = buffers.empty(BIG, np.float64)
        address = a.__array_interface__["data"][0]
        b = buffers.empty(BIG, np.float64)  # a is alive: other memory
        assert b.__array_interface__["data"][0] != address
        view = a[10:]
        del a
        c = buffers.empty(BIG, np.float64)  # a view of a is alive: other memory
        assert c.__array_interface__["data"][0] != address
        del view
        d = buffers.empty(BIG, np.float64)  # now free: reused
        assert d.__array_interface__["data"][0] == address
        e = buffers.empty(BIG[0] * 8, np.uint8)  # same size, other dtype: reused memory too
        assert e.dtype == np.uint8 and e.shape == (BIG[0] * 8,)


def test_plain_arrays_outside_a_pass_and_for_small_sizes():
    a = buffers.empty(BIG, np.float64)
    assert a.base is None
    with buffers.reuse():
        assert buffers.empty((16,), np.float64).base is None
    with buffers.reuse():
        a = buffers.empty(BIG, np.float64)
        address = a.__array_interface__["data"][0]
        del a
    with buffers.reuse():  # the kept buffers were dropped when the pass ended
        assert buffers._kept == {}
        buffers.empty(BIG, np.float64)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["take", "drop", "view"]), st.integers(0, 7)), max_size=40))
def test_live_arrays_never_overwritten(ops):
    """Any sequence of taking, dropping and viewing arrays: every live array keeps what was written to it."""
    live: list[tuple[np.ndarray, float]] = []
    views: list[tuple[np.ndarray, float]] = []
    with buffers.reuse(keep=3):
        for n, (op, k) in enumerate(ops):
            if op == "take":
                arr = buffers.empty(BIG, np.float64)
                arr.fill(float(n))
                live.append((arr, float(n)))
            elif op == "drop" and live:
                live.pop(k % len(live))
            elif op == "view" and live:
                arr, value = live.pop(k % len(live))
                views.append((arr[3:7], value))
            for arr, value in live + views:
                assert np.all(arr == value)


def test_pass_freezes_older_objects_and_leaves_a_process_freeze_alone():
    data = da.ones((8, 4, 4), chunks=(2, 4, 4))
    seen = []
    for _i, _block in iter_blocks([data]):
        seen.append(gc.get_freeze_count())
    assert all(count > 0 for count in seen) and gc.get_freeze_count() == 0
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        list(iter_blocks([data]))
        assert gc.get_freeze_count() > frozen // 2  # not unfrozen (objects freed since drop out of it)
    finally:
        gc.unfreeze()
