"""Time a handful of MdAFuse training steps on this machine (never a real training run).

    python experiments/mdafuse_harvard_cpu/measure_step_time.py --crop 0 --steps 4
    python experiments/mdafuse_harvard_cpu/measure_step_time.py --crop 128 --steps 6

Uses config.toml here (crop and affine map overridden from the command line) and the training
loop's own step function (funfusean_tf.training: the same tf.function, loss and Adam settings as
``funfusean train``). The first step (tracing and graph optimisation) is timed apart, then each
further step's wall-clock and process CPU seconds are printed. On a shared machine the CPU
seconds divided by the number of cores estimate the wall time with the cores to oneself.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop", type=int, default=0, help="centre crop (0 = the whole 256 x 256 image)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps after the first")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--affine", choices=("width", "channel"), default=None,
                        help="default: 'width' at width 256, 'channel' otherwise")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from funfusean_tf.config import load_config
    from funfusean_tf.data.sources import load_arrays
    from funfusean_tf.models.registry import build_model, get_network
    from funfusean_tf.training import make_train_step, fusion_objective, seed_everything

    config = load_config(HERE / "config.toml")
    affine = args.affine or ("width" if args.crop in (0, 256) else "channel")
    model_config = dataclasses.replace(config.model, options={**config.model.options, "affine": affine})
    data_config = dataclasses.replace(config.data, crop=args.crop)
    tc = config.train

    seed_everything(tc.seed, tc.deterministic)
    needed = args.batch * (args.steps + 1)
    mri, pet, _ = load_arrays(data_config)
    mri, pet = mri[:needed, ..., None], pet[:needed, ..., None]
    model = build_model(model_config)
    optimizer = keras.optimizers.Adam(tc.learning_rate, beta_1=tc.beta_1, beta_2=tc.beta_2, epsilon=tc.epsilon)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, fusion_objective(get_network(model_config.name).loss(tc.lambda_)), optimizer)

    def batch(i):
        chosen = slice(i * args.batch, (i + 1) * args.batch)
        return tf.constant(mri[chosen]), tf.constant(pet[chosen])

    load = os.getloadavg()
    print(f"{mri.shape[1]}x{mri.shape[2]}, batch {args.batch}, affine {affine}, {os.cpu_count()} CPUs, "
          f"load average before {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, "
          f"TF threads intra {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}")
    wall, cpu = time.perf_counter(), time.process_time()
    float(step(*batch(0))["total"])
    print(f"  first step (trace + optimise + run): {time.perf_counter() - wall:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU")
    walls, cpus = [], []
    for i in range(1, args.steps + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        total = float(step(*batch(i))["total"])
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        print(f"  step {i}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU (loss {total:.4f})")
    load = os.getloadavg()
    print(f"  median {np.median(walls):.2f} s wall, {np.median(cpus):.2f} s CPU per step; "
          f"load average after {load[0]:.1f}")


if __name__ == "__main__":
    main()
