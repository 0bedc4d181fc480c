"""FunFuseAn's Table 1 on real pairs: every method the package has, the same pairs, the same metrics.

For each pair set and each method: fuse every pair (timing the method alone, not the file I/O),
write the 8-bit fused images, score them with a metric preset (Table 1's by default) through
funfusean_tf.evaluation, and put the means beside the paper's own numbers. Networks whose
weights are not shipped are listed as skipped, with the reason.

Output folder::

    fused/<set>/<method>/*.png      the fused images that were scored
    metrics/<set>_<method>.csv      per-pair metrics (+ _summary.csv, .md)
    table1.csv                      one row per (set, method): metric means and seconds per 100 pairs
    table1.md                       the same as Markdown, the paper's Table 1, and who wins each metric
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.datasets import named_pairs
from .data.io import atomic_path, load_pair, to_uint8, write_png

__all__ = ["PAPER_TABLE1", "ComparisonResult", "compare_methods"]

#: Kumar et al. 2019, Table 1 (100 test pairs: 90 ADNI + 10 Harvard; MATLAB, Z. Liu's toolbox).
PAPER_TABLE1 = {
    "methods": ["GF", "NSCT-PCDC", "LP-SR", "NSCT-RPCNN", "NSST-PAPCNN", "LP-CNN", "FunFuseAn"],
    "Q_NCIE": [0.8169, 0.8080, 0.8092, 0.8132, 0.8102, 0.8076, 0.8104],
    "Q_G": [0.7555, 0.5457, 0.6501, 0.6702, 0.6685, 0.5665, 0.5707],
    "Q_FMI": [0.9224, 0.8754, 0.8969, 0.8941, 0.8997, 0.8958, 0.8885],
    "Q_S": [0.8260, 0.7992, 0.7837, 0.8492, 0.8318, 0.7176, 0.8610],
    "Q_VIFF": [0.2776, 0.3415, 0.5990, 0.5430, 0.6001, 0.5326, 0.6005],
    "seconds_per_100": [13.43, 221.07, 75.69, 775.31, 521.36, 481.73, 0.37],
}

#: The paper's column for each of this package's methods, where one exists.
PAPER_COLUMN = {"gff": "GF", "lp_sr": "LP-SR", "funfusean": "FunFuseAn"}

DEFAULT_SETS = (("funfusean_test", None), ("mdafuse_mr_pet", None))


@dataclass
class ComparisonResult:
    out_dir: Path
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _methods(names):
    from .fusion import available_methods, load_method

    loaded, skipped = [], []
    for name in names or list(available_methods()):
        try:
            loaded.append(load_method(name))
        except FileNotFoundError as exc:
            skipped.append(f"{name}: {exc}")
    return loaded, skipped


def compare_methods(out_dir, pair_sets=DEFAULT_SETS, methods=None, preset: str = "table1", root=None,
                    progress: bool = True) -> ComparisonResult:
    """Run every method on every pair set, score it, and write table1.csv / table1.md."""
    from tqdm.auto import tqdm

    from .evaluation import evaluate

    out = Path(out_dir)
    loaded, skipped = _methods(methods)
    result = ComparisonResult(out, skipped=skipped)
    for set_name, split in pair_sets:
        pairs = named_pairs(set_name, split=split, root=root)
        images = [load_pair(p.mri, p.pet) for p in pairs]
        for method in loaded:
            seconds = 0.0
            fused_dir = out / "fused" / set_name / method.name
            for pair, (mri, pet) in tqdm(list(zip(pairs, images)), desc=f"{set_name}: {method.name}", unit="pair",
                                         disable=not progress, leave=False):
                start = time.perf_counter()
                fused = method(mri, pet)
                seconds += time.perf_counter() - start
                write_png(fused_dir / f"{pair.name}.png", to_uint8(fused, name=f"{method.name} on {pair.name}"))
            scored = evaluate(pairs, fused_dir, preset=preset, out=out / "metrics" / f"{set_name}_{method.name}.csv",
                              progress=False)
            row = {"pairs": set_name, "method": method.name, "n": len(pairs)}
            for column in scored.columns:
                values = [r[column] for r in scored.rows if r.get(column) is not None]
                row[column] = float(np.mean(values)) if values else float("nan")
                row[f"{column}_sd"] = float(np.std(values)) if values else float("nan")
            row["seconds_per_100"] = 100.0 * seconds / len(pairs)
            result.rows.append(row)
    result.files = _write(result, preset)
    return result


def _winners(rows: list[dict], metrics: list[str]) -> dict[str, str]:
    return {m: max(rows, key=lambda r: r[m] if np.isfinite(r[m]) else -np.inf)["method"] for m in metrics}


def _write(result: ComparisonResult, preset: str) -> list[Path]:
    rows = result.rows
    csv_path = result.out_dir / "table1.csv"
    columns = list(rows[0]) if rows else ["pairs", "method"]
    with atomic_path(csv_path, suffix=".csv") as tmp:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    metrics = [c for c in columns if c not in ("pairs", "method", "n", "seconds_per_100") and not c.endswith("_sd")]
    lines = [f"# Table 1 on real pairs ({preset} metrics)", "",
             "Means over each set (+- sd); time = seconds per 100 pairs for the method alone on this machine.", ""]
    for set_name in dict.fromkeys(r["pairs"] for r in rows):
        block = [r for r in rows if r["pairs"] == set_name]
        lines += [f"## {set_name} ({block[0]['n']} pairs)", "",
                  "| method | " + " | ".join(metrics) + " | s / 100 pairs |", "|---" * (len(metrics) + 2) + "|"]
        for r in block:
            cells = [f"{r[m]:.4f} +- {r[m + '_sd']:.4f}" for m in metrics]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + f" | {r['seconds_per_100']:.2f} |")
        winners = _winners(block, metrics)
        lines += ["", "Best per metric here: " + ", ".join(f"{m}: **{w}**" for m, w in winners.items()), ""]
    if preset == "table1":
        paper = PAPER_TABLE1
        lines += ["## The paper's Table 1 (90 ADNI + 10 Harvard pairs, MATLAB)", "",
                  "| metric | " + " | ".join(paper["methods"]) + " |", "|---" * (len(paper["methods"]) + 1) + "|"]
        for key in ("Q_NCIE", "Q_G", "Q_FMI", "Q_S", "Q_VIFF", "seconds_per_100"):
            lines.append(f"| {key} | " + " | ".join(f"{v:g}" for v in paper[key]) + " |")
        lines += ["", "The paper's ordering: FunFuseAn best on Q_S (its Q_SSIM) and Q_VIFF; GF best on Q_G and Q_FMI "
                  "(and Q_NCIE). Methods here with a paper column: "
                  + ", ".join(f"{k} = {v}" for k, v in PAPER_COLUMN.items()) + "."]
    if result.skipped:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in result.skipped]
    md_path = result.out_dir / "table1.md"
    with atomic_path(md_path, suffix=".md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]
