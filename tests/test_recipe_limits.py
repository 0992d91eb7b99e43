"""Hostile recipes (issue 18): bounded parsing, each limit a one-line RecipeError before any work.

A 0.5 KB YAML alias bomb, deep nesting, 400-digit numbers, NaN and oversized files used to hang
``ptydask prepare`` or end in a traceback. The reference for "nothing hangs" is the time limit of
the subprocess in the CLI test, which is generous: parsing stops at a counted limit, not a clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ptydask.errors import RecipeError
from ptydask.recipe import load_recipe
from ptydask.recipe.parse import MAX_DEPTH, MAX_INT_DIGITS, MAX_RECIPE_BYTES, MAX_VALUES, check_tree, parse_text

pytest.importorskip("yaml")


def _bomb(levels: int = 9) -> str:
    """The classic "billion laughs": each level lists the previous one nine times (9**9 values)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nintensities: {{file: x.h5, key: *l{levels - 1}}}\n"


def _merge_bomb(levels: int = 40) -> str:
    """Merge keys double the pairs of a mapping at each level (2**40 while constructing)."""
    lines = ["m0: &m0 {a: 1}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "alias bomb": (_bomb(), "aliases are expanded"),
    "merge-key bomb": (_merge_bomb(), "aliases are expanded"),
    "recursive alias": ("a: &a [1, *a]\n", "contains it"),
    "deep flow nesting": ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper"),
    "deep block nesting": ("".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 3)) + " " * (MAX_DEPTH + 3) + "x: 1\n",
                           "nested deeper"),
    "400-digit integer": ("shape: " + "9" * 400 + "\n", "400 digits"),
    "negative 400-digit integer": ("shape: -" + "9" * 400 + "\n", "400 digits"),
}

HOSTILE_JSON = {
    "deep nesting": ('{"a": ' + "[" * 100000 + "]" * 100000 + "}", "nested deeper"),
    "moderate nesting": ('{"a": ' + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "}", "nested deeper"),
    "400-digit integer": ('{"shape": ' + "9" * 400 + "}", "400 digits"),
    "NaN": ('{"energy": NaN}', "NaN"),
    "Infinity": ('{"energy": -Infinity}', "Infinity"),
    "many values": (json.dumps({"a": list(range(MAX_VALUES + 1))}), f"more than {MAX_VALUES}"),
}


@pytest.mark.parametrize("case", list(HOSTILE_YAML))
def test_hostile_yaml_is_one_recipe_error(case: str) -> None:
    text, expected = HOSTILE_YAML[case]
    with pytest.raises(RecipeError, match=expected) as info:
        parse_text(text, "hostile.yaml", yaml_first=True)
    assert "\n" not in str(info.value) and str(info.value).startswith("hostile.yaml: ")


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_hostile_json_is_one_recipe_error(case: str) -> None:
    text, expected = HOSTILE_JSON[case]
    with pytest.raises(RecipeError, match=expected) as info:
        parse_text(text, "hostile.json", yaml_first=False)
    assert "\n" not in str(info.value) and str(info.value).startswith("hostile.json: ")


def test_limits_admit_ordinary_recipes() -> None:
    """Aliases, merge keys, 30-digit numbers and moderate nesting stay allowed: the limits are far out."""
    text = "geo: &g {energy: 8.0}\nother: {<<: *g, distance: 5}\nsame: *g\nbig: " + "9" * MAX_INT_DIGITS + "\n"
    tree = parse_text(text, "ok.yaml", yaml_first=True)
    assert tree["other"] == {"energy": 8.0, "distance": 5} and tree["same"] == {"energy": 8.0}
    nested = "a: " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2)
    assert parse_text(nested, "ok.yaml", yaml_first=True)["a"]


def test_mapping_recipes_are_bounded_too() -> None:
    """A mapping given from Python that shares its own lists (a bomb without YAML) or cycles is refused."""
    level: list = ["lol"] * 9
    for _ in range(8):
        level = [level] * 9
    with pytest.raises(RecipeError, match=f"more than {MAX_VALUES}"):
        load_recipe({"intensities": {"file": "x.h5", "key": level}}, check_files=False)
    cyclic: dict = {}
    cyclic["again"] = cyclic
    with pytest.raises(RecipeError, match="nested deeper"):
        check_tree({"a": cyclic}, "recipe")
    with pytest.raises(RecipeError, match="recipe: shape: a number of 31 digits"):
        load_recipe({"shape": 10**30}, check_files=False)


def test_oversized_recipe_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("# padding\n" * (MAX_RECIPE_BYTES // 10 + 1))
    with pytest.raises(RecipeError, match=f"bytes; at most {MAX_RECIPE_BYTES}"):
        load_recipe(big, check_files=False)


@pytest.mark.parametrize("name, text", [("bomb.yaml", _bomb()), ("merge.yaml", _merge_bomb()),
                                        ("deep.json", '{"a": ' + "[" * 100000 + "]" * 100000 + "}"),
                                        ("digits.yaml", "shape: " + "9" * 400 + "\n")])
def test_cli_ends_hostile_recipes_with_one_line(tmp_path: Path, name: str, text: str) -> None:
    """``ptydask prepare`` on each: exit code 2, one line on stderr naming the recipe, nothing written."""
    recipe = tmp_path / name
    recipe.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "ptydask.cli", "prepare", str(recipe), "--dfile",
                           str(tmp_path / "out.ptyd")], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(recipe) in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
