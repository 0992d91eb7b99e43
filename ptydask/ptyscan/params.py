"""``scan.data`` parameters of a PtyScan: defaults, ptypy-style ``Defaults:`` docstrings, validation."""

from __future__ import annotations

import ast
import copy
import difflib
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import ParameterError
from ..packages import AttrDict
from ..params.kinds import Invalid, show
from ..params.registry import defaults, prepare_only, vocabulary

#: ``prepare`` keywords a PtyScan passes on besides the ``scan.data`` parameters (from the registry).
PREPARE_OPTIONS = prepare_only()

WAIT = "msg1"
EOS = "msgEOS"



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


#: ptypy's ``scan.data`` parameters of ``PtyScan`` and their defaults (spec §1), plus ptydask's
#: ``overwrite``, ``rebin_mode`` and ``load_block``: the registry's ``ptyscan`` vocabulary.
PTYSCAN_DEFAULTS: dict[str, Any] = defaults("ptyscan")


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_params(p: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    """Validate ``scan.data`` parameters up front; raise :class:`ParameterError` naming the key.

    Unknown keys are refused (with the nearest known one), except an empty group (ptypy trees often
    carry ``intensities = Param()``, which sets nothing); each parameter of the registry's ``ptyscan``
    vocabulary is checked by its registry kind; keys a subclass declares are its own.
    """
    unknown = sorted(k for k in set(p) - set(known) if not (isinstance(p[k], Mapping) and not p[k]))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(known), n=1)
        raise ParameterError(f"{key}: unknown parameter" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + "; subclasses declare their own in a 'Defaults:' docstring section or DEFAULT")
    for entry in vocabulary("ptyscan"):
        value = p[entry.path]
        if entry.path == "psize" and np.size(value) == 1 and value is not None:
            value = np.ravel(value)[0]  # one number given as a 1-element sequence
        try:
            entry.check(value, "ptyscan")
        except Invalid:
            raise ParameterError(f"{entry.path}: expected {entry.describe('ptyscan')}, got {show(value)}") from None
    if p["save"] is not None and not p["dfile"]:
        raise ParameterError("dfile: required when save is set (path of the .ptyd to write)")
