"""ptypy's generic ``Hdf5Loader`` as a :class:`ptydask.ptyscan.PtyScan`: ``Hdf5Loader(pars).initialize(); auto(n)``.

The parameters are ptypy's ``Hdf5Loader`` tree (``intensities.file/key``,
``positions.*``, ``mask``, ``darkfield``, ``flatfield``, ``normalisation``,
``framefilter``, ``recorded_*``, ``frameorder``, ... plus the ``PtyScan``
ones). They are validated and mapped by the recipe path
(:func:`ptydask.recipe.load_recipe`, :func:`ptydask.recipe.run.open_recipe_source`,
:func:`ptydask.recipe.run.prepare_kwargs`): the frames are opened lazily with
:func:`ptydask.sources.open_frames` and served chunk by chunk by
:class:`~ptydask.ptyscan.ScanPtyScan`, also under MPI (``comm``; each rank
reads its own frames with ``load_parallel`` 'data'/'all').
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from ..params.registry import BY_PATH, GROUPS, prepare_only
from .params import PTYSCAN_DEFAULTS, Param, parse_defaults
from .ptypy_doc import defaults_section, with_defaults
from .readers import ScanPtyScan

#: prepare keywords (besides the ``scan.data`` ones) a recipe can give: the registry's prepare_options.
RECIPE_OPTIONS = prepare_only()
#: table parameters that are ptydask's ``PtyScan`` parameters or groups of the Hdf5Loader tree.
_TOP = tuple(dict.fromkeys(p.split(".")[0] for p in BY_PATH if p != "source"))
_EXTRA = {"overwrite": (False, "bool", "Replace an existing dfile when saving (ptypy renames it to .old)"),
          "load_block": (None, "int, None", "Frames per load() call (default: the frames of a chunk)")}


def plain_tree(value: Any) -> Any:
    """ptypy/ptydask ``Param`` trees -> plain dicts; numpy arrays and tuples -> lists (recursively)."""
    if isinstance(value, Mapping):
        return {k: plain_tree(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, tuple)):
        return [plain_tree(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _recipe_tree(p: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters the recipe table knows (empty groups and ptydask-only keys left out)."""
    tree = plain_tree({k: v for k, v in p.items() if k in _TOP})
    tree["name"] = "Hdf5Loader"
    return {k: v for k, v in tree.items() if not (k in GROUPS and v == {})}


class Hdf5Loader(ScanPtyScan):
    """ptypy's generic HDF5 loader on ptydask's lazy pipeline.

    ``Hdf5Loader(pars=None, comm=None, **kwargs)``: ``pars`` is ptypy's
    ``Hdf5Loader`` parameter tree (a ``Param`` or nested dict); ``comm`` an
    optional mpi4py communicator. The files are checked at construction and
    opened (lazily) by ``initialize()``.
    """

    def __init__(self, pars: Optional[Mapping[str, Any]] = None, comm: Any = None, **kwargs: Any):
        from ..recipe import load_recipe

        p = self.DEFAULT.copy(99)
        p.update(pars or {})
        p.update(kwargs)
        super().__init__(None, p, comm)  # unknown keys refused first, by name
        self.recipe = load_recipe(_recipe_tree(p))

    def initialize(self) -> None:
        """Open the frames (lazily) as the parameters describe them, then ptypy's ``initialize``."""
        from ..recipe.run import open_recipe_source

        scan = open_recipe_source(self.recipe)
        options, num_frames = recipe_options(self.recipe, scan)
        self.prepare_options.update(options)
        if num_frames is not None:
            self.num_frames = self.info.num_frames = num_frames
        self.scan = scan
        super().initialize()


def recipe_options(recipe: Any, scan: Any) -> tuple[dict[str, Any], Optional[int]]:
    """(``prepare_options``, ``num_frames``) of a PtyScan serving ``scan``, opened from ``recipe``."""
    from ..recipe.run import prepare_kwargs

    kw = prepare_kwargs(recipe, scan)
    return {k: kw[k] for k in RECIPE_OPTIONS if kw.get(k) is not None}, kw.get("num_frames")


Hdf5Loader.__doc__ = with_defaults(Hdf5Loader.__doc__, defaults_section("Hdf5Loader", extra=_EXTRA))
Hdf5Loader.DEFAULT = Param()
Hdf5Loader.DEFAULT.update(PTYSCAN_DEFAULTS)
Hdf5Loader.DEFAULT.update(parse_defaults(Hdf5Loader.__doc__))

__all__ = ["Hdf5Loader", "plain_tree", "recipe_options"]
