"""Automatic masks x centre x user mask: every combination against a plain numpy/scipy reference (issue #20).

``prepare`` once mixed Dask arrays and ``dask.delayed`` objects in one ``dask.compute`` and read
its results by position; dask 2026.8 returns them in another order, so e.g. ``hot_pixels`` with
a user mask and a fixed centre failed. The reference here shares no code with ``ptydask.steps``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage, special, stats

from ptydask.scan import from_arrays
from ptydask.steps import prepare
from ptydask.steps.reductions import compute_named

H = W = 20
N = 12
MASKS = [dict(zip(("hot", "dead", "saturated"), bits)) for bits in itertools.product((False, True), repeat=3)]


def _frames() -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:H, :W]
    beam = 400 * np.exp(-((yy - 11.3) ** 2 + (xx - 8.6) ** 2) / 8)
    frames = rng.poisson(beam + 3, (N, H, W)).astype(np.uint16)
    frames[:, 2, 17] += 900  # hot
    frames[:, :, 4] = 0  # dead column
    frames[3, 15, 15] = 5000  # saturated once
    return frames


def _reference(frames, weights, user, hot, dead, saturated, center_auto):
    """(bad map, counts, centre) by the documented rules, in plain numpy/scipy."""
    valid = weights > 0 if user is None else (weights > 0) & (user != 0)
    peak, total = frames.max(0).astype(float), frames.sum(0, dtype=np.float64)
    bad = np.zeros((H, W), bool)
    counts = {}
    if saturated:
        counts["saturated"] = int((peak >= 4000).sum())
        bad |= peak >= 4000
    if dead:  # on these frames the dead column is the only zero region, and bright enough for the
        counts["dead"] = int((peak <= 0).sum())  # rule of ptydask.steps.badpixels to prove every pixel dead
        bad |= peak <= 0
    if hot:  # ptydask.steps.badpixels: 2x the brightest neighbour and a Chernoff binomial tail below
        population = valid & ~bad  # Phi(-6), with and without each pixel's brightest frame
        ring = np.ones((3, 3), bool)
        ring[1, 1] = False

        def spikes(summed):
            s = np.where(population, np.maximum(summed, 0), 0.0)
            b = ndimage.maximum_filter(s, footprint=ring, mode="constant", cval=0.0)
            a = np.divide(s, s + b, out=np.zeros_like(s), where=s + b > 0)
            kl = special.xlogy(a, 2 * a) + special.xlogy(1 - a, 2 * (1 - a))
            return (s > 2 * b) & (a > 0.5) & ((s + b) * kl > -np.log(stats.norm.sf(6.0)))

        found = population & spikes(total) & spikes(total - peak)
        counts["hot"] = int(found.sum())
        bad |= found
    if user is not None:
        counts["user"] = int((user == 0).sum())
    good = valid & ~bad
    centre = None
    if center_auto:
        m = frames * good
        tot = m.sum((1, 2))
        rows = (m.sum(2) * np.arange(H)).sum(1) / tot
        cols = (m.sum(1) * np.arange(W)).sum(1) / tot
        centre = (rows.mean(), cols.mean())
    return good, counts, centre


@pytest.mark.parametrize("user_kind", [None, "numpy", "dask"])
@pytest.mark.parametrize("center_auto", [False, True])
@pytest.mark.parametrize("masks", MASKS, ids=lambda m: "+".join(k for k, v in m.items() if v) or "none")
def test_every_combination_of_masks_centre_and_user_mask(masks, center_auto, user_kind):
    frames = _frames()
    weights = np.ones((H, W))
    weights[0, 0] = 0
    user = None
    if user_kind is not None:
        user = np.ones((H, W), bool)
        user[5:7, 12] = False
    scan = from_arrays(da.from_array(frames, chunks=(5, -1, -1)), np.zeros((N, 2)), weights,
                       energy=7.2, distance=1.0, psize=1e-4)
    kw = dict(hot_pixels=6.0 if masks["hot"] else None, dead_pixels=masks["dead"],
              saturation=4000 if masks["saturated"] else None)
    if user is not None:
        kw["mask"] = da.from_array(user, chunks=-1) if user_kind == "dask" else user
    out = prepare(scan, shape=None, center=None if center_auto else "fftshift", **kw)

    good, counts, centre = _reference(frames, weights, user, masks["hot"], masks["dead"], masks["saturated"],
                                      center_auto)
    np.testing.assert_array_equal(out["weights"].values > 0, good)
    got = out.attrs["info"].get("masks", {})
    if any(masks.values()):
        assert got == counts
    elif user is not None:
        assert got.get("user", counts["user"]) == counts["user"]
    if center_auto:
        np.testing.assert_allclose(out.attrs["info"]["center"], centre, rtol=0, atol=1e-9)
    else:
        assert out.attrs["info"]["center"] == [H // 2, W // 2]
    np.testing.assert_array_equal(out["data"].values, frames)


def test_compute_named_keeps_every_value_with_its_name():
    """Arrays, delayed objects, numpy arrays and None in one call: each result under its own key."""
    import dask

    arr = da.arange(6, chunks=2)
    lazy = {"a": arr, "d": dask.delayed(lambda: "delayed")(), "b": arr * 2, "n": None, "np": np.ones(2),
            "s": arr.sum()}
    got = compute_named(lazy)
    assert list(got) == list(lazy)
    np.testing.assert_array_equal(got["a"], np.arange(6))
    assert got["d"] == "delayed"
    np.testing.assert_array_equal(got["b"], np.arange(6) * 2)
    assert got["n"] is None and got["s"] == 15
    np.testing.assert_array_equal(got["np"], np.ones(2))


# --------------------------------------------------------------------------- prepare_mpi (under mpiexec)

#: ``prepare_mpi`` keywords per case: every combination of automatic masks and centre, all with a user mask.
MPI_CASES = {
    f"{'+'.join(k for k, v in m.items() if v) or 'none'}-{'auto' if auto else 'fixed'}": dict(
        shape=32, center=None if auto else "fftshift", hot_pixels=4.0 if m["hot"] else None,
        dead_pixels=m["dead"], saturation=60000 if m["saturated"] else None)
    for m in MASKS for auto in (False, True)
}


def user_mask_of(scan) -> np.ndarray:
    """The user mask of the MPI cases: a few invalid pixels on the frames of ``scan``."""
    mask = np.ones(scan["data"].shape[1:], dtype=bool)
    mask[10:12, 30] = False
    mask[0, :3] = False
    return mask


def test_prepare_mpi_equals_serial_prepare_for_every_combination(tmp_path):
    here = Path(__file__).resolve().parent
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec: pip install 'ptydask[mpi]' (mpi4py + the mpich wheel)")
    pytest.importorskip("mpi4py")
    sys.path.insert(0, str(here / "mpi"))
    from scenario import make_raw, open_raw

    raw = make_raw(tmp_path / "raw.h5")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
    cmd = [mpiexec, "-n", "2", sys.executable, str(here / "mpi" / "masks_worker.py"), str(raw), str(tmp_path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n 2 did not finish in 300 s (deadlock?):\n{exc.stderr}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [dict(np.load(tmp_path / f"masks_rank{r}.npz")) for r in range(2)]
    scan = open_raw(raw)
    for name, kw in MPI_CASES.items():
        want = prepare(scan, mask=user_mask_of(scan), **kw)
        counts = want.attrs["info"]["masks"]
        for saved in ranks:
            idx = saved["index"]
            np.testing.assert_array_equal(saved[f"{name}/data"], want["data"].values[idx], err_msg=name)
            np.testing.assert_array_equal(saved[f"{name}/weights"], want["weights"].values, err_msg=name)
            np.testing.assert_array_equal(saved[f"{name}/center"], want.attrs["info"]["center"], err_msg=name)
            assert saved[f"{name}/masks"].tolist() == [counts.get(k, -1) for k in ("saturated", "dead", "hot", "user")]
