"""The demo job: phantom pairs in, fused images, an overview figure and scores out."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.io import atomic_path, to_uint8, write_png
from .fusion import load_method

__all__ = ["DemoSummary", "run_demo"]


@dataclass
class DemoSummary:
    out_dir: Path
    rows: list[dict] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'pair':<10} {'SSIM(F,MRI)':>12} {'SSIM(F,PET)':>12}"]
        lines += [f"{r['pair']:<10} {r['ssim_mri']:>12.4f} {r['ssim_pet']:>12.4f}" for r in self.rows]
        return "\n".join(lines)


def run_demo(out_dir="funfusean_demo", n: int = 4, weights=None) -> DemoSummary:
    """Fuse ``n`` phantom test slices with FunFuseAn and write PNGs, ``overview.png``, ``scores.csv``.

    The scores are the SSIM of the loss (funfusean_tf.ssim) between the fused image, min-max
    scaled to [0, 1], and each source.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data.phantom import phantom_pairs
    from .ssim import ssim

    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    mri_all, pet_all = phantom_pairs()["test"]
    chosen = np.linspace(0, len(mri_all) - 1, num=min(n, len(mri_all))).round().astype(int)
    mri, pet = mri_all[chosen], pet_all[chosen]
    method = load_method("funfusean", weights=weights)
    fused = method(mri, pet)
    fused_8bit = [to_uint8(f) for f in fused]

    out = Path(out_dir)
    summary = DemoSummary(out)
    for i, index in enumerate(chosen):
        name = f"slice_{index:03d}"
        write_png(out / f"{name}_mri.png", to_uint8(mri[i]))
        write_png(out / f"{name}_pet.png", to_uint8(pet[i]))
        write_png(out / f"{name}_fused.png", fused_8bit[i])
        scaled = fused_8bit[i].astype(np.float32)[None, ..., None] / 255.0
        summary.rows.append({
            "pair": name,
            "ssim_mri": float(ssim(scaled, mri[i][None, ..., None])[0]),
            "ssim_pet": float(ssim(scaled, pet[i][None, ..., None])[0]),
        })
    with atomic_path(out / "scores.csv", suffix=".csv") as tmp:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["pair", "ssim_mri", "ssim_pet"])
            writer.writeheader()
            writer.writerows(summary.rows)

    figure, axes = plt.subplots(len(chosen), 3, figsize=(7.5, 2.5 * len(chosen)), squeeze=False)
    for i in range(len(chosen)):
        for j, (image, title) in enumerate(((mri[i], "MRI (T1 template)"), (pet[i], "simulated FDG-PET"),
                                            (fused_8bit[i], "FunFuseAn fused"))):
            axes[i, j].imshow(image, cmap="gray")
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_path(out / "overview.png", suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return summary
