"""The SMV / d*TREK format (``.img``, ``.smv``; ADSC, Rigaku, Timepix electron diffraction), read by fabio.

Recognised by the header's start (``{`` then ``HEADER_BYTES=``). The header (fabio's
parse) gives the frame shape and pixel type without reading pixels, and the geometry:
``PIXEL_SIZE`` (mm) -> pixel size (m), ``DISTANCE`` (mm) -> distance (m),
``WAVELENGTH`` (Å) -> energy, the photon energy of that wavelength (keV) — for
electron data the wavelength is the electrons', so the energy is already the one
ptypy needs (no ``electron_data`` conversion).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import SourceError
from ._lazy import lazy_frames
from .base import Quantity, SourceData, SourceFormat, stack_data
from .images import FabioReader
from .registry import register_format

#: h c in keV Å (CODATA 2018).
HC_KEV_ANGSTROM = 12.398419843320026
#: SMV ``TYPE`` -> numpy dtype of the pixels.
TYPES = {"unsigned_short": np.uint16, "signed_short": np.int16, "unsigned_long": np.uint32,
         "unsigned_int": np.uint32, "signed_long": np.int32, "signed_int": np.int32, "float": np.float32,
         "float ieee": np.float32, "unsigned_char": np.uint8}


def header(path: str) -> dict[str, str]:
    """The SMV header of ``path`` as parsed by fabio (no pixels read)."""
    import fabio

    try:
        return {str(k): str(v).strip() for k, v in fabio.openheader(path).header.items()}
    except Exception as exc:  # noqa: BLE001 - fabio raises many kinds of errors for bad files
        raise SourceError(f"{path}: not a readable SMV file ({type(exc).__name__}: {exc})") from None


def _number(head: dict[str, str], name: str, path: str) -> Optional[float]:
    text = head.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text.split()[0])
    except ValueError:
        raise SourceError(f"{path}: SMV header {name}={text!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise SourceError(f"{path}: SMV header {name}={text!r} must be a positive number")
    return value


def geometry(head: dict[str, str], path: str) -> dict[str, Quantity]:
    """Energy (keV), distance (m) and pixel size (m) the header states."""
    out: dict[str, Quantity] = {}
    wavelength = _number(head, "WAVELENGTH", path)
    if wavelength is not None:
        out["energy"] = Quantity(HC_KEV_ANGSTROM / wavelength, f"{path}:WAVELENGTH ({wavelength:g} Å)")
    distance = _number(head, "DISTANCE", path)
    if distance is not None:
        out["distance"] = Quantity(distance * 1e-3, f"{path}:DISTANCE ({distance:g} mm)")
    pixel = _number(head, "PIXEL_SIZE", path)
    if pixel is not None:
        out["psize"] = Quantity((pixel * 1e-3, pixel * 1e-3), f"{path}:PIXEL_SIZE ({pixel:g} mm)")
    return out


class SmvReader(FabioReader):
    """SMV frames, one per file; shape and pixel type from the header alone."""

    def _probe(self, path: str) -> tuple[int, tuple[int, int], np.dtype]:
        head = header(path)
        dtype: Any = TYPES.get(head.get("TYPE", "").lower())
        try:
            shape = (int(head["SIZE2"]), int(head["SIZE1"]))  # SIZE1 is the fast (column) axis
        except (KeyError, ValueError):
            raise SourceError(f"{path}: SMV header without integer SIZE1/SIZE2") from None
        if dtype is None:
            raise SourceError(f"{path}: SMV pixel TYPE={head.get('TYPE')!r} is not supported; known: {', '.join(TYPES)}")
        if min(shape) < 1:
            raise SourceError(f"{path}: SMV header declares frames of {shape} pixels")
        return 1, shape, np.dtype(dtype).newbyteorder("=")


class SmvFormat(SourceFormat):
    """SMV/d*TREK files; a sequence of files is one stack, with the first file's geometry."""

    name = "smv"
    suffixes = (".smv",)
    multi_file = True

    def sniff(self, path: str, head: bytes) -> bool:
        return head.startswith(b"{") and b"HEADER_BYTES=" in head[:64]

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        arr = lazy_frames(SmvReader(paths), block_bytes, self.name)
        return stack_data(arr, self.name, paths, key, outer_index, geometry=geometry(header(paths[0]), paths[0]))


register_format(SmvFormat)
