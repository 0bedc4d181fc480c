"""Structural-similarity fusion metrics: SSIM conventions, Piella's Q_S, Yang's Q_Y, FSIM.

Where an SSIM map is a Gaussian-window SSIM (Z. Wang's ``ssim_index.m``, Yang's ``ssim_yang``,
torchmetrics' SSIM), it is computed by the package's one SSIM, :mod:`funfusean_tf.ssim`, with
the reference's settings spelled out in an :class:`~funfusean_tf.ssim.SSIMSettings`. Only
MdAFuse's and CDDFuse's SSIM columns use another algorithm (scikit-image's default
``structural_similarity``: a 7 x 7 uniform window with sample covariances); for those, calling
scikit-image IS the authors' convention, so :func:`ssim_skimage` calls it directly.
"""

from __future__ import annotations

import numpy as np

from ._util import MetricInputError, check_pair, check_triplet, filter2_separable, gaussian_taps

__all__ = [
    "ssim_index_map",
    "local_variance",
    "piella",
    "yang",
    "ssim_skimage",
    "fusion_ssim_skimage",
    "ssim_gaussian",
    "fusion_ssim_gaussian",
]


# The settings are built on first use: importing the metrics must not import TensorFlow.


def _wang_settings():
    """Z. Wang's ssim_index.m defaults: fspecial('gaussian', 11, 1.5), K = [0.01 0.03], L = 255,
    filter2(..., 'valid')."""
    from funfusean_tf.ssim import SSIMSettings

    return SSIMSettings(window_size=11, sigma=1.5, k1=0.01, k2=0.03, data_range=255.0, padding="VALID")


def _yang_settings():
    """Yang's ssim_yang (Z. Liu's metricYang.m): fspecial('gaussian', 7, 1.5) and C1 = C2 = 2e-16,
    i.e. K1 = K2 = sqrt(2e-16) / 255 with L = 255."""
    from funfusean_tf.ssim import SSIMSettings

    k = float(np.sqrt(2e-16) / 255.0)
    return SSIMSettings(window_size=7, sigma=1.5, k1=k, k2=k, data_range=255.0, padding="VALID")


def ssim_index_map(x, y, settings=None) -> np.ndarray:
    """The SSIM map of two 2-D images through the package's one SSIM, in float64.

    Default settings: Z. Wang's ``ssim_index.m`` (11 x 11 Gaussian, sigma 1.5, K = (0.01, 0.03),
    L = 255, 'valid' filtering: a (H-10) x (W-10) map). Both images must be at least as large
    as the window.
    """
    from funfusean_tf.ssim import ssim_map

    x, y = check_pair(x, y)
    settings = settings or _wang_settings()
    if min(x.shape) < settings.window_size:
        raise MetricInputError(
            f"SSIM needs images of at least {settings.window_size}x{settings.window_size} pixels, got {x.shape}"
        )
    pair = np.stack([x, y])[..., None]  # float64 throughout: 0-255 data needs it
    out = ssim_map(pair[:1], pair[1:], settings)
    return np.asarray(out)[0, ..., 0]


def local_variance(image, taps: np.ndarray) -> np.ndarray:
    """sigma^2 = filter2(w, x.^2, 'valid') - filter2(w, x, 'valid').^2 with w = outer(taps, taps),
    as ssim_index.m returns it."""
    mu = filter2_separable(taps, image, "valid")
    return filter2_separable(taps, image * image, "valid") - mu * mu


def _taps(settings) -> np.ndarray:
    """ssim.py's Gaussian (``gaussian_window``) rebuilt in float64: its 1-D taps, whose outer
    product is MATLAB's fspecial('gaussian', size, sigma) here."""
    return gaussian_taps(settings.window_size, settings.sigma)


def piella(fused, a, b, variant: int = 1) -> float:
    """Q_S: Piella & Heijmans' fusion quality index (ICIP 2003), built on SSIM maps.

    Reproduces Z. Liu's toolbox ``metricPeilla.m`` with ``ssim_index.m`` (the FunFuseAn authors'
    ``fusionAssess.m`` calls it with sw = 1; their Table 1 heads the column Q_SSIM):
    lambda = s_a^2 / (s_a^2 + s_b^2) from the local variances of the two sources (Gaussian 11 x 11,
    sigma 1.5; 0.5 added to both where both are exactly 0), and

    - variant 1: mean(lambda * SSIM(F, A) + (1 - lambda) * SSIM(F, B)) over the 'valid' map;
    - variant 2 (weighted): the same map weighted by max(s_a^2, s_b^2) / sum(max(s_a^2, s_b^2)).

    Images on the 0-255 scale (L = 255). Range [-1, 1], 1 when F = A = B.
    """
    fused, a, b = check_triplet(fused, a, b)
    if variant not in (1, 2):
        raise ValueError(f"Piella variant must be 1 or 2, got {variant} (variant 3 needs edge images; not reproduced)")
    settings = _wang_settings()
    window = _taps(settings)
    va = local_variance(a, window)
    vb = local_variance(b, window)
    both_zero = (va + vb) == 0
    va = va + 0.5 * both_zero
    vb = vb + 0.5 * both_zero
    lam = va / (va + vb)
    q_map = lam * ssim_index_map(fused, a, settings) + (1.0 - lam) * ssim_index_map(fused, b, settings)
    if variant == 1:
        return float(np.mean(q_map))
    cw = np.maximum(va, vb)
    return float(np.sum(cw / cw.sum() * q_map))


def yang(fused, a, b) -> float:
    """Q_Y: Yang, Zhang, Ding & Wang's SSIM-based fusion metric (Information Fusion 9, 2008).

    Reproduces Z. Liu's toolbox ``metricYang.m``: SSIM maps with a 7 x 7 Gaussian (sigma 1.5) and
    C1 = C2 = 2e-16 (computed by the package SSIM); where SSIM(A, B) >= 0.75 the score is
    lambda SSIM(A, F) + (1 - lambda) SSIM(B, F) with lambda = s_a^2 / (s_a^2 + s_b^2), elsewhere
    max(SSIM(A, F), SSIM(B, F)); the mean over the map. 0-255 images. Where both sources are
    locally constant lambda is 0/0: such pixels take lambda = 1/2 here (MATLAB gives NaN there).
    """
    fused, a, b = check_triplet(fused, a, b)
    settings = _yang_settings()
    window = _taps(settings)
    s_ab = ssim_index_map(a, b, settings)
    s_af = ssim_index_map(a, fused, settings)
    s_bf = ssim_index_map(b, fused, settings)
    va = local_variance(a, window)
    vb = local_variance(b, window)
    denom = va + vb
    lam = np.where(denom == 0, 0.5, va / np.where(denom == 0, 1.0, denom))
    similar = s_ab >= 0.75
    q = np.where(similar, lam * s_af + (1.0 - lam) * s_bf, np.maximum(s_af, s_bf))
    return float(np.mean(q))


def ssim_skimage(x, y, data_range: float, dtype=np.float64) -> float:
    """scikit-image's ``structural_similarity`` with its defaults (7 x 7 uniform window,
    sample covariance, K = (0.01, 0.03), mean over the map without the 3-pixel border).

    ``data_range`` must be given: scikit-image <= 0.19, which MdAFuse and CDDFuse ran, took it
    from the dtype for float images, i.e. 2 (the float range [-1, 1]) whatever the data's scale
    (C1 = (0.01 * 2)^2): the presets pass that 2 explicitly. ``dtype`` = float32 reproduces
    scikit-image >= 0.19 computing float32 inputs in float32.
    """
    from skimage.metrics import structural_similarity

    x, y = check_pair(x, y)
    if min(x.shape) < 7:
        raise MetricInputError(f"scikit-image SSIM needs images of at least 7x7 pixels, got {x.shape}")
    return float(structural_similarity(x.astype(dtype), y.astype(dtype), data_range=data_range))


def fusion_ssim_skimage(fused, a, b, data_range: float = 2.0, combine: str = "sum", dtype=np.float64) -> float:
    """SSIM(F, A) + SSIM(F, B) ('sum': MdAFuse, CDDFuse) or their mean, scikit-image defaults."""
    fused, a, b = check_triplet(fused, a, b)
    total = ssim_skimage(fused, a, data_range, dtype) + ssim_skimage(fused, b, data_range, dtype)
    return float(total if combine == "sum" else total / 2.0)


def ssim_gaussian(x, y, settings=None, dtype=np.float32) -> float:
    """Mean Gaussian SSIM through the package SSIM (default: FunFuseAn/MdAFuse training SSIM,
    11 x 11, sigma 1.5, data range 1, valid), the index torchmetrics'
    ``StructuralSimilarityIndexMeasure(data_range=1.0)`` computes (its reflect padding is cropped
    away again, leaving the valid map). float32 as torch computes it.
    """
    from funfusean_tf.ssim import FUNFUSEAN_SSIM, ssim_map

    x, y = check_pair(x, y)
    settings = settings or FUNFUSEAN_SSIM
    if min(x.shape) < settings.window_size:
        raise MetricInputError(
            f"SSIM needs images of at least {settings.window_size}x{settings.window_size} pixels, got {x.shape}"
        )
    out = ssim_map(x[None, ..., None].astype(dtype), y[None, ..., None].astype(dtype), settings)
    return float(np.mean(np.asarray(out, dtype=np.float64)))


def fusion_ssim_gaussian(fused, a, b, combine: str = "mean", settings=None) -> float:
    """(SSIM(F, A) + SSIM(F, B)) / 2 (DILRAN's convention, torchmetrics SSIM, [0, 1] images)."""
    fused, a, b = check_triplet(fused, a, b)
    total = ssim_gaussian(fused, a, settings) + ssim_gaussian(fused, b, settings)
    return float(total / 2.0 if combine == "mean" else total)
