"""End-to-end `funfusean fuse` / `train` on tiny inputs: outputs, and errors with nothing left behind."""

from __future__ import annotations

from pathlib import Path

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


BATCH_EQUALS_SINGLES = """
import sys
import numpy as np
from funfusean_tf.fusion import load_method

rng = np.random.default_rng(0)
worst = {}
for name in ("funfusean", "mdafuse", "dilran", "sesf"):
    method = load_method(name)  # the shipped weights, the default options
    # smooth images with very different levels, as an MRI and a dark PET slice would be
    base = rng.random((3, 32, 32))
    mri = np.kron(base, np.ones((8, 8)))[:, :256, :256].astype(np.float32)
    pet = (np.kron(rng.random((3, 16, 16)), np.ones((16, 16))) * [[[1.0]], [[0.2]], [[0.6]]]).astype(np.float32)
    together = method(mri, pet)
    alone = np.stack([method(m, p) for m, p in zip(mri, pet)])
    worst[name] = float(np.max(np.abs(together - alone)))
print(worst)
assert all(v <= 1e-5 for v in worst.values()), worst
"""


def test_every_network_fuses_a_stack_in_batches_equal_to_single_calls(tmp_path):
    """Issue 15: batching is the fast path (8 per call by default) and exact: each image of a
    batch gets its batch-1 result, for every registered network with its shipped weights. Run
    without oneDNN (TF_ENABLE_ONEDNN_OPTS=0), whose convolution kernels change with the batch
    size and would alone move outputs by float rounding."""
    import os
    import subprocess
    import sys

    script = tmp_path / "batch_equals_singles.py"
    script.write_text(BATCH_EQUALS_SINGLES)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_network_batches_shrink_to_the_memory_available(monkeypatch):
    """A full batch of 8 is used only where it fits in half the available memory; one image
    always runs (check_memory refuses a single image that does not fit, before any work)."""
    from funfusean_tf import fusion

    method = fusion.NetworkMethod(build_funfusean(hf_rule="guarded"), "funfusean")
    assert method.batch_size == fusion.DEFAULT_BATCH_SIZE == 8
    per_image = 256 * 256 * fusion.bytes_per_pixel(method)  # 6 x 64 float32 maps per pixel
    monkeypatch.setattr(fusion, "available_memory", lambda: 100 * per_image)
    assert method.batch_for((20, 256, 256)) == 8
    assert method.batch_for((3, 256, 256)) == 3
    monkeypatch.setattr(fusion, "available_memory", lambda: 7 * per_image)  # 3 fit in half of it
    assert method.batch_for((20, 256, 256)) == 3
    monkeypatch.setattr(fusion, "available_memory", lambda: per_image // 2)
    assert method.batch_for((20, 256, 256)) == 1
    assert fusion.memory_needed(method, (20, 256, 256)) == per_image  # one image at a time
    with pytest.raises(ValueError, match="batch_size"):
        fusion.NetworkMethod(method.model, "funfusean", batch_size=0)


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


# -- issue 15 case 1: an output that is an input is refused before any work ----------------------


def _no_work(monkeypatch):
    """Loading a method or reading an image now fails the test: the refusal must come first."""
    from funfusean_tf import fusion
    from funfusean_tf.cli import fuse as fuse_cli

    def forbidden(*args, **kwargs):
        raise AssertionError("work was done before the output path was checked")

    monkeypatch.setattr(fuse_cli, "load_method_from", forbidden)
    monkeypatch.setattr(fusion, "load_pair", forbidden)


@pytest.mark.parametrize("spelling", ["same", "dot", "dotdot", "symlink", "hardlink", "pet", "npy"])
def test_output_that_is_an_input_is_refused_before_any_work(tmp_path, capsys, monkeypatch, rng, spelling):
    mri = _png(tmp_path / "in" / "same.png", rng.integers(0, 256, (16, 16)))
    pet = _png(tmp_path / "in" / "pet.png", rng.integers(0, 256, (16, 16)))
    extra = []
    if spelling == "npy":  # --npy writes out.npy beside out.png: here that is the MRI input
        mri = tmp_path / "in" / "same.npy"
        np.save(mri, rng.random((16, 16)))
        out, extra = str(tmp_path / "in" / "same.png"), ["--npy"]
        pet.unlink()
        pet = _png(tmp_path / "in" / "pet.png", rng.integers(0, 256, (16, 16)))
    elif spelling == "same":
        out = str(mri)
    elif spelling == "dot":
        out = f"{tmp_path}/in/./same.png"
    elif spelling == "dotdot":
        out = f"{tmp_path}/in/../in/same.png"
    elif spelling == "symlink":
        (tmp_path / "link").symlink_to(tmp_path / "in")
        out = str(tmp_path / "link" / "same.png")
    elif spelling == "hardlink":
        out = str(tmp_path / "in" / "hard.png")
        (tmp_path / "in" / "hard.png").hardlink_to(mri)
    else:
        out = str(pet)
    before = {p: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    _no_work(monkeypatch)
    code = main(["fuse", "--mri", str(mri), "--pet", str(pet), "--out", out, "--method", "average", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    named = Path(out).with_suffix(".npy") if spelling == "npy" else Path(out)  # as the user spelt it
    assert f"{named}: the output would overwrite the input" in err
    assert {p: p.read_bytes() for p in (tmp_path / "in").iterdir()} == before


def test_folder_output_that_would_overwrite_an_input_is_refused(tmp_path, capsys, monkeypatch, rng):
    for side in ("mri", "pet"):
        for name in ("a", "b"):
            _png(tmp_path / side / f"{name}.png", rng.integers(0, 256, (16, 16)))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.png")}
    _no_work(monkeypatch)
    for out in (tmp_path / "mri", tmp_path / "x" / ".." / "pet"):
        code = main(["fuse", "--mri", str(tmp_path / "mri"), "--pet", str(tmp_path / "pet"), "--out", str(out),
                     "--method", "average"])
        err = capsys.readouterr().err
        assert code == 2 and str(out / "a.png") in err and "would overwrite the input" in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.png")} == before


def test_fuse_pairs_api_refuses_an_output_that_is_an_input(tmp_path, rng):
    from funfusean_tf.data.pairs import ImagePair
    from funfusean_tf.fusion import OutputOverwritesInputError, fuse_pairs

    mri = _png(tmp_path / "a.png", rng.integers(0, 256, (16, 16)))
    pet = _png(tmp_path / "p" / "a.png", rng.integers(0, 256, (16, 16)))
    with pytest.raises(OutputOverwritesInputError, match="would overwrite"):
        fuse_pairs([ImagePair(mri, pet, "a")], tmp_path, method="average", progress=False)


# -- issue 15 case 2: a pair too large for memory is refused up front, never an abort -------------


def test_pair_too_large_for_memory_is_refused_up_front(tmp_path, tiny_weights, capsys, monkeypatch, rng):
    """The available memory is patched down (a real 4096 x 4096 run would need ~26 GB): refused
    before fusing with the size and the memory needed, exit 2, nothing written."""
    from funfusean_tf import fusion

    mri = _png(tmp_path / "in" / "m.png", rng.integers(0, 256, (96, 128)))
    pet = _png(tmp_path / "in" / "p.png", rng.integers(0, 256, (96, 128)))
    monkeypatch.setattr(fusion, "available_memory", lambda: 5_000_000)

    def forbidden(self, *args):
        raise AssertionError("fused although it was refused")

    monkeypatch.setattr(fusion.NetworkMethod, "__call__", forbidden)
    out_dir = tmp_path / "out"
    code = main(["fuse", "--mri", str(mri), "--pet", str(pet), "--out", str(out_dir / "f.png"),
                 "--weights", str(tiny_weights), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "96x128" in err and "19 MB" in err and "5 MB" in err and "m.png" in err  # 96*128*6*64*4 bytes
    assert not out_dir.exists()
    with pytest.raises(fusion.ImageTooLargeError, match="96x128"):
        fusion.fuse(rng.random((96, 128)), rng.random((96, 128)), weights=tiny_weights,
                    model_config=__import__("funfusean_tf.config", fromlist=["ModelConfig"]).ModelConfig(
                        hf_rule="guarded"))


def test_memory_estimate_matches_the_measured_runs(tiny_weights):
    """2048 x 2048 FunFuseAn ran in 5.6 GB and 4096 x 4096 died at 19 GB free (issue 15): the
    estimate allows the first and refuses the second on that machine."""
    from funfusean_tf.fusion import NetworkMethod, load_method, memory_needed

    method = NetworkMethod(build_funfusean(hf_rule="guarded"), "funfusean")
    assert memory_needed(method, (2048, 2048)) == 2048 * 2048 * 6 * 64 * 4
    assert 5.0e9 < memory_needed(method, (2048, 2048)) < 10e9
    assert memory_needed(method, (4096, 4096)) > 19e9
    assert memory_needed(method, (3, 2048, 2048)) == memory_needed(method, (2048, 2048))  # batch 1
    assert memory_needed(load_method("average"), (4096, 4096)) < 5e9
