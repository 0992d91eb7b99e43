"""Output names and part-file patterns checked before any write (issue 18): ``chunk_format`` with ``%c``,
huge widths or several fields, and file names too long for the file system, are one-line errors, and an
existing output is left as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import ptydask
from ptydask.cli import main
from ptydask.errors import OutputError, ParameterError
from ptydask.ptyd import WriteOptions


def scan():
    return ptydask.from_arrays(np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8), np.zeros((2, 2)),
                               energy=8.0, distance=1.0, psize=1e-4)


@pytest.mark.parametrize("fmt", ["%c", ".part%c", "%0999999999d", ".x%d%d", "%s", ".chunk", "%x", "p%d\n", "a/%d"])
def test_bad_chunk_formats_are_refused(fmt: str) -> None:
    with pytest.raises(ParameterError, match="^chunk_format: ") as info:
        WriteOptions(chunk_format=fmt)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", [".chunk%02d", ".part%03d", "_%d", ".p%%%02d", ".c%5i"])
def test_good_chunk_formats_are_kept(fmt: str) -> None:
    assert WriteOptions(chunk_format=fmt).chunk_format == fmt


def test_chunk_format_c_leaves_an_existing_output_intact(tmp_path: Path, capsys) -> None:
    """It used to destroy the existing output: now the recipe is refused before anything is touched."""
    out = tmp_path / "out.ptyd"
    ptydask.to_ptyd(scan(), out)
    before = out.read_bytes()
    raw = tmp_path / "raw.npy"
    np.save(raw, np.ones((2, 8, 8), np.uint16))
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"intensities": {"file": str(raw)}, "positions_theory": [[0, 0], [0, 1e-6]],
                                  "shape": 8, "save": "link", "chunk_format": "%c", "dfile": str(out)}))
    assert main(["prepare", str(recipe), "--overwrite", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chunk_format" in err[0]
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.ptyd", "r.json",
                                                                                          "raw.npy"]


def test_file_names_too_long_for_the_file_system_are_refused_first(tmp_path: Path) -> None:
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    long = tmp_path / ("x" * (limit - 10) + ".ptyd")
    with pytest.raises(OutputError, match="the file name has .* bytes"):
        ptydask.to_ptyd(scan(), long)
    assert list(tmp_path.iterdir()) == []
    ok = tmp_path / ("y" * (limit - 40) + ".ptyd")
    assert ptydask.to_ptyd(scan(), ok, save="link").exists()
