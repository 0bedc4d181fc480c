"""Held-out curves of a FunFuseAn training run: does the network still improve?

    python experiments/funfusean_harvard_cpu/curves.py --run runs/funfusean_harvard_cpu [--every 5]

For every ``--every``-th epoch checkpoint of the run (and its final weights), fuse the held-out
pairs (default: the 24 test pairs of the Harvard MRI/PET collection, never trained on and not the
Table-1 pairs, so the curves do not select on the benchmark) and score, on the 8-bit files:

- ``Q_S`` and ``Q_VIFF`` (Table 1's Piella and Han metrics; sources are the loaded [0, 1] images
  x 255, not MATLAB's rgb2gray of the files: a rounding-level difference, fine for curves),
- ``background``: the mean 8-bit fused value where both 8-bit sources are 0 (issue #12's target:
  <= 10),
- ``map_levels``: for the first ``--map-pairs`` pairs, the width (in grey levels) of the central
  98 % of each 8-bit contribution map (1st to 99th percentile), the smaller of MRI's and PET's,
  averaged (target: >= 64).

Writes ``curves.csv`` (one row per epoch, resumable: epochs already scored are skipped) and
``curves.png`` (training loss from the run's epochs.csv beside the held-out scores) to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from funfusean_tf.config import load_config  # noqa: E402
from funfusean_tf.data.datasets import named_pairs  # noqa: E402
from funfusean_tf.data.io import load_pair, to_uint8  # noqa: E402
from funfusean_tf.fusion import load_method  # noqa: E402
from funfusean_tf.metrics import structural, vif  # noqa: E402
from funfusean_tf.training import read_history  # noqa: E402
from funfusean_tf.visualize import contribution_maps, gradient_to_uint8  # noqa: E402

COLUMNS = ("epoch", "q_s", "q_viff", "background", "map_levels")


def map_levels(grad) -> float:
    """Width of the central 98 % of an 8-bit contribution map, in grey levels."""
    levels = gradient_to_uint8(grad).astype(np.float64)
    low, high = np.percentile(levels, [1, 99])
    return float(high - low)


def score_weights(weights: Path, model_config, pairs, map_pairs: int) -> dict:
    method = load_method("funfusean", weights=weights, model_config=model_config)
    q_s, q_viff, background, spread = [], [], [], []
    for index, (mri, pet) in enumerate(pairs):
        fused8 = to_uint8(method(mri, pet)).astype(np.float64)
        mri8, pet8 = np.uint8(255 * mri).astype(np.float64), np.uint8(255 * pet).astype(np.float64)
        q_s.append(structural.piella(fused8, mri8, pet8, 1))
        q_viff.append(vif.q_viff(fused8, mri8, pet8))
        empty = (mri8 == 0) & (pet8 == 0)
        if empty.any():
            background.append(float(fused8[empty].mean()))
        if index < map_pairs:
            maps = contribution_maps(method.model, mri, pet)
            spread.append(min(map_levels(maps.mri), map_levels(maps.pet)))
    return {"q_s": float(np.mean(q_s)), "q_viff": float(np.mean(q_viff)),
            "background": float(np.mean(background)) if background else float("nan"),
            "map_levels": float(np.mean(spread)) if spread else float("nan")}


def checkpoints(run: Path, every: int) -> list[tuple[int, Path]]:
    found = []
    for folder in sorted((run / "checkpoints").glob("epoch_*")):
        epoch = int(folder.name.split("_")[1])
        weights = folder / "model.weights.h5"
        if weights.is_file() and (epoch % every == 0 or epoch == 1):
            found.append((epoch, weights))
    return found


def read_rows(path: Path) -> dict[int, dict]:
    if not path.is_file():
        return {}
    with path.open() as handle:
        return {int(float(row["epoch"])): {k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)}


def write_rows(path: Path, rows: dict[int, dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for epoch in sorted(rows):
            writer.writerow({k: rows[epoch][k] for k in COLUMNS})
    tmp.replace(path)


def plot(run: Path, rows: dict[int, dict], out: Path, pairs: str = "held-out Harvard MRI/PET test pairs") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(run / "epochs.csv")
    epochs = sorted(rows)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    axes[0].plot([r["epoch"] for r in history], [r["l_ssim"] for r in history], label="L_SSIM")
    axes[0].plot([r["epoch"] for r in history], [10 * r["l_l2"] for r in history], label="10 x L_l2")
    axes[0].set_title("training loss parts (epoch means)")
    axes[0].legend()
    axes[1].plot(epochs, [rows[e]["q_s"] for e in epochs], "o-", label="Q_S")
    axes[1].plot(epochs, [rows[e]["q_viff"] for e in epochs], "s-", label="Q_VIFF")
    axes[1].axhline(0.80, ls=":", c="C0")
    axes[1].axhline(0.55, ls=":", c="C1")
    axes[1].set_title("Q_S, Q_VIFF (targets dotted)")
    axes[1].legend()
    axes[2].plot(epochs, [rows[e]["background"] for e in epochs], "o-")
    axes[2].axhline(10, ls=":", c="k")
    axes[2].set_title("8-bit background (target <= 10)")
    axes[3].plot(epochs, [rows[e]["map_levels"] for e in epochs], "o-")
    axes[3].axhline(64, ls=":", c="k")
    axes[3].set_title("contribution map: central 98 % width")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.suptitle(f"{run.name}: {pairs}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--pair-set", default="harvard_pet_mri")
    parser.add_argument("--split", default="test")
    parser.add_argument("--map-pairs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or args.run / "curves"
    out.mkdir(parents=True, exist_ok=True)
    model_config = load_config(args.run / "config.toml").model
    pairs = [load_pair(p.mri, p.pet) for p in named_pairs(args.pair_set, split=args.split or None)]
    rows = read_rows(out / "curves.csv")
    for epoch, weights in checkpoints(args.run, args.every):
        if epoch in rows:
            continue
        rows[epoch] = {"epoch": epoch, **score_weights(weights, model_config, pairs, args.map_pairs)}
        write_rows(out / "curves.csv", rows)
        print("epoch {epoch}: Q_S {q_s:.4f}  Q_VIFF {q_viff:.4f}  background {background:.1f}  "
              "map levels {map_levels:.0f}".format(**rows[epoch]), flush=True)
    if rows:
        plot(args.run, rows, out / "curves.png", f"{len(pairs)} pairs of {args.pair_set}" + (f" ({args.split})" if args.split else ""))
        print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")


if __name__ == "__main__":
    main()
