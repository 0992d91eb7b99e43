"""The format registry: detection by content, explicit keys over guessed layouts, third-party entry points."""

from __future__ import annotations

import importlib.metadata
import textwrap

import h5py
import numpy as np
import pytest
import tifffile

from ptydask.errors import SourceError
from ptydask.sources import SourceData, SourceFormat, detect, format_names, formats, open_frames, registry
from ptydask.sources import reload_formats

FRAMES = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)


def test_every_builtin_format_is_registered_with_a_name_and_suffixes():
    found = formats()
    for name in ("hdf5", "tiff", "fabio", "mib", "npy", "npz", "zarr"):
        assert isinstance(found[name], SourceFormat) and found[name].name == name and found[name].suffixes
    assert format_names()[-1] == "array"


@pytest.mark.parametrize("writer, fmt", [
    (lambda p: h5py.File(p, "w").create_dataset("frames", data=FRAMES).file.close(), "hdf5"),
    (lambda p: tifffile.imwrite(p, FRAMES, photometric="minisblack"), "tiff"),
    (lambda p: np.save(open(p, "wb"), FRAMES), "npy"),
])
@pytest.mark.parametrize("name", ["data.bin", "data.tif", "data.h5", "data"])
def test_detection_by_content_beats_the_suffix(tmp_path, writer, fmt, name):
    path = tmp_path / name
    writer(path)
    assert detect(str(path)).name == fmt
    scan = open_frames(path, "frames" if fmt == "hdf5" else None, positions=np.zeros((3, 2)))
    assert scan.attrs["info"]["source_format"] == fmt
    np.testing.assert_array_equal(scan["data"].values, FRAMES)


def test_the_suffix_decides_when_the_content_says_nothing(tmp_path):
    path = tmp_path / "garbage.tif"
    path.write_bytes(b"not an image at all" * 10)
    assert detect(str(path)).name == "tiff"
    with pytest.raises(SourceError, match="garbage.tif"):
        open_frames(path)
    unknown = tmp_path / "garbage.xyz"
    unknown.write_bytes(b"\0" * 100)
    with pytest.raises(SourceError, match=r"garbage.xyz: unknown format"):
        open_frames(unknown)


def test_an_explicit_key_wins_over_a_guessed_cxi_layout(tmp_path):
    # NeXus-style file with an entry_1 group: was read as CXI (no CXI frames -> error) even with a key
    path = tmp_path / "nexus_like.h5"
    with h5py.File(path, "w") as f:
        f["entry_1/sample/name"] = "x"
        f["entry_1/scan/frames"] = FRAMES
    scan = open_frames(path, "entry_1/scan/frames", positions=np.zeros((3, 2)))
    np.testing.assert_array_equal(scan["data"].values, FRAMES)
    assert scan.attrs["info"]["source_format"] == "hdf5"


def test_an_explicit_key_wins_inside_a_real_cxi_file_and_its_geometry_stays(tmp_path):
    path = tmp_path / "scan.cxi"
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 150
        f["entry_1/data_1/data"] = FRAMES
        f["entry_1/processed/frames"] = FRAMES[::-1] * 2
        f["entry_1/instrument_1/source_1/energy"] = 8.0 * 1.602176634e-16
        f["entry_1/instrument_1/detector_1/distance"] = 2.5
        f["entry_1/sample_1/geometry_1/translation"] = np.zeros((3, 3))
    guessed = open_frames(path)
    np.testing.assert_array_equal(guessed["data"].values, FRAMES)
    chosen = open_frames(path, "entry_1/processed/frames")
    np.testing.assert_array_equal(chosen["data"].values, FRAMES[::-1] * 2)
    assert chosen.attrs["energy"] == pytest.approx(8.0) and chosen.attrs["distance"] == 2.5
    info = chosen.attrs["info"]
    assert "source file" in info["energy_from"] and "entry_1/instrument_1/source_1/energy" in info["energy_from"]
    assert "J" in info["energy_from"]
    # an explicit value overrides the file's
    assert open_frames(path, energy=9.0).attrs["energy"] == 9.0


def _plugin_module(tmp_path, monkeypatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def plugins(monkeypatch):
    """Entry points of a fake installed distribution (``group='ptydask.sources'``)."""
    eps: list = []

    def fake(group=None, **_kw):
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(registry, "entry_points", fake)
    yield eps
    monkeypatch.undo()
    reload_formats()


def test_a_third_party_format_registers_through_the_entry_point_group(tmp_path, monkeypatch, plugins):
    _plugin_module(tmp_path, monkeypatch, "ptydask_fake_plugin", '''
        import numpy as np, dask.array as da
        from ptydask.sources import SourceData, SourceFormat
        class RawFormat(SourceFormat):
            name = "rawu8"
            suffixes = (".rawu8",)
            def sniff(self, path, head):
                return head.startswith(b"RAWU8")
            def open(self, paths, key, *, outer_index, block_bytes):
                arr = np.fromfile(paths[0], dtype=np.uint8, offset=5).reshape(-1, 4, 4)
                frames = da.from_array(arr, chunks=(1, 4, 4))
                return SourceData(frames, (arr.shape[0],), arr.shape, self.name, paths[0])
    ''')
    plugins.append(importlib.metadata.EntryPoint("rawu8", "ptydask_fake_plugin:RawFormat", registry.ENTRY_POINT_GROUP))
    reload_formats()
    assert "rawu8" in format_names()
    path = tmp_path / "frames.dat"  # found by content, whatever the name
    frames = np.arange(2 * 16, dtype=np.uint8)
    path.write_bytes(b"RAWU8" + frames.tobytes())
    scan = open_frames(path, positions=np.zeros((2, 2)))
    assert scan.attrs["info"]["source_format"] == "rawu8"
    np.testing.assert_array_equal(scan["data"].values, frames.reshape(2, 4, 4))


def test_a_broken_plugin_warns_and_leaves_the_builtins_working(tmp_path, monkeypatch, plugins):
    plugins.append(importlib.metadata.EntryPoint("broken", "no_such_module_xyz:Format", registry.ENTRY_POINT_GROUP))
    with pytest.warns(UserWarning, match=r"plugin 'broken'.*cannot be loaded"):
        reload_formats()
    assert "hdf5" in format_names() and "broken" not in format_names()


def test_register_format_refuses_what_is_not_a_named_format():
    from ptydask.errors import ParameterError

    with pytest.raises(ParameterError, match="register_format"):
        registry.register_format(object())
    with pytest.raises(ParameterError, match="register_format"):
        registry.register_format(SourceFormat())  # no name


def test_source_data_names_where_it_came_from():
    import dask.array as da

    data = SourceData(da.zeros((1, 2, 2)), (1,), (1, 2, 2), "x", "/a/b.h5", "k")
    assert data.where == "/a/b.h5:k"
    assert SourceData(da.zeros((1, 2, 2)), (1,), (1, 2, 2), "x").where == "frames"


def test_what_a_format_knows_reaches_the_scan_and_explicit_values_override_it(tmp_path, monkeypatch, plugins):
    """A format's positions, mask, dark, flat and geometry (a plugin's, here) are used by open_frames unless given."""
    dark, flat, mask = tmp_path / "dark.npy", tmp_path / "flat.npy", tmp_path / "mask.npy"
    np.save(dark, np.full((4, 4), 5.0))
    np.save(flat, np.full((4, 4), 2.0))
    np.save(mask, np.eye(4, dtype=np.uint8))
    _plugin_module(tmp_path, monkeypatch, "ptydask_known_plugin", f'''
        import numpy as np, dask.array as da
        from ptydask.sources import FileRef, Quantity, SourceData, SourceFormat
        class Known(SourceFormat):
            name = "known"
            suffixes = (".known",)
            def open(self, paths, key, *, outer_index, block_bytes):
                frames = da.ones((2, 4, 4), chunks=(1, 4, 4), dtype=np.uint16)
                return SourceData(frames, (2,), (2, 4, 4), self.name, paths[0],
                                  positions=np.array([[0.0, 1e-6], [2e-6, 3e-6]]), positions_from="header P",
                                  mask=FileRef({str(mask)!r}, None, "valid"), dark=FileRef({str(dark)!r}, None),
                                  flat=FileRef({str(flat)!r}, None),
                                  geometry={{"energy": Quantity(8.0, "header E (8 keV)"),
                                             "distance": Quantity(200.0, "header V (200 kV)", electron=True)}})
    ''')
    plugins.append(importlib.metadata.EntryPoint("known", "ptydask_known_plugin:Known", registry.ENTRY_POINT_GROUP))
    reload_formats()
    path = tmp_path / "scan.known"
    path.write_bytes(b"x")
    scan = open_frames(path)
    np.testing.assert_array_equal(scan["positions"].values, [[0.0, 1e-6], [2e-6, 3e-6]])
    np.testing.assert_array_equal(np.broadcast_to(scan["weights"].values, (2, 4, 4)), np.broadcast_to(np.eye(4), (2, 4, 4)))
    np.testing.assert_array_equal(np.asarray(scan["dark"].values), np.full((4, 4), 5.0))
    np.testing.assert_array_equal(np.asarray(scan["flat"].values), np.full((4, 4), 2.0))
    info = scan.attrs["info"]
    assert scan.attrs["energy"] == 8.0 and info["energy_from"] == "source file header E (8 keV)"
    assert info["positions_from"] == "source file header P"
    # an electron-flagged value is converted once (here on a distance, to show the flag is the format's)
    assert "-> photon" in info["distance_from"]
    explicit = open_frames(path, energy=9.0, dark=np.zeros((4, 4)), flat=False, mask=False,
                           positions=np.zeros((2, 2)))
    assert explicit.attrs["energy"] == 9.0 and explicit.attrs["info"]["energy_from"] == "explicit"
    np.testing.assert_array_equal(np.asarray(explicit["dark"].values), np.zeros((4, 4)))
    assert "flat" not in explicit and "positions_from" not in explicit.attrs["info"]
    assert explicit.attrs["info"]["mask"] == "none"
