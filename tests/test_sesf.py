"""SESF decision-map fusion: SE layer, auto-encoder, loss, activity, consistency, fusion, saving."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from funfusean_tf.config import ModelConfig, TrainConfig
from funfusean_tf.models.sesf import (
    SESF_MEAN,
    SESF_STD,
    SesfFusionOptions,
    SesfLossOptions,
    SesfMethod,
    SesfObjective,
    SqueezeExcitation,
    build_sesf_autoencoder,
    consistency_verification,
    decision_map_fusion,
    spatial_frequency_activity,
    split_options,
)


def _trainable(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


# ----------------------------------------------------------------------------- layer + model


def test_squeeze_excitation_matches_hand_computation(rng):
    layer = SqueezeExcitation(reduction=8)
    x = rng.normal(size=(2, 3, 4, 16)).astype(np.float32)
    layer.build(x.shape)
    w1 = rng.normal(size=(16, 2)).astype(np.float32)
    w2 = rng.normal(size=(2, 16)).astype(np.float32)
    layer.squeeze_kernel.assign(w1)
    layer.excite_kernel.assign(w2)
    pooled = x.mean(axis=(1, 2))
    scale = 1.0 / (1.0 + np.exp(-(np.maximum(pooled @ w1, 0.0) @ w2)))
    np.testing.assert_allclose(np.asarray(layer(x)), x * scale[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_squeeze_excitation_config_round_trip_and_validation(rng):
    layer = SqueezeExcitation(reduction=4, name="se")
    clone = SqueezeExcitation.from_config(layer.get_config())
    assert clone.reduction == 4 and clone.name == "se"
    with pytest.raises(ValueError, match="no hidden unit"):
        SqueezeExcitation(reduction=8)(np.zeros((1, 2, 2, 4), np.float32))


def test_autoencoder_shape_and_parameter_count(rng):
    model = build_sesf_autoencoder()
    conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731
    se = lambda c: 2 * c * (c // 8)  # noqa: E731  (two bias-free dense layers)
    encoder = sum(conv(cin, 16) + 2 * 16 + se(16) for cin in (1, 16, 32, 48))
    decoder = sum(conv(cin, cout) + 2 * cout for cin, cout in ((64, 64), (64, 32), (32, 16), (16, 1)))
    assert _trainable(model) == encoder + decoder
    assert model.get_layer("sesf_encoder").output.shape[-1] == 64
    assert model(rng.random((2, 24, 20, 1)).astype(np.float32)).shape == (2, 24, 20, 1)


def test_keras_round_trip_safe_mode(tmp_path, rng):
    model = build_sesf_autoencoder()
    x = rng.random((2, 16, 16, 1)).astype(np.float32)
    model(x, training=True)  # move the BN statistics off their initial values
    model.save(tmp_path / "sesf.keras")
    loaded = keras.models.load_model(tmp_path / "sesf.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


# ----------------------------------------------------------------------------- loss


def _ssim_zero_padded(x, y, size=5, sigma=1.5, c1=1e-4, c2=9e-4):
    """SSIM index of two 2-D images, 5x5 Gaussian window, zero padding (the original's _ssim)."""
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda a: ndimage.correlate(a, w, mode="constant", cval=0.0)  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    return np.mean((2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))


def test_objective_against_hand_computation(rng):
    # a stand-in "auto-encoder" that halves its input: out = 0.5 * standardised input
    halve = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(0.5)])
    mri = tf.constant(rng.random((1, 12, 10, 1)).astype(np.float32))
    pet = tf.constant(rng.random((1, 12, 10, 1)).astype(np.float32))
    images = (np.concatenate([mri, pet]).astype(np.float64) - SESF_MEAN) / SESF_STD
    diff = 0.5 * images
    l_ssim = np.array([1.0 - _ssim_zero_padded(im[..., 0], 0.5 * im[..., 0]) for im in images])
    # the original: one l2 norm over the whole batch, plus 1000 (1 - batch-mean SSIM)
    parts = SesfObjective(SesfLossOptions())(halve, mri, pet)
    batch_norm = np.sqrt((diff**2).sum())
    np.testing.assert_allclose(parts["lp"], [batch_norm, batch_norm], rtol=1e-5)
    np.testing.assert_allclose(parts["ssim"], l_ssim, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.mean(parts["total"]), batch_norm + 1000.0 * l_ssim.mean(), rtol=1e-4)
    per_image = SesfObjective(SesfLossOptions(batch_reduction="image"))(halve, mri, pet)
    lp = np.sqrt((diff**2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(per_image["lp"], lp, rtol=1e-5)
    np.testing.assert_allclose(per_image["total"], lp + 1000.0 * l_ssim, rtol=1e-4)
    l1 = SesfObjective(SesfLossOptions(pixel_norm="l1", ssim_weight=10.0))(halve, mri, pet)
    np.testing.assert_allclose(np.mean(l1["total"]), np.abs(diff).sum() + 10.0 * l_ssim.mean(), rtol=1e-4)


def test_options_are_validated():
    model_kwargs, loss, fusion = split_options({"reduction": 4, "pixel_norm": "l1", "gf_eps": 1, "clip_weights": True})
    assert model_kwargs == {"reduction": 4} and loss.pixel_norm == "l1"
    assert fusion.gf_eps == 1.0 and fusion.clip_weights is True
    with pytest.raises(ValueError, match="unknown model.options"):
        split_options({"radius": 5})


# ----------------------------------------------------------------------------- fusion steps


def test_activity_matches_direct_computation(rng):
    f = rng.normal(size=(7, 6, 3))
    r = 2
    padded = np.pad(f, ((1, 0), (1, 0), (0, 0)))  # zero row above, zero column to the left
    grad = np.zeros(f.shape[:2])
    for i in range(7):
        for j in range(6):
            for c in range(3):
                left = padded[i + 1, j, c]  # f[i, j-1]
                up = padded[i, j + 1, c]  # f[i-1, j]
                grad[i, j] += (left - f[i, j, c]) ** 2 + (up - f[i, j, c]) ** 2
    expected = np.zeros_like(grad)
    for i in range(7):
        for j in range(6):
            expected[i, j] = grad[max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].sum()
    np.testing.assert_allclose(spatial_frequency_activity(f, radius=r), expected, rtol=1e-10)
    np.testing.assert_allclose(spatial_frequency_activity(f[None], radius=r)[0], expected, rtol=1e-10)


def _synthetic_map():
    dm = np.zeros((200, 200), bool)
    dm[:, :100] = True  # left half: source 1
    dm[40:55, 40:55] = False  # a 15x15 hole (225 px < 1% of 40000): survives the closing
    dm[140:155, 140:155] = True  # a 15x15 island in the 0 half: survives the opening
    dm[20:50, 150:180] = True  # a 30x30 island (900 px > 1%): kept
    return dm


def test_consistency_fills_small_holes_and_removes_small_islands():
    out = consistency_verification(_synthetic_map(), disk_radius=5, area_ratio=0.01)
    assert out[40:55, 40:55].all()  # the hole is filled
    assert not out[140:155, 140:155].any()  # the island is removed
    assert out[25:45, 155:175].all()  # the large island's interior stays
    assert out[:, :95].all() and not out[60:130, 105:].any()  # the halves stay
    # a disk of radius 5 cannot remove a 15x15 island by itself: the area rule did it
    from skimage.morphology import disk

    opened = ndimage.binary_dilation(ndimage.binary_erosion(_synthetic_map(), disk(5), border_value=1), disk(5))
    assert opened[140:155, 140:155].any()


def test_consistency_area_threshold_is_strict():
    # disk(0) is one pixel: opening and closing do nothing, only the area rule acts
    dm = np.ones((10, 10), bool)
    dm[1:3, 1:3] = False  # a hole of 4 pixels
    dm[6, 6:9] = False  # a hole of 3 pixels
    out = consistency_verification(dm, disk_radius=0, area_ratio=0.04)  # threshold 4 pixels
    assert not out[1:3, 1:3].any() and out[6, 6:9].all()


def _skimage_fill(morphology, mask):
    """Holes strictly smaller than 0.01 * 64 * 64 = 40.96 pixels, in either scikit-image API."""
    try:
        return morphology.remove_small_holes(mask, max_size=40)
    except TypeError:  # scikit-image < 0.26
        return morphology.remove_small_holes(mask, area_threshold=40.96)


def test_consistency_matches_skimage_binary_morphology():
    skimage_morphology = pytest.importorskip("skimage.morphology")
    if not hasattr(skimage_morphology, "binary_opening"):
        pytest.skip("this scikit-image has no binary_opening any more")
    rng = np.random.default_rng(5)
    dm = ndimage.uniform_filter(rng.random((64, 64)), 5) > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        se = skimage_morphology.disk(3)
        ref = skimage_morphology.binary_opening(dm, se)
        ref = ~_skimage_fill(skimage_morphology, ~ref)
        ref = skimage_morphology.binary_closing(ref, se)
        ref = _skimage_fill(skimage_morphology, ref)
    np.testing.assert_array_equal(consistency_verification(dm, disk_radius=3, area_ratio=0.01), ref)


def test_decision_map_fusion_takes_each_side_from_the_more_active_source(rng):
    a = rng.random((64, 64))
    b = rng.random((64, 64))
    act_a = np.zeros((64, 64))
    act_a[:, :32] = 2.0  # source 1 more active on the left
    act_b = np.ones((64, 64))
    out = decision_map_fusion(a, b, act_a, act_b, SesfFusionOptions())
    assert out["verified"][:, :32].all() and not out["verified"][:, 32:].any()
    # 8 pixels (two radius-4 box means) away from the boundary the guided weights are exactly 0 / 1
    np.testing.assert_allclose(out["fused"][:, :24], a[:, :24], atol=1e-6)
    np.testing.assert_allclose(out["fused"][:, 40:], b[:, 40:], atol=1e-6)


def test_guide_scale_is_eps_on_the_8_bit_scale(rng):
    # the guided filter is unchanged by (guide -> s * guide, eps -> s^2 eps): eps = 0.1 on the
    # 0-255 scale of the original is eps = 0.1 / 255^2 on [0, 1] images
    a, b = rng.random((48, 48)), ndimage.gaussian_filter(rng.random((48, 48)), 2)
    act_a = ndimage.uniform_filter(rng.random((48, 48)), 9)
    act_b = ndimage.uniform_filter(rng.random((48, 48)), 9)
    on_255 = decision_map_fusion(a, b, act_a, act_b, SesfFusionOptions(gf_eps=0.1, guide_scale=255.0))
    on_one = decision_map_fusion(a, b, act_a, act_b, SesfFusionOptions(gf_eps=0.1 / 255.0**2, guide_scale=1.0))
    big_eps = decision_map_fusion(a, b, act_a, act_b, SesfFusionOptions(gf_eps=0.1, guide_scale=1.0))
    assert 0 < on_255["verified"].mean() < 1
    np.testing.assert_allclose(on_255["weights"], on_one["weights"], rtol=1e-6, atol=1e-9)
    assert np.abs(on_255["weights"] - big_eps["weights"]).max() > 0.05


def test_features_are_those_of_the_standardised_images(rng):
    model = build_sesf_autoencoder()
    images = rng.random((3, 16, 16)).astype(np.float32)
    expected = model.get_layer("sesf_encoder")((images[..., None] - SESF_MEAN) / SESF_STD, training=False)
    np.testing.assert_allclose(SesfMethod(model, batch_size=2).features(images), np.asarray(expected), atol=1e-5)


def test_identical_inputs_give_back_the_input(rng):
    method = SesfMethod(build_sesf_autoencoder())
    image = rng.random((32, 32)).astype(np.float32)
    fused = method(image, image)
    assert fused.shape == (32, 32)
    np.testing.assert_allclose(fused, image, atol=1e-6)


def test_fused_is_a_pixelwise_convex_combination(rng):
    model = build_sesf_autoencoder()
    noise = rng.random((2, 32, 64)).astype(np.float32)
    mri, pet = np.full_like(noise, 0.5), np.full_like(noise, 0.3)
    mri[..., :32], pet[..., 32:] = noise[..., :32], noise[..., 32:]  # each source busy on one side
    maps = SesfMethod(model).maps(mri, pet)
    for m, p, result in zip(mri, pet, maps):
        w = result["weights"]
        np.testing.assert_allclose(result["fused"], np.clip(w * m + (1 - w) * p, 0, 1), atol=1e-6)
    clipped = SesfMethod(model, options=SesfFusionOptions(clip_weights=True))(mri, pet)
    assert clipped.shape == (2, 32, 64)
    assert np.all(clipped >= np.minimum(mri, pet) - 1e-6) and np.all(clipped <= np.maximum(mri, pet) + 1e-6)
    assert not np.allclose(clipped, mri) and not np.allclose(clipped, pet)


# ----------------------------------------------------------------------------- training + fuse API


def test_one_fit_step_through_the_registry_then_fuse(tmp_path, rng):
    from funfusean_tf.fusion import load_method
    from funfusean_tf.models.registry import build_model, get_network
    from funfusean_tf.training import fit_arrays

    config = ModelConfig(name="sesf", bn_statistics="moving", options={"gf_radius": 2})
    model = build_model(config)
    before = [w.copy() for w in model.get_layer("sesf_encoder").get_weights()]
    mri = rng.random((2, 32, 32)).astype(np.float32)
    pet = rng.random((2, 32, 32)).astype(np.float32)
    train = TrainConfig(epochs=1, batch_size=2, learning_rate=1e-4, out_dir=str(tmp_path / "run"), tensorboard=False)
    result = fit_arrays(model, get_network("sesf").loss(0.8), mri, pet, train, progress=False)
    row = result.history[0]
    assert {"loss", "lp", "l_ssim"} <= set(row)
    np.testing.assert_allclose(row["loss"], row["lp"] + 1000.0 * row["l_ssim"], rtol=1e-5)
    after = model.get_layer("sesf_encoder").get_weights()
    assert any(not np.array_equal(x, y) for x, y in zip(before, after))

    method = load_method("sesf", weights=result.weights, model_config=config)
    assert isinstance(method, SesfMethod) and method.options.gf_radius == 2
    fused = method(mri, pet)
    assert fused.shape == (2, 32, 32) and fused.dtype == np.float32
    np.testing.assert_array_equal(method(mri[1], pet[1]), fused[1])
