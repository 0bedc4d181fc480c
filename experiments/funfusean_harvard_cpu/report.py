"""Score FunFuseAn weights on the real test pairs and measure the exact rule's fragility.

    python experiments/funfusean_harvard_cpu/report.py [--weights W] [--out report.md]

For the 10 pairs the FunFuseAn authors shipped (funfusean_test) and the 24 test pairs of the
Harvard MRI/PET collection: fuse with the weights (the rule they were trained with), check that
no pixel is NaN, and report mean +- sd of SSIM(F, MRI) and SSIM(F, PET) with the package's one
SSIM (the loss's: 11x11 Gaussian, VALID, on [0, 1]; F is the 8-bit file / 255). Then run the same
weights with the exact max/sum rule and count non-finite outputs of the rule and near-zero sums.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from funfusean_tf.data.datasets import named_pairs
from funfusean_tf.data.io import load_pair, to_uint8
from funfusean_tf.fusion import load_method, trained_model_config
from funfusean_tf.models.funfusean import high_frequency_report
from funfusean_tf.models.registry import shipped_weights
from funfusean_tf.ssim import ssim

SETS = (("funfusean_test", None), ("harvard_pet_mri", "test"))


def score_set(method, exact_model, name, split):
    pairs = named_pairs(name, split=split)
    rows = []
    totals = {"elements": 0, "nonfinite": 0, "near_zero_denominator": 0}
    exact_nan_pairs = 0
    for pair in pairs:
        mri, pet = load_pair(pair.mri, pair.pet)
        fused = method(mri, pet)
        assert np.all(np.isfinite(fused))
        scaled = to_uint8(fused).astype(np.float32)[None, ..., None] / 255.0
        raw = fused.astype(np.float32)[None, ..., None]
        rows.append((float(ssim(scaled, mri[None, ..., None])[0]), float(ssim(scaled, pet[None, ..., None])[0]),
                     float(ssim(raw, mri[None, ..., None])[0]), float(ssim(raw, pet[None, ..., None])[0])))
        report = high_frequency_report(exact_model, mri[None, ..., None], pet[None, ..., None])
        for key in totals:
            totals[key] += report[key]
        exact_out = np.asarray(exact_model([mri[None, ..., None], pet[None, ..., None]]))
        exact_nan_pairs += int(not np.all(np.isfinite(exact_out)))
    values = np.asarray(rows)
    return len(pairs), values, totals, exact_nan_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--out", default=str(Path(__file__).with_name("report.md")))
    args = parser.parse_args()
    weights = Path(args.weights) if args.weights else shipped_weights("funfusean")
    method = load_method("funfusean", weights=weights)
    config = trained_model_config(weights)
    exact = load_method("funfusean", weights=weights,
                        model_config=dataclasses.replace(config, hf_rule="exact")).model
    lines = [f"# FunFuseAn weights on real test pairs\n", f"weights: `{weights.name}` (hf_rule {config.hf_rule})\n",
             "SSIM of the 8-bit file (F min-max scaled, / 255) and of the raw network output (tanh range, as the loss sees it).\n",
             "| set | pairs | NaN pairs | SSIM(F8, MRI) | SSIM(F8, PET) | SSIM(F, MRI) raw | SSIM(F, PET) raw | exact rule: non-finite / elements | near-zero sums (abs < 1e-3) | pairs whose exact-rule output has NaN/inf |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, split in SETS:
        n, values, totals, exact_nan = score_set(method, exact, name, split)
        label = f"{name}" + (f" ({split})" if split else "")
        lines.append(
            f"| {label} | {n} | 0 | {values[:, 0].mean():.4f} +- {values[:, 0].std():.4f} | "
            f"{values[:, 1].mean():.4f} +- {values[:, 1].std():.4f} | "
            f"{values[:, 2].mean():.4f} +- {values[:, 2].std():.4f} | {values[:, 3].mean():.4f} +- {values[:, 3].std():.4f} | "
            f"{totals['nonfinite']} / {totals['elements']} | "
            f"{totals['near_zero_denominator']} ({100 * totals['near_zero_denominator'] / totals['elements']:.3f} %) | "
            f"{exact_nan} / {n} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
