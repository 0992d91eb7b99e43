"""h5rw type tags: what we write is what ptypy writes, and reading is safe."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptydask.errors import FormatError, ParameterError
from ptydask.ptyd.h5rw import read_value, tag_of, write_value

CASES = [
    ("text", "hello µm", "string", "hello µm"),
    ("int", 7, "scalar", 7),
    ("float", 0.1, "scalar", 0.1),
    ("bool", True, "scalar", True),
    ("np_int32", np.int32(7), "scalar", 7),
    ("none", None, "None", None),
    ("array", np.arange(6.0).reshape(2, 3), "array", np.arange(6.0).reshape(2, 3)),
    ("arraylist", [1, 2, 3], "arraylist", [1, 2, 3]),
    ("arraytuple", (1.5, 2.5), "arraytuple", (1.5, 2.5)),
    ("mixed_list", [1, "a", None], "list", [1, "a", None]),
    ("empty_list", [], "list", []),
    ("tuple_group", ("a", 1), "tuple", ("a", 1)),
]


@pytest.mark.parametrize("name, value, tag, expected", CASES, ids=[c[0] for c in CASES])
def test_write_tag_and_read_back(tmp_path, name, value, tag, expected):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        write_value(f, name, value)
        assert tag_of(f[name]) == tag
        got = read_value(f[name])
    if isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected and type(got) is type(expected)


def test_scalar_dtypes_as_ptypy(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        for name, value in (("i", 3), ("f", 2.0), ("b", False), ("f32", np.float32(1.5)), ("i32", np.int32(7))):
            write_value(f, name, value)
        assert [f[k].dtype for k in ("i", "f", "b", "f32", "i32")] == [np.int64, np.float64, np.bool_, np.float32, np.int32]
        assert f["i"].shape == ()
        write_value(f, "none", None)
        assert f["none"].shape == (1,) and f["none"].dtype == np.float64


def test_dict_slash_escaping_and_nesting(tmp_path):
    value = {"a/b": 1, "nested": {"x": "y", "arr": np.ones(3)}}
    with h5py.File(tmp_path / "v.h5", "w") as f:
        write_value(f, "d", value)
        assert "a_SLASH_b" in f["d"] and f["d/a_SLASH_b"].attrs["escaped"] == "1"
        got = read_value(f["d"])
    assert got["a/b"] == 1 and got["nested"]["x"] == "y"
    np.testing.assert_array_equal(got["nested"]["arr"], np.ones(3))


def test_unsupported_values_are_refused(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        with pytest.raises(ParameterError, match=r"cannot store a object"):
            write_value(f, "o", object())
        with pytest.raises(ParameterError, match=r"dictionary keys must be strings"):
            write_value(f, "d", {1: 2})
        with pytest.raises(ParameterError, match=r"record, object and unicode"):
            write_value(f, "r", np.zeros(2, dtype=[("a", "i4")]))


def test_lenient_reading(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["untagged0d"] = 4.5
        f["untaggedarr"] = np.arange(3)
        g = f.create_group("untaggedgroup")
        g["x"] = 1
        f["bytestag"] = 2.0
        f["bytestag"].attrs.create("type", np.bytes_(b"scalar"))
        assert read_value(f["untagged0d"]) == 4.5
        np.testing.assert_array_equal(read_value(f["untaggedarr"]), np.arange(3))
        assert read_value(f["untaggedgroup"]) == {"x": 1}
        assert read_value(f["bytestag"]) == 2.0


@pytest.mark.parametrize("tag", ["pickle", "record_array"])
def test_pickles_are_never_read(tmp_path, tag):
    import pickle

    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["evil"] = np.void(pickle.dumps({"x": 1}))
        f["evil"].attrs["type"] = tag
        with pytest.raises(FormatError, match=rf"/evil: refusing to read an object tagged '{tag}'"):
            read_value(f["evil"])


def test_unknown_tag_and_oversized_value(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["x"] = 1
        f["x"].attrs["type"] = "lambda"
        with pytest.raises(FormatError, match=r"unknown type tag 'lambda'"):
            read_value(f["x"])
        f.create_dataset("huge", shape=(2**20, 2**10), dtype=np.float64)  # 8 GiB declared, nothing written
        f["huge"].attrs["type"] = "array"
        with pytest.raises(FormatError, match=r"declared size 8589934592 bytes exceeds"):
            read_value(f["huge"])


@settings(max_examples=40, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-2**62, 2**62) | st.floats(allow_nan=False)
    | st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text("abc/", min_size=1, max_size=4), children, max_size=4),
    max_leaves=12,
))
def test_roundtrip_property(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("h5rw") / "v.h5"
    with h5py.File(path, "w") as f:
        write_value(f, "v", value)
        got = read_value(f["v"])
    assert _plain(got) == _plain(value)


def test_string_with_nul_is_refused_by_name(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        with pytest.raises(ParameterError, match=r"/info/label: the string 'a\\x00b' holds a NUL"):
            write_value(f, "info", {"label": "a\x00b"})
        with pytest.raises(ParameterError, match=r"/lone: the string .* is not valid Unicode"):
            write_value(f, "lone", "\ud800")


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.generic, np.ndarray)):  # arraylist elements of nested lists come back as arrays
        return v.tolist()
    return v
