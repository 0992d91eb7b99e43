"""Use ptydask inside a ptypy reconstruction: ``p.scans.X.data.name = 'PtydaskScan'``.

ptypy finds the class of ``scans.X.data.name`` among the registered
subclasses of its own ``PtyScan`` (``ptypy.experiment.register()``, which also
adds the class's ``Defaults:`` docstring section to ptypy's parameter tree,
so ``Ptycho`` validates the parameters). :func:`register` defines such a
subclass, ``PtydaskScan``, that hands ``initialize()`` and ``auto()`` to
ptydask (:class:`ptydask.ptyscan.ScanPtyScan`, or
:class:`ptydask.ptyscan.PtydScan` for a ``.ptyd`` source). The frames are
described either by a ptydask recipe file (``recipe``: the same JSON/YAML the
``ptydask`` command runs, ptypy ``scan.data``/``Hdf5Loader`` names; its
preprocessing parameters are used) or inline (``source``, ``key``, ``spec``
= JSON of :func:`ptydask.sources.open_frames` arguments, with the usual
``scan.data`` parameters). Call :func:`register` once before ``Ptycho``::

    import ptydask.ptypy_plugin
    ptydask.ptypy_plugin.register()
    p.scans.S.data = u.Param(name='PtydaskScan', recipe='scan.yaml')
    # or: u.Param(name='PtydaskScan', source='raw.h5', key='entry/data', shape=128, center=None,
    #             spec='{"positions": {"slow_key": "entry/y", "fast_key": "entry/x"}}')

:func:`register` also registers ptydask's :class:`ptydask.ptyscan.Hdf5Loader` under
ptypy's names ``Hdf5Loader`` and ``Hdf5LoaderFast``, so ``p.scans.S.data.name =
'Hdf5Loader'`` (ptypy's own parameter tree) is prepared by ptydask.

ptypy stays optional: importing ptydask (or this module) never imports
ptypy; :func:`register` does, and returns ``None`` when ptypy is missing.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any, Optional

from .errors import ParameterError
from .params.registry import defaults_text

NAME = "PtydaskScan"
_registered: dict[str, type] = {}

_INTRO = """
    ptydask's lazy preparation (Dask, out of core, MPI-aware) as a ptypy scan source.

    Frames and preprocessing come from a ptydask recipe file (``recipe``), or from
    ``source`` (any raw format ptydask reads, or a ``.ptyd``) prepared with the usual
    ``scan.data`` parameters, with further ``open_frames`` arguments (positions, mask,
    darkfield, flatfield, normalisation, recorded_energy, ...) in ``spec``.

"""
#: The class docstring ptypy reads: its ``Defaults:`` section is the registry's ``plugin`` vocabulary.
_DOC = _INTRO + textwrap.indent(defaults_text("plugin"), "    ") + "\n    "


def load_spec(spec: Any) -> dict[str, Any]:
    """The ``spec`` parameter as a dict: ``None``, a dict, JSON text, or a JSON/YAML file path."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, dict):
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec.items()}
    if not isinstance(spec, (str, os.PathLike)):
        raise ParameterError(f"spec: expected JSON text or a file path, got {type(spec).__name__}")
    text = str(spec)
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"spec: invalid JSON: {exc}") from None
    path = Path(text)
    if not path.is_file():
        raise ParameterError(f"spec: {text!r} is neither JSON text nor an existing file")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        value = yaml.safe_load(path.read_text())
    else:
        value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ParameterError(f"spec: {path} must hold a mapping of open_frames arguments")
    return value


def _plain(value: Any) -> Any:
    """ptypy ``Param`` trees -> plain dicts (recursively)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build_scan(info: Any, comm: Any = None) -> Any:
    """The ptydask ``PtyScan`` serving ptypy parameters ``info`` (a ``scan.data`` tree)."""
    from .ptyscan import PTYSCAN_DEFAULTS, PtydScan, ScanPtyScan
    from .sources import open_frames

    pars = _plain(info)
    if pars.get("recipe"):
        if pars.get("source"):
            raise ParameterError("recipe/source: give a recipe file or a source, not both")
        return _from_recipe(pars["recipe"], pars, comm)
    spec = load_spec(pars.get("spec"))
    source = pars.get("source") or spec.pop("source", None)
    key = pars.get("key") or spec.pop("key", None)
    spec.pop("source", None)
    spec.pop("key", None)
    if not source:
        raise ParameterError("source: PtydaskScan needs the raw frames (scans.<name>.data.source)")
    ours = {k: v for k, v in pars.items() if k in PTYSCAN_DEFAULTS and k != "name"}
    for k in ("center", "orientation", "psize", "shape"):
        if isinstance(ours.get(k), list):
            ours[k] = tuple(ours[k])
    if str(source).endswith(".ptyd"):
        return PtydScan(dfile=str(source), comm=comm)
    scan = open_frames(source, key, **spec)
    return ScanPtyScan(scan, ours, comm=comm)


#: ``scan.data`` parameters taken from a recipe file for the PtyScan pipeline.
_RECIPE_PTYSCAN = ("shape", "center", "auto_center", "orientation", "rebin", "rebin_mode", "min_frames", "label",
                   "version", "load_parallel")


def _from_recipe(path: Any, pars: dict[str, Any], comm: Any) -> Any:
    """A ``ScanPtyScan`` for a ptydask recipe file (``ptydask.recipe``); ``save``/``dfile`` from ptypy."""
    from .ptyscan import PtydScan, ScanPtyScan
    from .recipe import load_recipe
    from .ptyscan.hdf5loader import recipe_options
    from .recipe.run import open_recipe_source

    recipe = load_recipe(path)
    if recipe["name"] == "PtydScan" and recipe["source"]:
        return PtydScan(dfile=str(recipe["source"]), comm=comm)
    scan = open_recipe_source(recipe)
    options, num_frames = recipe_options(recipe, scan)
    ours = {k: (tuple(recipe[k]) if isinstance(recipe[k], list) else recipe[k]) for k in _RECIPE_PTYSCAN}
    ours["num_frames"] = num_frames
    ours.update({k: pars[k] for k in ("save", "dfile", "chunk_format", "overwrite") if k in pars})
    return ScanPtyScan(scan, ours, comm=comm, prepare_options=options)


def _delegating(base: type, name: str, doc: str, build: Any) -> type:
    """A subclass ``name`` of ptypy's ``PtyScan`` handing ``initialize()``/``auto()`` to ``build(info, comm)``."""
    from ptypy.utils import Param, parallel

    class Delegating(base):  # type: ignore[misc, valid-type]
        __doc__ = doc

        def __init__(self, pars: Any = None, **kwargs: Any):
            super().__init__(pars, **kwargs)
            self._inner: Any = None

        def initialize(self) -> None:
            comm = parallel.comm if parallel.size > 1 else None
            self._inner = build(self.info, comm)
            self._inner.initialize()
            self._sync()

        def auto(self, frames: int) -> Any:
            if self._inner is None:
                self.initialize()
            out = self._inner.auto(frames)
            self._sync()
            if isinstance(out, dict):
                out["common"] = Param(out["common"])
            return out

        def _sync(self) -> None:
            inner = self._inner
            self.is_initialized = inner.is_initialized
            self.num_frames = inner.num_frames
            self.end_of_scan = inner.end_of_scan
            self.common = Param(inner.common)
            self.meta = Param(inner.meta)

    Delegating.__name__ = Delegating.__qualname__ = name
    return Delegating


def build_hdf5loader(info: Any, comm: Any = None) -> Any:
    """ptydask's :class:`~ptydask.ptyscan.Hdf5Loader` for ptypy's ``Hdf5Loader`` parameters ``info``."""
    from .ptyscan import Hdf5Loader

    pars = {k: v for k, v in dict(info).items() if k in Hdf5Loader.DEFAULT}  # ptypy validated the tree
    pars["name"] = "Hdf5Loader"
    return Hdf5Loader(pars, comm=comm)


#: ptypy names served by ptydask classes besides ``PtydaskScan`` (``scans.X.data.name``).
PTYPY_NAMES = ("Hdf5Loader", "Hdf5LoaderFast")


def register(name: str = NAME) -> Optional[type]:
    """Register ``PtydaskScan`` and ptydask's ``Hdf5Loader`` (under ptypy's names ``Hdf5Loader`` and
    ``Hdf5LoaderFast``) with ptypy; returns the ``PtydaskScan`` class, ``None`` without ptypy.

    Call it after ptypy's own ptyscan modules are loaded (``ptypy.load_all()``), which would
    otherwise register ptypy's ``Hdf5Loader`` again over ptydask's.
    """
    if name in _registered:
        return _registered[name]
    try:
        from ptypy import experiment
        from ptypy.core.data import PtyScan as PtypyPtyScan
    except ImportError:
        return None
    from .ptyscan import Hdf5Loader

    for ptypy_name in PTYPY_NAMES:
        experiment.register(ptypy_name)(_delegating(PtypyPtyScan, ptypy_name, Hdf5Loader.__doc__ or "",
                                                    build_hdf5loader))
    cls = experiment.register(name)(_delegating(PtypyPtyScan, name, _DOC, build_scan))
    _registered[name] = cls
    return cls


__all__ = ["register", "build_scan", "build_hdf5loader", "load_spec", "NAME", "PTYPY_NAMES"]
