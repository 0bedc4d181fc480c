"""Human-visual-system fusion metrics: Chen & Blum's Q_CB."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._util import check_triplet
from .information import _normalize1

__all__ = ["chen_blum"]


def _freqspace(n: int) -> np.ndarray:
    """MATLAB freqspace for one dimension: ((0:n-1) - floor(n/2)) * 2/n."""
    return (np.arange(n) - np.floor(n / 2)) * (2.0 / n)


def _gauss_filter_same(image: np.ndarray, sigma: float) -> np.ndarray:
    """filter2(G, image, 'same') with Liu's unnormalised 31 x 31 Gaussian
    G = exp(-(x^2 + y^2) / (2 sigma^2)) / (2 pi sigma^2), x, y in -15..15 (zero padding),
    done as two 1-D passes (G is separable); complex images filtered part by part."""
    x = np.arange(-15, 16, dtype=np.float64)
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    scale = 1.0 / (2.0 * np.pi * sigma * sigma)

    def run(part):
        out = ndimage.correlate1d(part, taps, axis=0, mode="constant", cval=0.0)
        return ndimage.correlate1d(out, taps, axis=1, mode="constant", cval=0.0) * scale

    if np.iscomplexobj(image):
        return run(image.real) + 1j * run(image.imag)
    return run(image)


def chen_blum(fused, a, b) -> float:
    """Q_CB: Chen & Blum's HVS-based fusion metric (Image and Vision Computing 27, 2009).

    Reproduces Z. Liu's toolbox ``metricChenBlum.m``: every image min-max scaled to integers
    0-255 (``normalize1``), filtered in the frequency domain by the contrast sensitivity
    function S(r) = exp(-(r/f0)^2) - a exp(-(r/f1)^2) (f0 = 15.3870, f1 = 1.3456, a = 0.7622,
    r in cycles per degree with Liu's scaling of ``freqspace`` by size/30), local contrast
    |G1 * I / G2 * I - 1| with Liu's unnormalised 31 x 31 Gaussians (sigma 2 and 4), masked
    contrast C' = C^3 / (C^2 + 1e-4), preservation Q_sF = min/max ratio of C'_s and C'_F, saliency
    weights C'_s^2 / (C'_A^2 + C'_B^2), and the mean of the weighted map. Higher is better;
    Q_CB(x, x, x) = 1.
    """
    fused, a, b = check_triplet(fused, a, b)
    a, b, fused = _normalize1(a), _normalize1(b), _normalize1(fused)
    rows, cols = fused.shape
    f0, f1, amp = 15.3870, 1.3456, 0.7622
    u, v = np.meshgrid(_freqspace(cols) * (cols / 30.0), _freqspace(rows) * (rows / 30.0))
    r = np.sqrt(u * u + v * v)
    csf = np.exp(-((r / f0) ** 2)) - amp * np.exp(-((r / f1) ** 2))

    def masked_contrast(image):
        filtered = np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(image)) * csf))
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 is reported below
            contrast = np.abs(_gauss_filter_same(filtered, 2.0) / _gauss_filter_same(filtered, 4.0) - 1.0)
            return contrast**3 / (contrast**2 + 0.0001)

    ca, cb, cf = masked_contrast(a), masked_contrast(b), masked_contrast(fused)
    with np.errstate(divide="ignore", invalid="ignore"):
        q_af = np.where(ca < cf, ca / cf, cf / ca)
        q_bf = np.where(cb < cf, cb / cf, cf / cb)
        denom = ca * ca + cb * cb
        lam_a = ca * ca / denom
        lam_b = cb * cb / denom
        q = lam_a * q_af + lam_b * q_bf
    if not np.all(np.isfinite(q)):
        bad = int(np.size(q) - np.count_nonzero(np.isfinite(q)))
        raise ValueError(f"Q_CB is undefined at {bad} pixel(s) (zero contrast in the images compared)")
    return float(np.mean(q))
