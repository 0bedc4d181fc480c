"""Pixel-wise rules: average, maximum, and PCA-weighted average."""

from __future__ import annotations

import numpy as np

from ._common import check_pair, finish

__all__ = ["average_fuse", "maximum_fuse", "pca_weights", "pca_fuse"]


def average_fuse(mri, pet) -> np.ndarray:
    """F = (MRI + PET) / 2, pixel by pixel (the textbook averaging rule; no parameters)."""
    a, b = check_pair(mri, pet)
    return finish(0.5 * (a + b))


def maximum_fuse(mri, pet) -> np.ndarray:
    """F = max(MRI, PET), pixel by pixel (the textbook select-maximum rule; no parameters)."""
    a, b = check_pair(mri, pet)
    return finish(np.maximum(a, b))


def pca_weights(mri, pet) -> tuple[float, float]:
    """(w_mri, w_pet): the principal eigenvector of the 2x2 covariance of the two images, each
    component taken in absolute value and divided by their sum, so w_mri + w_pet = 1.

    The absolute value fixes the eigenvector's arbitrary sign and keeps both weights in [0, 1]
    when the images are negatively correlated. A zero covariance matrix (two constant images, up to round-off)
    has no principal direction: the weights are then 0.5 and 0.5.
    """
    a, b = check_pair(mri, pet)
    cov = np.cov(np.stack([a.ravel(), b.ravel()]))
    # "zero" up to the round-off of centring (a constant's centred values are ~1e-17, not 0)
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), np.finfo(np.float64).tiny)
    if np.trace(cov) <= (1e-12 * scale) ** 2:
        return 0.5, 0.5
    values, vectors = np.linalg.eigh(cov)
    principal = np.abs(vectors[:, int(np.argmax(values))])
    w = principal / principal.sum()
    return float(w[0]), float(w[1])


def pca_fuse(mri, pet) -> np.ndarray:
    """PCA fusion: F = w1 MRI + w2 PET with (w1, w2) from :func:`pca_weights` (V. P. S. Naidu,
    J. R. Raol, "Pixel-level Image Fusion using Wavelets and Principal Component Analysis",
    Defence Science Journal 58(3):338-352, 2008). No parameters."""
    a, b = check_pair(mri, pet)
    w1, w2 = pca_weights(a, b)
    return finish(w1 * a + w2 * b)
