"""Coordinates, units and file-safe attributes of the Scan model (see :mod:`ptydask.scan`).

- Coordinates: ``frame`` (the global scan-point index, as ``indices``), ``y`` and
  ``x`` (pixel indices of the stored frames), and, for a far-field Scan whose
  geometry is known, ``qy``/``qx`` (spatial frequency of each pixel relative to
  the centre, 1/m: ``(pixel - center) * psize / (wavelength * distance)``).
- Units: a ``units`` attribute on every variable and coordinate, and a
  ``<key>_units`` attribute beside each numeric meta value (``energy_units`` = "keV", ...).
- Files: :func:`encode_attrs` makes the attributes storable in netCDF or Zarr
  (nested mappings such as ``info`` become JSON strings, listed in
  ``json_attrs``; ``None`` values are left out); :func:`decode_attrs` reverses it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
import xarray as xr

__all__ = ["UNITS", "META_UNITS", "annotate", "encode_attrs", "decode_attrs", "encoded", "is_encoded", "wavelength_m",
           "ScanAccessor", "info_of"]

#: Units of the variables and coordinates ("1": dimensionless).
UNITS = {
    "data": "counts", "weights": "1", "positions": "m", "indices": "1", "dark": "counts", "flat": "1",
    "monitor": "1", "frame": "1", "y": "px", "x": "px", "qy": "1/m", "qx": "1/m", "axis": "1",
}
#: Units of the numeric meta values (``scan.attrs``), stored as ``<key>_units``.
META_UNITS = {"energy": "keV", "distance": "m", "psize": "m", "center": "px", "shape": "px",
              "num_frames": "1", "version": "1"}
#: The attribute that lists the attributes stored as JSON text.
JSON_ATTRS = "json_attrs"
#: h * c in keV * m: wavelength (m) = HC_KEV_M / energy (keV).
HC_KEV_M = 1.239841984332e-9


def wavelength_m(energy_kev: float) -> float:
    """Photon wavelength in metres for ``energy_kev`` (keV)."""
    return HC_KEV_M / float(energy_kev)


def annotate(scan: xr.Dataset) -> xr.Dataset:
    """Return ``scan`` with its coordinates (``frame``, ``y``, ``x``, ``qy``/``qx``) and ``units`` set."""
    n, h, w = scan["data"].shape
    coords: dict[str, Any] = {"y": np.arange(h, dtype=np.int64), "x": np.arange(w, dtype=np.int64)}
    if "indices" in scan and scan["indices"].dims == ("frame",):
        coords["frame"] = np.asarray(scan["indices"].values, dtype=np.int64)
    out = scan.assign_coords(coords)
    q = _reciprocal(out.attrs, (h, w))
    if q is None:
        out = out.drop_vars([c for c in ("qy", "qx") if c in out.coords])
    else:
        out = out.assign_coords(qy=("y", q[0]), qx=("x", q[1]))
    for name, var in out.variables.items():
        if name in UNITS:
            var.attrs["units"] = UNITS[name]
    for key, unit in META_UNITS.items():
        out.attrs[f"{key}_units"] = unit
    return out


def _reciprocal(attrs: Mapping[str, Any], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(qy, qx) in 1/m per pixel row/column, or ``None`` when the geometry is not all known."""
    center, psize = attrs.get("center"), attrs.get("psize")
    energy, distance = attrs.get("energy"), attrs.get("distance")
    if None in (center, psize, energy, distance) or attrs.get("propagation", "farfield") != "farfield":
        return None
    scale = np.asarray(psize, dtype=np.float64) / (wavelength_m(energy) * float(distance))
    c = np.asarray(center, dtype=np.float64)
    return ((np.arange(shape[0]) - c[0]) * scale[0], (np.arange(shape[1]) - c[1]) * scale[1])


def info_of(scan: xr.Dataset) -> dict[str, Any]:
    """``scan.attrs["info"]`` as a dict: the parameters that produced the Scan, ``{}`` when absent.

    Also for a Scan read back from netCDF or Zarr, where ``info`` is stored as JSON text.
    """
    info = scan.attrs.get("info")
    if isinstance(info, str):
        info = json.loads(info) if info else {}
    return dict(info or {})


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` storable in netCDF and Zarr: mappings as JSON text (named in ``json_attrs``), no ``None``.

    Raises
    ------
    TypeError
        A value that is neither a number, a string, a sequence of them nor a mapping of JSON values.
    """
    out: dict[str, Any] = {}
    as_json = []
    for key, value in attrs.items():
        if value is None or key == JSON_ATTRS:
            continue
        if isinstance(value, Mapping):
            out[key] = json.dumps(value, default=_json_default, sort_keys=True)
            as_json.append(key)
        elif isinstance(value, (bool, np.bool_)):
            out[key] = int(value)
        else:
            out[key] = value
    if as_json:
        out[JSON_ATTRS] = " ".join(as_json)
    return out


def is_encoded(attrs: Mapping[str, Any]) -> bool:
    """Whether ``attrs`` come from :func:`encode_attrs` (a Scan read back from netCDF or Zarr)."""
    return JSON_ATTRS in attrs


def decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The Scan attributes of :func:`encode_attrs`' output: JSON parsed, pairs as tuples, absent meta ``None``."""
    out = {k: v for k, v in attrs.items() if k != JSON_ATTRS}
    for key in str(attrs.get(JSON_ATTRS, "")).split():
        out[key] = json.loads(out[key])
    for key in ("psize", "center", "shape"):
        if out.get(key) is not None:
            values = np.ravel(out[key]).tolist()
            out[key] = tuple(int(v) for v in values) if key == "shape" else tuple(float(v) for v in values)
    for key in ("energy", "distance", "center", "label", "psize"):
        out.setdefault(key, None)
    for key in ("energy", "distance", "version"):
        if out.get(key) is not None:
            out[key] = float(out[key])
    if "num_frames" in out:
        out["num_frames"] = int(out["num_frames"])
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not storable as JSON")


def encoded(scan: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``scan`` whose attributes :func:`encode_attrs` made storable (frames stay lazy)."""
    out = scan.copy(deep=False)
    out.attrs = encode_attrs(scan.attrs)
    return out


@xr.register_dataset_accessor("ptydask")
class ScanAccessor:
    """``scan.ptydask``: file formats of xarray for a Scan, whose ``info`` is a nested mapping.

    ``scan.ptydask.to_netcdf(path)`` and ``scan.ptydask.to_zarr(store)`` take
    xarray's arguments; ``xr.open_dataset(path)`` (or ``xr.open_zarr``) reads the
    file back, and :func:`ptydask.validate_scan` turns that into the Scan again.
    """

    def __init__(self, scan: xr.Dataset) -> None:
        self._scan = scan

    def encoded(self) -> xr.Dataset:
        """The Scan with netCDF/Zarr-safe attributes (see :func:`encode_attrs`)."""
        return encoded(self._scan)

    def to_netcdf(self, *args: Any, **kwargs: Any) -> Any:
        """``xarray.Dataset.to_netcdf`` of :meth:`encoded`."""
        return self.encoded().to_netcdf(*args, **kwargs)

    def to_zarr(self, *args: Any, **kwargs: Any) -> Any:
        """``xarray.Dataset.to_zarr`` of :meth:`encoded`."""
        return self.encoded().to_zarr(*args, **kwargs)
