"""Time the full metric suite on 100 pairs and print the time per metric.

    .venv/bin/python benchmarks/bench_metrics.py [--pairs N] [--preset all|table1|...] [--set NAME]

Uses the first N pairs of a real pair set (default harvard_pet_mri, 256x256) when ../shared/data
is found, with the fused image the rounded mean of the two sources (any fused image will do for
timing), otherwise N synthetic 256x256 pairs. Images are read once, as each preset reads them;
only the metric calls are timed. One warm-up call per metric (imports, TensorFlow start-up)
is excluded. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def real_pairs(name: str, n: int):
    from funfusean_tf.data.datasets import named_pairs
    from funfusean_tf.data.pairs import find_data_root

    root = find_data_root(REPO)
    if root is None:
        return None
    try:
        return named_pairs(name, root=root)[:n]
    except (KeyError, FileNotFoundError):
        return None


def synthetic_triples(n: int):
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for _ in range(n):
        a, b = (ndimage.gaussian_filter(rng.random((256, 256)), s) for s in (1.5, 4.0))
        a, b = ((x - x.min()) / (x.max() - x.min()) * 255 for x in (a, b))
        a, b = np.round(a), np.round(b)
        yield np.round((a + b) / 2), a, b


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100, help="number of pairs (default 100)")
    parser.add_argument("--preset", default="all", help="metric preset (default all)")
    parser.add_argument("--set", default="harvard_pet_mri", help="real pair set to read (default harvard_pet_mri)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO))

    import numpy as np

    from funfusean_tf.evaluation import read_grey_as
    from funfusean_tf.metrics.presets import get_preset

    presets = get_preset(args.preset)
    pairs = real_pairs(args.set, args.pairs)
    triples_by_grey: dict[str, list] = {}
    if pairs:
        source = f"{len(pairs)} pairs of {args.set}, fused = rounded mean of the sources"
        for grey in {p.grey for p in presets}:
            triples = []
            for pair in pairs:
                a, b = read_grey_as(pair.mri, grey), read_grey_as(pair.pet, grey)
                triples.append((np.round((a + b) / 2), a, b))
            triples_by_grey[grey] = triples
    else:
        source = f"{args.pairs} synthetic 256x256 pairs (real data not found)"
        triples = list(synthetic_triples(args.pairs))
        triples_by_grey = {p.grey: triples for p in presets}

    print(f"metric timings on {source}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
          f"python {platform.python_version()}")
    print("wall = elapsed time; cpu = this process's CPU time (what other jobs on a shared machine do not inflate)")
    print(f"{'metric':<22} {'wall s':>9} {'ms / pair':>10} {'cpu s':>9} {'ms / pair':>10}")
    grand = grand_cpu = 0.0
    for preset in presets:
        triples = triples_by_grey[preset.grey]
        for metric in preset.metrics:
            metric.func(*triples[0])  # warm-up
            start, start_cpu = time.perf_counter(), time.process_time()
            failures = 0
            for f, a, b in triples:
                try:
                    metric.func(f, a, b)
                except ValueError:
                    failures += 1
            total, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            grand += total
            grand_cpu += cpu
            note = f"  ({failures} undefined)" if failures else ""
            n = len(triples)
            print(f"{preset.name + '.' + metric.name:<22} {total:>9.2f} {1000 * total / n:>10.1f} "
                  f"{cpu:>9.2f} {1000 * cpu / n:>10.1f}{note}")
    n = max(1, len(next(iter(triples_by_grey.values()))))
    print(f"{'all metrics':<22} {grand:>9.2f} {1000 * grand / n:>10.1f} {grand_cpu:>9.2f} {1000 * grand_cpu / n:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
