"""`funfusean evaluate` and funfusean_tf.evaluation.evaluate: inputs, outputs, failures."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from funfusean_tf.cli import main
from funfusean_tf.evaluation import evaluate, match_fused, read_grey_as, resolve_pairs


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


@pytest.fixture
def pair_folder(tmp_path, rng):
    """Three 64x64 pairs in MRI/ and PET/ (PET as RGB), and their average as fused/<name>.png."""
    yy, xx = np.mgrid[:64, :64]
    for i in range(3):
        mri = np.clip(128 + 100 * np.sin(xx / (5 + i)) * np.cos(yy / 7) + rng.normal(0, 5, (64, 64)), 0, 255)
        pet = np.clip(255 * np.exp(-((xx - 30 - i) ** 2 + (yy - 32) ** 2) / 200.0), 0, 255)
        pet_rgb = np.stack([pet, pet * 0.5, pet * 0.2], axis=-1)
        _png(tmp_path / "set" / "MRI" / f"{i}.png", mri)
        _png(tmp_path / "set" / "PET" / f"{i}.png", pet_rgb)
        grey_pet = read_grey_as(tmp_path / "set" / "PET" / f"{i}.png", "matlab")
        _png(tmp_path / "fused" / f"{i}.png", np.round((mri.astype(np.uint8) + grey_pet) / 2))
    return tmp_path


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_writes_per_image_csv_summary_and_markdown(pair_folder, capsys):
    out = pair_folder / "res" / "results.csv"
    code = main(["evaluate", "--pairs", str(pair_folder / "set"), "--fused", str(pair_folder / "fused"),
                 "--metrics", "mdafuse", "--out", str(out)])
    assert code == 0
    rows = _rows(out)
    assert [r["pair"] for r in rows] == ["0", "1", "2"]
    for name in ("EN", "MI", "SD", "VIF", "SSIM", "SCD", "CC", "MSE", "rSFe"):
        assert all(float(r[name]) == float(r[name]) for r in rows)  # present and not NaN
    assert all(r["errors"] == "" for r in rows)
    assert rows[0]["source_a"].endswith("MRI/0.png") and rows[0]["source_b"].endswith("PET/0.png")

    summary = _rows(out.with_name("results_summary.csv"))
    assert [s["metric"] for s in summary][:3] == ["EN", "MI", "SD"]
    en = [float(r["EN"]) for r in rows]
    assert float(summary[0]["mean"]) == pytest.approx(np.mean(en))
    assert float(summary[0]["std"]) == pytest.approx(np.std(en))
    assert summary[0]["n"] == "3"

    md = out.with_suffix(".md").read_text()
    assert "| EN | 3 |" in md and "±" in md and "## Per image" in md
    printed = capsys.readouterr()
    assert "mean ± std" in printed.out
    assert "evaluate mdafuse" in printed.err  # the tqdm progress bar


def test_evaluate_api_all_presets_prefix_columns(pair_folder):
    result = evaluate(pair_folder / "set", pair_folder / "fused", preset="all", out=None, progress=False)
    assert "table1.Q_NCIE" in result.columns and "cddfuse.Qabf" in result.columns
    assert "dilran.FMI_pixel" in result.columns and "extras.Q_CB" in result.columns
    assert len(result.rows) == 3 and result.n_failed == 0
    assert {s["metric"] for s in result.summary} == set(result.columns)


def test_prefixed_file_layout_and_fused_names_with_a_prefix(tmp_path, rng):
    # the MdAFuse reference layout: sources/mri_<i>.png + pet_<i>.png; fused named Mine_<i>.png
    for i in range(2):
        a = rng.integers(0, 256, (48, 48))
        b = rng.integers(0, 256, (48, 48))
        _png(tmp_path / "sources" / f"pet_{i}.png", b)
        _png(tmp_path / "sources" / f"mri_{i}.png", a)
        _png(tmp_path / "fused" / f"Mine_{i}.png", (a + b) // 2)
    pairs = resolve_pairs(tmp_path / "sources")
    assert [p.mri.name for p in pairs] == ["mri_0.png", "mri_1.png"]
    assert [f.name for f in match_fused(pairs, tmp_path / "fused")] == ["Mine_0.png", "Mine_1.png"]
    result = evaluate(tmp_path / "sources", tmp_path / "fused", preset="cddfuse", progress=False)
    assert len(result.rows) == 2 and result.n_failed == 0


def test_a_metric_that_cannot_be_computed_is_reported_not_hidden(tmp_path):
    zero = np.zeros((32, 32))
    _png(tmp_path / "s" / "MRI" / "a.png", zero)
    _png(tmp_path / "s" / "PET" / "a.png", zero)
    _png(tmp_path / "f" / "a.png", zero + 7)
    out = tmp_path / "r.csv"
    with pytest.warns(UserWarning, match="could not be computed"):
        result = evaluate(tmp_path / "s", tmp_path / "f", preset="mdafuse", out=out, progress=False)
    row = _rows(out)[0]
    assert row["CC"] == "" and "CC:" in row["errors"] and "constant" in row["errors"]
    assert row["EN"] != ""
    assert result.n_failed == 1
    assert "could not be computed" in out.with_suffix(".md").read_text()


def test_cli_user_errors_exit_2(pair_folder, tmp_path, capsys):
    fused_missing = tmp_path / "fewer"
    _png(fused_missing / "0.png", np.zeros((64, 64)))
    _png(fused_missing / "x.png", np.zeros((64, 64)))
    code = main(["evaluate", "--pairs", str(pair_folder / "set"), "--fused", str(fused_missing),
                 "--out", str(tmp_path / "r.csv"), "--quiet"])
    assert code == 2
    assert "no fused image" in capsys.readouterr().err
    assert main(["evaluate", "--pairs", "no_such_set", "--fused", str(pair_folder / "fused"), "--quiet"]) == 2
    assert main(["evaluate", "--pairs", str(pair_folder / "set"), "--fused", str(pair_folder / "fused"),
                 "--out", str(tmp_path / "r.txt"), "--quiet"]) == 2
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.shared_data
def test_evaluate_reproduces_mdafuse_csv_through_the_pipeline(shared_data, tmp_path):
    ref = shared_data / "reference" / "mdafuse_mr_pet"
    expected = {int(r["index"]): r for r in _rows(ref / "metrics_en_mi_sd_scd_rsfe.csv")}
    # three pairs are enough to check reading, pairing and columns; test_metrics_reference checks all 42
    pairs = resolve_pairs(ref / "sources")[:3]
    result = evaluate(pairs, ref / "fused", preset="mdafuse", progress=False)
    for row in result.rows:
        for name in ("EN", "MI", "SD", "SCD", "rSFe"):
            assert row[name] == pytest.approx(float(expected[int(row["pair"])][name]), rel=1e-9)


def test_a_fused_image_of_the_wrong_size_is_named_by_path(pair_folder, tmp_path, capsys):
    """Issue 15 case 6: the message names the fused file (its path) and the sizes, exit 2, nothing written."""
    fused = tmp_path / "fused_wrong"
    for i in range(3):
        _png(fused / f"{i}.png", np.full((64, 64), 9 * i))
    _png(fused / "1.png", np.zeros((60, 64)))
    out = tmp_path / "r.csv"
    code = main(["evaluate", "--pairs", str(pair_folder / "set"), "--fused", str(fused), "--out", str(out),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(fused / "1.png") in err and "60x64" in err and "64x64" in err
    assert not out.exists()
