"""The parameter registry is the only vocabulary: every consumer's names and defaults equal the registry's.

Each test compares sets (and default values) taken from the consumer itself -- a signature, a
class attribute, a parsed docstring, a validated recipe, the generated docs -- with
``ptydask.params``; none greps source text.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from ptydask import ptypy_plugin
from ptydask.ptyscan import hdf5loader
from ptydask.errors import ParameterError, RecipeError
from ptydask.params import PARAMS, VOCABULARIES, defaults, prepare_only, vocabulary
from ptydask.params.kinds import ArrayLike
from ptydask.ptyscan import PREPARE_OPTIONS, PTYSCAN_DEFAULTS, PtyScan, parse_defaults
from ptydask.recipe import load_recipe, render_docs
from ptydask.recipe.docs import INTERFACES
from ptydask.recipe.run import PREPARE_KEYS, prepare_kwargs
from ptydask.scan import from_arrays
from ptydask.steps import prepare

DOCS = Path(__file__).resolve().parents[1] / "docs" / "recipe.md"


def names(use: str) -> set[str]:
    return {p.path for p in vocabulary(use)}


def test_prepare_signature_is_the_registry():
    sig = inspect.signature(prepare)
    params = dict(sig.parameters)
    assert list(params)[0] == "scan" and params.pop("scan").default is inspect.Parameter.empty
    assert params.pop("combine").default is None  # the one execution hook, not a scan.data parameter
    assert {k: v.default for k, v in params.items()} == defaults("prepare")
    assert all(v.kind is inspect.Parameter.KEYWORD_ONLY for v in params.values())
    for p in vocabulary("prepare"):
        assert f"{p.path} : " in prepare.__doc__


def test_prepare_refuses_names_outside_the_registry():
    scan = from_arrays(np.ones((2, 4, 4)), np.zeros((2, 2)), energy=7.2, distance=1.0, psize=1e-4)
    with pytest.raises(ParameterError, match="prepare: unknown parameter 'shap' \\(did you mean 'shape'\\?\\)"):
        prepare(scan, shap=2)
    with pytest.raises(ParameterError, match="unknown parameter 'overwrite'"):  # a PtyScan parameter only
        prepare(scan, overwrite=True)


def test_ptyscan_defaults_and_options_are_the_registry():
    assert PTYSCAN_DEFAULTS == defaults("ptyscan")
    assert dict(PtyScan.DEFAULT) == defaults("ptyscan")
    assert set(PREPARE_OPTIONS) == names("prepare") - names("ptyscan") == set(prepare_only())
    with pytest.raises(ParameterError, match="prepare_options: unknown key 'shape'"):
        PtyScan(prepare_options={"shape": 8})


def test_ptyscan_checks_use_the_registry_bounds():
    with pytest.raises(ParameterError, match="shape: expected an integer >= 2"):
        PtyScan(shape=1)
    assert PtyScan(shape=2).info.shape == 2


def test_plugin_defaults_text_is_the_registry():
    assert parse_defaults(ptypy_plugin._DOC) == defaults("plugin")
    assert set(hdf5loader.RECIPE_OPTIONS) == set(prepare_only())  # the plugin's recipes take these too
    assert set(ptypy_plugin._RECIPE_PTYSCAN) <= names("ptyscan") & names("recipe")


def test_recipe_vocabulary_and_defaults_are_the_registry(tmp_path):
    for name in ("PtyScan", "Hdf5Loader"):
        recipe = load_recipe({"name": name, "intensities": {"file": "x.h5"}}, base=tmp_path, check_files=False)
        assert set(recipe.values) == names("recipe")
        for p in vocabulary("recipe"):
            if p.path not in ("name", "intensities.file"):
                assert recipe[p.path] == p.default_for(name), p.path
    with pytest.raises(RecipeError, match="unknown key 'overwrite'"):
        load_recipe({"intensities": {"file": "x.h5"}, "overwrite": True}, base=tmp_path, check_files=False)


def test_recipe_to_prepare_mapping_is_the_registry(tmp_path):
    recipe = load_recipe({"intensities": {"file": "x.h5"}}, base=tmp_path, check_files=False)
    scan = from_arrays(np.ones((2, 4, 4)), np.zeros((2, 2)), energy=7.2, distance=1.0, psize=1e-4)
    kw = prepare_kwargs(recipe, scan)
    assert set(kw) <= names("prepare")
    assert set(PREPARE_KEYS) | {"num_frames"} == names("recipe") & names("prepare") <= set(kw)
    for key in PREPARE_KEYS:
        assert kw[key] == defaults("prepare")[key] == defaults("recipe")[key], key


def test_docs_list_exactly_the_registry():
    text = render_docs()
    assert DOCS.read_text() == text + "\n" or DOCS.read_text() == text
    rows = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.M))
    assert rows == {p.path for p in PARAMS}
    for use in ("prepare", "ptyscan", "plugin"):
        line = next(li for li in text.splitlines() if li.startswith(f"- {INTERFACES[use]}: "))
        assert set(re.findall(r"`([^`]+)`", line[len(f"- {INTERFACES[use]}: "):])) == names(use), use


def test_every_default_fits_its_kind_in_every_vocabulary():
    assert {u for p in PARAMS for u in p.uses} == set(VOCABULARIES)
    for p in PARAMS:
        for use in p.uses:
            value = p.default_in.get(use, p.default)
            if use == "plugin" and p.path == "name":
                continue  # the plugin's own class name, registered with ptypy
            if not isinstance(p.kind_for(use), ArrayLike):
                p.check(value, use)
