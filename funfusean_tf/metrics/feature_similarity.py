"""FSIM, the feature similarity index, as DILRAN's evaluation computes it.

Paper: L. Zhang, L. Zhang, X. Mou and D. Zhang, "FSIM: A Feature Similarity Index for Image
Quality Assessment", IEEE Transactions on Image Processing 20(8), 2011. Per pixel, the phase
congruency (PC) similarity and the gradient magnitude (GM) similarity
S(x, y) = (2 x y + T) / (x^2 + y^2 + T) are multiplied and pooled with weight max(PC_1, PC_2).

Reference implementation: DILRAN (Zhou et al. 2022) ``evaluation_metrics.fsim``, called by its
``inference.py`` as ``fsim(fused, source)`` for each source, the two values averaged. Its
conventions, reproduced here:

- PC from the ``phasepack`` package (A. Muldal's Python port of P. Kovesi's MATLAB phasecong3,
  Kovesi 1999/2003): ``phasecong(img, nscale=4, minWaveLength=6, mult=2, sigmaOnf=0.5978)``
  (norient 6 and the other arguments at phasepack's defaults), the six per-orientation PC maps
  (element 4 of the result) summed;
- GM from OpenCV's Scharr operator called as ``cv2.Scharr(img, cv2.CV_16U, 1, 0)`` and
  ``(img, cv2.CV_16U, 0, 1)`` on the float32 [0, 1] images of DILRAN's loader. OpenCV (checked
  with 5.0.0, where float32 -> CV_16U is a supported combination and does not raise) rounds the
  float32 derivative to the nearest integer and saturates it to [0, 65535]: negative
  derivatives become 0 and [0, 1] images give integer derivatives 0..16. GM is then
  ``sqrt(gx**2 + gy**2)`` in uint16 arithmetic (wrap-around above 65535, which [0, 1] images
  cannot reach), i.e. float32;
- T1 = 0.85 and T2 = 160 (the paper's constants for 0-255 images; with DILRAN's [0, 1] images
  and saturated integer derivatives the GM term stays close to 1), alpha = beta = 1.

phasepack is imported lazily (importing :mod:`funfusean_tf` stays fast) and its warning that the
optional ``pyfftw`` is missing is silenced: it then uses scipy's FFT, with identical results.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._util import MetricInputError, as_image, check_pair, check_triplet

__all__ = [
    "DILRAN_PHASECONG_ARGS",
    "FSIM_T1",
    "FSIM_T2",
    "phase_congruency_dilran",
    "gradient_magnitude_scharr_16u",
    "fsim_similarity",
    "fsim_pool",
    "fsim",
    "fusion_fsim",
]

#: The phasepack ``phasecong`` arguments of DILRAN's ``evaluation_metrics.fsim``.
DILRAN_PHASECONG_ARGS = {"nscale": 4, "minWaveLength": 6, "mult": 2, "sigmaOnf": 0.5978}
#: FSIM's stabilising constants (Zhang et al. 2011; DILRAN's defaults).
FSIM_T1 = 0.85
FSIM_T2 = 160


def _phasecong():
    """phasepack's ``phasecong``, imported on first use without its 'pyfftw missing' warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*pyfftw", category=UserWarning)
        from phasepack import phasecong
    return phasecong


def _as_dilran_float32(image, name: str) -> np.ndarray:
    """A 2-D float32 image (DILRAN's loader: ``imread(...).astype(float32) / 255``); a constant
    image is refused: phasepack divides 0 by 0 there (its PC is NaN everywhere)."""
    array = as_image(image, name)
    if array.min() == array.max():
        raise MetricInputError(
            f"{name}: FSIM is undefined on a constant image (phase congruency is 0/0 there: "
            "phasepack returns NaN)"
        )
    return array.astype(np.float32)


def phase_congruency_dilran(image) -> np.ndarray:
    """Kovesi's phase congruency as DILRAN sums it: phasepack ``phasecong`` with
    :data:`DILRAN_PHASECONG_ARGS` on the float32 image, the six orientation maps added (float64).

    A constant image raises :class:`MetricInputError` (phasepack returns NaN there).
    """
    img = _as_dilran_float32(image, "image")
    pc_per_orientation = _phasecong()(img, **DILRAN_PHASECONG_ARGS)[4]
    total = np.zeros(img.shape, dtype=np.float64)
    for orientation_map in pc_per_orientation:
        total += orientation_map
    if not np.all(np.isfinite(total)):
        raise MetricInputError("phase congruency is not finite on this image (phasepack divided 0 by 0)")
    return total


def gradient_magnitude_scharr_16u(image) -> np.ndarray:
    """DILRAN's ``_gradient_magnitude(img, cv2.CV_16U)`` on a [0, 1] image, float32.

    ``cv2.Scharr`` of the float32 image with a CV_16U destination, in x and y: OpenCV rounds
    each derivative to the nearest integer and saturates it to [0, 65535] (negative slopes give
    0); the squares and their sum are taken in uint16 as numpy does for the original code, and
    ``np.sqrt`` of uint16 is float32. OpenCV's border is BORDER_REFLECT_101.
    """
    import cv2

    img = as_image(image).astype(np.float32)
    gx = cv2.Scharr(img, cv2.CV_16U, 1, 0)
    gy = cv2.Scharr(img, cv2.CV_16U, 0, 1)
    return np.sqrt(gx**2 + gy**2)


def fsim_similarity(x, y, constant):
    """FSIM's similarity map (2 x y + T) / (x^2 + y^2 + T), elementwise, in the inputs' dtype."""
    return (2 * x * y + constant) / (x**2 + y**2 + constant)


def fsim_pool(pc_1, pc_2, gm_1, gm_2, t1: float = FSIM_T1, t2: float = FSIM_T2) -> float:
    """FSIM from the four feature maps: sum(S_pc S_g PC_m) / sum(PC_m), PC_m = max(PC_1, PC_2).

    ``S_pc`` = :func:`fsim_similarity` (pc_1, pc_2, t1), ``S_g`` likewise with the gradient
    magnitudes and t2 (alpha = beta = 1). Symmetric in (1, 2). When PC_m is 0 everywhere the
    ratio is 0/0: :class:`MetricInputError`.
    """
    s_pc = fsim_similarity(pc_1, pc_2, t1)
    s_g = fsim_similarity(gm_1, gm_2, t2)
    pc_max = np.maximum(pc_1, pc_2)
    denominator = np.sum(pc_max)
    if not denominator > 0:
        raise MetricInputError("FSIM is undefined: the phase congruency of both images is 0 everywhere")
    return float(np.sum(s_pc * s_g * pc_max) / denominator)


def fsim(x, y, t1: float = FSIM_T1, t2: float = FSIM_T2) -> float:
    """FSIM of two grey images in [0, 1] with DILRAN's conventions (see the module docstring).

    DILRAN's ``fsim(img_pred, img_true)``: phase congruency (:func:`phase_congruency_dilran`)
    and Scharr gradient magnitude (:func:`gradient_magnitude_scharr_16u`) of each image, pooled
    by :func:`fsim_pool`. Range (0, 1], 1 for identical images, symmetric. Pass [0, 1] images
    (DILRAN divides 8-bit data by 255): T2 = 160 and the saturated 16-bit derivatives assume
    that scale. A constant image raises :class:`MetricInputError`.
    """
    x, y = check_pair(x, y)
    return fsim_pool(
        phase_congruency_dilran(x),
        phase_congruency_dilran(y),
        gradient_magnitude_scharr_16u(x),
        gradient_magnitude_scharr_16u(y),
        t1,
        t2,
    )


def fusion_fsim(fused, a, b, t1: float = FSIM_T1, t2: float = FSIM_T2) -> float:
    """DILRAN's FSIM column: (fsim(F, A) + fsim(F, B)) / 2 on [0, 1] images.

    Identical to averaging :func:`fsim` over the sources; the fused image's phase congruency
    and gradient magnitude are computed once.
    """
    fused, a, b = check_triplet(fused, a, b)
    pc_f, gm_f = phase_congruency_dilran(fused), gradient_magnitude_scharr_16u(fused)
    scores = [
        fsim_pool(phase_congruency_dilran(s), pc_f, gradient_magnitude_scharr_16u(s), gm_f, t1, t2)
        for s in (a, b)
    ]
    return float((scores[0] + scores[1]) / 2.0)
