"""Registered custom layers shared by the fusion networks.

Every layer here is a real Keras layer with ``get_config`` and is registered for serialization,
so models save to ``.keras`` and load with ``safe_mode=True`` (no Lambda layers anywhere).
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["uses_batch_statistics", "BatchStatNormalization", "MaxOverSumFusion", "BN_MODES", "HF_RULES"]

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
    ``is_training`` left at its default) the layer normalises with the current statistics, not
    the moving averages. In training it is the parent layer (statistics of the whole batch,
    moving averages updated). At inference (``training`` False or None) the mean and variance
    are those of each example alone, over its spatial axes, since the originals ran inference
    with batch size 1: a batch of N gives the N single-image results, and nothing is updated,
    so fusing an image never changes the model. With ``statistics="moving"`` it is the plain Keras layer.
    """

    def __init__(self, statistics: str = "batch", **kwargs):
        if statistics not in BN_MODES:
            raise ValueError(f"statistics must be one of {BN_MODES}, got {statistics!r}")
        super().__init__(**kwargs)
        self.statistics = statistics

    def call(self, inputs, training=None, mask=None):
        if self.statistics == "moving" or training:
            return super().call(inputs, training=training, mask=mask)
        # Inference with batch statistics: normalise like training mode, update nothing. The
        # originals ran inference with batch size 1, so the statistics are those of each example
        # alone (moments over the spatial axes only): a batch of N equals N single calls, and a
        # batch of 1 is the old whole-batch computation.
        rank = len(inputs.shape)
        channel = self.axis % rank
        axes = [i for i in range(1, rank) if i != channel]
        compute_dtype = "float32" if inputs.dtype in ("float16", "bfloat16") else inputs.dtype
        x = ops.cast(inputs, compute_dtype)
        mean, variance = ops.moments(x, axes=axes, keepdims=True, synchronized=self.synchronized)
        offset = ops.cast(self.beta, compute_dtype) if self.center else None
        scale = ops.cast(self.gamma, compute_dtype) if self.scale else None
        if channel != rank - 1:  # broadcast the per-channel parameters along the channel axis
            shape = [1] * rank
            shape[channel] = -1
            offset = None if offset is None else ops.reshape(offset, shape)
            scale = None if scale is None else ops.reshape(scale, shape)
        # axis=-1: the (N, 1, 1, C) moments broadcast as they are (no per-channel reshape).
        outputs = ops.batch_normalization(x, mean=mean, variance=variance, axis=-1, offset=offset,
                                          scale=scale, epsilon=self.epsilon)
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


# --------------------------------------------------------------------------------------------
# Resampling layers whose output size follows the input size (MdAFuse's pyramid, and any other
# port of PyTorch code that calls interpolate(..., align_corners=True) or AdaptiveAvgPool2d).
# Both resample with small interpolation matrices built from the run-time sizes, so they work on
# inputs of unknown height and width (a tf.function with a None signature, a SavedModel export)
# and are exact, deterministic and differentiable with plain matrix products.
# --------------------------------------------------------------------------------------------

__all__ += ["AlignCornersResize", "ScaledAdaptiveAveragePooling2D", "align_corners_matrix", "adaptive_pool_matrix"]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def align_corners_matrix(size_in, size_out, dtype="float32"):
    """(size_out, size_in) matrix of bilinear weights with align_corners=True, along one axis.

    Output sample i reads the input at src = i * (size_in - 1) / (size_out - 1) (src = 0 when
    size_out is 1), the convention of PyTorch's ``interpolate(..., mode="bilinear",
    align_corners=True)`` and TF1's ``resize_bilinear(align_corners=True)``: the corner samples of
    input and output coincide. Sizes may be Python ints or scalar tensors.
    """
    n_in = ops.cast(size_in, "float32")
    n_out = ops.cast(size_out, "float32")
    scale = (n_in - 1.0) / ops.maximum(n_out - 1.0, 1.0)
    src = ops.cast(ops.arange(size_out), "float32") * scale
    low = ops.floor(src)
    frac = src - low
    low = ops.cast(low, "int32")
    high = ops.minimum(low + 1, ops.cast(size_in, "int32") - 1)
    columns = ops.cast(ops.arange(size_in), "int32")[None, :]
    weights = (1.0 - frac)[:, None] * ops.cast(ops.equal(columns, low[:, None]), "float32") + frac[
        :, None
    ] * ops.cast(ops.equal(columns, high[:, None]), "float32")
    return ops.cast(weights, dtype)


def adaptive_pool_matrix(size_in, size_out, dtype="float32"):
    """(size_out, size_in) averaging matrix of PyTorch's AdaptiveAvgPool along one axis.

    Bin i averages the inputs floor(i * n / m) <= j < ceil((i + 1) * n / m) (n = size_in,
    m = size_out); for n = 2 m that is a plain 2-wide average pool.
    """
    n = ops.cast(size_in, "int32")
    m = ops.cast(size_out, "int32")
    rows = ops.cast(ops.arange(size_out), "int32")
    start = (rows * n) // m
    end = ((rows + 1) * n + m - 1) // m
    columns = ops.cast(ops.arange(size_in), "int32")[None, :]
    inside = ops.logical_and(columns >= start[:, None], columns < end[:, None])
    weights = ops.cast(inside, "float32") / ops.cast(end - start, "float32")[:, None]
    return ops.cast(weights, dtype)


def _resample(x, rows, cols):
    """rows: (H_out, H), cols: (W_out, W); x: (N, H, W, C) -> (N, H_out, W_out, C)."""
    x = ops.einsum("oh,nhwc->nowc", rows, x)
    return ops.einsum("pw,nowc->nopc", cols, x)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AlignCornersResize(keras.layers.Layer):
    """Bilinear resize with aligned corners to the size of a reference tensor, divided by ``divisor``.

    Called on ``[x, reference]`` (both NHWC): the output has x's batch and channels and the height
    and width ``reference`` has, integer-divided by ``divisor``. This is PyTorch's
    ``interpolate(x, size, mode="bilinear", align_corners=True)`` where the original code computes
    ``size`` from another tensor (or hard-codes it for 256 x 256 inputs). Keras' UpSampling2D and
    Resizing use half-pixel centres and cannot align corners, hence this layer.
    """

    def __init__(self, divisor: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.divisor = _positive_int(divisor, "divisor")

    def call(self, inputs):
        x, reference = inputs
        in_shape = ops.shape(x)
        ref_shape = ops.shape(reference)
        out_h, out_w = ref_shape[1] // self.divisor, ref_shape[2] // self.divisor
        rows = align_corners_matrix(in_shape[1], out_h, x.dtype)
        cols = align_corners_matrix(in_shape[2], out_w, x.dtype)
        return _resample(x, rows, cols)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        out = [None if d is None else d // self.divisor for d in ref_shape[1:3]]
        return (x_shape[0], out[0], out[1], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "divisor": self.divisor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledAdaptiveAveragePooling2D(keras.layers.Layer):
    """PyTorch-style adaptive average pooling to (H // divisor, W // divisor).

    keras.layers.AdaptiveAveragePooling2D needs a fixed output size; MdAFuse pools to half of
    whatever size reaches it (``AdaptiveAvgPool2d(int(H / 2))``), so the output size here follows
    the input. The bins are PyTorch's (see :func:`adaptive_pool_matrix`); with even sizes and
    divisor 2 this is a 2 x 2 average pool. Height and width are pooled each by its own size (the
    original pools both to int(H / 2); the two agree on square inputs).
    """

    def __init__(self, divisor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.divisor = _positive_int(divisor, "divisor")

    def call(self, inputs):
        shape = ops.shape(inputs)
        rows = adaptive_pool_matrix(shape[1], shape[1] // self.divisor, inputs.dtype)
        cols = adaptive_pool_matrix(shape[2], shape[2] // self.divisor, inputs.dtype)
        return _resample(inputs, rows, cols)

    def compute_output_shape(self, input_shape):
        out = [None if d is None else d // self.divisor for d in input_shape[1:3]]
        return (input_shape[0], out[0], out[1], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "divisor": self.divisor}


def _walk_layers(layer):
    for child in getattr(layer, "layers", ()):
        yield child
        yield from _walk_layers(child)


def uses_batch_statistics(model) -> bool:
    """True when some BatchNorm of ``model`` normalises with batch statistics at inference.

    Such a model's output for one image depends on the other images of its batch, so callers
    that must reproduce the originals (batch size 1, FIDELITY.md F2) feed it one image at a time.
    """
    return any(isinstance(layer, BatchStatNormalization) and layer.statistics == "batch"
               for layer in _walk_layers(model))
