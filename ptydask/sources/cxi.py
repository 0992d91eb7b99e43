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

from typing import Any, Optional

import h5py
import numpy as np

from ..errors import SourceError
from ..io.links import LinkPolicy
from .base import Quantity
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
    """True for HDF5 files laid out as CXI: a ``cxi_version`` or frames at one of the CXI places
    (an ``entry_1`` group alone is not enough: NeXus files have one too)."""
    with open_file(path) as f:
        return "cxi_version" in f or _first(f, FRAMES) is not None


def _first(f: h5py.File, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        try:
            if isinstance(f.get(key), h5py.Dataset):
                return key
        except (KeyError, OSError):
            continue
    return None


def _scalar(f: h5py.File, policy: LinkPolicy, key: str) -> Optional[tuple[float, str]]:
    """(the first value, ``file:key (value unit)``) of a number dataset, ``None`` when absent."""
    if not isinstance(f.get(key), h5py.Dataset):
        return None
    ds = policy.get(f, key)
    if ds.shape is None or ds.size == 0 or ds.dtype.kind not in "biuf":
        raise SourceError(f"{f.filename}: {key} holds {ds.shape} {ds.dtype}; expected a number")
    value = float(ds[(0,) * ds.ndim])  # the first value only: never the whole (maybe huge) dataset
    return value, f"{policy.root}:{key}"


def _translations(f: h5py.File, policy: LinkPolicy, path: str) -> tuple[Optional[np.ndarray], Optional[str]]:
    tkey = _first(f, TRANSLATIONS)
    if tkey is None:
        return None, None
    tds = policy.get(f, tkey)
    if tds.shape is None or tds.dtype.kind not in "biuf" or tds.size * tds.dtype.itemsize > MAX_SMALL_BYTES:
        raise SourceError(f"{path}: {tkey} holds {tds.shape} {tds.dtype}; expected (N, 3) x, y, z translations")
    t = np.asarray(tds[()], dtype=np.float64)
    if t.ndim != 2 or t.shape[1] < 2:
        raise SourceError(f"{path}: {tkey} has shape {t.shape}; expected (N, 3) x, y, z translations")
    return t[:, [1, 0]], f"{path}:{tkey} (x, y, z m)"


@hdf5_guard
def read_cxi(path: str, frames_key: Optional[str] = None) -> dict[str, Any]:
    """Keys and values found in a CXI file (every object read under the link policy).

    Returns ``frames_key`` (``frames_key`` when given: an explicit key wins), ``mask_key`` (or None),
    ``positions`` ((N, 2) (y, x) metres, or None) and ``positions_key``, and ``geometry``:
    ``{energy (keV), distance (m), psize ((y, x) m)}`` -> :class:`~ptydask.sources.base.Quantity`
    for those present.
    """
    policy = LinkPolicy(path)
    with open_file(path) as f:
        frames_key = frames_key or _first(f, FRAMES)
        if frames_key is None:
            raise SourceError(f"{path}: CXI file without frames; looked for {', '.join(FRAMES)}")
        out: dict[str, Any] = {"frames_key": frames_key, "mask_key": _first(f, MASKS)}
        out["positions"], out["positions_key"] = _translations(f, policy, path)
        geometry: dict[str, Quantity] = {}
        energy = _scalar(f, policy, ENERGY)
        if energy is not None:
            geometry["energy"] = Quantity(energy[0] / KEV, f"{energy[1]} ({energy[0]:g} J)")
        distance = _scalar(f, policy, DISTANCE)
        if distance is not None:
            geometry["distance"] = Quantity(distance[0], f"{distance[1]} ({distance[0]:g} m)")
        py, px = (_scalar(f, policy, k) for k in PSIZE)
        if py is not None and px is not None:
            geometry["psize"] = Quantity((py[0], px[0]), f"{py[1]}, {px[1]} ({py[0]:g}, {px[0]:g} m)")
        out["geometry"] = geometry
    return out
