"""The Gatan DigitalMicrograph format (``.dm3``, ``.dm4``), read by rosettasciio (``pip install rosettasciio``).

Recognised by the file's version word (3 or 4, big-endian) and byte-order flag.
``key`` picks one image of a file holding several (``"0"``, ``"1"``, ...; the
only one by default). Signal axes are the frame; navigation axes (a stack, a
4D-STEM raster) are frames in C order. Frames are read lazily: opening parses the
tags only, and each Dask block asks rosettasciio for its frames.

Geometry, from the image's tags (``ImageList/TagGroup<i>/...``):

* energy: ``ImageTags/Microscope Info/Voltage`` (V) -> an electron kinetic energy (keV),
  turned into the photon energy of the electrons' wavelength when the Scan is built;
* pixel size: ``ImageTags/Acquisition/Frame/CCD/Pixel Size (um)`` (or ``Device/CCD``),
  stored (x, y), times ``Acquisition/Parameters/High Level/Binning``;
* distance: derived from the reciprocal-space calibration of a diffraction pattern
  (``ImageData/Calibrations``, e.g. nm⁻¹ per pixel): distance = pixel size /
  (calibration × wavelength), the camera length that calibration implies.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from ..errors import PtydaskError, SourceError
from ._lazy import FrameReader, lazy_frames
from .base import Quantity, SourceData, SourceFormat, stack_data
from .geometry import electron_to_photon_kev
from .registry import register_format

#: h c in keV m.
HC_KEV_M = 1.2398419843320026e-9
#: Reciprocal length units of a calibration -> factor to 1/m.
RECIPROCAL = {"1/m": 1.0, "1/cm": 1e2, "1/mm": 1e3, "1/um": 1e6, "1/µm": 1e6, "1/nm": 1e9,
              "1/a": 1e10, "1/å": 1e10, "1/pm": 1e12}


def images(path: str) -> list[dict[str, Any]]:
    """rosettasciio's lazy read of ``path``: one dict (``data``, ``axes``, ``original_metadata``) per image."""
    try:
        from rsciio.digitalmicrograph import file_reader
    except ImportError:
        raise SourceError(f"{path}: reading DigitalMicrograph files needs rosettasciio "
                          "(pip install rosettasciio, or ptydask[formats])") from None
    try:
        return list(file_reader(path, lazy=True))
    except Exception as exc:  # noqa: BLE001 - rosettasciio raises many kinds of errors for bad files
        raise SourceError(f"{path}: not a readable DigitalMicrograph file ({type(exc).__name__}: {exc})") from None


def _pick(path: str, found: list[dict[str, Any]], key: Optional[str]) -> int:
    if key is None:
        if len(found) != 1:
            raise SourceError(f"{path}: holds {len(found)} images; pass key= '0' .. '{len(found) - 1}'")
        return 0
    if not str(key).isdigit() or int(key) >= len(found):
        raise SourceError(f"{path}: key {key!r} is not an image of the file; it holds {len(found)} (key '0' .. "
                          f"'{len(found) - 1}')")
    return int(key)


class DmReader(FrameReader):
    """Frames of image ``index`` of a DigitalMicrograph file, asked of rosettasciio in every read."""

    def __init__(self, path: str, index: int, shape: tuple[int, ...], dtype: np.dtype):
        self.paths, self.index, self.stored = (os.path.abspath(path),), index, tuple(shape)
        self.shape = (int(np.prod(shape[:-2], dtype=np.int64)), int(shape[-2]), int(shape[-1]))
        self.dtype = np.dtype(dtype).newbyteorder("=")

    def describe(self) -> str:
        return f"{self.paths[0]}[{self.index}] {self.stored} {self.dtype}"

    def read(self, start: int, stop: int) -> np.ndarray:
        try:
            data = images(self.paths[0])[self.index]["data"]
            if tuple(data.shape) != self.stored:
                raise SourceError(f"{self.paths[0]}: changed since it was opened (image {self.index} is {data.shape})")
            block = data.reshape(self.shape)[start:stop]
            out = np.asarray(block.compute(scheduler="synchronous") if hasattr(block, "compute") else block)
        except (PtydaskError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged file fails inside rosettasciio or numpy
            raise SourceError(f"{self.paths[0]}: cannot read frames {start}:{stop}: {type(exc).__name__}: {exc}") from exc
        return out.astype(self.dtype, copy=False)


def _tag(meta: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(meta, dict) or part not in meta:
            return None
        meta = meta[part]
    return meta


def _pair(value: Any) -> Optional[tuple[float, float]]:
    """A stored (x, y) pair (or one number) as (y, x) floats."""
    arr = np.ravel(np.asarray(value, dtype=np.float64)) if value is not None else np.empty(0)
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    return (float(arr[1]), float(arr[0])) if arr.size == 2 and np.all(arr > 0) else None


def geometry(path: str, image: dict[str, Any], index: int) -> dict[str, Quantity]:
    """Energy (electron keV), pixel size (m) and distance (m) from the tags of one image (see the module docstring)."""
    meta = _tag(image.get("original_metadata") or {}, ("ImageList", f"TagGroup{index}")) or {}
    where = f"{path}:ImageList/TagGroup{index}"
    out: dict[str, Quantity] = {}
    volts = _tag(meta, ("ImageTags", "Microscope Info", "Voltage"))
    if isinstance(volts, (int, float)) and volts > 0:
        out["energy"] = Quantity(volts / 1e3, f"{where}/ImageTags/Microscope Info/Voltage ({volts:g} V)", electron=True)
    for group in ("Frame", "Device"):
        pixel = _pair(_tag(meta, ("ImageTags", "Acquisition", group, "CCD", "Pixel Size (um)")))
        if pixel is not None:
            binning = _pair(_tag(meta, ("ImageTags", "Acquisition", "Parameters", "High Level", "Binning"))) or (1, 1)
            psize = (pixel[0] * binning[0] * 1e-6, pixel[1] * binning[1] * 1e-6)
            out["psize"] = Quantity(psize, f"{where}/ImageTags/Acquisition/{group}/CCD/Pixel Size (um) "
                                           f"({pixel[1]:g}, {pixel[0]:g} um, binning {binning[1]:g}x{binning[0]:g})")
            break
    axis = (image.get("axes") or [{}])[-2] if len(image.get("axes") or []) >= 2 else {}
    per_m = RECIPROCAL.get(str(axis.get("units", "")).strip().lower())
    scale = float(axis.get("scale") or 0)
    if per_m and scale > 0 and "energy" in out and "psize" in out:
        wavelength = HC_KEV_M / electron_to_photon_kev(out["energy"].value)
        distance = out["psize"].value[0] / (scale * per_m * wavelength)
        out["distance"] = Quantity(distance, f"derived from {where}/ImageData/Calibrations ({scale:g} "
                                             f"{axis['units']} per pixel), the pixel size and the electron wavelength "
                                             f"({wavelength * 1e12:.4g} pm)")
    return out


class DmFormat(SourceFormat):
    """Gatan DigitalMicrograph ``.dm3``/``.dm4`` files (through rosettasciio)."""

    name = "dm"
    suffixes = (".dm3", ".dm4")

    def sniff(self, path: str, head: bytes) -> bool:
        if len(head) < 16:
            return False
        version = int.from_bytes(head[:4], "big")
        order = head[8:12] if version == 3 else head[12:16]
        return version in (3, 4) and int.from_bytes(order, "big") in (0, 1)

    def open(self, paths: list[str], key: Optional[str], *, outer_index: Optional[int],
             block_bytes: int) -> SourceData:
        path = paths[0]
        found = images(path)
        index = _pick(path, found, key)
        image = found[index]
        shape, dtype = tuple(image["data"].shape), np.dtype(image["data"].dtype)
        if len(shape) < 2 or any(a.get("navigate") for a in image.get("axes", [])[-2:]):
            raise SourceError(f"{path}: image {index} of shape {shape} has no 2-D signal (frame) axes")
        if dtype.kind not in "biuf":
            raise SourceError(f"{path}: image {index} holds {dtype} values (RGB or complex), not detector counts")
        flat = lazy_frames(DmReader(path, index, shape, dtype), block_bytes, self.name)
        arr = flat.reshape(shape) if len(shape) != 3 else flat
        return stack_data(arr, self.name, paths, key, outer_index, geometry=geometry(path, image, index))


register_format(DmFormat)
