"""End-to-end `funfusean visualize` on tiny inputs: the files, their content, clean failures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from funfusean_tf.cli import main
from funfusean_tf.models.funfusean import build_funfusean
from funfusean_tf.visualize import colour_code, to_rgb8

OUTPUTS = ("fused", "mri_contribution", "pet_contribution", "colour_coded")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Two weight files (two 'lambdas'), each with the [model] settings it was 'trained' with."""
    folder = tmp_path_factory.mktemp("weights")
    paths = []
    for seed, name in ((1, "lam_a"), (2, "lam_b")):
        model = build_funfusean(hf_rule="guarded")
        rng = np.random.default_rng(seed)
        model.set_weights([w + rng.normal(0, 0.05, w.shape) if w.ndim == 4 else w for w in model.get_weights()])
        path = folder / f"{name}.weights.h5"
        model.save_weights(path)
        (folder / f"{name}.toml").write_text('[model]\nname = "funfusean"\nhf_rule = "guarded"\n')
        paths.append(path)
    return paths


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


@pytest.fixture
def pair_dirs(tmp_path, rng):
    for name in ("a", "b"):
        _png(tmp_path / "in" / "mri" / f"{name}.png", rng.integers(0, 256, (24, 32)))
        _png(tmp_path / "in" / "pet" / f"{name}.png", rng.integers(0, 256, (24, 32, 3)))
    return tmp_path / "in" / "mri", tmp_path / "in" / "pet"


def _read(path):
    return np.asarray(Image.open(path))


def test_one_pair_writes_fused_maps_and_the_api_colour_coding(tmp_path, pair_dirs, weights):
    from funfusean_tf.data.io import load_pair
    from funfusean_tf.fusion import load_method
    from funfusean_tf.visualize import contribution_maps

    mri, pet = pair_dirs[0] / "a.png", pair_dirs[1] / "a.png"
    out = tmp_path / "vis"
    assert main(["visualize", "--mri", str(mri), "--pet", str(pet), "--weights", str(weights[0]),
                 "--omega", "0.3", "--out", str(out), "--npy", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"a_{what}.png" for what in OUTPUTS] + ["a_mri_contribution.npy", "a_pet_contribution.npy"])

    method = load_method("funfusean", weights=weights[0])
    maps = contribution_maps(method, *load_pair(mri, pet))
    np.testing.assert_allclose(np.load(out / "a_mri_contribution.npy"), maps.mri, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.load(out / "a_pet_contribution.npy"), maps.pet, rtol=1e-5, atol=1e-7)
    coded = _read(out / "a_colour_coded.png")
    assert coded.shape == (24, 32, 3) and coded.dtype == np.uint8
    np.testing.assert_array_equal(coded, to_rgb8(colour_code(maps.mri, maps.pet, 0.3)))
    assert _read(out / "a_mri_contribution.png").ndim == 3  # a matplotlib figure with its colour bar

    # the fused image is the one `funfusean fuse` writes with the same weights
    assert main(["fuse", "--mri", str(mri), "--pet", str(pet), "--weights", str(weights[0]),
                 "--out", str(tmp_path / "fused.png"), "--quiet"]) == 0
    np.testing.assert_array_equal(_read(out / "a_fused.png"), _read(tmp_path / "fused.png"))


def test_omega_zero_writes_a_grey_image(tmp_path, pair_dirs, weights):
    out = tmp_path / "grey"
    assert main(["visualize", "--mri", str(pair_dirs[0] / "b.png"), "--pet", str(pair_dirs[1] / "b.png"),
                 "--weights", str(weights[0]), "--omega", "0", "--out", str(out), "--quiet"]) == 0
    coded = _read(out / "b_colour_coded.png").astype(int)
    assert np.array_equal(coded[..., 0], coded[..., 1]) and np.array_equal(coded[..., 0], coded[..., 2])
    assert coded.max() == 255 and coded.min() == 0  # the min-max scaled MRI map


def test_folders_corrected_mode_and_both_grids(tmp_path, pair_dirs, weights):
    out = tmp_path / "grids"
    argv = ["visualize", "--mri", str(pair_dirs[0]), "--pet", str(pair_dirs[1]), "--weights", str(weights[0]),
            "--mode", "corrected", "--omega-grid", "0.3", "0.6", "0.9",
            "--lambda-weights", f"0.2={weights[0]}", f"0.8={weights[1]}", "--npy", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    expected = {f"{name}_{what}.png" for name in ("a", "b") for what in OUTPUTS + ("omega_grid", "lambda_grid")}
    expected |= {f"{name}_{kind}_contribution.npy" for name in ("a", "b") for kind in ("mri", "pet")}
    assert {p.name for p in out.iterdir()} == expected
    maps = [np.load(out / f"b_{kind}_contribution.npy") for kind in ("mri", "pet")]
    coded = _read(out / "b_colour_coded.png")
    np.testing.assert_array_equal(coded, to_rgb8(colour_code(*maps, 0.6, mode="corrected")))
    assert np.abs(coded.astype(int) - to_rgb8(colour_code(*maps, 0.6, mode="faithful"))).max() > 50
    grid = _read(out / "a_lambda_grid.png")
    assert grid.shape[1] > grid.shape[0]  # MRI, PET and two lambdas side by side, two rows


def test_failures_write_nothing(tmp_path, pair_dirs, weights, capsys):
    mri, pet = str(pair_dirs[0] / "a.png"), str(pair_dirs[1] / "a.png")
    out = tmp_path / "none"
    cases = [
        (["--method", "average"], "no gradients"),
        (["--weights", str(weights[0]), "--omega", "1.5"], "Omega"),
        (["--weights", str(weights[0]), "--lambda-weights", "x=y"], "LAMBDA"),
        (["--weights", str(tmp_path / "missing.weights.h5")], "missing.weights.h5"),
    ]
    for extra, message in cases:
        assert main(["visualize", "--mri", mri, "--pet", pet, "--out", str(out), "--quiet", *extra]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()
