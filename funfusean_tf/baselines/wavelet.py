"""Discrete wavelet transform fusion with PyWavelets."""

from __future__ import annotations

import numpy as np

from ._common import check_pair, check_positive_int, finish, max_abs

__all__ = ["dwt_fuse"]


def dwt_fuse(mri, pet, wavelet: str = "db2", levels: int = 3, mode: str = "symmetric") -> np.ndarray:
    """DWT fusion: H. Li, B. S. Manjunath, S. K. Mitra, "Multisensor Image Fusion Using the
    Wavelet Transform", Graphical Models and Image Processing 57(3):235-245, 1995, with the
    plain pixel rules: max-absolute on every detail sub-band, average on the approximation.

    ``wavelet``: any PyWavelets discrete wavelet name (default "db2"); ``levels``: decomposition
    depth (default 3; more than ``pywt.dwt_max_level`` allows for the image is a ValueError);
    ``mode``: PyWavelets signal extension mode (default "symmetric"). Ties of max-absolute take the mean (symmetric).
    Float32 out, clipped to [0, 1].
    """
    import pywt

    a, b = check_pair(mri, pet)
    levels = check_positive_int(levels, "levels")
    try:
        wave = pywt.Wavelet(wavelet)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"wavelet must be a PyWavelets discrete wavelet name (e.g. 'db2', 'haar', 'sym4'), got {wavelet!r}") from exc
    if mode not in pywt.Modes.modes:
        raise ValueError(f"mode must be one of {pywt.Modes.modes}, got {mode!r}")
    max_level = pywt.dwt_max_level(min(a.shape), wave.dec_len)
    if levels > max_level:
        raise ValueError(
            f"a {a.shape[0]}x{a.shape[1]} image allows at most {max_level} level(s) of the {wavelet!r} wavelet, "
            f"got levels={levels}"
        )
    ca = pywt.wavedec2(a, wave, mode=mode, level=levels)
    cb = pywt.wavedec2(b, wave, mode=mode, level=levels)
    fused = [0.5 * (ca[0] + cb[0])]
    for da, db in zip(ca[1:], cb[1:]):
        fused.append(tuple(max_abs(x, y) for x, y in zip(da, db)))
    image = pywt.waverec2(fused, wave, mode=mode)
    return finish(image[: a.shape[0], : a.shape[1]])
