"""The sweep runner on a tiny quick variant: every output, resumability, and its helpers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from funfusean_tf.cli import main
from funfusean_tf.sweep import convergence_epoch, run_sweep

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_convergence_epoch_by_hand():
    assert convergence_epoch([10, 5, 1.5, 1, 1]) == 3  # 10 - 1.5 = 8.5 >= 0.9 * 9 = 8.1 > 10 - 5
    assert convergence_epoch([10, 9.5, 9.2, 1]) == 4
    assert convergence_epoch([1, 2, 3]) == 1           # never decreases
    with pytest.raises(ValueError):
        convergence_epoch([])


def test_quick_lambda_sweep_runs_end_to_end_and_resumes(tmp_path):
    overrides = [f'sweep.out_dir="{tmp_path.as_posix()}/sweep"', "train.epochs=2", "data.max_pairs=2",
                 "data.crop=32", "sweep.eval_count=2", "sweep.grid_pairs=1"]
    experiment = REPO / "experiments" / "funfusean_lambda_sweep_quick"
    result = run_sweep(experiment, overrides=overrides, values=[0.2, 0.9], progress=False)
    out = tmp_path / "sweep"
    for name in ("points.csv", "loss_curves.png", "image_grid.png", "report.md"):
        assert (out / name).is_file(), name
    with (out / "points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["value"]) for r in rows] == [0.2, 0.9]
    assert all(r["Q_G"] and r["Q_S"] for r in rows)  # Table-1 columns scored for every point
    report = (out / "report.md").read_text()
    assert "converges more slowly" in report

    history = out / "points" / "lambda_0.2" / "epochs.csv"
    stamp = history.stat().st_mtime_ns
    assert main(["sweep", str(experiment), "--values", "0.2", "--quiet", *sum((["--set", o] for o in overrides), [])]) == 0
    assert history.stat().st_mtime_ns == stamp  # the finished point was skipped, not retrained


def test_quick_omega_sweep(tmp_path):
    experiment = REPO / "experiments" / "funfusean_omega_sweep_quick"
    result = run_sweep(experiment, overrides=[f'sweep.out_dir="{tmp_path.as_posix()}/omega"', "sweep.eval_count=1",
                                              "sweep.grid_pairs=1"], values=[0.0, 0.5, 1.0], progress=False)
    out = tmp_path / "omega"
    assert (out / "omega_grid.png").is_file() and (out / "report.md").is_file()
    saturation = [p["mean_saturation"] for p in result.points]
    # S = Omega * S_pet (skimage hsv2rgb/rgb2hsv round trip): zero at Omega 0, linear in Omega.
    assert saturation[0] == pytest.approx(0.0, abs=1e-9)
    assert saturation[2] == pytest.approx(2 * saturation[1], rel=1e-6)
    assert len(list((out / "coded" / "omega_0.5").glob("*.png"))) == 1
