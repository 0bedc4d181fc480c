"""Scoring fused images against their sources with a metric preset, per image and in summary.

``evaluate(pairs, fused_dir, preset, out)`` reads every (anatomical, functional) pair and its
fused image, scores them with the preset's metrics (:mod:`funfusean_tf.metrics.presets`), and
writes

- ``out`` (CSV): one row per pair: pair name, the three files, one column per metric, and an
  ``errors`` column naming any metric that could not be computed for that pair (its cell is
  left empty: never a silent NaN);
- ``<out stem>_summary.csv``: metric, n, mean, std (population, ddof 0), min, max;
- ``<out stem>.md``: the summary as a Markdown table (mean +- std) and the per-image table.

Images are read as each preset's reference read them (the preset's ``grey`` rule for RGB
files); everything that is not an RGB raster goes through :func:`funfusean_tf.data.io.read_grey`.
"""

from __future__ import annotations

import csv
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from funfusean_tf.data.pairs import IMAGE_SUFFIXES, ImagePair, list_images, natural_key, pairs_from_folders

__all__ = ["EvaluationResult", "evaluate", "resolve_pairs", "match_fused", "read_grey_as", "summarise"]

_ANATOMICAL_HINTS = ("mri", "mr", "t1", "t2", "anat")


@dataclass
class EvaluationResult:
    """Per-image rows, the summary, and the files written."""

    columns: list[str]
    rows: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(1 for row in self.rows if row.get("errors"))


# --------------------------------------------------------------------------------------------
# Reading images the way each reference read them


def read_grey_as(path, grey: str = "matlab") -> np.ndarray:
    """Raw grey values (float64) of an image file, RGB converted by the named rule.

    - 'matlab': MATLAB ``rgb2gray`` of the 8-bit RGB values (0.298936 R + 0.587043 G +
      0.114021 B, rounded half away from zero), as the MdAFuse and FunFuseAn MATLAB scripts;
    - 'opencv': ``cv2.cvtColor(float32, BGR2GRAY)`` then ``np.round`` (CDDFuse's
      ``image_read_cv2(..., 'GRAY')``);
    - 'pil': PIL ``convert('L')`` (MdAFuse's and DILRAN's Python loaders).

    Grey and palette rasters, NPY and NIfTI files are read by ``funfusean_tf.data.io.read_grey``
    (palette GIFs through ``convert('L')``), whatever the rule.
    """
    from funfusean_tf.data import io
    from funfusean_tf.metrics._util import matlab_rgb2gray

    path = Path(path)
    rgb = None
    if path.suffix.lower() in {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}:
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            raise io.ImageReadError(f"{path}: no such file")
        try:
            with Image.open(path) as image:
                if image.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
                    if grey == "pil":
                        return np.asarray(image.convert("L"), dtype=np.float64)
                    rgb = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise io.ImageReadError(f"{path}: not a readable image ({exc})") from exc
        except Exception as exc:  # PIL's plugins raise many types on damaged files (DecompressionBombError, ...)
            raise io.ImageReadError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if rgb is None:
        return io.read_grey(path)
    if grey == "matlab":
        return matlab_rgb2gray(rgb)
    if grey == "opencv":
        import cv2

        return np.round(cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)).astype(np.float64)
    raise ValueError(f"unknown grey conversion {grey!r}; use 'matlab', 'opencv' or 'pil'")


# --------------------------------------------------------------------------------------------
# Which pairs, which fused image


def _anatomical_first(names: list[str]) -> list[str]:
    def rank(name: str):
        lower = name.lower()
        return (0 if any(lower == h or lower.startswith(h) for h in _ANATOMICAL_HINTS) else 1, lower)

    return sorted(names, key=rank)


def _pairs_from_prefixed_files(folder: Path) -> list[ImagePair] | None:
    """Pairs from one folder of '<a>_<key>' and '<b>_<key>' files (e.g. mri_0.png, pet_0.png)."""
    groups: dict[str, dict[str, Path]] = {}
    for path in list_images(folder):
        prefix, sep, key = path.stem.partition("_")
        if not sep or not key:
            return None
        groups.setdefault(prefix, {})[key] = path
    if len(groups) != 2:
        return None
    first, second = _anatomical_first(list(groups))
    keys_a, keys_b = set(groups[first]), set(groups[second])
    if keys_a != keys_b:
        missing = sorted(keys_a ^ keys_b, key=natural_key)
        raise ValueError(f"{folder}: '{first}_*' and '{second}_*' files do not pair up (unmatched: {missing[:5]})")
    return [ImagePair(groups[first][k], groups[second][k], k) for k in sorted(keys_a, key=natural_key)]


def resolve_pairs(pairs, split: str | None = None, root=None) -> list[ImagePair]:
    """ImagePairs from a known pair-set name, a folder, or a list of pairs.

    A folder may hold two image sub-folders (paired as :func:`pairs_from_folders` pairs them;
    the sub-folder named like an anatomical modality, e.g. MRI, is source A), or image files
    named ``<a>_<key>`` / ``<b>_<key>`` (the MdAFuse reference layout ``mri_0.png``,
    ``pet_0.png``).
    """
    if isinstance(pairs, (list, tuple)):
        return list(pairs)
    text = str(pairs)
    path = Path(text).expanduser()
    if path.is_dir():
        subdirs = [d for d in sorted(path.iterdir()) if d.is_dir() and any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir() if p.is_file())]
        if len(subdirs) == 2:
            first, second = _anatomical_first([d.name for d in subdirs])
            return pairs_from_folders(path / first, path / second)
        prefixed = _pairs_from_prefixed_files(path)
        if prefixed:
            return prefixed
        raise ValueError(
            f"{path}: expected two image sub-folders (e.g. MRI/ and PET/) or files named "
            "<modality>_<key> (e.g. mri_0.png and pet_0.png)"
        )
    if "/" in text or text.startswith("."):
        raise FileNotFoundError(f"{text}: no such folder")
    from funfusean_tf.data.datasets import named_pairs

    return named_pairs(text, split=split, root=root)


def match_fused(pairs: list[ImagePair], fused_dir) -> list[Path]:
    """The fused file of each pair: the file whose stem is the pair's name (or ends in
    '_<name>', e.g. Mine_3.png); if no pair's name matches any file and the counts agree,
    natural sort order (with a warning)."""
    fused_dir = Path(fused_dir)
    files = list_images(fused_dir)
    if not files:
        raise FileNotFoundError(f"{fused_dir}: no fused images found")
    by_stem = {p.stem: p for p in files}
    by_suffix: dict[str, Path] = {}
    for p in files:
        _, sep, key = p.stem.rpartition("_")
        if sep:
            by_suffix.setdefault(key, p)
    matched = [by_stem.get(pair.name) or by_suffix.get(pair.name) for pair in pairs]
    if all(m is not None for m in matched):
        return matched  # type: ignore[return-value]
    if not any(m is not None for m in matched) and len(files) == len(pairs):
        warnings.warn(
            f"no fused file in {fused_dir} is named after a pair; pairing by natural sort order",
            stacklevel=2,
        )
        return files
    missing = [pair.name for pair, m in zip(pairs, matched) if m is None]
    raise FileNotFoundError(
        f"{fused_dir}: no fused image for {len(missing)} of {len(pairs)} pair(s), e.g. {missing[:5]} "
        "(expected <name>.png or *_<name>.png)"
    )


# --------------------------------------------------------------------------------------------
# Scoring and writing


def summarise(rows: list[dict], metric_columns: list[str]) -> list[dict]:
    """Per metric: n (finite values), mean, std (ddof 0), min, max."""
    summary = []
    for name in metric_columns:
        values = np.array([row[name] for row in rows if isinstance(row.get(name), float) and math.isfinite(row[name])])
        if values.size:
            summary.append(dict(metric=name, n=int(values.size), mean=float(values.mean()), std=float(values.std()),
                                min=float(values.min()), max=float(values.max())))
        else:
            summary.append(dict(metric=name, n=0, mean=None, std=None, min=None, max=None))
    return summary


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_outputs(result: EvaluationResult, out: Path, title: str) -> None:
    from funfusean_tf.data.io import atomic_path

    out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["pair", "source_a", "source_b", "fused", *result.columns, "errors"]
    with atomic_path(out, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in result.rows:
                writer.writerow([_fmt(row.get(c)) for c in columns])
    summary_path = out.with_name(out.stem + "_summary.csv")
    with atomic_path(summary_path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["metric", "n", "mean", "std", "min", "max"])
            for s in result.summary:
                writer.writerow([s["metric"], s["n"], *(_fmt(s[k]) for k in ("mean", "std", "min", "max"))])
    md_path = out.with_suffix(".md")
    lines = [f"# {title}", "", f"{len(result.rows)} pair(s); std is the population std (ddof 0).", "",
             "| metric | n | mean ± std |", "|---|---|---|"]
    for s in result.summary:
        cell = "n/a" if s["mean"] is None else f"{s['mean']:.4f} ± {s['std']:.4f}"
        lines.append(f"| {s['metric']} | {s['n']} | {cell} |")
    lines += ["", "## Per image", "", "| pair | " + " | ".join(result.columns) + " |",
              "|---|" + "---|" * len(result.columns)]
    for row in result.rows:
        cells = [("" if not isinstance(row.get(c), float) or not math.isfinite(row[c]) else f"{row[c]:.4f}")
                 for c in result.columns]
        lines.append(f"| {row['pair']} | " + " | ".join(cells) + " |")
    failed = [row for row in result.rows if row.get("errors")]
    if failed:
        lines += ["", "## Metrics that could not be computed", ""]
        lines += [f"- {row['pair']}: {row['errors']}" for row in failed]
    with atomic_path(md_path, suffix=".md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    result.files = [out, summary_path, md_path]


def evaluate(pairs, fused_dir, preset: str = "table1", out=None, split: str | None = None,
             root=None, progress: bool = True) -> EvaluationResult:
    """Score every pair's fused image with a preset ('table1', 'mdafuse', 'dilran', 'cddfuse',
    'extras' or 'all') and, if ``out`` is given, write the CSV, summary CSV and Markdown.

    ``pairs``: a pair-set name, a folder (see :func:`resolve_pairs`) or a list of ImagePair.
    ``fused_dir``: the folder of fused images, matched to pairs by :func:`match_fused`.
    With 'all' the columns are named '<preset>.<metric>'.
    """
    from funfusean_tf.metrics.presets import get_preset

    presets = get_preset(preset)
    prefix = len(presets) > 1
    pair_list = resolve_pairs(pairs, split=split, root=root)
    if not pair_list:
        raise ValueError("no pairs to evaluate")
    fused_files = match_fused(pair_list, fused_dir)
    columns = [f"{p.name}.{m.name}" if prefix else m.name for p in presets for m in p.metrics]
    result = EvaluationResult(columns=columns)

    iterator = zip(pair_list, fused_files)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(pair_list), desc=f"evaluate {preset}", unit="pair", file=sys.stderr)
    for pair, fused_path in iterator:
        row: dict = {"pair": pair.name, "source_a": str(pair.mri), "source_b": str(pair.pet), "fused": str(fused_path)}
        errors = []
        cache: dict[str, tuple] = {}
        for p in presets:
            if p.grey not in cache:
                images = tuple(read_grey_as(path, p.grey) for path in (fused_path, pair.mri, pair.pet))
                shapes = {im.shape for im in images}
                if len(shapes) != 1:
                    def size(image):
                        return "x".join(map(str, image.shape))

                    raise ValueError(
                        f"{fused_path}: the fused image is {size(images[0])}, but its sources {pair.mri} and "
                        f"{pair.pet} are {size(images[1])} and {size(images[2])} (pair {pair.name}): "
                        "they must have the same size"
                    )
                cache[p.grey] = images
            fused, a, b = cache[p.grey]
            for m in p.metrics:
                column = f"{p.name}.{m.name}" if prefix else m.name
                try:
                    value = float(m.func(fused, a, b))
                    if not math.isfinite(value):
                        raise FloatingPointError(f"non-finite value {value}")
                    row[column] = value
                except (ValueError, FloatingPointError, ZeroDivisionError, NotImplementedError) as exc:
                    row[column] = None
                    errors.append(f"{column}: {exc}")
        row["errors"] = "; ".join(errors)
        result.rows.append(row)

    result.summary = summarise(result.rows, columns)
    if result.n_failed:
        warnings.warn(f"{result.n_failed} pair(s) had metrics that could not be computed (see the 'errors' column)",
                      stacklevel=2)
    if out is not None:
        _write_outputs(result, Path(out), f"Fusion metrics: preset '{preset}'")
    return result
