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
