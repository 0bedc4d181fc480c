"""The guided filter (He, Sun, Tang) and guided-filtering fusion, GFF (Li, Kang, Hu).

Both follow the authors' MATLAB code where the paper leaves a detail open:

- the guided filter's box means use windows clipped at the image border, each divided by the
  number of pixels inside it (He's ``boxfilter(ones)`` normalisation); ``border`` offers OpenCV's
  padded variants instead (OpenCV-contrib's ``cv2.ximgproc.guidedFilter`` pads by reflection);
- GFF's Laplacian is [0 1 0; 1 -4 1; 0 1 0], its Gaussian is 11x11 with sigma 5 (r_g = 5), its
  mean filter is 31x31, all with replicated borders (MATLAB ``imfilter(..., 'replicate')``);
- the optimised weight maps are clipped to [0, 1] and renormalised to sum to one, as the code
  does (it also rounds them to 8 bits, which is not reproduced).
"""

from __future__ import annotations

import cv2
import numpy as np

from ._common import check_pair, check_positive_float, check_positive_int, finish

__all__ = ["box_mean", "guided_filter", "gff_fuse", "GUIDED_FILTER_BORDERS"]

#: border handling of the box means: "clip" is He et al.'s (windows cut at the border)
GUIDED_FILTER_BORDERS = {
    "clip": None,
    "reflect": cv2.BORDER_REFLECT,  # abc|cba
    "reflect101": cv2.BORDER_REFLECT_101,  # abc|ba
    "replicate": cv2.BORDER_REPLICATE,  # abc|cc
}

_LAPLACIAN_3X3 = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def box_mean(image: np.ndarray, radius: int, border: str = "clip") -> np.ndarray:
    """Mean over the (2r+1) x (2r+1) window around each pixel, with OpenCV box filters.

    ``border="clip"``: the window is cut at the image border and the mean is taken over the
    pixels inside it (sum with zero padding, divided by the in-image pixel count).
    """
    if border not in GUIDED_FILTER_BORDERS:
        raise ValueError(f"border must be one of {sorted(GUIDED_FILTER_BORDERS)}, got {border!r}")
    image = np.asarray(image, dtype=np.float64)
    size = (2 * radius + 1, 2 * radius + 1)
    if border == "clip":
        sums = cv2.boxFilter(image, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
        counts = cv2.boxFilter(np.ones_like(image), -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
        return sums / counts
    return cv2.boxFilter(image, -1, size, normalize=True, borderType=GUIDED_FILTER_BORDERS[border])


def guided_filter(guide, src, radius: int, eps: float, border: str = "clip") -> np.ndarray:
    """He, Sun, Tang, "Guided Image Filtering" (ECCV 2010; IEEE TPAMI 2013), grey guide.

    q = mean_a * I + mean_b with a = cov(I, p) / (var(I) + eps), b = mean(p) - a * mean(I), all
    means over (2r+1)^2 windows (:func:`box_mean`). Returns float64, same shape as ``src``.
    """
    guide = np.asarray(guide, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)
    if guide.ndim != 2 or guide.shape != src.shape:
        raise ValueError(f"guide and src must be 2-D arrays of the same shape, got {guide.shape} and {src.shape}")
    radius = check_positive_int(radius, "radius", minimum=0)
    eps = check_positive_float(eps, "eps", allow_zero=True)
    mean_i = box_mean(guide, radius, border)
    mean_p = box_mean(src, radius, border)
    var_i = box_mean(guide * guide, radius, border) - mean_i * mean_i
    cov_ip = box_mean(guide * src, radius, border) - mean_i * mean_p
    # var_i >= 0 in exact arithmetic; round-off can make it a hair negative on flat regions
    a = cov_ip / (np.maximum(var_i, 0.0) + eps) if eps > 0 else _safe_divide(cov_ip, var_i)
    b = mean_p - a * mean_i
    return box_mean(a, radius, border) * guide + box_mean(b, radius, border)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def gff_fuse(
    mri,
    pet,
    r1: int = 45,
    eps1: float = 0.3,
    r2: int = 7,
    eps2: float = 1e-6,
    mean_size: int = 31,
    gauss_radius: int = 5,
    gauss_sigma: float = 5.0,
    ties: str = "paper",
) -> np.ndarray:
    """Guided-filtering fusion: S. Li, X. Kang, J. Hu, "Image Fusion With Guided Filtering",
    IEEE Trans. Image Processing 22(7):2864-2875, 2013.

    1. Two-scale decomposition: base B = I * Z (``mean_size`` x ``mean_size`` mean filter, 31),
       detail D = I - B.
    2. Saliency S = |I * L| * g (3x3 Laplacian L, Gaussian g of size 2 r_g + 1 = 11 with
       sigma_g = 5: ``gauss_radius``, ``gauss_sigma``).
    3. Binary maps P_n = 1 where S_n is the largest saliency. ``ties="paper"``: every image whose
       saliency equals the maximum gets 1 (the paper's equation; symmetric in the inputs);
       ``ties="first"``: the first (MRI) wins ties, as MATLAB's ``max`` in the authors' code.
    4. Weights W_B = G_{r1,eps1}(P, I), W_D = G_{r2,eps2}(P, I): the guided filter with the source
       image as guide; the paper's r1 = 45, eps1 = 0.3, r2 = 7, eps2 = 1e-6 (for [0, 1] images).
       Clipped to [0, 1] and normalised to sum to one at each pixel, as in the authors' code.
    5. F = sum W_B B + sum W_D D; float32, clipped to [0, 1].
    """
    a, b = check_pair(mri, pet)
    r1 = check_positive_int(r1, "r1", minimum=0)
    r2 = check_positive_int(r2, "r2", minimum=0)
    eps1 = check_positive_float(eps1, "eps1")
    eps2 = check_positive_float(eps2, "eps2")
    mean_size = check_positive_int(mean_size, "mean_size")
    gauss_radius = check_positive_int(gauss_radius, "gauss_radius", minimum=0)
    gauss_sigma = check_positive_float(gauss_sigma, "gauss_sigma")
    if ties not in ("paper", "first"):
        raise ValueError(f"ties must be 'paper' or 'first', got {ties!r}")
    images = (a, b)

    gauss_size = (2 * gauss_radius + 1, 2 * gauss_radius + 1)
    saliency = [
        cv2.GaussianBlur(
            np.abs(cv2.filter2D(image, -1, _LAPLACIAN_3X3, borderType=cv2.BORDER_REPLICATE)),
            gauss_size,
            gauss_sigma,
            borderType=cv2.BORDER_REPLICATE,
        )
        for image in images
    ]
    if ties == "paper":
        top = np.maximum(saliency[0], saliency[1])
        masks = [(s == top).astype(np.float64) for s in saliency]
    else:
        first = saliency[0] >= saliency[1]
        masks = [first.astype(np.float64), (~first).astype(np.float64)]

    def weights(radius: int, eps: float) -> list[np.ndarray]:
        w = [np.clip(guided_filter(image, mask, radius, eps), 0.0, 1.0) + 1e-12 for image, mask in zip(images, masks)]
        total = w[0] + w[1]
        return [wi / total for wi in w]

    w_base = weights(r1, eps1)
    w_detail = weights(r2, eps2)
    fused = np.zeros_like(a)
    for image, wb, wd in zip(images, w_base, w_detail):
        base = cv2.blur(image, (mean_size, mean_size), borderType=cv2.BORDER_REPLICATE)
        fused += wb * base + wd * (image - base)
    return finish(fused)
