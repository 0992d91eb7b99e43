"""The example recipes in ``docs/examples/`` run as written: each is copied into a folder where its file
names stand for real detector files (``../shared/data/real``, linked under the example's names) or for
generated ones, then ``ptydask prepare --dry-run`` must resolve it; two run end to end."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

yaml = pytest.importorskip("yaml")

import ptydask
from ptydask.cli import main
from ptydask.simulate import SimulatedScan, simulate_frames, write_raw
from conftest import REAL, REPO

EXAMPLES = REPO / "docs" / "examples"
ARINA = REAL / "4dstem_electron" / "arina_blank_format_only"
#: example -> {name the example uses: real file}
REAL_FILES = {
    "cxi.yaml": {"scan.cxi": REAL / "ptycho_xray" / "cdtools_PETRAIII_P25_Near_Field_Ptycho.cxi"},
    "eiger_master.yaml": {"scan_master.h5": ARINA / "test_00_master.h5",
                          "test_00_data_000001.h5": ARINA / "test_00_data_000001.h5"},
    "merlin_mib.yaml": {"scan.mib": REAL / "4dstem_electron" / "merlin_mib" / "001_4x2_6bit.mib",
                        "scan.hdr": REAL / "4dstem_electron" / "merlin_mib" / "001_4x2_6bit.hdr"},
}
#: example -> (frames, rows, cols, dtype, energy keV) that the dry run must report
EXPECTED = {
    "cxi.yaml": (200, 100, 100, "int32", 12.658),
    "eiger_master.yaml": (16, 192, 192, "uint32", 629.761),  # 300 keV electrons: photon energy of equal wavelength
    "merlin_mib.yaml": (8, 256, 256, "uint8", 629.761),
    "hdf5_nexus.yaml": (40, 128, 128, "uint16", SimulatedScan().energy_kev),
    "tiff_folder.yaml": (12, 128, 128, "uint16", 8.0),
}


def test_one_example_per_common_case():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)
    readme = (EXAMPLES / "README.md").read_text()
    for name in EXPECTED:
        assert f"`{name}`" in readme, name


def _hdf5_nexus(folder: Path) -> None:
    write_raw(folder / "scan_0001.h5", SimulatedScan(num_frames=40))


def _tiff_folder(folder: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    frames, positions, _ = simulate_frames(SimulatedScan(num_frames=12))
    (folder / "frames").mkdir()
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / "frames" / f"scan_{i + 1}.tif", frame)  # natural order: 2 before 10
    with h5py.File(folder / "positions.h5", "w") as f:
        f["y"], f["x"] = positions[:, 0] * 1e6, positions[:, 1] * 1e6  # micrometres


GENERATED = {"hdf5_nexus.yaml": _hdf5_nexus, "tiff_folder.yaml": _tiff_folder}


@pytest.fixture(params=sorted(EXPECTED))
def example(request, tmp_path) -> Path:
    name = request.param
    if name in REAL_FILES:
        if not REAL.is_dir():
            pytest.skip(f"real data not found at {REAL} (set PTYDASK_SHARED)")
        pytest.importorskip("hdf5plugin")
        for link, target in REAL_FILES[name].items():
            os.symlink(target, tmp_path / link)
    else:
        GENERATED[name](tmp_path)
    shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / name


def test_example_dry_run(example, capsys):
    assert main(["prepare", str(example), "--dry-run"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    n, h, w, dtype, energy = EXPECTED[example.name]
    found = re.search(rf"frames +{n} of {n} frames of {h}x{w} {dtype} in \d+ block\(s\); energy ([\d.]+) keV", out)
    assert found, out[-2000:]
    assert float(found.group(1)) == pytest.approx(energy, abs=1e-3)
    assert "dry run: nothing written" in out
    assert not list(example.parent.glob("*.ptyd*"))


@pytest.mark.parametrize("name", ["hdf5_nexus.yaml", "tiff_folder.yaml"])
def test_example_full_run(tmp_path, name, capsys):
    GENERATED[name](tmp_path)
    shutil.copy(EXAMPLES / name, tmp_path / name)
    assert main(["prepare", str(tmp_path / name)]) == 0, capsys.readouterr().err
    out = tmp_path / yaml.safe_load((tmp_path / name).read_text())["dfile"]
    scan = ptydask.open_ptyd(out)
    n, shape = EXPECTED[name][0], {"hdf5_nexus.yaml": 96, "tiff_folder.yaml": 64}[name]
    assert scan.sizes["frame"] == n and scan["data"].shape[1:] == (shape, shape)
    sim = SimulatedScan()
    assert np.allclose(scan.attrs["info"]["center"], sim.beam_center, atol=1.0)
    _, positions, _ = simulate_frames(SimulatedScan(num_frames=n))
    np.testing.assert_allclose(scan["positions"].values, positions, rtol=1e-12, atol=1e-18)
