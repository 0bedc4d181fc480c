"""Spatial-frequency decision-map fusion on SE auto-encoder features (SESF-Fuse; Ma et al. 2021,
as followed by Raj, Singh, Choudhury, WSEAS 2024).

Built from the description of the authors' PyTorch code (Keep-Passion/SESF-Fuse, nets/sesf_net.py)
in shared/reference/OTHER_SEEDS.md.

The auto-encoder (:func:`build_sesf_autoencoder`), every conv block conv 3x3 -> ReLU -> BN:

- encoder: block 1->16, then three 16-channel blocks densely concatenated (16 -> 32 -> 48 -> 64
  channels); a squeeze-and-excitation layer (:class:`SqueezeExcitation`, reduction 8) after
  each of the four blocks, as the code (``se_f, se_1, se_2, se_3``);
- decoder: blocks 64->64, 64->32, 32->16, 16->1 (the output block too ends in ReLU -> BN).

Inputs are standardised with the statistics the original used (COCO grey, mean 0.45005, std
0.26465: :func:`sesf_standardise`) before the network, for training and fusion alike.

The loss (:class:`SesfObjective`): ``||in - out||_2 + 1000 * (1 - SSIM)`` per image, SSIM with
a 5x5 Gaussian window (sigma 1.5, zero-padded "SAME" map) from funfusean_tf.ssim.

The fusion (:class:`SesfMethod`, not differentiable: a method object like fusion.NetworkMethod):

1. deep features of both images (the encoder's 64 channels);
2. activity: per channel ``(f - f shifted right)^2 + (f - f shifted down)^2`` (zero beyond the
   border, as the original's zero-padded shift convolutions), summed over an 11 x 11 window
   (r = 5, zero padding), summed over channels (:func:`spatial_frequency_activity`);
3. DM = 1 where activity1 > activity2 (strict);
4. consistency verification (:func:`consistency_verification`), in the code's order: binary
   opening with a disk of radius 5; small 1-islands removed (holes of the 0 phase with area
   < 1% of the image filled); binary closing with the disk; small 0-islands removed;
5. guided filter (r = 4, eps = 0.1; funfusean_tf.baselines.guided_filter) of DM with the
   initially fused image ``DM * I1 + (1 - DM) * I2`` as guide, on the 0-255 scale the original
   worked on (``guide_scale``);
6. F = W * I1 + (1 - W) * I2 with the filtered map W, clipped to [0, 1] (the original clips to
   [0, 255]).

Every deviation from the original is a row of FIDELITY.md, "DILRAN and the decision-map method".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ..ssim import SSIMSettings, ssim
from .layers import BN_MODES, PACKAGE, BatchStatNormalization

__all__ = [
    "SESF_MEAN",
    "SESF_STD",
    "SESF_SSIM",
    "PIXEL_NORMS",
    "BATCH_REDUCTIONS",
    "SqueezeExcitation",
    "build_sesf_encoder",
    "build_sesf_decoder",
    "build_sesf_autoencoder",
    "sesf_standardise",
    "SesfLossOptions",
    "SesfObjective",
    "SesfFusionOptions",
    "SesfMethod",
    "spatial_frequency_activity",
    "consistency_verification",
    "decision_map_fusion",
    "split_options",
]

#: The original's transforms.Normalize([0.4500517361627943], [0.26465333914691797]) (COCO grey).
SESF_MEAN = 0.4500517361627943
SESF_STD = 0.26465333914691797

#: The loss's SSIM: 5x5 Gaussian window, sigma 1.5, zero padding (F.conv2d padding = 2).
SESF_SSIM = SSIMSettings(window_size=5, sigma=1.5, padding="SAME")

#: The pixel term: "l2" = ||in - out||_2 (the paper, and one version of lp_lssim_loss.py);
#: "l1" = sum |in - out| (the other version).
PIXEL_NORMS = ("l2", "l1")

#: "batch": the pixel norm is taken over the whole batch as one tensor while the SSIM term is
#: the batch mean, as LpLssimLoss (both versions); "image": per-image norms, averaged.
BATCH_REDUCTIONS = ("batch", "image")


def _torch_uniform(fan_in: int):
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform"), 1.0 / math.sqrt(
        fan_in
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class SqueezeExcitation(keras.layers.Layer):
    """Channel squeeze-and-excitation (the original's CSELayer): x * sigmoid(W2 relu(W1 mean(x))).

    Global average over H and W, a bias-free dense layer C -> C // reduction, ReLU, a bias-free
    dense layer back to C, sigmoid, channel-wise scaling. Weights initialised as torch.nn.Linear
    (uniform in +-1/sqrt(fan_in)).
    """

    def __init__(self, reduction: int = 8, **kwargs):
        if int(reduction) < 1:
            raise ValueError(f"reduction must be a positive integer, got {reduction}")
        super().__init__(**kwargs)
        self.reduction = int(reduction)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = channels // self.reduction
        if hidden < 1:
            raise ValueError(f"{channels} channels with reduction {self.reduction} leave no hidden unit")
        init = keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")
        self.squeeze_kernel = self.add_weight(shape=(channels, hidden), initializer=init, name="squeeze_kernel")
        self.excite_kernel = self.add_weight(shape=(hidden, channels), initializer=init, name="excite_kernel")

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2))
        hidden = ops.relu(ops.matmul(pooled, self.squeeze_kernel))
        scale = ops.sigmoid(ops.matmul(hidden, self.excite_kernel))
        return inputs * scale[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


def _block(x, filters: int, in_channels: int, name: str, bn_statistics: str):
    """conv 3x3 (padding 1, bias; torch init) -> ReLU -> BN (torch momentum 0.1, eps 1e-5)."""
    init, bound = _torch_uniform(in_channels * 9)
    x = keras.layers.Conv2D(
        filters, 3, padding="same", kernel_initializer=init,
        bias_initializer=keras.initializers.RandomUniform(-bound, bound), name=f"{name}_conv",
    )(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return BatchStatNormalization(statistics=bn_statistics, momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def build_sesf_encoder(bn_statistics: str = "moving", reduction: int = 8, input_shape=(None, None, 1),
                       name: str = "sesf_encoder") -> keras.Model:
    """Standardised image (H, W, 1) -> 64 dense SE features (H, W, 64)."""
    if bn_statistics not in BN_MODES:
        raise ValueError(f"bn_statistics must be one of {BN_MODES}, got {bn_statistics!r}")
    image = keras.Input(shape=input_shape, name="image")
    x = _block(image, 16, 1, "features", bn_statistics)
    x = SqueezeExcitation(reduction, name="features_se")(x)
    for index in range(1, 4):
        block = _block(x, 16, 16 * index, f"encode{index}", bn_statistics)
        block = SqueezeExcitation(reduction, name=f"encode{index}_se")(block)
        x = keras.layers.Concatenate(axis=-1, name=f"dense{index}")([x, block])
    return keras.Model(image, x, name=name)


def build_sesf_decoder(bn_statistics: str = "moving", name: str = "sesf_decoder") -> keras.Model:
    features = keras.Input(shape=(None, None, 64), name="features")
    x, in_channels = features, 64
    for index, filters in enumerate((64, 32, 16, 1), start=1):
        x = _block(x, filters, in_channels, f"decode{index}", bn_statistics)
        in_channels = filters
    return keras.Model(features, x, name=name)


def build_sesf_autoencoder(bn_statistics: str = "moving", reduction: int = 8, input_shape=(None, None, 1),
                           name: str = "sesf") -> keras.Model:
    """Standardised image -> reconstruction; holds the sub-models ``sesf_encoder`` and ``sesf_decoder``.

    ``bn_statistics="moving"`` is the original (``model.eval()`` before fusing); note that
    ModelConfig's default is FunFuseAn's "batch", so the sesf experiment configs set it.
    """
    encoder = build_sesf_encoder(bn_statistics, reduction, input_shape)
    decoder = build_sesf_decoder(bn_statistics)
    image = keras.Input(shape=input_shape, name="image")
    return keras.Model(image, decoder(encoder(image)), name=name)


def sesf_standardise(images):
    """(x - mean) / std with the original's constants; works on numpy arrays and tensors."""
    return (images - SESF_MEAN) / SESF_STD


# --------------------------------------------------------------------------------------------
# loss


@dataclass(frozen=True)
class SesfLossOptions:
    ssim_weight: float = 1000.0
    pixel_norm: str = "l2"
    batch_reduction: str = "batch"

    def __post_init__(self):
        if self.pixel_norm not in PIXEL_NORMS:
            raise ValueError(f"pixel_norm must be one of {PIXEL_NORMS}, got {self.pixel_norm!r}")
        if self.batch_reduction not in BATCH_REDUCTIONS:
            raise ValueError(f"batch_reduction must be one of {BATCH_REDUCTIONS}, got {self.batch_reduction!r}")
        if self.ssim_weight < 0:
            raise ValueError(f"ssim_weight must be >= 0, got {self.ssim_weight}")


class SesfObjective:
    """The auto-encoder's objective for ``training.fit_arrays``: reconstruct the MRI and the PET.

    Both images of every pair are standardised and stacked into one batch of B images;
    ``lp = ||in - out||_2`` ("l2") or ``sum |in - out|`` ("l1"). With ``batch_reduction="batch"``
    (the original) lp is one number for the whole batch and the per-image totals are
    ``lp + ssim_weight * (1 - SSIM_b)``, whose batch mean is LpLssimLoss's
    ``lp + 1000 * (1 - mean_b SSIM_b)``; with ``"image"`` lp is per image. Logged parts: ``lp``
    and ``ssim`` (= 1 - SSIM, unweighted). ``options=None`` takes the options a registry-built
    model carries (``model.sesf_loss``).
    """

    def __init__(self, options: SesfLossOptions | None = None):
        self.options = options

    def resolve(self, model=None) -> SesfLossOptions:
        if self.options is not None:
            return self.options
        return getattr(model, "sesf_loss", None) or SesfLossOptions()

    def __call__(self, model, mri, pet):
        options = self.resolve(model)
        images = sesf_standardise(tf.concat([mri, pet], axis=0))
        out = model(images, training=True)
        diff = out - images
        axes = [1, 2, 3] if options.batch_reduction == "image" else [0, 1, 2, 3]
        if options.pixel_norm == "l2":
            lp = tf.sqrt(tf.reduce_sum(tf.square(diff), axis=axes))
        else:
            lp = tf.reduce_sum(tf.abs(diff), axis=axes)
        l_ssim = 1.0 - ssim(images, out, SESF_SSIM)
        lp = lp * tf.ones_like(l_ssim)  # the batch's one value, once per image
        return {"total": lp + options.ssim_weight * l_ssim, "lp": lp, "ssim": l_ssim}


# --------------------------------------------------------------------------------------------
# fusion


def spatial_frequency_activity(features, radius: int = 5) -> np.ndarray:
    """Activity of (H, W, C) or (N, H, W, C) features -> (H, W) or (N, H, W), float64.

    Per channel ``g = (f[i, j-1] - f[i, j])^2 + (f[i-1, j] - f[i, j])^2`` with f = 0 outside the
    image, summed over the (2r+1) x (2r+1) window around each pixel (zero padding), summed over
    the channels (the two sums commute).
    """
    f = np.asarray(features, dtype=np.float64)
    single = f.ndim == 3
    if single:
        f = f[None]
    if f.ndim != 4:
        raise ValueError(f"features must be (H, W, C) or (N, H, W, C), got shape {f.shape}")
    right = np.zeros_like(f)
    right[:, :, 1:] = f[:, :, :-1]
    down = np.zeros_like(f)
    down[:, 1:] = f[:, :-1]
    grad = ((right - f) ** 2 + (down - f) ** 2).sum(axis=-1)
    size = 2 * int(radius) + 1
    out = np.stack([cv2.boxFilter(g, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
                    for g in grad])
    return out[0] if single else out


def consistency_verification(dm, disk_radius: int = 5, area_ratio: float = 0.01) -> np.ndarray:
    """The original's morphology on a binary decision map (H, W) -> bool (H, W).

    binary opening with skimage's disk(r); fill holes of the 0 phase smaller than
    area_ratio * H * W (small 1-islands become 0; skimage remove_small_holes, 4-connectivity);
    binary closing with the disk; fill holes of the 1 phase of that size (small 0-islands become
    1). The opening and closing are skimage's binary_opening / binary_closing (erosion treats
    the outside as 1, dilation as 0), written with scipy.ndimage because skimage 0.26 deprecates
    them.
    """
    from scipy import ndimage
    from skimage import morphology

    dm = np.asarray(dm).astype(bool)
    if dm.ndim != 2:
        raise ValueError(f"the decision map must be 2-D, got shape {dm.shape}")
    footprint = morphology.disk(disk_radius).astype(bool)
    threshold = area_ratio * dm.shape[0] * dm.shape[1]

    def erode(x):
        return ndimage.binary_erosion(x, footprint, border_value=1)

    def dilate(x):
        return ndimage.binary_dilation(x, footprint, border_value=0)

    dm = dilate(erode(dm))  # opening
    dm = ~_remove_small_holes(~dm, threshold)
    dm = erode(dilate(dm))  # closing
    return _remove_small_holes(dm, threshold)


def _remove_small_holes(mask: np.ndarray, threshold: float) -> np.ndarray:
    """skimage.morphology.remove_small_holes filling holes of area strictly below ``threshold``.

    (The original's ``area_threshold``; skimage 0.26 renamed it ``max_size``, "this size or
    fewer": strictly below t is at most ceil(t) - 1 pixels.)
    """
    import inspect

    from skimage import morphology

    if "max_size" in inspect.signature(morphology.remove_small_holes).parameters:
        return morphology.remove_small_holes(mask, max_size=max(0, math.ceil(threshold) - 1))
    return morphology.remove_small_holes(mask, area_threshold=threshold)


@dataclass(frozen=True)
class SesfFusionOptions:
    kernel_radius: int = 5
    disk_radius: int = 5
    area_ratio: float = 0.01
    gf_radius: int = 4
    gf_eps: float = 0.1
    #: The original ran on uint8 images: the guide is multiplied by this before the guided
    #: filter so that eps = 0.1 means what it meant there (1.0: eps on the [0, 1] scale).
    guide_scale: float = 255.0
    #: Clip the filtered map to [0, 1] (not in the original; makes F a convex combination everywhere).
    clip_weights: bool = False


def decision_map_fusion(mri, pet, activity_mri, activity_pet, options: SesfFusionOptions = SesfFusionOptions()):
    """Steps 3-6 on one pair of (H, W) images and activities -> dict of the maps and ``fused``."""
    from ..baselines.guided_filter import guided_filter

    a = np.asarray(mri, np.float64)
    b = np.asarray(pet, np.float64)
    initial = np.asarray(activity_mri) > np.asarray(activity_pet)
    verified = consistency_verification(initial, options.disk_radius, options.area_ratio)
    dm = verified.astype(np.float64)
    guide = (a * dm + b * (1.0 - dm)) * options.guide_scale
    weights = guided_filter(guide, dm, options.gf_radius, options.gf_eps, border="clip")
    if options.clip_weights:
        weights = np.clip(weights, 0.0, 1.0)
    fused = np.clip(weights * a + (1.0 - weights) * b, 0.0, 1.0)
    return {"initial": initial, "verified": verified, "weights": weights, "fused": fused.astype(np.float32)}


class SesfMethod:
    """A trained SESF auto-encoder as a fusion method: ``method(mri, pet) -> fused``.

    Inputs are [0, 1] grey images, (H, W) or (N, H, W); the output has the same shape, float32.
    :meth:`maps` returns the intermediate maps (activities, initial / verified decision maps,
    filtered weights) for inspection.
    """

    def __init__(self, model, name: str = "sesf", weights: str | None = None,
                 options: SesfFusionOptions | None = None, batch_size: int = 8):
        self.model = model
        self.encoder = model.get_layer("sesf_encoder")
        self.name = name
        self.weights = weights
        self.options = options or getattr(model, "sesf_fusion", None) or SesfFusionOptions()
        self.batch_size = batch_size
        spec = tf.TensorSpec((None, None, None, 1), tf.float32)
        self._features = tf.function(lambda x: self.encoder(x, training=False), input_signature=[spec],
                                     reduce_retracing=True)

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) [0, 1] images -> (N, H, W, 64) encoder features of the standardised images."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = sesf_standardise(images[start : start + self.batch_size, ..., None].astype(np.float32))
            out.append(np.asarray(self._features(tf.constant(chunk, tf.float32))))
        return np.concatenate(out)

    def maps(self, mri, pet) -> list[dict]:
        from ..data.io import check_pair

        mri, pet, _ = check_pair(mri, pet)
        act_mri = spatial_frequency_activity(self.features(mri), self.options.kernel_radius)
        act_pet = spatial_frequency_activity(self.features(pet), self.options.kernel_radius)
        results = []
        for a, b, fa, fb in zip(mri, pet, act_mri, act_pet):
            result = decision_map_fusion(a, b, fa, fb, self.options)
            result.update(activity_mri=fa, activity_pet=fb)
            results.append(result)
        return results

    def __call__(self, mri, pet) -> np.ndarray:
        single = np.ndim(mri) == 2
        fused = np.stack([r["fused"] for r in self.maps(mri, pet)])
        return fused[0] if single else fused

    def __repr__(self):
        return f"SesfMethod({self.name!r}, weights={self.weights!r})"


# --------------------------------------------------------------------------------------------
# model.options


_MODEL_KEYS = {"reduction": int}
_LOSS_KEYS = {"ssim_weight": float, "pixel_norm": str, "batch_reduction": str}
_FUSION_KEYS = {"kernel_radius": int, "disk_radius": int, "area_ratio": float, "gf_radius": int, "gf_eps": float,
                "guide_scale": float, "clip_weights": bool}


def split_options(options: dict) -> tuple[dict, SesfLossOptions, SesfFusionOptions]:
    """model.options -> (build kwargs, SesfLossOptions, SesfFusionOptions); unknown keys are errors."""
    groups = (_MODEL_KEYS, _LOSS_KEYS, _FUSION_KEYS)
    unknown = set(options) - set().union(*groups)
    if unknown:
        known = ", ".join(sorted(set().union(*groups)))
        raise ValueError(f"sesf: unknown model.options {sorted(unknown)} (known: {known})")
    out = ({}, {}, {})
    for key, value in options.items():
        index = next(i for i, group in enumerate(groups) if key in group)
        kind = groups[index][key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"sesf: model.options.{key} must be a {kind.__name__}, got {value!r}")
        out[index][key] = value
    return out[0], SesfLossOptions(**out[1]), SesfFusionOptions(**out[2])
