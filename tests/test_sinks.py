"""The one write-option set, the runner choice and the ``ptydask.*`` settings: every writer takes the same
options with the same defaults (:class:`WriteOptions`), a bad value is a one-line ParameterError naming it,
and the runner is chosen once from its argument or ``ptydask.runner``."""

from __future__ import annotations

import inspect
from dataclasses import fields

import dask
import numpy as np
import pytest

import ptydask.config  # noqa: F401 - registers the ptydask.* defaults
from ptydask import from_arrays, open_ptyd, prepare_to_ptyd, to_ptyd
from ptydask.errors import ParameterError
from ptydask.execution import DistributedRunner, ThreadRunner, resolve_runner
from ptydask.parallel.distributed import to_ptyd_distributed
from ptydask.parallel.mpi_write import to_ptyd_mpi
from ptydask.ptyd import SAVE_MODES, LiveWriter, WriteOptions

OPTION_NAMES = {f.name for f in fields(WriteOptions)}
WRITERS = [to_ptyd, to_ptyd_distributed, to_ptyd_mpi, LiveWriter.__init__, prepare_to_ptyd]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__qualname__)
def test_no_writer_redeclares_an_option_default(writer):
    """An option in a signature has no default of its own (``None`` = WriteOptions'); only ``save`` may
    name the strategy's usual mode (link for the cluster, MPI ranks and live writing)."""
    params = inspect.signature(writer).parameters
    for name, p in params.items():
        if name in OPTION_NAMES and name != "save":
            assert p.default is None, f"{writer.__qualname__}: {name} = {p.default!r}"
        if name == "save":
            assert p.default in (None, *SAVE_MODES)
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@pytest.mark.parametrize("bad, match", [
    (dict(save="zip"), r"^save: expected one of 'append', 'link', 'merge', got 'zip'$"),
    (dict(chunk_format="x"), r"^chunk_format: expected a printf pattern"),
    (dict(chunk_format="/p%d"), r"^chunk_format: '/p%d' must give distinct bare file-name suffixes$"),
    (dict(compression="lzf"), r"^compression: expected 'gzip' or None"),
    (dict(compression_level=10), r"^compression_level: expected an integer 0-9, got 10$"),
    (dict(compression_level=True), r"^compression_level:"),
    (dict(frames_per_hdf5_chunk=0), r"^frames_per_hdf5_chunk: expected an integer >= 1, got 0$"),
    (dict(max_in_flight=0), r"^max_in_flight: expected an integer >= 1 or None, got 0$"),
    (dict(gzip=1), r"^gzip: not a write option"),
])
def test_bad_options_fail_the_same_way_in_every_writer(tmp_path, bad, match):
    scan = from_arrays(np.zeros((2, 4, 4), np.uint16), np.zeros((2, 2)), energy=1.0, distance=1.0, psize=1e-4)
    with pytest.raises(ParameterError, match=match):
        WriteOptions.of(**bad)
    with pytest.raises(ParameterError, match=match):
        to_ptyd(scan, tmp_path / "a.ptyd", **bad)
    with pytest.raises(ParameterError, match=match):
        LiveWriter(tmp_path / "b.ptyd", **({"save": "link"} | bad))
    assert list(tmp_path.iterdir()) == []


def test_options_keep_explicit_none_compression_and_defaults():
    assert WriteOptions.of(compression=None).compression is None
    assert WriteOptions.of(save=None, chunk_format=None) == WriteOptions()
    base = WriteOptions(save="merge", compression_level=5)
    assert WriteOptions.of(base, shuffle=False) == WriteOptions(save="merge", compression_level=5, shuffle=False)


def test_runner_resolution(monkeypatch):
    assert isinstance(resolve_runner("threads"), ThreadRunner)
    runner = ThreadRunner()
    assert resolve_runner(runner) is runner
    assert isinstance(resolve_runner(client=object()), DistributedRunner)
    with dask.config.set({"ptydask.runner": "threads"}):
        assert isinstance(resolve_runner(), ThreadRunner)
    with pytest.raises(ParameterError, match=r"^runner: expected one of 'auto', 'threads', 'distributed'"):
        resolve_runner("mpi-ish")
    from ptydask.execution import runner as runner_module

    monkeypatch.setattr(runner_module, "default_client", lambda: None)
    assert isinstance(resolve_runner("auto"), ThreadRunner)
    with pytest.raises(ParameterError, match=r"^runner: 'distributed' needs a distributed.Client"):
        resolve_runner("distributed")


def test_ptyd_block_bytes_setting_is_read_when_opening(tmp_path):
    frames = np.arange(16 * 8 * 8, dtype=np.uint16).reshape(16, 8, 8)
    scan = from_arrays(frames, np.zeros((16, 2)), energy=1.0, distance=1.0, psize=1e-4, chunks=16)
    path = to_ptyd(scan, tmp_path / "s.ptyd", progress=False)
    assert open_ptyd(path)["data"].data.chunks[0] == (16,)
    with dask.config.set({"ptydask.block-bytes.ptyd": 4 * 8 * 8 * 2}):
        opened = open_ptyd(path)
    assert opened["data"].data.chunks[0] == (4, 4, 4, 4)
    np.testing.assert_array_equal(opened["data"].values, frames)
