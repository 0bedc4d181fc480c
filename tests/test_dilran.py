"""DILRAN: the fusion layer against hand computations, the models, the loss, one fit step, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from funfusean_tf.config import ModelConfig, TrainConfig
from funfusean_tf.models.dilran import (
    VGG_NOTOP_FILE,
    DilranFeatureFusion,
    DilranLossOptions,
    DilranObjective,
    build_dilran,
    build_dilran_autoencoder,
    build_vgg_features,
    dilran_from_autoencoder,
    sobel_gradient_loss,
    split_options,
)


def _conv_params(k, cin, cout):
    return k * k * cin * cout + cout


def _expected_trainable(sharing: str) -> int:
    """The parameter count the architecture description implies (BN: gamma + beta)."""
    bn = lambda c: 2 * c  # noqa: E731
    dilran_blocks = 1 if sharing == "shared" else 3
    encoder = (
        _conv_params(3, 1, 64) + bn(64)  # shallow
        + 3 * _conv_params(3, 64, 64)  # dilated 1, 3, 5
        + dilran_blocks * (_conv_params(3, 64, 64) + bn(64))  # the block's one conv + its BN
        + _conv_params(1, 64, 192)  # shortcut
        + _conv_params(3, 192, 128) + bn(128) + _conv_params(3, 128, 64) + bn(64)
    )
    decoder = _conv_params(3, 64, 64) + _conv_params(3, 64, 32) + _conv_params(3, 32, 16) + _conv_params(3, 16, 1)
    return encoder + decoder


def _trainable(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


# ----------------------------------------------------------------------------- fusion layer


def _softmax_channels(f):
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sfnn_weights(f1, f2):
    """SFNN by hand, one image at a time, with numpy's SVD."""
    weights = []
    for a, b in zip(f1, f2):
        maxima = []
        for f in (a, b):
            soft = _softmax_channels(f.astype(np.float64))
            norms = [np.linalg.svd(soft[..., c], compute_uv=False).sum() for c in range(f.shape[-1])]
            maxima.append(max(norms))
        m1, m2 = maxima
        weights.append((m1**2 / (m1**2 + m2**2), m2**2 / (m1**2 + m2**2)))
    return np.array(weights)


def test_sfnn_weights_match_softmax_and_numpy_nuclear_norms(rng):
    f1 = rng.normal(0.0, 2.0, size=(2, 5, 4, 3)).astype(np.float32)
    f2 = rng.normal(0.5, 1.0, size=(2, 5, 4, 3)).astype(np.float32)
    weights = _sfnn_weights(f1, f2)
    assert not np.allclose(weights, 0.5, atol=1e-3)  # the example actually discriminates
    out = np.asarray(DilranFeatureFusion("sfnn")([f1, f2]))
    expected = weights[:, 0, None, None, None] * f1 + weights[:, 1, None, None, None] * f2
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_sfnn_weights_are_constants_for_the_gradient(rng):
    # the original computes w1, w2 with .item(): d(sum fused)/d f1 is w1 everywhere
    f1 = tf.constant(rng.normal(size=(1, 4, 4, 3)).astype(np.float32))
    f2 = tf.constant(rng.normal(size=(1, 4, 4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(f1)
        total = tf.reduce_sum(DilranFeatureFusion("sfnn")([f1, f2]))
    w1 = _sfnn_weights(f1.numpy(), f2.numpy())[0, 0]
    np.testing.assert_allclose(tape.gradient(total, f1).numpy(), np.full((1, 4, 4, 3), w1), rtol=1e-4)


def test_addition_average_and_l1_strategies(rng):
    f1 = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    f2 = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(DilranFeatureFusion("addition")([f1, f2]), f1 + f2, rtol=1e-6)
    np.testing.assert_allclose(DilranFeatureFusion("average")([f1, f2]), (f1 + f2) / 2, rtol=1e-6)
    n1, n2 = np.abs(f1).sum(axis=(1, 2, 3)), np.abs(f2).sum(axis=(1, 2, 3))
    w1 = (n1 / (n1 + n2))[:, None, None, None]
    np.testing.assert_allclose(DilranFeatureFusion("l1")([f1, f2]), w1 * f1 + (1 - w1) * f2, rtol=1e-5)
    zeros = np.zeros_like(f1)
    np.testing.assert_allclose(DilranFeatureFusion("l1")([zeros, zeros]), zeros)  # no 0/0


def test_fusion_layer_config_round_trip_and_validation(rng):
    layer = DilranFeatureFusion("l1", name="fuse")
    clone = DilranFeatureFusion.from_config(layer.get_config())
    assert clone.strategy == "l1" and clone.name == "fuse"
    f1, f2 = rng.normal(size=(1, 2, 2, 2)).astype(np.float32), rng.normal(size=(1, 2, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(clone([f1, f2]), layer([f1, f2]))
    with pytest.raises(ValueError, match="strategy"):
        DilranFeatureFusion("max")


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("sharing", ["shared", "separate"])
def test_parameter_count_matches_the_architecture(sharing):
    assert _trainable(build_dilran(branch_sharing=sharing)) == _expected_trainable(sharing)


def test_autoencoder_and_fusion_model_build_and_call(rng):
    ae = build_dilran_autoencoder(branch_sharing="separate")
    image = rng.random((2, 32, 32, 1)).astype(np.float32)
    assert ae(image).shape == (2, 32, 32, 1)
    fusion = dilran_from_autoencoder(ae, strategy="average")  # the AE's weights in a fusion model
    # the fusion model applies ONE encoder to both inputs
    assert [l.name for l in fusion.layers].count("dilran_encoder") == 1
    assert _trainable(fusion) == _trainable(ae) == _expected_trainable("separate")
    # identical inputs, average rule: the fused image is the clamped reconstruction
    fused = np.asarray(fusion([image, image]))
    np.testing.assert_allclose(fused, np.clip(np.asarray(ae(image)), 0.0, 1.0), atol=1e-6)
    assert fused.min() >= 0.0 and fused.max() <= 1.0
    with pytest.raises(ValueError, match="even"):
        build_dilran(input_shape=(31, 32, 1))


@pytest.mark.parametrize("builder", [build_dilran_autoencoder, build_dilran])
def test_keras_round_trip_safe_mode(tmp_path, rng, builder):
    model = builder()
    inputs = rng.random((1, 32, 32, 1)).astype(np.float32)
    inputs = inputs if len(model.inputs) == 1 else [inputs, rng.random((1, 32, 32, 1)).astype(np.float32)]
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))


def test_options_are_validated():
    kwargs, loss = split_options({"strategy": "l1", "lambda1": 1, "perceptual": "off"})
    assert kwargs == {"strategy": "l1"} and loss.lambda1 == 1.0 and loss.perceptual == "off"
    with pytest.raises(ValueError, match="unknown model.options"):
        split_options({"lamda1": 0.2})
    with pytest.raises(ValueError, match="perceptual"):
        split_options({"perceptual": "none"})


# ----------------------------------------------------------------------------- loss


def test_sobel_gradient_loss_matches_scipy(rng):
    p = rng.random((9, 11))
    t = rng.random((9, 11))
    expected = 0.0
    for axis in (1, 0):  # x (along columns), then y
        gp = np.abs(ndimage.sobel(p, axis=axis))[1:-1, 1:-1]  # interior = the unpadded convolution
        gt = np.abs(ndimage.sobel(t, axis=axis))[1:-1, 1:-1]
        expected += np.mean((gp - gt) ** 2)
    got = sobel_gradient_loss(p[None, ..., None].astype(np.float32), t[None, ..., None].astype(np.float32))
    np.testing.assert_allclose(got.numpy(), [expected], rtol=1e-5)


def test_perceptual_loss_without_weights_fails_naming_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(FileNotFoundError) as cache_error:
        build_vgg_features("imagenet")
    assert str(tmp_path / "keras_home" / "models" / VGG_NOTOP_FILE) in str(cache_error.value)
    assert "perceptual = 'off'" in str(cache_error.value)
    missing = tmp_path / "my_vgg.h5"
    objective = DilranObjective(DilranLossOptions(perceptual="imagenet", vgg_weights=str(missing)))
    image = tf.zeros((1, 16, 16, 1))
    with pytest.raises(FileNotFoundError, match="my_vgg.h5"):  # the objective never drops the term
        objective(build_dilran_autoencoder(), image, image)


def test_vgg_loads_a_local_weights_file_and_taps_before_relu(tmp_path, rng):
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    source.save_weights(path)
    vgg = build_vgg_features("imagenet", str(path))
    assert not vgg.trainable_weights
    for name in ("block1_conv1", "block2_conv2", "block3_conv3"):
        for got, want in zip(vgg.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    x = rng.random((1, 16, 16, 3)).astype(np.float32)
    taps = [np.asarray(t) for t in vgg(x)]
    assert [t.shape for t in taps] == [(1, 16, 16, 64), (1, 8, 8, 128), (1, 4, 4, 256)]
    reference = keras.Model(source.input, [source.get_layer(n).output for n in
                                           ("block1_conv2", "block2_conv2", "block3_conv3")])(x)
    for tap, post_relu in zip(taps, reference):  # the taps are the pre-activation outputs
        np.testing.assert_allclose(np.maximum(tap, 0.0), np.asarray(post_relu), rtol=1e-4, atol=1e-4)
    assert min(t.min() for t in taps) < 0.0


def test_objective_parts_and_off_switch(rng):
    model = build_dilran_autoencoder()
    mri = tf.constant(rng.random((1, 16, 16, 1)).astype(np.float32))
    pet = tf.constant(rng.random((1, 16, 16, 1)).astype(np.float32))
    parts = DilranObjective(DilranLossOptions(perceptual="random", lambda1=0.2, lambda2=0.2))(model, mri, pet)
    assert parts["total"].shape == (2,)  # the MRI and the PET of the pair, each reconstructed
    np.testing.assert_allclose(parts["total"], parts["mse"] + 0.2 * parts["gradient"] + 0.2 * parts["perceptual"],
                               rtol=1e-6)
    recon = np.asarray(model(tf.concat([mri, pet], 0), training=True))
    images = np.concatenate([mri, pet])
    np.testing.assert_allclose(parts["mse"], ((recon - images) ** 2).mean(axis=(1, 2, 3)), rtol=1e-4)
    off = DilranObjective(DilranLossOptions(perceptual="off", lambda1=0.5))(model, mri, pet)
    assert "perceptual" not in off
    np.testing.assert_allclose(off["total"], off["mse"] + 0.5 * off["gradient"], rtol=1e-6)


# ----------------------------------------------------------------------------- training + fuse API


def test_one_fit_step_through_the_registry_then_fuse(tmp_path, rng):
    from funfusean_tf.fusion import NetworkMethod, load_method
    from funfusean_tf.models.registry import build_model, get_network
    from funfusean_tf.training import fit_arrays

    config = ModelConfig(name="dilran", options={"perceptual": "random", "strategy": "sfnn"})
    model = build_model(config)
    before = [w.copy() for w in model.get_layer("dilran_encoder").get_weights()]
    mri = rng.random((2, 32, 32)).astype(np.float32)
    pet = rng.random((2, 32, 32)).astype(np.float32)
    train = TrainConfig(epochs=1, batch_size=2, learning_rate=1e-4, out_dir=str(tmp_path / "run"), tensorboard=False)
    result = fit_arrays(model, get_network("dilran").loss(0.8), mri, pet, train, progress=False)
    row = result.history[0]
    assert {"loss", "mse", "gradient", "perceptual"} <= set(row)
    assert np.isfinite(row["loss"])
    np.testing.assert_allclose(row["loss"], row["mse"] + 0.2 * row["gradient"] + 0.2 * row["perceptual"], rtol=1e-5)
    after = model.get_layer("dilran_encoder").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))

    method = load_method("dilran", weights=result.weights, model_config=config)
    assert isinstance(method, NetworkMethod)
    fused = method(mri[0], pet[0])
    assert fused.shape == (32, 32) and np.all((fused >= 0) & (fused <= 1))
    np.testing.assert_allclose(fused, np.asarray(model([mri[:1, ..., None], pet[:1, ..., None]]))[0, ..., 0],
                               atol=1e-6)
