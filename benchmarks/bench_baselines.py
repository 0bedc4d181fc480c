"""Time every classical baseline on one 256x256 pair and print the time per 100 pairs.

    .venv/bin/python benchmarks/bench_baselines.py [--repeats N] [--pair MRI PET] [--threads T]

Uses the first Harvard test pair FunFuseAn shipped when ../shared/data is found (or the files
given with --pair), otherwise a synthetic 256x256 pair. Each method runs once to warm up (imports,
the LP-SR dictionary), then ``repeats`` times; the median is reported. FunFuseAn's Table 1 gives
13.43 s (GF) and 75.69 s (LP-SR) per 100 pairs for the authors' MATLAB runs on their machine:
the numbers are comparable in kind, not across machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_pair(paths):
    import numpy as np

    from funfusean_tf.data.io import load_pair as read_pair

    if paths:
        return read_pair(*paths), f"{paths[0]} + {paths[1]}"
    try:
        from funfusean_tf.data.pairs import find_data_root

        root = find_data_root(REPO)
    except Exception:
        root = None
    if root is not None:
        folder = Path(root) / "aanlib" / "funfusean_test"
        if (folder / "mri" / "1.gif").is_file():
            return read_pair(folder / "mri" / "1.gif", folder / "pet" / "1.gif"), f"{folder}/{{mri,pet}}/1.gif"
    from scipy import ndimage

    rng = np.random.default_rng(0)
    images = [ndimage.gaussian_filter(rng.random((256, 256)), s).astype(np.float32) for s in (1.0, 4.0)]
    images = [(x - x.min()) / (x.max() - x.min()) for x in images]
    return tuple(images), "synthetic 256x256 pair (real data not found)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pair", nargs=2, metavar=("MRI", "PET"))
    parser.add_argument("--threads", type=int, default=None, help="cap OpenCV's threads (default: OpenCV's own)")
    args = parser.parse_args(argv)

    import cv2

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    from funfusean_tf.baselines import BASELINES, fuse_baseline

    (mri, pet), source = load_pair(args.pair)
    print(f"pair: {source} ({mri.shape[0]}x{mri.shape[1]})")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
        f"Python {sys.version.split()[0]}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} thread(s))"
    )
    print(f"{'baseline':<20}{'median per pair (ms)':>22}{'per 100 pairs (s)':>20}")
    for name in BASELINES:
        fuse_baseline(name, mri, pet)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fuse_baseline(name, mri, pet)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{name:<20}{median * 1e3:>22.2f}{median * 100:>20.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
