"""Registered custom layers: hand-computed behaviour, config and .keras round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from funfusean_tf.models.layers import BatchStatNormalization, MaxOverSumFusion


def _manual_bn(x, gamma, beta, eps):
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def test_batch_statistics_at_inference_match_hand_computation(rng):
    layer = BatchStatNormalization(statistics="batch", momentum=0.9, epsilon=1e-5)
    x = rng.normal(3.0, 2.0, size=(2, 5, 6, 4)).astype(np.float32)
    layer.build(x.shape)
    layer.gamma.assign(np.array([1.0, 2.0, 0.5, -1.0], np.float32))
    layer.beta.assign(np.array([0.0, 1.0, -1.0, 2.0], np.float32))
    out = np.asarray(layer(x, training=False))
    np.testing.assert_allclose(out, _manual_bn(x, layer.gamma.numpy(), layer.beta.numpy(), 1e-5), atol=1e-5)
    # inference leaves the moving statistics alone
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(4, np.float32))
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(4, np.float32))


def test_training_updates_moving_statistics_with_momentum(rng):
    layer = BatchStatNormalization(statistics="batch", momentum=0.9, epsilon=1e-5)
    x = rng.normal(3.0, 2.0, size=(1, 8, 8, 2)).astype(np.float32)
    layer(x, training=True)
    # TF1 batch_norm with decay 0.9: moving = 0.9 * moving + 0.1 * batch statistic
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * x.var(axis=(0, 1, 2)), rtol=1e-4)


def test_moving_mode_uses_moving_statistics(rng):
    layer = BatchStatNormalization(statistics="moving", epsilon=1e-5)
    x = rng.normal(3.0, 2.0, size=(1, 4, 4, 3)).astype(np.float32)
    out = np.asarray(layer(x, training=False))  # moving mean 0, variance 1, gamma 1, beta 0
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5), rtol=1e-5)
    with pytest.raises(ValueError, match="statistics"):
        BatchStatNormalization(statistics="running")


def test_max_over_sum_exact_and_guarded():
    a = np.array([[2.0, -1.0, 1e-5, 0.0]], np.float32)
    b = np.array([[1.0, -3.0, -1e-5, 0.0]], np.float32)
    exact = np.asarray(MaxOverSumFusion(rule="exact")([a, b]))
    np.testing.assert_allclose(exact[0, :2], [2.0 / 3.0, -1.0 / -4.0], rtol=1e-6)
    assert not np.isfinite(exact[0, 2]) and np.isnan(exact[0, 3])  # x/0 -> inf, 0/0 -> NaN as in the original
    guarded = np.asarray(MaxOverSumFusion(rule="guarded", eps=1e-3)([a, b]))
    np.testing.assert_allclose(guarded[0], [2.0 / 3.0, 0.25, 1e-5 / 1e-3, 0.0], rtol=1e-5)
    assert np.all(np.isfinite(guarded))
    with pytest.raises(ValueError):
        MaxOverSumFusion(rule="clipped")


@pytest.mark.parametrize("layer", [
    BatchStatNormalization(statistics="moving", momentum=0.9, epsilon=1e-5, name="bn"),
    MaxOverSumFusion(rule="guarded", eps=0.01, name="fusion"),
])
def test_config_round_trip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


def test_keras_file_round_trip_with_safe_mode(tmp_path, rng):
    a = keras.Input((6, 6, 2))
    b = keras.Input((6, 6, 2))
    x = BatchStatNormalization(statistics="batch", name="bn")(a)
    y = MaxOverSumFusion(rule="guarded", name="fusion")([x, b])
    model = keras.Model([a, b], y)
    inputs = [rng.random((1, 6, 6, 2)).astype(np.float32) + 0.1 for _ in range(2)]
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), rtol=1e-6)
