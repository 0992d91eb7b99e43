"""One conformance class that every source format passes (modelled on xarray's inherited backend tests).

Each format subclass says how to make (or where to find) a file and how the format's own
library reads it; the inherited tests check: registered and detected by content, lazy open
(no frame read before the values are asked for), values equal to the library's read, geometry
with its units and origin where the format has one, a graph that pickles, and a truncated or
garbage file refused with a SourceError naming it. Real files of ``../shared/data/real`` where
they exist, small generated files otherwise.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import fabio
import h5py
import numpy as np
import pytest
import tifffile
import zarr

from ptydask.errors import SourceError
from ptydask.sources import detect, formats, open_frames
from ptydask.sources.base import FrameReader

from conftest import REAL

RNG = np.random.default_rng(7)
KEV_J = 1.602176634e-16
HC_KEV_ANGSTROM = 12.398419843320026


@dataclass
class Case:
    """A source to open and what the format's own library reads from it."""

    source: Any  # path, folder or list of paths
    files: list[Path]  # the files holding pixels (truncated / garbled by the bad-file tests)
    reference: np.ndarray  # (N, H, W), as the library reads it
    key: Optional[str] = None
    geometry: dict[str, tuple[Any, str]] = field(default_factory=dict)  # quantity -> (value, unit in origin)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub] + _subclasses(sub)
    return out


@pytest.fixture
def frame_reads(monkeypatch):
    """Every frame read of every reader (FrameReader subclasses, Zarr chunks), as (reader, start, stop)."""
    calls: list = []
    for cls in [FrameReader] + _subclasses(FrameReader):
        if "read" in cls.__dict__:
            def counting(self, start, stop, _orig=cls.__dict__["read"]):
                calls.append((type(self).__name__, start, stop))
                return _orig(self, start, stop)
            monkeypatch.setattr(cls, "read", counting)
    original = zarr.Array.__getitem__

    def zarr_read(self, sel):
        calls.append(("zarr", sel))
        return original(self, sel)

    monkeypatch.setattr(zarr.Array, "__getitem__", zarr_read)
    return calls


def _real(*parts: str) -> Path:
    path = REAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (set PTYDASK_SHARED)")
    return path


class FormatConformance:
    """Inherit, set ``name``, implement ``make(folder) -> Case``; ``lazy = False`` for formats read at open."""

    name: str = ""
    lazy: bool = True

    def make(self, folder: Path) -> Case:
        raise NotImplementedError

    @pytest.fixture
    def case(self, tmp_path) -> Case:
        return self.make(tmp_path)

    def _open(self, case: Case, **kw: Any):
        return open_frames(case.source, case.key, **kw)

    def test_registered_with_a_name_and_suffixes(self):
        fmt = formats()[self.name]
        assert fmt.name == self.name and fmt.suffixes and all(s.startswith(".") for s in fmt.suffixes)

    def test_detected_and_named_in_the_info(self, case):
        single = isinstance(case.source, (str, Path)) and os.path.exists(case.source)
        target = case.source if single and (self.name == "zarr" or not os.path.isdir(case.source)) else case.files[0]
        assert detect(str(target)).name == self.name
        scan = self._open(case)
        assert scan.attrs["info"]["source_format"] in (self.name, "cxi", "nexus")

    def test_open_reads_no_frame(self, case, frame_reads):
        if not self.lazy:
            pytest.skip(f"{self.name}: read into memory at open, by design")
        scan = self._open(case)
        assert frame_reads == [], frame_reads
        scan["data"].values
        assert frame_reads, "the values were never read through the format's reader"

    def test_values_equal_the_library_read(self, case):
        scan = self._open(case)
        assert scan["data"].shape == case.reference.shape
        assert scan["data"].dtype == case.reference.dtype.newbyteorder("=")
        np.testing.assert_array_equal(scan["data"].values, case.reference)

    def test_geometry_with_units_and_origin(self, case):
        scan = self._open(case)
        info = scan.attrs["info"]
        for quantity in ("energy", "distance", "psize"):
            if quantity not in case.geometry:
                assert scan.attrs.get(quantity) is None, (quantity, scan.attrs.get(quantity))
                continue
            value, unit = case.geometry[quantity]
            np.testing.assert_allclose(np.ravel(scan.attrs[quantity]), np.ravel(value), rtol=1e-9)
            origin = info[f"{quantity}_from"]
            assert origin.startswith("source file") and unit in origin, origin
        if case.geometry:  # an explicit value always overrides the file's
            assert self._open(case, energy=1.5, distance=0.5).attrs["energy"] == 1.5

    def test_graph_pickles_and_reads_by_path(self, case):
        scan = self._open(case)
        back = pickle.loads(pickle.dumps(scan["data"].data))
        np.testing.assert_array_equal(back.compute(scheduler="synchronous"), case.reference)

    @pytest.mark.parametrize("how", ["truncated", "garbage"])
    def test_a_bad_file_is_a_source_error_naming_it(self, case, how, tmp_path):
        victim = case.files[-1]
        size = victim.stat().st_size
        if how == "truncated":
            with open(victim, "r+b") as fh:
                fh.truncate(size // 2 + 1)  # cut anywhere: not at a frame or record boundary
        else:
            victim.write_bytes(RNG.integers(0, 256, size, dtype=np.uint8).tobytes())
        with pytest.raises(SourceError) as err:
            self._open(case)["data"].values
        assert str(victim.name) in str(err.value) or str(victim.parent.name) in str(err.value), str(err.value)
        assert "\n" not in str(err.value).strip()


# --------------------------------------------------------------------------- the formats


def _frames(n=5, h=12, w=10, dtype=np.uint16) -> np.ndarray:
    return RNG.integers(0, 4000, (n, h, w)).astype(dtype)


class TestHdf5(FormatConformance):
    name = "hdf5"

    def make(self, folder):
        path = folder / "frames.h5"
        data = _frames()
        with h5py.File(path, "w") as f:
            f.create_dataset("entry/data/data", data=data, chunks=(1, 12, 10), compression="gzip")
        with h5py.File(path, "r") as f:
            reference = f["entry/data/data"][()]
        return Case(path, [path], reference, key="entry/data/data")


class TestCxi(FormatConformance):
    """The HDF5 format's CXI layout, on a real PETRA III file."""

    name = "hdf5"

    def make(self, folder):
        path = folder / "scan.cxi"
        shutil.copy(_real("ptycho_xray", "cdtools_PETRAIII_P25_Near_Field_Ptycho.cxi"), path)
        os.chmod(path, 0o644)
        with h5py.File(path, "r") as f:
            reference = f["entry_1/data_1/data"][()]
            det = f["entry_1/instrument_1/detector_1"]
            geometry = {"energy": (float(f["entry_1/instrument_1/source_1/energy"][()]) / KEV_J, "J"),
                        "distance": (float(det["distance"][()]), " m"),
                        "psize": ((float(det["y_pixel_size"][()]), float(det["x_pixel_size"][()])), " m")}
        return Case(path, [path], reference, geometry=geometry)


class TestTiff(FormatConformance):
    name = "tiff"

    def make(self, folder):
        data = _frames(6)
        names = ["f1.tif", "f2.tif", "f10.tif"]  # natural order: 1, 2, 10
        for i, name in enumerate(names):
            tifffile.imwrite(folder / name, data[2 * i:2 * i + 2], photometric="minisblack")
        files = [folder / n for n in names]
        reference = np.concatenate([tifffile.imread(p).reshape(-1, 12, 10) for p in files])
        return Case(str(folder / "*.tif"), files, reference)


class TestFabioCbf(FormatConformance):
    name = "fabio"

    def make(self, folder):
        files = []
        for i in range(3):
            path = folder / f"img_{i + 1:04d}.cbf"
            fabio.cbfimage.CbfImage(data=_frames(1, 16, 12, np.int32)[0]).write(str(path))
            files.append(path)
        reference = np.stack([fabio.open(str(p)).data for p in files])
        return Case(folder, files, reference)


class TestMib(FormatConformance):
    name = "mib"

    def make(self, folder):
        path = folder / "scan.mib"
        shutil.copy(_real("4dstem_electron", "merlin_mib", "001_4x2_6bit.mib"), path)
        raw = path.read_bytes()
        fields = raw[:64].split(b",")
        hsize, w, h = int(fields[2]), int(fields[4]), int(fields[5])
        dtype = {"U08": ">u1", "U16": ">u2", "U32": ">u4"}[fields[6].decode()]
        fbytes = hsize + w * h * np.dtype(dtype).itemsize
        reference = np.stack([np.frombuffer(raw, dtype, w * h, i * fbytes + hsize).reshape(h, w)
                              for i in range(len(raw) // fbytes)]).astype(np.dtype(dtype).newbyteorder("="))
        return Case(path, [path], reference)


class TestNpy(FormatConformance):
    name = "npy"

    def make(self, folder):
        path = folder / "frames.npy"
        np.save(path, _frames())
        return Case(path, [path], np.load(path))


class TestNpz(FormatConformance):
    name = "npz"
    lazy = False  # members are loaded whole (a zip member is not memory-mapped)

    def make(self, folder):
        path = folder / "frames.npz"
        np.savez(path, frames=_frames(), other=np.zeros(3))
        with np.load(path) as z:
            return Case(path, [path], z["frames"], key="frames")


class TestZarr(FormatConformance):
    name = "zarr"

    def make(self, folder):
        path = folder / "frames.zarr"
        z = zarr.open_array(str(path), mode="w", shape=(5, 12, 10), chunks=(2, 12, 10), dtype=np.uint16)
        z[...] = _frames()
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".z", "zarr.json")))
        return Case(path, files, zarr.open_array(str(path), mode="r")[...])


class TestSmv(FormatConformance):
    """SMV/d*TREK through fabio, on a real Timepix electron-diffraction frame."""

    name = "smv"

    def make(self, folder):
        path = folder / "frame_0001.img"
        shutil.copy(_real("electron_diffraction", "TIMEPIX_SU_512-stdgoni_0001.img"), path)
        os.chmod(path, 0o644)
        text = path.read_bytes()[:512].decode("ascii", "replace")
        value = {k: float(v) for k, v in re.findall(r"(PIXEL_SIZE|DISTANCE|WAVELENGTH)=\s*([0-9.]+);", text)}
        geometry = {"energy": (HC_KEV_ANGSTROM / value["WAVELENGTH"], "Å"),
                    "distance": (value["DISTANCE"] / 1000, "mm"),
                    "psize": ((value["PIXEL_SIZE"] / 1000,) * 2, "mm")}
        return Case(path, [path], fabio.open(str(path)).data[None], geometry=geometry)


class TestDigitalMicrograph(FormatConformance):
    """Gatan DM3 through rosettasciio, on a real 200 kV SAED pattern."""

    name = "dm"

    def make(self, folder):
        rsciio = pytest.importorskip("rsciio.digitalmicrograph")
        path = folder / "pattern.dm3"
        shutil.copy(_real("electron_diffraction", "rsciio_test_diffraction_pattern.dm3"), path)
        os.chmod(path, 0o644)
        image = rsciio.file_reader(str(path))[0]
        kinetic = 200.0  # keV (README: Tecnai at 200 kV)
        photon = math.sqrt(kinetic * (kinetic + 2 * 510.99895))  # same wavelength, keV
        wavelength = HC_KEV_ANGSTROM * 1e-10 / photon  # m
        scale = image["axes"][0]["scale"] * 1e9  # 1/nm -> 1/m
        geometry = {"energy": (photon, "V"), "psize": ((14e-6, 14e-6), "um"),
                    "distance": (14e-6 / (scale * wavelength), "1/nm")}
        return Case(path, [path], np.asarray(image["data"])[None], geometry=geometry)
