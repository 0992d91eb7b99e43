"""Quick-look plots of a Scan or a ``.ptyd`` file (matplotlib, optional: ``pip install 'ptydask[plot]'``).

Every function takes a Scan (raw or prepared) or the path of a ``.ptyd`` and
returns a :class:`matplotlib.figure.Figure` (no pyplot state is touched). The
quantities that need all frames — mean and maximum pattern, integrated counts
per frame, fraction of frames in which a pixel is valid — and the few frames
shown are evaluated together in **one** ``dask.compute``: every block of
frames is read once and dropped, so memory stays bounded by a few blocks.

Conventions: images are shown as stored, pixel (row, col) at (y, x) = (row,
col), row 0 at the top; counts on a logarithmic colour scale whose limits
come from the shown pixels; pixels that are zero, negative or never valid
(weights 0 in every frame) are masked and drawn in slate grey; positions in
micrometres, x (fast axis) across, y (slow axis) up.

``raw``: the raw Scan a prepared ``scan`` was made from (same ``indices``).
Given, the patterns and frames are also shown *before* preparation, with the
chosen centre (``+``) and the ROI cut by :func:`ptydask.prepare` (dashed
rectangle) drawn in raw-frame pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .errors import ParameterError, PtydaskError
from .labels import info_of
from .scan import validate_scan

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    FigureLike = Union[Figure, SubFigure]

ScanLike = Union[xr.Dataset, str, os.PathLike]

#: Colours of the overlays (visible on the magma colour map).
MARK = "#39d5ff"
#: Artist ids (``artist.get_gid()``) of the overlays, for tests and scripts.
GID_CENTER, GID_ROI, GID_POSITIONS = "center", "roi", "positions"


# --------------------------------------------------------------------------- data


@dataclass
class Summary:
    """What the plots show of one Scan, as numpy arrays (one ``dask.compute``).

    mean, max : (y, x) per-pixel mean and maximum over all frames, counts.
    valid : (y, x) fraction of frames in which the pixel is valid (weights > 0).
    counts : (frame,) integrated counts per frame over its valid pixels.
    positions : (frame, 2) (y, x) metres, or ``None``.
    frames : sampled frames by frame number (0-based position in the Scan).
    """

    mean: Optional[np.ndarray] = None
    max: Optional[np.ndarray] = None
    valid: Optional[np.ndarray] = None
    counts: Optional[np.ndarray] = None
    positions: Optional[np.ndarray] = None
    frames: dict[int, np.ndarray] = field(default_factory=dict)


def _open(scan: ScanLike) -> xr.Dataset:
    if isinstance(scan, xr.Dataset):
        return validate_scan(scan)
    if isinstance(scan, (str, os.PathLike)):
        from .ptyd import open_ptyd

        return open_ptyd(scan)
    raise ParameterError(f"scan: expected a Scan (xarray.Dataset) or the path of a .ptyd file, "
                         f"got {type(scan).__name__}")


def _valid(scan: xr.Dataset) -> Any:
    """Weights > 0 as (y, x) or (frame, y, x), lazy where the weights are."""
    if "weights" not in scan:
        return np.ones(scan["data"].shape[1:], dtype=bool)
    return scan["weights"].data > 0


def _lazy(scan: xr.Dataset, what: Sequence[str], frames: Sequence[int]) -> dict[str, Any]:
    """The lazy expressions of the quantities in ``what`` (not yet computed)."""
    data = scan["data"].data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(max(1, data.shape[0]), -1, -1))
    valid = _valid(scan)
    out: dict[str, Any] = {}
    if "mean" in what:
        out["mean"] = data.mean(axis=0, dtype=np.float64)
    if "max" in what:
        out["max"] = data.max(axis=0)
    if "valid" in what:
        out["valid"] = valid.mean(axis=0) if valid.ndim == 3 else valid.astype(np.float64)
    if "counts" in what:
        out["counts"] = da.where(valid, data, 0).sum(axis=(1, 2), dtype=np.float64)
    if "positions" in what and "positions" in scan:
        out["positions"] = scan["positions"].data
    if frames:
        out["frames"] = data[np.asarray(frames, dtype=np.int64)]
    return out


def summarize(scan: ScanLike, raw: Optional[xr.Dataset] = None, *, what: Sequence[str] = ("mean", "max", "valid",
              "counts", "positions"), frames: Sequence[int] = ()) -> tuple[Summary, Optional[Summary]]:
    """Compute the ``what`` quantities of ``scan`` (and of ``raw``) in one ``dask.compute``.

    ``frames``: frame numbers of ``scan`` to fetch as well; the raw frames with the
    same ``indices`` are fetched from ``raw``. Returns (summary of scan, of raw or None).
    """
    scan = _open(scan)
    frames = _frame_numbers(frames, scan.sizes["frame"])
    lazy = {"scan": _lazy(scan, what, frames)}
    if raw is not None:
        lazy["raw"] = _lazy(validate_scan(raw), what, _raw_numbers(scan, raw, frames))
    (got,) = dask.compute(lazy)
    return _summary(got["scan"], frames), (_summary(got["raw"], frames) if raw is not None else None)


def _summary(got: dict[str, Any], frames: Sequence[int]) -> Summary:
    fetched = got.pop("frames", None)
    out = Summary(**{k: np.asarray(v) for k, v in got.items()})
    if fetched is not None:
        out.frames = {int(i): np.asarray(f) for i, f in zip(frames, fetched)}
    return out


def _frame_numbers(frames: Union[int, Sequence[int]], n: int) -> list[int]:
    """``k`` -> k frame numbers spread evenly over ``n`` frames; a sequence is checked."""
    if isinstance(frames, (int, np.integer)) and not isinstance(frames, bool):
        k = min(int(frames), n)
        return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)}) if k > 0 else []
    chosen = [int(f) for f in frames]
    bad = [f for f in chosen if not 0 <= f < n]
    if bad:
        raise ParameterError(f"frames: frame number(s) {bad} outside the scan's {n} frames (0..{n - 1})")
    return chosen


def _raw_numbers(scan: xr.Dataset, raw: xr.Dataset, frames: Sequence[int]) -> list[int]:
    """Frame numbers in ``raw`` of the scan's ``frames``, matched by global ``indices``."""
    if not frames:
        return []
    want = np.asarray(scan["indices"].values)[list(frames)]
    have = np.asarray(raw["indices"].values)
    pos = np.searchsorted(have, want)
    found = (pos < have.size) & (have[np.minimum(pos, have.size - 1)] == want)
    if not found.all():
        raise ParameterError(f"raw: scan-point index {int(want[~found][0])} of the scan is not among the raw "
                             "Scan's indices; pass the raw Scan the prepared one was made from")
    return [int(p) for p in pos]


# --------------------------------------------------------------------------- geometry of the preparation


@dataclass(frozen=True)
class RawGeometry:
    """Where ``prepare`` looked in the raw frames: centre (row, col) px and ROI (top, left, rows, cols) px."""

    center: Optional[tuple[float, float]]
    roi: Optional[tuple[int, int, int, int]]


def raw_geometry(scan: xr.Dataset) -> RawGeometry:
    """The raw-frame centre and ROI recorded by ``prepare`` in ``scan.attrs['info']`` (``None`` if unknown).

    Both are in raw-frame pixels (before ``padding``); the ROI is ``None`` when
    ``prepare`` cut nothing (ROI = frame, no orientation, no rebin).
    """
    from .steps.geometry import Window

    info = info_of(scan)
    prep = info.get("prepare")
    if not isinstance(prep, dict) or info.get("center") is None:
        return RawGeometry(None, None)
    top, _, left, _ = (int(v) for v in prep.get("padding", (0, 0, 0, 0)))
    cy, cx = (float(v) for v in info["center"])
    center = (cy - top, cx - left)
    if not prep.get("processed", True) or info.get("shape") is None:
        return RawGeometry(center, None)
    win = Window.around((cy, cx), tuple(int(v) for v in info["shape"]))
    return RawGeometry(center, (win.start[0] - top, win.start[1] - left, win.shape[0], win.shape[1]))


def _frames(n: int) -> str:
    return f"{n} frame" + ("" if n == 1 else "s")


def _center_of(scan: xr.Dataset) -> Optional[tuple[float, float]]:
    c = scan.attrs.get("center")
    return None if c is None else (float(np.ravel(c)[0]), float(np.ravel(c)[1]))


# --------------------------------------------------------------------------- matplotlib helpers


class MissingMatplotlibError(PtydaskError, ImportError):
    """matplotlib is not installed (an ImportError; the ``ptydask`` command reports it in one line)."""


def _mpl() -> Any:
    """matplotlib, or :class:`MissingMatplotlibError` saying how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingMatplotlibError("plots need matplotlib: pip install 'ptydask[plot]' (or pip install matplotlib)") \
            from exc
    return matplotlib


def _figure(size: tuple[float, float]) -> "Figure":
    _mpl()
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _masked(image: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ma.MaskedArray:
    """``image`` as float64 with pixels <= 0 (no log) and pixels never valid (``valid == 0``) masked."""
    out = np.ma.masked_less_equal(np.asarray(image, dtype=np.float64), 0)
    return out if valid is None else np.ma.masked_where(np.asarray(valid) == 0, out)


def _log_norm(*images: np.ma.MaskedArray) -> Any:
    """A LogNorm spanning the unmasked pixels of ``images`` (a linear 0..1 norm if there are none)."""
    from matplotlib.colors import LogNorm, Normalize

    shown = [im.compressed() for im in images if im.count()]
    if not shown:
        return Normalize(vmin=0, vmax=1)
    lo, hi = min(float(v.min()) for v in shown), max(float(v.max()) for v in shown)
    return LogNorm(vmin=lo, vmax=max(hi, lo * 10))


def _show_log(ax: "Axes", image: np.ma.MaskedArray, norm: Any, title: str, ticks: bool = True) -> Any:
    """A masked ``image`` on ``norm``; masked pixels are shown in a slate 'bad' colour."""
    import matplotlib

    cmap = matplotlib.colormaps["magma"].with_extremes(bad="#2a3a4a")
    im = ax.imshow(image, norm=norm, cmap=cmap, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    if ticks:
        ax.set_xlabel("x (px)", fontsize=8)
        ax.set_ylabel("y (px)", fontsize=8)
        ax.tick_params(labelsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return im


def _overlay(ax: "Axes", center: Optional[tuple[float, float]], roi: Optional[tuple[int, int, int, int]],
             legend: bool = True) -> None:
    """Draw the centre ``+`` at (x, y) = (col, row) and the ROI rectangle around pixel edges."""
    from matplotlib.patches import Rectangle

    if center is not None:
        ax.plot([center[1]], [center[0]], marker="+", ms=14, mew=1.6, color=MARK, ls="none", gid=GID_CENTER,
                label=f"centre ({center[0]:.1f}, {center[1]:.1f})")
    if roi is not None:
        top, left, rows, cols = roi
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), cols, rows, fill=False, ec=MARK, lw=1.2, ls="--", gid=GID_ROI,
                               label=f"ROI {rows}x{cols}"))
    if legend and (center is not None or roi is not None):
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)


# --------------------------------------------------------------------------- drawing into a (sub)figure


def _draw_patterns(fig: "FigureLike", scan: xr.Dataset, s: Summary, raw: Optional[xr.Dataset],
                   r: Optional[Summary]) -> None:
    n, c = scan.sizes["frame"], _center_of(scan)
    mean, peak = _masked(s.mean, s.valid), _masked(s.max, s.valid)
    panels = [(mean, f"mean of {_frames(n)}", c, None), (peak, f"max of {_frames(n)}", c, None)]
    if raw is not None and r is not None:
        geo = raw_geometry(scan)
        rc = geo.center if geo.center is not None else _center_of(raw)
        m = raw.sizes["frame"]
        panels = [(_masked(r.mean, r.valid), f"raw: mean of {_frames(m)}", rc, geo.roi),
                  (_masked(r.max, r.valid), f"raw: max of {_frames(m)}", rc, geo.roi),
                  (mean, f"prepared: mean of {_frames(n)}", c, None)]
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (img, title, center, roi) in zip(axes, panels):
        im = _show_log(ax, img, _log_norm(img), title)
        _overlay(ax, center, roi)
        fig.colorbar(im, ax=ax, shrink=0.8, label="counts")


def _draw_mask(fig: "FigureLike", scan: xr.Dataset, s: Summary) -> None:
    ax = fig.subplots()
    valid = s.valid
    bad = int(np.count_nonzero(valid == 0))
    part = int(np.count_nonzero((valid > 0) & (valid < 1)))
    im = ax.imshow(valid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    title = f"valid pixels: {bad} of {valid.size} never valid"
    if part:
        title += f", {part} in some frames"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (px)", fontsize=8)
    ax.set_ylabel("y (px)", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of frames valid")


def _draw_positions(fig: "FigureLike", scan: xr.Dataset, s: Summary) -> None:
    ax = fig.subplots()
    if s.positions is None:
        ax.text(0.5, 0.5, "no positions", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    y_um, x_um = s.positions[:, 0] * 1e6, s.positions[:, 1] * 1e6
    sc = ax.scatter(x_um, y_um, c=s.counts, s=max(4.0, 3000.0 / max(1, len(x_um))), cmap="viridis", gid=GID_POSITIONS)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (µm)", fontsize=8)
    ax.set_ylabel("y (µm)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"{len(x_um)} position{'' if len(x_um) == 1 else 's'}, coloured by counts", fontsize=9)
    fig.colorbar(sc, ax=ax, shrink=0.8, label="counts per frame (valid pixels)")


def _draw_frames(fig: "FigureLike", scan: xr.Dataset, s: Summary, raw: Optional[xr.Dataset],
                 r: Optional[Summary]) -> None:
    numbers = list(s.frames)
    rows = [("prepared" if r is not None else "frame", s, None, _center_of(scan))]
    if r is not None:
        geo = raw_geometry(scan)
        rows.insert(0, ("raw", r, geo.roi, geo.center if geo.center is not None else _center_of(raw)))
    axes = np.asarray(fig.subplots(len(rows), len(numbers), squeeze=False))
    indices = np.asarray(scan["indices"].values)
    for (name, summ, roi, center), row in zip(rows, axes):
        shown = {i: _masked(f, summ.valid) for i, f in summ.frames.items()}
        norm = _log_norm(*shown.values())
        im = None
        for ax, i in zip(row, numbers):
            im = _show_log(ax, shown[i], norm, f"{name} {i} (index {int(indices[i])})", ticks=False)
            _overlay(ax, center, roi, legend=False)
        if im is not None:
            fig.colorbar(im, ax=list(row), shrink=0.8, label="counts")


# --------------------------------------------------------------------------- public figures


def plot_patterns(scan: ScanLike, raw: Optional[xr.Dataset] = None) -> "Figure":
    """Mean and maximum pattern over all frames (log scale) with the centre; with ``raw``, also the ROI."""
    scan = _open(scan)
    s, r = summarize(scan, raw, what=("mean", "max", "valid"))
    fig = _figure((4.2 * (3 if raw is not None else 2), 3.8))
    _draw_patterns(fig, scan, s, raw, r)
    return fig


def plot_mask(scan: ScanLike) -> "Figure":
    """Valid pixels (weights > 0); per-frame weights show the fraction of frames in which a pixel is valid."""
    scan = _open(scan)
    s, _ = summarize(scan, what=("valid",))
    fig = _figure((4.6, 3.8))
    _draw_mask(fig, scan, s)
    return fig


def plot_positions(scan: ScanLike) -> "Figure":
    """Scan positions (x, y) in µm coloured by each frame's integrated counts over its valid pixels."""
    scan = _open(scan)
    s, _ = summarize(scan, what=("counts", "positions"))
    fig = _figure((5.0, 4.2))
    _draw_positions(fig, scan, s)
    return fig


def plot_frames(scan: ScanLike, raw: Optional[xr.Dataset] = None, frames: Union[int, Sequence[int]] = 3) -> "Figure":
    """A few frames (``frames``: how many, spread evenly, or which frame numbers); with ``raw``, before and after."""
    scan = _open(scan)
    numbers = _frame_numbers(frames, scan.sizes["frame"])
    if not numbers:
        raise ParameterError(f"frames: no frame to show (got {frames!r} for a scan of {scan.sizes['frame']} frames)")
    s, r = summarize(scan, raw, what=("valid",), frames=numbers)
    fig = _figure((3.3 * len(numbers) + 1, 3.0 * (2 if raw is not None else 1) + 0.4))
    _draw_frames(fig, scan, s, raw, r)
    return fig


def plot_overview(scan: ScanLike, raw: Optional[xr.Dataset] = None, frames: Union[int, Sequence[int]] = 3) -> "Figure":
    """Patterns, mask, positions and a few frames on one figure, from one pass over the frames."""
    scan = _open(scan)
    numbers = _frame_numbers(frames, scan.sizes["frame"])
    s, r = summarize(scan, raw, frames=numbers)
    n_pat, rows = (3 if raw is not None else 2), (2 if raw is not None else 1)
    fig = _figure((4.0 * (n_pat + 1), 3.6 + 3.0 * rows + 0.6))
    top, bottom = fig.subfigures(2, 1, height_ratios=(3.6, 3.0 * rows))
    pat, msk = top.subfigures(1, 2, width_ratios=(n_pat, 1.1))
    _draw_patterns(pat, scan, s, raw, r)
    _draw_mask(msk, scan, s)
    if numbers:
        pos, frm = bottom.subfigures(1, 2, width_ratios=(1.3, len(numbers)))
        _draw_frames(frm, scan, s, raw, r)
    else:
        pos = bottom
    _draw_positions(pos, scan, s)
    fig.suptitle(_title(scan), fontsize=9)
    return fig


def _title(scan: xr.Dataset) -> str:
    """One line: label, frames, frame shape, dtype and geometry (keV, m, µm, px)."""
    a = scan.attrs
    source = a.get("source") or (a.get("info") or {}).get("source") or ""
    label = a.get("label") or Path(str(source)).name or "scan"
    n, h, w = scan["data"].shape
    parts = [f"{label}: {n} of {_frames(int(a.get('num_frames', n)))} of {h}x{w} {scan['data'].dtype}"]
    if a.get("energy") is not None:
        parts.append(f"{a['energy']:.4g} keV")
    if a.get("distance") is not None:
        parts.append(f"distance {a['distance']:.4g} m")
    if a.get("psize") is not None:
        parts.append("pixel " + " x ".join(f"{v * 1e6:.4g}" for v in np.ravel(a["psize"])) + " µm")
    center = _center_of(scan)
    parts.append("centre " + ("not set" if center is None else f"({center[0]:.2f}, {center[1]:.2f}) px"))
    return ", ".join(parts)


def save_overview(path_or_scan: ScanLike, out_png: Union[str, os.PathLike], raw: Optional[xr.Dataset] = None, *,
                  frames: Union[int, Sequence[int]] = 3, dpi: int = 100) -> Path:
    """Write :func:`plot_overview` of a Scan or ``.ptyd`` to ``out_png``; return its path.

    For ``ptydask inspect FILE --plot out.png``: ``save_overview(FILE, out_png)``.
    """
    out = Path(out_png)
    fig = plot_overview(path_or_scan, raw, frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out


__all__ = ["MissingMatplotlibError", "Summary", "RawGeometry", "summarize", "raw_geometry", "plot_patterns", "plot_mask", "plot_positions",
           "plot_frames", "plot_overview", "save_overview", "GID_CENTER", "GID_ROI", "GID_POSITIONS"]
