"""DILRAN's MATLAB metrics (MI&FMI/main.m): MATLAB's default edge(I) and FMI on its edge maps
(analysis_fmi.m's default feature), and analysis_MI.m's Dwinnell mutual information with its
im2uint8 quirk. Hand-worked cases, a per-pixel loop restatement of edge.m's thinning, scikit-image
for the gradient map, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import sobel

from funfusean_tf.metrics import MetricInputError, entropy, fmi, matlab_edge_sobel
from funfusean_tf.metrics.information import _dwinnell_joint_entropy, fmi_map, mutual_information_dwinnell_matlab
from funfusean_tf.metrics.presets import PRESETS


@pytest.fixture
def triple():
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:40, :48]
    a = np.clip(np.round(128 + 90 * np.sin(xx / 4.0) * np.cos(yy / 6.0) + rng.normal(0, 4, xx.shape)), 0, 255)
    b = np.round(255 * np.exp(-((xx - 20) ** 2 + (yy - 18) ** 2) / 90.0))
    f = np.round((a + b) / 2)
    return f, a, b


# --- MATLAB edge(I) ------------------------------------------------------------------------------


def _edge_by_loops(image):
    """edge.m's Sobel branch pixel by pixel (bx, by from replicate-padded sums, the thinning
    rule with its border conventions), kept deliberately naive."""
    m, n = image.shape
    p = np.pad(image.astype(np.float64), 1, mode="edge")
    bx, by = np.zeros((m, n)), np.zeros((m, n))
    for r in range(m):
        for c in range(n):
            w = p[r : r + 3, c : c + 3]
            bx[r, c] = (w[0, 0] + 2 * w[1, 0] + w[2, 0] - w[0, 2] - 2 * w[1, 2] - w[2, 2]) / 8
            by[r, c] = (w[0, 0] + 2 * w[0, 1] + w[0, 2] - w[2, 0] - 2 * w[2, 1] - w[2, 2]) / 8
    b = bx * bx + by * by
    cutoff = 4 * b.sum() / b.size
    eps100 = 100 * np.finfo(float).eps
    e = np.zeros((m, n), dtype=bool)
    for r in range(m):
        for c in range(n):
            left = c == 0 or b[r, c - 1] <= b[r, c]
            right = c == n - 1 or b[r, c] > b[r, c + 1]
            up = r == 0 or b[r - 1, c] <= b[r, c]
            down = r == m - 1 or b[r, c] > b[r + 1, c]
            ax, ay = abs(bx[r, c]), abs(by[r, c])
            across_columns = ax >= ay - eps100 and left and right
            across_rows = ay >= ax - eps100 and up and down
            e[r, c] = b[r, c] > cutoff and (across_columns or across_rows)
    return e, b


def test_vertical_step_gives_a_one_pixel_line_on_the_bright_side():
    image = np.zeros((6, 16))
    image[:, 8:] = 255
    edges, b = matlab_edge_sobel(image, return_magnitude=True)
    # |bx| = 4 * 255 / 8 = 127.5 in columns 7 and 8, so b = 127.5^2 there and 0 elsewhere;
    # cutoff = 4 * mean(b) = 4 * (2/16) b = b/2. Both columns pass the threshold; the tie
    # b(7) == b(8) goes to the right-hand pixel (b(c-1) <= b(c) and b(c) > b(c+1)).
    np.testing.assert_array_equal(b[0], [0] * 7 + [127.5**2] * 2 + [0] * 7)
    expected = np.zeros((6, 16), dtype=bool)
    expected[:, 8] = True
    np.testing.assert_array_equal(edges, expected)
    np.testing.assert_array_equal(matlab_edge_sobel(image.T), expected.T)  # horizontal step
    np.testing.assert_array_equal(matlab_edge_sobel(255 - image), expected)  # sign-free


def test_the_threshold_is_strict_and_four_times_the_mean():
    # with 8 columns the two gradient columns hold 2/8 of the pixels: cutoff = 4 * b/4 = b,
    # and b > cutoff fails: no edges at all
    image = np.zeros((6, 8))
    image[:, 4:] = 255
    assert not matlab_edge_sobel(image).any()


def test_a_missing_neighbour_counts_as_satisfied_at_the_border():
    # a bright last column: b = 127.5^2 in columns 14 and 15; the right-hand neighbour of
    # column 15 is outside the image, so column 15 is the edge
    image = np.zeros((5, 16))
    image[:, 15] = 255
    edges = matlab_edge_sobel(image)
    assert edges[:, 15].all() and edges.sum() == 5


def test_constant_and_zero_images_have_no_edges():
    for value in (0.0, 1.0, 255.0):
        assert not matlab_edge_sobel(np.full((9, 7), value)).any()


def test_gradient_map_is_scikit_images_sobel_up_to_the_scaling(triple):
    f, a, b = triple
    for image in (f, a, b):
        _, magnitude = matlab_edge_sobel(image, return_magnitude=True)
        # skimage: kernels / 4 and sqrt((gx^2 + gy^2) / 2); MATLAB: kernels / 8, no root
        np.testing.assert_allclose(magnitude, sobel(image) ** 2 / 2, rtol=1e-12, atol=1e-9)


def test_vectorised_edge_matches_the_loop_restatement(triple):
    rng = np.random.default_rng(2)
    cases = [*triple, np.round(rng.random((13, 17)) * 255), np.round(rng.random((9, 5)) * 3)]
    for image in cases:
        expected_edges, expected_b = _edge_by_loops(image)
        edges, b = matlab_edge_sobel(image, return_magnitude=True)
        np.testing.assert_array_equal(b, expected_b)
        np.testing.assert_array_equal(edges, expected_edges)
        assert edges.any()


# --- FMI on edge features (analysis_fmi.m's default) ---------------------------------------------


def test_fmi_edge_is_pixel_fmi_of_the_edge_maps(triple):
    f, a, b = triple
    maps = [matlab_edge_sobel(x).astype(float) for x in (f, a, b)]
    assert fmi(f, a, b, 3, "edge") == fmi(*maps, 3, "none")


def test_fmi_edge_invariants(triple):
    f, a, b = triple
    assert fmi(a, a, a, 3, "edge") == 1.0
    for x, y in ((a, b), (b, a)):
        assert 0.0 <= fmi(f, x, y, 3, "edge") <= 1.0
    # fmi.m's 'identical' shortcut: with both sources the same image, every window where F's edge
    # map equals A's scores exactly 1 (in both branches: the first leaves F's window as it is)
    windows = lambda x: np.lib.stride_tricks.sliding_window_view(matlab_edge_sobel(x), (3, 3))  # noqa: E731
    agree = np.all(windows(f) == windows(a), axis=(-1, -2))
    assert 0.5 < agree.mean() < 1.0
    same_sources = fmi_map(f, a, a, 3, "edge")
    assert np.all(same_sources[agree] == 1.0)
    assert fmi(f, a, a, 3, "edge") == pytest.approx(np.mean(same_sources), abs=1e-15)
    assert fmi(f, a, a, 3, "edge") >= agree.mean()  # the other windows score >= 0
    zero = np.zeros_like(f)
    assert fmi(zero, zero, zero, 3, "edge") == 1.0  # no edges anywhere: every window identical
    assert 0.0 <= fmi(zero, a, b, 3, "edge") <= 1.0


def _one_pixel_above_flat():
    fused = np.full((3, 3), 5.0)
    fused[1, 1] = 6.0  # fmi.m's in-place normalisation turns this window into 0s and one 1
    return fused


def test_the_source_order_matters_through_fmi_m_in_place_normalisation():
    # One 3x3 window: F one pixel above a flat level, A = F, B = 0 (constant).
    # Order (A, B): A equals F: 1, and F is left as it is; B differs, its constant window
    # normalises to ones (a uniform pdf) against F's one-point pdf: 0. Window: 0.5.
    # Order (B, A): B's branch runs first (0, as above) and normalises F's window in place to
    # 0s and a 1; A (5s and a 6) now differs from it, and two one-point pdfs score 0. Window: 0.
    fused, zeros = _one_pixel_above_flat(), np.zeros((3, 3))
    assert fmi(fused, fused.copy(), zeros, 3, "none") == pytest.approx(0.5, abs=1e-12)
    assert fmi(fused, zeros, fused.copy(), 3, "none") == pytest.approx(0.0, abs=1e-12)
    # Where F's window is already 0 / 1 (an edge map), normalising changes only a constant window
    # (to ones), and a constant source window scores 1 against it as against the raw one (two
    # constant windows: 1 in fmi.m, see fmi_map): no order effect.
    f, spike = np.zeros((3, 3)), np.zeros((3, 3))
    spike[1, 1] = 1.0
    assert fmi(f, spike, f.copy(), 3, "none") == pytest.approx(0.5, abs=1e-12)
    assert fmi(f, f.copy(), spike, 3, "none") == pytest.approx(0.5, abs=1e-12)


def test_fmi_columns_of_the_dilran_preset_use_main_m_source_order(triple):
    # main.m: analysis_fmi(ct, mri, fused); the preset's A is the MRI, so B goes first
    f, a, b = triple
    dilran = {m.name: m for m in PRESETS["dilran"].metrics}
    assert dilran["FMI_edge"].func(f, a, b) == fmi(f, b, a, 3, "edge")
    assert dilran["FMI_pixel"].func(f, a, b) == fmi(f, b, a, 3, "none")
    # on a window where the order shows (see above): B = F first gives 0.5, A = F first 0
    fused, zeros = _one_pixel_above_flat(), np.zeros((3, 3))
    assert dilran["FMI_pixel"].func(fused, zeros, fused.copy()) == pytest.approx(0.5, abs=1e-12)
    assert dilran["FMI_pixel"].func(fused, fused.copy(), zeros) == pytest.approx(0.0, abs=1e-12)


# --- analysis_MI.m: Dwinnell's MutualInformation in MATLAB --------------------------------------


def test_dwinnell_joint_entropy_is_always_zero_in_matlab():
    rng = np.random.default_rng(4)
    records = rng.integers(0, 256, (30, 6)).astype(float)
    assert len(np.unique(records, axis=0)) == 30  # 30 distinct symbols: log2(30) bits in truth
    assert _dwinnell_joint_entropy(records) == 0.0  # but im2uint8(1..30) is all 255


def test_matlab_mi_of_images_is_the_entropy_of_the_fused_image():
    # F holds 0 and 255 in equal shares: H(F) = 1 bit, whatever the source is
    fused = np.array([[0, 255, 0, 255], [255, 0, 255, 0]], dtype=float)
    for source in (fused, 255 - fused, np.zeros((2, 4)), np.arange(8.0).reshape(2, 4)):
        assert mutual_information_dwinnell_matlab(source, fused) == 1.0
    rng = np.random.default_rng(5)
    a, f = rng.integers(0, 256, (32, 40)).astype(float), rng.integers(0, 60, (32, 40)).astype(float)
    assert mutual_information_dwinnell_matlab(a, f) == pytest.approx(entropy(f), rel=1e-15)
    assert mutual_information_dwinnell_matlab(a, f) != pytest.approx(entropy(f, 255) + entropy(a), rel=1e-3)


def test_matlab_mi_of_column_vectors_is_the_sum_of_the_entropies():
    # the other branch of MutualInformation (one predictor column): H(A) + H(F) - 0
    a = np.array([[0.0], [0.0], [10.0], [20.0]])  # H = 1.5 bits
    f = np.array([[5.0], [6.0], [5.0], [6.0]])  # H = 1 bit
    assert mutual_information_dwinnell_matlab(a, f) == pytest.approx(2.5, rel=1e-15)


def test_matlab_mi_in_the_dilran_preset_is_en_of_the_fused_image(triple):
    f, a, b = triple
    dilran = {m.name: m for m in PRESETS["dilran"].metrics}
    assert dilran["MI_matlab"].func(f, a, b) == pytest.approx(entropy(f), rel=1e-15)
    with pytest.raises(MetricInputError):
        mutual_information_dwinnell_matlab(a, b[:, :-1])


def test_dilran_preset_columns():
    assert PRESETS["dilran"].names() == ["PSNR", "SSIM", "MI", "MI_matlab", "FSIM", "FMI_edge", "FMI_pixel", "EN"]
