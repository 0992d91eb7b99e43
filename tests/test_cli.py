"""The ptydask command line: demo, inspect, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ptydask
from ptydask.cli import main
from ptydask.simulate import SimulatedScan


def test_inspect_prints_tree_and_meta(ptypy_fixtures, capsys):
    assert main(["inspect", str(ptypy_fixtures / "moonflower_link.ptyd")]) == 0
    out = capsys.readouterr().out
    assert "num_frames  = 50" in out and "label       = 'moonflower'" in out
    assert "0/ -> moonflower_link.ptyd.part000:/" in out
    assert "data       (20, 64, 64)       int32" in out
    assert "frames stored: 50" in out


def test_inspect_shortens_long_chunk_lists(tmp_path, capsys):
    scan = ptydask.from_arrays(np.zeros((12, 4, 4)), np.zeros((12, 2)), energy=1.0, distance=1.0, psize=1e-4, chunks=1)
    ptydask.to_ptyd(scan, tmp_path / "s.ptyd")
    assert main(["inspect", str(tmp_path / "s.ptyd")]) == 0
    out = capsys.readouterr().out
    assert "... 8 more chunk group(s)" in out and "    11/" in out and "frames stored: 12" in out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "not.ptyd"
    bad.write_text("nope")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ptydask: error: ") and str(bad) in err and "Traceback" not in err
    assert err.count("\n") == 1
    with pytest.raises(ptydask.FormatError):
        main(["--debug", "inspect", str(bad)])


def test_usage_errors_exit_2():
    proc = subprocess.run([sys.executable, "-m", "ptydask.cli", "demo"], capture_output=True, text=True)
    assert proc.returncode == 2 and "outdir" in proc.stderr


def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "out"), "--frames", "60"]) == 0
    out = capsys.readouterr().out
    assert "beam centre at" in out and "wrote" in out
    scan = ptydask.open_ptyd(tmp_path / "out" / "demo.ptyd")
    assert scan.sizes["frame"] == 60 and scan["data"].shape[1:] == (96, 96)
    info = scan.attrs["info"]
    truth = SimulatedScan().beam_center
    assert np.allclose(info["center"], truth, atol=1.0), info["center"]
    masks = info["masks"]
    sim = SimulatedScan()
    # the dead column and block, plus any pixel that happens to count nothing in 60 frames
    assert masks["dead"] >= sim.frame_shape[0] + 16
    assert masks["hot"] == len(sim.hot_pixels) and masks["saturated"] == 0
    # ROI rows/cols start at the rounded centre minus 48: the dead column and block are masked
    r0, c0 = 70 - 48, 59 - 48
    weights = scan["weights"].values
    assert not (weights[:, :, sim.dead_column - c0] > 0).any()
    assert not (weights[:, 100 - r0 : 104 - r0, 20 - c0 : 24 - c0] > 0).any()
    # second run refuses to overwrite, third run with --overwrite works
    assert main(["demo", str(tmp_path / "out"), "--frames", "60"]) == 2
    assert main(["demo", str(tmp_path / "out"), "--frames", "60", "--overwrite"]) == 0


def test_inspect_plot_writes_png(ptypy_fixtures, tmp_path, capsys):
    out = tmp_path / "overview.png"
    assert main(["inspect", str(ptypy_fixtures / "case_peak_auto_center_mask.ptyd"), "--plot", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
