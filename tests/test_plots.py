"""``ptydask.plots``: the figures show what the Scan holds, and all frames are read in one streaming pass.

Each test renders to PNG and then reads the figure's artists back: the centre
marker, the ROI rectangle, the position points and colours, the image data.
Expected values are computed here from numpy arrays, independently of the
Dask reductions of the module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from dask.callbacks import Callback  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.image import AxesImage, imread  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ptydask import from_arrays, open_frames, prepare, to_ptyd  # noqa: E402
from ptydask.errors import ParameterError, PtydaskError  # noqa: E402
from ptydask.plots import (  # noqa: E402
    GID_CENTER,
    GID_POSITIONS,
    GID_ROI,
    plot_frames,
    plot_mask,
    plot_overview,
    plot_patterns,
    plot_positions,
    raw_geometry,
    save_overview,
)
from ptydask.simulate import KEYS, SimulatedScan, simulate_frames, write_raw  # noqa: E402

SIM = SimulatedScan(num_frames=24, frame_shape=(64, 64), beam_center=(37.0, 26.0), photons=2e5, dead_column=5,
                    dead_block=(slice(50, 53), slice(40, 43)), hot_pixels=((3, 60), (45, 8)), step=0.3e-6)
ROI = 40
PREPARE = dict(shape=ROI, center=None, auto_center=True, dead_pixels=True, hot_pixels=8.0, saturation=65535)


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory) -> Path:
    return write_raw(tmp_path_factory.mktemp("plots") / "raw.h5", SIM)


def open_raw(path: Path):
    rec = {q: {"file": str(path), "key": KEYS[q]} for q in ("energy", "distance", "psize")}
    return open_frames(path, KEYS["frames"],
                       positions={"file": str(path), "slow_key": KEYS["y"], "fast_key": KEYS["x"]},
                       recorded_energy=rec["energy"], recorded_distance=rec["distance"], recorded_psize=rec["psize"],
                       block_bytes=7 * 64 * 64 * 2)  # blocks of 7 frames: 4 blocks, the last one short


def artists(fig, kind, gid=None) -> list:
    found = [a for ax in fig.get_axes() for a in ax.get_children() if isinstance(a, kind)]
    return [a for a in found if gid is None or a.get_gid() == gid]


def image_titled(fig, start: str) -> AxesImage:
    for ax in fig.get_axes():
        if ax.get_title().startswith(start):
            (im,) = ax.get_images()
            return im
    raise AssertionError(f"no panel titled {start!r}; titles: {[ax.get_title() for ax in fig.get_axes()]}")


def render(fig, path: Path, dpi: int = 60) -> np.ndarray:
    fig.savefig(path, dpi=dpi)
    return imread(path)


class Computes(Callback):
    """Counts the Dask graphs executed while active."""

    def __init__(self) -> None:
        super().__init__()
        self.graphs = 0

    def _start(self, dsk) -> None:
        self.graphs += 1


class CountingFrames:
    """A (N, H, W) array that logs every frame range read from it (not Dask's empty probes for its meta)."""

    def __init__(self, frames: np.ndarray):
        self.frames, self.shape, self.dtype, self.ndim = frames, frames.shape, frames.dtype, 3
        self.reads: list[tuple[int, int]] = []

    def __getitem__(self, key):
        rows = np.arange(self.shape[0])[key[0]]
        if rows.size:
            self.reads.append((int(rows.min()), int(rows.max()) + 1))
        return self.frames[key]


# --------------------------------------------------------------------------- what the overview shows


def test_overview_shows_the_chosen_centre_roi_positions_and_mean(raw_file: Path, tmp_path: Path) -> None:
    raw = open_raw(raw_file)
    prepared = prepare(raw, **PREPARE)
    fig = plot_overview(prepared, raw=raw, frames=[0, 10, 23])
    png = render(fig, tmp_path / "overview.png", dpi=50)
    w, h = fig.get_size_inches() * 50
    assert png.shape[:2] == (round(h), round(w)) and png[..., :3].std() > 0.05

    info = prepared.attrs["info"]
    cy, cx = info["center"]
    assert abs(cy - SIM.beam_center[0]) < 1.5 and abs(cx - SIM.beam_center[1]) < 1.5  # the demo's beam was found
    centres = {tuple(np.round([m.get_xdata()[0], m.get_ydata()[0]], 9)) for m in artists(fig, Line2D, GID_CENTER)}
    assert centres == {(round(cx, 9), round(cy, 9)), (float(ROI // 2), float(ROI // 2))}

    top, left = int(np.round(cy)) - ROI // 2, int(np.round(cx)) - ROI // 2
    rects = artists(fig, Rectangle, GID_ROI)
    assert len(rects) == 2 + 3  # raw mean, raw max, three raw frames
    for rect in rects:
        assert rect.get_xy() == (left - 0.5, top - 0.5) and rect.get_width() == ROI and rect.get_height() == ROI

    frames, positions, _ = simulate_frames(SIM)
    (points,) = artists(fig, PathCollection, GID_POSITIONS)
    np.testing.assert_allclose(points.get_offsets(), positions[:, ::-1] * 1e6)
    weights = prepared["weights"].values > 0
    cut = frames[:, top:top + ROI, left:left + ROI].astype(np.float64)
    np.testing.assert_allclose(points.get_array(), (cut * weights).sum(axis=(1, 2)))

    mean = cut.mean(axis=0)
    shown = image_titled(fig, "prepared: mean").get_array()
    np.testing.assert_allclose(shown.data, mean)
    np.testing.assert_array_equal(shown.mask, ~weights | (mean <= 0))
    raw_max = image_titled(fig, "raw: max").get_array()
    np.testing.assert_array_equal(raw_max.filled(0), np.where(frames.max(axis=0) > 0, frames.max(axis=0), 0))
    hot = SIM.hot_pixels[0]
    assert raw_max[hot] == frames[:, hot[0], hot[1]].max() > 0  # hot pixels stay visible in the raw frames


def test_frames_panel_pairs_raw_and_prepared_frames_by_scan_index(raw_file: Path, tmp_path: Path) -> None:
    raw = open_raw(raw_file)
    part = raw.isel(frame=slice(5, 20))  # indices 5..19: frame 3 of the part is raw frame 8
    prepared = prepare(part, shape=ROI, center=(30.0, 30.0), auto_center=False)
    fig = plot_frames(prepared, raw=raw, frames=[3, 14])
    render(fig, tmp_path / "frames.png")
    titles = [ax.get_title() for ax in fig.get_axes() if ax.get_images()]
    assert titles == ["raw 3 (index 8)", "raw 14 (index 19)", "prepared 3 (index 8)", "prepared 14 (index 19)"]
    frames, _, _ = simulate_frames(SIM)
    ims = [ax.get_images()[0].get_array() for ax in fig.get_axes() if ax.get_images()]
    np.testing.assert_array_equal(ims[0].filled(0), frames[8])
    np.testing.assert_array_equal(ims[3].filled(0), frames[19, 10:50, 10:50])


def test_raw_geometry_undoes_the_padding(raw_file: Path) -> None:
    prepared = prepare(open_raw(raw_file), shape=ROI, center=(40.0, 33.0), padding=(4, 0, 6, 0))
    geo = raw_geometry(prepared)
    assert geo.center == (36.0, 27.0)
    assert geo.roi == (40 - ROI // 2 - 4, 33 - ROI // 2 - 6, ROI, ROI)
    assert raw_geometry(open_raw(raw_file)) == type(geo)(None, None)  # a raw Scan has no preparation


def test_patterns_of_a_ptyd_file_mark_its_stored_centre(raw_file: Path, tmp_path: Path) -> None:
    prepared = prepare(open_raw(raw_file), **PREPARE)
    path = to_ptyd(prepared, tmp_path / "scan.ptyd", progress=False)
    fig = plot_patterns(path)
    render(fig, tmp_path / "patterns.png")
    marks = artists(fig, Line2D, GID_CENTER)
    assert len(marks) == 2
    assert all((m.get_xdata()[0], m.get_ydata()[0]) == (ROI // 2, ROI // 2) for m in marks)
    assert not artists(fig, Rectangle, GID_ROI)  # without the raw frames there is no ROI to draw
    out = save_overview(path, tmp_path / "sub" / "overview.png", dpi=40)
    assert out.is_file() and imread(out).shape[2] in (3, 4)


def test_mask_of_per_frame_weights_shows_the_valid_fraction(tmp_path: Path) -> None:
    n = 8
    weights = np.ones((n, 6, 5))
    weights[:, 1, 2] = 0          # never valid
    weights[::2, 4, 4] = 0        # valid in half the frames
    scan = from_arrays(np.ones((n, 6, 5), np.uint16), np.zeros((n, 2)), weights, energy=8, distance=1, psize=1e-4,
                       chunks=3)
    fig = plot_mask(scan)
    render(fig, tmp_path / "mask.png")
    (im,) = [im for ax in fig.get_axes() for im in ax.get_images()]
    expected = np.ones((6, 5))
    expected[1, 2], expected[4, 4] = 0.0, 0.5
    np.testing.assert_array_equal(im.get_array(), expected)
    assert fig.get_axes()[0].get_title() == "valid pixels: 1 of 30 never valid, 1 in some frames"


def test_positions_without_positions_say_so_and_all_zero_frames_render(tmp_path: Path) -> None:
    scan = from_arrays(np.zeros((4, 8, 8)), None, energy=8, distance=1, psize=1e-4)
    fig = plot_positions(scan)
    render(fig, tmp_path / "none.png")
    assert [t.get_text() for t in fig.get_axes()[0].texts] == ["no positions"]
    fig = plot_patterns(scan)  # nothing positive: a linear scale, no error
    render(fig, tmp_path / "zeros.png")
    assert all(im.norm.vmin == 0 and im.norm.vmax == 1 for ax in fig.get_axes() for im in ax.get_images())


# --------------------------------------------------------------------------- streaming


def test_overview_reads_every_frame_once_in_one_computation(tmp_path: Path) -> None:
    frames, positions, _ = simulate_frames(SIM)
    source = CountingFrames(frames)
    scan = from_arrays(da.from_array(source, chunks=(5, -1, -1), asarray=True, lock=False), positions,
                       energy=8, distance=5, psize=75e-6)
    with Computes() as c:
        fig = plot_overview(scan, frames=[])
    assert c.graphs == 1
    assert sorted(source.reads) == [(s, min(s + 5, SIM.num_frames)) for s in range(0, SIM.num_frames, 5)]
    render(fig, tmp_path / "noframes.png")

    source.reads.clear()
    with Computes() as c:
        plot_overview(scan, frames=[0, 12])
    assert c.graphs == 1
    read = np.zeros(SIM.num_frames, int)
    for a, b in source.reads:
        read[a:b] += 1
    assert read.min() == 1 and read.sum() <= SIM.num_frames + 2  # the two frames shown may be read once more


def test_prepared_and_raw_share_one_pass() -> None:
    frames, positions, _ = simulate_frames(SIM)
    source = CountingFrames(frames)
    raw = from_arrays(da.from_array(source, chunks=(5, -1, -1), asarray=True, lock=False), positions,
                      energy=8, distance=5, psize=75e-6)
    prepared = prepare(raw, shape=ROI, center=(37.0, 26.0))  # a given centre: prepare itself reads nothing
    assert not source.reads
    with Computes() as c:
        fig = plot_overview(prepared, raw=raw, frames=[])
    assert c.graphs == 1 and len(artists(fig, Rectangle, GID_ROI)) == 2
    assert sorted(source.reads) == [(s, min(s + 5, SIM.num_frames)) for s in range(0, SIM.num_frames, 5)]


# --------------------------------------------------------------------------- errors


def test_errors_name_the_parameter(raw_file: Path) -> None:
    raw = open_raw(raw_file)
    with pytest.raises(ParameterError, match="frames: frame number"):
        plot_frames(raw, frames=[0, 24])
    with pytest.raises(ParameterError, match="frames: no frame"):
        plot_frames(raw, frames=0)
    with pytest.raises(ParameterError, match="raw: scan-point index 2"):
        plot_frames(raw.isel(frame=slice(2, 4)), raw=raw.isel(frame=slice(10, 20)), frames=1)
    with pytest.raises(ParameterError, match="scan: expected a Scan"):
        plot_mask(np.zeros((2, 4, 4)))


def test_missing_matplotlib_names_the_install_command(raw_file: Path, monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'ptydask\[plot\]'") as err:
        plot_mask(open_raw(raw_file))
    assert isinstance(err.value, PtydaskError)  # the ptydask command prints it as one line, exit code 2
