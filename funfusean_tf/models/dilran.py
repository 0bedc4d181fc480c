"""DILRAN (Zhou, Xu, Zhang 2022, arXiv 2212.04661) as Keras functional models.

An auto-encoder trained to reconstruct single grey images; two images are fused only at
inference, in feature space, by a fixed rule. Built from the description of the authors'
PyTorch code (simonZhou86/dilran) in shared/reference/OTHER_SEEDS.md:

- shallow feature: Conv 3x3 1->64 + BN + ReLU;
- three parallel 3x3 convs with dilation 1, 3 and 5 (64->64);
- the DILRAN block on each branch: ``conv_path = c(x) + c(c(x)) + c(c(c(x)))`` with ONE 3x3 conv
  ``c`` (receptive fields 3, 5, 7), ``attention = ReLU(upsample(avgpool2(x)))``, output
  ``x + attention * conv_path``, then BN; the three branches are concatenated (192 channels).
  In the authors' code one block object (hence one conv ``c``) and one BN layer serve all three
  branches: ``branch_sharing="shared"`` (default); ``"separate"`` gives each branch its own;
- shortcut: 1x1 conv 64->192 on the shallow feature, added to the concatenation; then
  conv 192->128 and 128->64, each + BN + ReLU: the encoder output (64 channels);
- decoder: convs 3x3 64->64->32->16->1, each followed by LeakyReLU(0.2), the output layer too.

Convolutions are initialised as PyTorch's ``nn.Conv2d`` (weights and biases uniform in
+-1/sqrt(fan_in)); BatchNorm uses PyTorch's momentum 0.1 (Keras momentum 0.9) and eps 1e-5.
The average pooling / nearest upsampling pair needs even heights and widths, as in the original.

Models:

- :func:`build_dilran_autoencoder`: one image -> its reconstruction (training);
- :func:`build_dilran`: ``[mri, pet] -> fused``, the same encoder applied to both inputs, the
  registered :class:`DilranFeatureFusion` layer, the same decoder, and the inference clamp to
  [0, 1] (``inference.py``: ``final.clamp(min=0, max=1)``). It is an ordinary two-input Keras
  model, so ``funfusean_tf.fusion`` and gradient-based contribution maps work on it unchanged.

The loss (:class:`DilranObjective`, an objective callable for ``training.fit_arrays``) trains
the auto-encoder inside either model to reconstruct both images of every pair:
``MSE + lambda1 * Sobel gradient loss + lambda2 * VGG16 perceptual loss``.
Every deviation from the original is a row of FIDELITY.md, "DILRAN and the decision-map method".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from .layers import BN_MODES, PACKAGE, BatchStatNormalization

__all__ = [
    "STRATEGIES",
    "BRANCH_SHARING",
    "PERCEPTUAL_MODES",
    "VGG_INPUTS",
    "VGG_NOTOP_FILE",
    "DilranFeatureFusion",
    "DilranLossOptions",
    "DilranObjective",
    "build_dilran_encoder",
    "build_dilran_decoder",
    "build_dilran_autoencoder",
    "build_dilran",
    "dilran_from_autoencoder",
    "sobel_gradient_loss",
    "keras_vgg_cache_path",
    "build_vgg_features",
    "split_options",
]

#: Inference fusion rules of the original ``fusion_strategy``: "sfnn" (softmax + nuclear norm,
#: the one inference.py uses), "addition", "average", "l1" (the original's "FL1N": weights
#: proportional to the l1 norms of the two feature tensors).
STRATEGIES = ("sfnn", "addition", "average", "l1")

#: "shared": one DILRAN block (one conv) and one BN layer for the three dilated branches, as the
#: authors' FE_V1 module; "separate": one block and one BN per branch.
BRANCH_SHARING = ("shared", "separate")

#: "imagenet": VGG16 with ImageNet weights from a local file or the Keras cache (the default,
#: the original's intent); "random": randomly initialised VGG16 (tests, smoke runs); "off": no
#: perceptual term (a logged deviation).
PERCEPTUAL_MODES = ("imagenet", "random", "off")

#: What the VGG sees: "raw" = the [0, 1] grey image repeated to 3 channels, as the original fed
#: torchvision's VGG16-BN; "caffe" = keras.applications.vgg16.preprocess_input's convention
#: (x 255, BGR ImageNet means subtracted), the input the Keras weights were trained on.
VGG_INPUTS = ("raw", "caffe")

#: The notop VGG16 weights file as keras.applications caches it (<KERAS_HOME>/models/).
VGG_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"

#: The VGG16 layers up to the third max-pool; the taps are the outputs of the last conv of each
#: block BEFORE its ReLU (the original hooks the BN output, i.e. before the ReLU, of VGG16-BN).
_VGG_BLOCKS = (("block1", 2, 64), ("block2", 2, 128), ("block3", 3, 256))
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


# --------------------------------------------------------------------------------------------
# layers


def _torch_conv(filters: int, kernel: int, in_channels: int, name: str, dilation: int = 1, padding: str = "same"):
    """Conv2D initialised as torch.nn.Conv2d: kaiming_uniform(a=sqrt(5)) weights, uniform bias."""
    fan_in = in_channels * kernel * kernel
    bound = 1.0 / math.sqrt(fan_in)
    return keras.layers.Conv2D(
        filters,
        kernel,
        padding=padding,
        dilation_rate=dilation,
        use_bias=True,
        kernel_initializer=keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        name=name,
    )


def _bn(name: str, bn_statistics: str) -> BatchStatNormalization:
    # torch.nn.BatchNorm2d defaults: momentum 0.1 (moving = 0.9 moving + 0.1 batch), eps 1e-5
    return BatchStatNormalization(statistics=bn_statistics, momentum=0.9, epsilon=1e-5, name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DilranFeatureFusion(keras.layers.Layer):
    """DILRAN's inference fusion of two encoder feature maps (N, H, W, C) into one.

    - ``"sfnn"``: softmax over the channels at each pixel (PyTorch's implicit ``dim=1`` for a
      4-D tensor), nuclear norm of each channel's H x W map, ``m_k`` = the largest of the C norms
      of image k, ``w1 = m1^2 / (m1^2 + m2^2)``, ``w2 = m2^2 / (m1^2 + m2^2)``; fused =
      ``w1 f1 + w2 f2``. One pair of weights per batch element (the original handled one image
      at a time). The weights are constants for the gradient (the original computes them with
      ``.item()``), so contribution maps see ``w1 df1 + w2 df2``.
    - ``"addition"``: ``f1 + f2``; ``"average"``: ``(f1 + f2) / 2``.
    - ``"l1"``: ``w_k = |f_k|_1 / (|f1|_1 + |f2|_1)`` per batch element (the original's FL1N);
      0.5 each where both norms are zero (the original would divide 0 by 0).
    """

    def __init__(self, strategy: str = "sfnn", **kwargs):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        super().__init__(**kwargs)
        self.strategy = strategy

    def fusion_weights(self, f1, f2):
        """(w1, w2), each of shape (N,), for the weighted strategies."""
        if self.strategy == "sfnn":
            m1, m2 = _max_channel_nuclear_norm(f1), _max_channel_nuclear_norm(f2)
            m1, m2 = ops.stop_gradient(m1), ops.stop_gradient(m2)
            denominator = m1 * m1 + m2 * m2
            return m1 * m1 / denominator, m2 * m2 / denominator
        if self.strategy == "l1":
            n1 = ops.sum(ops.abs(f1), axis=(1, 2, 3))
            n2 = ops.sum(ops.abs(f2), axis=(1, 2, 3))
            total = n1 + n2
            safe = ops.where(total > 0, total, ops.ones_like(total))
            w1 = ops.where(total > 0, n1 / safe, 0.5 * ops.ones_like(total))
            return w1, 1.0 - w1
        raise ValueError(f"strategy {self.strategy!r} has no weights")

    def call(self, inputs):
        f1, f2 = inputs
        if self.strategy == "addition":
            return f1 + f2
        if self.strategy == "average":
            return (f1 + f2) / 2.0
        w1, w2 = self.fusion_weights(f1, f2)
        return w1[:, None, None, None] * f1 + w2[:, None, None, None] * f2

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "strategy": self.strategy}


def _max_channel_nuclear_norm(features):
    """max over channels of the nuclear norm of softmax(features, channels)[..., c], shape (N,)."""
    soft = ops.softmax(features, axis=-1)
    matrices = ops.transpose(soft, (0, 3, 1, 2))  # (N, C, H, W): one H x W matrix per channel
    singular_values = ops.svd(matrices, full_matrices=False, compute_uv=False)
    return ops.max(ops.sum(singular_values, axis=-1), axis=-1)


# --------------------------------------------------------------------------------------------
# models


def build_dilran_encoder(
    bn_statistics: str = "batch",
    branch_sharing: str = "shared",
    input_shape: tuple = (None, None, 1),
    name: str = "dilran_encoder",
) -> keras.Model:
    """Image (H, W, 1) -> 64 feature maps (H, W, 64)."""
    if bn_statistics not in BN_MODES:
        raise ValueError(f"bn_statistics must be one of {BN_MODES}, got {bn_statistics!r}")
    if branch_sharing not in BRANCH_SHARING:
        raise ValueError(f"branch_sharing must be one of {BRANCH_SHARING}, got {branch_sharing!r}")
    for size in input_shape[:2]:
        if size is not None and size % 2:
            raise ValueError(f"DILRAN's pooling attention needs even heights and widths, got {input_shape[:2]}")
    image = keras.Input(shape=input_shape, name="image")
    x = _torch_conv(64, 3, 1, "shallow_conv")(image)
    x = _bn("shallow_bn", bn_statistics)(x)
    shallow = keras.layers.ReLU(name="shallow_relu")(x)

    shared = None
    if branch_sharing == "shared":
        shared = (_torch_conv(64, 3, 64, "dilran_conv"), _bn("dilran_bn", bn_statistics))
    branches = []
    for index, dilation in enumerate((1, 3, 5), start=1):
        branch = _torch_conv(64, 3, 64, f"dilated{index}_conv", dilation=dilation)(shallow)
        conv, norm = shared or (_torch_conv(64, 3, 64, f"dilran{index}_conv"), _bn(f"dilran{index}_bn", bn_statistics))
        c1 = conv(branch)
        c2 = conv(c1)
        c3 = conv(c2)
        conv_path = keras.layers.Add(name=f"dilran{index}_multiscale")([c1, c2, c3])
        pooled = keras.layers.AveragePooling2D(2, name=f"dilran{index}_avgpool")(branch)
        upsampled = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"dilran{index}_upsample")(pooled)
        attention = keras.layers.ReLU(name=f"dilran{index}_attention")(upsampled)
        weighted = keras.layers.Multiply(name=f"dilran{index}_attend")([attention, conv_path])
        out = keras.layers.Add(name=f"dilran{index}_residual")([branch, weighted])
        branches.append(norm(out))
    concatenated = keras.layers.Concatenate(axis=-1, name="branches")(branches)
    shortcut = _torch_conv(192, 1, 64, "shortcut_conv", padding="valid")(shallow)
    x = keras.layers.Add(name="shortcut_add")([shortcut, concatenated])
    for index, (filters, in_channels) in enumerate(((128, 192), (64, 128)), start=1):
        x = _torch_conv(filters, 3, in_channels, f"reduce{index}_conv")(x)
        x = _bn(f"reduce{index}_bn", bn_statistics)(x)
        x = keras.layers.ReLU(name=f"reduce{index}_relu")(x)
    return keras.Model(image, x, name=name)


def build_dilran_decoder(channels: int = 64, name: str = "dilran_decoder") -> keras.Model:
    """64 feature maps -> one image; every conv (the output one too) is followed by LeakyReLU(0.2)."""
    features = keras.Input(shape=(None, None, channels), name="features")
    x = features
    in_channels = channels
    for index, filters in enumerate((64, 32, 16, 1), start=1):
        x = _torch_conv(filters, 3, in_channels, f"decoder{index}_conv")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"decoder{index}_lrelu")(x)
        in_channels = filters
    return keras.Model(features, x, name=name)


def build_dilran_autoencoder(
    bn_statistics: str = "batch",
    branch_sharing: str = "shared",
    input_shape: tuple = (None, None, 1),
    name: str = "dilran_autoencoder",
) -> keras.Model:
    """The training model: image (H, W, 1) -> reconstruction (H, W, 1), no clamp."""
    encoder = build_dilran_encoder(bn_statistics, branch_sharing, input_shape)
    decoder = build_dilran_decoder()
    image = keras.Input(shape=input_shape, name="image")
    return keras.Model(image, decoder(encoder(image)), name=name)


def build_dilran(
    strategy: str = "sfnn",
    bn_statistics: str = "batch",
    branch_sharing: str = "shared",
    clamp: bool = True,
    input_shape: tuple = (None, None, 1),
    name: str = "dilran",
) -> keras.Model:
    """The fusion model: ``[mri, pet]`` (H, W, 1) each -> fused (H, W, 1).

    One encoder (shared weights) on both inputs, :class:`DilranFeatureFusion` with ``strategy``,
    one decoder, then (``clamp=True``, as inference.py) the output clipped to [0, 1].
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    encoder = build_dilran_encoder(bn_statistics, branch_sharing, input_shape)
    decoder = build_dilran_decoder()
    mri = keras.Input(shape=input_shape, name="mri")
    pet = keras.Input(shape=input_shape, name="pet")
    fused = DilranFeatureFusion(strategy, name="feature_fusion")([encoder(mri), encoder(pet)])
    out = decoder(fused)
    if clamp:
        out = keras.layers.ReLU(max_value=1.0, name="clamp")(out)  # min(max(x, 0), 1)
    return keras.Model([mri, pet], out, name=name)


def dilran_from_autoencoder(autoencoder: keras.Model, strategy: str = "sfnn", clamp: bool = True) -> keras.Model:
    """A fusion model carrying the encoder and decoder weights of a trained auto-encoder."""
    encoder = autoencoder.get_layer("dilran_encoder")
    bn_statistics = next(l.statistics for l in encoder.layers if isinstance(l, BatchStatNormalization))
    sharing = "shared" if any(l.name == "dilran_conv" for l in encoder.layers) else "separate"
    model = build_dilran(strategy, bn_statistics, sharing, clamp)
    for part in ("dilran_encoder", "dilran_decoder"):
        model.get_layer(part).set_weights(autoencoder.get_layer(part).get_weights())
    return model


# --------------------------------------------------------------------------------------------
# loss


def sobel_gradient_loss(predicted, target):
    """The original ``grad_loss``: per image, mean((|Gx p| - |Gx t|)^2) + mean((|Gy p| - |Gy t|)^2).

    Gx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], Gy = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    cross-correlation without padding (F.conv2d's default), so an H x W image gives (H-2) x (W-2)
    maps. Inputs (N, H, W, 1); returns (N,).
    """
    kx = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], np.float32)
    ky = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], np.float32)
    kernel = tf.constant(np.stack([kx, ky], axis=-1)[:, :, None, :])  # (3, 3, 1, 2)
    gp = tf.nn.conv2d(tf.cast(predicted, tf.float32), kernel, strides=1, padding="VALID")
    gt = tf.nn.conv2d(tf.cast(target, tf.float32), kernel, strides=1, padding="VALID")
    squared = tf.square(tf.abs(gp) - tf.abs(gt))
    return tf.reduce_sum(tf.reduce_mean(squared, axis=[1, 2]), axis=-1)


def keras_vgg_cache_path() -> Path:
    """Where keras.applications keeps the notop VGG16 weights: $KERAS_HOME (or ~/.keras)/models/."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / VGG_NOTOP_FILE


def _resolve_vgg_weights(mode: str, weights_file: str | None):
    if mode == "random":
        return None
    path = Path(weights_file).expanduser() if weights_file else keras_vgg_cache_path()
    if not path.is_file():
        where = f"model.options.vgg_weights = {str(path)!r}" if weights_file else f"the Keras cache, {path}"
        raise FileNotFoundError(
            "DILRAN's perceptual loss needs ImageNet VGG16 weights and none were found: looked in "
            f"{where}. Nothing can be downloaded here: copy {VGG_NOTOP_FILE} there (or point "
            "model.options.vgg_weights at it), or train without the term with "
            "model.options.perceptual = 'off' (a deviation from the original, recorded in the run's config)."
        )
    return str(path)


def build_vgg_features(perceptual: str = "imagenet", weights_file: str | None = None) -> keras.Model:
    """Frozen VGG16 up to block3: (N, H, W, 3) -> [block1_conv2, block2_conv2, block3_conv3] pre-ReLU.

    ``perceptual="imagenet"`` loads ImageNet weights from ``weights_file`` or the Keras cache
    (FileNotFoundError naming where it looked when there are none); ``"random"`` keeps
    keras.applications' random initialisation (``weights=None``).
    """
    if perceptual not in ("imagenet", "random"):
        raise ValueError(f"perceptual must be 'imagenet' or 'random' to build a VGG, got {perceptual!r}")
    source = keras.applications.VGG16(
        include_top=False, weights=_resolve_vgg_weights(perceptual, weights_file), input_shape=(None, None, 3)
    )
    image = keras.Input(shape=(None, None, 3), name="vgg_input")
    x, taps = image, []
    for block, convs, filters in _VGG_BLOCKS:
        if taps:
            x = keras.layers.MaxPooling2D(2, name=f"{block}_pool_in")(x)
        for index in range(1, convs + 1):
            conv = keras.layers.Conv2D(filters, 3, padding="same", name=f"{block}_conv{index}")
            pre = conv(x)
            conv.set_weights(source.get_layer(f"{block}_conv{index}").get_weights())
            x = keras.layers.ReLU(name=f"{block}_relu{index}")(pre)
        taps.append(pre)
    model = keras.Model(image, taps, name="vgg16_features")
    model.trainable = False
    return model


@dataclass(frozen=True)
class DilranLossOptions:
    """The loss settings (model.options of a DILRAN config; see :func:`split_options`)."""

    lambda1: float = 0.2
    lambda2: float = 0.2
    perceptual: str = "imagenet"
    vgg_weights: str = ""
    vgg_input: str = "raw"

    def __post_init__(self):
        if self.perceptual not in PERCEPTUAL_MODES:
            raise ValueError(f"perceptual must be one of {PERCEPTUAL_MODES}, got {self.perceptual!r}")
        if self.vgg_input not in VGG_INPUTS:
            raise ValueError(f"vgg_input must be one of {VGG_INPUTS}, got {self.vgg_input!r}")
        if self.lambda1 < 0 or self.lambda2 < 0:
            raise ValueError(f"lambda1 and lambda2 must be >= 0, got {self.lambda1}, {self.lambda2}")


#: model.options keys of a DILRAN config: the architecture's, and the loss's.
_MODEL_KEYS = {"strategy": str, "branch_sharing": str, "clamp": bool}
_LOSS_KEYS = {"lambda1": float, "lambda2": float, "perceptual": str, "vgg_weights": str, "vgg_input": str}


def split_options(options: dict) -> tuple[dict, DilranLossOptions]:
    """model.options -> (build_dilran keyword arguments, DilranLossOptions); unknown keys are errors."""
    unknown = set(options) - set(_MODEL_KEYS) - set(_LOSS_KEYS)
    if unknown:
        known = ", ".join(sorted({*_MODEL_KEYS, *_LOSS_KEYS}))
        raise ValueError(f"dilran: unknown model.options {sorted(unknown)} (known: {known})")
    model_kwargs, loss_kwargs = {}, {}
    for key, value in options.items():
        kind = _MODEL_KEYS.get(key) or _LOSS_KEYS[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"dilran: model.options.{key} must be a {kind.__name__}, got {value!r}")
        (model_kwargs if key in _MODEL_KEYS else loss_kwargs)[key] = value
    return model_kwargs, DilranLossOptions(**loss_kwargs)


class DilranObjective:
    """DILRAN's training objective for ``training.fit_arrays``: reconstruct the MRI and the PET.

    ``objective(model, mri, pet)`` stacks both images of every pair into one batch, runs the
    auto-encoder (a model from :func:`build_dilran_autoencoder`, or the encoder and decoder of
    a :func:`build_dilran` fusion model) in training mode and returns per-image tensors
    ``total = mse + lambda1 * gradient + lambda2 * perceptual`` and the unweighted parts.

    ``options=None`` takes the options a registry-built model carries (``model.dilran_loss``,
    from its config's model.options), else the defaults. The VGG is built the first time it is
    needed, outside any tf.function (``tf.init_scope``).
    """

    def __init__(self, options: DilranLossOptions | None = None):
        self.options = options
        self._vgg = None
        self._vgg_key = None

    def resolve(self, model=None) -> DilranLossOptions:
        if self.options is not None:
            return self.options
        return getattr(model, "dilran_loss", None) or DilranLossOptions()

    def vgg(self, options: DilranLossOptions) -> keras.Model:
        key = (options.perceptual, options.vgg_weights)
        if self._vgg is None or self._vgg_key != key:
            with tf.init_scope():
                self._vgg = build_vgg_features(options.perceptual, options.vgg_weights or None)
            self._vgg_key = key
        return self._vgg

    def perceptual_loss(self, predicted, target, options: DilranLossOptions):
        """Sum over the three taps of the per-image mean squared feature difference, (N,)."""
        vgg = self.vgg(options)
        grey = tf.concat([predicted, target], axis=0)
        rgb = tf.repeat(grey, 3, axis=-1)
        if options.vgg_input == "caffe":
            rgb = rgb * 255.0 - tf.constant(_CAFFE_MEAN_BGR, rgb.dtype)
        features = vgg(rgb, training=False)
        n = tf.shape(predicted)[0]
        return tf.add_n([tf.reduce_mean(tf.square(f[:n] - f[n:]), axis=[1, 2, 3]) for f in features])

    def __call__(self, model, mri, pet):
        options = self.resolve(model)
        images = tf.concat([mri, pet], axis=0)
        reconstruction = _reconstruct(model, images)
        mse = tf.reduce_mean(tf.square(reconstruction - images), axis=[1, 2, 3])
        gradient = sobel_gradient_loss(reconstruction, images)
        parts = {"mse": mse, "gradient": gradient}
        total = mse + options.lambda1 * gradient
        if options.perceptual != "off":
            perceptual = self.perceptual_loss(reconstruction, images, options)
            parts["perceptual"] = perceptual
            total = total + options.lambda2 * perceptual
        return {"total": total, **parts}


def _reconstruct(model, images):
    if len(model.inputs) == 1:
        return model(images, training=True)
    encoder, decoder = model.get_layer("dilran_encoder"), model.get_layer("dilran_decoder")
    return decoder(encoder(images, training=True), training=True)
