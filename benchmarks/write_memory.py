"""Child process: write a lazily generated scan of a given size with ``to_ptyd``; print time and peak RSS.

The frames are generated block by block inside the Dask graph (a bright disk plus
counting noise, uint16), so nothing but the writer decides how much is in memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time

import dask.array as da
import numpy as np

from .common import WORK, peak_rss_bytes


def lazy_frames(num_frames: int, shape: tuple[int, int], frames_per_block: int) -> da.Array:
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    disk = (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (h / 6) ** 2).astype(np.uint16) * 1000

    def block(block_info=None):
        loc = block_info[None]["array-location"][0]
        rng = np.random.default_rng(loc[0])
        n = loc[1] - loc[0]
        return rng.integers(0, 16, size=(n, h, w), dtype=np.uint16) + disk

    return da.map_blocks(block, chunks=((frames_per_block,) * (num_frames // frames_per_block), (h,), (w,)),
                         dtype=np.uint16, meta=np.empty((0, 0, 0), np.uint16))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--gib", type=float, default=8.0, help="size of the frames to write, GiB")
    p.add_argument("--frame", type=int, default=512)
    p.add_argument("--block", type=int, default=128, help="frames per Dask block")
    p.add_argument("--save", default="append")
    p.add_argument("--cap", type=int, default=None, help="address-space limit, bytes")
    args = p.parse_args()
    if args.cap:
        resource.setrlimit(resource.RLIMIT_AS, (args.cap, args.cap))
    import ptydask

    frame_bytes = args.frame * args.frame * 2
    n = int(args.gib * 2**30 // frame_bytes) // args.block * args.block
    frames = lazy_frames(n, (args.frame, args.frame), args.block)
    positions = np.zeros((n, 2))
    scan = ptydask.from_arrays(frames, positions, energy=8.0, distance=5.0, psize=75e-6, center=(256, 256))
    out = WORK / "write_memory"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    base = peak_rss_bytes()
    t0 = time.perf_counter()
    path = ptydask.to_ptyd(scan, out / "big.ptyd", save=args.save, progress=False)
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.iterdir())
    back = ptydask.open_ptyd(path)
    assert ptydask.frames_present(back) == n
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"frames": n, "frame_bytes": frame_bytes, "data_gib": n * frame_bytes / 2**30, "seconds": seconds,
                      "peak_rss_bytes": peak_rss_bytes(), "rss_before_write_bytes": base, "file_bytes": size,
                      "save": args.save, "block": args.block}))


if __name__ == "__main__":
    main()
