"""Cost of the contribution maps relative to a forward pass, on a batch of 256x256 pairs.

    .venv/bin/python benchmarks/bench_contributions.py [--batch N] [--size S] [--repeats R] [--jit]
        [--bn batch|moving|both] [--threads T]

Prints ratios measured in one run, not absolute times to compare across machines: for each
variant, (time of the variant on the batch) / (time of the forward pass on the same batch), with
forward and variant timed alternately so that a neighbour's load drifts over both alike; three
views of the ratio (median of per-round wall ratios, ratio of the fastest walls, ratio of process
CPU times) and the load average, since a shared machine moves wall times a lot. The issue's goal
is <= 2x; a naive Keras version measured 2.5x, the authors' PyTorch 3.2x.

Variants:
- ``maps``: funfusean_tf.visualize.contribution_maps' traced function, the whole batch in one
  pass (one backward pass, gradients w.r.t. the two input tensors only);
- ``maps-tape``: the same with the tape run through to the input tensors (without the depthwise
  transpose of the four first, 1-channel-input convolutions that ``maps`` does itself): the
  plain tf.function + GradientTape version;
- ``maps-xla``: compiled with XLA (jit_compile=True; plain tape, since XLA's CPU depthwise
  convolution is slow), against an XLA-compiled forward;
- ``eager``: eager GradientTape watching every variable, one tape.gradient per input (the
  structure of the original's two tf.gradients calls), no tf.function.

A FunFuseAn with the guarded high-frequency rule and its default initialisation is used: weights
do not change the cost. BatchNorm "batch" statistics are what the original computes with.
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


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _time(fn, *args) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, waiting for its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    for tensor in result if isinstance(result, (list, tuple)) else (result,):
        tensor.numpy()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(forward, variant, args, repeats: int) -> dict:
    """Forward and variant timed alternately; several views of their ratio.

    ``median``: median over rounds of (variant wall / forward wall) of the same round;
    ``best``: fastest variant wall / fastest forward wall (the least disturbed runs);
    ``cpu``: median process CPU time of the variant / that of the forward (this process's work,
    which a neighbour's load disturbs less than wall time).
    """
    for _ in range(2):  # trace / compile and warm up
        _time(forward, *args), _time(variant, *args)
    rounds = []
    for _ in range(repeats):
        rounds.append((_time(forward, *args), _time(variant, *args)))
    f_wall = [f[0] for f, _ in rounds]
    v_wall = [v[0] for _, v in rounds]
    return {
        "forward": statistics.median(f_wall),
        "variant": statistics.median(v_wall),
        "median": statistics.median(v / f for f, v in zip(f_wall, v_wall)),
        "best": min(v_wall) / min(f_wall),
        "cpu": statistics.median(v[1] for _, v in rounds) / statistics.median(f[1] for f, _ in rounds),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="pairs in the batch (default 4)")
    parser.add_argument("--size", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bn", choices=("batch", "moving", "both"), default="batch")
    parser.add_argument("--jit", action="store_true", help="also time the XLA-compiled variants")
    parser.add_argument("--no-eager", action="store_true", help="skip the (slow) eager variant")
    parser.add_argument("--threads", type=int, help="TensorFlow intra-op threads (default: TF's own)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import numpy as np
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from funfusean_tf.models.funfusean import build_funfusean
    from funfusean_tf.visualize import _engine

    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size, 1)
    mri = tf.constant(rng.random(shape, dtype=np.float32))
    pet = tf.constant(rng.random(shape, dtype=np.float32))
    print(f"{platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} CPUs | "
          f"TF {tf.__version__} | devices: {', '.join(d.device_type for d in tf.config.list_logical_devices())}")
    print(f"batch of {args.batch} pairs of {args.size}x{args.size}; {args.repeats} alternating rounds; "
          f"load average before: {_load_average()}")
    print(f"{'bn':<7} {'variant':<10} {'forward s':>10} {'variant s':>10} {'median':>7} {'best':>7} {'cpu':>7}")
    modes = ("batch", "moving") if args.bn == "both" else (args.bn,)
    for bn in modes:
        model = build_funfusean(bn_statistics=bn, hf_rule="guarded")
        spec = tf.TensorSpec((None, None, None, 1), tf.float32)
        forward = tf.function(lambda a, b, m=model: m([a, b], training=False), input_signature=[spec, spec])
        rows = [("maps", forward, _engine(model, False).contributions),
                ("maps-tape", forward, _engine(model, False, split_input_convs=False).contributions)]
        if args.jit:
            forward_xla = tf.function(lambda a, b, m=model: m([a, b], training=False), input_signature=[spec, spec],
                                      jit_compile=True)
            rows.append(("maps-xla", forward_xla, _engine(model, True).contributions))
        if not args.no_eager:
            def eager(a, b, m=model):
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch([a, b])
                    fused = m([a, b], training=False)
                    total = tf.reduce_sum(fused)
                return tape.gradient(total, a), tape.gradient(total, b), fused
            rows.append(("eager", forward, eager))
        for name, fwd, variant in rows:
            r = measure(fwd, variant, (mri, pet), args.repeats)
            print(f"{bn:<7} {name:<10} {r['forward']:>10.3f} {r['variant']:>10.3f} {r['median']:>6.2f}x "
                  f"{r['best']:>6.2f}x {r['cpu']:>6.2f}x", flush=True)
    print(f"load average after: {_load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
