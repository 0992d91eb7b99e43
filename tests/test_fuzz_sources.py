"""Fuzzing raw HDF5/NeXus/DECTRIS/CXI inputs of ``open_frames``: only ptydask errors, no hang, no huge allocation.

Valid seed files are mutated with hypothesis — bit flips and byte overwrites anywhere, truncation,
and structural edits made with h5py (attributes, dtypes, shapes including huge declared ones,
deleted objects, links) — then opened with ``open_frames`` and read to the end (frames, weights,
positions). Every example runs under a SIGALRM timeout; every Dask block of an opened scan must be
of bounded size (one frame is what a read allocates), so a hostile declared shape cannot make a
reader allocate without bound.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import warnings
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ptydask import open_frames
from ptydask.errors import PtydaskError

N, H, W = 6, 8, 8
PER_EXAMPLE_SECONDS = int(os.environ.get("PTYDASK_FUZZ_SECONDS", 20))
MAX_BLOCK_BYTES = 512 * 2**20  # nothing a reader allocates at once may exceed this
READ_ALL_BYTES = 64 * 2**20  # read every frame up to this size, else the first and last frames
# CI: 150 derandomised examples per test. Longer hunts: PTYDASK_FUZZ_EXAMPLES=2000 PTYDASK_FUZZ_RANDOM=1.
FUZZ = settings(max_examples=int(os.environ.get("PTYDASK_FUZZ_EXAMPLES", 150)), deadline=None,
                derandomize="PTYDASK_FUZZ_RANDOM" not in os.environ, report_multiple_bugs=False,
                phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([] if "PTYDASK_FUZZ_RANDOM" in os.environ else [Phase.shrink]),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
COUNTS: dict[str, int] = {"examples": 0, "opened": 0, "refused": 0}


def _frames(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, (N, H, W)).astype(np.uint16)


def _plain(path: Path) -> dict:
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data", data=_frames(), chunks=(1, H, W), compression="gzip")
        f["entry/y"] = np.arange(N) * 1e-6
        f["entry/x"] = np.arange(N) * 2e-6
        f["entry/energy"] = 8.0
        f["entry/energy"].attrs["units"] = "keV"
    return {"key": "entry/data", "positions": {"slow_key": "entry/y", "fast_key": "entry/x"},
            "recorded_energy": {"key": "entry/energy"}}


def _nexus(path: Path) -> dict:
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "frames"
        data.create_dataset("frames", data=_frames(1), chunks=(2, H, W), compression="gzip", shuffle=True)
        det = entry.create_group("instrument/detector")
        det.attrs["NX_class"] = "NXdetector"
        mask = np.zeros((H, W), np.uint32)
        mask[1, 2] = 1
        det["pixel_mask"] = mask
    return {"positions": np.zeros((N, 2))}


def _dectris(path: Path) -> dict:
    for i in (1, 2):
        with h5py.File(path.with_name(f"scan_data_{i:06d}.h5"), "w") as f:
            f.create_dataset("entry/data/data", data=_frames(i)[:3], chunks=(1, H, W), compression="gzip")
    with h5py.File(path, "w") as f:
        for i in (1, 2):
            f[f"entry/data/data_{i:06d}"] = h5py.ExternalLink(f"scan_data_{i:06d}.h5", "/entry/data/data")
        f["entry/instrument/detector/detectorSpecific/pixel_mask"] = np.zeros((H, W), np.uint32)
        f["entry/instrument/beam/incident_wavelength"] = 1.0
    return {"positions": np.zeros((N, 2))}


def _cxi(path: Path) -> dict:
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 150
        f.create_dataset("entry_1/data_1/data", data=_frames(3), chunks=(1, H, W))
        f["entry_1/sample_1/geometry_1/translation"] = np.random.default_rng(0).standard_normal((N, 3)) * 1e-6
        f["entry_1/instrument_1/source_1/energy"] = 8.0 * 1.602176634e-16
        f["entry_1/instrument_1/detector_1/distance"] = 2.0
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = 7.5e-5
        f["entry_1/instrument_1/detector_1/y_pixel_size"] = 7.5e-5
        f["entry_1/instrument_1/detector_1/mask"] = np.zeros((H, W), np.uint32)
    return {}


SEEDS = {"plain.h5": _plain, "nexus.nxs": _nexus, "scan_master.h5": _dectris, "scan.cxi": _cxi}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    out = {}
    for name, make in SEEDS.items():
        sub = d / name.split(".")[0]
        sub.mkdir()
        out[name] = (sub, make(sub / name))
    for name, (sub, spec) in out.items():  # every seed is valid
        _open_and_read(sub / name, spec)
    yield out
    print(f"\nfuzz_sources: {COUNTS['examples']} examples, {COUNTS['opened']} opened and read to the end, "
          f"{COUNTS['refused']} refused with a ptydask error")


class Hang(Exception):
    pass


@contextmanager
def _time_limit(seconds: int):
    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(3 * seconds)  # stuck inside C code (no SIGALRM delivery): show where
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _open_and_read(path: Path, spec: dict) -> None:
    spec = dict(spec)
    key = spec.pop("key", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan = open_frames(path, key, **spec)
        for name in ("data", "weights"):
            if name not in scan:
                continue
            arr = scan[name].data
            if not hasattr(arr, "chunks"):
                continue
            biggest = max(arr.chunks[0]) * int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize
            assert biggest <= MAX_BLOCK_BYTES, f"{name}: a Dask block of {biggest} bytes"
            if arr.nbytes <= READ_ALL_BYTES:
                arr.sum().compute(scheduler="sync")
            else:  # a huge declared stack: its first and last frames (reading GBs of fill values proves nothing)
                arr[:1].sum().compute(scheduler="sync")
                arr[-1:].sum().compute(scheduler="sync")
        if "positions" in scan:
            np.asarray(scan["positions"].values).sum()


def _check(path: Path, spec: dict) -> None:
    COUNTS["examples"] += 1
    try:
        with _time_limit(PER_EXAMPLE_SECONDS):
            _open_and_read(path, spec)
        COUNTS["opened"] += 1
    except PtydaskError as exc:
        COUNTS["refused"] += 1
        assert str(exc).strip(), "an error without a message"


def _work_copy(seeds, name: str, tmp_path: Path) -> tuple[Path, dict]:
    sub, spec = seeds[name]
    work = tmp_path / sub.name
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(sub, work)
    return work / name, spec


# --------------------------------------------------------------------------- byte mutations

seed_names = st.sampled_from(sorted(SEEDS))


@st.composite
def byte_mutations(draw):
    kind = draw(st.sampled_from(["flip", "overwrite", "truncate", "zero-run"]))
    return kind, draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=8)), draw(st.binary(min_size=1, max_size=64))


def _mutate_bytes(path: Path, kind: str, where: list[float], payload: bytes) -> None:
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        path.write_bytes(bytes(data[: int(where[0] * len(data))]))
        return
    for i, frac in enumerate(where):
        pos = int(frac * len(data))
        if kind == "flip":
            data[pos] ^= 1 << (payload[i % len(payload)] % 8)
        elif kind == "overwrite":
            data[pos:pos + len(payload)] = payload[: len(data) - pos]
        else:
            data[pos:pos + 16 * len(payload)] = bytes(min(16 * len(payload), len(data) - pos))
    path.write_bytes(bytes(data))


def _victim(path, name, target):
    """The file to damage: the copied seed, or (``target="data"``) the data file behind a DECTRIS master."""
    return path.with_name("scan_data_000001.h5") if (target == "data" and name == "scan_master.h5") else path


@FUZZ
@given(name=seed_names, target=st.sampled_from(["master", "data"]), mutation=byte_mutations())
def test_byte_mutations(seeds, tmp_path, name, target, mutation):
    path, spec = _work_copy(seeds, name, tmp_path)
    victim = _victim(path, name, target)
    _mutate_bytes(victim, *mutation)
    _check(path, spec)


# --------------------------------------------------------------------------- structural mutations

DTYPES = [np.complex64, np.float16, np.bool_, np.int64, "S4", h5py.string_dtype(), [("a", "<i4"), ("b", "<f4")],
          h5py.vlen_dtype(np.int32), ">u2", np.float64]
SHAPES = [(N,), (), (0, H, W), (N, 0, W), (N, 1, W), (2, 3, N, H, W), (N, H, W, 2), (10**9, H, W),
          (N, 100_000, 100_000), (2**40, 2**20, 2**20), (N, 2**17, 2**17)]
ATTR_VALUES = [b"\xff\xfe", "", "NXdata", "nonexistent", 7, np.arange(3), np.zeros((0,)), "../../etc", "data/../data",
               "frames" * 1000, np.array(["a", "b"], dtype="S1")]
ATTRS = ["NX_class", "default", "signal", "units", "type"]


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def _groups(f: h5py.File) -> list[str]:
    names = ["/"]
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Group) else None)
    return sorted(names)


@st.composite
def structural(draw):
    op = draw(st.sampled_from(["dtype", "shape", "attr", "delete", "link", "softloop", "empty", "compound-frames"]))
    return op, draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))


def _mutate_structure(path: Path, op: str, a: int, b: int) -> None:
    with h5py.File(path, "a") as f:
        dsets, groups = _datasets(f), _groups(f)
        if op in ("dtype", "shape", "empty", "compound-frames") and dsets:
            name = dsets[a % len(dsets)]
            attrs = dict(f[name].attrs)
            del f[name]
            if op == "dtype":
                dt = DTYPES[b % len(DTYPES)]
                f.create_dataset(name, shape=(N, H, W) if b % 3 else (N,), dtype=dt)
            elif op == "shape":
                shape = SHAPES[b % len(SHAPES)]
                chunks = tuple(min(s, 4) or 1 for s in shape) if shape and all(shape) else None
                f.create_dataset(name, shape=shape, dtype=np.uint16, chunks=chunks)
            elif op == "empty":
                f.create_dataset(name, data=h5py.Empty("f4"))
            else:
                f.create_dataset(name, shape=(N, H, W), dtype=[("x", "<u2"), ("y", "<u2")])
            for k, v in attrs.items():
                f[name].attrs[k] = v
        elif op == "attr":
            objs = groups + dsets
            obj = f[objs[a % len(objs)]]
            obj.attrs[ATTRS[b % len(ATTRS)]] = ATTR_VALUES[(a + b) % len(ATTR_VALUES)]
        elif op == "delete":
            objs = [o for o in groups + dsets if o != "/"]
            if objs:
                del f[objs[a % len(objs)]]
        elif op in ("link", "softloop") and dsets:
            name = dsets[a % len(dsets)]
            del f[name]
            if op == "softloop":
                f[name] = h5py.SoftLink("/" + name)
            else:
                target = ["missing.h5", "/etc/passwd", "../outside.h5", path.name, "", "scan_data_000002.h5"][b % 6]
                f[name] = h5py.ExternalLink(target or ".", "/" + name)


@FUZZ
@given(name=seed_names, target=st.sampled_from(["master", "data"]), mutation=structural())
def test_structural_mutations(seeds, tmp_path, name, target, mutation):
    path, spec = _work_copy(seeds, name, tmp_path)
    victim = _victim(path, name, target)
    _mutate_structure(victim, *mutation)
    _check(path, spec)


def test_huge_declared_frame_is_refused_before_any_allocation(tmp_path):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", shape=(2, 10**6, 10**6), dtype=np.float64, chunks=(1, 64, 64))
    with pytest.raises(PtydaskError, match=r"huge\.h5:d.*\(1000000, 1000000\).*implausibly large"):
        open_frames(path, "d")


def test_a_damaged_chunk_is_a_source_error_naming_file_key_and_frames(tmp_path):
    path = tmp_path / "damaged.h5"
    frames = np.random.default_rng(0).integers(0, 2**16, (4, 64, 64)).astype(np.uint16)  # incompressible
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", data=frames, chunks=(1, 64, 64), compression="gzip")
        offset = ds.id.get_chunk_info(2).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 10:offset + 200] = bytes(190)
    path.write_bytes(bytes(data))
    scan = open_frames(path, "d", positions=np.zeros((4, 2)), block_bytes=64 * 64 * 2)  # one frame per block
    np.testing.assert_array_equal(scan["data"][:2].values, frames[:2])  # undamaged frames still read
    with pytest.raises(PtydaskError, match=r"damaged\.h5:d: cannot read frames 2:3"):
        scan["data"][2].values
