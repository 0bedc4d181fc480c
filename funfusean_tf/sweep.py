"""Run an experiment folder point by point and write its report (the paper's Figs. 2 and 3).

An experiment folder holds ``config.toml`` with a ``[sweep]`` table (see config.SweepConfig).
For a *train* sweep every value of the swept setting (FunFuseAn's lambda, say) trains its own
network through the one training loop, is fused on the evaluation pairs through the one fuse
API and scored through the one metric suite; an *omega* sweep redraws the contribution colour
coding of one set of weights for every Omega. Points already done are skipped, and a point cut
off mid-training resumes from its last checkpoint, so ``funfusean sweep`` can simply be rerun.

Output folder (``sweep.out_dir``)::

    points/<key>_<value>/     each point's training run (epochs.csv, checkpoints, weights)
    fused/<key>_<value>/      fused PNG + NPY of the evaluation pairs
    metrics/<key>_<value>.csv per-pair metrics (and _summary.csv, .md)
    points.csv                one row per point: losses, convergence, luminance, metric means
    loss_curves.png           L_SSIM and L_l2 per epoch for every value (the paper's Fig. 3)
    image_grid.png            fused images across the values (the paper's Fig. 2 style)
    report.md                 the summary, and whether the paper's observations hold here
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ExperimentConfig, apply_overrides, load_config
from .data.io import atomic_path, load_pair, to_uint8
from .data.pairs import ImagePair

__all__ = ["SweepResult", "load_experiment", "run_sweep", "convergence_epoch"]


@dataclass
class SweepResult:
    out_dir: Path
    points: list[dict] = field(default_factory=list)
    report: Path | None = None
    figures: list[Path] = field(default_factory=list)


def load_experiment(path, overrides: list[str] | None = None) -> tuple[ExperimentConfig, Path]:
    """An experiment folder (or its config.toml) -> (config with overrides, folder)."""
    path = Path(path)
    config_path = path / "config.toml" if path.is_dir() else path
    config = load_config(config_path)
    if overrides:
        config = apply_overrides(config, overrides)
    return config, config_path.parent


def _label(parameter: str, value) -> str:
    key = parameter.split(".")[-1]
    return f"{key}_{value:g}" if isinstance(value, (int, float)) else f"{key}_{value}"


def convergence_epoch(losses: list[float], fraction: float = 0.9) -> int:
    """First epoch (1-based) by which the loss has made ``fraction`` of its total decrease.

    Losses of different lambdas have different scales; this measures speed on each curve's own
    scale: with L_1 the first epoch's loss and L_min the lowest, the first e with
    L_1 - L_e >= fraction * (L_1 - L_min). A curve that never decreases converges at epoch 1.
    """
    values = np.asarray(losses, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no losses")
    drop = values[0] - values.min()
    if drop <= 0:
        return 1
    return int(np.argmax(values[0] - values >= fraction * drop)) + 1


def _evaluation_pairs(config: ExperimentConfig, out: Path) -> list[ImagePair]:
    sweep = config.sweep
    if sweep.eval_pairs == "phantom":
        from .data.phantom import PhantomConfig, write_phantom_pngs

        folder = out / "eval_pairs"
        return write_phantom_pngs(folder, n=sweep.eval_count, config=PhantomConfig.from_dict(config.data.phantom))
    from .data.datasets import named_pairs

    return named_pairs(sweep.eval_pairs, split=sweep.eval_split or None)


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path, suffix=".csv") as tmp:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def _train_point(config: ExperimentConfig, parameter: str, value, point_dir: Path, progress: bool):
    from .training import read_history, train

    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    point = apply_overrides(config, [f"{parameter}={text}", f'train.out_dir="{point_dir.as_posix()}"'])
    history = read_history(point_dir / "epochs.csv")
    done = (point_dir / "final.weights.h5").is_file() and len(history) >= point.train.epochs
    if not done:
        if progress:
            print(f"== {_label(parameter, value)}: training ({point.train.epochs} epochs)")
        history = train(point, resume=True, progress=progress).history
    elif progress:
        print(f"== {_label(parameter, value)}: done already, skipped")
    return point, history


def _fuse_and_score(point: ExperimentConfig, weights: Path, pairs, fused_dir: Path, metrics_csv: Path,
                    preset: str, progress: bool) -> dict:
    from .evaluation import evaluate
    from .fusion import fuse_pairs, load_method

    if not (fused_dir / ".complete").is_file():
        method = load_method(point.model.name, weights=weights, model_config=point.model)
        fuse_pairs(pairs, fused_dir, method=method, save_npy=True, progress=progress)
        (fused_dir / ".complete").write_text("")
    result = evaluate(pairs, fused_dir, preset=preset, out=metrics_csv, progress=progress)
    means = {}
    for column in result.columns:
        values = [row[column] for row in result.rows if row.get(column) is not None]
        means[column] = float(np.mean(values)) if values else float("nan")
    raw = [np.load(fused_dir / f"{pair.name}.npy") for pair in pairs]
    means["luminance_raw"] = float(np.mean([r.mean() for r in raw]))
    return means


def _loss_figure(points: list[dict], histories: dict, parameter: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = plt.cm.viridis(np.linspace(0, 1, max(2, len(points))))
    for colour, point in zip(colours, points):
        history = histories[point["label"]]
        epochs = [row["epoch"] for row in history]
        axes[0].plot(epochs, [row["l_ssim"] for row in history], color=colour, label=f"{point['value']:g}")
        axes[1].plot(epochs, [row["l_l2"] for row in history], color=colour, label=f"{point['value']:g}")
    axes[0].set_title("L_SSIM = (1-SSIM(F,MRI)) + (1-SSIM(F,PET))")
    axes[1].set_title("L_l2 = MSE(F,MRI) + MSE(F,PET)")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[1].legend(title=parameter.split(".")[-1], fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return path


def _image_grid(points: list[dict], pairs, out: Path, parameter: str, count: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = pairs[:count]
    columns = 2 + len(points)
    figure, axes = plt.subplots(len(shown), columns, figsize=(1.8 * columns, 1.9 * len(shown)), squeeze=False)
    for row, pair in enumerate(shown):
        mri, pet = load_pair(pair.mri, pair.pet)
        panels = [(mri, "MRI"), (pet, "PET")]
        for point in points:
            fused = np.load(out / "fused" / point["label"] / f"{pair.name}.npy")
            panels.append((to_uint8(fused), f"{parameter.split('.')[-1]} {point['value']:g}"))
        for column, (image, title) in enumerate(panels):
            axes[row, column].imshow(image, cmap="gray")
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(title, fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)
    return path


def _observations(points: list[dict]) -> list[str]:
    """Whether the paper's two lambda observations hold, with the numbers that say so."""
    from scipy.stats import spearmanr

    lines = []
    values = np.array([p["value"] for p in points], dtype=float)
    luminance = np.array([p["luminance_raw"] for p in points])
    if len(points) >= 3:
        rho, p_value = spearmanr(values, luminance)
        rising = bool(np.all(np.diff(luminance[np.argsort(values)]) > 0))
        verdict = "holds" if rho > 0.5 else "does not hold"
        lines.append(
            f"- *Luminance of the fused image rises with lambda*: {verdict} here. Mean raw output per lambda: "
            + ", ".join(f"{v:g}: {l:.3f}" for v, l in zip(values, luminance))
            + f"; Spearman rho = {rho:.2f} (p = {p_value:.3f}); strictly increasing: {'yes' if rising else 'no'}."
        )
    high = [p["convergence_epoch"] for p in points if p["value"] >= 0.9]
    low = [p["convergence_epoch"] for p in points if p["value"] < 0.9]
    if high and low:
        slower = np.mean(high) > np.mean(low)
        lines.append(
            f"- *lambda >= 0.9 converges more slowly*: {'holds' if slower else 'does not hold'} here. Epochs to 90 % of "
            f"the loss decrease: mean {np.mean(high):.1f} for lambda >= 0.9 ({', '.join(map(str, high))}) against "
            f"{np.mean(low):.1f} below ({', '.join(map(str, low))})."
        )
    return lines


def _write_report(result: SweepResult, config: ExperimentConfig, folder: Path, metric_columns: list[str]) -> Path:
    sweep = config.sweep
    key = sweep.parameter.split(".")[-1]
    swept = ", ".join(f"{p['value']:g}" for p in result.points)
    lines = [f"# Sweep: {folder.name}", "", config.description, "",
             f"Swept `{sweep.parameter}` over {swept}; "
             f"{config.train.epochs} epochs per point on {config.data.source}"
             f"{' ' + config.data.pair_set if config.data.pair_set else ''}; scored on `{sweep.eval_pairs}` with the "
             f"`{sweep.metrics}` metrics.", ""]
    header = [key, "final loss", "L_SSIM", "L_l2", "epochs to 90 %", "luminance (raw)"] + metric_columns
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for p in result.points:
        cells = [f"{p['value']:g}", f"{p['final_loss']:.4f}", f"{p['final_l_ssim']:.4f}", f"{p['final_l_l2']:.4f}",
                 str(p["convergence_epoch"]), f"{p['luminance_raw']:.4f}"] + [f"{p[c]:.4f}" for c in metric_columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## The paper's observations", "", *(_observations(result.points) or ["- too few points to say"])]
    lines += ["", "## Figures", ""] + [f"![{f.stem}]({f.name})" for f in result.figures]
    path = result.out_dir / "report.md"
    with atomic_path(path, suffix=".md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def _omega_sweep(config: ExperimentConfig, folder: Path, out: Path, progress: bool) -> SweepResult:
    """Colour-code one network's contribution maps for every Omega; the grid and a report."""
    from skimage.color import rgb2hsv

    from .data.io import write_png
    from .fusion import load_method
    from .visualize import colour_code, contribution_maps, omega_grid, to_rgb8

    sweep = config.sweep
    method = load_method(config.model.name, weights=sweep.weights or None)
    pairs = _evaluation_pairs(config, out)[: max(1, sweep.grid_pairs)]
    loaded = [load_pair(p.mri, p.pet) for p in pairs]
    maps = contribution_maps(method, np.stack([m for m, _ in loaded]), np.stack([p for _, p in loaded]))
    result = SweepResult(out)
    for omega in sweep.values:
        coded = colour_code(maps.mri, maps.pet, omega)
        for pair, image in zip(pairs, coded):
            write_png(out / "coded" / f"omega_{omega:g}" / f"{pair.name}.png", to_rgb8(image))
        saturation = float(np.mean([rgb2hsv(np.clip(c, 0, 1))[..., 1].mean() for c in coded]))
        result.points.append({"label": f"omega_{omega:g}", "value": omega, "mean_saturation": saturation})
    figure_path = out / "omega_grid.png"
    omega_grid(maps.mri, maps.pet, omegas=list(sweep.values), fused=maps.fused,
               row_labels=[p.name for p in pairs], path=figure_path)
    result.figures.append(figure_path)
    _write_csv(out / "points.csv", result.points)
    lines = [f"# Sweep: {folder.name}", "", config.description, "",
             f"Weights: `{Path(str(method.weights)).name}`; {len(pairs)} pair(s) of `{sweep.eval_pairs}`; faithful colour coding.",
             "", "| Omega | mean saturation of the colour-coded image |", "|---|---|"]
    lines += [f"| {p['value']:g} | {p['mean_saturation']:.4f} |" for p in result.points]
    lines += ["", "Saturation is Omega times the PET map's saturation, so it must grow linearly with Omega; "
              "the hue (PET) and value (MRI) channels do not depend on Omega.", "", f"![omega_grid]({figure_path.name})"]
    result.report = out / "report.md"
    with atomic_path(result.report, suffix=".md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return result


def run_sweep(experiment, overrides: list[str] | None = None, values: list | None = None,
              progress: bool = True) -> SweepResult:
    """Run every point of an experiment folder (skipping finished ones) and write the report."""
    config, folder = load_experiment(experiment, overrides)
    sweep = config.sweep
    if values is not None:
        config = dataclasses.replace(config, sweep=dataclasses.replace(sweep, values=list(values)))
        sweep = config.sweep
    if not sweep.values:
        raise ValueError(f"{folder}: the [sweep] table lists no values")
    out = Path(sweep.out_dir or config.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sweep.kind == "omega":
        return _omega_sweep(config, folder, out, progress)
    if sweep.kind != "train":
        raise ValueError(f"{folder}: sweep.kind must be 'train' or 'omega', got {sweep.kind!r}")

    pairs = _evaluation_pairs(config, out)
    result = SweepResult(out)
    histories = {}
    metric_columns: list[str] = []
    for value in sweep.values:
        label = _label(sweep.parameter, value)
        point_dir = out / "points" / label
        point, history = _train_point(config, sweep.parameter, value, point_dir, progress)
        histories[label] = history
        means = _fuse_and_score(point, point_dir / "final.weights.h5", pairs, out / "fused" / label,
                                out / "metrics" / f"{label}.csv", sweep.metrics, progress)
        metric_columns = [c for c in means if c != "luminance_raw"]
        last = history[-1]
        result.points.append({
            "label": label, "value": value, "final_loss": last["loss"], "final_l_ssim": last["l_ssim"],
            "final_l_l2": last["l_l2"], "convergence_epoch": convergence_epoch([row["loss"] for row in history]),
            **means,
        })
    _write_csv(out / "points.csv", result.points)
    result.figures.append(_loss_figure(result.points, histories, sweep.parameter, out / "loss_curves.png"))
    result.figures.append(_image_grid(result.points, pairs, out, sweep.parameter, sweep.grid_pairs,
                                      out / "image_grid.png"))
    result.report = _write_report(result, config, folder, metric_columns)
    return result
