"""End-to-end `funfusean fuse` / `train` on tiny inputs: outputs, and errors with nothing left behind."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from funfusean_tf.cli import main
from funfusean_tf.models.funfusean import build_funfusean


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    model = build_funfusean(hf_rule="guarded")
    path = folder / "tiny.weights.h5"
    model.save_weights(path)
    (folder / "tiny.toml").write_text('[model]\nname = "funfusean"\nhf_rule = "guarded"\n')
    return path


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


@pytest.fixture
def tiny_pair(tmp_path, rng):
    mri = _png(tmp_path / "in" / "mri" / "a.png", rng.integers(0, 256, (32, 40)))
    pet = _png(tmp_path / "in" / "pet" / "a.png", rng.integers(0, 256, (32, 40, 3)))
    return mri, pet


def test_fuse_one_pair_writes_8bit_png_and_npy(tmp_path, tiny_pair, tiny_weights):
    mri, pet = tiny_pair
    out = tmp_path / "out" / "fused.png"
    assert main(["fuse", "--mri", str(mri), "--pet", str(pet), "--out", str(out), "--weights", str(tiny_weights),
                 "--npy", "--quiet"]) == 0
    image = np.asarray(Image.open(out))
    assert image.dtype == np.uint8 and image.shape == (32, 40)
    assert image.min() == 0 and image.max() == 255  # min-max scaled per image (FIDELITY.md)
    floats = np.load(out.with_suffix(".npy")).astype(np.float64)
    expected = np.uint8(255 * (floats - floats.min()) / (floats.max() - floats.min()))
    np.testing.assert_array_equal(image, expected)


def test_fuse_folders(tmp_path, tiny_pair, tiny_weights, rng):
    _png(tmp_path / "in" / "mri" / "b.png", rng.integers(0, 256, (32, 40)))
    _png(tmp_path / "in" / "pet" / "b.png", rng.integers(0, 256, (32, 40)))
    out = tmp_path / "fused"
    assert main(["fuse", "--mri", str(tmp_path / "in" / "mri"), "--pet", str(tmp_path / "in" / "pet"),
                 "--out", str(out), "--weights", str(tiny_weights), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_fuse_with_a_baseline(tmp_path, tiny_pair):
    mri, pet = tiny_pair
    out = tmp_path / "avg.png"
    assert main(["fuse", "--mri", str(mri), "--pet", str(pet), "--out", str(out), "--method", "average"]) == 0
    assert np.asarray(Image.open(out)).shape == (32, 40)


def _assert_fails_cleanly(capsys, argv, out_dir, *fragments):
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    for fragment in fragments:
        assert fragment in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_mismatched_sizes_fail_naming_both_files(tmp_path, tiny_weights, capsys, rng):
    mri = _png(tmp_path / "m.png", rng.integers(0, 256, (32, 40)))
    pet = _png(tmp_path / "p.png", rng.integers(0, 256, (30, 40)))
    out_dir = tmp_path / "out"
    _assert_fails_cleanly(capsys, ["fuse", "--mri", str(mri), "--pet", str(pet), "--out", str(out_dir / "f.png"),
                                   "--weights", str(tiny_weights)], out_dir, "m.png", "p.png", "same size")


def test_bad_inputs_fail_with_the_file_named(tmp_path, tiny_weights, capsys, rng):
    out_dir = tmp_path / "out"
    unreadable = tmp_path / "broken.png"
    unreadable.write_bytes(b"not an image")
    good = _png(tmp_path / "g.png", rng.integers(0, 256, (16, 16)))
    _assert_fails_cleanly(capsys, ["fuse", "--mri", str(unreadable), "--pet", str(good), "--out",
                                   str(out_dir / "f.png"), "--weights", str(tiny_weights)], out_dir, "broken.png")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((16, 16), np.nan))
    _assert_fails_cleanly(capsys, ["fuse", "--mri", str(nan), "--pet", str(good), "--out", str(out_dir / "f.png"),
                                   "--weights", str(tiny_weights)], out_dir, "nan.npy", "NaN")
    cube = tmp_path / "cube.npy"
    np.save(cube, np.ones((4, 16, 16)))
    _assert_fails_cleanly(capsys, ["fuse", "--mri", str(cube), "--pet", str(good), "--out", str(out_dir / "f.png"),
                                   "--weights", str(tiny_weights)], out_dir, "cube.npy", "2-D")
    flat = _png(tmp_path / "flat.png", np.full((16, 16), 7))
    _assert_fails_cleanly(capsys, ["fuse", "--mri", str(flat), "--pet", str(good), "--out", str(out_dir / "f.png"),
                                   "--weights", str(tiny_weights)], out_dir, "flat.png", "constant")


def test_one_bad_pair_in_a_folder_writes_nothing(tmp_path, tiny_weights, capsys, rng):
    for name in ("a", "b"):
        _png(tmp_path / "mri" / f"{name}.png", rng.integers(0, 256, (16, 16)))
    _png(tmp_path / "pet" / "a.png", rng.integers(0, 256, (16, 16)))
    _png(tmp_path / "pet" / "b.png", np.zeros((16, 16)))  # constant: cannot be scaled
    out_dir = tmp_path / "fused"
    _assert_fails_cleanly(capsys, ["fuse", "--mri", str(tmp_path / "mri"), "--pet", str(tmp_path / "pet"),
                                   "--out", str(out_dir), "--weights", str(tiny_weights)], out_dir, "b.png")


def test_exact_rule_nan_is_refused_not_written(tmp_path, capsys):
    """With the exact rule an all-zero pair makes 0/0 in the high-frequency fusion: never a silent NaN image."""
    from funfusean_tf.fusion import NetworkMethod

    method = NetworkMethod(build_funfusean(hf_rule="exact"), "funfusean")
    zeros = np.zeros((16, 16), np.float32)
    with pytest.raises(FloatingPointError, match="NaN"):
        method(zeros, zeros)


def test_list_and_unknown_method(capsys):
    assert main(["fuse", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "funfusean" in listing and "gff" in listing
    assert main(["fuse", "--mri", "a", "--pet", "b", "--out", "c.png", "--method", "nope"]) == 2


def test_train_cli_with_override(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[model]\nhf_rule = "guarded"\n[data]\nsource = "phantom"\nmax_pairs = 2\ncrop = 32\n'
                      '[train]\nepochs = 1\ntensorboard = false\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out), "--lambda", "0.5", "--quiet"]) == 0
    assert 'lambda = 0.5' in (out / "config.toml").read_text()
    assert (out / "final.weights.h5").is_file()
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_batch_statistics_network_fuses_each_image_alone(rng):
    """Per-batch BN: fusing a stack must equal fusing each image alone (the originals' batch size 1)."""
    from funfusean_tf.fusion import NetworkMethod

    method = NetworkMethod(build_funfusean(hf_rule="guarded", bn_statistics="batch"), "funfusean")
    assert method.batch_size == 1
    mri, pet = rng.random((3, 24, 24)).astype(np.float32), rng.random((3, 24, 24)).astype(np.float32)
    stacked = method(mri, pet)
    alone = np.stack([method(m, p) for m, p in zip(mri, pet)])
    np.testing.assert_allclose(stacked, alone, rtol=1e-5, atol=1e-6)


def test_fuse_colour_writes_rgb_with_the_grey_file_as_luma(tmp_path, tiny_pair):
    mri, pet = tiny_pair
    grey_out, colour_out = tmp_path / "grey.png", tmp_path / "colour.png"
    assert main(["fuse", "--mri", str(mri), "--pet", str(pet), "--out", str(grey_out), "--method", "average"]) == 0
    assert main(["fuse", "--mri", str(mri), "--pet", str(pet), "--out", str(colour_out), "--method", "average",
                 "--colour", "ycbcr"]) == 0
    grey = np.asarray(Image.open(grey_out)).astype(np.float64)
    rgb = np.asarray(Image.open(colour_out)).astype(np.float64)
    assert rgb.shape == (32, 40, 3) and np.ptp(rgb - rgb[..., :1]) > 0  # coloured, not grey
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    unclipped = (rgb > 0).all(-1) & (rgb < 255).all(-1)
    assert unclipped.mean() > 0.2
    assert np.max(np.abs(luma - grey)[unclipped]) <= 1.0  # 8-bit rounding of each channel


def test_fuse_colour_needs_a_colour_image_file(tmp_path, tiny_pair, capsys, rng):
    mri, _ = tiny_pair
    array_pet = tmp_path / "in" / "pet.npy"  # fuses fine in grey, but holds no colour
    np.save(array_pet, rng.random((32, 40)))
    assert main(["fuse", "--mri", str(mri), "--pet", str(array_pet), "--out", str(tmp_path / "ok.png"),
                 "--method", "average"]) == 0
    out_dir = tmp_path / "never"
    _assert_fails_cleanly(capsys, ["fuse", "--mri", str(mri), "--pet", str(array_pet), "--out",
                                   str(out_dir / "x.png"), "--method", "average", "--colour", "ycbcr"],
                          out_dir, str(array_pet), "not a colour image file")
