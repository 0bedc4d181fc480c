"""MdAFuse (Wen, Khan, Chen, Peng, Fang, Chen, Li, IEEE TIP 33, 2024) as a Keras functional model.

Module for module as the authors' PyTorch code builds it (22385wjy/MdAFuse, model/myNet.py and
train/TrainProcess.ipynb; the facts are collected in shared/reference/MDAFUSE.md):

- "CBR" = Conv2D (SAME) -> BatchNorm (PyTorch defaults: momentum 0.1, i.e. Keras 0.9, eps 1e-5)
  -> ReLU. Convolutions have a bias unless noted; weights and biases start from PyTorch's default
  U(-1/sqrt(fan_in), +1/sqrt(fan_in)).
- Coarse feature module (CFM) -> CF (16 ch): branch A CBR 7x7 1->32; branch B CBR 7x7
  1->2->4->8->16->32; concat (64) -> CBR 5x5 64->32 -> 32->16.
- Fine feature module (FFM) -> FF (16 ch): branch A CBR 3x3 1->32->64->128; branch B (a small U):
  x1 = CBR 1->32, maxpool 2, CBR 32->64 ("c2"), CBR 64->128, align-corners bilinear upsample to
  x1's size, CBR 128->64; skip: the same c2 (shared weights) on x1; concat (skip, up) (128) ->
  CBR 128->128; concat A, B (256) -> CBR 5x5 256->128->64->32->16.
- Multi-scale feature module (MFM) -> MF (3 ch): s1 = CBR 3x3 stride 2 VALID 1->16; s2 = depthwise
  3x3 stride 2 (pad 1, no bias) BN ReLU -> 1x1 16->32 (no bias) BN ReLU; global branch on s2:
  1x1 32->64 CBR (no bias) -> depthwise 3x3 BN ReLU -> 1x1 64->32 (no bias) BN; pyramid pooling:
  adaptive average pool to half size -> 1x1 32->16 CBR (no bias) -> upsample back, the same 1x1
  CBR on the unpooled map; concat (32) -> 1x1 32->32 CBR (no bias); plus the short skip
  (depthwise 3x3 CBR on s2); -> CBR 3x3 32->32 -> upsample to H/2 -> seg head -> upsample to H =
  T1. seg head (one set of weights, used three times) = depthwise-separable 32->32 (no biases) ->
  Dropout 0.1 -> 1x1 32->3 (bias). T2 = head2(CBR 3x3 1->32 (no bias) on the input), head2 =
  CBR 3x3 32->16 (no bias) -> Dropout 0.1 -> 1x1 16->3. T3 = seg head(up(CBR 3x3 16->32 on s1)),
  T4 = seg head(up(CBR 3x3 32->32 on s2)) (no biases); MF = T1 + T2 + T3 + T4.
- The three modules are built once each (sub-models ``coarse_features``, ``fine_features``,
  ``multiscale_features``) and applied to both inputs: the weights are shared across modalities.
- Fusion with one shared affine map A(x) = alpha * x + beta (alpha = 1, beta = 0 at the start):
  LF = A(CF1) + A(CF2), HF = A(FF1) + A(FF2), G = max(HF, LF); P = A(Conv 5x5 16->3 (G));
  S = A((MF1 + MF2) / 2); output = Conv 3x3 3->1 (tanh((P + S) / 2)) (linear: not bounded).

Modules of the released state dict that never reach the output (the ``two_*`` extractors,
``l_o``, ``h_o``, ``hf2con``, ``reconse``, ``xxx``) are left out: 1,635,641 trainable parameters
(affine per width; 1,635,167 per channel), see :data:`TRAINABLE_PARAMETERS`.

Fidelity options (FIDELITY.md, MdAFuse), all through ``ModelConfig``:

- ``options.affine``: ``"width"`` (as coded: 256 coefficients broadcast over the image WIDTH, so
  the width must be 256) or ``"channel"`` (one 16-coefficient map shared by CF and FF of both
  images, one 3-coefficient map shared by P and S; any size).
- ``options.fusion_order``: ``"code"`` (G = max(A(FF1) + A(FF2), A(CF1) + A(CF2))) or ``"prose"``
  (the paper's text: G = max(A(CF1) + A(FF1), A(CF2) + A(FF2))).
- ``bn_statistics``: ``"moving"`` (moving averages at inference: the authors' test.py calls
  ``dtn.eval()`` before fusing) or ``"batch"`` (the current batch's statistics always, as in
  training). Training is the same in both.

Sizes: height and width must be multiples of 4 and at least 8 (the pyramid: s1 = H/2 - 1,
s2 = H/4, pooled to H/8), and the width must be 256 with ``affine="width"``. Other sizes raise a
ValueError naming the size when the size is known (eager calls, fixed input shapes) and a
tf.errors.InvalidArgumentError with the same message inside a graph traced for unknown sizes.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from .layers import PACKAGE, BN_MODES, AlignCornersResize, BatchStatNormalization, ScaledAdaptiveAveragePooling2D

__all__ = [
    "AFFINE_MODES",
    "FUSION_ORDERS",
    "AUTHORS_WIDTH",
    "TRAINABLE_PARAMETERS",
    "AffineMapping",
    "MdAFuseInputCheck",
    "build_mdafuse",
    "check_mdafuse_size",
]

#: "width": the released code's AffineTransform(256), parameters of shape (1, 1, 256) that broadcast
#: over the last axis of an NCHW tensor, i.e. the image width. "channel": per feature channel.
AFFINE_MODES = ("width", "channel")
#: "code": max over feature types of cross-image sums (doFuse in myNet.py). "prose": per image
#: coarse + fine, then the maximum across the two images (the paper's description).
FUSION_ORDERS = ("code", "prose")
#: The width the per-width affine map was written for (and the only size the original runs at).
AUTHORS_WIDTH = 256
#: Height and width must be multiples of this (and at least MIN_SIZE).
SIZE_MULTIPLE = 4
MIN_SIZE = 8

#: Trainable parameters of the modules that take part in the forward pass (tests/test_mdafuse.py
#: derives them by hand): CFM 99,412 + FFM 1,496,720 + MFM 37,766 + fusion convs 1,231 + affine.
TRAINABLE_PARAMETERS = {"width": 1_635_641, "channel": 1_635_167}


# ----------------------------------------------------------------------------------------------
# Custom layers used only by MdAFuse
# ----------------------------------------------------------------------------------------------


def check_mdafuse_size(height, width, affine: str = "width") -> None:
    """Raise ValueError naming the size when MdAFuse cannot take an ``height`` x ``width`` image."""
    problems = []
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height < MIN_SIZE or width < MIN_SIZE:
        problems.append(
            f"height and width must be multiples of {SIZE_MULTIPLE} and at least {MIN_SIZE} "
            "(the multi-scale pyramid halves the image twice and pools the quarter-size map by 2)"
        )
    if affine == "width" and width != AUTHORS_WIDTH:
        problems.append(
            f"affine='width' (the authors' per-width coefficients) needs width {AUTHORS_WIDTH}; "
            "set model.options.affine = 'channel' for other sizes"
        )
    if problems:
        raise ValueError(f"MdAFuse cannot fuse {height}x{width} images: " + "; ".join(problems))


@keras.saving.register_keras_serializable(package=PACKAGE)
class MdAFuseInputCheck(keras.layers.Layer):
    """Identity on ``[mri, pet]`` that refuses sizes MdAFuse cannot take, with a clear message.

    Known sizes (eager calls, fixed shapes) raise ValueError from :func:`check_mdafuse_size`.
    Unknown sizes (a graph traced for any H x W) get a run-time assertion carrying the same
    explanation, which fires before any other op of the model runs.
    """

    def __init__(self, affine: str = "width", **kwargs):
        if affine not in AFFINE_MODES:
            raise ValueError(f"affine must be one of {AFFINE_MODES}, got {affine!r}")
        super().__init__(**kwargs)
        self.affine = affine

    def _static_check(self, mri_shape, pet_shape) -> bool:
        """True when the sizes were known (and checked) at trace time."""
        dims = [mri_shape[1], mri_shape[2], pet_shape[1], pet_shape[2]]
        if any(d is None for d in dims):
            return False
        if tuple(dims[:2]) != tuple(dims[2:]):
            raise ValueError(f"MdAFuse needs MRI and PET of one size, got {dims[0]}x{dims[1]} and {dims[2]}x{dims[3]}")
        check_mdafuse_size(dims[0], dims[1], self.affine)
        return True

    def call(self, inputs):
        mri, pet = inputs
        if self._static_check(tuple(mri.shape), tuple(pet.shape)):
            return [mri, pet]
        shape, other = tf.shape(mri), tf.shape(pet)
        height, width = shape[1], shape[2]
        ok = tf.reduce_all(tf.equal(shape[1:3], other[1:3]))
        ok = tf.logical_and(ok, tf.logical_and(tf.equal(height % SIZE_MULTIPLE, 0), tf.equal(width % SIZE_MULTIPLE, 0)))
        ok = tf.logical_and(ok, tf.logical_and(height >= MIN_SIZE, width >= MIN_SIZE))
        message = (
            f"MdAFuse cannot fuse these images: MRI and PET must have one size, height and width multiples of "
            f"{SIZE_MULTIPLE} and at least {MIN_SIZE}"
        )
        if self.affine == "width":
            ok = tf.logical_and(ok, tf.equal(width, AUTHORS_WIDTH))
            message += f", and width {AUTHORS_WIDTH} with affine='width' (use model.options.affine = 'channel')"
        assertion = tf.debugging.Assert(ok, [message + "; got MRI (H, W) and PET (H, W) =", shape[1:3], other[1:3]])
        with tf.control_dependencies([assertion]):
            return [tf.identity(mri), tf.identity(pet)]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[0]), tuple(input_shape[1])]

    def get_config(self):
        return {**super().get_config(), "affine": self.affine}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AffineMapping(keras.layers.Layer):
    """MdAFuse's "adaptive linear mapping" A(x) = alpha * x + beta (alpha = 1, beta = 0 at start).

    ``axis="width"``: ``size`` coefficients broadcast over the width axis of NHWC inputs (the
    released code's (1, 1, 256) parameters on NCHW tensors), whatever the channel count, so one
    instance serves every feature map. ``axis="channel"``: ``size`` coefficients per channel.
    """

    def __init__(self, axis: str = "width", size: int = AUTHORS_WIDTH, **kwargs):
        if axis not in AFFINE_MODES:
            raise ValueError(f"axis must be one of {AFFINE_MODES}, got {axis!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        super().__init__(**kwargs)
        self.axis = axis
        self.size = size

    def build(self, input_shape):
        self.alpha = self.add_weight(name="alpha", shape=(self.size,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(self.size,), initializer="zeros")

    def call(self, inputs):
        index = 2 if self.axis == "width" else 3
        known = inputs.shape[index]
        if known is not None and known != self.size:
            raise ValueError(f"AffineMapping(axis={self.axis!r}) has {self.size} coefficients, got {self.axis} {known}")
        broadcast = (1, 1, self.size, 1) if self.axis == "width" else (1, 1, 1, self.size)
        alpha = ops.reshape(ops.cast(self.alpha, inputs.dtype), broadcast)
        beta = ops.reshape(ops.cast(self.beta, inputs.dtype), broadcast)
        return inputs * alpha + beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "size": self.size}


# ----------------------------------------------------------------------------------------------
# Building blocks (PyTorch defaults for initialisation and BatchNorm)
# ----------------------------------------------------------------------------------------------


def _uniform(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's default Conv2d init (kaiming_uniform with a = sqrt(5) and its bias rule): U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


class _Block:
    """Conv (or depthwise conv) -> BN -> ReLU, as a reusable set of layers (call it twice to share)."""

    def __init__(self, name, filters, kernel, cin, bn, *, bias=True, strides=1, padding="same",
                 depthwise=False, relu=True):
        layers = []
        if padding == "torch1":  # PyTorch padding=1 around a strided 3x3: explicit, then VALID
            layers.append(keras.layers.ZeroPadding2D(1, name=f"{name}_pad"))
            padding = "valid"
        if depthwise:
            layers.append(keras.layers.DepthwiseConv2D(
                kernel, strides=strides, padding=padding, use_bias=False,
                depthwise_initializer=_uniform(kernel * kernel), name=f"{name}_dw"))
        else:
            fan_in = cin * kernel * kernel
            layers.append(keras.layers.Conv2D(
                filters, kernel, strides=strides, padding=padding, use_bias=bias,
                kernel_initializer=_uniform(fan_in), bias_initializer=_uniform(fan_in), name=f"{name}_conv"))
        layers.append(BatchStatNormalization(statistics=bn, momentum=0.9, epsilon=1e-5, name=f"{name}_bn"))
        if relu:
            layers.append(keras.layers.ReLU(name=f"{name}_relu"))
        self.layers = layers

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _plain_conv(name, filters, kernel, cin):
    """Conv2D with bias, no BN or activation (the heads' last 1x1 and the fusion convolutions)."""
    fan_in = cin * kernel * kernel
    return keras.layers.Conv2D(filters, kernel, padding="same", use_bias=True, kernel_initializer=_uniform(fan_in),
                               bias_initializer=_uniform(fan_in), name=name)


def _chain(x, name, blocks, bn):
    """blocks: [(filters, kernel, cin)] applied in order."""
    for i, (filters, kernel, cin) in enumerate(blocks, start=1):
        x = _Block(f"{name}{i}", filters, kernel, cin, bn)(x)
    return x


def _image_input(name):
    return keras.Input(shape=(None, None, 1), name=name)


def build_coarse_module(bn_statistics: str = "moving") -> keras.Model:
    """CFM: 7x7 kernels, few channels -> CF (16 channels)."""
    image = _image_input("cfm_image")
    a = _Block("cfm_a", 32, 7, 1, bn_statistics)(image)
    b = _chain(image, "cfm_b", [(2, 7, 1), (4, 7, 2), (8, 7, 4), (16, 7, 8), (32, 7, 16)], bn_statistics)
    x = keras.layers.Concatenate(name="cfm_concat")([a, b])
    x = _chain(x, "cfm_recon", [(32, 5, 64), (16, 5, 32)], bn_statistics)
    return keras.Model(image, x, name="coarse_features")


def build_fine_module(bn_statistics: str = "moving") -> keras.Model:
    """FFM: 3x3 kernels, many channels, a small U-shaped branch -> FF (16 channels)."""
    image = _image_input("ffm_image")
    a = _chain(image, "ffm_a", [(32, 3, 1), (64, 3, 32), (128, 3, 64)], bn_statistics)
    x1 = _Block("ffm_b_c1", 32, 3, 1, bn_statistics)(image)
    c2 = _Block("ffm_b_c2", 64, 3, 32, bn_statistics)  # used twice: pooled path and skip path
    down = c2(keras.layers.MaxPooling2D(2, name="ffm_b_pool")(x1))
    down = _Block("ffm_b_c3", 128, 3, 64, bn_statistics)(down)
    up = AlignCornersResize(name="ffm_b_up")([down, x1])
    up = _Block("ffm_b_c6", 64, 3, 128, bn_statistics)(up)
    skip = c2(x1)
    b = keras.layers.Concatenate(name="ffm_b_concat")([skip, up])
    b = _Block("ffm_b_c4", 128, 3, 128, bn_statistics)(b)
    x = keras.layers.Concatenate(name="ffm_concat")([a, b])
    x = _chain(x, "ffm_recon", [(128, 5, 256), (64, 5, 128), (32, 5, 64), (16, 5, 32)], bn_statistics)
    return keras.Model(image, x, name="fine_features")


def build_multiscale_module(bn_statistics: str = "moving") -> keras.Model:
    """MFM: a pyramid with depthwise-separable convolutions and pyramid pooling -> MF (3 channels)."""
    bn = bn_statistics
    image = _image_input("mfm_image")
    s1 = _Block("mfm_s1", 16, 3, 1, bn, strides=2, padding="valid")(image)
    s2 = _Block("mfm_s2_dw", 16, 3, 16, bn, strides=2, padding="torch1", depthwise=True)(s1)
    s2 = _Block("mfm_s2_pw", 32, 1, 16, bn, bias=False)(s2)

    # global branch (SeFeature): expand, depthwise, project (BN, no ReLU), then pyramid pooling
    g = _Block("mfm_g_expand", 64, 1, 32, bn, bias=False)(s2)
    g = _Block("mfm_g_dw", 64, 3, 64, bn, depthwise=True)(g)
    g = _Block("mfm_g_project", 32, 1, 64, bn, bias=False, relu=False)(g)
    reduce = _Block("mfm_pp_reduce", 16, 1, 32, bn, bias=False)  # on the pooled and the unpooled map
    pooled = reduce(ScaledAdaptiveAveragePooling2D(2, name="mfm_pp_pool")(g))
    pooled = AlignCornersResize(name="mfm_pp_up")([pooled, g])
    # The original also resizes reduce(g) to its own size: an identity with aligned corners, left out.
    g = keras.layers.Concatenate(name="mfm_pp_concat")([reduce(g), pooled])
    g = _Block("mfm_pp_out", 32, 1, 32, bn, bias=False)(g)

    other = _Block("mfm_other", 32, 3, 32, bn, depthwise=True)(s2)
    merged = keras.layers.Add(name="mfm_skip_add")([g, other])
    merged = _Block("mfm_merge", 32, 3, 32, bn)(merged)

    # the segmentation head, one set of weights used three times
    seg_dw = _Block("mfm_seg_dw", 32, 3, 32, bn, depthwise=True)
    seg_pw = _Block("mfm_seg_pw", 32, 1, 32, bn, bias=False)
    seg_drop = keras.layers.Dropout(0.1, name="mfm_seg_dropout")
    seg_out = _plain_conv("mfm_seg_out", 3, 1, 32)

    def seg_head(x):
        return seg_out(seg_drop(seg_pw(seg_dw(x))))

    t1 = AlignCornersResize(2, name="mfm_up_half")([merged, image])
    t1 = AlignCornersResize(name="mfm_t1_up")([seg_head(t1), image])

    t2 = _Block("mfm_x0", 32, 3, 1, bn, bias=False)(image)
    t2 = _Block("mfm_head2", 16, 3, 32, bn, bias=False)(t2)
    t2 = keras.layers.Dropout(0.1, name="mfm_head2_dropout")(t2)
    t2 = _plain_conv("mfm_head2_out", 3, 1, 16)(t2)

    t3 = _Block("mfm_x1", 32, 3, 16, bn, bias=False)(s1)
    t3 = seg_head(AlignCornersResize(name="mfm_t3_up")([t3, image]))
    t4 = _Block("mfm_x2", 32, 3, 32, bn, bias=False)(s2)
    t4 = seg_head(AlignCornersResize(name="mfm_t4_up")([t4, image]))

    out = keras.layers.Add(name="mfm_sum")([t1, t2, t3, t4])
    return keras.Model(image, out, name="multiscale_features")


def build_mdafuse(
    affine: str = "width",
    fusion_order: str = "code",
    bn_statistics: str = "moving",
    name: str = "mdafuse",
) -> keras.Model:
    """The MdAFuse network: inputs ``mri`` and ``pet`` (H, W, 1) in [0, 1], output (H, W, 1).

    See the module docstring for the options and the sizes accepted.
    """
    if affine not in AFFINE_MODES:
        raise ValueError(f"affine must be one of {AFFINE_MODES}, got {affine!r}")
    if fusion_order not in FUSION_ORDERS:
        raise ValueError(f"fusion_order must be one of {FUSION_ORDERS}, got {fusion_order!r}")
    if bn_statistics not in BN_MODES:
        raise ValueError(f"bn_statistics must be one of {BN_MODES}, got {bn_statistics!r}")
    mri_in = keras.Input(shape=(None, None, 1), name="mri")
    pet_in = keras.Input(shape=(None, None, 1), name="pet")
    mri, pet = MdAFuseInputCheck(affine=affine, name="size_check")([mri_in, pet_in])

    coarse = build_coarse_module(bn_statistics)
    fine = build_fine_module(bn_statistics)
    multiscale = build_multiscale_module(bn_statistics)
    cf1, cf2 = coarse(mri), coarse(pet)
    ff1, ff2 = fine(mri), fine(pet)
    mf1, mf2 = multiscale(mri), multiscale(pet)

    if affine == "width":
        features_map = head_map = AffineMapping("width", AUTHORS_WIDTH, name="affine")
    else:
        features_map = AffineMapping("channel", 16, name="affine_features")
        head_map = AffineMapping("channel", 3, name="affine_heads")
    cf1, cf2, ff1, ff2 = (features_map(t) for t in (cf1, cf2, ff1, ff2))
    if fusion_order == "code":
        low = keras.layers.Add(name="fuse_lf")([cf1, cf2])
        high = keras.layers.Add(name="fuse_hf")([ff1, ff2])
        fused = keras.layers.Maximum(name="fuse_max")([high, low])
    else:
        image1 = keras.layers.Add(name="fuse_image1")([cf1, ff1])
        image2 = keras.layers.Add(name="fuse_image2")([cf2, ff2])
        fused = keras.layers.Maximum(name="fuse_max")([image1, image2])
    p = head_map(_plain_conv("fuse_recon", 3, 5, 16)(fused))
    s = head_map(keras.layers.Average(name="fuse_mf_mean")([mf1, mf2]))
    out = keras.layers.Average(name="fuse_heads_mean")([p, s])
    out = keras.layers.Activation("tanh", name="fuse_tanh")(out)
    out = _plain_conv("fused", 1, 3, 3)(out)
    return keras.Model(inputs=[mri_in, pet_in], outputs=out, name=name)


#: model.options MdAFuse takes, with their defaults (the released code's behaviour).
OPTIONS = {"affine": "width", "fusion_order": "code"}


def build_from_config(model_config) -> keras.Model:
    """Build MdAFuse from a ModelConfig: ``bn_statistics`` plus ``options`` affine / fusion_order.

    FunFuseAn's own fields (wiring, hf_rule, hf_eps) mean nothing here: anything but their
    defaults is refused rather than silently ignored.
    """
    import dataclasses

    unknown = set(model_config.options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"mdafuse: unknown model.options {sorted(unknown)} (known: {', '.join(OPTIONS)})")
    defaults = {f.name: f.default for f in dataclasses.fields(model_config)}
    for field in ("wiring", "hf_rule", "hf_eps"):
        if getattr(model_config, field) != defaults[field]:
            raise ValueError(f"mdafuse has no model.{field} (a FunFuseAn option); leave it out of the config")
    options = {**OPTIONS, **model_config.options}
    return build_mdafuse(affine=options["affine"], fusion_order=options["fusion_order"],
                         bn_statistics=model_config.bn_statistics or "moving")
