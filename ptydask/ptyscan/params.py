"""``scan.data`` parameters of a PtyScan: defaults, ptypy-style ``Defaults:`` docstrings, validation."""

from __future__ import annotations

import ast
import copy
import difflib
import math
import os
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import ParameterError
from ..packages import AttrDict
from ..steps.geometry import Orientation

#: ``prepare`` keywords a PtyScan passes on besides the ``scan.data`` parameters.
PREPARE_OPTIONS = ("padding", "hot_pixels", "dead_pixels", "saturation", "mask", "dark", "flat", "normalisation")

WAIT = "msg1"
EOS = "msgEOS"
SAVE_MODES = (None, "append", "link", "merge")
LOAD_PARALLEL = ("data", "common", "all", None, "none")



# --------------------------------------------------------------------------- parameters


class Param(AttrDict):
    """Nested parameter tree with attribute access (the part of ptypy's ``Param`` subclasses use)."""

    def copy(self, depth: int = 0) -> "Param":  # noqa: ARG002 - ptypy's signature
        return Param(copy.deepcopy(dict(self)))

    def update(self, other: Any = None, in_place_depth: int = 0, Convert: bool = False,  # noqa: N803 - ptypy's
               **kw: Any) -> None:  # type: ignore[override]
        """Deep update (nested mappings merged); ``in_place_depth``/``Convert`` accepted as ptypy's, no effect."""
        for src in (other or {}), kw:
            for key, value in dict(src).items():
                if isinstance(value, Mapping) and isinstance(self.get(key), Mapping):
                    inner = Param(self[key])
                    inner.update(value)
                    value = inner
                elif isinstance(value, Mapping):
                    inner = Param()
                    inner.update(value)  # nested mappings become Params too
                    value = inner
                dict.__setitem__(self, key, value)


def parse_defaults(doc: Optional[str]) -> dict[str, Any]:
    """Defaults from a ptypy-style docstring section (``Defaults:``, ``[key]``, ``default = value``).

    Dotted keys (``[intensities.file]``) give nested dicts; an entry of
    ``type = Param`` with an empty default is an empty dict. Values are Python
    literals when they parse as such (``None``, numbers, tuples), else strings.
    """
    if not doc or "Defaults:" not in doc:
        return {}
    entries: dict[str, dict[str, str]] = {}
    key = None
    for line in doc.split("Defaults:", 1)[1].splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            key = s[1:-1].strip()
            entries[key] = {}
        elif key and "=" in s:
            name, value = (part.strip() for part in s.split("=", 1))
            if name in ("default", "type"):
                entries[key][name] = value
    out: dict[str, Any] = {}
    for key, fields in entries.items():
        raw = fields.get("default", "")
        if not raw and "param" in fields.get("type", "").lower():
            value: Any = {}
        else:
            try:
                value = ast.literal_eval(raw) if raw else None
            except (ValueError, SyntaxError):
                value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if isinstance(node.get(leaf), dict) and value is None:
            continue
        node[leaf] = value
    return out


#: ptypy's ``scan.data`` parameters of ``PtyScan`` and their defaults (spec §1),
#: plus ptydask's ``overwrite``, ``rebin_mode`` and ``load_block``.
PTYSCAN_DEFAULTS: dict[str, Any] = {
    "name": "PtyScan", "dfile": None, "chunk_format": ".chunk%02d", "save": None, "auto_center": None,
    "load_parallel": "data", "rebin": None, "orientation": None, "min_frames": 1, "positions_theory": None,
    "num_frames": None, "label": None, "experimentID": None, "version": 0.1, "shape": 256,
    "center": "fftshift", "psize": 172e-6, "distance": 7.19, "energy": 7.2, "add_poisson_noise": False,
    "overwrite": False, "rebin_mode": "mean", "load_block": None,
}


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _positive(name: str, v: Any, pair: bool = False) -> None:
    vals = list(np.ravel(np.asarray(v, dtype=object))) if pair else [v]
    if pair and len(vals) not in (1, 2):
        raise ParameterError(f"{name}: expected one number or a (y, x) pair in metres, got {v!r}")
    for x in vals:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)) \
                or not math.isfinite(x) or x <= 0:
            raise ParameterError(f"{name}: expected a finite number > 0, got {v!r}")


def check_params(p: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    """Validate ``scan.data`` parameters up front; raise :class:`ParameterError` naming the key."""
    # an unknown but empty group (ptypy trees often carry ``intensities = Param()``) sets nothing: accepted
    unknown = sorted(k for k in set(p) - set(known) if not (isinstance(p[k], Mapping) and not p[k]))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(known), n=1)
        raise ParameterError(f"{key}: unknown parameter" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + "; subclasses declare their own in a 'Defaults:' docstring section or DEFAULT")
    if p["save"] not in SAVE_MODES:
        raise ParameterError(f"save: expected None, 'append', 'link' or 'merge', got {p['save']!r}")
    if p["save"] is not None and not p["dfile"]:
        raise ParameterError("dfile: required when save is set (path of the .ptyd to write)")
    if p["dfile"] is not None and not isinstance(p["dfile"], (str, os.PathLike)):
        raise ParameterError(f"dfile: expected a path, got {p['dfile']!r}")
    if not isinstance(p["chunk_format"], str):
        raise ParameterError(f"chunk_format: expected a printf pattern such as '.chunk%02d', got {p['chunk_format']!r}")
    if p["auto_center"] not in (None, True, False):
        raise ParameterError(f"auto_center: expected None, True or False, got {p['auto_center']!r}")
    if p["load_parallel"] not in LOAD_PARALLEL:
        raise ParameterError(f"load_parallel: expected 'data', 'common', 'all' or None, got {p['load_parallel']!r}")
    if p["rebin"] is not None and (not is_int(p["rebin"]) or not 1 <= p["rebin"] <= 32):
        raise ParameterError(f"rebin: expected None or an integer 1..32, got {p['rebin']!r}")
    Orientation.parse(p["orientation"])
    if not is_int(p["min_frames"]) or p["min_frames"] < 1:
        raise ParameterError(f"min_frames: expected an integer >= 1, got {p['min_frames']!r}")
    if p["num_frames"] is not None and (not is_int(p["num_frames"]) or p["num_frames"] < 1):
        raise ParameterError(f"num_frames: expected None or an integer >= 1, got {p['num_frames']!r}")
    if p["positions_theory"] is not None:
        pt = np.asarray(p["positions_theory"])
        if pt.ndim != 2 or pt.shape[1] != 2 or pt.dtype.kind not in "iuf" or not np.isfinite(pt).all():
            raise ParameterError(f"positions_theory: expected an (N, 2) array of finite (y, x) metres, got shape {pt.shape}")
    if p["label"] is not None and not isinstance(p["label"], str):
        raise ParameterError(f"label: expected a string or None, got {p['label']!r}")
    sh = p["shape"]
    if not (sh is None or (is_int(sh) and sh >= 1) or (isinstance(sh, (tuple, list, np.ndarray)) and len(sh) == 2
                                                       and all(is_int(v) and v >= 1 for v in sh))):
        raise ParameterError(f"shape: expected None, an integer >= 1 or a (rows, cols) pair, got {sh!r}")
    c = p["center"]
    if isinstance(c, str):
        if c not in ("fftshift", "geometric"):
            raise ParameterError(f"center: expected 'fftshift', 'geometric', (row, col) or None, got {c!r}"
                                 + (" ('fft' = (0, 0) is never inside the frame)" if c == "fft" else ""))
    elif c is not None:
        vals = list(c) if isinstance(c, (tuple, list, np.ndarray)) else []
        if len(vals) < 2 or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                    and math.isfinite(v) and v > 0 for v in vals[-2:]):
            raise ParameterError(f"center: expected 'fftshift', 'geometric', a (row, col) pair > 0 in pixels or None, got {c!r}")
    for key in ("distance", "energy"):
        if p[key] is not None:
            _positive(key, p[key])
    if p["psize"] is not None:
        _positive("psize", p["psize"], pair=True)
    if p["overwrite"] not in (True, False):
        raise ParameterError(f"overwrite: expected True or False, got {p['overwrite']!r}")
    if p["rebin_mode"] not in ("mean", "sum"):
        raise ParameterError(f"rebin_mode: expected 'mean' or 'sum', got {p['rebin_mode']!r}")
    if p["load_block"] is not None and (not is_int(p["load_block"]) or p["load_block"] < 1):
        raise ParameterError(f"load_block: expected None or an integer >= 1 (frames per load() call), got {p['load_block']!r}")


