"""Image files as lazy frame stacks: TIFF (tifffile) and CBF/EDF/SMV/... (fabio).

A sequence of files is one stack, in the order given; every file must hold the
same number of frames (of the same shape and dtype) as the first. Compressed
``.bz2``/``.gz`` files are read by fabio directly.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from ..errors import PtydaskError, SourceError
from ._lazy import FrameReader, lazy_frames


class _SequenceReader(FrameReader):
    """Frames from files of ``per_file`` frames each; subclasses implement ``_read_file``."""

    def __init__(self, paths: list[str]):
        self.paths = tuple(paths)
        first = self._probe(self.paths[0])
        self.per_file, (h, w), self.dtype = first
        if len(self.paths) > 1:
            last = self._probe(self.paths[-1])
            if last != first:
                raise SourceError(
                    f"{self.paths[-1]}: holds {last[0]} frame(s) of {last[1]} {last[2]}, but "
                    f"{self.paths[0]} holds {first[0]} of {first[1]} {first[2]}; a sequence needs equal files"
                )
        self.shape = (self.per_file * len(self.paths), h, w)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + self.shape[1:], dtype=self.dtype)
        pos = start
        while pos < stop:
            i, first = divmod(pos, self.per_file)
            last = min(self.per_file, first + stop - pos)
            try:
                frames = self._read_file(self.paths[i], first, last)
            except (PtydaskError, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - format libraries raise many kinds of errors
                raise SourceError(f"{self.paths[i]}: cannot read frames {first}:{last}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            if frames.shape[1:] != self.shape[1:]:
                raise SourceError(f"{self.paths[i]}: frame shape {frames.shape[1:]} differs from {self.shape[1:]} of {self.paths[0]}")
            out[pos - start:pos - start + last - first] = frames
            pos += last - first
        return out

    def _probe(self, path: str) -> tuple[int, tuple[int, int], np.dtype]:
        raise NotImplementedError

    def _checked(self, path: str, data: np.ndarray, count: int) -> np.ndarray:
        """``data`` as ``count`` frames, refused (never cast or reshaped) when it is not what the first file holds."""
        if data.dtype.newbyteorder("=") != self.dtype or data.size != count * self.shape[1] * self.shape[2]:
            raise SourceError(f"{path}: holds {data.shape} {data.dtype} where {count} frame(s) of {self.shape[1:]} "
                              f"{self.dtype} were expected (as in {self.paths[0]}); a sequence needs equal files")
        return data.reshape((count,) + self.shape[1:])

    def _read_file(self, path: str, first: int, last: int) -> np.ndarray:
        raise NotImplementedError


class TiffReader(_SequenceReader):
    """Multi-page TIFF files (the first series of each); pages are frames."""

    def _probe(self, path: str) -> tuple[int, tuple[int, int], np.dtype]:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, axes = tuple(series.shape), series.axes
                dtype = np.dtype(series.dtype)
        except (OSError, ValueError, IndexError) as exc:
            raise SourceError(f"{path}: not a readable TIFF ({exc})") from None
        if len(shape) < 2 or axes.endswith("S"):
            raise SourceError(f"{path}: TIFF series of shape {shape} (axes {axes}) is not grey-scale frames")
        n = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1
        return n, (int(shape[-2]), int(shape[-1])), dtype.newbyteorder("=")

    def _read_file(self, path: str, first: int, last: int) -> np.ndarray:
        import tifffile

        data = tifffile.imread(path, key=range(first, last)) if self.per_file > 1 else tifffile.imread(path)
        return self._checked(path, np.asarray(data), last - first)


#: CBF ``X-Binary-Element-Type`` -> numpy dtype of the decoded pixels.
CBF_TYPES = {
    "signed 8-bit integer": np.int8, "unsigned 8-bit integer": np.uint8,
    "signed 16-bit integer": np.int16, "unsigned 16-bit integer": np.uint16,
    "signed 32-bit integer": np.int32, "unsigned 32-bit integer": np.uint32,
}


#: The bytes that open a CBF binary section (fabio searches for them without an end: a CBF cut before
#: them would make it read for ever).
CBF_BINARY_START = b"\x0c\x1a\x04\xd5"
SCAN_BYTES = 2**16


def _stream(path: str):
    lower = path.lower()
    if lower.endswith((".gz", ".gzip")):
        import gzip

        return gzip.open(path, "rb")
    if lower.endswith(".bz2"):
        import bz2

        return bz2.open(path, "rb")
    return open(path, "rb")


def check_cbf(path: str) -> None:
    """Refuse a CBF file (also compressed) whose binary section never starts: truncated or not a CBF."""
    with _stream(path) as fh:
        tail = b""
        head = fh.read(6)
        if head != b"###CBF":
            return  # not a CBF: fabio tells what it is
        while True:
            piece = fh.read(SCAN_BYTES)
            if not piece:
                raise SourceError(f"{path}: CBF file without a binary section (truncated?)")
            if CBF_BINARY_START in tail + piece:
                return
            tail = piece[-3:]


class FabioReader(_SequenceReader):
    """Files fabio can read (CBF, EDF, SMV, ...; also ``.bz2``/``.gz``); multi-frame EDF supported."""

    def _probe(self, path: str) -> tuple[int, tuple[int, int], np.dtype]:
        """Frame count, shape and dtype, from the header alone where it says them (CBF)."""
        import fabio

        try:
            check_cbf(path)
            head = fabio.openheader(path)
            n = int(getattr(head, "nframes", 1) or 1)
            try:
                shape = tuple(head.shape or ())
            except AttributeError:  # some fabio classes know the shape only from the pixels
                shape = ()
            dtype = CBF_TYPES.get(str(head.header.get("X-Binary-Element-Type", "")).strip().strip('"'))
            if dtype is None or len(shape) != 2:
                with fabio.open(path) as img:
                    data = img.data
                    shape, dtype = (tuple(data.shape) if data is not None else ()), (data.dtype if data is not None else None)
        except PtydaskError:
            raise
        except Exception as exc:  # fabio raises many kinds of errors for bad files
            raise SourceError(f"{path}: fabio cannot read it ({type(exc).__name__}: {exc})") from None
        if len(shape) != 2:
            raise SourceError(f"{path}: expected 2-D frames, fabio gives shape {shape}")
        return n, (int(shape[0]), int(shape[1])), np.dtype(dtype).newbyteorder("=")

    def _read_file(self, path: str, first: int, last: int) -> np.ndarray:
        import fabio

        check_cbf(path)
        with fabio.open(path) as img:
            if self.per_file == 1:
                data = np.asarray(img.data)
            else:
                data = np.asarray([img.getframe(i).data for i in range(first, last)])
        return self._checked(path, data, last - first)


def tiff_frames(paths: list[str], block_bytes: int) -> da.Array:
    """Lazy ``(N, H, W)`` frames of TIFF files (pages in file order)."""
    return lazy_frames(TiffReader(paths), block_bytes, "tiff")


def fabio_frames(paths: list[str], block_bytes: int) -> da.Array:
    """Lazy ``(N, H, W)`` frames of CBF/EDF/... files read with fabio."""
    return lazy_frames(FabioReader(paths), block_bytes, "fabio")
