"""The SSIM + l2 fusion loss of FunFuseAn and MdAFuse, built on the one SSIM (ssim.py).

Both originals minimise a weighted sum of the same two parts against both sources:

    L_SSIM = (1 - SSIM(F, MRI)) + (1 - SSIM(F, PET))
    L_l2   = MSE(F, MRI) + MSE(F, PET)               (a mean of squares, not a norm)

but they name their weight the opposite way round:

    FunFuseAn:  L = lambda * L_SSIM + (1 - lambda) * L_l2      (lambda = 0.8)
    MdAFuse:    L = (1 - lambda) * L_SSIM + lambda * L_l2      (lambda = 0.7)

so the loss here takes neither "lambda": :class:`FusionLoss` takes ``ssim_weight`` (the weight of
L_SSIM), and the two constructors :func:`funfusean_loss` and :func:`mdafuse_loss` translate each
paper's lambda, under a keyword that names the paper.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .ssim import FUNFUSEAN_SSIM, SSIMSettings, ssim

__all__ = ["loss_parts", "FusionLoss", "funfusean_loss", "mdafuse_loss"]


def loss_parts(fused, mri, pet, settings: SSIMSettings = FUNFUSEAN_SSIM) -> dict[str, tf.Tensor]:
    """The unweighted parts of the loss, one value per batch element.

    Keys: ``ssim``  (L_SSIM), ``l2`` (L_l2), and the four terms ``ssim_mri``, ``ssim_pet``
    (the SSIM indices, not 1 - SSIM), ``mse_mri``, ``mse_pet``.
    """
    fused = tf.convert_to_tensor(fused)
    mri = tf.cast(mri, fused.dtype)
    pet = tf.cast(pet, fused.dtype)
    ssim_mri = ssim(fused, mri, settings)
    ssim_pet = ssim(fused, pet, settings)
    mse_mri = tf.reduce_mean(tf.square(fused - mri), axis=[-3, -2, -1])
    mse_pet = tf.reduce_mean(tf.square(fused - pet), axis=[-3, -2, -1])
    return {
        "ssim": (1.0 - ssim_mri) + (1.0 - ssim_pet),
        "l2": mse_mri + mse_pet,
        "ssim_mri": ssim_mri,
        "ssim_pet": ssim_pet,
        "mse_mri": mse_mri,
        "mse_pet": mse_pet,
    }


@keras.saving.register_keras_serializable(package="funfusean_tf")
class FusionLoss(keras.losses.Loss):
    """ssim_weight * L_SSIM + (1 - ssim_weight) * L_l2, per batch element.

    As a Keras loss, ``y_true`` is the two sources stacked on the channel axis
    (``concat([mri, pet], -1)``) and ``y_pred`` the fused image. The training loop calls
    :meth:`parts` to log L_SSIM and L_l2 unweighted.
    """

    def __init__(self, ssim_weight: float, ssim_settings: dict | None = None, name="fusion_loss", **kwargs):
        if not 0.0 <= ssim_weight <= 1.0:
            raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
        super().__init__(name=name, **kwargs)
        self.ssim_weight = float(ssim_weight)
        self.ssim_settings = dict(ssim_settings or {})
        self._settings = SSIMSettings(**self.ssim_settings)

    def parts(self, fused, mri, pet) -> dict[str, tf.Tensor]:
        parts = loss_parts(fused, mri, pet, self._settings)
        parts["total"] = self.ssim_weight * parts["ssim"] + (1.0 - self.ssim_weight) * parts["l2"]
        return parts

    def call(self, y_true, y_pred):
        mri, pet = y_true[..., :1], y_true[..., 1:2]
        return self.parts(y_pred, mri, pet)["total"]

    def get_config(self):
        return {"ssim_weight": self.ssim_weight, "ssim_settings": self.ssim_settings, "name": self.name,
                "reduction": self.reduction}


def funfusean_loss(funfusean_lambda: float = 0.8) -> FusionLoss:
    """FunFuseAn's loss: lambda weights the SSIM part (train.py: lamda * (1 - ssim) + (1-lamda) * mse)."""
    return FusionLoss(ssim_weight=funfusean_lambda, name="funfusean_loss")


def mdafuse_loss(mdafuse_lambda: float = 0.7) -> FusionLoss:
    """MdAFuse's loss: lambda weights the MSE part ((1-lambda) * SSIM terms + lambda * MSE terms)."""
    if not 0.0 <= mdafuse_lambda <= 1.0:
        raise ValueError(f"mdafuse_lambda must be in [0, 1], got {mdafuse_lambda}")
    return FusionLoss(ssim_weight=1.0 - mdafuse_lambda, name="mdafuse_loss")
