"""Registered custom layers shared by the fusion networks.

Every layer here is a real Keras layer with ``get_config`` and is registered for serialization,
so models save to ``.keras`` and load with ``safe_mode=True`` (no Lambda layers anywhere).
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["BatchStatNormalization", "MaxOverSumFusion", "BN_MODES", "HF_RULES"]

PACKAGE = "funfusean_tf"

#: "batch": normalise with the statistics of the current batch, always (the originals never
#: switch BatchNorm to inference mode). "moving": ordinary Keras behaviour (moving averages at
#: inference). See FIDELITY.md, "BatchNorm statistics".
BN_MODES = ("batch", "moving")

#: "exact": max(a, b) / (a + b) as the original, no epsilon. "guarded": the denominator is kept
#: at least ``eps`` away from zero (sign preserved). See FIDELITY.md, "High-frequency rule".
HF_RULES = ("exact", "guarded")


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchStatNormalization(keras.layers.BatchNormalization):
    """BatchNormalization that can normalise with the current batch's statistics at inference.

    With ``statistics="batch"`` (the originals' behaviour: TF1 ``batch_norm`` with
    ``is_training`` left at its default) the layer always normalises with the mean and variance
    of the batch it sees; during training it also updates the moving averages, exactly as the
    parent layer does, but at inference it leaves them untouched, so fusing an image never
    changes the model. With ``statistics="moving"`` it is the plain Keras layer.
    """

    def __init__(self, statistics: str = "batch", **kwargs):
        if statistics not in BN_MODES:
            raise ValueError(f"statistics must be one of {BN_MODES}, got {statistics!r}")
        super().__init__(**kwargs)
        self.statistics = statistics

    def call(self, inputs, training=None, mask=None):
        if self.statistics == "moving" or training:
            return super().call(inputs, training=training, mask=mask)
        # Inference with batch statistics: normalise like training mode, update nothing.
        axes = [i for i in range(len(inputs.shape)) if i != self.axis % len(inputs.shape)]
        compute_dtype = "float32" if inputs.dtype in ("float16", "bfloat16") else inputs.dtype
        x = ops.cast(inputs, compute_dtype)
        mean, variance = ops.moments(x, axes=axes, keepdims=False, synchronized=self.synchronized)
        outputs = ops.batch_normalization(
            x,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=ops.cast(self.beta, compute_dtype) if self.center else None,
            scale=ops.cast(self.gamma, compute_dtype) if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "statistics": self.statistics}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaxOverSumFusion(keras.layers.Layer):
    """FunFuseAn's high-frequency fusion rule, H = max(a, b) / (a + b), element-wise.

    ``rule="exact"`` is the original's arithmetic with no epsilon: where a + b is zero the result
    is inf or NaN (see FIDELITY.md). ``rule="guarded"`` replaces a denominator of magnitude
    below ``eps`` by ``eps`` with the denominator's sign (``+eps`` at exactly zero).
    """

    def __init__(self, rule: str = "exact", eps: float = 1e-3, **kwargs):
        if rule not in HF_RULES:
            raise ValueError(f"rule must be one of {HF_RULES}, got {rule!r}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        super().__init__(**kwargs)
        self.rule = rule
        self.eps = float(eps)

    def call(self, inputs):
        a, b = inputs
        numerator = ops.maximum(a, b)
        denominator = a + b
        if self.rule == "guarded":
            sign = ops.where(denominator < 0, -1.0, 1.0)
            denominator = ops.where(ops.abs(denominator) < self.eps, sign * self.eps, denominator)
        return numerator / denominator

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "rule": self.rule, "eps": self.eps}
