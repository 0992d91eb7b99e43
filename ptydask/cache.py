"""Where ptydask keeps files it can rebuild: numba's compiled kernels.

Nothing is ever written into the installed package: a cache in
``site-packages/ptydask`` outlives ``pip uninstall`` and turns the folder into a
namespace package that shadows a later (editable) install.

The folder is, in order of precedence:

1. ``$NUMBA_CACHE_DIR`` (numba's own setting), if set;
2. ``$PTYDASK_CACHE_DIR/numba``, if ``PTYDASK_CACHE_DIR`` is set;
3. ``$XDG_CACHE_HOME/ptydask/numba``, if ``XDG_CACHE_HOME`` is set;
4. ``~/Library/Caches/ptydask/numba`` on macOS, ``%LOCALAPPDATA%\\ptydask\\Cache\\numba``
   on Windows, ``~/.cache/ptydask/numba`` elsewhere.

If that folder cannot be created or written, ``<tempdir>/ptydask-<user>/numba``
is used instead (numba would otherwise fall back to the package's own folder).
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["cache_root", "numba_cache_dir", "configure_numba_cache"]


def cache_root() -> Path:
    """The folder for ptydask's rebuildable files (see the module text for the rules).

    Returns
    -------
    pathlib.Path
        Not necessarily existing yet.
    """
    if os.environ.get("PTYDASK_CACHE_DIR"):
        return Path(os.environ["PTYDASK_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ptydask"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ptydask"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "ptydask" / "Cache"
    return Path.home() / ".cache" / "ptydask"


def numba_cache_dir() -> Path:
    """The folder for numba's cache: ``$NUMBA_CACHE_DIR`` if set, else ``cache_root() / "numba"``."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]).expanduser()
    return cache_root() / "numba"


def configure_numba_cache() -> Path:
    """Point numba's on-disk cache at :func:`numba_cache_dir`; call before the first ``njit(cache=True)``.

    numba picks a function's cache folder when the function is decorated, from
    ``numba.config.CACHE_DIR``; the environment variable is set too, so that
    numba's configuration reloads and child processes (Dask workers, MPI ranks
    started from here) keep the same folder.

    Returns
    -------
    pathlib.Path
        The folder in use.
    """
    path = numba_cache_dir()
    if not _writable(path):
        path = Path(tempfile.gettempdir()) / f"ptydask-{_user()}" / "numba"
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    import numba

    numba.config.CACHE_DIR = str(path)
    return path


def _writable(path: Path) -> bool:
    """Whether ``path`` exists or can be created, and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "user"
