"""Shared helpers of the metric suite: input checks and MATLAB-equivalent primitives.

Everything here reproduces a MATLAB (or numpy-era Python) building block exactly, so that the
metric modules can follow the reference implementations line for line without per-pixel loops:

- :func:`as_image` / :func:`check_triplet`: every metric takes 2-D float arrays of one size and
  refuses NaN/inf (a clear error, never a silent NaN result);
- :func:`matlab_rgb2gray`: MATLAB's ``rgb2gray`` (its exact weights; rounded to integers for 8-bit
  input, as MATLAB returns uint8 for uint8 input);
- :func:`fspecial_gaussian`: MATLAB's ``fspecial('gaussian', n, sigma)`` (taps below
  eps * max set to zero, then normalised);
- :func:`filter2`: MATLAB's ``filter2`` (correlation with zero padding, 'same' or 'valid') and
  :func:`conv2` (true convolution);
- :func:`matlab_edge_sobel`: MATLAB's default ``edge(I)`` (Sobel, automatic threshold, thinning).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

__all__ = [
    "MetricInputError",
    "MATLAB_RGB2GRAY_WEIGHTS",
    "as_image",
    "check_triplet",
    "check_pair",
    "matlab_rgb2gray",
    "matlab_round",
    "fspecial_gaussian",
    "filter2",
    "filter2_separable",
    "gaussian_taps",
    "conv2",
    "matlab_edge_sobel",
    "xlogx",
]

#: MATLAB rgb2gray's weights (the first row of the inverse of the NTSC YIQ transform).
MATLAB_RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


class MetricInputError(ValueError):
    """An image a metric cannot score (wrong shape, sizes differ, NaN/inf, constant where forbidden)."""


def as_image(image, name: str = "image") -> np.ndarray:
    """A 2-D float64 copy-free view of ``image``; NaN/inf or a wrong rank is an error."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise MetricInputError(f"{name}: a metric needs a 2-D grey image, got shape {array.shape}")
    if array.size == 0:
        raise MetricInputError(f"{name}: the image is empty")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise MetricInputError(f"{name}: the image contains NaN or infinite values")
    return array


def check_pair(x, y, names=("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    x = as_image(x, names[0])
    y = as_image(y, names[1])
    if x.shape != y.shape:
        raise MetricInputError(f"{names[0]} is {x.shape} but {names[1]} is {y.shape}: sizes must agree")
    return x, y


def check_triplet(fused, a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fused, source A, source B) as float64 2-D arrays of one size."""
    fused = as_image(fused, "fused")
    a = as_image(a, "source A")
    b = as_image(b, "source B")
    if not (fused.shape == a.shape == b.shape):
        raise MetricInputError(
            f"fused {fused.shape}, source A {a.shape} and source B {b.shape}: all three must have the same size"
        )
    return fused, a, b


def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``round``: halves away from zero (numpy's ``round`` goes to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def matlab_rgb2gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` as float64.

    For uint8 input MATLAB returns uint8, i.e. the weighted sum rounded half away from zero (and
    saturated); float input keeps the unrounded weighted sum. A 2-D input is returned unchanged.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise MetricInputError(f"rgb2gray expects an (H, W, 3) image, got shape {rgb.shape}")
    weights = np.asarray(MATLAB_RGB2GRAY_WEIGHTS)
    grey = rgb[..., :3].astype(np.float64) @ weights
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        grey = np.clip(matlab_round(grey), info.min, info.max)
    return grey


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: a normalised size x size Gaussian."""
    half = (size - 1) / 2.0
    y, x = np.ogrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    total = h.sum()
    return h / total if total != 0 else h


def filter2(kernel: np.ndarray, image: np.ndarray, shape: str = "same") -> np.ndarray:
    """MATLAB ``filter2(kernel, image, shape)``: 2-D correlation, zero padding.

    'same' keeps the size (odd kernels centred as MATLAB centres them); 'valid' keeps only the
    positions where the kernel lies fully inside the image. Direct summation (no FFT), so that
    thresholds applied afterwards (variances < 1e-10 ...) see the same kind of round-off as MATLAB.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if shape == "same":
        if np.iscomplexobj(image):
            return filter2(kernel, image.real, "same") + 1j * filter2(kernel, image.imag, "same")
        if kernel.shape[0] % 2 == 1 and kernel.shape[1] % 2 == 1:
            return ndimage.correlate(np.asarray(image, dtype=np.float64), kernel, mode="constant", cval=0.0)
        return signal.correlate2d(image, kernel, mode="same")
    if shape == "valid":
        return signal.correlate2d(image, kernel, mode="valid")
    raise ValueError(f"filter2 shape must be 'same' or 'valid', got {shape!r}")


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps whose outer product is ``fspecial('gaussian', size, sigma)``
    (exactly so whenever fspecial's eps-truncation removes nothing, as for every window the
    metrics use: their smallest tap is > 1e-6 of the largest)."""
    half = (size - 1) / 2.0
    x = np.arange(-half, half + 1)
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def filter2_separable(taps: np.ndarray, image: np.ndarray, shape: str = "valid") -> np.ndarray:
    """``filter2(outer(taps, taps), image, shape)`` done as two 1-D passes (odd, symmetric or not).

    Mathematically identical to :func:`filter2` with the outer-product kernel; the sums are
    ordered differently, so results agree to round-off (~1e-16 relative).
    """
    taps = np.asarray(taps, dtype=np.float64)
    if taps.size % 2 == 0:
        raise ValueError("filter2_separable needs an odd number of taps")
    image = np.asarray(image, dtype=np.float64)
    out = ndimage.correlate1d(image, taps, axis=0, mode="constant", cval=0.0)
    out = ndimage.correlate1d(out, taps, axis=1, mode="constant", cval=0.0)
    if shape == "same":
        return out
    if shape == "valid":
        r = taps.size // 2
        if min(image.shape) < taps.size:
            return np.zeros((max(image.shape[0] - 2 * r, 0), max(image.shape[1] - 2 * r, 0)))
        return out[r : image.shape[0] - r, r : image.shape[1] - r]
    raise ValueError(f"filter2 shape must be 'same' or 'valid', got {shape!r}")


def conv2(image: np.ndarray, kernel: np.ndarray, shape: str = "same") -> np.ndarray:
    """MATLAB ``conv2(image, kernel, shape)``: true 2-D convolution, zero padding."""
    return filter2(np.rot90(np.asarray(kernel, dtype=np.float64), 2), image, shape)


#: MATLAB's ``eps`` (the double-precision machine epsilon, 2^-52).
MATLAB_EPS = float(np.finfo(np.float64).eps)


def matlab_edge_sobel(image, return_magnitude: bool = False):
    """MATLAB's default ``edge(I)``: Sobel method, automatic threshold, thinning on, both directions.

    Follows the Sobel branch of MathWorks' ``edge.m`` (its code-generation version, which spells
    out in M-code what the desktop builtins compute): the image (kept as doubles: DILRAN's
    ``analysis_fmi.m`` passes ``double(uint8 image)``, 0-255) is correlated with
    ``fspecial('sobel') / 8`` = [1 2 1; 0 0 0; -1 -2 -1] / 8 for ``by`` and its transpose for
    ``bx``, borders replicated (``imfilter(..., 'replicate')``); ``b = bx.^2 + by.^2``; the
    cutoff is ``4 * sum(b) / numel(b)`` (scale 4: four times the mean squared gradient, i.e. a
    threshold of 2 x the RMS gradient). With thinning, pixel (r, c) is an edge when
    ``b(r, c) > cutoff`` and

    - ``|bx| >= |by| - 100 eps`` and ``b(r, c-1) <= b(r, c)`` and ``b(r, c) > b(r, c+1)``
      (a maximum across a mostly vertical edge, ties resolved to the right-hand pixel), or
    - ``|by| >= |bx| - 100 eps`` and ``b(r-1, c) <= b(r, c)`` and ``b(r, c) > b(r+1, c)``;

    a neighbour outside the image counts as satisfied (border pixels can be edges). Vectorised:
    the neighbour comparisons are shifted arrays padded with -inf. Returns a bool map (and b
    when ``return_magnitude``). A constant image has b = 0 = cutoff, hence no edges.

    For integer-valued input (8-bit images) every step is exact in double precision (the masks
    are multiples of 1/8), so the map cannot depend on summation order.
    """
    a = as_image(image)
    op = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 8.0
    bx = ndimage.correlate(a, op.T, mode="nearest")  # imfilter: correlation, 'replicate'
    by = ndimage.correlate(a, op, mode="nearest")
    b = bx * bx + by * by
    cutoff = 4.0 * np.sum(b) / b.size
    abx, aby = np.abs(bx), np.abs(by)
    padded = np.pad(b, 1, mode="constant", constant_values=-np.inf)
    left, right = padded[1:-1, :-2], padded[1:-1, 2:]
    up, down = padded[:-2, 1:-1], padded[2:, 1:-1]
    tol = 100.0 * MATLAB_EPS
    across_columns = (abx >= aby - tol) & (left <= b) & (b > right)
    across_rows = (aby >= abx - tol) & (up <= b) & (b > down)
    edges = (b > cutoff) & (across_columns | across_rows)
    return (edges, b) if return_magnitude else edges


def xlogx(p: np.ndarray, log=np.log2) -> np.ndarray:
    """p * log(p) with 0 log 0 = 0 (elementwise)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros_like(p)
    nz = p > 0
    out[nz] = p[nz] * log(p[nz])
    return out
