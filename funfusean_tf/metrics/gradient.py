"""Gradient-based fusion metrics: Xydeas-Petrovic edge transfer (two conventions), SF, AG, rSFe.

Two implementations of the Xydeas & Petrovic (2000) edge-preservation measure exist in the
fusion literature and give different numbers; both are here under distinct names:

- :func:`q_g_liu` is Z. Liu's ``metricXydeas.m`` (2003 version), the FunFuseAn authors' Q_G:
  Sobel via ``filter2``, constants Gamma = 1, k = -10 / -20, sigma = 0.5 / 0.75, the angle term
  | |alpha_A - alpha_F| - pi/2 | * 2/pi, and the mean over pixels of the per-pixel weighted
  ratio;
- :func:`qabf` is the canonical Q^{AB/F} of R. Hong's ``analysis_Qabf.m`` (ported verbatim by
  CDDFuse's ``Evaluator.Qabf``): Tg 0.9994, kg -15, Dg 0.5, Ta 0.9879, ka -22, Da 0.8, the
  angle term 1 - |alpha_A - alpha_F| / (pi/2), and one global ratio of weighted sums.
"""

from __future__ import annotations

import numpy as np

from ._util import as_image, check_triplet, conv2, filter2

__all__ = ["q_g_liu", "qabf", "spatial_frequency", "average_gradient", "rsfe"]

_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
_TINY = 0.00001  # Liu's guard against division by zero


def _liu_gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = filter2(_SOBEL_X, image, "same")
    gy = filter2(_SOBEL_Y, image, "same")
    magnitude = np.sqrt(gx * gx + gy * gy)
    gx = gx + (gx == 0) * _TINY
    return magnitude, np.arctan(gy / gx)


def q_g_liu(fused, a, b) -> float:
    """Q_G: Xydeas & Petrovic's gradient metric as Z. Liu's ``metricXydeas.m`` (2003) computes it.

    The FunFuseAn authors' Q_G (``fusionAssess.m``). Sobel gradients with ``filter2`` (zero
    padding, 'same'); strength preservation G = min(g_s, g_F) / max(g_s, g_F) with 1e-5 added to
    zero gradients (in Liu's order: a source's zero gradients and then the fused image's are
    patched for good, so the second source sees the patched fused gradients); orientation
    preservation A = | |alpha_s - alpha_F| - pi/2 | * 2/pi with alpha = atan(g_y / g_x);
    Q = 1 / (1 + exp(-10 (G - 0.5))) * 1 / (1 + exp(-20 (A - 0.75))); result
    mean over pixels of (Q_A w_A + Q_B w_B) / (w_A + w_B), w = the sources' gradient strengths
    (1e-5 where zero). NOT the canonical Q^{AB/F} (see :func:`qabf`). 0-255 images.
    """
    fused, a, b = check_triplet(fused, a, b)
    g_f, alpha_f = _liu_gradient(fused)
    scores, weights = [], []
    for source in (a, b):
        g_s, alpha_s = _liu_gradient(source)
        stronger = g_s > g_f
        g_s = g_s + (g_s == 0) * _TINY
        ratio_fs = g_f / g_s
        g_f = g_f + (g_f == 0) * _TINY
        ratio_sf = g_s / g_f
        strength = np.where(stronger, ratio_fs, ratio_sf)
        orientation = np.abs(np.abs(alpha_s - alpha_f) - np.pi / 2) * 2 / np.pi
        q = 1.0 / (1.0 + np.exp(-10.0 * (strength - 0.5))) * (1.0 / (1.0 + np.exp(-20.0 * (orientation - 0.75))))
        scores.append(q)
        weights.append(g_s)
    (qa, qb), (wa, wb) = scores, weights
    return float(np.mean((qa * wa + qb * wb) / (wa + wb)))


def _hong_gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h1 = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
    h3 = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    sx = conv2(image, h3, "same")
    sy = conv2(image, h1, "same")
    strength = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    angle = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, sx)))
    return strength, angle


def qabf(fused, a, b, hong_equal_quirk: bool = True) -> float:
    """Q^{AB/F}: Xydeas & Petrovic (Electronics Letters 2000), canonical constants.

    Reproduces R. Hong's ``analysis_Qabf.m`` and CDDFuse's ``utils/Evaluator.Qabf`` (a port of
    it): Sobel with ``conv2`` (zero padding), alpha = atan(S_y / S_x) (pi/2 where S_x = 0),
    G = min/max ratio of gradient strengths, A = 1 - |alpha_s - alpha_F| / (pi/2),
    Q = 0.9994 / (1 + exp(-15 (G - 0.5))) * 0.9879 / (1 + exp(-22 (A - 0.8))), and
    Q^{AB/F} = sum(Q_A g_A + Q_B g_B) / sum(g_A + g_B). Both references set G = g_F (not 1)
    where g_s == g_F; ``hong_equal_quirk=False`` uses the ratio 1 there instead (the difference
    is negligible: it only matters on exactly equal non-zero strengths). A fused image with no
    gradient in either source has 0/0: that is an error here.
    """
    fused, a, b = check_triplet(fused, a, b)
    g_f, alpha_f = _hong_gradient(fused)
    num = 0.0
    den = 0.0
    for source in (a, b):
        g_s, alpha_s = _hong_gradient(source)
        safe_s = np.where(g_s == 0, 1.0, g_s)
        safe_f = np.where(g_f == 0, 1.0, g_f)
        strength = np.where(g_s > g_f, g_f / safe_s, g_s / safe_f)
        equal = g_s == g_f
        strength = np.where(equal, g_f if hong_equal_quirk else 1.0, strength)
        orientation = 1.0 - np.abs(alpha_s - alpha_f) / (np.pi / 2)
        q = (0.9994 / (1.0 + np.exp(-15.0 * (strength - 0.5)))) * (0.9879 / (1.0 + np.exp(-22.0 * (orientation - 0.8))))
        num += np.sum(q * g_s)
        den += np.sum(g_s)
    if den == 0:
        raise ValueError("Q_AB/F is undefined: neither source image has any gradient (both are constant)")
    return float(num / den)


def spatial_frequency(image) -> float:
    """SF = sqrt(mean(dx^2) + mean(dy^2)) with first differences (CDDFuse ``Evaluator.SF``).

    Each mean is over the differences that exist ((H)(W-1) and (H-1)(W)). Scale: that of the
    image (CDDFuse: 0-255). 0 for a constant image.
    """
    image = as_image(image)
    dx = image[:, 1:] - image[:, :-1]
    dy = image[1:, :] - image[:-1, :]
    mx = np.mean(dx * dx) if dx.size else 0.0
    my = np.mean(dy * dy) if dy.size else 0.0
    return float(np.sqrt(mx + my))


def average_gradient(image) -> float:
    """AG = mean(sqrt((G_x^2 + G_y^2) / 2)) with numpy-style central differences (one-sided at
    the borders), as CDDFuse's ``Evaluator.AG``. 0 for a constant image."""
    image = as_image(image)
    if min(image.shape) < 2:
        raise ValueError(f"AG needs an image of at least 2x2 pixels, got {image.shape}")
    gx = np.gradient(image, axis=1)
    gy = np.gradient(image, axis=0)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


def _directional_differences(image: np.ndarray):
    """The four first differences of Zheng's SF: row, column, main and secondary diagonal."""
    return (
        image[:, :-1] - image[:, 1:],
        image[:-1, :] - image[1:, :],
        image[1:, 1:] - image[:-1, :-1],
        image[1:, :-1] - image[:-1, 1:],
    )


def rsfe(fused, a, b) -> float:
    """rSFe: ratio of spatial-frequency error (Zheng, Essock, Hansen, Haun 2007), ideal 0.

    Reproduces Z. Liu's ``metricZheng.m`` (which MdAFuse ran): SF_F = sqrt(RF^2 + CF^2 + MDF^2 +
    SDF^2) from the fused image's row, column and two diagonal first differences, each sum
    divided by H*W (all pixels, not the number of differences) and the diagonals weighted by
    sqrt(2)/2; the reference SF_R uses, per pixel and direction, the larger absolute difference of
    the two sources. rSFe = (SF_F - SF_R) / SF_R: negative = detail lost, positive = added.
    Scale-invariant. Undefined (an error) when both sources are constant.
    """
    fused, a, b = check_triplet(fused, a, b)
    n = fused.size
    weights = (1.0, 1.0, np.sqrt(2) / 2, np.sqrt(2) / 2)
    df = _directional_differences(fused)
    da = _directional_differences(a)
    db = _directional_differences(b)
    sf_f = np.sqrt(sum(w * np.sum(d * d) / n for w, d in zip(weights, df)))
    sf_r = np.sqrt(
        sum(w * np.sum(np.maximum(np.abs(x), np.abs(y)) ** 2) / n for w, x, y in zip(weights, da, db))
    )
    if sf_r == 0:
        raise ValueError("rSFe is undefined: both source images are constant (reference spatial frequency 0)")
    return float((sf_f - sf_r) / sf_r)
