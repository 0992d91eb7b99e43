"""Quantum Detectors Merlin (Medipix3) ``.mib`` files as lazy frame stacks.

Every frame is an ASCII header followed by the pixels. The header is a
comma-separated record starting ``MQ1,<frame no>,<header bytes>,<chips>,
<width>,<height>,<pixel type>,...``; width is the column count, height the
row count, and the pixel type ``U08``/``U16``/``U32``/``U64`` is big-endian
unsigned (``>u1``, ``>u2``, ``>u4``, ``>u8``). RAW-mode files (``R64``) hold
undecoded counter bits and are refused with a clear error. Frames are read
lazily through a memory map of the file.
"""

from __future__ import annotations

import os
from typing import Optional

import dask.array as da
import numpy as np

from ..errors import SourceError
from ._lazy import FrameReader, lazy_frames
from .base import SourceData, SourceFormat, stack_data
from .registry import register_format

PIXEL_TYPES = {"U08": ">u1", "U16": ">u2", "U32": ">u4", "U64": ">u8"}
_PROBE_BYTES = 64


def parse_header(path: str) -> dict:
    """Header fields of the first frame: ``header_bytes``, ``shape`` (rows, cols), ``dtype``, ``chips``."""
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(_PROBE_BYTES)
        fields = head.split(b",")
        if len(fields) < 7 or fields[0] != b"MQ1":
            raise SourceError(f"{path}: not a Merlin MIB file (no 'MQ1,' frame header at the start)")
        try:
            header_bytes = int(fields[2])
            chips = int(fields[3])
            width, height = int(fields[4]), int(fields[5])
        except ValueError:
            raise SourceError(f"{path}: malformed MIB header {head[:40]!r}") from None
        ptype = fields[6].decode(errors="replace").strip()
    if ptype.startswith("R"):
        raise SourceError(
            f"{path}: MIB pixel type {ptype!r} is RAW mode (undecoded counter bits), which ptydask does not "
            "decode; record or re-save the data in a non-RAW mode (U08/U16/U32)"
        )
    if ptype not in PIXEL_TYPES:
        raise SourceError(f"{path}: unknown MIB pixel type {ptype!r}; supported: {', '.join(PIXEL_TYPES)}")
    return {"header_bytes": header_bytes, "shape": (height, width), "dtype": np.dtype(PIXEL_TYPES[ptype]), "chips": chips}


class MibReader(FrameReader):
    """Frames of one MIB file, memory-mapped in every read."""

    def __init__(self, path: str):
        path = os.path.abspath(path)
        head = parse_header(path)
        self.paths = (path,)
        self.header_bytes = head["header_bytes"]
        self.file_dtype = head["dtype"]
        self.dtype = self.file_dtype.newbyteorder("=")
        h, w = head["shape"]
        self.frame_bytes = self.header_bytes + h * w * self.file_dtype.itemsize
        size = os.path.getsize(path)
        if size % self.frame_bytes:
            raise SourceError(
                f"{path}: size {size} bytes is not a whole number of frames of {self.frame_bytes} bytes "
                f"({self.header_bytes}-byte header + {h}x{w} {self.file_dtype}); truncated or mixed frames"
            )
        self.shape = (size // self.frame_bytes, h, w)

    def _record(self) -> np.dtype:
        return np.dtype([("header", f"S{self.header_bytes}"), ("pixels", self.file_dtype, self.shape[1:])])

    def read(self, start: int, stop: int) -> np.ndarray:
        records = np.memmap(self.paths[0], dtype=self._record(), mode="r", offset=start * self.frame_bytes, shape=(stop - start,))
        out = np.empty((stop - start,) + self.shape[1:], dtype=self.dtype)
        out[...] = records["pixels"]
        del records
        return out


def mib_frames(path: str, block_bytes: int) -> da.Array:
    """Lazy ``(N, H, W)`` frames of a Merlin ``.mib`` file, native-endian unsigned integers."""
    return lazy_frames(MibReader(path), block_bytes, "mib")


class MibFormat(SourceFormat):
    """Merlin ``.mib`` files, recognised by their ``MQ1,`` frame header; several files are one stack."""

    name = "mib"
    suffixes = (".mib",)
    multi_file = True

    def sniff(self, path: str, head: bytes) -> bool:
        return head.startswith(b"MQ1,")

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        arr = da.concatenate([mib_frames(p, block_bytes) for p in paths], axis=0)
        return stack_data(arr, self.name, paths, key, outer_index)


register_format(MibFormat)
