"""MdAFuse: architecture facts from the authors' code, custom layers, training, saving, options.

Small images throughout (32 x 32 with the per-channel affine map; 8 x 256 where the authors'
per-width map needs width 256) so the file runs in about a minute on two CPU cores.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from funfusean_tf.config import ModelConfig, TrainConfig
from funfusean_tf.losses import FusionLoss
from funfusean_tf.models.layers import AlignCornersResize, ScaledAdaptiveAveragePooling2D
from funfusean_tf.models.mdafuse import (
    TRAINABLE_PARAMETERS,
    AffineMapping,
    MdAFuseInputCheck,
    build_mdafuse,
    check_mdafuse_size,
)
from funfusean_tf.models.registry import build_model, get_network


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _pair(rng, n=2, h=32, w=32):
    return [rng.random((n, h, w, 1)).astype(np.float32) for _ in range(2)]


@pytest.fixture
def fast_graphs():
    """Skip Grappler's graph rewrites for this test: they cost ~15 s on the first call of MdAFuse's
    gradient graph on two cores and change no result this file checks. Restored afterwards."""
    saved = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": saved.get("disable_meta_optimizer", False)})


@pytest.fixture(scope="module")
def small_model():
    """Per-channel affine, moving statistics: deterministic at inference, any multiple-of-4 size."""
    keras.utils.set_random_seed(7)
    return build_mdafuse(affine="channel", fusion_order="code", bn_statistics="moving")


# --------------------------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------------------------


def test_parameter_count_by_hand():
    """Every module that reaches the output, from model/myNet.py; conv = k*k*cin*cout (+ cout bias)."""
    # Coarse feature module: branch A 7x7 1->32; branch B 7x7 1->2->4->8->16->32; 5x5 64->32->16.
    cfm_conv = ((7*7*1*32 + 32)
                + (7*7*1*2 + 2) + (7*7*2*4 + 4) + (7*7*4*8 + 8) + (7*7*8*16 + 16) + (7*7*16*32 + 32)
                + (5*5*64*32 + 32) + (5*5*32*16 + 16))
    cfm_bn = 2 * (32 + 2 + 4 + 8 + 16 + 32 + 32 + 16)
    # Fine feature module: A 3x3 1->32->64->128; B c1 1->32, c2 32->64 (used twice, counted once),
    # c3 64->128, c6 128->64, c4 128->128; reconstruction 5x5 256->128->64->32->16.
    ffm_conv = ((3*3*1*32 + 32) + (3*3*32*64 + 64) + (3*3*64*128 + 128)
                + (3*3*1*32 + 32) + (3*3*32*64 + 64) + (3*3*64*128 + 128) + (3*3*128*64 + 64)
                + (3*3*128*128 + 128)
                + (5*5*256*128 + 128) + (5*5*128*64 + 64) + (5*5*64*32 + 32) + (5*5*32*16 + 16))
    ffm_bn = 2 * (32 + 64 + 128 + 32 + 64 + 128 + 64 + 128 + 128 + 64 + 32 + 16)
    # Multi-scale module: s1 3x3/2 1->16 (bias); s2 depthwise 3x3 16 + pointwise 16->32; global:
    # 1x1 32->64, depthwise 3x3 64, 1x1 64->32; pyramid 1x1 32->16 (shared), 1x1 32->32; other:
    # depthwise 3x3 32; merge 3x3 32->32 (bias); seg head depthwise 3x3 32 + 1x1 32->32 + 1x1
    # 32->3 (bias); x0 3x3 1->32; head2 3x3 32->16 + 1x1 16->3 (bias); x1 3x3 16->32; x2 3x3 32->32.
    mfm_conv = ((3*3*1*16 + 16) + 3*3*16 + 16*32
                + 32*64 + 3*3*64 + 64*32 + 32*16 + 32*32
                + 3*3*32 + (3*3*32*32 + 32)
                + 3*3*32 + 32*32 + (32*3 + 3)
                + 3*3*1*32 + 3*3*32*16 + (16*3 + 3) + 3*3*16*32 + 3*3*32*32)
    mfm_bn = 2 * (16 + 16 + 32 + 64 + 64 + 32 + 16 + 32 + 32 + 32 + 32 + 32 + 32 + 16 + 32 + 32)
    fusion_conv = (5*5*16*3 + 3) + (3*3*3*1 + 1)
    affine_width = 2 * 256  # alpha and beta, one per image column
    affine_channel = 2 * 16 + 2 * 3  # one map for the 16-channel features, one for the 3-channel heads
    assert (cfm_conv, cfm_bn) == (99_128, 284)
    assert (ffm_conv, ffm_bn) == (1_494_960, 1_760)
    assert (mfm_conv, mfm_bn) == (36_742, 1_024)
    assert fusion_conv == 1_231
    shared = cfm_conv + cfm_bn + ffm_conv + ffm_bn + mfm_conv + mfm_bn + fusion_conv
    assert shared + affine_width == 1_635_641  # the reference's "about 1.64 M"
    assert shared + affine_channel == 1_635_167

    width = build_mdafuse(affine="width")
    channel = build_mdafuse(affine="channel")
    assert _count(width.trainable_weights) == shared + affine_width == TRAINABLE_PARAMETERS["width"]
    assert _count(channel.trainable_weights) == shared + affine_channel == TRAINABLE_PARAMETERS["channel"]
    # BN moving mean and variance; the three modules exist once (shared by both modalities)
    assert _count(width.non_trainable_weights) == cfm_bn + ffm_bn + mfm_bn
    assert _count(width.get_layer("coarse_features").trainable_weights) == cfm_conv + cfm_bn
    assert _count(width.get_layer("fine_features").trainable_weights) == ffm_conv + ffm_bn
    assert _count(width.get_layer("multiscale_features").trainable_weights) == mfm_conv + mfm_bn


def test_pyramid_geometry_at_the_authors_size():
    """For 256 x 256: s1 127 x 127 (3x3, stride 2, no padding), s2 64 x 64, pooled 32 x 32, MF 256 x 256."""
    mfm = build_mdafuse(affine="channel").get_layer("multiscale_features")
    names = ["mfm_s1_relu", "mfm_s2_pw_relu", "mfm_pp_pool", "mfm_up_half"]
    probe = keras.Model(mfm.input, [mfm.get_layer(n).output for n in names])
    shapes = [tuple(t.shape) for t in probe(np.zeros((1, 256, 256, 1), np.float32))]
    assert shapes == [(1, 127, 127, 16), (1, 64, 64, 32), (1, 32, 32, 32), (1, 128, 128, 32)]
    s1 = mfm.get_layer("mfm_s1_conv")
    assert (s1.strides, s1.padding, s1.kernel_size) == ((2, 2), "valid", (3, 3))
    bn = mfm.get_layer("mfm_merge_bn")
    assert bn.momentum == pytest.approx(0.9) and bn.epsilon == pytest.approx(1e-5)  # PyTorch 0.1 / 1e-5


def test_pytorch_default_initialisation():
    keras.utils.set_random_seed(3)
    model = build_mdafuse(affine="channel")
    ffm = model.get_layer("fine_features")
    conv = ffm.get_layer("ffm_recon1_conv")  # 5x5 256->128: fan_in 6400, bound 1/80
    kernel, bias = conv.kernel.numpy(), conv.bias.numpy()
    bound = 1 / math.sqrt(5 * 5 * 256)
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
    assert kernel.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # uniform on [-b, b]
    dw = model.get_layer("multiscale_features").get_layer("mfm_g_dw_dw").kernel.numpy()
    assert np.abs(dw).max() <= 1 / 3 and np.abs(dw).max() > 0.25  # fan_in 9 (groups = channels)
    affine = model.get_layer("affine_features")
    assert np.all(affine.alpha.numpy() == 1) and np.all(affine.beta.numpy() == 0)


# --------------------------------------------------------------------------------------------
# The forward pass
# --------------------------------------------------------------------------------------------


def test_modules_are_shared_so_swapping_the_inputs_changes_nothing(small_model, rng):
    """Every fusion step is symmetric in the two images only when both go through the SAME weights."""
    mri, pet = _pair(rng)
    out = np.asarray(small_model([mri, pet]))
    swapped = np.asarray(small_model([pet, mri]))
    assert out.shape == (2, 32, 32, 1) and np.all(np.isfinite(out))
    np.testing.assert_allclose(swapped, out, atol=1e-6)
    other = np.asarray(small_model([mri, rng.random(pet.shape).astype(np.float32)]))
    assert np.abs(other - out).max() > 1e-4  # and the PET does matter


@pytest.mark.parametrize("affine, order, size", [("channel", "code", (32, 32)), ("channel", "prose", (32, 32)),
                                                   ("width", "code", (8, 256))])
def test_fusion_rule_against_hand_recomputation(rng, affine, order, size):
    keras.utils.set_random_seed(11)
    model = build_mdafuse(affine=affine, fusion_order=order, bn_statistics="moving")
    maps = [model.get_layer("affine")] * 2 if affine == "width" else [model.get_layer("affine_features"),
                                                                       model.get_layer("affine_heads")]
    for layer in maps:  # move away from the identity start so the map is really tested
        layer.alpha.assign(1.0 + 0.3 * rng.standard_normal(layer.size))
        layer.beta.assign(0.1 * rng.standard_normal(layer.size))
    mri, pet = _pair(rng, n=1, h=size[0], w=size[1])
    cf = [np.asarray(model.get_layer("coarse_features")(x)) for x in (mri, pet)]
    ff = [np.asarray(model.get_layer("fine_features")(x)) for x in (mri, pet)]
    mf = [np.asarray(model.get_layer("multiscale_features")(x)) for x in (mri, pet)]

    def affine_map(x, layer):
        alpha, beta = layer.alpha.numpy(), layer.beta.numpy()
        if affine == "width":  # coefficient per image column, whatever the channel
            return x * alpha[None, None, :, None] + beta[None, None, :, None]
        return x * alpha + beta

    feat, head = maps
    a_cf = [affine_map(x, feat) for x in cf]
    a_ff = [affine_map(x, feat) for x in ff]
    if order == "code":  # max over feature types of the cross-image sums
        g = np.maximum(a_ff[0] + a_ff[1], a_cf[0] + a_cf[1])
    else:  # per image coarse + fine, then the maximum across images
        g = np.maximum(a_cf[0] + a_ff[0], a_cf[1] + a_ff[1])
    p = affine_map(np.asarray(model.get_layer("fuse_recon")(g)), head)
    s = affine_map((mf[0] + mf[1]) / 2, head)
    expected = np.asarray(model.get_layer("fused")(np.tanh((p + s) / 2)))
    np.testing.assert_allclose(np.asarray(model([mri, pet])), expected, rtol=1e-4, atol=1e-5)


def test_bn_statistics_and_dropout(rng):
    mri, pet = _pair(rng, n=2, h=16, w=16)
    keras.utils.set_random_seed(5)
    batch = build_mdafuse(affine="channel", bn_statistics="batch")
    moving = build_mdafuse(affine="channel", bn_statistics="moving")
    moving.set_weights(batch.get_weights())
    # At inference batch statistics are each image's own (FIDELITY.md F2): no dependence on batch
    # companions in either mode, but the two modes normalise differently.
    alone = np.asarray(batch([mri[:1], pet[:1]]))
    np.testing.assert_allclose(np.asarray(batch([mri, pet]))[:1], alone, atol=1e-5)
    np.testing.assert_allclose(np.asarray(moving([mri, pet]))[:1], np.asarray(moving([mri[:1], pet[:1]])), atol=1e-5)
    assert np.abs(np.asarray(moving([mri[:1], pet[:1]])) - alone).max() > 1e-4
    # inference never moves the moving statistics, in either mode
    before = [w.numpy().copy() for w in batch.non_trainable_weights]
    batch([mri, pet], training=False)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, batch.non_trainable_weights))
    # dropout (0.1, in the multi-scale heads) acts in training only
    np.testing.assert_array_equal(np.asarray(moving([mri, pet])), np.asarray(moving([mri, pet])))
    first, second = (np.asarray(moving([mri, pet], training=True)) for _ in range(2))
    assert np.abs(first - second).max() > 1e-6


# --------------------------------------------------------------------------------------------
# Sizes it cannot take
# --------------------------------------------------------------------------------------------


def test_clear_errors_for_sizes_the_pyramid_cannot_take(small_model, rng):
    with pytest.raises(ValueError, match="30x32"):
        small_model(_pair(rng, n=1, h=30, w=32))
    with pytest.raises(ValueError, match="4x8"):
        small_model(_pair(rng, n=1, h=4, w=8))
    with pytest.raises(ValueError, match="one size"):
        small_model([rng.random((1, 32, 32, 1)).astype(np.float32), rng.random((1, 32, 36, 1)).astype(np.float32)])
    with pytest.raises(ValueError, match="width 256.*32x32|32x32.*width 256"):
        build_mdafuse(affine="width")(_pair(rng, n=1))
    check_mdafuse_size(256, 256, "width")
    check_mdafuse_size(36, 44, "channel")
    with pytest.raises(ValueError, match="256x128"):
        check_mdafuse_size(256, 128, "width")



# --------------------------------------------------------------------------------------------
# Training, saving, options
# --------------------------------------------------------------------------------------------


def test_one_training_step_through_fit_arrays(tmp_path, rng, fast_graphs):
    from funfusean_tf.training import fit_arrays

    keras.utils.set_random_seed(0)
    model = build_mdafuse(affine="channel", bn_statistics="batch")
    spec = get_network("mdafuse")
    loss = spec.loss(spec.default_lambda)
    assert isinstance(loss, FusionLoss) and loss.ssim_weight == pytest.approx(0.3)  # (1 - 0.7) on SSIM
    mri, pet = (rng.random((2, 32, 32)).astype(np.float32) for _ in range(2))
    before = [w.numpy().copy() for w in model.trainable_weights]
    moving_before = [w.numpy().copy() for w in model.non_trainable_weights]
    config = TrainConfig(lambda_=0.7, epochs=1, batch_size=2, learning_rate=1e-4, tensorboard=False)
    result = fit_arrays(model, loss, mri, pet, config, out_dir=tmp_path, progress=False)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["loss"])
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed)  # every parameter takes part in the forward pass, so every one moves
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(moving_before, model.non_trainable_weights))
    assert result.weights.is_file()


def test_keras_file_and_config_round_trips(small_model, tmp_path, rng):
    mri, pet = _pair(rng)
    expected = np.asarray(small_model([mri, pet]))
    path = tmp_path / "mdafuse.keras"
    small_model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded([mri, pet])), expected, atol=1e-6)
    rebuilt = keras.Model.from_config(small_model.get_config())
    rebuilt.set_weights(small_model.get_weights())
    np.testing.assert_allclose(np.asarray(rebuilt([mri, pet])), expected, atol=1e-6)
    assert _count(rebuilt.trainable_weights) == TRAINABLE_PARAMETERS["channel"]


def test_saved_model_export_traces_for_any_size_and_keeps_the_size_check(small_model, tmp_path, rng, fast_graphs):
    """model.export traces call() for unknown H x W: no Python side effects, the size check in the graph."""
    mri, pet = _pair(rng, n=1, h=36, w=40)
    expected = np.asarray(small_model([mri, pet]))
    small_model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(np.asarray(reloaded.serve([mri, pet])), expected, atol=1e-5)
    other = _pair(rng, n=2, h=32, w=44)
    np.testing.assert_allclose(np.asarray(reloaded.serve(other)), np.asarray(small_model(other)), atol=1e-5)
    # sizes unknown when traced: the check runs first, at run time, with the same explanation
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 4"):
        reloaded.serve(_pair(rng, n=1, h=34, w=40))


def test_registry_entry_and_options():
    spec = get_network("mdafuse")
    assert spec.default_lambda == 0.7 and spec.weights_file == "mdafuse_lambda0.7.weights.h5"
    model = build_model(ModelConfig(name="mdafuse", bn_statistics="moving",
                                    options={"affine": "channel", "fusion_order": "prose"}))
    assert model.get_layer("affine_heads").size == 3
    assert "fuse_image1" in [layer.name for layer in model.layers]  # the prose order's per-image sums
    assert model.get_layer("fine_features").get_layer("ffm_recon1_bn").statistics == "moving"
    default = build_model(ModelConfig(name="mdafuse"))
    assert default.get_layer("affine").axis == "width"
    assert _count(default.trainable_weights) == TRAINABLE_PARAMETERS["width"]
    with pytest.raises(ValueError, match="unknown model.options"):
        build_model(ModelConfig(name="mdafuse", options={"afine": "channel"}))
    with pytest.raises(ValueError, match="affine"):
        build_model(ModelConfig(name="mdafuse", options={"affine": "pixel"}))
    with pytest.raises(ValueError, match="fusion_order"):
        build_mdafuse(fusion_order="max")
    with pytest.raises(ValueError, match="hf_rule"):
        build_model(ModelConfig(name="mdafuse", hf_rule="guarded"))
    with pytest.raises(ValueError, match="bn_statistics"):
        build_mdafuse(bn_statistics="running")


# --------------------------------------------------------------------------------------------
# Custom layers, one by one
# --------------------------------------------------------------------------------------------


def _align_corners_reference(x, out_h, out_w):
    """Align-corners bilinear resize written out in numpy: src = i * (n - 1) / (m - 1)."""

    def axis_weights(n, m):
        weights = np.zeros((m, n))
        for i in range(m):
            src = i * (n - 1) / (m - 1) if m > 1 else 0.0
            low = int(np.floor(src))
            high = min(low + 1, n - 1)
            weights[i, low] += 1 - (src - low)
            weights[i, high] += src - low
        return weights

    rows, cols = axis_weights(x.shape[1], out_h), axis_weights(x.shape[2], out_w)
    return np.einsum("oh,nhwc,pw->nopc", rows, x, cols)


def _adaptive_pool_reference(x, out_h, out_w):
    """PyTorch's AdaptiveAvgPool2d bins: [floor(i n / m), ceil((i + 1) n / m))."""
    n_h, n_w = x.shape[1:3]
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            r0, r1 = (i * n_h) // out_h, -((-(i + 1) * n_h) // out_h)
            c0, c1 = (j * n_w) // out_w, -((-(j + 1) * n_w) // out_w)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


def _check_layer_serialises(layer, inputs, tmp_path):
    """get_config round trip, a .keras round trip with safe_mode, a graph traced for unknown sizes."""
    expected = np.asarray(layer(inputs))
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    if layer.weights:
        clone(inputs)
        clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(inputs)), expected, atol=1e-6)

    arrays = inputs if isinstance(inputs, list) else [inputs]
    keras_inputs = [keras.Input(shape=(None, None, a.shape[-1])) for a in arrays]
    if not isinstance(inputs, list):
        keras_inputs = keras_inputs[0]
    wrapper = keras.Model(keras_inputs, layer(keras_inputs))
    path = tmp_path / f"{layer.name}.keras"
    wrapper.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(arrays if isinstance(inputs, list) else arrays[0])), expected,
                               atol=1e-6)

    specs = [tf.TensorSpec((None, None, None, a.shape[-1]), tf.float32) for a in arrays]
    traced = tf.function(lambda *xs: layer(list(xs) if isinstance(inputs, list) else xs[0]), input_signature=specs)
    np.testing.assert_allclose(np.asarray(traced(*arrays)), expected, atol=1e-6)
    return expected


def test_align_corners_resize(rng, tmp_path):
    x = rng.random((2, 5, 7, 3)).astype(np.float32)
    reference = np.zeros((1, 12, 9, 1), np.float32)
    out = _check_layer_serialises(AlignCornersResize(name="resize"), [x, reference], tmp_path)
    assert out.shape == (2, 12, 9, 3)
    np.testing.assert_allclose(out, _align_corners_reference(x, 12, 9), atol=1e-6)
    np.testing.assert_allclose(out[:, [0, -1]][:, :, [0, -1]], x[:, [0, -1]][:, :, [0, -1]], atol=1e-6)  # corners
    # an independent implementation: TF1's resize_bilinear with align_corners=True
    tf1 = tf.compat.v1.image.resize_bilinear(x, (12, 9), align_corners=True).numpy()
    np.testing.assert_allclose(out, tf1, atol=1e-5)
    # a linear ramp stays a ramp: 0..4 resized to 9 samples is 0, 0.5, ..., 4
    ramp = np.broadcast_to(np.arange(5, dtype=np.float32)[None, :, None, None], (1, 5, 2, 1))
    half = AlignCornersResize(divisor=2)([ramp, np.zeros((1, 18, 4, 1), np.float32)]).numpy()
    np.testing.assert_allclose(half[0, :, 0, 0], np.arange(9) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="divisor"):
        AlignCornersResize(divisor=0)


def test_scaled_adaptive_average_pooling(rng, tmp_path):
    x = rng.random((2, 9, 11, 3)).astype(np.float32)
    out = _check_layer_serialises(ScaledAdaptiveAveragePooling2D(2, name="pool"), x, tmp_path)
    assert out.shape == (2, 4, 5, 3)
    np.testing.assert_allclose(out, _adaptive_pool_reference(x, 4, 5), atol=1e-6)
    np.testing.assert_allclose(out, keras.layers.AdaptiveAveragePooling2D((4, 5))(x).numpy(), atol=1e-6)
    even = rng.random((1, 8, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(ScaledAdaptiveAveragePooling2D(2)(even).numpy(),
                               keras.layers.AveragePooling2D(2)(even).numpy(), atol=1e-6)


def test_affine_mapping(rng, tmp_path):
    x = rng.random((2, 3, 4, 5)).astype(np.float32)
    width = AffineMapping("width", 4, name="affine_width")
    width.build(x.shape)
    width.alpha.assign([1.0, 2.0, -1.0, 0.5])
    width.beta.assign([0.0, 1.0, 2.0, -3.0])
    out = _check_layer_serialises(width, x, tmp_path)
    for column, (a, b) in enumerate(zip([1.0, 2.0, -1.0, 0.5], [0.0, 1.0, 2.0, -3.0])):
        np.testing.assert_allclose(out[:, :, column], a * x[:, :, column] + b, rtol=1e-6)  # every channel
    channel = AffineMapping("channel", 5, name="affine_channel")
    channel.build(x.shape)
    channel.alpha.assign(np.arange(1, 6, dtype=np.float32))
    out = _check_layer_serialises(channel, x, tmp_path)
    np.testing.assert_allclose(out, x * np.arange(1, 6), rtol=1e-6)
    with pytest.raises(ValueError, match="width 7"):
        width(rng.random((1, 3, 7, 5)).astype(np.float32))
    with pytest.raises(ValueError, match="axis"):
        AffineMapping("pixel")


def test_input_check_layer(rng, tmp_path):
    layer = MdAFuseInputCheck(affine="channel", name="check")
    pair = _pair(rng, n=1, h=12, w=16)
    clone = MdAFuseInputCheck.from_config(layer.get_config())
    assert clone.affine == "channel"
    for a, b in zip(clone(pair), pair):
        np.testing.assert_array_equal(np.asarray(a), b)
    with pytest.raises(ValueError, match="256"):
        MdAFuseInputCheck(affine="width")(pair)
    wrapper_in = [keras.Input((None, None, 1)), keras.Input((None, None, 1))]
    wrapper = keras.Model(wrapper_in, layer(wrapper_in))
    wrapper.save(tmp_path / "check.keras")
    loaded = keras.saving.load_model(tmp_path / "check.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(pair)[0]), pair[0])
