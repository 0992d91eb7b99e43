"""CXI files (Coherent X-ray Imaging format, HDF5): frames, translations, mask and geometry.

CXI stores SI units: energy in joules (converted here to keV), distance and
pixel sizes in metres, sample translations in metres as (x, y, z) columns.

Position mapping (same as ptypy's CXI loaders): ptypy position (y, x) =
(translation[:, 1], translation[:, 0]) — CXI y is the slow/row axis, CXI x
the fast/column axis, z is dropped, no sign change. Use ``positions=`` with
multipliers of -1 when a beamline records the opposite sense.

The CXI mask marks **bad** pixels with nonzero values; it is converted to
ptypy weights (nonzero = valid) by the corrections module.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from ..errors import SourceError
from .hdf5 import MAX_SMALL_BYTES, hdf5_guard, open_file

FRAMES = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data", "entry_1/image_1/data")
TRANSLATIONS = ("entry_1/sample_1/geometry_1/translation", "entry_1/data_1/translation")
MASKS = ("entry_1/instrument_1/detector_1/mask", "entry_1/data_1/mask")
ENERGY = "entry_1/instrument_1/source_1/energy"
DISTANCE = "entry_1/instrument_1/detector_1/distance"
PSIZE = ("entry_1/instrument_1/detector_1/y_pixel_size", "entry_1/instrument_1/detector_1/x_pixel_size")

#: Joules per keV.
KEV = 1.602176634e-16


@hdf5_guard
def is_cxi(path: str) -> bool:
    """True for ``.cxi`` files and HDF5 files laid out as CXI (``cxi_version`` or ``entry_1``)."""
    if path.lower().endswith(".cxi"):
        return True
    with open_file(path) as f:
        return "cxi_version" in f or "entry_1" in f


def _first(f: h5py.File, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        try:
            if isinstance(f.get(key), h5py.Dataset):
                return key
        except (KeyError, OSError):
            continue
    return None


def _scalar(f: h5py.File, key: str) -> float | None:
    ds = f.get(key)
    if not isinstance(ds, h5py.Dataset):
        return None
    if ds.shape is None or ds.size == 0 or ds.dtype.kind not in "biuf":
        raise SourceError(f"{f.filename}: {key} holds {ds.shape} {ds.dtype}; expected a number")
    return float(ds[(0,) * ds.ndim])  # the first value only: never the whole (maybe huge) dataset


@hdf5_guard
def read_cxi(path: str) -> dict[str, Any]:
    """Keys and values found in a CXI file.

    Returns ``frames_key``, ``mask_key`` (or None), ``positions`` ((N, 2) (y, x)
    metres, or None), ``energy`` (keV), ``distance`` (m), ``psize`` ((y, x) m);
    absent values are None.
    """
    with open_file(path) as f:
        frames_key = _first(f, FRAMES)
        if frames_key is None:
            raise SourceError(f"{path}: CXI file without frames; looked for {', '.join(FRAMES)}")
        out: dict[str, Any] = {"frames_key": frames_key, "mask_key": _first(f, MASKS)}
        tkey = _first(f, TRANSLATIONS)
        if tkey is not None:
            tds = f[tkey]
            if tds.shape is None or tds.dtype.kind not in "biuf" or tds.size * tds.dtype.itemsize > MAX_SMALL_BYTES:
                raise SourceError(f"{path}: {tkey} holds {tds.shape} {tds.dtype}; expected (N, 3) x, y, z translations")
            t = np.asarray(tds[()], dtype=np.float64)
            if t.ndim != 2 or t.shape[1] < 2:
                raise SourceError(f"{path}: {tkey} has shape {t.shape}; expected (N, 3) x, y, z translations")
            out["positions"] = t[:, [1, 0]]
            out["positions_key"] = tkey
        else:
            out["positions"] = None
        energy = _scalar(f, ENERGY)
        out["energy"] = None if energy is None else energy / KEV
        out["distance"] = _scalar(f, DISTANCE)
        py, px = (_scalar(f, k) for k in PSIZE)
        out["psize"] = None if py is None or px is None else (py, px)
    return out
