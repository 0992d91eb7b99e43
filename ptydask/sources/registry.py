"""The registry of source formats: built-in modules, third-party entry points, and detection by content.

Detection (:func:`detect`): a format whose :meth:`~SourceFormat.sniff` recognises
the content wins (the first registered one, built-ins first); the file name's
suffix decides only when no content test does. ``format=`` names a format
explicitly.

Third-party formats register through the entry-point group ``ptydask.sources``;
an entry point may load a :class:`SourceFormat` subclass or instance, or a
module that calls :func:`register_format` when imported::

    [project.entry-points."ptydask.sources"]
    myformat = "mypackage.ptydask_format:MyFormat"
"""

from __future__ import annotations

import glob as globmod
import importlib
import os
import threading
import warnings
from importlib.metadata import entry_points
from typing import Any, Optional

import dask.array as da
import numpy as np

from ..errors import ParameterError, SourceError
from ..io.links import LinkPolicy
from . import arrays
from .base import SourceData, SourceFormat, flatten, natural_key

#: Entry-point group of third-party formats.
ENTRY_POINT_GROUP = "ptydask.sources"
#: Built-in format modules (each registers its format when imported); content tests are tried in this order.
BUILTIN = ("hdf5_format", "tiff", "fabio_images", "mib", "npy", "npz", "zarr_store", "smv", "dm")
COMPRESSED = (".bz2", ".gz", ".gzip")
HEAD_BYTES = 512

_registry: dict[str, SourceFormat] = {}
_builtins: dict[str, SourceFormat] = {}
_loaded = False
_lock = threading.RLock()


def register_format(fmt: SourceFormat | type) -> SourceFormat:
    """Add a format (an instance, or a subclass to instantiate) under its ``name``; returns the instance.

    Registering a name again replaces the earlier format of that name.
    """
    if isinstance(fmt, type):
        fmt = fmt()
    if not isinstance(fmt, SourceFormat) or not fmt.name or fmt.name == "array":
        raise ParameterError(f"register_format: expected a SourceFormat with a name other than 'array', got {fmt!r}")
    with _lock:
        _registry[fmt.name] = fmt
    return fmt


def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, SourceFormat) or (isinstance(obj, type) and issubclass(obj, SourceFormat)):
                register_format(obj)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the built-in formats
            warnings.warn(f"source format plugin {ep.name!r} ({ep.value}) cannot be loaded: "
                          f"{type(exc).__name__}: {exc}", stacklevel=3)


def formats() -> dict[str, SourceFormat]:
    """All formats by name: the built-ins, then those of the ``ptydask.sources`` entry points."""
    global _loaded
    with _lock:
        if not _loaded:
            _loaded = True
            for name in BUILTIN:
                importlib.import_module(f"{__package__}.{name}")
            _builtins.update(_registry)
            _load_entry_points()
        return dict(_registry)


def reload_formats() -> dict[str, SourceFormat]:
    """Forget the formats registered since the built-ins and load the entry points again (e.g. after
    installing a plugin in a running session); returns :func:`formats`."""
    with _lock:
        formats()
        _registry.clear()
        _registry.update(_builtins)
        _load_entry_points()
        return dict(_registry)


def format_names() -> tuple[str, ...]:
    """Names accepted by ``format=`` (``"array"`` for in-memory arrays)."""
    return tuple(formats()) + ("array",)


def _name(path: str) -> str:
    name = path.lower().rstrip("/")
    for comp in COMPRESSED:
        if name.endswith(comp):
            return name[: -len(comp)]
    return name


def by_suffix(path: str) -> Optional[SourceFormat]:
    """The format the file name suggests (``None`` when no suffix matches)."""
    name = _name(path)
    compressed = name != path.lower().rstrip("/")
    for fmt in formats().values():
        if name.endswith(fmt.suffixes) and (fmt.compressed or not compressed):
            return fmt
    return None


def _head(path: str) -> bytes:
    if not os.path.isfile(path):
        return b""
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError:
        return b""


def detect(path: str) -> Optional[SourceFormat]:
    """The format of ``path`` by its content, else by its suffix (``None``: unknown)."""
    head = _head(path)
    for fmt in formats().values():
        try:
            if fmt.sniff(path, head):
                return fmt
        except Exception:  # noqa: BLE001 - a sniffer that fails on odd content just says no
            continue
    return by_suffix(path)


def supported() -> str:
    """The formats and their suffixes, for messages."""
    return "; ".join(f"{f.name}: {' '.join(f.suffixes)}" for f in formats().values() if f.suffixes) + \
        "; CBF/EDF also as .bz2/.gz"


def _listed(files: list[str], where: str) -> list[str]:
    """Files found by listing a folder or a glob: each must really lie in its folder (no symlink out)."""
    for f in files:
        LinkPolicy(where, base=os.path.dirname(f)).check_file(f, os.path.basename(f))
    return files


def expand(source: Any) -> list[str]:
    """The files a path, glob pattern, folder or list of paths stands for, in natural order."""
    if isinstance(source, (list, tuple)):
        paths = [os.fspath(p) for p in source]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise SourceError(f"{missing[0]}: no such file ({len(missing)} of {len(paths)} listed files are missing)")
        return [os.path.abspath(p) for p in paths]
    path = os.fspath(source)
    if os.path.isdir(path) and not (detect(path) or SourceFormat()).directory:
        files = sorted((os.path.join(os.path.abspath(path), n) for n in os.listdir(path) if by_suffix(n)),
                       key=natural_key)
        files = [f for f in files if os.path.isfile(f)]
        kinds = sorted({by_suffix(f).name for f in files})
        if not files:
            raise SourceError(f"{path}: folder holds no files of a supported format ({supported()})")
        if len(kinds) > 1:
            raise SourceError(f"{path}: folder mixes formats ({', '.join(kinds)}); pass a glob pattern such as '{path}/*.tif'")
        return _listed(files, path)
    if os.path.exists(path):
        return [os.path.abspath(path)]
    if any(c in path for c in "*?["):
        files = sorted(globmod.glob(path), key=natural_key)
        if not files:
            raise SourceError(f"{path}: glob pattern matches no files")
        return _listed([os.path.abspath(f) for f in files], path)
    raise SourceError(f"{path}: no such file or folder")


def open_source(source: Any, key: Optional[str] = None, *, outer_index: Optional[int] = None,
                block_bytes: int, fmt: Optional[str] = None) -> SourceData:
    """Open the frames of ``source`` lazily; see :func:`ptydask.sources.open_frames`."""
    if fmt is not None and fmt not in format_names():
        raise SourceError(f"format={fmt!r} is not supported; choose one of {', '.join(format_names())}")
    if isinstance(source, (np.ndarray, da.Array)) or fmt == "array":
        arr = arrays.memory_frames(source, block_bytes)
        frames, grid = flatten(arr, outer_index, "array")
        return SourceData(frames, grid, tuple(arr.shape), "array")
    if not isinstance(source, (str, os.PathLike, list, tuple)):
        raise SourceError(f"source: expected a path, glob pattern, folder, list of files or an array, got {type(source).__name__}")
    files = expand(source)
    chosen = formats()[fmt] if fmt else detect(files[0])
    if chosen is None:
        raise SourceError(f"{files[0]}: unknown format; supported: {supported()}")
    if len(files) > 1 and not chosen.multi_file:
        where = f"{files[0]} (+{len(files) - 1} files)"
        raise SourceError(f"{where}: {chosen.name} sources are opened one file at a time, got {len(files)} files")
    return chosen.open(files, key, outer_index=outer_index, block_bytes=block_bytes)
