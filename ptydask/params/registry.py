"""The one registry of ``scan.data`` parameters: names, kinds, defaults, units, allowed values, docs.

Names follow ptypy's ``scan.data`` tree (``PtyScan`` and ``Hdf5Loader``);
ptydask's own additions are marked ``ext``. Every consumer takes its
vocabulary from :data:`PARAMS` through :func:`vocabulary` / :func:`defaults`:

- ``recipe``: recipe validation and defaults (``ptydask.recipe``) and ``docs/recipe.md``;
- ``prepare``: the keywords, defaults and signature of :func:`ptydask.steps.prepare`;
- ``ptyscan``: ``PtyScan.DEFAULT`` and its checks (``ptydask.ptyscan``); the ``prepare``
  keywords outside it are a PtyScan's ``prepare_options``;
- ``plugin``: the ``Defaults:`` section of the ptypy plugin ``PtydaskScan``.

``stage`` says where a value goes: ``source`` (``open_frames``), ``prepare``,
``output`` (``to_ptyd``), ``meta`` (stored frames' meta) or ``unused``
(accepted for ptypy compatibility, no effect in ptydask).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .kinds import (
    ArrayLike,
    Bounds,
    Center,
    Choice,
    FilePath,
    Flag,
    Integer,
    IntList,
    Invalid,
    Kind,
    Number,
    NumberOrPair,
    NumberOrRef,
    Orientation,
    PositionList,
    Shape,
    Text,
    describe_all,
)

#: The consumers of the registry (see the module docstring).
VOCABULARIES = ("recipe", "prepare", "ptyscan", "plugin")

#: Values of ``name`` ptydask understands (ptypy class names).
NAMES = ("PtyScan", "Hdf5Loader", "Hdf5LoaderFast", "PtydScan")
#: Names that read raw frames through ptypy's Hdf5Loader vocabulary (``shape`` defaults to None).
HDF5_NAMES = ("Hdf5Loader", "Hdf5LoaderFast")
STAGES = ("source", "prepare", "meta", "output", "unused")


#: The ``.ptyd`` save modes (one chunk group per block, one linked part file per block, one chunk).
SAVE_MODES = ("append", "link", "merge")

@dataclass(frozen=True)
class Param:
    """One ``scan.data`` parameter.

    ``path`` dotted key path; ``default`` ptypy's default (``by_name``: recipe defaults
    that depend on ``name``; ``default_in``: another default in one vocabulary);
    ``kind`` allowed values; ``nullable`` whether ``null``/``None`` is allowed;
    ``unit`` physical unit; ``doc`` one line (``help``: another line for the
    ptypy plugin); ``ext`` a ptydask extension; ``stage`` where the value goes;
    ``uses`` the vocabularies that take it (:data:`VOCABULARIES`).
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
    uses: frozenset = frozenset({"recipe"})
    default_in: dict[str, Any] = field(default_factory=dict)
    help: str = ""
    kind_in: dict[str, Kind] = field(default_factory=dict)

    def default_for(self, name: str) -> Any:
        """The recipe default when the recipe's ``name`` is ``name``."""
        return self.by_name.get(name, self.default)

    def kind_for(self, use: str) -> Kind:
        """The kind of values in vocabulary ``use`` (``kind`` unless ``kind_in`` says otherwise)."""
        return self.kind_in.get(use, self.kind)

    def check(self, value: Any, use: str = "recipe") -> Any:
        """``value`` normalised by its kind in ``use`` (``None`` when nullable); raises :class:`Invalid`."""
        if value is None:
            if self.nullable:
                return None
            raise Invalid(describe_all(self.kind_for(use), False))
        return self.kind_for(use)(value)

    def describe(self, use: str = "recipe") -> str:
        """The allowed values in words."""
        return describe_all(self.kind_for(use), self.nullable)


def P(path: str, default: Any, kind: Kind, doc: str, *, stage: str, nullable: bool | None = None, unit: str = "",
      ext: bool = False, by_name: dict[str, Any] | None = None, uses: str = "recipe",
      default_in: dict[str, Any] | None = None, help: str = "", kind_in: dict[str, Kind] | None = None) -> Param:
    """Shorthand: ``nullable`` defaults to ``default is None``; ``uses`` is a space-separated list."""
    vocab = frozenset(uses.split())
    assert vocab <= set(VOCABULARIES), uses
    return Param(path, default, kind, default is None if nullable is None else nullable, unit, doc, stage, ext,
                 dict(by_name or {}), vocab, dict(default_in or {}), help, dict(kind_in or {}))


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
      ".ptyd given as `source`", stage="source", uses="recipe ptyscan plugin", default_in={"plugin": "PtydaskScan"},
      kind_in={"ptyscan": Text(describe="a class name")}),
    P("dfile", None, FilePath(), "output .ptyd file (CLI `--dfile` overrides)", stage="output", uses="recipe ptyscan"),
    P("save", None, Choice((None, *SAVE_MODES)), "save mode; null = 'append' (ptydask always writes "
      "a file)", stage="output", uses="recipe ptyscan"),
    P("chunk_format", ".chunk%02d", Text(describe="a printf pattern with one integer field"),
      "part-file suffix in 'link' mode (ptypy ignores it)", stage="output", uses="recipe ptyscan"),
    P("auto_center", None, Flag(), "null: automatic centre if `center` is null; true: always automatic; "
      "false: never (null centre = frame centre)", stage="prepare", uses="recipe prepare ptyscan"),
    P("load_parallel", "data", Choice(("data", "common", "all", "none")), "MPI loading scheme of ptypy", stage="unused",
      nullable=True, uses="recipe ptyscan"),
    P("rebin", None, Integer(1, 32), "rebin factor; must divide the ROI", stage="prepare", uses="recipe prepare ptyscan"),
    P("orientation", None, Orientation(), "transpose / flip of the frames, applied in that order", stage="prepare", uses="recipe prepare ptyscan"),
    P("min_frames", 1, Integer(lo=1), "minimum frames per MPI rank per call in ptypy", stage="unused", uses="recipe ptyscan"),
    P("positions_theory", None, PositionList(), "theoretical positions; used when the source has none; "
      "sets `num_frames`", stage="source", unit="m", uses="recipe ptyscan"),
    P("num_frames", None, Integer(lo=1), "prepare only the first `num_frames` frames", stage="prepare", uses="recipe prepare ptyscan"),
    P("label", None, Text(), "free text stored as meta/label", stage="meta", uses="recipe ptyscan"),
    P("experimentID", None, Text(), "experiment identifier", stage="unused", uses="recipe ptyscan"),
    P("version", 0.1, Number(), "stored as meta/version", stage="meta", uses="recipe ptyscan"),
    P("shape", 256, Shape(), "ROI cut around the centre; made square (smaller side)", stage="prepare", nullable=True,
      unit="px", by_name={"Hdf5Loader": None, "Hdf5LoaderFast": None}, uses="recipe prepare ptyscan"),
    P("center", "fftshift", Center(), "optical axis in raw-frame pixels (row, col)", stage="prepare", nullable=True,
      unit="px", uses="recipe prepare ptyscan"),
    P("psize", 172e-6, NumberOrPair(lo=0, strict=True), "raw detector pixel size; stored x rebin", stage="meta",
      unit="m", uses="recipe ptyscan"),
    P("distance", 7.19, Number(lo=0, strict=True), "sample-detector distance", stage="meta", unit="m", uses="recipe ptyscan"),
    P("energy", 7.2, Number(lo=0, strict=True), "photon energy (electron energy with `electron_data`)",
      stage="meta", unit="keV", uses="recipe ptyscan"),
    P("add_poisson_noise", False, Flag(), "only used by ptypy's simulated MoonFlowerScan", stage="unused", uses="recipe ptyscan"),
    # --- PtydScan
    P("source", None, FilePath(), "PtydScan only: the input .ptyd to reprocess (its meta gives the defaults of "
      "shape, center, psize, energy, distance, label, version)", stage="source",
      help="Raw frames (file, glob, folder) or a .ptyd file", uses="recipe plugin"),
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
      "zero padding of frames (weight 0) before the ROI step", stage="prepare", unit="px", uses="recipe prepare"),
    P("outer_index", None, Integer(lo=0), "index into an outer axis (spectro/tomography stacks)", stage="source"),
    P("electron_data", False, Flag(), "`energy` is an electron kinetic energy; the photon energy of equal "
      "wavelength is stored", stage="source"),
    P("frameorder.indices", None, IntList(), "new order of the selected scan points", stage="source"),
    # --- ptydask extensions
    P("rebin_mode", "mean", Choice(("mean", "sum")), "'mean' (ptypy) or 'sum' (keeps photon counts)",
      stage="prepare", ext=True, uses="recipe prepare ptyscan plugin"),
    P("hot_pixels", None, Number(lo=0, strict=True), "mask hot pixels: sigma of the hot-pixel test (summed counts "
      "over 2x the brightest neighbour's and a binomial tail below Phi(-sigma), also without the pixel's "
      "brightest frame; at most Phi(-sigma) false positives per good pixel; ptydask.steps.badpixels)",
      stage="prepare", ext=True, uses="recipe prepare"),
    P("dead_pixels", False, Flag(), "mask pixels that never count where their neighbours prove they should have "
      "(single pixels, small clusters, blocks up to ~8x8, dead lines; larger zero regions are shadows and "
      "kept), and pixels whose values are all negative (detector gaps); ptydask.steps.badpixels",
      stage="prepare", ext=True, uses="recipe prepare"),
    P("saturation", None, Number(lo=0, strict=True), "mask pixels reaching this raw count in any frame",
      stage="prepare", ext=True, unit="counts", uses="recipe prepare"),
    P("adu_per_photon", None, NumberOrRef(lo=0, strict=True), "detector counts per photon: frames (after dark, "
      "flat, monitor) are divided by it before the window; a per-pixel map's pixels <= 0 or not finite get data "
      "0, weight 0 (`prepare`: also an (H, W) array)", stage="prepare", ext=True, unit="counts/photon",
      uses="recipe prepare", kind_in={"prepare": ArrayLike(describe="a number > 0, an (H, W) array or {file, key}")}),
    P("photon_threshold", None, Number(lo=0), "values below it (in photons, after `adu_per_photon`) become 0",
      stage="prepare", ext=True, unit="photons", uses="recipe prepare"),
    P("round_photons", False, Flag(), "round the photon counts to the nearest integer (half to even)",
      stage="prepare", ext=True, uses="recipe prepare"),
    P("compression", "gzip", Choice(("gzip", None)), "HDF5 filter of data/weights (gzip is readable by ptypy)",
      stage="output", ext=True, nullable=True),
    P("compression_level", 1, Integer(0, 9), "gzip level", stage="output", ext=True),
    P("frames_per_block", None, Integer(lo=1), "frames per Dask block = per chunk group (null: blocks of about "
      "128 MiB of raw frames)", stage="source", ext=True),
    P("allow_external_links", False, Flag(), "follow HDF5 external links and virtual-dataset sources of the input "
      "files that point outside their folder (refused by default: a file should not make ptydask read elsewhere)",
      stage="source", ext=True),
    # --- the Python interfaces only (arrays, the PtyScan life cycle, the ptypy plugin)
    P("dark", None, ArrayLike(), "dark frame(s), (H, W) or (N, H, W); null: the Scan's `dark` variable; false: "
      "none (recipes: `darkfield`)", stage="prepare", ext=True, uses="prepare"),
    P("flat", None, ArrayLike(), "flat field, (H, W) or (N, H, W); null: the Scan's `flat` variable; false: none "
      "(recipes: `flatfield`)", stage="prepare", ext=True, uses="prepare"),
    P("mask", None, ArrayLike(), "user mask, (H, W) or (N, H, W), nonzero = valid, combined with the weights "
      "(recipes: the `mask` group)", stage="prepare", ext=True, uses="prepare"),
    P("normalisation", None, ArrayLike(), "monitor, (N,), or {monitor, sigma}; null: the Scan's `monitor`; false: "
      "none (recipes: the `normalisation` group)", stage="prepare", ext=True, uses="prepare"),
    P("overwrite", False, Flag(), "replace an existing dfile when saving (ptypy renames it to .old; recipes: "
      "`--overwrite`)", stage="output", ext=True, uses="ptyscan plugin",
      help="Replace an existing dfile when saving (ptypy renames it to .old)"),
    P("load_block", None, Integer(lo=1), "frames per load() call of a PtyScan subclass (null: a rank's whole part "
      "of the chunk)", stage="source", ext=True, uses="ptyscan plugin"),
    P("key", None, Text(describe="an HDF5 dataset path"), "dataset path of the frames inside source (HDF5/Zarr), if "
      "not found automatically", stage="source", ext=True, uses="plugin"),
    P("recipe", None, FilePath(), "path of a ptydask recipe file (JSON/YAML); its parameters replace the ones "
      "given here", stage="source", ext=True, uses="plugin"),
    P("spec", None, Text(describe="JSON text or a file path"), "JSON text or path of a JSON/YAML file with further "
      "open_frames arguments (with source)", stage="source", ext=True, uses="plugin"),
)

ALL_BY_PATH: dict[str, Param] = {p.path: p for p in PARAMS}
assert len(ALL_BY_PATH) == len(PARAMS), "duplicate parameter paths"


def vocabulary(use: str) -> tuple[Param, ...]:
    """The parameters one consumer (``use`` in :data:`VOCABULARIES`) takes, in table order."""
    if use not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {use!r}; expected one of {VOCABULARIES}")
    return tuple(p for p in PARAMS if use in p.uses)


def defaults(use: str) -> dict[str, Any]:
    """``{path: default}`` of one consumer's parameters (its own default where it has one)."""
    return {p.path: p.default_in.get(use, p.default) for p in vocabulary(use)}


def prepare_only() -> tuple[str, ...]:
    """The ``prepare`` keywords a PtyScan does not take as ``scan.data`` parameters: its ``prepare_options``."""
    ptyscan = {p.path for p in vocabulary("ptyscan")}
    return tuple(p.path for p in vocabulary("prepare") if p.path not in ptyscan)


def param(path: str) -> Param:
    """The registry entry of ``path``."""
    return ALL_BY_PATH[path]


#: The recipe's parameters (the recipe vocabulary) by path.
RECIPE_PARAMS: tuple[Param, ...] = vocabulary("recipe")
BY_PATH: dict[str, Param] = {p.path: p for p in RECIPE_PARAMS}


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


TREE = _tree(RECIPE_PARAMS)


def is_group(path: str) -> bool:
    """True for a group path such as ``positions.bounding_box``."""
    return path in GROUPS


def children(group: str) -> list[str]:
    """Key names directly under ``group`` (``""`` = top level)."""
    node = TREE
    for k in group.split(".") if group else []:
        node = node[k]
    return list(node)


#: ptypy's ``type`` names for each kind of value (the first class in a kind's MRO that is listed).
PTYPY_TYPES: dict[type, str] = {
    Flag: "bool", Integer: "int", NumberOrRef: "float, int", NumberOrPair: "float, int, tuple, list",
    Number: "float, int", Choice: "str", Orientation: "int, tuple, list, bool", Center: "str, tuple, list, array",
    Shape: "int, tuple, list", Bounds: "tuple, list, array", IntList: "list, tuple, array",
    PositionList: "list, tuple, array", FilePath: "str", Text: "str", ArrayLike: "array, list, tuple",
}


def ptypy_type(p: Param, nullable: bool | None = None) -> str:
    """ptypy's ``type`` field (its ``Defaults:`` vocabulary) of a parameter; ``, None`` when it may be
    ``None`` (``nullable``; default: the parameter's own rule)."""
    for cls in type(p.kind).__mro__:
        if cls in PTYPY_TYPES:
            return PTYPY_TYPES[cls] + (", None" if (p.nullable if nullable is None else nullable) else "")
    raise TypeError(f"{p.path}: no ptypy type for {type(p.kind).__name__}")


def _ptypy_default(value: Any) -> str:
    """A default as ptypy's ``Defaults:`` parser reads it back (``None``, numbers, bare words)."""
    return "None" if value is None else str(value)


def defaults_text(use: str = "plugin") -> str:
    """The ptypy-style ``Defaults:`` section (``[key]``, ``default``, ``type``, ``help``) of one vocabulary."""
    lines = ["Defaults:", ""]
    for p in vocabulary(use):
        value = p.default_in.get(use, p.default)
        help_text = p.help or (p.doc[0].upper() + p.doc[1:] if p.doc else "")
        lines += [f"[{p.path}]", f"default = {_ptypy_default(value)}", f"type = {ptypy_type(p)}",
                  f"help = {help_text if p.path != 'name' or use != 'plugin' else ''}".rstrip(), ""]
    return "\n".join(lines)
