"""Registered custom layers: hand-computed behaviour, config and .keras round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from funfusean_tf.models.layers import BatchStatNormalization, MaxOverSumFusion


def _manual_bn(x, gamma, beta, eps, axes=(1, 2)):
    """Inference with batch statistics: each example's own mean and variance (axes (1, 2))."""
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def _whole_batch_bn(layer, x):
    """The layer's inference path before per-example statistics (issue 15, case 4): moments over
    the batch and spatial axes, then ops.batch_normalization, exactly as the old call did."""
    from keras import ops

    mean, variance = ops.moments(x, axes=[0, 1, 2], keepdims=False)
    return ops.batch_normalization(x, mean=mean, variance=variance, axis=layer.axis,
                                   offset=layer.beta, scale=layer.gamma, epsilon=layer.epsilon)


def _layer_with_params(rng, channels=4):
    layer = BatchStatNormalization(statistics="batch", momentum=0.9, epsilon=1e-5)
    layer.build((None, None, None, channels))
    layer.gamma.assign(rng.normal(1.0, 0.5, channels).astype(np.float32))
    layer.beta.assign(rng.normal(0.0, 0.5, channels).astype(np.float32))
    return layer


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


def test_batch_of_n_equals_n_single_calls_at_inference(rng):
    """Issue 15, case 4: at inference each example is normalised with its own statistics (the
    originals ran batch 1), so a batch equals its single calls; before, the batch shared them."""
    import tensorflow as tf

    layer = _layer_with_params(rng)
    # examples with very different levels, as an MRI and a dark PET slice would be
    x = np.concatenate([rng.normal(m, s, size=(1, 7, 5, 4)) for m, s in [(0, 1), (5, 0.1), (-2, 3)]])
    x = x.astype(np.float32)
    singles = np.concatenate([np.asarray(layer(x[i : i + 1], training=False)) for i in range(3)])
    for training in (False, None):
        np.testing.assert_allclose(np.asarray(layer(x, training=training)), singles, atol=1e-5)
    graph = tf.function(lambda t: layer(t, training=False), reduce_retracing=True)
    np.testing.assert_allclose(np.asarray(graph(tf.constant(x))), singles, atol=1e-5)


def test_batch_one_inference_is_bit_identical_to_the_whole_batch_path(rng):
    import tensorflow as tf

    layer = _layer_with_params(rng)
    for shape in [(1, 9, 11, 4), (1, 64, 64, 4), (1, 1, 1, 4)]:
        x = rng.normal(0.3, 2.0, size=shape).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(layer(x, training=False)),
                                      np.asarray(_whole_batch_bn(layer, x)))
        graph = tf.function(lambda t: layer(t, training=False))
        old = tf.function(lambda t: _whole_batch_bn(layer, t))
        np.testing.assert_array_equal(np.asarray(graph(tf.constant(x))), np.asarray(old(tf.constant(x))))


def test_training_mode_keeps_whole_batch_statistics(rng):
    layer = _layer_with_params(rng, channels=2)
    x = rng.normal(1.0, 2.0, size=(3, 6, 6, 2)).astype(np.float32)
    out = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(out, _manual_bn(x, layer.gamma.numpy(), layer.beta.numpy(), 1e-5, axes=(0, 1, 2)),
                               atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-4)


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
