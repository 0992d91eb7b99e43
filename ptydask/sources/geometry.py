"""Energy (keV), distance (m) and pixel size (m) from explicit values or from file keys.

Precedence: an explicit ``energy``/``distance``/``psize`` wins over
``recorded_energy``/``recorded_distance``/``recorded_psize`` (``{file, key,
multiplier, offset}`` as in ptypy's ``Hdf5Loader``: value × multiplier +
offset), which wins over what the source file itself says (CXI).

Units: when a recorded value has no explicit ``multiplier`` its ``units``
attribute (NeXus) is converted (eV/keV/MeV/J; m/cm/mm/µm/nm); with an explicit
``multiplier`` the stored number is used as is, exactly as ptypy does. A
dataset with several values (a spectro scan) needs ``outer_index`` unless
all values agree.

``electron_data=True`` reads the energy as an electron kinetic energy ``E``
(keV) and returns the photon energy of the same (relativistic) wavelength,
``sqrt(E * (E + 2 m_e c^2))`` with ``m_e c^2`` = 510.99895 keV.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..errors import GeometryError
from . import hdf5
from .base import Quantity
from .refs import check_keys, is_hdf5_path, load_small, ref_file

#: Electron rest energy, keV (CODATA 2018).
ELECTRON_REST_KEV = 510.99895
KEV_PER_JOULE = 1.0 / 1.602176634e-16

ENERGY_UNITS = {"ev": 1e-3, "kev": 1.0, "mev": 1e3, "j": KEV_PER_JOULE, "joule": KEV_PER_JOULE}
LENGTH_UNITS = {
    "m": 1.0, "metre": 1.0, "meter": 1.0, "cm": 1e-2, "mm": 1e-3, "millimeter": 1e-3, "millimetre": 1e-3,
    "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "micron": 1e-6, "micrometer": 1e-6, "micrometre": 1e-6,
    "nm": 1e-9, "nanometer": 1e-9, "nanometre": 1e-9,
}
RECORDED_KEYS = ("file", "key", "multiplier", "offset", "indices")
QUANTITIES = {"energy": ("keV", ENERGY_UNITS), "distance": ("m", LENGTH_UNITS), "psize": ("m", LENGTH_UNITS)}


def electron_to_photon_kev(kinetic_kev: float) -> float:
    """Photon energy (keV) with the wavelength of an electron of kinetic energy ``kinetic_kev``."""
    return math.sqrt(kinetic_kev * (kinetic_kev + 2.0 * ELECTRON_REST_KEV))


def _unit_factor(quantity: str, units: str | None, where: str) -> float:
    if units is None or units.strip() == "":
        return 1.0
    target, table = QUANTITIES[quantity]
    factor = table.get(units.strip().lower())
    if factor is None:
        raise GeometryError(
            f"{where}: units {units!r} cannot be converted to {target} for {quantity}; "
            f"known units: {', '.join(sorted(table))}; or pass 'multiplier' to convert yourself"
        )
    return factor


def _pick(values: np.ndarray, quantity: str, outer_index: int | None, where: str) -> Any:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise GeometryError(f"{where}: {quantity} dataset is empty")
    if quantity == "psize" and values.size == 2:
        return values
    if values.size == 1 or np.all(values == values[0]):
        return float(values[0])
    if outer_index is None:
        raise GeometryError(
            f"{where}: {values.size} different {quantity} values (a spectro scan?); pass outer_index= to pick one"
        )
    if not -values.size <= outer_index < values.size:
        raise GeometryError(f"{where}: outer_index={outer_index} is out of range for {values.size} {quantity} values")
    return float(values[outer_index])


def recorded(quantity: str, spec: Mapping[str, Any], default_file: str | None, outer_index: int | None) -> Any:
    """One value (or a (y, x) pair for psize) from a ``recorded_<quantity>`` reference."""
    name = f"recorded_{quantity}"
    check_keys(name, spec, RECORDED_KEYS)
    path, key = ref_file(name, spec, default_file)
    where = f"{name}: {path}:{key}"
    values = load_small(name, spec, default_file, extra=("multiplier", "offset"))
    value = _pick(values, quantity, outer_index, where)
    if spec.get("multiplier") is None:
        units = hdf5.read_units(path, key) if key and is_hdf5_path(path) else None
        factor = _unit_factor(quantity, units, where)
    else:
        factor = float(spec["multiplier"])
    return value * factor + float(spec.get("offset") or 0.0)


def resolve_geometry(spec: Mapping[str, Any], from_file: Mapping[str, Quantity], default_file: str | None,
                     outer_index: int | None) -> tuple[dict[str, Any], dict[str, str]]:
    """``({energy, distance, psize}, {quantity: where it came from})``; ``None`` when unknown.

    ``from_file``: what the source's files say (:class:`~ptydask.sources.base.Quantity`); an
    electron energy from a file is converted to photon keV once, whatever ``electron_data`` says.
    """
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    converted = False
    for quantity in QUANTITIES:
        ref = spec.get(f"recorded_{quantity}")
        if spec.get(quantity) is not None:
            values[quantity], origin[quantity] = spec[quantity], "explicit"
        elif ref:
            values[quantity] = recorded(quantity, ref, default_file, outer_index)
            origin[quantity] = f"recorded_{quantity}"
        elif from_file.get(quantity) is not None:
            known = from_file[quantity]
            values[quantity], origin[quantity] = known.value, f"source file {known.origin}"
            if known.electron:  # the file gives an electron energy: the photon energy of its wavelength
                values[quantity] = electron_to_photon_kev(float(known.value))
                origin[quantity] += f", electron {float(known.value):g} keV -> photon"
                converted = True
        else:
            values[quantity] = None
    if spec.get("electron_data") and not converted:
        if values["energy"] is None:
            raise GeometryError("electron_data=True needs an electron energy (energy= or recorded_energy=) in keV")
        kinetic = float(values["energy"])
        if not kinetic > 0:
            raise GeometryError(f"electron_data=True: electron energy must be > 0 keV, got {kinetic}")
        values["energy"] = electron_to_photon_kev(kinetic)
        origin["energy"] += f", electron {kinetic} keV -> photon"
    return values, origin
