"""Visual-information-fidelity metrics: Sheikh & Bovik's pixel VIF and Han et al.'s VIFF.

Two different metrics share the name "VIF(F)" in fusion papers:

- :func:`vif_p` / :func:`fusion_vif` is Sheikh & Bovik's pixel-domain VIF (IEEE TIP 15(2),
  2006) between each source and the fused image, summed over the two sources (MdAFuse's and
  CDDFuse's ``Evaluator.VIFF``, which MdAFuse's tables call VIF);
- :func:`q_viff` is Han, Cai, Cao & Xu's fusion metric VIFF (Information Fusion 14(2), 2013),
  the FunFuseAn authors' Q_VIFF (``Fusion Metrics/VIFF_Public.m``).
"""

from __future__ import annotations

import numpy as np

from ._util import MetricInputError, check_pair, check_triplet, filter2_separable, gaussian_taps

__all__ = ["vif_p", "fusion_vif", "q_viff"]

_EPS = 1e-10


def _vif_statistics(ref: np.ndarray, dist: np.ndarray, scale: int):
    """One scale of Sheikh's vifp_mscale: smoothed/downsampled images and the local statistics.

    Scale s (1..4) uses a Gaussian window of N = 2^(5-s) + 1 taps, sigma N/5
    (MATLAB ``fspecial``); from scale 2 on both images are filtered ('valid') and decimated
    by 2 first. Returns (g, sv_sq, sigma1_sq) after the reference's guards for degenerate
    windows.
    """
    n = 2 ** (4 - scale + 1) + 1
    taps = gaussian_taps(n, n / 5.0)  # fspecial('gaussian', n, n/5) = outer(taps, taps)

    def smooth(x):
        return filter2_separable(taps, x, "valid")

    if scale > 1:
        ref = smooth(ref)[::2, ::2]
        dist = smooth(dist)[::2, ::2]
    if min(ref.shape) < n:
        raise MetricInputError(f"VIF needs larger images: scale {scale} has {ref.shape} pixels for a {n}x{n} window")
    mu1 = smooth(ref)
    mu2 = smooth(dist)
    sigma1_sq = smooth(ref * ref) - mu1 * mu1
    sigma2_sq = smooth(dist * dist) - mu2 * mu2
    sigma12 = smooth(ref * dist) - mu1 * mu2
    sigma1_sq[sigma1_sq < 0] = 0
    sigma2_sq[sigma2_sq < 0] = 0

    g = sigma12 / (sigma1_sq + _EPS)
    sv_sq = sigma2_sq - g * sigma12

    flat_ref = sigma1_sq < _EPS
    g[flat_ref] = 0
    sv_sq[flat_ref] = sigma2_sq[flat_ref]
    sigma1_sq[flat_ref] = 0

    flat_dist = sigma2_sq < _EPS
    g[flat_dist] = 0
    sv_sq[flat_dist] = 0

    negative = g < 0
    sv_sq[negative] = sigma2_sq[negative]
    g[negative] = 0
    sv_sq[sv_sq <= _EPS] = _EPS
    return ref, dist, g, sv_sq, sigma1_sq


def vif_p(ref, dist, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain VIF (Sheikh & Bovik 2006, ``vifp_mscale.m``) of ``dist`` against ``ref``.

    As MdAFuse's and CDDFuse's ``Evaluator.compare_viff``: four scales (Gaussian windows 17, 9,
    5, 3 with sigma N/5), HVS noise variance ``sigma_nsq`` = 2 in the images' own units (those
    papers feed [0, 1] resp. 0-255 images with the same 2), log10 terms summed over all scales,
    VIF = sum(log10(1 + g^2 s1^2 / (sv^2 + sigma_nsq))) / sum(log10(1 + s1^2 / sigma_nsq)).
    A reference without any local variance gives 0/0: the reference returns 1.0 in that case
    (documented there as ``if isnan(vifp): return 1.0``), and so does this function.
    """
    ref, dist = check_pair(ref, dist, ("reference", "distorted"))
    num = 0.0
    den = 0.0
    for scale in range(1, 5):
        ref, dist, g, sv_sq, sigma1_sq = _vif_statistics(ref, dist, scale)
        num += np.sum(np.log10(1.0 + g * g * sigma1_sq / (sv_sq + sigma_nsq)))
        den += np.sum(np.log10(1.0 + sigma1_sq / sigma_nsq))
    if den == 0:
        return 1.0
    return float(num / den)


def fusion_vif(fused, a, b, sigma_nsq: float = 2.0) -> float:
    """VIF(A, F) + VIF(B, F) with :func:`vif_p` (MdAFuse and CDDFuse sum over the sources)."""
    fused, a, b = check_triplet(fused, a, b)
    return float(vif_p(a, fused, sigma_nsq) + vif_p(b, fused, sigma_nsq))


def _han_scales(ref: np.ndarray, dist: np.ndarray, sigma_nsq: float):
    """Per-scale maps (VID, VIND, g) of VIFF_Public.m's ComVidVindG."""
    out = []
    for scale in range(1, 5):
        ref, dist, g, sv_sq, sigma1_sq = _vif_statistics(ref, dist, scale)
        vid = np.log10(1.0 + g * g * sigma1_sq / (sv_sq + sigma_nsq))
        vind = np.log10(1.0 + sigma1_sq / sigma_nsq)
        out.append((vid, vind, g))
    return out


def q_viff(fused, a, b) -> float:
    """Q_VIFF: Han, Cai, Cao & Xu's VIF-based fusion metric (Information Fusion 14(2), 2013).

    Reproduces ``VIFF_Public.m`` (Y. Han's public code, in the FunFuseAn repository's ``Fusion
    Metrics``) for grey images: visual noise 0.005 * 255^2 (images on the 0-255 scale), the
    Sheikh-Bovik local statistics of each source against the fused image at four scales, per
    pixel the source with the smaller gain g (the second source on ties), and
    F_s = sum(VID + 1e-7) / sum(VIND + 1e-7) per scale, combined with weights
    [1, 0, 0.15, 1] / 2.15. Range about [0, 1], higher is better.
    """
    fused, a, b = check_triplet(fused, a, b)
    sigma_nsq = 0.005 * 255 * 255
    c = 1e-7
    weights = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
    scales_a = _han_scales(a, fused, sigma_nsq)
    scales_b = _han_scales(b, fused, sigma_nsq)
    per_scale = []
    for (vid_a, vind_a, g_a), (vid_b, vind_b, g_b) in zip(scales_a, scales_b):
        take_a = g_a < g_b
        vid = np.where(take_a, vid_a, vid_b)
        vind = np.where(take_a, vind_a, vind_b)
        per_scale.append(np.sum(vid + c) / np.sum(vind + c))
    return float(np.sum(np.asarray(per_scale) * weights))
