"""A human-readable overview of a ``.ptyd`` file: its tree, shapes, dtypes, tags and meta values."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import FormatError
from .h5rw import read_value, tag_of

#: Chunk groups listed in full before the listing is shortened.
SHOWN_CHUNKS = 3


def describe_ptyd(path: str | os.PathLike) -> str:
    """Return the tree of a ``.ptyd`` file as text (never reads frame data)."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: cannot be opened as HDF5: {exc}") from exc
    lines = [f"{path}"]
    with f:
        attrs = ", ".join(f"{k}={_text(f.attrs[k])}" for k in sorted(f.attrs))
        if attrs:
            lines.append(f"  root attributes: {attrs}")
        if "meta" in f:
            lines.append(f"  meta/  [{tag_of(f['meta']) or 'untagged'}]")
            for key in sorted(f["meta"]):
                obj = f["meta"][key]
                value = read_value(obj, filename=str(path), max_bytes=2**16)
                lines.append(f"    {key:<11} = {_value(value):<28} [{tag_of(obj) or 'untagged'}]")
        if "chunks" in f:
            lines.extend(_chunks(f["chunks"], path))
        if "info" in f:
            keys = sorted(f["info"])
            lines.append(f"  info/  [{tag_of(f['info']) or 'untagged'}] {len(keys)} documented parameters: {', '.join(keys[:12])}"
                         + (", ..." if len(keys) > 12 else ""))
        other = sorted(set(f) - {"meta", "chunks", "info"})
        if other:
            lines.append(f"  other top-level objects: {', '.join(other)}")
    return "\n".join(lines)


def _chunks(group: h5py.Group, path: Path) -> list[str]:
    names = sorted(group, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    total = 0
    lines = [f"  chunks/  [{tag_of(group) or 'untagged'}] {len(names)} chunk group(s)"]
    for i, name in enumerate(names):
        link = group.get(name, getlink=True)
        where = f" -> {link.filename}:{link.path}" if isinstance(link, h5py.ExternalLink) else ""
        try:
            grp = group[name]
        except (KeyError, OSError):
            lines.append(f"    {name}/{where}  DANGLING LINK")
            continue
        n = grp["data"].shape[0] if "data" in grp else 0
        total += n
        if i < SHOWN_CHUNKS or i == len(names) - 1:
            lines.append(f"    {name}/{where}")
            for key in sorted(grp):
                obj = grp[key]
                if isinstance(obj, h5py.Dataset):
                    lines.append(f"      {key:<10} {str(obj.shape):<18} {str(obj.dtype):<8} {_layout(obj):<28} [{tag_of(obj) or 'untagged'}]")
                else:
                    lines.append(f"      {key:<10} group [{tag_of(obj) or 'untagged'}]")
        elif i == SHOWN_CHUNKS:
            lines.append(f"    ... {len(names) - SHOWN_CHUNKS - 1} more chunk group(s)")
    lines.append(f"    frames stored: {total}")
    return lines


def _layout(ds: h5py.Dataset) -> str:
    if ds.chunks is None:
        return "contiguous"
    comp = ds.compression or "none"
    return f"chunks {ds.chunks} {comp}"


def _value(value) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, separator=", ")
    return repr(value)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
