"""Where a FunFuseAn train step spends its time: a TensorFlow profiler trace, summed by op type.

    python benchmarks/profile_train_step.py [--steps 10] [--size 256] [--logdir runs/profile]

Runs ``--steps`` train steps (batch 1, guarded rule, lambda 0.8) of the package's one training
step under ``tf.profiler``, writes the trace to ``--logdir`` (open it in TensorBoard's profile
tab) and prints the host-side self time per TensorFlow op type (needs the optional
``tensorboard-plugin-profile`` package, in the ``bench`` extra, to read the trace), most costly
first, with its share of the total. Not a test.
"""

from __future__ import annotations

import argparse
import glob
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from funfusean_tf.config import TrainConfig  # noqa: E402
from funfusean_tf.losses import funfusean_loss  # noqa: E402
from funfusean_tf.models.funfusean import build_funfusean  # noqa: E402
from funfusean_tf.training import fusion_objective, make_train_step  # noqa: E402


def op_type_table(logdir: str) -> list[tuple[str, float, int]]:
    """(op type, host self time in microseconds, occurrences) from the newest trace, costliest first."""
    from xprof.convert import raw_to_tool_data

    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
    data, _ = raw_to_tool_data.xspace_to_tool_data([paths[-1]], "framework_op_stats", {})
    table = json.loads(data)[0]  # a Google-charts DataTable: cols with ids, rows of cells
    ids = [col["id"] for col in table["cols"]]
    totals: dict[str, list] = {}
    for row in table["rows"]:
        cells = dict(zip(ids, (cell.get("v") if cell else None for cell in row["c"])))
        if cells["host_or_device"] != "Host" or cells["type"] == "IDLE":
            continue
        entry = totals.setdefault(cells["type"], [0.0, 0])
        entry[0] += float(cells["total_self_time"])
        entry[1] += int(cells["occurrences"])
    return sorted(((k, v[0], v[1]) for k, v in totals.items()), key=lambda t: -t[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--logdir", default="runs/profile_train_step")
    args = parser.parse_args()
    import keras

    rng = np.random.default_rng(0)
    model = build_funfusean(hf_rule="guarded")
    config = TrainConfig()
    optimizer = keras.optimizers.Adam(config.learning_rate, config.beta_1, config.beta_2, config.epsilon)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, fusion_objective(funfusean_loss(0.8)), optimizer)
    a, b = (tf.constant(rng.random((1, args.size, args.size, 1), dtype=np.float32)) for _ in range(2))
    for _ in range(3):
        float(step(a, b)["total"])
    tf.profiler.experimental.start(args.logdir)
    for _ in range(args.steps):
        float(step(a, b)["total"])
    tf.profiler.experimental.stop()
    table = op_type_table(args.logdir)
    total = sum(t for _, t, _ in table)
    print(f"{args.steps} train steps, {args.size}x{args.size}, batch 1: {total / 1e3 / args.steps:.1f} ms of op "
          "self time per step")
    print(f"{'op type':32s} {'ms/step':>9s} {'share':>7s} {'calls/step':>10s}")
    for name, micros, count in table[:15]:
        print(f"{name:32s} {micros / 1e3 / args.steps:9.1f} {100 * micros / total:6.1f}% {count / args.steps:10.1f}")


if __name__ == "__main__":
    main()
