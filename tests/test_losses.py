"""The fusion loss against the original train.py formula, written out by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from funfusean_tf.losses import FusionLoss, funfusean_loss, loss_parts, mdafuse_loss


@pytest.fixture
def images(rng):
    return [rng.random((2, 24, 24, 1)).astype(np.float32) for _ in range(3)]


def _tf_ssim(a, b):
    return tf.image.ssim(a, b, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03).numpy()


def test_parts_equal_hand_computation(images):
    fused, mri, pet = images
    parts = {k: v.numpy() for k, v in loss_parts(fused, mri, pet).items()}
    np.testing.assert_allclose(parts["ssim_mri"], _tf_ssim(fused, mri), atol=1e-6)
    np.testing.assert_allclose(parts["ssim"], (1 - _tf_ssim(fused, mri)) + (1 - _tf_ssim(fused, pet)), atol=2e-6)
    mse = ((fused - mri) ** 2).mean(axis=(1, 2, 3)) + ((fused - pet) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(parts["l2"], mse, rtol=1e-5)


@pytest.mark.parametrize("lam", [0.0, 0.01, 0.5, 0.8, 1.0])
def test_funfusean_total_is_the_train_py_formula(images, lam):
    fused, mri, pet = images
    # train.py: lamda*(1-ssim(F,mri)) + lamda*(1-ssim(F,pet)) + (1-lamda)*mse(F,mri) + (1-lamda)*mse(F,pet)
    expected = (lam * (1 - _tf_ssim(fused, mri)) + lam * (1 - _tf_ssim(fused, pet))
                + (1 - lam) * ((fused - mri) ** 2).mean(axis=(1, 2, 3))
                + (1 - lam) * ((fused - pet) ** 2).mean(axis=(1, 2, 3)))
    total = funfusean_loss(lam).parts(fused, mri, pet)["total"].numpy()
    np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-6)


def test_mdafuse_lambda_weights_the_mse_part(images):
    fused, mri, pet = images
    lam = 0.7
    # TrainProcess.ipynb: (1-lambda)*[(1-SSIM(F,MR)) + (1-SSIM(F,PET))] + lambda*[MSE(F,MR) + MSE(F,PET)]
    expected = ((1 - lam) * ((1 - _tf_ssim(fused, mri)) + (1 - _tf_ssim(fused, pet)))
                + lam * (((fused - mri) ** 2).mean(axis=(1, 2, 3)) + ((fused - pet) ** 2).mean(axis=(1, 2, 3))))
    loss = mdafuse_loss(mdafuse_lambda=lam)
    assert loss.ssim_weight == pytest.approx(0.3)
    np.testing.assert_allclose(loss.parts(fused, mri, pet)["total"].numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError):
        mdafuse_loss(funfusean_lambda=0.8)  # the keyword names the paper: no silent mix-up


def test_keras_loss_call_and_config(images):
    fused, mri, pet = images
    loss = funfusean_loss(0.8)
    value = float(loss(np.concatenate([mri, pet], axis=-1), fused))
    assert value == pytest.approx(float(np.mean(loss.parts(fused, mri, pet)["total"])), rel=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, FusionLoss) and restored.get_config() == loss.get_config()
    with pytest.raises(ValueError):
        FusionLoss(ssim_weight=1.5)
