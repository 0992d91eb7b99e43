"""The registry as Python signatures: bind keywords, build a signature, document the parameters."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ParameterError
from .kinds import show
from .registry import Param, defaults, vocabulary


def bind(use: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every parameter of vocabulary ``use``: the ``given`` values over the registry's defaults.

    Raises :class:`~ptydask.errors.ParameterError` naming ``where`` (e.g. ``prepare``) and the first
    unknown keyword, with the nearest known one.
    """
    known = defaults(use)
    unknown = sorted(set(given) - set(known))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"{where}: unknown parameter {key!r}{hint}; known: {', '.join(sorted(known))}")
    return {**known, **given}


def signature(use: str, first: Sequence[inspect.Parameter] = (),
              last: Sequence[inspect.Parameter] = ()) -> inspect.Signature:
    """The signature ``(*first, *, <use's parameters with their defaults>, *last)``."""
    middle = [inspect.Parameter(p.path, inspect.Parameter.KEYWORD_ONLY, default=d)
              for p, d in zip(vocabulary(use), defaults(use).values())]
    return inspect.Signature([*first, *middle, *last])


def _entry(p: Param, default: Any, use: str) -> list[str]:
    unit = f", {p.unit}" if p.unit else ""
    return [f"{p.path} : {p.describe(use)}{unit}, default {show(default)}", f"    {p.doc}"]


def parameters_doc(use: str, indent: str = "    ") -> str:
    """A numpydoc ``Parameters`` list of vocabulary ``use`` (one entry per registry parameter)."""
    lines: list[str] = []
    for p, default in zip(vocabulary(use), defaults(use).values()):
        lines += _entry(p, default, use)
    return "\n".join(indent + line for line in lines)


__all__ = ["bind", "signature", "parameters_doc"]
