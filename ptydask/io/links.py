"""The link policy: every HDF5 object read, and every file found by listing a folder, must lie in the allowed folder.

The allowed folder is the folder of the file the user named (the ``root`` of a
:class:`LinkPolicy`). What is checked, for every object a source or the
``.ptyd`` reader reads (frames, mask, positions, geometry, meta values):

* external links met on the way to the object (also behind soft links), before
  they are followed: the target file, relative names taken from the folder of
  the file holding the link (as HDF5 does) and, where HDF5 would fall back to
  it, from the working directory;
* the file that actually holds the object once reached (so file-system
  symlinks and HDF5's own search paths resolve to their real target);
* virtual-dataset source files and external raw-storage files of a dataset.

A target outside the allowed folder (after resolving symlinks) is refused with
one line naming the holder, the route and the target, unless links are
allowed (``allow_external_links=True``, :func:`external_links`). The file the
user named is accepted as named, even when it is itself a symlink.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator

import h5py

from ..errors import PtydaskError, SourceError
from .heap import heap_problem

#: Whether targets may leave the allowed folder (set around a whole open by :func:`external_links`).
ALLOW_EXTERNAL: ContextVar[bool] = ContextVar("ptydask_allow_external_links", default=False)

SOURCE_HINT = ("pass allow_external_links=True to open_frames, or set allow_external_links: true in a recipe, "
               "if you trust this file")
MAX_LISTED = 25
#: Soft links followed within one lookup before it is called a loop.
MAX_HOPS = 32


@contextmanager
def external_links(allow: bool) -> Iterator[None]:
    """Within the block, targets outside the allowed folder are followed (``True``) or refused (``False``)."""
    token = ALLOW_EXTERNAL.set(bool(allow))
    try:
        yield
    finally:
        ALLOW_EXTERNAL.reset(token)


def members(group: h5py.Group) -> str:
    """The names in ``group``, shortened for an error message."""
    names = sorted(group.keys())
    shown = ", ".join(names[:MAX_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")
    return shown or "(nothing)"


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def candidates(holder: str, target: str) -> list[str]:
    """The files HDF5 may open for a link (or VDS source) ``target`` stored in the file ``holder``."""
    if target in ("", "."):
        return [holder]
    if os.path.isabs(target):
        return [target]
    found = [os.path.join(os.path.dirname(os.path.abspath(holder)), target)]
    for var in ("HDF5_EXT_PREFIX", "HDF5_VDS_PREFIX"):  # HDF5 tries these before the holder's folder
        prefix = os.environ.get(var)
        if prefix:
            found[:0] = [os.path.join(p, target) for p in prefix.split(os.pathsep) if p]
    found.append(os.path.abspath(target))  # HDF5's last resort: the working directory
    return found


@dataclass(frozen=True)
class LinkPolicy:
    """Where the objects read from the file ``root`` may live (see the module docstring).

    Parameters
    ----------
    root : the file the user named.
    allow : follow targets outside the folder; ``None`` takes the :func:`external_links` setting.
    error : the :class:`~ptydask.errors.PtydaskError` class raised.
    label : how messages name the allowed folder.
    hint : how messages tell the user to allow it.
    base : the allowed folder, when not the root's (a folder the user named, whose files were listed).
    """

    root: str
    allow: bool | None = None
    error: type = SourceError
    label: str = "the folder"
    hint: str = SOURCE_HINT
    base: str | None = None

    @property
    def folder(self) -> str:
        """The allowed folder (symlinks resolved)."""
        return _real(self.base if self.base is not None else os.path.dirname(os.path.abspath(self.root)))

    @property
    def allowed(self) -> bool:
        return ALLOW_EXTERNAL.get() if self.allow is None else bool(self.allow)

    def inside(self, path: str) -> bool:
        """True when ``path`` (symlinks resolved) is the root file or lies in the allowed folder."""
        real = _real(path)
        if real == _real(self.root):
            return True
        return os.path.commonpath([self.folder, real]) == self.folder

    def refuse(self, what: str, target: str) -> None:
        """Raise for ``what`` (ending in a verb: "points to") leading to ``target`` outside the folder, unless allowed."""
        if self.allowed:
            return
        raise self.error(f"{self.root}: {what} {target!r}, outside {self.label} {self.folder}; "
                         f"refused ({self.hint})")

    def check_file(self, path: str, what: str) -> None:
        """Refuse the file ``path`` (found by listing a folder, or a link target) outside the folder."""
        if not self.inside(path):
            self.refuse(f"{what} points to", os.path.realpath(path) if os.path.islink(path) else path)

    def check_target(self, holder: str, target: str, what: str) -> None:
        """Refuse a link or VDS source ``target`` stored in ``holder`` that HDF5 could resolve outside the folder."""
        found = candidates(holder, target)
        first = next((c for c in found if os.path.exists(c)), found[0])
        for cand in found:
            if (cand is first or os.path.exists(cand)) and not self.inside(cand):
                self.refuse(what, target)

    def check_object(self, obj: Any, what: str) -> None:
        """Refuse ``obj`` when the file holding it, its virtual sources or its external storage lie outside;
        refuse a file whose heap would hang HDF5 (:func:`~ptydask.io.heap.heap_problem`)."""
        holder = obj.file.filename
        if not self.inside(holder):
            self.refuse(f"{what} is stored in", holder)
        problem = heap_problem(obj.file)
        if problem:
            raise self.error(problem)
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.is_virtual:
            for name in sorted({v.file_name for v in obj.virtual_sources()}):
                self.check_target(holder, name, f"{what}: virtual dataset source file is")
        for name, _offset, _size in obj.external or ():
            self.check_target(holder, os.fsdecode(name), f"{what}: external raw storage is in")

    def get(self, f: h5py.File, key: str, what: str = "key") -> Any:
        """``f[key]``, every link on the way checked before it is followed and the object after
        (:meth:`check_object`); errors name the file, the key and what exists nearby."""
        return self.locate(f, key, what)[0]

    def locate(self, f: h5py.File, key: str, what: str = "key") -> tuple[Any, str, str]:
        """``(object, file, path)``: :meth:`get`, and the file and path inside it where the object really is
        (after soft and external links), for reads that reopen it by name."""
        node, where = self._walk(f, key, key, what, 0)
        if os.path.realpath(node.file.filename) != os.path.realpath(where[0]):
            raise self.error(f"{self.root}: {what} {key!r}: HDF5 resolves its links to {node.file.filename}, "
                             f"not to {where[0]}; refused")
        self.check_object(node, f"{what} {key!r}")
        return node, os.path.abspath(where[0]), where[1].lstrip("/")

    def _walk(self, start: Any, key: str, asked: str, what: str, hops: int) -> tuple[Any, tuple[str, str]]:
        path = self.root
        node: Any = start
        where = (start.file.filename, start.name)
        walked = ""
        for part in [p for p in key.strip("/").split("/") if p]:
            here = f"{walked}/{part}".lstrip("/")
            if not isinstance(node, h5py.Group):
                raise self.error(f"{path}: {what} {asked!r} not found: '{walked or '/'}' is a dataset, not a group")
            link = node.get(part, getlink=True)
            if link is None:
                raise self.error(f"{path}: {what} {asked!r} not found; '{walked or '/'}' holds: {members(node)}")
            if hops >= MAX_HOPS:
                raise self.error(f"{path}: {what} {asked!r}: links loop at '{here}'")
            if isinstance(link, h5py.SoftLink):
                base = node.file if link.path.startswith("/") else node
                try:
                    node, where = self._walk(base, link.path, asked, what, hops + 1)
                except PtydaskError as exc:
                    if "not found" not in str(exc):
                        raise
                    raise self.error(f"{path}: {what} {asked!r}: soft link '{here}' -> {link.path} is dangling") from None
            elif isinstance(link, h5py.ExternalLink):
                target = self._check_external(node.file.filename, link, asked, what, here, hops)
                node = self._child(node, part, link, asked, what, here)
                where = target or (node.file.filename, node.name)
            else:
                node = self._child(node, part, link, asked, what, here)
                where = (where[0], f"{where[1].rstrip('/')}/{part}")
            walked = here
        return node, where

    def _check_external(self, holder: str, link: h5py.ExternalLink, asked: str, what: str, here: str,
                        hops: int) -> tuple[str, str] | None:
        """Check the link's target file, then the links on its path inside that file (a chain of files);
        ``(file, path)`` where the link leads (``None`` when its file is missing or unreadable)."""
        self.check_target(holder, link.filename, f"{what} {asked!r}: external link '{here}' (to {link.path}) points to")
        target = next((c for c in candidates(holder, link.filename) if os.path.isfile(c)), None)
        if target is None:
            return None  # missing: reported when followed
        if not link.path.strip("/"):
            return target, "/"  # the target's root: no links on the way inside it
        try:
            ext = h5py.File(target, "r")
        except OSError:
            return None  # unreadable: reported when followed
        with ext:
            return self._walk(ext, link.path, asked, what, hops + 1)[1]

    def _child(self, node: h5py.Group, part: str, link: Any, asked: str, what: str, here: str) -> Any:
        try:
            return node[part]
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            if isinstance(link, h5py.ExternalLink):
                target = candidates(node.file.filename, link.filename)[0]
                state = "missing" if not os.path.exists(target) else f"unreadable: {exc}"
                raise self.error(f"{self.root}: {what} {asked!r}: external link '{here}' points to "
                                 f"{link.filename}:{link.path} ({state})") from None
            raise self.error(f"{self.root}: {what} {asked!r} cannot be opened ({exc})") from None
