"""The ptydask exception hierarchy.

Every error raised for bad input is a :class:`PtydaskError`; its message names
the file, key or parameter at fault, what was found and what was expected.
Each subclass also derives from the builtin exception a Python user would
expect (``ValueError``, ``OSError``, ...), so ``except ValueError`` keeps
working.
"""

from __future__ import annotations


class PtydaskError(Exception):
    """Base class of all errors ptydask raises on purpose."""


class ParameterError(PtydaskError, ValueError):
    """A function argument or recipe value is invalid (names the parameter)."""


class ScanError(PtydaskError, ValueError):
    """A Scan is inconsistent: dimensions, counts, positions, meta."""


class GeometryError(ScanError):
    """Energy, distance, pixel size or centre are missing or impossible."""


class FormatError(PtydaskError, OSError):
    """A file is not what it claims to be (not a .ptyd, truncated, unsafe, ...)."""


class SourceError(PtydaskError, OSError):
    """A raw source cannot be read: missing file or key, unknown format, missing codec."""


class RecipeError(ParameterError):
    """A recipe (parameter tree) is invalid: unknown key, wrong type or value."""


class OutputError(PtydaskError, OSError):
    """The output cannot be written (unwritable folder, disk full, ...)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and ``overwrite`` was not requested."""


__all__ = [
    "PtydaskError",
    "ParameterError",
    "ScanError",
    "GeometryError",
    "FormatError",
    "SourceError",
    "RecipeError",
    "OutputError",
    "OutputExistsError",
]
