"""ptypy-style ``Defaults:`` docstring sections rendered from ptydask's parameter registry.

ptypy's ``@defaults_tree.parse_doc`` (applied by ``ptypy.experiment.register``)
reads the ``Defaults:`` section of a class and of all its bases; each entry
needs ``default``, ``type`` and ``help``. :func:`defaults_section` writes that
text for the ``scan.data`` parameters of :mod:`ptydask.params.registry` (its recipe
vocabulary, with ptypy's types from :func:`~ptydask.params.registry.ptypy_type`), so a
ptypy-decorated subclass of :class:`ptydask.ptyscan.PtyScan` (or of
:class:`ptydask.ptyscan.Hdf5Loader`) gets the same defaults in ptypy's tree as
in ptydask. :func:`parse_defaults` (``params``) reads the same text back.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from ..params.registry import GROUPS, ptypy_type
from ..params.registry import RECIPE_PARAMS as PARAMS


def _default_text(value: Any) -> str:
    if value is None:
        return "None"
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def entry(path: str, default: Any, types: str, help_text: str) -> str:
    """One ``[path]`` entry of a ``Defaults:`` section."""
    return f"[{path}]\ndefault = {_default_text(default)}\ntype = {types}\nhelp = {help_text.replace(chr(10), ' ')}\n"


def defaults_section(name: str, keys: Optional[Iterable[str]] = None,
                     extra: Optional[Mapping[str, tuple[Any, str, str]]] = None) -> str:
    """The ``Defaults:`` section for class ``name``.

    ``keys``: top-level parameters of the table to include (default: all,
    with their groups); defaults are the table's for ``name`` (``name``
    itself defaults to ``name``); ``extra``: ``{path: (default, types, help)}``
    for parameters outside the table.
    """
    wanted = None if keys is None else set(keys)
    lines = ["Defaults:", ""]
    done_groups: set[str] = set()
    for p in PARAMS:
        top = p.path.split(".")[0]
        if wanted is not None and top not in wanted:
            continue
        parts = p.path.split(".")
        for i in range(1, len(parts)):
            group = ".".join(parts[:i])
            if group in GROUPS and group not in done_groups:
                done_groups.add(group)
                lines.append(f"[{group}]\ndefault =\ntype = Param\nhelp = {GROUPS[group]}\n")
        default = name if p.path == "name" else p.default_for(name)
        lines.append(entry(p.path, default, ptypy_type(p, p.nullable or default is None), p.doc))
    for path, (default, types, help_text) in (extra or {}).items():
        lines.append(entry(path, default, types, help_text))
    return "\n".join(lines)


def with_defaults(doc: Optional[str], section: str) -> str:
    """``doc`` with ``section`` appended, indented like ptypy docstrings."""
    body = "\n".join(("    " + line) if line else "" for line in section.splitlines())
    return f"{(doc or '').rstrip()}\n\n{body}\n"


__all__ = ["defaults_section", "with_defaults", "entry"]
