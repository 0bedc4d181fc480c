"""Timing goals that used to be test assertions, printed as figures next to their goal.

    .venv/bin/python benchmarks/bench_timing_goals.py [--repeats N] [--skip-phantom]

Wall-clock limits do not belong in the test suite (they fail on a slow or busy machine and prove
nothing about correctness); the tests check what these functions compute, this script how long
they take. Each figure is the median over N runs (default 3); CPU = this process's CPU time,
which other jobs on a shared machine do not inflate (but several threads add up in it).

- FSIM of a 256x256 pair (DILRAN's metric, both sources: three phase congruency maps);
  goal: under 3 s of CPU. Was tests/test_metrics_fsim.py.
- FMI on MATLAB edge maps (DILRAN's FMI_edge) of a 256x256 triple; goal: under 1.5 s of CPU.
  Was tests/test_metrics_dilran_matlab.py.
- The default MNI152 phantom (funfusean_tf.data.phantom): generation with an empty cache,
  goal under 60 s wall, and the cached read, which should be much faster. Was tests/test_phantom.py.
  Uses a temporary cache folder, never the user's.

Not a test: run it by hand. Exit status 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _row(name: str, wall: float, cpu: float, goal: str, met: bool) -> None:
    print(f"{name:<44} {wall:>8.2f} {cpu:>8.2f}  {goal:<24} {'met' if met else 'NOT MET'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (default 3)")
    parser.add_argument("--skip-phantom", action="store_true", help="skip the phantom (about a minute)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO))

    import numpy as np
    from scipy import ndimage

    from funfusean_tf.metrics import feature_similarity as fs
    from funfusean_tf.metrics import fmi

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print(f"median of {args.repeats} runs")
    print(f"{'figure':<44} {'wall s':>8} {'cpu s':>8}  {'goal':<24}")

    rng = np.random.default_rng(0)

    def smooth(sigma):
        x = ndimage.gaussian_filter(rng.random((256, 256)), sigma)
        return np.round((x - x.min()) / (x.max() - x.min()) * 255) / 255

    a, b = smooth(1.5), smooth(4.0)
    f = np.round((a + b) / 2 * 255) / 255
    fs.fsim(f[:32, :32], a[:32, :32])  # imports phasepack
    wall, cpu = _timed(lambda: fs.fusion_fsim(f, a, b), args.repeats)
    _row("FSIM, 256x256 pair (both sources)", wall, cpu, "cpu < 3 s", cpu < 3.0)

    a8, b8 = np.round(rng.random((256, 256)) * 255), np.round(rng.random((256, 256)) * 255)
    f8 = np.round((a8 + b8) / 2)
    wall, cpu = _timed(lambda: fmi(f8, a8, b8, 3, "edge"), args.repeats)
    _row("FMI_edge, 256x256 triple", wall, cpu, "cpu < 1.5 s", cpu < 1.5)

    if not args.skip_phantom:
        from funfusean_tf.data import phantom as ph

        with tempfile.TemporaryDirectory() as cache:
            os.environ[ph.CACHE_ENV_VAR] = cache
            config = ph.PhantomConfig()
            path = ph.cache_dir() / f"phantom-{config.cache_key()}.npz"
            wall, cpu = time.perf_counter(), time.process_time()
            ph.phantom_pairs(config)  # empty cache: simulates and writes it
            first_wall, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
            _row("default phantom, generated (empty cache)", first_wall, first_cpu, "wall < 60 s",
                 first_wall < 60)
            assert path.is_file()
            wall, cpu = _timed(lambda: ph.phantom_pairs(config), args.repeats)
            _row("default phantom, read from the cache", wall, cpu, "wall < generation", wall < first_wall)
            print(f"{'  generation / cached read (wall)':<44} {first_wall / wall:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
