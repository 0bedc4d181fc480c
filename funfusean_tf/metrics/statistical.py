"""Statistical fusion metrics: SD, CC, SCD, MSE, PSNR (each with its papers' conventions)."""

from __future__ import annotations

import numpy as np

from ._util import as_image, check_pair, check_triplet

__all__ = ["standard_deviation", "pearson", "correlation_coefficient", "scd", "mse", "psnr"]


def standard_deviation(image, convention: str = "population") -> float:
    """SD of the fused image.

    - 'population': ``np.std`` (divide by N; CDDFuse's ``Evaluator.SD`` on 0-255 images);
    - 'sum': MdAFuse's ``analysis_sd.m``: sqrt(sum((x - mean)^2)) with NO division by N, applied
      to ``im2double`` of the 8-bit fused image, i.e. to [0, 1] values (this is why MdAFuse's SD
      column reads ~60 for 256 x 256 images). Pass the image on the scale the paper used.
    """
    image = as_image(image)
    dev = image - image.mean()
    if convention == "population":
        return float(np.sqrt(np.mean(dev * dev)))
    if convention == "sum":
        return float(np.sqrt(np.sum(dev * dev)))
    raise ValueError(f"SD convention must be 'population' or 'sum', got {convention!r}")


def pearson(x, y) -> float:
    """Pearson correlation of two images, sum((x - mx)(y - my)) / sqrt(sum(..)^2 sum(..)^2).

    A constant image has no correlation: 0/0 is an error here (the references return NaN).
    """
    x, y = check_pair(x, y)
    dx = x - x.mean()
    dy = y - y.mean()
    den = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    if den == 0:
        raise ValueError("correlation is undefined: one of the images is constant")
    return float(np.sum(dx * dy) / den)


def correlation_coefficient(fused, a, b) -> float:
    """CC = (r(A, F) + r(B, F)) / 2 (MdAFuse's and CDDFuse's ``Evaluator.CC``). Invariant to any
    positive affine change of F, so the 8-bit PNG scores as the float output did."""
    fused, a, b = check_triplet(fused, a, b)
    return float((pearson(a, fused) + pearson(b, fused)) / 2.0)


def scd(fused, a, b) -> float:
    """SCD: sum of the correlations of differences (Aslantas & Bendes 2015).

    SCD = r(A, F - B) + r(B, F - A), as MdAFuse's ``SCD.m`` and CDDFuse's ``Evaluator.SCD``.
    Range [-2, 2]; scale-invariant when A, B and F share one scale.
    """
    fused, a, b = check_triplet(fused, a, b)
    return float(pearson(a, fused - b) + pearson(b, fused - a))


def mse(fused, a, b) -> float:
    """MSE = (mean((A - F)^2) + mean((B - F)^2)) / 2 (MdAFuse's and CDDFuse's ``Evaluator.MSE``),
    on the scale of the inputs (MdAFuse: [0, 1])."""
    fused, a, b = check_triplet(fused, a, b)
    return float((np.mean((a - fused) ** 2) + np.mean((b - fused) ** 2)) / 2.0)


def psnr(fused, reference, data_range: float | None = None) -> float:
    """PSNR = 10 log10(R^2 / MSE(F, reference)) in dB.

    ``data_range`` R: a fixed peak (1.0 for [0, 1] images, 255 for 8-bit) or None for the
    reference's own max - min, which is what torchmetrics' ``PeakSignalNoiseRatio()`` (no
    data_range, DILRAN's inference script) uses. Identical images give +inf.
    """
    fused, reference = check_pair(fused, reference, ("fused", "reference"))
    if data_range is None:
        data_range = float(reference.max() - reference.min())
    if data_range <= 0:
        raise ValueError("PSNR is undefined: the reference is constant and no data_range was given")
    err = float(np.mean((fused - reference) ** 2))
    if err == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range * data_range / err))
