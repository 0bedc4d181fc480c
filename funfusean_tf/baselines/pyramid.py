"""Laplacian pyramid (Burt & Adelson) and Laplacian-pyramid fusion, via cv2.pyrDown / cv2.pyrUp."""

from __future__ import annotations

import cv2
import numpy as np

from ._common import check_pair, check_positive_int, finish, max_abs

__all__ = ["laplacian_pyramid", "reconstruct_laplacian_pyramid", "laplacian_pyramid_fuse", "check_levels"]


def check_levels(shape: tuple[int, int], levels, min_base: int = 1) -> int:
    """``levels`` as an int, or a ValueError when the image is too small for that many halvings."""
    levels = check_positive_int(levels, "levels")
    height, width = shape
    base_h, base_w = height, width
    for _ in range(levels):
        base_h, base_w = (base_h + 1) // 2, (base_w + 1) // 2
    if min(height, width) < 2**levels or min(base_h, base_w) < min_base:
        raise ValueError(
            f"a {height}x{width} image is too small for {levels} pyramid level(s) "
            f"(the base would be {base_h}x{base_w}"
            + (f", and it must be at least {min_base}x{min_base}" if min_base > 1 else "")
            + "); use fewer levels"
        )
    return levels


def laplacian_pyramid(image, levels: int) -> list[np.ndarray]:
    """[L_0, ..., L_{levels-1}, G_levels]: ``levels`` detail (band-pass) images, finest first,
    then the low-pass base.

    G_0 = image, G_{k+1} = pyrDown(G_k), L_k = G_k - pyrUp(G_{k+1}) (5-tap binomial kernel
    [1 4 6 4 1]/16, OpenCV's default reflect-101 border), computed in float64.
    """
    current = np.asarray(image, dtype=np.float64)
    if current.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {current.shape}")
    levels = check_levels(current.shape, levels)
    pyramid = []
    for _ in range(levels):
        down = cv2.pyrDown(current)
        up = cv2.pyrUp(down, dstsize=(current.shape[1], current.shape[0]))
        pyramid.append(current - up)
        current = down
    pyramid.append(current)
    return pyramid


def reconstruct_laplacian_pyramid(pyramid: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid`: G_k = L_k + pyrUp(G_{k+1}), from the base up."""
    if len(pyramid) < 2:
        raise ValueError("a pyramid needs at least one detail level and a base")
    current = np.asarray(pyramid[-1], dtype=np.float64)
    for detail in reversed(pyramid[:-1]):
        current = cv2.pyrUp(current, dstsize=(detail.shape[1], detail.shape[0])) + detail
    return current


def laplacian_pyramid_fuse(mri, pet, levels: int = 4) -> np.ndarray:
    """Laplacian-pyramid fusion: P. J. Burt, E. H. Adelson, "The Laplacian Pyramid as a Compact
    Image Code", IEEE Trans. Communications 31(4):532-540, 1983 (pyramid); fusion rule as in
    Burt's pyramid fusion: max-absolute on each detail level, average on the base.

    ``levels``: number of detail levels (4: a 256x256 pair has a 16x16 base). Ties of the
    max-absolute rule take the mean (symmetric). Float32 out, clipped to [0, 1].
    """
    a, b = check_pair(mri, pet)
    levels = check_levels(a.shape, levels)
    pa, pb = laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)
    fused = [max_abs(da, db) for da, db in zip(pa[:-1], pb[:-1])]
    fused.append(0.5 * (pa[-1] + pb[-1]))
    return finish(reconstruct_laplacian_pyramid(fused))
