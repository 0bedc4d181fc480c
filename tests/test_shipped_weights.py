"""The shipped FunFuseAn weights: they load, fuse real pairs without NaN, and beat an untrained net."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from funfusean_tf.cli import main
from funfusean_tf.data.datasets import named_pairs
from funfusean_tf.data.io import load_pair, to_uint8
from funfusean_tf.fusion import load_method, trained_model_config
from funfusean_tf.models.funfusean import build_funfusean
from funfusean_tf.models.registry import shipped_weights
from funfusean_tf.fusion import NetworkMethod
from funfusean_tf.ssim import ssim


#: Every network that ships weights, and the untrained network its weights are compared with.
SHIPPED = ("funfusean", "mdafuse", "sesf", "dilran")


def _untrained(name):
    from funfusean_tf.models.registry import build_model, get_network

    config = trained_model_config(shipped_weights(name))
    model = build_model(config)
    spec = get_network(name)
    return spec.make_method(model, None) if spec.make_method else NetworkMethod(model, f"untrained {name}")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_carry_their_training_config(name):
    weights = shipped_weights(name)
    config = trained_model_config(weights)
    assert config is not None and config.name == name
    if name == "funfusean":
        assert config.hf_rule == "guarded"


def _mean_ssims(method, pairs):
    values = []
    for pair in pairs:
        mri, pet = load_pair(pair.mri, pair.pet)
        fused = method(mri, pet)
        assert np.all(np.isfinite(fused)), pair.name
        scaled = to_uint8(fused).astype(np.float32)[None, ..., None] / 255.0
        values.append((float(ssim(scaled, mri[None, ..., None])[0]), float(ssim(scaled, pet[None, ..., None])[0])))
    return np.mean(values, axis=0)


@pytest.mark.parametrize("name,split", [("funfusean_test", None), ("harvard_pet_mri", "test")])
def test_shipped_funfusean_weights_fuse_real_test_pairs_better_than_untrained(shared_data, name, split):
    pairs = named_pairs(name, split=split, root=shared_data)
    trained = _mean_ssims(load_method("funfusean"), pairs)
    untrained = _mean_ssims(NetworkMethod(build_funfusean(hf_rule="guarded"), "untrained"), pairs[:5])
    # Training raised the similarity of the fused image to BOTH sources (the loss's two SSIM terms).
    assert trained[0] > untrained[0] and trained[1] > untrained[1]


@pytest.mark.parametrize("name", ["mdafuse", "dilran"])
def test_other_shipped_weights_fuse_real_pairs_better_than_untrained(shared_data, name):
    """On 4 of FunFuseAn's real test pairs (none seen in training): finite output, and a higher
    SSIM of the fused image to each source than the same network untrained."""
    pairs = named_pairs("funfusean_test", root=shared_data)[:4]
    keras.utils.set_random_seed(0)
    trained = _mean_ssims(load_method(name), pairs)
    untrained = _mean_ssims(_untrained(name), pairs)
    assert trained[0] > untrained[0] and trained[1] > untrained[1], (trained, untrained)


def test_shipped_sesf_weights_reconstruct_real_images_better_than_untrained(shared_data):
    """SESF's weights are an auto-encoder's (its decision map trades one source for the other, so
    SSIM to both sources cannot rise together): on real MRI and PET slices never seen in training
    (the weights come from the phantom), the trained auto-encoder, run as at fusion time (moving
    BatchNorm statistics), reconstructs its input better than the untrained one."""
    from funfusean_tf.models.sesf import sesf_standardise

    pairs = named_pairs("funfusean_test", root=shared_data)[:4]
    images = np.stack([image for pair in pairs for image in load_pair(pair.mri, pair.pet)])[..., None]
    images = sesf_standardise(images.astype(np.float32))
    keras.utils.set_random_seed(0)
    trained, untrained = load_method("sesf").model, _untrained("sesf").model
    error = {name: float(np.mean((np.asarray(model(images, training=False)) - images) ** 2))
             for name, model in (("trained", trained), ("untrained", untrained))}
    assert error["trained"] < 0.8 * error["untrained"], error  # measured: 1.54 vs 2.09
    fused = load_method("sesf")(*load_pair(pairs[0].mri, pairs[0].pet))
    assert np.all(np.isfinite(fused))


def test_demo_writes_images_and_scores(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "2"]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    assert (out / "overview.png").is_file() and (out / "scores.csv").is_file()
    assert len(list(out.glob("*_fused.png"))) == 2
