"""Classical baselines: the call contract, invariants every rule satisfies, and independent references.

Expected values come from hand derivations or from brute-force loops written here, never from the
implementation's own output. The guided filter was also compared offline (not in this suite,
which must not need opencv-contrib) with OpenCV-contrib 5.0's ``cv2.ximgproc.guidedFilter``
installed in a throw-away venv: with ``border="reflect"`` (the padding OpenCV uses) the two agreed
to 4.4e-5 at most (OpenCV computes in float32) for r in {2, 4, 7, 45} on random and camera images.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from funfusean_tf.baselines import (
    BASELINES,
    fuse_baseline,
    gff_fuse,
    guided_filter,
    laplacian_pyramid,
    pca_fuse,
    pca_weights,
    reconstruct_laplacian_pyramid,
)
from funfusean_tf.baselines._common import max_abs
from funfusean_tf.baselines.lpsr import load_dictionary, sparse_codes, sparse_fuse

NAMES = ("gff", "laplacian_pyramid", "dwt", "pca", "average", "maximum", "lp_sr")
#: overrides that fit the 64x64 test images (LP-SR's 8x8 patches need a >= 8x8 low-pass band)
SMALL = {"lp_sr": {"levels": 2}}


def smooth_pair(rng, shape=(64, 64)):
    """Two [0, 1] images with structure at several scales (smoothed noise plus a bright disc)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    images = []
    for centre, radius in (((20, 24), 10), ((40, 36), 14)):
        noise = ndimage.gaussian_filter(rng.random(shape), 2.0)
        disc = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2).astype(float)
        image = 0.6 * (noise - noise.min()) / np.ptp(noise) + 0.4 * disc
        images.append(image.astype(np.float32))
    return images


@pytest.fixture
def pair(rng):
    return smooth_pair(rng)


# --------------------------------------------------------------------------------------------
# registry


def test_registry_has_the_seven_baselines_and_their_defaults_match_the_functions():
    assert tuple(BASELINES) == NAMES
    for name, baseline in BASELINES.items():
        assert baseline.name == name
        assert baseline.description and "\n" not in baseline.description
        assert baseline.citation
        params = list(inspect.signature(baseline.function).parameters.values())[2:]
        assert {p.name: p.default for p in params} == dict(baseline.defaults), name
        doc = inspect.getdoc(baseline.function)
        for parameter in baseline.defaults:
            assert parameter in doc, f"{name}: docstring does not name {parameter!r}"
        if "textbook" not in baseline.citation:
            first_author_surname = baseline.citation.split(",")[0].split()[-1]
            assert first_author_surname in doc, f"{name}: docstring does not name its paper"


def test_registry_rejects_unknown_names_and_parameters(pair):
    with pytest.raises(ValueError, match="unknown baseline 'nsct'.*gff"):
        fuse_baseline("nsct", *pair)
    with pytest.raises(ValueError, match="no parameter.*radius.*accepted: eps1"):
        fuse_baseline("gff", *pair, radius=3)
    with pytest.raises(ValueError, match="accepted: none"):
        fuse_baseline("average", *pair, levels=2)
    with pytest.raises(TypeError):
        BASELINES["gff"].defaults["r1"] = 3  # read-only


@pytest.mark.parametrize(
    "mri, pet, message",
    [
        (np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), "mri: expected a 2-D"),
        (np.zeros((8, 8)), np.zeros((8, 9)), "mri is 8x8 but pet is 8x9"),
        (np.zeros((8, 8)), np.full((8, 8), np.nan), "pet: 64 pixel"),
        (np.zeros((0, 8)), np.zeros((0, 8)), "empty"),
        (np.array([["a"] * 4] * 4), np.zeros((4, 4)), "numeric"),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_every_baseline_validates_its_inputs(name, mri, pet, message):
    with pytest.raises(ValueError, match=message):
        fuse_baseline(name, mri, pet)


def test_parameter_errors_are_clear(pair):
    with pytest.raises(ValueError, match="too small for 7 pyramid level"):
        fuse_baseline("laplacian_pyramid", *pair, levels=7)
    with pytest.raises(ValueError, match="low-pass band|at least 8x8"):
        fuse_baseline("lp_sr", *pair, levels=4)  # 64 -> 4x4 band, smaller than a patch
    with pytest.raises(ValueError, match="at most 4 level"):
        fuse_baseline("dwt", *pair, levels=9)
    with pytest.raises(ValueError, match="wavelet"):
        fuse_baseline("dwt", *pair, wavelet="nope")
    with pytest.raises(ValueError, match="levels must be an integer"):
        fuse_baseline("dwt", *pair, levels=1.5)
    with pytest.raises(ValueError, match="eps1"):
        fuse_baseline("gff", *pair, eps1=-1)
    with pytest.raises(ValueError, match="ties"):
        fuse_baseline("gff", *pair, ties="last")


# --------------------------------------------------------------------------------------------
# invariants of every rule


@pytest.mark.parametrize("name", NAMES)
def test_output_contract(name, pair):
    fused = fuse_baseline(name, *pair, **SMALL.get(name, {}))
    assert fused.shape == pair[0].shape
    assert fused.dtype == np.float32
    assert np.all(np.isfinite(fused))
    assert fused.min() >= 0.0 and fused.max() <= 1.0
    # a fusion, not a copy of one input
    assert not np.allclose(fused, pair[0], atol=1e-3) and not np.allclose(fused, pair[1], atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_odd_sizes_keep_their_shape(name, rng):
    a, b = (x[:61, :53] for x in smooth_pair(rng))
    fused = fuse_baseline(name, a, b, **SMALL.get(name, {}))
    assert fused.shape == (61, 53)


@pytest.mark.parametrize("name", NAMES)
def test_identical_inputs_give_back_the_input(name, pair):
    image = pair[0]
    fused = fuse_baseline(name, image, image, **SMALL.get(name, {}))
    # LP-SR codes the low-pass band by OMP to a residual of at most epsilon = 0.1 (L2 over an
    # 8x8 patch, on the 0-255 scale), so it returns the input to 0.1/255 per pixel, not exactly
    atol = 0.1 / 255 + 1e-6 if name == "lp_sr" else 1e-6
    np.testing.assert_allclose(fused, image, atol=atol, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_rules_are_symmetric_in_their_inputs(name, pair):
    a, b = pair
    small = SMALL.get(name, {})
    np.testing.assert_allclose(fuse_baseline(name, a, b, **small), fuse_baseline(name, b, a, **small), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "maximum"])
def test_two_constant_images_fuse_to_their_mean(name):
    # no detail anywhere: every multi-scale rule is left with its base rule (an average), GFF's
    # saliencies tie everywhere (both weights 1/2), PCA has no principal direction (1/2, 1/2),
    # LP-SR's patch codes are all zero (an L1 tie: the mean of the two patch means)
    a, b = np.full((64, 64), 0.2), np.full((64, 64), 0.7)
    np.testing.assert_allclose(fuse_baseline(name, a, b, **SMALL.get(name, {})), 0.45, atol=1e-6)


def test_gff_authors_tie_break_gives_ties_to_the_first_image():
    a, b = np.full((40, 40), 0.2), np.full((40, 40), 0.7)
    np.testing.assert_allclose(gff_fuse(a, b, ties="first"), 0.2, atol=1e-6)


def test_average_and_maximum(pair):
    a, b = pair
    np.testing.assert_array_equal(fuse_baseline("average", a, b), ((a.astype(np.float64) + b) / 2).astype(np.float32))
    np.testing.assert_array_equal(fuse_baseline("maximum", a, b), np.maximum(a, b))


def test_max_abs_rule_by_hand():
    a = np.array([3.0, -3.0, 1.0, -2.0, 2.0, 0.0])
    b = np.array([-1.0, 1.0, -4.0, 2.0, 2.0, 0.0])
    np.testing.assert_array_equal(max_abs(a, b), [3.0, -3.0, -4.0, 0.0, 2.0, 0.0])


# --------------------------------------------------------------------------------------------
# PCA


def test_pca_weights_hand_worked_example():
    # y = x / 2: covariance = var(x) [[1, 1/2], [1/2, 1/4]], principal eigenvector (1, 1/2)
    x = np.array([[0.0, 1.0], [0.0, 1.0]])
    w = pca_weights(x, x / 2)
    np.testing.assert_allclose(w, (2 / 3, 1 / 3), atol=1e-12)
    # y = 1 - x: covariance var(x) [[1, -1], [-1, 1]], eigenvector (1, -1) -> |.| -> (1/2, 1/2)
    np.testing.assert_allclose(pca_weights(x, 1 - x), (0.5, 0.5), atol=1e-12)


def test_pca_weights_match_closed_form_2x2_eigenvector(pair):
    a, b = (np.asarray(p, np.float64).ravel() for p in pair)
    da, db = a - a.mean(), b - b.mean()
    n = a.size - 1
    sxx, syy, sxy = (da @ da) / n, (db @ db) / n, (da @ db) / n
    # largest eigenvalue of [[sxx, sxy], [sxy, syy]] and its eigenvector (sxy, lambda - sxx)
    lam = (sxx + syy) / 2 + np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)
    v = np.abs(np.array([sxy, lam - sxx]))
    expected = v / v.sum()
    w = pca_weights(*pair)
    assert w[0] + w[1] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(w, expected, atol=1e-9)
    fused = pca_fuse(*pair)
    np.testing.assert_allclose(fused, np.clip(expected[0] * pair[0] + expected[1] * pair[1], 0, 1), atol=1e-6)


# --------------------------------------------------------------------------------------------
# Laplacian pyramid and DWT


@pytest.mark.parametrize("shape, levels", [((64, 64), 4), ((67, 45), 3), ((33, 100), 5)])
def test_laplacian_pyramid_reconstructs_exactly(rng, shape, levels):
    image = rng.random(shape)
    pyramid = laplacian_pyramid(image, levels)
    assert len(pyramid) == levels + 1
    h, w = shape
    for level in pyramid:
        assert level.shape == (h, w)
        h, w = (h + 1) // 2, (w + 1) // 2
    np.testing.assert_allclose(reconstruct_laplacian_pyramid(pyramid), image, atol=1e-12, rtol=0)


def test_laplacian_pyramid_of_a_constant_has_no_detail():
    pyramid = laplacian_pyramid(np.full((40, 50), 0.3), 3)
    for detail in pyramid[:-1]:
        np.testing.assert_allclose(detail, 0.0, atol=1e-12)
    np.testing.assert_allclose(pyramid[-1], 0.3, atol=1e-12)


def test_laplacian_pyramid_fusion_keeps_the_detail_of_the_only_textured_image(rng):
    # PET constant: every detail coefficient of the MRI wins (or ties at 0), the base is the
    # mean of the MRI's base and the constant; pyrUp maps a constant to itself, and the pyramid
    # is linear, so F = (MRI + c) / 2 + (MRI - lowpass(MRI)) / 2 where lowpass(MRI) is the MRI
    # rebuilt from its base alone
    mri = rng.random((64, 64)) * 0.5 + 0.25
    c = 0.5
    fused = fuse_baseline("laplacian_pyramid", mri, np.full_like(mri, c), levels=2)
    pyramid = laplacian_pyramid(mri, 2)
    lowpass = reconstruct_laplacian_pyramid([np.zeros_like(p) for p in pyramid[:-1]] + [pyramid[-1]])
    np.testing.assert_allclose(fused, np.clip((mri + c) / 2 + (mri - lowpass) / 2, 0, 1), atol=1e-6)


def test_dwt_haar_one_level_by_hand():
    # one Haar level on a 2x2 block [[p, q], [r, s]]: approximation (p+q+r+s)/2, details
    # (p-q+r-s)/2, (p+q-r-s)/2, (p-q-r+s)/2 (up to sign conventions, which max-abs ignores).
    # MRI block has only a horizontal detail, PET only a vertical one; each wins its own band.
    mri = np.array([[0.7, 0.3], [0.7, 0.3]])  # mean 0.5 + left/right detail of +-0.2
    pet = np.array([[0.6, 0.6], [0.2, 0.2]])  # mean 0.4 + top/bottom detail of +-0.2
    fused = fuse_baseline("dwt", mri, pet, wavelet="haar", levels=1)
    # approximations 1.0 and 0.8 average to 0.9, a block mean of 0.45; both details survive
    expected = 0.45 + np.array([[0.2, -0.2], [0.2, -0.2]]) + np.array([[0.2, 0.2], [-0.2, -0.2]])
    np.testing.assert_allclose(fused, expected, atol=1e-6)


# --------------------------------------------------------------------------------------------
# guided filter and GFF against brute-force references


def brute_box_mean(x: np.ndarray, r: int, border: str) -> np.ndarray:
    """Mean over each pixel's (2r+1)^2 window, one pixel at a time."""
    h, w = x.shape
    out = np.empty_like(x)
    if border == "clip":
        for i in range(h):
            for j in range(w):
                out[i, j] = x[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1].mean()
    else:  # "reflect": abc|cba, numpy's "symmetric" padding
        padded = np.pad(x, r, mode="symmetric")
        for i in range(h):
            for j in range(w):
                out[i, j] = padded[i : i + 2 * r + 1, j : j + 2 * r + 1].mean()
    return out


def brute_guided_filter(guide, src, r, eps, border="clip"):
    """He et al.'s algorithm 1, each window mean taken by an explicit per-pixel loop."""
    h, w = guide.shape
    a = np.empty_like(guide)
    b = np.empty_like(guide)
    padded_i = np.pad(guide, r, mode="symmetric")
    padded_p = np.pad(src, r, mode="symmetric")
    for i in range(h):
        for j in range(w):
            if border == "clip":
                wi = guide[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1]
                wp = src[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1]
            else:
                wi = padded_i[i : i + 2 * r + 1, j : j + 2 * r + 1]
                wp = padded_p[i : i + 2 * r + 1, j : j + 2 * r + 1]
            mu, pbar = wi.mean(), wp.mean()
            a[i, j] = ((wi * wp).mean() - mu * pbar) / (wi.var() + eps)
            b[i, j] = pbar - a[i, j] * mu
    return brute_box_mean(a, r, border) * guide + brute_box_mean(b, r, border)


@pytest.mark.parametrize("border", ["clip", "reflect"])
@pytest.mark.parametrize("r, eps", [(1, 1e-2), (2, 1e-6), (3, 0.3)])
def test_guided_filter_matches_brute_force(rng, r, eps, border):
    guide = rng.random((9, 11))
    src = (rng.random((9, 11)) > 0.5).astype(float)
    np.testing.assert_allclose(
        guided_filter(guide, src, r, eps, border=border), brute_guided_filter(guide, src, r, eps, border), atol=1e-10
    )


def test_guided_filter_window_larger_than_the_image(rng):
    guide, src = rng.random((6, 5)), rng.random((6, 5))
    np.testing.assert_allclose(guided_filter(guide, src, 45, 0.3), brute_guided_filter(guide, src, 45, 0.3), atol=1e-10)


def test_guided_filter_hand_derived_cases(rng):
    guide = rng.random((12, 12))
    # a constant input stays constant (cov = 0, so a = 0 and b = the constant)
    np.testing.assert_allclose(guided_filter(guide, np.full((12, 12), 0.4), 3, 0.01), 0.4, atol=1e-12)
    # p = alpha I + beta with eps -> 0: a = alpha, b = beta in every window, so q = p
    np.testing.assert_allclose(guided_filter(guide, 2.0 * guide - 0.3, 2, 1e-12), 2.0 * guide - 0.3, atol=1e-6)


def brute_gff(images, r1=45, eps1=0.3, r2=7, eps2=1e-6):
    """GFF from the paper's equations with scipy.ndimage filters and the brute-force guided filter."""
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float)
    x = np.arange(-5, 6)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 5.0**2))
    g /= g.sum()
    saliency = [ndimage.correlate(np.abs(ndimage.correlate(im, laplacian, mode="nearest")), g, mode="nearest") for im in images]
    top = np.maximum(*saliency)
    masks = [(s == top).astype(float) for s in saliency]
    fused = 0.0
    wb = [np.clip(brute_guided_filter(im, m, r1, eps1), 0, 1) + 1e-12 for im, m in zip(images, masks)]
    wd = [np.clip(brute_guided_filter(im, m, r2, eps2), 0, 1) + 1e-12 for im, m in zip(images, masks)]
    for k, im in enumerate(images):
        base = ndimage.uniform_filter(im, 31, mode="nearest")
        fused = fused + wb[k] / (wb[0] + wb[1]) * base + wd[k] / (wd[0] + wd[1]) * (im - base)
    return np.clip(fused, 0, 1)


def test_gff_matches_the_papers_equations_on_a_small_pair(rng):
    a, b = (x[:24, :20].astype(np.float64) for x in smooth_pair(rng))
    np.testing.assert_allclose(gff_fuse(a, b), brute_gff([a, b]), atol=1e-5)


@pytest.mark.shared_data
def test_gff_on_a_real_harvard_pair(shared_data):
    from funfusean_tf.data.io import load_pair

    folder = Path(shared_data) / "aanlib" / "funfusean_test"
    mri, pet = load_pair(folder / "mri" / "1.gif", folder / "pet" / "1.gif")
    fused = fuse_baseline("gff", mri, pet)
    assert fused.shape == mri.shape and fused.dtype == np.float32
    assert np.all(np.isfinite(fused)) and 0.0 <= fused.min() and fused.max() <= 1.0

    def corr(x, y):
        return np.corrcoef(x.ravel(), y.ravel())[0, 1]

    # the fused image resembles each source more than the sources resemble each other
    assert min(corr(fused, mri), corr(fused, pet)) > corr(mri, pet)


# --------------------------------------------------------------------------------------------
# LP-SR


def test_shipped_dictionary():
    d = load_dictionary()
    assert d.shape == (64, 256) and np.all(np.isfinite(d))
    np.testing.assert_allclose(np.linalg.norm(d, axis=0), 1.0, atol=1e-6)
    # the atoms must span the mean-free patches (63 dimensions) for OMP to reach a tight tolerance
    assert np.linalg.matrix_rank(d, tol=1e-6) >= 63


def test_omp_meets_its_error_tolerance(rng):
    d = load_dictionary()
    signals = rng.normal(size=(20, 64)) * 10
    signals -= signals.mean(axis=1, keepdims=True)
    for epsilon in (0.1, 5.0):
        codes = sparse_codes(signals, d, epsilon)
        residual = np.linalg.norm(signals - codes @ d.T, axis=1)
        assert np.all(residual <= epsilon * (1 + 1e-6))
    tiny = np.full((1, 64), 1e-3) - 1e-3
    assert not np.any(sparse_codes(tiny, d, 0.1))


def test_sparse_fusion_max_l1_takes_the_textured_patch(rng):
    # a flat patch codes to zero (L1 = 0), so every patch of the textured image wins, with its
    # own mean: the result is the textured image to within the OMP tolerance (0.1 per patch)
    textured = rng.random((12, 14)) * 100
    flat = np.full((12, 14), 40.0)
    d = load_dictionary()
    for step in (1, 2):  # 12 - 8 and 14 - 8 are even: step 2 covers every pixel too
        np.testing.assert_allclose(sparse_fuse(flat, textured, d, step=step, epsilon=0.1), textured, atol=0.1)
        np.testing.assert_allclose(sparse_fuse(textured, flat, d, step=step, epsilon=0.1), textured, atol=0.1)


def test_sparse_fusion_uncovered_pixels_take_the_average(rng):
    # step 3 on 12 columns: patches start at 0 and 3 and cover columns 0..10; column 11 is left
    a, b = rng.random((8, 12)) * 100, rng.random((8, 12)) * 100
    fused = sparse_fuse(a, b, load_dictionary(), step=3, epsilon=0.1)
    np.testing.assert_allclose(fused[:, 11], (a[:, 11] + b[:, 11]) / 2, atol=1e-12)


def test_lp_sr_options_run(pair):
    for overrides in ({"detail_rule": "max_abs"}, {"step": 2}, {"dictionary": load_dictionary()[:, :128]}):
        fused = fuse_baseline("lp_sr", *pair, levels=2, **overrides)
        assert fused.shape == pair[0].shape and np.all(np.isfinite(fused))
    with pytest.raises(ValueError, match="square patch"):
        fuse_baseline("lp_sr", *pair, levels=2, dictionary=np.ones((60, 10)))


def test_dictionary_script_runs_small(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_lpsr_dictionary.py"
    spec = importlib.util.spec_from_file_location("make_lpsr_dictionary", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "d.npy"
    assert module.main(["--out", str(out), "--patches", "1500", "--atoms", "32", "--epochs", "1"]) == 0
    d = np.load(out)
    assert d.shape == (64, 32) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d, axis=0), 1.0, atol=1e-5)
