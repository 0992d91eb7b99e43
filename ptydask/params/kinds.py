"""Value kinds of ``scan.data`` parameters: each checks (and normalises) one value.

A kind is called with a value (from a recipe, a ``PtyScan``'s parameters or a
``prepare`` keyword) and returns the value to use, or raises :class:`Invalid`
with a phrase describing what is allowed; each consumer turns that into its
own error (:class:`~ptydask.errors.RecipeError` naming the recipe file and key
path, :class:`~ptydask.errors.ParameterError` naming the parameter). Numbers
may be Python or numpy scalars, sequences lists, tuples or numpy arrays.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class Invalid(Exception):
    """A value does not fit its kind; ``str(exc)`` says what is allowed."""


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def _is_seq(v: Any) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def _plain(v: Any) -> Any:
    """numpy scalars as Python ones."""
    return v.item() if isinstance(v, np.generic) else v


@dataclass(frozen=True)
class Kind:
    """Base kind: ``describe`` is the allowed values in words (used in errors and docs)."""

    describe: str = field(default="", kw_only=True)
    DESCRIBE = "any value"

    def __post_init__(self) -> None:
        if not self.describe:
            object.__setattr__(self, "describe", self._describe())

    def _describe(self) -> str:
        return self.DESCRIBE

    def check(self, value: Any) -> Any:  # pragma: no cover - overridden
        return value

    def resolve(self, value: Any, base: Any) -> Any:
        """The checked ``value`` with relative file paths made absolute against folder ``base``."""
        return value

    def __call__(self, value: Any) -> Any:
        return self.check(value)


@dataclass(frozen=True)
class Text(Kind):
    DESCRIBE = "a string"

    def check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise Invalid(self.describe)
        return value


@dataclass(frozen=True)
class FilePath(Text):
    """A file path; relative paths are resolved by the loader."""

    DESCRIBE = "a file path (relative to the recipe's folder)"

    def check(self, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else super().check(value)

    def resolve(self, value: Any, base: Any) -> Any:
        return value if value is None else str((Path(base) / os.path.expanduser(value)).resolve())


@dataclass(frozen=True)
class Flag(Kind):
    DESCRIBE = "true or false"

    def check(self, value: Any) -> Any:
        if not isinstance(value, (bool, np.bool_)):
            raise Invalid(self.describe)
        return bool(value)


@dataclass(frozen=True)
class Integer(Kind):
    lo: int | None = None
    hi: int | None = None

    def _describe(self) -> str:
        rng = (f" {self.lo}..{self.hi}" if self.hi is not None else f" >= {self.lo}") if self.lo is not None else ""
        return f"an integer{rng}"

    def check(self, value: Any) -> Any:
        if not _is_int(value) or (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise Invalid(self.describe)
        return int(value)


@dataclass(frozen=True)
class Number(Kind):
    """A finite real number, ``>= lo`` (or ``> lo`` when ``strict``)."""

    lo: float | None = None
    strict: bool = False

    def _describe(self) -> str:
        rng = "" if self.lo is None else f" {'>' if self.strict else '>='} {self.lo:g}"
        return f"a number{rng}"

    def check(self, value: Any) -> Any:
        if not _is_number(value) or not self._ok(value):
            raise Invalid(self.describe)
        return float(value)

    def _ok(self, v: float) -> bool:
        return self.lo is None or (v > self.lo if self.strict else v >= self.lo)


@dataclass(frozen=True)
class NumberOrPair(Number):
    """One number or a (y, x) pair of numbers (e.g. a pixel size)."""

    def _describe(self) -> str:
        return super()._describe().replace("a number", "a number or a [y, x] pair of numbers")

    def check(self, value: Any) -> Any:
        if _is_seq(value):
            if len(value) != 2 or not all(_is_number(v) and self._ok(v) for v in value):
                raise Invalid(self.describe)
            return [float(v) for v in value]
        return super().check(value)


@dataclass(frozen=True)
class Choice(Kind):
    values: tuple = ()

    def _describe(self) -> str:
        return "one of " + ", ".join(_show(v) for v in self.values)

    def check(self, value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)) or _is_seq(value) or value not in self.values:
            raise Invalid(self.describe)
        return value


@dataclass(frozen=True)
class Orientation(Kind):
    DESCRIBE = "an integer 0..7 (4 transpose + 2 flip up-down + 1 flip left-right) or [transpose, flipud, fliplr] booleans"

    def check(self, value: Any) -> Any:
        if _is_int(value) and 0 <= value <= 7:
            return int(value)
        if _is_seq(value) and len(value) == 3 and all(isinstance(_plain(v), (bool, int)) and v in (0, 1)
                                                     for v in value):
            return [bool(v) for v in value]  # ptypy reads the three flags by truth value: 0/1 work too
        raise Invalid(self.describe)


@dataclass(frozen=True)
class Center(Kind):
    """'fftshift', 'geometric' or (row, col) > 0 (the last two entries of a longer sequence)."""

    NAMES = ("fftshift", "geometric")
    DESCRIBE = "'fftshift', 'geometric', a [row, col] pair of numbers > 0 (raw-frame pixels) or null (automatic)"

    def check(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.NAMES:
            return value
        if _is_seq(value) and len(value) >= 2 and all(_is_number(v) and v > 0 for v in value[-2:]):
            return [float(v) for v in value[-2:]]
        raise Invalid(self.describe)


@dataclass(frozen=True)
class Shape(Kind):
    """A square or (rows, cols) ROI of at least ``lo`` pixels a side."""

    lo: int = 2

    def _describe(self) -> str:
        return (f"an integer >= {self.lo}, a [rows, cols] pair of integers >= {self.lo}, "
                "or null (the whole frame)")

    def check(self, value: Any) -> Any:
        if _is_int(value) and value >= self.lo:
            return int(value)
        if _is_seq(value) and len(value) == 2 and all(_is_int(v) and v >= self.lo for v in value):
            return [int(v) for v in value]
        raise Invalid(self.describe)


@dataclass(frozen=True)
class Bounds(Kind):
    DESCRIBE = "an integer >= 0 (lower bound) or a [min, max] pair of integers"

    def check(self, value: Any) -> Any:
        if _is_int(value) and value >= 0:
            return int(value)
        if _is_seq(value) and len(value) == 2 and all(_is_int(v) and v >= 0 for v in value):
            if value[0] >= value[1]:
                raise Invalid(self.describe + " with min < max")
            return [int(v) for v in value]
        raise Invalid(self.describe)


@dataclass(frozen=True)
class IntList(Kind):
    length: int | None = None
    DESCRIBE = "a list of integers >= 0"

    def check(self, value: Any) -> Any:
        if not _is_seq(value) or not all(_is_int(v) and v >= 0 for v in value):
            raise Invalid(self.describe)
        if self.length is not None and len(value) != self.length:
            raise Invalid(self.describe)
        return [int(v) for v in value]


@dataclass(frozen=True)
class PositionList(Kind):
    DESCRIBE = "a list of [y, x] pairs of numbers (metres), at least one"

    def check(self, value: Any) -> Any:
        if (
            not _is_seq(value)
            or not len(value)
            or not all(_is_seq(p) and len(p) == 2 and all(_is_number(v) for v in p) for p in value)
        ):
            raise Invalid(self.describe)
        return [[float(v) for v in p] for p in value]


@dataclass(frozen=True)
class NumberOrRef(Number):
    """A finite number (``> lo`` when ``strict``) or a ``{file, key}`` reference to an array in a file."""

    def _describe(self) -> str:
        return super()._describe() + " or {file, key} of a per-pixel map"

    def check(self, value: Any) -> Any:
        if isinstance(value, dict):
            if not set(value) <= {"file", "key"} or not isinstance(value.get("file"), (str, os.PathLike)) \
                    or not isinstance(value.get("key", ""), (str, type(None))):
                raise Invalid(self.describe)
            return {k: (os.fspath(v) if k == "file" else v) for k, v in value.items()}
        return super().check(value)

    def resolve(self, value: Any, base: Any) -> Any:
        if isinstance(value, dict):
            return {**value, "file": FilePath().resolve(value["file"], base)}
        return value


@dataclass(frozen=True)
class ArrayLike(Kind):
    """An array given through the Python API (checked against the frames where it is used)."""

    DESCRIBE = "an array (false: none)"

    def check(self, value: Any) -> Any:
        return value


def _show(v: Any) -> str:
    return "null" if v is None else repr(v)


def show(value: Any) -> str:
    """A value as a recipe author would write it (JSON-like), shortened if long."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        items = [show(v) for v in value[:6]]
        more = ", ..." if len(value) > 6 else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in list(value.items())[:6]) + "}"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def describe_all(kind: Kind, nullable: bool) -> str:
    """The allowed values of a parameter in words (``null`` appended when allowed)."""
    text = kind.describe
    if nullable and "null" not in text:
        text += " or null"
    return text
