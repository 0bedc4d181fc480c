"""Energy-based colour enhancement of a fused image: an INTERPRETATION of MdAFuse's.

MdAFuse (Wen et al., IEEE TIP 2024) colours its grey fused result so that the energy of the
functional image (PET / SPECT) stays visible, to follow lesions over time. Its formulas are not in
the released code and the paper text was not available to us, so this module implements a
documented method in that spirit (FIDELITY.md, MdAFuse, "Colour enhancement"):

1. Luma. ``Y = fused`` (clipped to [0, 1], or min-max scaled with ``scale="minmax"``). The
   structure of the output is exactly the fused image's: the output's BT.601 luma
   0.299 R + 0.587 G + 0.114 B equals Y at every pixel.
2. Colour. ``(Cb, Cr)`` = the chroma of the functional image's pseudo-colour RGB (full-range
   BT.601 YCbCr, zero-centred: Cb = (B - Y_f) / 1.772, Cr = (R - Y_f) / 1.402).
3. Energy. ``E = G_sigma * I**2``, the local energy of the functional intensity ``I`` (the luma of
   the pseudo-colour image unless ``intensity`` is given) smoothed by a Gaussian of ``sigma``
   pixels, normalised by its maximum to [0, 1].
4. Modulation. ``(Cb, Cr)_out = gain * E**exponent * (Cb, Cr)``: colour is kept where the
   functional signal is strong and fades to grey where it is weak. ``gain = 0`` gives the grey
   fused image; ``exponent > 1`` keeps colour only in the strongest regions.
5. Gamut. Where Y + chroma would leave the RGB cube, the chroma of that pixel is scaled down by
   the largest factor in [0, 1] that keeps R, G and B in [0, 1]. Scaling chroma never changes
   luma, so step 1's guarantee holds for every output pixel, and the hue (Cb : Cr) is kept.

Parameters: ``sigma`` (smoothing, pixels), ``gain`` (chroma gain), ``exponent`` (energy exponent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "BT601",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "local_energy",
    "enhance_colour",
    "ycbcr_colour",
    "colourise",
    "COLOUR_MODES",
    "load_rgb",
]

#: Luma weights of ITU-R BT.601 (the package's grey conversion 0.2989/0.5870/0.1140 rounded).
BT601 = (0.299, 0.587, 0.114)
_CB_SCALE = 2.0 * (1.0 - BT601[2])  # 1.772
_CR_SCALE = 2.0 * (1.0 - BT601[0])  # 1.402


def _as_rgb(rgb, name: str) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) RGB image, got shape {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float64) / 255.0
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: the image contains NaN or infinite values")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"{name}: RGB values must lie in [0, 1] (or be uint8), got [{array.min():g}, {array.max():g}]")
    return array


def rgb_to_ycbcr(rgb) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-range BT.601 (Y, Cb, Cr) of an RGB image in [0, 1]; Cb and Cr are zero-centred."""
    rgb = np.asarray(rgb, dtype=np.float64)
    y = BT601[0] * rgb[..., 0] + BT601[1] * rgb[..., 1] + BT601[2] * rgb[..., 2]
    return y, (rgb[..., 2] - y) / _CB_SCALE, (rgb[..., 0] - y) / _CR_SCALE


def ycbcr_to_rgb(y, cb, cr) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (no clipping)."""
    y, cb, cr = (np.asarray(a, dtype=np.float64) for a in (y, cb, cr))
    red = y + _CR_SCALE * cr
    blue = y + _CB_SCALE * cb
    green = (y - BT601[0] * red - BT601[2] * blue) / BT601[1]
    return np.stack([red, green, blue], axis=-1)


def local_energy(intensity, sigma: float = 3.0) -> np.ndarray:
    """Gaussian-smoothed squared intensity, divided by its maximum (all zeros for a zero image)."""
    from scipy.ndimage import gaussian_filter

    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    intensity = np.asarray(intensity, dtype=np.float64)
    if intensity.ndim != 2:
        raise ValueError(f"intensity: expected an (H, W) image, got shape {intensity.shape}")
    energy = intensity**2
    if sigma > 0:
        energy = gaussian_filter(energy, sigma, mode="reflect")
    peak = float(energy.max())
    return energy / peak if peak > 0 else np.zeros_like(energy)


def _gamut_factor(y: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Largest s in [0, 1] per pixel with 0 <= y + s * delta[..., k] <= 1 for k = R, G, B."""
    factor = np.ones_like(y)
    for k in range(3):
        d = delta[..., k]
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where(d > 0, (1.0 - y) / d, np.inf)
            down = np.where(d < 0, y / -d, np.inf)
        factor = np.minimum(factor, np.minimum(up, down))
    return np.clip(factor, 0.0, 1.0)


def _prepare(fused, functional_rgb, scale: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (fused, luma in [0, 1], functional RGB in [0, 1]) for the colouring functions."""
    if scale not in ("clip", "minmax"):
        raise ValueError(f"scale must be 'clip' or 'minmax', got {scale!r}")
    fused = np.asarray(fused, dtype=np.float64)
    if fused.ndim != 2:
        raise ValueError(f"fused: expected an (H, W) image, got shape {fused.shape}")
    if not np.all(np.isfinite(fused)):
        raise ValueError("fused: the image contains NaN or infinite values")
    colour = _as_rgb(functional_rgb, "functional_rgb")
    if colour.shape[:2] != fused.shape:
        raise ValueError(f"fused {fused.shape} and functional_rgb {colour.shape[:2]} differ in size")
    if scale == "clip":
        luma = np.clip(fused, 0.0, 1.0)
    else:
        low, high = fused.min(), fused.max()
        luma = (fused - low) / (high - low) if high > low else np.zeros_like(fused)
    return fused, luma, colour


def ycbcr_colour(fused, functional_rgb, scale: str = "clip") -> np.ndarray:
    """The YCbCr colour transfer: luma from the grey fused image, chroma from the functional one.

    The usual way MRI-PET/SPECT fusion papers colour a grey result (DILRAN's paper among them,
    FIDELITY.md L12): convert the pseudo-colour PET/SPECT to full-range BT.601 YCbCr, fuse its
    Y with the MRI (the package's grey PET is that Y up to rounding, D2), and put the fused image
    back as Y beside the functional image's own Cb and Cr. RGB values that leave [0, 1] are
    clipped (so the luma equals the fused image wherever no clipping happens). ``scale`` as in
    :func:`enhance_colour`. Returns (H, W, 3) float64 RGB in [0, 1].
    """
    _, luma, colour = _prepare(fused, functional_rgb, scale)
    _, cb, cr = rgb_to_ycbcr(colour)
    return np.clip(ycbcr_to_rgb(luma, cb, cr), 0.0, 1.0)


#: The colour modes of ``funfusean fuse --colour`` / :func:`funfusean_tf.fusion.fuse_pairs`.
COLOUR_MODES = ("none", "ycbcr", "energy")


def colourise(fused_uint8: np.ndarray, functional_rgb, mode: str) -> np.ndarray:
    """An 8-bit grey fused image coloured by ``mode`` ("ycbcr" or "energy") as 8-bit RGB.

    The grey file and the coloured one share their luma: the colouring starts from the 8-bit
    image (/ 255), not from the network's float output.
    """
    if mode not in COLOUR_MODES[1:]:
        raise ValueError(f"colour mode must be one of {COLOUR_MODES[1:]}, got {mode!r}")
    luma = np.asarray(fused_uint8, dtype=np.float64) / 255.0
    rgb = ycbcr_colour(luma, functional_rgb) if mode == "ycbcr" else enhance_colour(luma, functional_rgb)
    return np.uint8(np.round(255.0 * rgb))


def enhance_colour(
    fused,
    functional_rgb,
    sigma: float = 3.0,
    gain: float = 1.0,
    exponent: float = 1.0,
    intensity=None,
    scale: str = "clip",
) -> np.ndarray:
    """Colour a grey fused image with the functional image's chroma, weighted by its local energy.

    ``fused``: (H, W) fused image (a network's raw output is fine: see ``scale``).
    ``functional_rgb``: (H, W, 3) pseudo-colour PET / SPECT, float in [0, 1] or uint8.
    ``intensity``: (H, W) functional intensity for the energy (default: the luma of
    ``functional_rgb``; pass the grey PET when the colour map's luma is not monotonic).
    ``scale``: ``"clip"`` (luma = fused clipped to [0, 1]) or ``"minmax"`` (min-max scaled).

    Returns (H, W, 3) float64 RGB in [0, 1] whose BT.601 luma is the prepared fused image exactly.
    See the module docstring for the method; it is an interpretation, not the authors' formula.
    """
    if gain < 0 or not np.isfinite(gain):
        raise ValueError(f"gain must be a finite number >= 0, got {gain}")
    if exponent < 0 or not np.isfinite(exponent):
        raise ValueError(f"exponent must be a finite number >= 0, got {exponent}")
    fused, luma, colour = _prepare(fused, functional_rgb, scale)
    functional_luma, cb, cr = rgb_to_ycbcr(colour)
    if intensity is None:
        intensity = functional_luma
    elif np.shape(intensity) != fused.shape:
        raise ValueError(f"intensity {np.shape(intensity)} and fused {fused.shape} differ in size")
    weight = gain * local_energy(intensity, sigma) ** exponent
    cb, cr = weight * cb, weight * cr

    delta = ycbcr_to_rgb(np.zeros_like(luma), cb, cr)  # the chroma's contribution to R, G, B
    factor = _gamut_factor(luma, delta)
    rgb = luma[..., None] + factor[..., None] * delta
    return np.clip(rgb, 0.0, 1.0)  # only rounding-level overshoots remain to be clipped


def load_rgb(path) -> np.ndarray:
    """An image file as (H, W, 3) float64 RGB in [0, 1] (for pseudo-colour PET / SPECT PNGs)."""
    from PIL import Image

    from PIL import UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    except UnidentifiedImageError as exc:
        raise ValueError(f"{path}: not a colour image file (colouring needs the pseudo-colour PET/SPECT as "
                         "PNG, GIF, JPEG, ...)") from exc
