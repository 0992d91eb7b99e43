"""Reading and writing values with ptypy's h5rw ``type`` tags (spec: ptyd-format.md §2).

Every HDF5 object ptypy's serialiser writes carries a ``type`` attribute
(``dict``, ``array``, ``arraylist``, ``scalar``, ``string``, ``None``,
``list``, ``tuple``, ``arraytuple``, ...). This module writes the same tags
and reads them back safely: nothing read from a file is ever unpickled or
evaluated, and declared sizes are checked before anything is allocated.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from ..errors import FormatError, ParameterError

TYPE = "type"
H5RW_VERSION = "0.1"
#: Tags that would make ptypy unpickle file content; ptydask refuses them.
UNSAFE_TAGS = ("pickle", "record_array")
#: Largest dataset ``read_value`` loads (meta/info values are tiny), bytes.
MAX_VALUE_BYTES = 256 * 2**20

_STR = h5py.string_dtype("utf-8")


def set_root_attrs(f: h5py.File) -> None:
    """Write ``h5rw_version``, ``ctime`` and ``mtime`` (time of this write) as UTF-8 strings."""
    now = time.asctime()
    for key, value in (("h5rw_version", H5RW_VERSION), ("ctime", now), ("mtime", now)):
        f.attrs.create(key, value, dtype=_STR)


def _tag(obj: h5py.HLObject, tag: str) -> None:
    obj.attrs.create(TYPE, tag, dtype=_STR)


def write_value(parent: h5py.Group, name: str, value: Any, *, compression: str | None = "gzip") -> None:
    """Store ``value`` under ``parent[name]`` as ptypy's h5rw would, with its ``type`` tag.

    Supported: str, dict (string keys), numbers/numpy scalars, bool, None,
    ndarray (ndim >= 1), lists and tuples (homogeneous -> one array, otherwise
    one child per element). Anything else raises :class:`ParameterError`.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise ParameterError(f"{parent.name}/{name}: the string {value!r} holds a NUL character, "
                                 "which HDF5 strings cannot store")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParameterError(f"{parent.name}/{name}: the string {value!r} is not valid Unicode ({exc.reason})") \
                from None
        ds = parent.create_dataset(name, data=value, dtype=_STR)
        _tag(ds, "string")
    elif isinstance(value, Mapping):
        grp = parent.create_group(name)
        _tag(grp, "dict")
        for key, item in value.items():
            if not isinstance(key, str):
                raise ParameterError(f"{parent.name}/{name}: dictionary keys must be strings, got {key!r}")
            escaped = key.replace("/", "_SLASH_")
            write_value(grp, escaped, item, compression=compression)
            if escaped != key:
                grp[escaped].attrs.create("escaped", "1", dtype=_STR)
    elif value is None:
        ds = parent.create_dataset(name, data=np.zeros(1, dtype=np.float64))
        _tag(ds, "None")
    elif isinstance(value, np.ndarray) and value.ndim >= 1:
        _check_storable(parent, name, value)
        ds = parent.create_dataset(name, data=value, compression=compression)
        _tag(ds, "array")
    elif isinstance(value, np.ndarray):  # 0-d arrays are stored as their scalar
        write_value(parent, name, value[()], compression=compression)
    elif isinstance(value, (bool, int, float, complex, bytes, np.generic)):
        ds = parent.create_dataset(name, data=value)
        _tag(ds, "scalar")
    elif isinstance(value, (list, tuple)):
        _write_sequence(parent, name, value, compression)
    else:
        raise ParameterError(
            f"{parent.name}/{name}: cannot store a {type(value).__name__} in a .ptyd "
            "(supported: str, number, bool, None, array, list, tuple, dict)"
        )


def _check_storable(parent: h5py.Group, name: str, value: np.ndarray) -> None:
    if value.dtype.kind in "OUV" or value.dtype.names is not None:
        raise ParameterError(
            f"{parent.name}/{name}: cannot store an array of dtype {value.dtype} "
            "(record, object and unicode arrays are not part of the .ptyd format)"
        )


def _write_sequence(parent: h5py.Group, name: str, value: list | tuple, compression: str | None) -> None:
    is_tuple = isinstance(value, tuple)
    homogeneous = len(value) > 0 and len({type(v) for v in value}) == 1
    if homogeneous:
        try:
            stacked = np.array(value)
        except (ValueError, TypeError):
            stacked = None
        if stacked is not None and stacked.dtype.kind in "biufc":
            ds = parent.create_dataset(name, data=stacked, compression=compression)
            _tag(ds, "arraytuple" if is_tuple else "arraylist")
            return
    grp = parent.create_group(name)
    _tag(grp, "tuple" if is_tuple else "list")
    for i, item in enumerate(value):
        write_value(grp, f"{i:05d}", item, compression=compression)


def tag_of(obj: h5py.HLObject) -> str | None:
    """The ``type`` tag of an HDF5 object as ``str`` (accepts bytes), or ``None``."""
    tag = obj.attrs.get(TYPE)
    if tag is None:
        return None
    if isinstance(tag, np.ndarray) and tag.shape == ():
        tag = tag[()]
    if isinstance(tag, bytes):
        return tag.decode("utf-8", "replace")
    return str(tag)


def read_value(obj: h5py.HLObject, *, filename: str = "", max_bytes: int = MAX_VALUE_BYTES) -> Any:
    """Read an h5rw-tagged object into Python values (never unpickles or evaluates).

    Untagged groups read as dicts, untagged datasets as arrays (0-d ones as
    scalars: more lenient than ptypy). Raises :class:`FormatError` naming the
    object for unsafe or unknown tags and oversized datasets.
    """
    where = f"{filename}:{obj.name}" if filename else obj.name
    tag = tag_of(obj)
    if tag in UNSAFE_TAGS:
        raise FormatError(
            f"{where}: refusing to read an object tagged {tag!r}: ptypy stores it as a Python pickle, "
            "and unpickling a file can execute arbitrary code"
        )
    if isinstance(obj, h5py.Group):
        if tag in (None, "dict", "param", "ordered_dict"):
            out = {}
            for key in obj:
                child = _child(obj, key, where)
                name = key.replace("_SLASH_", "/") if _attr_str(child, "escaped") == "1" else key
                out[name] = read_value(child, filename=filename, max_bytes=max_bytes)
            return out
        if tag in ("list", "tuple"):
            items = [read_value(_child(obj, k, where), filename=filename, max_bytes=max_bytes) for k in sorted(obj)]
            return tuple(items) if tag == "tuple" else items
        raise FormatError(f"{where}: unknown type tag {tag!r} on a group")
    if not isinstance(obj, h5py.Dataset):
        raise FormatError(f"{where}: not a group or dataset")
    nbytes = int(np.prod(obj.shape, dtype=np.float64) * obj.dtype.itemsize) if obj.shape is not None else 0
    if nbytes > max_bytes:
        raise FormatError(f"{where}: declared size {nbytes} bytes exceeds the limit of {max_bytes} bytes for a value")
    try:
        if tag == "None":
            return None
        if tag in ("string", "unicode"):
            raw = obj[()]
            return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        if tag == "scalar":
            raw = obj[()]
            return raw.item() if isinstance(raw, np.generic) else raw
        if tag in ("array", None):
            arr = obj[()]
            if tag is None and isinstance(arr, np.ndarray) and arr.shape == ():
                return arr.item()
            if tag is None and isinstance(arr, bytes):
                return arr.decode("utf-8", "replace")
            return arr
        if tag in ("arraylist", "arraytuple"):
            arr = obj[()]
            items = list(arr)
            return tuple(items) if tag == "arraytuple" else items
    except (OSError, ValueError, TypeError) as exc:
        raise FormatError(f"{where}: cannot read value: {exc}") from exc
    raise FormatError(f"{where}: unknown type tag {tag!r} on a dataset")


def _child(group: h5py.Group, key: str, where: str) -> h5py.HLObject:
    try:
        return group[key]
    except (KeyError, OSError) as exc:
        raise FormatError(f"{where}/{key}: cannot be opened (dangling or broken link?): {exc}") from exc


def _attr_str(obj: h5py.HLObject, name: str) -> str | None:
    value = obj.attrs.get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)
