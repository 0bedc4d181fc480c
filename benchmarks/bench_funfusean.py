"""FunFuseAn speed on this machine: forward time per 256x256 pair and train-step time.

Prints absolute times (they depend on the machine and its load) and the ratios measured in the
same run, which travel better: train step / forward, batch-8 forward per pair / batch-1 forward.
Not a test: run it by hand, on a quiet machine.

    python benchmarks/bench_funfusean.py [--size 256] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from funfusean_tf.losses import funfusean_loss  # noqa: E402
from funfusean_tf.models.funfusean import build_funfusean  # noqa: E402
from funfusean_tf.config import TrainConfig  # noqa: E402
from funfusean_tf.training import make_train_step, fusion_objective  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    fn()  # trace / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    model = build_funfusean(hf_rule="guarded")
    spec = tf.TensorSpec((None, None, None, 1), tf.float32)
    forward = tf.function(lambda a, b: model([a, b], training=False), input_signature=[spec, spec])
    one = [tf.constant(rng.random((1, args.size, args.size, 1), dtype=np.float32)) for _ in range(2)]
    eight = [tf.constant(rng.random((8, args.size, args.size, 1), dtype=np.float32)) for _ in range(2)]

    t_forward = _median_time(lambda: forward(*one).numpy(), args.repeats)
    t_forward8 = _median_time(lambda: forward(*eight).numpy(), max(3, args.repeats // 4)) / 8

    import keras

    config = TrainConfig()
    optimizer = keras.optimizers.Adam(config.learning_rate, config.beta_1, config.beta_2, config.epsilon)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, fusion_objective(funfusean_loss(0.8)), optimizer)
    t_step = _median_time(lambda: float(step(*one)["total"]), args.repeats)

    print(f"machine: {os.cpu_count()} CPU(s), TensorFlow {tf.__version__}, {args.size}x{args.size}, "
          f"median of {args.repeats}")
    print(f"forward, batch 1:        {1000 * t_forward:8.1f} ms per pair")
    print(f"forward, batch 8:        {1000 * t_forward8:8.1f} ms per pair")
    print(f"train step, batch 1:     {1000 * t_step:8.1f} ms")
    print(f"ratio train step / forward (batch 1): {t_step / t_forward:.2f}")
    print(f"ratio batch-8 / batch-1 forward per pair: {t_forward8 / t_forward:.2f}")
    print(f"100 pairs fused (batch 8): {100 * t_forward8:.2f} s  (paper: 0.37 s with visualisation on a GTX 1080 Ti)")


if __name__ == "__main__":
    main()
