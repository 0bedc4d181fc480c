"""The one SSIM of the package (Wang, Bovik, Sheikh, Simoncelli 2004).

Every loss and every metric that needs an SSIM index or map calls this module, so that "SSIM"
means one computation throughout the project. The defaults are FunFuseAn's and MdAFuse's
training setting, which is also what ``tf.image.ssim`` computes: an 11x11 Gaussian window with
sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1 and VALID filtering (a 246x246 map for a 256x256
image), the index being the mean of the map.

Images are ``(..., H, W, C)`` tensors (or numpy arrays); the index is averaged over the map and
over channels, so ``ssim`` returns one value per leading batch element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["SSIMSettings", "FUNFUSEAN_SSIM", "gaussian_window", "ssim", "ssim_map"]


@dataclass(frozen=True)
class SSIMSettings:
    """Every convention SSIM implementations disagree on, named.

    ``padding`` is "VALID" (only windows fully inside the image, as tf.image.ssim and the
    originals' losses) or "SAME" (zero padding, a map the size of the input). ``window_size`` must
    be odd.
    """

    window_size: int = 11
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03
    data_range: float = 1.0
    padding: str = "VALID"

    def __post_init__(self):
        if self.window_size < 1 or self.window_size % 2 == 0:
            raise ValueError(f"SSIM window_size must be a positive odd integer, got {self.window_size}")
        if self.sigma <= 0:
            raise ValueError(f"SSIM sigma must be positive, got {self.sigma}")
        if self.data_range <= 0:
            raise ValueError(f"SSIM data_range must be positive, got {self.data_range}")
        if self.padding not in ("VALID", "SAME"):
            raise ValueError(f"SSIM padding must be 'VALID' or 'SAME', got {self.padding!r}")


#: The setting of FunFuseAn's loss (its ssim_function.py is tf.image.ssim's code) and MdAFuse's.
FUNFUSEAN_SSIM = SSIMSettings()


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps, centred, as tf.image.ssim builds them."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(coords**2) / (2.0 * sigma**2))
    return (taps / taps.sum()).astype(np.float32)


def _filter(images: tf.Tensor, taps: tf.Tensor, padding: str) -> tf.Tensor:
    """Gaussian filter applied per channel (depthwise) with the 2-D kernel outer(taps, taps).

    A 2-D kernel rather than two 1-D passes: it sums in the same order as tf.image.ssim, which
    keeps the two equal to float32 rounding (about 1e-7) instead of a few 1e-6; the cost is
    negligible next to the networks.
    """
    channels = tf.shape(images)[-1]
    size = taps.shape[0]
    kernel = tf.tile(tf.reshape(tf.tensordot(taps, taps, axes=0), (size, size, 1, 1)), [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(images, kernel, strides=[1, 1, 1, 1], padding=padding)


def _as_batched(image) -> tuple[tf.Tensor, tf.Tensor]:
    image = tf.convert_to_tensor(image)
    if not image.dtype.is_floating:
        image = tf.cast(image, tf.float32)
    rank = image.shape.rank
    if rank is None or rank < 3:
        raise ValueError(f"SSIM expects (..., H, W, C) images, got shape {image.shape}")
    leading = tf.shape(image)[:-3]
    flat = tf.reshape(image, tf.concat([[-1], tf.shape(image)[-3:]], axis=0))
    return flat, leading


def ssim_map(img1, img2, settings: SSIMSettings = FUNFUSEAN_SSIM) -> tf.Tensor:
    """The local SSIM map, shape (..., H', W', C) (H' = H - window + 1 with VALID padding).

    The map is luminance * contrast-structure with the constants C1 = (K1 L)^2 and
    C2 = (K2 L)^2, which keeps it finite, with a finite gradient, on constant and all-zero images
    (both terms become 1 there).
    """
    x, leading = _as_batched(img1)
    y, _ = _as_batched(img2)
    y = tf.cast(y, x.dtype)
    taps = tf.constant(gaussian_window(settings.window_size, settings.sigma), dtype=x.dtype)
    c1 = (settings.k1 * settings.data_range) ** 2
    c2 = (settings.k2 * settings.data_range) ** 2

    mu_x = _filter(x, taps, settings.padding)
    mu_y = _filter(y, taps, settings.padding)
    # The same algebra as tf.image.ssim: E[x^2] + E[y^2] - (mu_x^2 + mu_y^2) in one filter pass.
    mean_sq = mu_x * mu_x + mu_y * mu_y
    mean_xy = mu_x * mu_y
    luminance = (2.0 * mean_xy + c1) / (mean_sq + c1)
    second_sq = _filter(x * x + y * y, taps, settings.padding) - mean_sq
    second_xy = _filter(x * y, taps, settings.padding) - mean_xy
    contrast_structure = (2.0 * second_xy + c2) / (second_sq + c2)
    out = luminance * contrast_structure
    return tf.reshape(out, tf.concat([leading, tf.shape(out)[-3:]], axis=0))


def ssim(img1, img2, settings: SSIMSettings = FUNFUSEAN_SSIM, return_map: bool = False):
    """Mean SSIM index per image (averaged over the map and channels), optionally with the map."""
    local = ssim_map(img1, img2, settings)
    index = tf.reduce_mean(local, axis=[-3, -2, -1])
    return (index, local) if return_map else index
