"""open_frames on the real detector files in ``$PTYDASK_SHARED/data/real`` (skipped when absent).

Every family is compared with a plain h5py / fabio / tifffile / numpy read.
"""

from __future__ import annotations

import bz2
import glob
import pickle

import dask.array as da
import fabio
import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
import tifffile

from ptydask.errors import SourceError
from ptydask.sources import open_frames
from ptydask.sources import hdf5 as hdf5_mod


@pytest.fixture
def count_reads(monkeypatch):
    """Count HDF5 frame reads done by the sources (the only place frames are read)."""
    calls = []
    original = hdf5_mod.Hdf5Reader.read

    def counting(self, start, stop):
        calls.append((self.key, start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(hdf5_mod.Hdf5Reader, "read", counting)
    return calls


def test_petra_cxi(real_data, count_reads):
    path = real_data / "ptycho_xray" / "cdtools_PETRAIII_P25_Near_Field_Ptycho.cxi"
    scan = open_frames(path)
    assert count_reads == []  # opening reads no frame
    assert isinstance(scan["data"].data, da.Array)
    assert scan["data"].shape == (200, 100, 100) and scan["data"].dtype == np.int32
    with h5py.File(path, "r") as f:
        frames = f["entry_1/instrument_1/detector_1/data"][()]
        translation = f["entry_1/sample_1/geometry_1/translation"][()]
        mask = f["entry_1/instrument_1/detector_1/mask"][()]
    np.testing.assert_array_equal(scan["data"].values, frames)
    # CXI (x, y, z) metres -> ptypy (y, x)
    np.testing.assert_allclose(scan["positions"].values, translation[:, [1, 0]].astype(np.float64))
    assert np.ptp(scan["positions"].values) < 1e-4  # metres, about 20 µm across
    assert scan.attrs["energy"] == pytest.approx(12.66, abs=0.01)
    assert scan.attrs["distance"] == pytest.approx(1.12, rel=1e-6)
    assert scan.attrs["psize"] == pytest.approx((55e-6, 55e-6), rel=1e-6)
    weights = np.asarray(scan["weights"].values)
    assert int((weights == 0).sum()) == 5
    np.testing.assert_array_equal(weights == 0, mask != 0)
    np.testing.assert_array_equal(scan["indices"].values, np.arange(200))
    flipped = open_frames(path, positions={"slow_multiplier": -1.0, "fast_multiplier": 1.0, "skip": 2})
    np.testing.assert_allclose(flipped["positions"].values, translation[::2][:, [1, 0]] * [-1.0, 1.0])
    np.testing.assert_array_equal(flipped["indices"].values, np.arange(0, 200, 2))


def test_petra_cxi_graph_pickles_and_reads_by_path(real_data):
    path = real_data / "ptycho_xray" / "cdtools_PETRAIII_P25_Near_Field_Ptycho.cxi"
    arr = open_frames(path, block_bytes=2 * 100 * 100 * 4 * 25)["data"].data
    assert arr.chunks[0] == (50, 50, 50, 50)  # whole storage chunks of 25 frames
    clone = pickle.loads(pickle.dumps(arr))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(clone[60:70].compute(), f["entry_1/instrument_1/detector_1/data"][60:70])


def test_arina_master_bitshuffle_behind_external_link(real_data):
    folder = real_data / "4dstem_electron" / "arina_blank_format_only"
    scan = open_frames(folder / "test_00_master.h5")
    assert scan["data"].shape == (16, 192, 192) and scan["data"].dtype == np.uint32
    with h5py.File(folder / "test_00_master.h5", "r") as f:
        expected = f["entry/data/data_000001"][()]
        pixel_mask = f["entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    np.testing.assert_array_equal(scan["data"].values, expected)
    np.testing.assert_array_equal(np.asarray(scan["weights"].values), (pixel_mask & 0xFFFF) == 0)
    with h5py.File(folder / "test_00_data_000001.h5", "r") as f:
        plist = f["entry/data/data"].id.get_create_plist()
        assert 32008 in [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]  # bitshuffle-LZ4


def test_arina_energy_units_and_electron_conversion(real_data):
    master = real_data / "4dstem_electron" / "arina_blank_format_only" / "test_00_master.h5"
    key = "entry/instrument/detector/detectorSpecific/photon_energy"  # 300000 eV, units attribute 'eV'
    scan = open_frames(master, recorded_energy={"key": key}, electron_data=True,
                       recorded_psize={"key": "entry/instrument/detector/x_pixel_size"}, distance=0.115)
    # 300 keV electrons have a wavelength of 1.96875 pm (tabulated); photon energy hc / lambda
    assert scan.attrs["energy"] == pytest.approx(1.23984198e-9 / 1.96875e-12, abs=0.01)
    assert scan.attrs["psize"] == pytest.approx((100e-6, 100e-6))


MIB = {
    "001_4x2_6bit.mib": (8, 256, 256, np.uint8),
    "002_4x2_6bit_roi128.mib": (8, 128, 256, np.uint8),
    "003_merlin_test_roi_sig256x64_nav4x2_hot_pixel_52x_39y.mib": (8, 64, 256, np.uint16),
    "Single_9_Frame_CounterDepth_12_Rows_256.mib": (9, 256, 256, np.uint16),
    "Quad_1_Frame_CounterDepth_12_Rows_256.mib": (1, 512, 512, np.uint16),
}


def _plain_mib(path) -> np.ndarray:
    raw = path.read_bytes()
    fields = raw[:64].split(b",")
    hsize, width, height = int(fields[2]), int(fields[4]), int(fields[5])
    dtype = {b"U08": ">u1", b"U16": ">u2"}[fields[6]]
    fbytes = hsize + width * height * np.dtype(dtype).itemsize
    return np.stack([
        np.frombuffer(raw, dtype=dtype, count=width * height, offset=i * fbytes + hsize).reshape(height, width)
        for i in range(len(raw) // fbytes)
    ])


@pytest.mark.parametrize("name", sorted(MIB))
def test_merlin_mib(real_data, name):
    path = real_data / "4dstem_electron" / "merlin_mib" / name
    n, h, w, dtype = MIB[name]
    scan = open_frames(path)
    assert scan["data"].shape == (n, h, w) and scan["data"].dtype == dtype
    np.testing.assert_array_equal(scan["data"].values, _plain_mib(path))


def test_merlin_hot_pixel_is_where_the_readme_says(real_data):
    path = real_data / "4dstem_electron" / "merlin_mib" / "003_merlin_test_roi_sig256x64_nav4x2_hot_pixel_52x_39y.mib"
    total = open_frames(path)["data"].data.sum(axis=0).compute()
    assert np.unravel_index(np.argmax(total), total.shape) == (39, 52)  # (row y, column x)


def test_merlin_raw_mode_is_refused(real_data):
    path = real_data / "4dstem_electron" / "merlin_mib" / "Single_1_Frame_CounterDepth_1_Rows_256RAW.mib"
    with pytest.raises(SourceError, match=r"RAW mode.*R64|R64.*RAW"):
        open_frames(path)


def test_nexus_aps_frames_monitor_blank_and_units(real_data):
    path = real_data / "xray_area_detector" / "nexus_aps" / "nexus-example.hdf5"
    scan = open_frames(
        path,
        normalisation={"key": "entry/instrument/control/integral"},
        dark={"key": "entry/data/blank"},
        recorded_energy={"key": "entry/instrument/monochromator/energy"},  # keV
        recorded_distance={"key": "entry/instrument/detector/distance"},  # mm
        recorded_psize={"key": "entry/instrument/detector/x_pixel_size"},  # mm
    )
    with h5py.File(path, "r") as f:
        frames = f["entry/data/frames"][()]
        monitor = f["entry/instrument/control/integral"][()]
        blank = f["entry/data/blank"][()]
    assert scan["data"].shape == (10, 195, 487) and scan["data"].dtype == np.int32
    np.testing.assert_array_equal(scan["data"].values, frames)
    np.testing.assert_array_equal(scan["monitor"].values, monitor)
    np.testing.assert_array_equal(scan["dark"].values, blank)
    assert scan.attrs["energy"] == pytest.approx(20.99996158)
    assert scan.attrs["distance"] == pytest.approx(0.5408)
    assert scan.attrs["psize"] == pytest.approx((172e-6, 172e-6))


def test_nexus_aps_single_frame(real_data):
    path = real_data / "xray_area_detector" / "nexus_aps" / "AgBehenate_228.hdf5"
    scan = open_frames(path)
    with h5py.File(path, "r") as f:
        expected = f["entry/data/data"][()]
    assert scan["data"].shape == (1, 195, 487)
    np.testing.assert_array_equal(scan["data"].values[0], expected)


def test_lambda_nxs_pixel_mask_and_energy(real_data):
    path = real_data / "xray_area_detector" / "dioptas_lambda_3module" / "testasapo1_1009_00002_m1_part00000.nxs"
    scan = open_frames(path, recorded_energy={"key": "entry/instrument/detector/collection/beam_energy"},
                       recorded_psize={"key": "entry/instrument/detector/x_pixel_size"})
    with h5py.File(path, "r") as f:
        frames = f["entry/instrument/detector/data"][()]
        pixel_mask = f["entry/instrument/detector/pixel_mask"][0]
    assert scan["data"].shape == (10, 516, 1554) and scan["data"].dtype == np.int16
    np.testing.assert_array_equal(scan["data"].values, frames)
    weights = np.asarray(scan["weights"].values)
    np.testing.assert_array_equal(weights, (pixel_mask & 0xFFFF) == 0)
    assert 0 < int((~weights).sum()) < weights.size
    assert scan.attrs["energy"] == pytest.approx(12.0, abs=0.5)
    assert scan.attrs["psize"] == pytest.approx((55e-6, 55e-6))


def test_dioptas_tiff(real_data):
    path = real_data / "xray_area_detector" / "dioptas_pilatus1M" / "CeO2_Pilatus1M.tif"
    scan = open_frames(path)
    expected = tifffile.imread(path)
    assert scan["data"].shape == (1,) + expected.shape and scan["data"].dtype == np.int32
    np.testing.assert_array_equal(scan["data"].values[0], expected)
    # gaps (-1) and bad pixels (-2) as a mask: valid where the value is >= 0
    masked = open_frames(path, mask=expected >= 0)
    assert int((~np.asarray(masked["weights"].values)).sum()) == int((expected < 0).sum()) > 0


def test_dials_cbf_bz2_sequence(real_data):
    pattern = str(real_data / "xray_area_detector" / "dials_pilatus6M_grid" / "thau_3_2_*.cbf.bz2")
    scan = open_frames(pattern)
    files = sorted(glob.glob(pattern))
    assert scan["data"].shape == (3, 2527, 2463) and scan["data"].dtype == np.int32
    values = scan["data"].values
    for i, name in enumerate(files):
        np.testing.assert_array_equal(values[i], fabio.open(name).data)
    assert values[1].max() == 1046527  # frames 2 and 3 hold saturated pixels


@pytest.mark.parametrize("name", ["DLS_I03_smargon_0001.cbf.gz", "dlsnxs2cbf_therm_0001.cbf.gz"])
def test_dials_cbf_gz(real_data, name):
    path = real_data / "xray_area_detector" / "dials_misc" / name
    scan = open_frames(path)
    expected = fabio.open(str(path)).data
    assert scan["data"].shape == (1,) + expected.shape
    np.testing.assert_array_equal(scan["data"].values[0], expected)


def test_k11_nxtomo_image_key_darks_and_flats(real_data):
    """Worked example: NXtomo image_key (0 projection, 1 flat, 2 dark) -> frames, dark and flat inputs."""
    path = real_data / "flats_darks_masks" / "httomo_k11_diad" / "k11-18014.nxs"
    key = "entry/imaging/data"  # external link into k11-18014/k11-18014-imaging.h5
    with h5py.File(path, "r") as f:
        image_key = f["entry/instrument/imaging/image_key"][()]
        raw = f[key][()]
    scan = open_frames(
        path, key,
        framefilter=image_key == 0,
        dark={"key": key, "indices": np.flatnonzero(image_key == 2)},
        flat={"key": key, "indices": np.flatnonzero(image_key == 1)},
    )
    projections = np.flatnonzero(image_key == 0)
    assert scan["data"].shape == (projections.size, 22, 26) and scan["data"].dtype == np.uint16
    np.testing.assert_array_equal(scan["indices"].values, projections)
    assert isinstance(scan["dark"].data, da.Array) and scan["dark"].dims == ("y", "x")  # averaged lazily
    np.testing.assert_allclose(scan["dark"].values, raw[image_key == 2].mean(axis=0))
    np.testing.assert_allclose(scan["flat"].values, raw[image_key == 1].mean(axis=0))
    np.testing.assert_array_equal(scan["data"].values, raw[projections])
    assert np.all(scan["flat"].values > scan["dark"].values)


def test_k11_missing_external_link_is_named(real_data):
    path = real_data / "flats_darks_masks" / "httomo_k11_diad" / "k11-18014.nxs"
    with pytest.raises(SourceError, match=r"k11-18014-EtherCAT\.h5.*missing"):
        open_frames(path, "entry/EtherCAT/data")


def test_tike_npz_as_numpy_array(real_data, tmp_path):
    npz = tmp_path / "siemens.npz"
    npz.write_bytes(bz2.decompress((real_data / "ptycho_xray" / "tike_siemens-star-small.npz.bz2").read_bytes()))
    with np.load(npz) as z:
        data, scan_px = z["data"], z["scan"]
    psize = 1e-8  # an assumed object-pixel size, metres
    scan = open_frames(data, outer_index=0, positions={"slow": scan_px[0][:, 0], "fast": scan_px[0][:, 1],
                                                       "slow_multiplier": psize, "fast_multiplier": psize})
    assert scan["data"].shape == (516, 128, 128) and scan["data"].dtype == np.float32
    np.testing.assert_array_equal(scan["data"].values, data[0])
    np.testing.assert_allclose(scan["positions"].values, scan_px[0].astype(np.float64) * psize)
    from_file = open_frames(npz, key="data", outer_index=0)
    np.testing.assert_array_equal(from_file["data"].values, data[0])
