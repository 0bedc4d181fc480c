"""Contribution maps (against the full Jacobian and finite differences) and the Omega colour coding
(against the original visualisation.py's steps, redone here with OpenCV and scikit-image)."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import color

from funfusean_tf.models.funfusean import build_funfusean
from funfusean_tf.visualize import (
    colour_code,
    contribution_maps,
    gradient_to_uint8,
    jacobian_probe,
    jet_rgb,
    lambda_grid,
    omega_grid,
    to_rgb8,
    uses_batch_statistics,
)

SIZE = 16


# ---------------------------------------------------------------------------------------------
# A well-conditioned FunFuseAn: weights that give O(1) gradients, so 1e-5 is a real tolerance
# ---------------------------------------------------------------------------------------------


def _condition(model, seed: int) -> None:
    """He-scaled kernels, random biases and BN affine; the BN feeding the max/sum rule shifted to
    positive outputs (|a + b| well above the guard's eps, so the function is smooth there)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            fan_in = int(np.prod(layer.kernel.shape[:3]))
            std = 0.5 / np.sqrt(fan_in) if layer.name == "recon3_conv" else np.sqrt(2.0 / fan_in)
            layer.kernel.assign(rng.normal(0, std, layer.kernel.shape))
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
        elif isinstance(layer, keras.layers.BatchNormalization):
            feeds_rule = layer.name.endswith("hf3_bn")
            layer.gamma.assign(rng.uniform(0.3, 0.6, layer.gamma.shape) if feeds_rule
                               else rng.uniform(0.5, 1.5, layer.gamma.shape))
            layer.beta.assign(rng.uniform(1.5, 2.5, layer.beta.shape) if feeds_rule
                              else rng.normal(0, 0.2, layer.beta.shape))
    # moving statistics: those of a calibration batch, layer by layer (used in "moving" mode)
    calibration = [rng.random((4, SIZE, SIZE, 1)).astype(np.float32) for _ in range(2)]
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            x = np.asarray(keras.Model(model.inputs, layer.input)(calibration, training=False), np.float64)
            layer.moving_mean.assign(x.mean(axis=(0, 1, 2)))
            layer.moving_variance.assign(x.var(axis=(0, 1, 2)))


def _float64_copy(model, bn):
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        model64 = build_funfusean(bn_statistics=bn, hf_rule="guarded")
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    model64.set_weights(model.get_weights())
    assert model64.inputs[0].dtype == "float64"
    return model64


@pytest.fixture(scope="module", params=["batch", "moving"])
def case(request):
    bn = request.param
    model = build_funfusean(bn_statistics=bn, hf_rule="guarded")
    _condition(model, seed=7)
    rng = np.random.default_rng(11)
    mri, pet = rng.random((SIZE, SIZE)), rng.random((SIZE, SIZE))
    a = tf.constant(mri[None, ..., None], tf.float32)
    b = tf.constant(pet[None, ..., None], tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        fused = model([a, b], training=False)
    jac_mri, jac_pet = (np.asarray(j, np.float64).reshape(SIZE, SIZE, SIZE, SIZE) for j in tape.jacobian(fused, [a, b]))
    return {"bn": bn, "model": model, "mri": mri, "pet": pet, "jac_mri": jac_mri, "jac_pet": jac_pet,
            "fused": np.asarray(fused)[0, ..., 0]}


def test_maps_equal_the_full_jacobian_summed_over_output_pixels(case):
    maps = contribution_maps(case["model"], case["mri"], case["pet"])
    assert maps.mri.shape == maps.pet.shape == maps.fused.shape == (SIZE, SIZE)
    expected_mri, expected_pet = case["jac_mri"].sum(axis=(0, 1)), case["jac_pet"].sum(axis=(0, 1))
    # the maps are O(1): a tolerance of 1e-5 is tight, and swapped or missing terms would show
    assert np.abs(expected_mri).max() > 0.1 and np.abs(expected_pet).max() > 0.1
    assert np.abs(expected_mri - expected_pet).max() > 0.05
    diff_mri, diff_pet = np.abs(maps.mri - expected_mri).max(), np.abs(maps.pet - expected_pet).max()
    print(f"[{case['bn']}] max |maps - sum of full Jacobian|: mri {diff_mri:.2e}, pet {diff_pet:.2e}")
    assert diff_mri <= 1e-5 and diff_pet <= 1e-5
    np.testing.assert_allclose(maps.fused, case["fused"], atol=1e-6)


def test_maps_agree_with_central_finite_differences_in_float64(case):
    model, mri, pet, bn = case["model"], case["mri"], case["pet"], case["bn"]
    model64 = _float64_copy(model, bn)
    maps32 = contribution_maps(model, mri, pet)
    maps64 = contribution_maps(model64, mri, pet)
    assert maps64.mri.dtype == np.float64

    # sum(F) of every perturbed image, each image its own batch (as the maps' batch statistics)
    totals = tf.function(lambda a, b: tf.vectorized_map(
        lambda ab: tf.reduce_sum(model64([ab[0][None], ab[1][None]], training=False)), (a, b)))
    h = 1e-6
    # half of the pixels, drawn at random (the Jacobian test above covers every pixel)
    chosen = np.sort(np.random.default_rng(3).choice(SIZE * SIZE, SIZE * SIZE // 2, replace=False))
    eye = np.eye(SIZE * SIZE)[chosen].reshape(-1, SIZE, SIZE, 1) * h
    a, b = np.broadcast_to(mri[None, ..., None], eye.shape), np.broadcast_to(pet[None, ..., None], eye.shape)
    base = float(tf.reduce_sum(model64([a[:1], b[:1]], training=False)))
    for name, (up, down) in {"mri": ((a + eye, b), (a - eye, b)), "pet": ((a, b + eye), (a, b - eye))}.items():
        plus, minus = np.asarray(totals(*up)), np.asarray(totals(*down))
        central = (plus - minus) / (2 * h)
        # A LeakyReLU kink within h of a pixel makes sum(F) non-differentiable there: the one-sided
        # slopes then differ by O(1) instead of O(h). Such pixels are not a test of the gradient.
        kinked = np.abs((plus - base) - (base - minus)) / h > 1e-4
        assert kinked.sum() <= 3
        fd_vs_64 = np.abs(central - getattr(maps64, name).ravel()[chosen])[~kinked].max()
        fd_vs_32 = np.abs(central - getattr(maps32, name).ravel()[chosen])[~kinked].max()
        print(f"[{bn}] {name}: max |FD - maps| float64 {fd_vs_64:.2e}, float32 {fd_vs_32:.2e}; "
              f"{int(kinked.sum())} kinked pixel(s) left out")
        assert fd_vs_32 <= 1e-3
        assert fd_vs_64 <= 1e-6


def test_jacobian_probe_gives_rows_and_blocks_of_the_jacobian(case):
    model, mri, pet = case["model"], case["mri"], case["pet"]
    pixel = jacobian_probe(model, mri, pet, (5, 9))
    np.testing.assert_allclose(pixel.mri, case["jac_mri"][5, 9], atol=1e-6)
    np.testing.assert_allclose(pixel.pet, case["jac_pet"][5, 9], atol=1e-6)
    assert np.abs(case["jac_mri"][5, 9]).max() > 1e-2
    box = jacobian_probe(model, mri, pet, (slice(2, 6), slice(10, 13)))
    np.testing.assert_allclose(box.mri, case["jac_mri"][2:6, 10:13].sum(axis=(0, 1)), atol=1e-5)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[[1, 8, 14], [3, 8, 0]] = True
    masked = jacobian_probe(model, mri, pet, mask)
    np.testing.assert_allclose(masked.pet, case["jac_pet"][mask].sum(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        jacobian_probe(model, mri, pet, (SIZE, 0))


def test_batches_give_each_image_its_own_maps(case, rng):
    model = case["model"]
    mri, pet = rng.random((3, SIZE, SIZE)), rng.random((3, SIZE, SIZE))
    together = contribution_maps(model, mri, pet)
    assert together.mri.shape == (3, SIZE, SIZE)
    alone = [contribution_maps(model, mri[i], pet[i]) for i in range(3)]
    np.testing.assert_allclose(together.mri, np.stack([m.mri for m in alone]), atol=1e-6)
    np.testing.assert_allclose(together.pet, np.stack([m.pet for m in alone]), atol=1e-6)
    shared = contribution_maps(model, mri, pet, batch_size=3)
    coupled = np.abs(shared.mri - together.mri).max()
    # Per-image statistics at inference (BatchStatNormalization): a shared batch does not couple
    # the images, with batch statistics (FIDELITY.md F2, V3) as with moving averages.
    assert uses_batch_statistics(model) == (case["bn"] == "batch")
    assert coupled < 1e-5


def test_contribution_tensors_inside_a_users_tf_function(case):
    from funfusean_tf.visualize import contribution_tensors

    model = case["model"]
    traced = tf.function(lambda a, b, c: contribution_tensors(model, a, b, c))
    a, b = (tf.constant(x[None, ..., None], tf.float32) for x in (case["mri"], case["pet"]))
    cotangent = np.zeros((1, SIZE, SIZE, 1), np.float32)
    cotangent[0, 3, 4, 0], cotangent[0, 12, 1, 0] = 1.0, -2.0
    grad_mri, grad_pet, fused = traced(a, b, tf.constant(cotangent))
    np.testing.assert_allclose(np.asarray(grad_mri)[0, ..., 0],
                               case["jac_mri"][3, 4] - 2 * case["jac_mri"][12, 1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_pet)[0, ..., 0],
                               case["jac_pet"][3, 4] - 2 * case["jac_pet"][12, 1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(fused)[0, ..., 0], case["fused"], atol=1e-6)


@pytest.mark.parametrize("case", ["batch"], indirect=True)  # the faithful model only: XLA compiles slowly
def test_xla_gives_the_same_maps(case):
    plain = contribution_maps(case["model"], case["mri"], case["pet"])
    xla = contribution_maps(case["model"], case["mri"], case["pet"], jit_compile=True)
    np.testing.assert_allclose(xla.mri, plain.mri, atol=1e-5)
    np.testing.assert_allclose(xla.pet, plain.pet, atol=1e-5)


def test_input_convolutions_transposed_here_equal_the_plain_tape(case):
    from funfusean_tf.visualize import _engine, _input_convs

    model = case["model"]
    assert [sorted(layer.name for layer in layers) for layers in _input_convs(model)] == [
        ["branch_a_hf1_conv", "branch_a_lf_conv"], ["branch_b_hf1_conv", "branch_b_lf_conv"]]
    a, b = (tf.constant(x[None, ..., None], tf.float32) for x in (case["mri"], case["pet"]))
    split, plain = _engine(model, False, True).contributions(a, b), _engine(model, False, False).contributions(a, b)
    for x, y in zip(split, plain):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)


def test_any_two_input_model_and_inputs_read_by_other_layers(rng):
    """An input also read by something else than a plain odd-kernel linear convolution (here a
    skip connection and a 4x4 tanh convolution) takes the plain tape path, the other input the
    depthwise transpose; the maps still equal the full Jacobian."""
    mri_in, pet_in = keras.Input((None, None, 1), name="mri"), keras.Input((None, None, 1), name="pet")
    a = keras.layers.Conv2D(4, 4, padding="same", activation="tanh")(mri_in)
    pet_conv = keras.layers.Conv2D(4, 5, padding="same")
    x = keras.layers.Concatenate()([a, pet_conv(pet_in)])
    x = keras.layers.Conv2D(1, 3, padding="same", activation="tanh")(x)
    out = keras.layers.Add()([x, keras.layers.Multiply()([mri_in, mri_in])])
    model = keras.Model([mri_in, pet_in], out)
    from funfusean_tf.visualize import _input_convs

    assert _input_convs(model) == [[], [pet_conv]]
    mri, pet = rng.random((10, 12)), rng.random((10, 12))
    maps = contribution_maps(model, mri, pet)
    ta, tb = (tf.constant(v[None, ..., None], tf.float32) for v in (mri, pet))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([ta, tb])
        fused = model([ta, tb])
    for got, source in ((maps.mri, ta), (maps.pet, tb)):
        full = np.asarray(tape.jacobian(fused, source)).reshape(10 * 12, 10, 12).sum(axis=0)
        assert np.abs(full).max() > 0.1
        np.testing.assert_allclose(got, full, atol=1e-5)


def test_a_nan_map_is_an_error_and_a_baseline_has_no_maps(rng):
    model = build_funfusean(hf_rule="exact")
    for weight in model.weights:  # every activation zero: the exact rule divides 0 by 0
        if "moving_variance" not in weight.path:
            weight.assign(np.zeros(weight.shape))
    with pytest.raises(FloatingPointError, match="guarded"):
        contribution_maps(model, rng.random((8, 8)), rng.random((8, 8)))
    from funfusean_tf.fusion import load_method

    with pytest.raises(TypeError, match="not a differentiable network"):
        contribution_maps(load_method("average"), rng.random((8, 8)), rng.random((8, 8)))


# ---------------------------------------------------------------------------------------------
# The colour coding against the original's steps
# ---------------------------------------------------------------------------------------------


def _gradient_stack(seed: int, n: int = 3, size: int = 40) -> np.ndarray:
    """Signed float32 maps with different ranges per image, like a stack of real gradients."""
    rng = np.random.default_rng(seed)
    maps = rng.standard_normal((n, size, size)) * rng.uniform(1e-3, 5, (n, 1, 1)) + rng.uniform(-2, 2, (n, 1, 1))
    return maps.astype(np.float32)


def _original_uint8(stack: np.ndarray) -> np.ndarray:
    """visualisation.py: min-max of the float32 stack, then cv2.normalize per image, then np.uint8."""
    stack = (stack - np.min(stack)) / (np.max(stack) - np.min(stack))
    return np.stack([np.uint8(cv2.normalize(image, None, alpha=0, beta=255, norm_type=cv2.NORM_MINMAX,
                                            dtype=cv2.CV_32F)) for image in stack])


def _original_coding(grad_mri, grad_pet, omega, bgr_as_rgb=True):
    mri8, pet8 = _original_uint8(grad_mri), _original_uint8(grad_pet)
    out = []
    for m, p in zip(mri8, pet8):
        mri_colour = np.dstack((m, m, m))
        pet_colour = cv2.applyColorMap(p, cv2.COLORMAP_JET)
        if not bgr_as_rgb:
            pet_colour = cv2.cvtColor(pet_colour, cv2.COLOR_BGR2RGB)
        mri_hsv, pet_hsv = color.rgb2hsv(mri_colour), color.rgb2hsv(pet_colour)
        mri_hsv[..., 0] = pet_hsv[..., 0]
        mri_hsv[..., 1] = pet_hsv[..., 1] * omega
        out.append(color.hsv2rgb(mri_hsv))
    return np.stack(out), mri8


def test_gradient_to_uint8_is_opencvs_normalize_and_truncation_bit_for_bit():
    for seed in range(60):
        stack = _gradient_stack(seed, n=3, size=48)
        np.testing.assert_array_equal(gradient_to_uint8(stack), _original_uint8(stack), err_msg=f"seed {seed}")
    single = _gradient_stack(99, n=1)[0]
    np.testing.assert_array_equal(gradient_to_uint8(single), _original_uint8(single[None])[0])
    assert not gradient_to_uint8(np.full((4, 4), 3.0)).any()  # a constant map: zeros, not NaN


@pytest.mark.parametrize("omega", [0.3, 0.6, 0.9, 1.0])
def test_faithful_coding_reproduces_the_original_step_by_step(omega):
    grad_mri, grad_pet = _gradient_stack(1), _gradient_stack(2)
    expected, _ = _original_coding(grad_mri, grad_pet, omega)
    coded = colour_code(grad_mri, grad_pet, omega, mode="faithful")
    assert coded.shape == grad_mri.shape + (3,)
    np.testing.assert_allclose(coded, expected, rtol=0, atol=1e-12)
    one = colour_code(grad_mri[0], grad_pet[0], omega)
    expected_one, _ = _original_coding(grad_mri[:1], grad_pet[:1], omega)
    np.testing.assert_allclose(one, expected_one[0], rtol=0, atol=1e-12)


def test_corrected_coding_uses_the_intended_jet():
    grad_mri, grad_pet = _gradient_stack(3), _gradient_stack(4)
    expected, _ = _original_coding(grad_mri, grad_pet, 0.6, bgr_as_rgb=False)
    np.testing.assert_allclose(colour_code(grad_mri, grad_pet, 0.6, mode="corrected"), expected, atol=1e-12)
    assert np.abs(colour_code(grad_mri, grad_pet, 0.6, mode="faithful") - expected).max() > 0.1
    # OpenCV's jet starts dark blue and ends dark red; the original read it backwards
    levels = np.array([0, 255], np.uint8)
    np.testing.assert_array_equal(jet_rgb(levels, "corrected"), [[0, 0, 128], [128, 0, 0]])
    np.testing.assert_array_equal(jet_rgb(levels, "faithful"), [[128, 0, 0], [0, 0, 128]])


def test_omega_zero_gives_the_mri_maps_value_channel_in_grey():
    grad_mri, grad_pet = _gradient_stack(5), _gradient_stack(6)
    grey = colour_code(grad_mri, grad_pet, 0.0)
    _, mri8 = _original_coding(grad_mri, grad_pet, 0.0)
    value = color.rgb2hsv(np.stack([mri8] * 3, axis=-1))[..., 2]
    for channel in range(3):
        np.testing.assert_allclose(grey[..., channel], value, atol=1e-12)
    np.testing.assert_allclose(value, mri8 / 255.0, atol=1e-12)
    assert len(np.unique(value)) > 100  # a real grey image, not a constant


def test_colour_code_checks_its_arguments():
    grad = _gradient_stack(7)
    with pytest.raises(ValueError, match="omega"):
        colour_code(grad, grad, 1.5)
    with pytest.raises(ValueError, match="mode"):
        colour_code(grad, grad, 0.6, mode="bgr")
    with pytest.raises(FloatingPointError):
        colour_code(np.full((4, 4), np.nan), np.ones((4, 4)))
    assert to_rgb8(np.array([[[0.0, 0.5, 1.0]]])).tolist() == [[[0, 128, 255]]]


def test_figures_show_the_codings_and_save_png(tmp_path):
    grad_mri, grad_pet = _gradient_stack(8, n=2, size=24), _gradient_stack(9, n=2, size=24)
    figure = omega_grid(grad_mri, grad_pet, (0.3, 0.9), mode="corrected", fused=grad_mri,
                        path=tmp_path / "omega.png")
    axes = [a for a in figure.axes if a.images]
    assert len(axes) == 2 * 3  # two pairs x (fused + two Omegas)
    np.testing.assert_allclose(axes[2].images[0].get_array(), colour_code(grad_mri, grad_pet, 0.9, "corrected")[0])
    assert (tmp_path / "omega.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fused = {0.8: grad_mri[0], 0.1: grad_mri[1]}
    figure = lambda_grid(fused, {lam: np.zeros((24, 24, 3)) for lam in fused}, mri=grad_pet[0], pet=grad_pet[1],
                         path=tmp_path / "lambda.png")
    titled = [a.get_title() for a in figure.axes if a.get_title()]
    assert titled == ["MRI", "PET", r"$\lambda$ = 0.1", r"$\lambda$ = 0.8"]
    assert (tmp_path / "lambda.png").stat().st_size > 0
