"""LP-SR: Laplacian pyramid + sparse representation fusion (Liu, Liu, Wang 2015).

Follows the paper and its authors' MATLAB code (``lp_sr_fuse.m``, ``sparse_fusion.m``):

- Laplacian pyramid with 4 levels (cv2.pyrDown / pyrUp here; the authors' own pyramid uses the
  same [1 4 6 4 1]/16 kernel);
- low-pass band: sliding 8x8 patches, each patch's mean removed, OMP with error tolerance
  epsilon = 0.1 (||y - D x||_2 <= epsilon), "max-L1" rule (the patch whose code has the larger
  L1 norm wins, with its own mean), overlapping patches averaged; pixels no patch covers (only
  when the step does not divide the size) take the average of the two bands;
- high-pass bands: max-absolute with a 3x3 consistency check (Li et al.'s rule: activity is
  the 3x3 maximum of |coefficient|, the source winning most of the 3x3 neighbourhood is kept;
  selc.m option 3) by default, or plain max-absolute.

Scale: the authors run everything on 0-255 images, so their epsilon = 0.1 is on that scale.
Inputs here are [0, 1]; ``intensity_scale=255`` multiplies the low-pass band by 255 before
sparse coding so that ``epsilon`` keeps the paper's meaning.

Dictionary: the paper's 256-atom 8x8 K-SVD dictionary was learned from natural images that are
not available here; the package ships ``lpsr_dictionary.npy`` (64 x 256, same shape), learned
with scikit-learn's MiniBatchDictionaryLearning from the greyscale images scikit-image ships, by
``scripts/make_lpsr_dictionary.py`` (fixed seed). Pass ``dictionary=`` to use another one.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import cv2
import numpy as np

from ._common import check_pair, check_positive_float, check_positive_int, finish, max_abs
from .pyramid import check_levels, laplacian_pyramid, reconstruct_laplacian_pyramid

__all__ = [
    "DICTIONARY_PATH",
    "load_dictionary",
    "sparse_codes",
    "sparse_fuse",
    "max_abs_consistent",
    "lp_sr_fuse",
]

DICTIONARY_PATH = Path(__file__).with_name("lpsr_dictionary.npy")


@functools.lru_cache(maxsize=4)
def _load(path: str) -> np.ndarray:
    try:
        dictionary = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: the LP-SR dictionary is missing; regenerate it with scripts/make_lpsr_dictionary.py"
        ) from None
    dictionary = _check_dictionary(dictionary)
    dictionary.setflags(write=False)
    return dictionary


def _check_dictionary(dictionary) -> np.ndarray:
    dictionary = np.asarray(dictionary, dtype=np.float64)
    if dictionary.ndim != 2:
        raise ValueError(f"a dictionary must be 2-D (patch pixels x atoms), got shape {dictionary.shape}")
    side = int(round(np.sqrt(dictionary.shape[0])))
    if side * side != dictionary.shape[0] or side < 2:
        raise ValueError(f"a dictionary's rows must be the pixels of a square patch, got {dictionary.shape[0]} rows")
    if not np.all(np.isfinite(dictionary)):
        raise ValueError("the dictionary contains NaN or infinite values")
    norms = np.linalg.norm(dictionary, axis=0)
    if np.any(norms == 0):
        raise ValueError("the dictionary has an all-zero atom")
    return dictionary / norms  # unit-norm atoms, as sparse_fusion.m normalises them


def load_dictionary(path=None) -> np.ndarray:
    """The LP-SR dictionary as float64 (patch pixels x atoms, row-major patches, unit-norm
    columns), read once and cached. Default: the shipped ``lpsr_dictionary.npy``."""
    return _load(str(Path(path) if path is not None else DICTIONARY_PATH))


def sparse_codes(signals: np.ndarray, dictionary: np.ndarray, epsilon: float) -> np.ndarray:
    """Error-constrained OMP for each row of ``signals``: the sparsest x with ||y - D x||_2 <=
    epsilon (scikit-learn's Gram OMP; its ``tol`` is the squared residual norm). Returns
    (n_signals, n_atoms). Signals already within epsilon of zero get an all-zero code.
    """
    from sklearn.linear_model import orthogonal_mp_gram

    signals = np.asarray(signals, dtype=np.float64)
    codes = np.zeros((signals.shape[0], dictionary.shape[1]))
    norms_sq = np.einsum("ij,ij->i", signals, signals)
    tol = float(epsilon) ** 2
    active = norms_sq > tol
    if np.any(active):
        gram = dictionary.T @ dictionary
        xy = dictionary.T @ signals[active].T
        with warnings.catch_warnings():
            # "ended prematurely due to linear dependence": the residual is then as small as the
            # dictionary allows, which is what the MATLAB OMP-Box returns too
            warnings.simplefilter("ignore", RuntimeWarning)
            coef = orthogonal_mp_gram(gram, xy, tol=tol, norms_squared=norms_sq[active], copy_Xy=False)
        codes[active] = np.asarray(coef).reshape(dictionary.shape[1], -1).T
    return codes


def sparse_fuse(a: np.ndarray, b: np.ndarray, dictionary: np.ndarray, step: int = 1, epsilon: float = 0.1) -> np.ndarray:
    """Liu's ``sparse_fusion``: SR fusion of two same-size images (no Python loop over patches).

    Each (p x p) patch at positions 0, step, 2 step, ... is mean-removed and coded by OMP; the
    code with the larger L1 norm wins together with its patch's mean (an exact L1 tie takes the
    mean of the two codes and of the two means: symmetric, and the same patch when they agree).
    Overlaps are averaged; uncovered pixels take (a + b) / 2.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    side = int(round(np.sqrt(dictionary.shape[0])))
    h, w = a.shape
    if h < side or w < side:
        raise ValueError(f"the low-pass band is {h}x{w}, smaller than the {side}x{side} patches; use fewer levels")
    windows_a = np.lib.stride_tricks.sliding_window_view(a, (side, side))[::step, ::step]
    windows_b = np.lib.stride_tricks.sliding_window_view(b, (side, side))[::step, ::step]
    grid_h, grid_w = windows_a.shape[:2]
    pa = windows_a.reshape(-1, side * side)
    pb = windows_b.reshape(-1, side * side)
    mean_a, mean_b = pa.mean(axis=1), pb.mean(axis=1)
    codes_a = sparse_codes(pa - mean_a[:, None], dictionary, epsilon)
    codes_b = sparse_codes(pb - mean_b[:, None], dictionary, epsilon)
    l1_a, l1_b = np.abs(codes_a).sum(axis=1), np.abs(codes_b).sum(axis=1)
    pick_a = (l1_a > l1_b)[:, None]
    pick_b = (l1_a < l1_b)[:, None]
    codes = np.where(pick_a, codes_a, np.where(pick_b, codes_b, 0.5 * (codes_a + codes_b)))
    means = np.where(pick_a[:, 0], mean_a, np.where(pick_b[:, 0], mean_b, 0.5 * (mean_a + mean_b)))
    patches = (codes @ dictionary.T + means[:, None]).reshape(grid_h, grid_w, side, side)

    fused = np.zeros_like(a)
    count = np.zeros_like(a)
    span_h, span_w = step * (grid_h - 1) + 1, step * (grid_w - 1) + 1
    for dy in range(side):  # loop over the p*p offsets inside a patch, vectorised over patches
        for dx in range(side):
            fused[dy : dy + span_h : step, dx : dx + span_w : step] += patches[:, :, dy, dx]
            count[dy : dy + span_h : step, dx : dx + span_w : step] += 1.0
    uncovered = count == 0
    fused[uncovered] = 0.5 * (a[uncovered] + b[uncovered])
    count[uncovered] = 1.0
    return fused / count


def max_abs_consistent(a: np.ndarray, b: np.ndarray, window: int = 3) -> np.ndarray:
    """Max-absolute with window-based consistency verification (Li, Manjunath, Mitra 1995; the
    authors' ``selc.m`` option 3): activity = maximum of |c| over a window x window neighbourhood;
    each pixel keeps the source whose activity is larger at more pixels of its neighbourhood.
    Equal vote counts (possible only where activities tie) take the mean, keeping the rule
    symmetric; the authors' code gives such pixels to the second image.
    """
    kernel = np.ones((window, window), np.uint8)
    act_a = cv2.dilate(np.abs(a), kernel, borderType=cv2.BORDER_REFLECT)
    act_b = cv2.dilate(np.abs(b), kernel, borderType=cv2.BORDER_REFLECT)
    size = (window, window)
    votes_a = cv2.boxFilter((act_a > act_b).astype(np.float64), -1, size, normalize=False, borderType=cv2.BORDER_REFLECT)
    votes_b = cv2.boxFilter((act_b > act_a).astype(np.float64), -1, size, normalize=False, borderType=cv2.BORDER_REFLECT)
    return np.where(votes_a > votes_b, a, np.where(votes_b > votes_a, b, 0.5 * (a + b)))


def lp_sr_fuse(
    mri,
    pet,
    levels: int = 4,
    step: int = 1,
    epsilon: float = 0.1,
    detail_rule: str = "consistency",
    intensity_scale: float = 255.0,
    dictionary=None,
) -> np.ndarray:
    """LP-SR fusion: Y. Liu, S. Liu, Z. Wang, "A general framework for image fusion based on
    multi-scale transform and sparse representation", Information Fusion 24:147-164, 2015.

    ``levels``: Laplacian pyramid detail levels (4, as the authors' code; a 256x256 pair has a
    16x16 low-pass band). ``step``: sliding-window step of the 8x8 patches on the low-pass band
    (1 as in the paper; the authors' demo uses overlap 6, i.e. step 2). ``epsilon``: OMP error
    tolerance 0.1, on the ``intensity_scale`` = 255 scale of the authors' code. ``detail_rule``:
    "consistency" (max-absolute with 3x3 consistency verification, the authors' choice) or
    "max_abs" (plain). ``dictionary``: a (p*p, K) array or a path to a .npy; default the shipped
    one (see the module docstring). Float32 out, clipped to [0, 1].
    """
    a, b = check_pair(mri, pet)
    step = check_positive_int(step, "step")
    epsilon = check_positive_float(epsilon, "epsilon")
    intensity_scale = check_positive_float(intensity_scale, "intensity_scale")
    if detail_rule not in ("consistency", "max_abs"):
        raise ValueError(f"detail_rule must be 'consistency' or 'max_abs', got {detail_rule!r}")
    if dictionary is None:
        atoms = load_dictionary()
    elif isinstance(dictionary, (str, Path)):
        atoms = load_dictionary(dictionary)
    else:
        atoms = _check_dictionary(dictionary)
    side = int(round(np.sqrt(atoms.shape[0])))
    levels = check_levels(a.shape, levels, min_base=side)

    pa, pb = laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)
    rule = max_abs_consistent if detail_rule == "consistency" else max_abs
    fused = [rule(da, db) for da, db in zip(pa[:-1], pb[:-1])]
    base = sparse_fuse(pa[-1] * intensity_scale, pb[-1] * intensity_scale, atoms, step, epsilon) / intensity_scale
    fused.append(base)
    return finish(reconstruct_laplacian_pyramid(fused))
