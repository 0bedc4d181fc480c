"""The MdAFuse evaluation table (issue 5): shipped MdAFuse, shipped FunFuseAn, the authors' outputs.

    python experiments/mdafuse_harvard_cpu/evaluate_table.py [--mdafuse-weights W] [--out DIR]

All three are scored on the same 42 MR-PET pairs with the ``mdafuse`` metric preset, against the
same sources: the normalised sources the MdAFuse authors scored against
(reference/mdafuse_mr_pet/sources, read through MATLAB's rgb2gray as their script did). Our
networks fuse those same source files (read as the package reads any input: RGB -> grey with the
originals' weights, min-max to [0, 1]) and are written as 8-bit PNGs; the authors' column scores
their released 8-bit fused PNGs. Writes per-pair CSVs and ``mdafuse_table.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from funfusean_tf.data.pairs import find_data_root
from funfusean_tf.evaluation import evaluate, resolve_pairs
from funfusean_tf.fusion import fuse_pairs, load_method

PAPER_MEANS = {"VIF": 0.8432, "SSIM": 1.5466, "CC": 0.8094, "MSE": 0.0250, "EN": 4.7241, "MI": 2.3880,
               "SD": 60.538, "SCD": 1.2936, "rSFe": -0.3086}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mdafuse-weights", default=None, help="default: the shipped MdAFuse weights")
    parser.add_argument("--out", default="runs/mdafuse_table")
    args = parser.parse_args()
    reference = find_data_root() / "reference" / "mdafuse_mr_pet"
    pairs = resolve_pairs(reference / "sources")
    out = Path(args.out)
    columns_by_method = {}
    mdafuse = load_method("mdafuse", weights=args.mdafuse_weights)
    for label, method in ((f"MdAFuse (ours, {Path(mdafuse.weights).parent.name}/{Path(mdafuse.weights).name})", mdafuse),
                          ("FunFuseAn (ours, shipped lambda 0.8)", load_method("funfusean"))):
        fused_dir = out / "fused" / method.name
        fuse_pairs(pairs, fused_dir, method=method, progress=False)
        columns_by_method[label] = evaluate(pairs, fused_dir, preset="mdafuse", out=out / f"{method.name}.csv",
                                            progress=False)
    columns_by_method["MdAFuse authors' released outputs"] = evaluate(
        pairs, reference / "fused", preset="mdafuse", out=out / "authors.csv", progress=False)

    metrics = columns_by_method["MdAFuse authors' released outputs"].columns
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for label, result in columns_by_method.items():
        cells = []
        for metric in metrics:
            values = np.array([row[metric] for row in result.rows if row.get(metric) is not None], dtype=float)
            cells.append(f"{values.mean():.4f} +- {values.std():.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| authors' published means (their Python on raw outputs for VIF/SSIM/CC/MSE) | "
                 + " | ".join(f"{PAPER_MEANS[m]:g}" if m in PAPER_MEANS else "" for m in metrics) + " |")
    text = "\n".join(lines) + "\n"
    (out / "mdafuse_table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
