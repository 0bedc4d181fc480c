"""FunFuseAn: architecture facts from the original code, fit step, serialization, save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from funfusean_tf.losses import funfusean_loss
from funfusean_tf.models.funfusean import TRAINABLE_PARAMETERS, build_funfusean, high_frequency_report


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_parameter_count_matches_the_architecture():
    model = build_funfusean()
    # by hand from network.py: conv weights
    conv = (9*9*1*16 + 3*3*1*16 + 3*3*16*32 + 3*3*32*64      # MRI branch
            + 7*7*1*16 + 5*5*1*16 + 5*5*16*32 + 3*3*32*64    # PET branch
            + 5*5*64*32 + 5*5*32*16 + 5*5*16*1)              # reconstruction
    biases = 16 + 16 + 32 + 64 + 16 + 16 + 32 + 64 + 32 + 16 + 1
    bn = 2 * (16 + 16 + 32 + 64 + 16 + 16 + 32 + 64 + 32 + 16)  # gamma and beta
    assert (conv, biases, bn) == (121_296, 305, 608)
    assert _count(model.trainable_weights) == conv + biases + bn == TRAINABLE_PARAMETERS == 122_209
    assert _count(model.non_trainable_weights) == 608  # moving mean and variance


def test_layer_kernels_and_options():
    model = build_funfusean()
    kernels = {layer.name: layer.kernel_size for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    assert kernels["branch_a_lf_conv"] == (9, 9) and kernels["branch_b_lf_conv"] == (7, 7)
    assert [kernels[f"branch_a_hf{i}_conv"] for i in (1, 2, 3)] == [(3, 3)] * 3
    assert [kernels[f"branch_b_hf{i}_conv"] for i in (1, 2, 3)] == [(5, 5), (5, 5), (3, 3)]
    bn = model.get_layer("recon1_bn")
    assert bn.momentum == pytest.approx(0.9) and bn.epsilon == pytest.approx(1e-5)
    assert model.get_layer("recon1_lrelu").negative_slope == pytest.approx(0.2)
    init = model.get_layer("recon1_conv").kernel.numpy()
    assert np.abs(init).max() <= 0.02 + 1e-7  # truncated normal: within two standard deviations
    assert 0.007 < init.std() < 0.01
    assert np.all(model.get_layer("recon1_conv").bias.numpy() == 0)
    with pytest.raises(ValueError, match="wiring"):
        build_funfusean(wiring="swapped")


def test_any_size_and_tanh_range(rng):
    model = build_funfusean(hf_rule="guarded")
    mri, pet = (rng.random((2, 40, 56, 1)).astype(np.float32) for _ in range(2))
    out = np.asarray(model([mri, pet]))
    assert out.shape == (2, 40, 56, 1)
    assert np.all(np.abs(out) <= 1.0)


def test_shipped_wiring_is_the_paper_wiring_with_inputs_swapped(rng):
    paper = build_funfusean(wiring="paper", hf_rule="guarded")
    shipped = build_funfusean(wiring="shipped", hf_rule="guarded")
    shipped.set_weights(paper.get_weights())
    mri, pet = (rng.random((1, 24, 24, 1)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(np.asarray(shipped([mri, pet])), np.asarray(paper([pet, mri])), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(shipped([mri, pet])), np.asarray(paper([mri, pet])))


def test_batch_statistics_mode_is_per_image(rng):
    """With per-batch statistics and batch 1, an image's output does not depend on the others."""
    model = build_funfusean(hf_rule="guarded", bn_statistics="batch")
    mri, pet = (rng.random((2, 24, 24, 1)).astype(np.float32) for _ in range(2))
    alone = np.asarray(model([mri[:1], pet[:1]]))
    moving = build_funfusean(hf_rule="guarded", bn_statistics="moving")
    moving.set_weights(model.get_weights())
    assert not np.allclose(alone, np.asarray(moving([mri[:1], pet[:1]])), atol=1e-4)


def test_one_fit_step_changes_weights_and_is_finite(rng):
    model = build_funfusean(hf_rule="guarded")
    model.compile(optimizer=keras.optimizers.Adam(0.002, epsilon=1e-8), loss=funfusean_loss(0.8))
    mri, pet = (rng.random((2, 32, 32, 1)).astype(np.float32) for _ in range(2))
    before = [w.copy() for w in model.get_weights()]
    history = model.fit([mri, pet], np.concatenate([mri, pet], axis=-1), batch_size=1, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_config_round_trip_and_keras_file(tmp_path, rng):
    model = build_funfusean(wiring="shipped", hf_rule="guarded", bn_statistics="batch")
    clone = keras.Model.from_config(model.get_config())
    assert _count(clone.trainable_weights) == TRAINABLE_PARAMETERS
    assert clone.get_layer("hf_fusion").rule == "guarded"
    mri, pet = (rng.random((1, 32, 32, 1)).astype(np.float32) for _ in range(2))
    path = tmp_path / "funfusean.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded([mri, pet])), np.asarray(model([mri, pet])))
    weights = tmp_path / "w.weights.h5"
    model.save_weights(weights)
    fresh = build_funfusean(wiring="shipped", hf_rule="guarded")
    fresh.load_weights(weights)
    np.testing.assert_array_equal(np.asarray(fresh([mri, pet])), np.asarray(model([mri, pet])))


def test_high_frequency_report_counts(rng):
    model = build_funfusean(hf_rule="exact")
    mri, pet = (rng.random((1, 32, 32, 1)).astype(np.float32) for _ in range(2))
    report = high_frequency_report(model, mri, pet, near=1e-3)
    assert report["elements"] == 32 * 32 * 64
    assert 0 <= report["nonfinite"] <= report["near_zero_denominator"] <= report["elements"]
