"""pytest plugin (``-p ptydask_swap``): ptypy's data layer replaced by ptydask's before ptypy's tests import it.

Loaded by ``tests/test_ptypy_suite.py`` in a subprocess that runs ptypy's own
test files unchanged (``PTYPY_SRC`` on ``PYTHONPATH``). Replaced:

- ``ptypy.core.data.PtyScan`` / ``PtydScan`` (and ptypy's registry entries) by
  ptydask's :class:`ptydask.ptyscan.PtyScan` / :class:`ptydask.ptyscan.PtydScan`;
- ``MoonFlowerScan``: ptypy's class body (its methods and ``Defaults:``
  docstring) rebuilt on ptydask's ``PtyScan`` as base;
- ``ptypy.experiment.hdf5_loader.Hdf5Loader`` by ptydask's ``Hdf5Loader``
  (when ptydask has none, importing it fails, as it would for a user);
- every already imported ``ptypy.experiment`` submodule is dropped so that the
  beamline modules the tests import subclass ptydask's ``PtyScan``.

``PTYDASK_SWAP_DECORATOR=1`` keeps ptypy's ``@defaults_tree.parse_doc``
(through ``ptypy.experiment.register``) on the subclasses, as ptypy's own
modules are written; otherwise ``register`` only records the class.
"""

from __future__ import annotations

import os
import sys
import types

DECORATE = os.environ.get("PTYDASK_SWAP_DECORATOR", "0") == "1"
_SKIP = ("__dict__", "__weakref__", "DEFAULT", "_descriptor")


def _rebased(original: type, base: type, defaults_tree) -> type:
    """ptypy's class ``original`` (its own attributes only) on ``base``; zero-argument ``super()`` follows."""
    ns = {k: v for k, v in vars(original).items() if k not in _SKIP}
    cls = type(original.__name__, (base,), ns)
    cell = types.CellType(cls)
    for name, value in ns.items():
        if isinstance(value, types.FunctionType) and "__class__" in value.__code__.co_freevars:
            closure = tuple(cell if var == "__class__" else old
                            for var, old in zip(value.__code__.co_freevars, value.__closure__))
            setattr(cls, name, types.FunctionType(value.__code__, value.__globals__, value.__name__,
                                                  value.__defaults__, closure))
    if DECORATE:
        cls = defaults_tree.parse_doc("scandata." + original.__name__, True)(cls)
    return cls


def _install() -> None:
    import ptypy
    import ptypy.experiment.hdf5_loader as h5l  # ptypy's own, imported before the swap, then emptied
    from ptypy import defaults_tree, experiment
    from ptypy.core import data

    import ptydask.ptyscan as ours

    moon = _rebased(data.MoonFlowerScan, ours.PtyScan, defaults_tree)
    swapped = {"PtyScan": ours.PtyScan, "PtydScan": ours.PtydScan, "MoonFlowerScan": moon}
    for module in (data, experiment, ptypy.core):
        for name, cls in swapped.items():
            if hasattr(module, name):
                setattr(module, name, cls)
    experiment.PTYSCANS.update(swapped)

    def register(name=None):  # ptypy's, without the descriptor decorator
        def record(cls):
            key = cls.__name__ if name is None else name
            experiment.PTYSCANS[key] = cls
            setattr(experiment, key, cls)
            return cls
        return record

    if not DECORATE:
        experiment.register = register
    for mod in [m for m in sys.modules if m.startswith("ptypy.experiment.") and m != h5l.__name__]:
        del sys.modules[mod]

    loader = getattr(ours, "Hdf5Loader", None)
    for name in ("Hdf5Loader", "Hdf5LoaderFast"):
        if loader is None:
            delattr(h5l, name)
            experiment.PTYSCANS.pop(name, None)
        else:
            setattr(h5l, name, loader)
            experiment.PTYSCANS[name] = loader


_install()
