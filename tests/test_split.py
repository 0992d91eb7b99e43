"""ptypy's frame-to-rank split: the worked examples of the spec and its invariants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ptydask.parallel import FrameSplitter, split_counts


def _run(ranks, chunk_sizes):
    sp, start, calls = FrameSplitter(ranks), 0, []
    for n in chunk_sizes:
        calls.append(sp.split(list(range(start, start + n))))
        start += n
    return calls, sp.loads


def test_spec_example_three_ranks_auto10():
    calls, loads = _run(3, [10, 10, 3])
    assert calls == [
        [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]],
        [[10, 11, 12], [13, 14, 15, 16], [17, 18, 19]],
        [[20], [21], [22]],
    ]
    assert loads == [7, 8, 8]


def test_spec_example_eligibility():
    calls, loads = _run(3, [5, 5, 1, 6])
    assert calls == [
        [[0], [1, 2], [3, 4]],
        [[5, 6], [7], [8, 9]],
        [[], [10], []],
        [[11, 12], [13, 14], [15, 16]],
    ]
    assert loads == [5, 6, 6]


@given(st.integers(1, 7), st.lists(st.integers(0, 40), max_size=8))
def test_split_is_a_contiguous_partition(ranks, chunk_sizes):
    calls, loads = _run(ranks, chunk_sizes)
    start = 0
    for n, parts in zip(chunk_sizes, calls):
        assert sum(parts, []) == list(range(start, start + n))  # in order, no gap, no duplicate
        start += n
    assert sum(loads) == sum(chunk_sizes)
    if sum(chunk_sizes):
        assert max(loads) - min(loads) <= max(chunk_sizes)


def test_single_rank_gets_everything():
    assert split_counts([5], 4) == [4]
