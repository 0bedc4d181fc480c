"""Metrics on small hand-computed cases, and against independent implementations where one exists
(scikit-learn's mutual_info_score, scikit-image's SSIM)."""

from __future__ import annotations

import numpy as np
import pytest

from funfusean_tf import metrics as M
from funfusean_tf.metrics._util import filter2, fspecial_gaussian, matlab_round
from funfusean_tf.metrics.information import matlab_histcounts_edges


@pytest.fixture
def pair(rng):
    a = np.round(rng.random((64, 64)) * 255)
    b = np.round(rng.random((64, 64)) * 255)
    return a, b


# --- helpers -------------------------------------------------------------------------------


def test_matlab_rgb2gray_weights_and_rounding():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 1, 1], [100, 100, 100]]], dtype=np.uint8)
    # 0.298936021293775 * 255 = 76.2287 -> 76; 0.587043 * 255 = 149.696 -> 150; 0.114021 * 255 = 29.075 -> 29
    np.testing.assert_array_equal(M.matlab_rgb2gray(rgb), [[76, 150, 29, 1, 100]])
    # float input keeps the weighted sum
    assert M.matlab_rgb2gray(rgb.astype(float))[0, 0] == pytest.approx(76.22868543)


def test_matlab_round_goes_away_from_zero():
    np.testing.assert_array_equal(matlab_round(np.array([0.5, 1.5, 2.5, -0.5])), [1, 2, 3, -1])


def test_fspecial_and_filter2_same_as_matlab_definitions():
    w = fspecial_gaussian(3, 1.0)
    assert w.sum() == pytest.approx(1.0)
    assert w[0, 0] == pytest.approx(np.exp(-1) / (1 + 4 * np.exp(-0.5) + 4 * np.exp(-1)))
    image = np.arange(16.0).reshape(4, 4)
    k = np.array([[0, 0, 0], [0, 0, 1.0], [0, 0, 0]])  # correlation picks the right neighbour
    out = filter2(k, image, "same")
    np.testing.assert_array_equal(out[:, :3], image[:, 1:])
    np.testing.assert_array_equal(out[:, 3], 0)  # zero padding
    assert filter2(k, image, "valid").shape == (2, 2)


def test_histcounts_edges_for_an_image_spanning_0_1():
    # binpicker by hand: raw width 1/256, power of ten 1e-3 -> left edge 0; then the smallest
    # multiple of 1e-5 >= 1/256 is 0.00391, so edge k is k * 0.00391 and 1 falls in bin 256
    edges = matlab_histcounts_edges(np.array([0.0, 1.0]), 256)
    assert edges[0] == 0 and edges[1] == pytest.approx(0.00391)
    assert edges[-1] == pytest.approx(256 * 0.00391)
    levels = np.arange(256) / 255.0
    assert np.all(np.searchsorted(edges, levels, side="right") - 1 == np.arange(256))


# --- information -----------------------------------------------------------------------------


def test_entropy_hand_cases():
    four = np.repeat(np.array([0, 50, 100, 255.0]), 16).reshape(8, 8)
    assert M.entropy(four) == pytest.approx(2.0)
    assert M.entropy(np.full((8, 8), 9.0)) == 0.0
    assert M.entropy(four / 255.0, data_range=1.0) == pytest.approx(2.0)
    # 256 equiprobable levels: 8 bits
    assert M.entropy(np.arange(256.0).reshape(16, 16)) == pytest.approx(8.0)


def test_shannon_entropy_distinct_counts_every_float():
    x = np.linspace(0, 1, 64).reshape(8, 8)
    assert M.shannon_entropy_distinct(x) == pytest.approx(6.0)  # 64 distinct values


def test_mi_levels_matches_scikit_learn(pair):
    from sklearn.metrics import mutual_info_score

    a, b = pair
    f = np.round((a + b) / 2)
    assert M.mutual_information_levels(f, a) == pytest.approx(mutual_info_score(f.ravel(), a.ravel()), rel=1e-12)
    assert M.mutual_information_levels(f, f) == pytest.approx(mutual_info_score(f.ravel(), f.ravel()), rel=1e-12)


def test_mi_of_an_image_with_itself_is_its_entropy():
    x = np.repeat(np.array([0, 85, 170, 255.0]), 16).reshape(8, 8)
    assert M.mutual_information_levels(x, x, base=2) == pytest.approx(2.0)
    assert M.mutual_information_uint8(x / 255, x / 255) == pytest.approx(np.log(4))
    # MdAFuse's MI.m: the 4 diagonal cells give 4 * 0.25 * log2(0.25 / 0.25^2) = 2 bits; every
    # empty cell is floored to 1e-10, and so is every empty marginal level (252 of 256):
    eps = 1e-10
    floors = (12 * eps * np.log2(eps / 0.25**2)  # both levels used, off the diagonal
              + 2 * 4 * 252 * eps * np.log2(eps / (0.25 * eps))  # one level unused
              + 252 * 252 * eps * np.log2(eps / (eps * eps)))  # both unused
    assert M.mutual_information_histcounts(x, x) == pytest.approx(2.0 + floors, rel=1e-12)


def test_mi_sum_and_mean_over_sources(pair):
    a, b = pair
    f = np.round((a + b) / 2)
    s = M.fusion_mi(f, a, b, M.mutual_information_levels, "sum")
    m = M.fusion_mi(f, a, b, M.mutual_information_levels, "mean")
    assert s == pytest.approx(2 * m)


def test_ncie_of_identical_images_by_hand(pair):
    a, _ = pair
    # NCC(a, a) = (2 H - H) / log2(256) = H / 8 =: h, so R = [[1, h, h], [h, 1, h], [h, h, 1]]
    # with eigenvalues 1 + 2h, 1 - h, 1 - h, and NCIE = 1 + sum(r/3 log_256(r/3))
    h = M.entropy(a) / 8
    r = np.array([1 + 2 * h, 1 - h, 1 - h])
    assert M.ncie(a, a, a) == pytest.approx(1 + np.sum(r / 3 * np.log2(r / 3) / 8), abs=1e-12)
    # an image using all 256 levels equally often: h = 1, eigenvalues 3, 0, 0, NCIE = 1
    uniform = np.arange(4096.0).reshape(64, 64) % 256
    assert M.ncie(uniform, uniform, uniform) == pytest.approx(1.0, abs=1e-12)


def test_ncie_is_invariant_to_affine_scaling(pair):
    a, b = pair
    f = np.round((a + b) / 2)
    assert M.ncie(f, a, b) == pytest.approx(M.ncie(f, a / 255 * 7 + 3, b), abs=1e-12)


# --- gradient ---------------------------------------------------------------------------------


def test_q_g_liu_of_identical_images_is_the_sigmoid_product(pair):
    a, _ = pair
    # G = 1 and A = | |0| - pi/2 | * 2/pi = 1 everywhere: Q = s(-10 (1 - .5)) s(-20 (1 - .75))
    q = 1 / (1 + np.exp(-5.0)) * 1 / (1 + np.exp(-5.0))
    assert M.q_g_liu(a, a, a) == pytest.approx(q, abs=1e-12)


def test_qabf_of_identical_images_by_hand(pair):
    a, _ = pair
    # Hong's quirk: where g_A == g_F the strength "ratio" is g_F itself, far above 0.5, so Qg
    # saturates at Tg / (1 + exp(-15 (g - 0.5))) ~ 0.9994; A = 1
    g, _ = M.gradient._hong_gradient(a)
    qg = 0.9994 / (1 + np.exp(-15 * (g - 0.5)))
    qa = 0.9879 / (1 + np.exp(-22 * (1 - 0.8)))
    assert M.qabf(a, a, a) == pytest.approx(np.sum(qg * qa * g) / np.sum(g), rel=1e-12)
    # without the quirk the ratio is 1
    q1 = 0.9994 / (1 + np.exp(-15 * 0.5)) * qa
    assert M.qabf(a, a, a, hong_equal_quirk=False) == pytest.approx(q1, rel=1e-12)


def test_qabf_of_constant_sources_is_an_error():
    with pytest.raises(ValueError, match="undefined"):
        M.qabf(np.ones((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)))


def test_spatial_frequency_and_average_gradient_by_hand():
    checker = (np.indices((6, 6)).sum(axis=0) % 2).astype(float)
    assert M.spatial_frequency(checker) == pytest.approx(np.sqrt(2.0))
    ramp = np.tile(np.arange(6.0), (6, 1))
    assert M.average_gradient(ramp) == pytest.approx(np.sqrt(0.5))
    assert M.spatial_frequency(np.full((5, 5), 3.0)) == 0.0


def test_rsfe_by_hand(pair):
    a, b = pair
    assert M.rsfe(a, a, a) == pytest.approx(0.0, abs=1e-12)
    assert M.rsfe(2 * a, a, a) == pytest.approx(1.0)
    assert M.rsfe(np.zeros_like(a), a, b) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        M.rsfe(a, np.ones_like(a), np.ones_like(a))


# --- statistical ---------------------------------------------------------------------------------


def test_sd_conventions_by_hand():
    x = np.array([[0.0, 2.0]])
    assert M.standard_deviation(x, "population") == pytest.approx(1.0)
    assert M.standard_deviation(x, "sum") == pytest.approx(np.sqrt(2.0))


def test_cc_scd_mse_psnr_by_hand(pair):
    a, b = pair
    a = a - a.mean()
    b = b - b.mean()
    b = b - a * np.sum(a * b) / np.sum(a * a)  # make b exactly uncorrelated with a
    f = a + b
    # SCD(A + B, A, B) = r(A, A) + r(B, B) = 2
    assert M.scd(f, a, b) == pytest.approx(2.0)
    assert M.correlation_coefficient(a, a, a) == pytest.approx(1.0)
    assert M.mse(a, a, a + 2) == pytest.approx(2.0)  # (0 + 4) / 2
    ref = np.tile(np.linspace(0, 1, 8), (8, 1))
    assert M.psnr(ref + 0.1, ref) == pytest.approx(20.0)
    assert M.psnr(ref + 0.1, ref, data_range=255.0) == pytest.approx(20 * np.log10(2550))
    assert M.psnr(ref, ref) == float("inf")
    with pytest.raises(ValueError):
        M.pearson(np.ones((4, 4)), np.arange(16.0).reshape(4, 4))


# --- VIF ----------------------------------------------------------------------------------------


def test_vif_p_of_an_image_with_itself_is_one(pair):
    a, _ = pair
    # g = 1, sv^2 floored at 1e-10: each term log10(1 + s^2 / (2 + 1e-10)) vs log10(1 + s^2 / 2)
    assert M.vif_p(a, a) == pytest.approx(1.0, abs=1e-9)
    assert M.fusion_vif(a, a, a) == pytest.approx(2.0, abs=1e-9)


def test_vif_p_of_a_flat_reference_is_one_as_the_reference_code_says():
    assert M.vif_p(np.zeros((64, 64)), np.random.default_rng(0).random((64, 64))) == 1.0


def test_vif_p_of_a_gain_is_closed_form_on_constant_local_variance():
    # dist = k * ref: g = k, sv^2 = 0 (floored 1e-10): VIF = sum log(1 + k^2 s / (1e-10 + 2)) /
    # sum log(1 + s / 2); with k = 1 this is ~1 and with k > 1 it exceeds 1
    rng = np.random.default_rng(1)
    ref = rng.random((64, 64)) * 50
    assert M.vif_p(ref, 2 * ref) > 1.0
    assert M.vif_p(ref, 0.5 * ref) < 1.0


def test_q_viff_of_identical_images_is_one(pair):
    a, _ = pair
    assert M.q_viff(a, a, a) == pytest.approx(1.0, abs=1e-6)


# --- structural ------------------------------------------------------------------------------------


def test_piella_and_yang_of_identical_images_are_one(pair):
    a, _ = pair
    assert M.piella(a, a, a, 1) == pytest.approx(1.0, abs=1e-9)
    assert M.piella(a, a, a, 2) == pytest.approx(1.0, abs=1e-9)
    assert M.yang(a, a, a) == pytest.approx(1.0, abs=1e-9)


def test_ssim_index_map_equals_wang_formula_on_a_small_case(rng):
    # independent transcription of ssim_index.m (direct correlation in numpy)
    from scipy.signal import correlate2d

    x = np.round(rng.random((16, 16)) * 255)
    y = np.round(rng.random((16, 16)) * 255)
    w = fspecial_gaussian(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda z: correlate2d(z, w, mode="valid")  # noqa: E731
    mx, my = f(x), f(y)
    sx, sy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    expected = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sx + sy + c2))
    # ssim.py builds its Gaussian taps in float32, hence ~1e-8 rather than 1e-15
    np.testing.assert_allclose(M.ssim_index_map(x, y), expected, rtol=0, atol=1e-7)


def test_ssim_skimage_wrapper_is_scikit_image(pair):
    from skimage.metrics import structural_similarity

    a, b = pair
    assert M.ssim_skimage(a, b, 2.0) == structural_similarity(a, b, data_range=2.0)
    assert M.fusion_ssim_skimage(a, a, a, 255.0) == pytest.approx(2.0)


def test_ssim_gaussian_is_the_package_ssim(pair):
    a, b = pair
    assert M.ssim_gaussian(a / 255, a / 255) == pytest.approx(1.0, abs=1e-6)
    assert M.fusion_ssim_gaussian(a / 255, a / 255, b / 255) == pytest.approx(
        (1.0 + M.ssim_gaussian(a / 255, b / 255)) / 2, abs=1e-6)


def test_chen_blum_of_identical_images_is_one(pair):
    a, _ = pair
    assert M.chen_blum(a, a, a) == pytest.approx(1.0, abs=1e-12)
