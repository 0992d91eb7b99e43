"""The recipe parameter table: every parameter defined once.

Names follow ptypy's ``scan.data`` tree (``PtyScan`` and ``Hdf5Loader``);
ptydask's own additions are marked ``ext``. Validation, defaults and the
reference ``docs/recipe.md`` are all generated from :data:`PARAMS`.

``stage`` says where a value goes: ``source`` (``open_frames``), ``prepare``,
``output`` (``to_ptyd``), ``meta`` (stored frames' meta) or ``unused``
(accepted for ptypy compatibility, no effect in ptydask).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .kinds import (
    Bounds,
    Center,
    Choice,
    FilePath,
    Flag,
    Integer,
    IntList,
    Kind,
    Number,
    NumberOrPair,
    Orientation,
    PositionList,
    Shape,
    Text,
)

#: Values of ``name`` ptydask understands (ptypy class names).
NAMES = ("PtyScan", "Hdf5Loader", "Hdf5LoaderFast", "PtydScan")
#: Names that read raw frames through ptypy's Hdf5Loader vocabulary (``shape`` defaults to None).
HDF5_NAMES = ("Hdf5Loader", "Hdf5LoaderFast")
STAGES = ("source", "prepare", "meta", "output", "unused")


@dataclass(frozen=True)
class Param:
    """One recipe parameter.

    ``path`` dotted key path; ``default`` ptypy's default (``by_name``: defaults
    that depend on ``name``); ``kind`` allowed values; ``nullable`` whether
    ``null`` is allowed; ``unit`` physical unit; ``doc`` one line;
    ``ext`` a ptydask extension; ``stage`` where the value goes.
    """

    path: str
    default: Any
    kind: Kind
    nullable: bool
    unit: str
    doc: str
    stage: str
    ext: bool = False
    by_name: dict[str, Any] = field(default_factory=dict)

    def default_for(self, name: str) -> Any:
        """The default when the recipe's ``name`` is ``name``."""
        return self.by_name.get(name, self.default)


def P(path: str, default: Any, kind: Kind, doc: str, *, stage: str, nullable: bool | None = None, unit: str = "",
      ext: bool = False, by_name: dict[str, Any] | None = None) -> Param:
    """Shorthand: ``nullable`` defaults to ``default is None``."""
    return Param(path, default, kind, default is None if nullable is None else nullable, unit, doc, stage, ext,
                 dict(by_name or {}))


def _ref(group: str, what: str, stage: str = "source") -> list[Param]:
    """``<group>.file`` and ``<group>.key`` of an HDF5 reference."""
    return [
        P(f"{group}.file", None, FilePath(), f"file holding the {what} (default: `intensities.file`)", stage=stage),
        P(f"{group}.key", None, Text(describe="an HDF5 dataset path"), f"dataset path of the {what} inside the file",
          stage=stage),
    ]


#: Groups (mappings) of the tree, with a one-line doc each.
GROUPS: dict[str, str] = {
    "intensities": "the raw diffraction frames, (N, H, W) or a raster (A, B, H, W)",
    "positions": "the scan positions; slow = y = rows, fast = x = columns",
    "positions.bounding_box": "restrict the scan points by array index",
    "mask": "detector mask, (H, W) or like the frames; nonzero = valid",
    "flatfield": "flat field, (H, W) or like the frames; frames are divided by it (zeros are masked)",
    "darkfield": "dark frame(s); subtracted, negatives set to 0",
    "normalisation": "per-point monitor; frame <- frame / m * mean(m) where |m - mean| < sigma * std",
    "framefilter": "per-point filter; > 0 keeps the point",
    "recorded_energy": "photon energy read from a file instead of `energy`",
    "recorded_distance": "distance read from a file instead of `distance`",
    "recorded_psize": "pixel size read from a file instead of `psize`",
    "frameorder": "re-order the selected scan points",
}

PARAMS: tuple[Param, ...] = (
    # --- PtyScan (ptypy core/data.py)
    P("name", "PtyScan", Choice(NAMES), "ptypy class the parameters are written for; `PtydScan` reprocesses a "
      ".ptyd given as `source`", stage="source"),
    P("dfile", None, FilePath(), "output .ptyd file (CLI `--dfile` overrides)", stage="output"),
    P("save", None, Choice((None, "append", "link", "merge")), "save mode; null = 'append' (ptydask always writes "
      "a file)", stage="output"),
    P("chunk_format", ".chunk%02d", Text(describe="a printf pattern with one integer field"),
      "part-file suffix in 'link' mode (ptypy ignores it)", stage="output"),
    P("auto_center", None, Flag(), "null: automatic centre if `center` is null; true: always automatic; "
      "false: never (null centre = frame centre)", stage="prepare"),
    P("load_parallel", "data", Choice(("data", "common", "all")), "MPI loading scheme of ptypy", stage="unused",
      nullable=True),
    P("rebin", None, Integer(1, 32), "rebin factor; must divide the ROI", stage="prepare"),
    P("orientation", None, Orientation(), "transpose / flip of the frames, applied in that order", stage="prepare"),
    P("min_frames", 1, Integer(lo=1), "minimum frames per MPI rank per call in ptypy", stage="unused"),
    P("positions_theory", None, PositionList(), "theoretical positions; used when the source has none; "
      "sets `num_frames`", stage="source", unit="m"),
    P("num_frames", None, Integer(lo=1), "prepare only the first `num_frames` frames", stage="prepare"),
    P("label", None, Text(), "free text stored as meta/label", stage="meta"),
    P("experimentID", None, Text(), "experiment identifier", stage="unused"),
    P("version", 0.1, Number(), "stored as meta/version", stage="meta"),
    P("shape", 256, Shape(), "ROI cut around the centre; made square (smaller side)", stage="prepare", nullable=True,
      unit="px", by_name={"Hdf5Loader": None, "Hdf5LoaderFast": None}),
    P("center", "fftshift", Center(), "optical axis in raw-frame pixels (row, col)", stage="prepare", nullable=True,
      unit="px"),
    P("psize", 172e-6, NumberOrPair(lo=0, strict=True), "raw detector pixel size; stored x rebin", stage="meta",
      unit="m"),
    P("distance", 7.19, Number(lo=0, strict=True), "sample-detector distance", stage="meta", unit="m"),
    P("energy", 7.2, Number(lo=0, strict=True), "photon energy (electron energy with `electron_data`)",
      stage="meta", unit="keV"),
    P("add_poisson_noise", False, Flag(), "only used by ptypy's simulated MoonFlowerScan", stage="unused"),
    # --- PtydScan
    P("source", None, FilePath(), "PtydScan only: the input .ptyd to reprocess (its meta gives the defaults of "
      "shape, center, psize, energy, distance, label, version)", stage="source"),
    # --- Hdf5Loader (ptypy experiment/hdf5_loader.py)
    P("intensities.file", None, FilePath(), "file holding the frames (HDF5, NeXus, CXI, TIFF, CBF, MIB, Zarr, npy, "
      "...); required", stage="source"),
    P("intensities.key", None, Text(describe="an HDF5 dataset path"), "dataset path of the frames (optional for "
      "CXI/NeXus files)", stage="source"),
    P("positions.file", None, FilePath(), "file holding the positions (default: `intensities.file`)", stage="source"),
    P("positions.slow_key", None, Text(describe="an HDF5 dataset path"), "dataset of the slow-axis (y) positions",
      stage="source"),
    P("positions.fast_key", None, Text(describe="an HDF5 dataset path"), "dataset of the fast-axis (x) positions",
      stage="source"),
    P("positions.slow_multiplier", 1.0, Number(), "factor from slow motor units to metres", stage="source"),
    P("positions.fast_multiplier", 1.0, Number(), "factor from fast motor units to metres", stage="source"),
    P("positions.slow_index", None, Integer(), "column of a multi-column slow dataset", stage="source"),
    P("positions.fast_index", None, Integer(), "column of a multi-column fast dataset", stage="source"),
    P("positions.skip", 1, Integer(lo=1), "take every k-th point (in each direction of a raster)", stage="source"),
    P("positions.bounding_box.slow_axis_bounds", None, Bounds(), "slow-axis index range kept", stage="source"),
    P("positions.bounding_box.fast_axis_bounds", None, Bounds(), "fast-axis index range kept", stage="source"),
    *_ref("mask", "mask"),
    P("mask.invert", False, Flag(), "invert the mask (zero = valid)", stage="source"),
    *_ref("flatfield", "flat field"),
    *_ref("darkfield", "dark frame(s)"),
    *_ref("normalisation", "monitor values"),
    P("normalisation.sigma", 3.0, Number(lo=0, strict=True), "outlier limit of the monitor, in standard deviations",
      stage="prepare"),
    *_ref("framefilter", "filter values"),
    *_ref("recorded_energy", "energy"),
    P("recorded_energy.multiplier", 1.0, Number(), "factor from the stored value to keV", stage="source"),
    P("recorded_energy.offset", 0.0, Number(), "added after the multiplier", stage="source", unit="keV"),
    *_ref("recorded_distance", "distance"),
    P("recorded_distance.multiplier", 1.0, Number(), "factor from the stored value to metres", stage="source"),
    *_ref("recorded_psize", "pixel size"),
    P("recorded_psize.multiplier", 1.0, Number(), "factor from the stored value to metres", stage="source"),
    P("padding", None, IntList(length=4, describe="four integers >= 0 (top, bottom, left, right)"),
      "zero padding of frames (weight 0) before the ROI step", stage="prepare", unit="px"),
    P("outer_index", None, Integer(lo=0), "index into an outer axis (spectro/tomography stacks)", stage="source"),
    P("electron_data", False, Flag(), "`energy` is an electron kinetic energy; the photon energy of equal "
      "wavelength is stored", stage="source"),
    P("frameorder.indices", None, IntList(), "new order of the selected scan points", stage="source"),
    # --- ptydask extensions
    P("rebin_mode", "mean", Choice(("mean", "sum")), "'mean' (ptypy) or 'sum' (keeps photon counts)",
      stage="prepare", ext=True),
    P("hot_pixels", None, Number(lo=0, strict=True), "mask hot pixels: sigma of the hot-pixel test",
      stage="prepare", ext=True),
    P("dead_pixels", False, Flag(), "mask pixels that never count", stage="prepare", ext=True),
    P("saturation", None, Number(lo=0, strict=True), "mask pixels reaching this raw count in any frame",
      stage="prepare", ext=True, unit="counts"),
    P("compression", "gzip", Choice(("gzip", None)), "HDF5 filter of data/weights (gzip is readable by ptypy)",
      stage="output", ext=True, nullable=True),
    P("compression_level", 1, Integer(0, 9), "gzip level", stage="output", ext=True),
    P("frames_per_block", None, Integer(lo=1), "frames per Dask block = per chunk group (null: blocks of about "
      "128 MiB of raw frames)", stage="source", ext=True),
    P("allow_external_links", False, Flag(), "follow HDF5 external links and virtual-dataset sources of the input "
      "files that point outside their folder (refused by default: a file should not make ptydask read elsewhere)",
      stage="source", ext=True),
)

BY_PATH: dict[str, Param] = {p.path: p for p in PARAMS}


def _tree(params: tuple[Param, ...]) -> dict[str, Any]:
    """Key names as a nested dict: ``{'positions': {'bounding_box': {...}, 'file': None}, ...}``."""
    tree: dict[str, Any] = {}
    for p in params:
        *parents, leaf = p.path.split(".")
        node = tree
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = None
    return tree


TREE = _tree(PARAMS)


def is_group(path: str) -> bool:
    """True for a group path such as ``positions.bounding_box``."""
    return path in GROUPS


def children(group: str) -> list[str]:
    """Key names directly under ``group`` (``""`` = top level)."""
    node = TREE
    for k in group.split(".") if group else []:
        node = node[k]
    return list(node)
