"""One progress report per job: ptydask's bar counts frames (and MiB), Dask's callbacks see one compute."""

from __future__ import annotations

import re

import numpy as np
import pytest
from dask.callbacks import Callback
from dask.diagnostics import ProgressBar

import ptydask
from ptydask.progress import JobCallbacks, job_bar, one_report


def _scan(n=60, blocks=10):
    frames = np.arange(n * 32 * 32, dtype=np.float64).reshape(n, 32, 32) % 7
    return ptydask.from_arrays(frames, np.zeros((n, 2)), energy=8.0, distance=1.0, psize=1e-4, chunks=n // blocks)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.starts = self.finishes = 0
        self.done: list = []
        self.errored = None

    def _start(self, dsk):
        self.starts += 1

    def _posttask(self, key, result, dsk, state, worker_id):
        self.done.append(key)

    def _finish(self, dsk, state, errored):
        self.finishes += 1
        self.errored = errored


def test_dask_progress_bar_shows_one_bar_per_write(tmp_path, capsys):
    prepared = ptydask.prepare(_scan(), shape=16, center=(16, 16), dead_pixels=True)
    with ProgressBar():
        ptydask.to_ptyd(prepared, tmp_path / "a.ptyd", progress=False)
    out = capsys.readouterr().out
    assert out.count("100% Completed") == 1, out


def test_callbacks_see_the_job_as_one_compute(tmp_path):
    prepared = ptydask.prepare(_scan(), shape=16, center=(16, 16))
    with Recorder() as rec:
        ptydask.to_ptyd(prepared, tmp_path / "a.ptyd", progress=False)
    assert rec.starts == rec.finishes == 1 and rec.errored is False
    data_keys = {k for k in rec.done if isinstance(k, tuple) and k[0] == prepared["data"].data.name}
    assert len(data_keys) == 10  # every block of the frames, reported to the one compute
    assert not Callback.active  # what the job held back is given back


def test_callbacks_are_given_back_after_an_error():
    with Recorder() as rec:
        with pytest.raises(RuntimeError):
            with one_report():
                assert not Callback.active
                raise RuntimeError("boom")
        assert rec._callback in Callback.active
    assert not Callback.active


def test_job_callbacks_without_active_callbacks_disable_the_global_ones():
    job = JobCallbacks({"a": 1})
    assert job.for_block() == () and job.active == ()


def test_bar_counts_frames_and_mib(tmp_path, capsys):
    ptydask.to_ptyd(_scan(), tmp_path / "a.ptyd", progress=True)
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "writing a.ptyd" in last and "60/60" in last and "frame/s" in last
    mib = 60 * 32 * 32 * 8 / 2**20
    assert re.search(rf"{mib:.1f} MiB", last), last


def test_no_bar_when_not_asked_or_not_watched(capsys):
    assert job_bar(10, False, "x") is None
    assert job_bar(10, None, "x") is None  # stderr is captured: nobody watches
    bar = job_bar(10, True, "x", initial=4, frame_bytes=2**20)
    bar.update(6)
    bar.close()
    assert "10/10" in capsys.readouterr().err.replace("\r", "\n")
