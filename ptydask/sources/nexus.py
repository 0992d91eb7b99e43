"""Find the frames (and the detector pixel mask) in NeXus / DECTRIS HDF5 files.

Search order from the group ``key`` points at (the file root by default):
DECTRIS ``data_NNNNNN`` links (all of them, in order, stopping at the first
link whose file is missing), the NeXus ``default`` attribute chain to an
``NXdata`` group and its ``signal`` dataset, then the usual places
(``data``, ``entry/data/data``, ``entry/instrument/detector/data``).
"""

from __future__ import annotations

import os
import re

import h5py

from ..errors import SourceError
from ..io.links import candidates, members
from .hdf5 import get_node, hdf5_guard, open_file

DECTRIS_DATA = re.compile(r"^data_\d{6}$")
CONVENTIONAL = ("data", "entry/data/data", "entry/instrument/detector/data", "instrument/detector/data", "entry/data")
PIXEL_MASKS = ("pixel_mask", "detectorSpecific/pixel_mask")


def _text(value) -> str:
    if hasattr(value, "ravel") and getattr(value, "size", 0) == 1:
        value = value.ravel()[0]
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _dectris_links(path: str, group: h5py.Group, prefix: str) -> list[str]:
    keys = []
    names = sorted(n for n in group.keys() if DECTRIS_DATA.match(n))
    for expected, name in enumerate(names, start=1):
        if name != f"data_{expected:06d}":
            break
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink) and not os.path.exists(candidates(group.file.filename, link.filename)[0]):
            if not keys:  # a series whose very first data file is missing: say so, not "no frames found"
                raise SourceError(
                    f"{path}: {prefix + '/' if prefix else ''}{name} is an external link to {link.filename}:{link.path}, "
                    f"which is missing (DECTRIS data files belong in the master file's folder)"
                )
            break
        keys.append(f"{prefix}/{name}".lstrip("/"))
    return keys


def _search(path: str, f: h5py.File, key: str, depth: int) -> list[str]:
    node = get_node(f, key, path) if key else f
    if isinstance(node, h5py.Dataset):
        return [key]
    if depth > 6:
        return []
    found = _dectris_links(path, node, key)
    if found:
        return found
    default = node.attrs.get("default")
    if default is not None and _text(default) in node:
        hit = _search(path, f, f"{key}/{_text(default)}".lstrip("/"), depth + 1)
        if hit:
            return hit
    signal = node.attrs.get("signal")
    if signal is not None and _text(signal) in node:
        return _search(path, f, f"{key}/{_text(signal)}".lstrip("/"), depth + 1)
    for name, child in node.items() if _text(node.attrs.get("NX_class", "")) == "NXdata" else ():
        if isinstance(child, h5py.Dataset) and _text(child.attrs.get("signal", "")) == "1":
            return [f"{key}/{name}".lstrip("/")]
    for rel in CONVENTIONAL:
        if rel in node:
            hit = _search(path, f, f"{key}/{rel}".lstrip("/"), depth + 1)
            if hit and all(len(f[k].shape) >= 2 for k in hit):
                return hit
    return []


@hdf5_guard
def find_frames(path: str, key: str | None = None) -> list[str]:
    """Dataset keys that hold the frames (several for DECTRIS multi-file data)."""
    with open_file(path) as f:
        found = _search(path, f, (key or "").strip("/"), 0)
        if not found:
            candidates: list[str] = []

            def visit(name: str, obj) -> None:
                if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and len(candidates) < 20:
                    candidates.append(f"{name} {obj.shape}")

            start = get_node(f, key, path) if key else f
            start.visititems(visit)
            where = f"group {key!r}" if key else "the file"
            raise SourceError(
                f"{path}: no frames found in {where} by NeXus/DECTRIS conventions; pass key=. "
                f"Datasets with 2+ dimensions: {', '.join(candidates) or 'none'}; top level holds: {members(start)}"
            )
        return found


@hdf5_guard
def find_pixel_mask(path: str, frames_key: str) -> str | None:
    """Key of the NXmx ``pixel_mask`` of the detector that holds ``frames_key``, if any."""
    with open_file(path) as f:
        group = frames_key.strip("/").rpartition("/")[0]
        candidates = []
        for base in (group, "entry/instrument/detector"):
            for rel in PIXEL_MASKS:
                candidates.append(f"{base}/{rel}".lstrip("/"))
        for cand in candidates:
            try:
                if isinstance(f.get(cand), h5py.Dataset):
                    return cand
            except (KeyError, OSError):
                continue
    return None
