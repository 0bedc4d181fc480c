"""The one SSIM against tf.image.ssim and scikit-image, and its gradients at the edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from funfusean_tf.data.datasets import named_pairs
from funfusean_tf.data.io import load_pair
from funfusean_tf.ssim import FUNFUSEAN_SSIM, SSIMSettings, gaussian_window, ssim, ssim_map


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    pairs = named_pairs("funfusean_test", root=shared_data)[:4] + named_pairs("mdafuse_mr_pet", root=shared_data)[:2]
    return [load_pair(p.mri, p.pet) for p in pairs]


def test_equals_tf_image_ssim_on_real_pairs(real_pairs):
    for mri, pet in real_pairs:
        a, b = mri[None, ..., None], pet[None, ..., None]
        ours = float(ssim(a, b)[0])
        reference = float(tf.image.ssim(a, b, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)[0])
        assert abs(ours - reference) < 1e-6


def test_equals_skimage_on_valid_region(real_pairs):
    """skimage with Gaussian weights (sigma 1.5, truncate 3.5 -> 11x11), population covariance.

    The mean index in float32 (the training precision) agrees within 1e-4; the map itself is
    compared in float64, where float32's cancellation in E[x^2] - mu^2 does not blur the test.
    """
    half = FUNFUSEAN_SSIM.window_size // 2
    for mri, pet in real_pairs[:3]:
        _, full = structural_similarity(mri.astype(np.float64), pet.astype(np.float64), gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True)
        valid = full[half:-half, half:-half]
        ours32 = np.asarray(ssim_map(mri[None, ..., None], pet[None, ..., None]))[0, ..., 0]
        assert ours32.shape == valid.shape == (mri.shape[0] - 10, mri.shape[1] - 10)
        assert abs(float(ours32.mean()) - valid.mean()) < 1e-4
        ours64 = np.asarray(ssim_map(mri[None, ..., None].astype(np.float64), pet[None, ..., None].astype(np.float64)))
        np.testing.assert_allclose(ours64[0, ..., 0], valid, atol=1e-6)


def test_identical_images_give_one(rng):
    image = rng.random((1, 32, 32, 1)).astype(np.float32)
    assert float(ssim(image, image)[0]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("fill", [0.0, 0.5, 1.0])
def test_finite_gradients_on_constant_and_zero_images(fill):
    constant = tf.fill((1, 24, 24, 1), fill)
    other = tf.Variable(tf.fill((1, 24, 24, 1), fill))
    with tf.GradientTape() as tape:
        value = ssim(constant, other)
    gradient = tape.gradient(value, other)
    assert np.isfinite(float(value[0]))
    assert float(value[0]) == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.isfinite(gradient.numpy()))


def test_gaussian_window_matches_definition():
    taps = gaussian_window(11, 1.5)
    x = np.arange(11) - 5
    expected = np.exp(-(x**2) / (2 * 1.5**2))
    np.testing.assert_allclose(taps, expected / expected.sum(), rtol=1e-6)


def test_same_padding_keeps_size_and_settings_validate(rng):
    image = rng.random((2, 20, 24, 1)).astype(np.float32)
    local = ssim_map(image, image[::-1], SSIMSettings(padding="SAME"))
    assert local.shape == (2, 20, 24, 1)
    index, local = ssim(image, image[::-1], return_map=True)
    assert index.shape == (2,) and local.shape == (2, 10, 14, 1)
    with pytest.raises(ValueError, match="odd"):
        SSIMSettings(window_size=10)
    with pytest.raises(ValueError, match="padding"):
        SSIMSettings(padding="REFLECT")
