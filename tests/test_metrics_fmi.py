"""FMI (the FunFuseAn authors' fmi.m): the vectorised port against figures that fmi.m itself
gives under Octave, against a line-by-line loop transcription of fmi.m, hand-derived cases and
invariants. (Its speed is timed by benchmarks/bench_metrics.py, not asserted here.)"""

from __future__ import annotations

import numpy as np
import pytest

from funfusean_tf.evaluation import read_grey_as
from funfusean_tf.metrics import MetricInputError, fmi, fmi_map


def _window_score(src, fus, r):
    """fmi.m's body for one source window against one fused window, literally (loops and all).
    Returns (score, the fused window as fmi.m leaves it)."""
    side = 2 * r + 1
    l = side * side
    if np.all(src == fus):
        return 1.0, fus

    def normalise(s):
        hi, lo = s.max(), s.min()
        return np.ones((side, side)) if hi == lo else (s - lo) / (hi - lo)

    src, fus = normalise(src), normalise(fus)
    # MATLAB sum(sum(x)): column sums, then their sum, each added in order (Python's sum())
    a_pdf = src.flatten(order="F") / sum(sum(col) for col in src.T)
    f_pdf = fus.flatten(order="F") / sum(sum(col) for col in fus.T)
    a_cdf, f_cdf = np.zeros(l), np.zeros(l)
    a_cdf[0], f_cdf[0] = a_pdf[0], f_pdf[0]
    for i in range(1, l):
        a_cdf[i] = a_pdf[i] + a_cdf[i - 1]
        f_cdf[i] = f_pdf[i] + f_cdf[i - 1]
    # MATLAB mean = sum / n, the sum a running one (numpy's pairwise sum rounds differently)
    a_t, f_t = a_pdf - sum(a_pdf) / l, f_pdf - sum(f_pdf) / l
    c = 0.0 if sum(a_t * f_t) == 0 else sum(a_t * f_t) / np.sqrt(sum(a_t * a_t) * sum(f_t * f_t))
    e_a = e2_a = e_f = e2_f = 0.0
    for i in range(1, l + 1):
        e_a += i * a_pdf[i - 1]
        e2_a += i * i * a_pdf[i - 1]
        e_f += i * f_pdf[i - 1]
        e2_f += i * i * f_pdf[i - 1]
    a_sd, f_sd = np.sqrt(max(e2_a - e_a**2, 0.0)), np.sqrt(max(e2_f - e_f**2, 0.0))
    up = lambda x, y: 0.5 * (x + y - abs(x - y))  # noqa: E731
    lo = lambda x, y: 0.5 * (x + y - 1 + abs(x + y - 1))  # noqa: E731
    bound = up if c >= 0 else lo
    if (c >= 0 and (c == 0 or a_sd == 0 or f_sd == 0)) or (c < 0 and (a_sd == 0 or f_sd == 0)):
        weight = 0.0
    else:
        cov = sum(bound(f_cdf[i], a_cdf[j]) - f_cdf[i] * a_cdf[j] for i in range(l) for j in range(l))
        weight = c / (cov / (f_sd * a_sd))
    joint = 0.0
    for i in range(l):
        for j in range(l):
            v = bound(f_cdf[i], a_cdf[j])
            if i > 0:
                v -= bound(f_cdf[i - 1], a_cdf[j])
            if j > 0:
                v -= bound(f_cdf[i], a_cdf[j - 1])
            if i > 0 and j > 0:
                v += bound(f_cdf[i - 1], a_cdf[j - 1])
            p = weight * v + (1 - weight) * f_pdf[i] * a_pdf[j]
            if p != 0:
                joint += -p * np.log2(abs(p))
    ent = lambda q: -sum(x * np.log2(x) for x in q if x != 0)  # noqa: E731
    mi = ent(a_pdf) + ent(f_pdf) - joint
    return (0.0 if mi == 0 else 2 * mi / (ent(a_pdf) + ent(f_pdf))), fus


def _fmi_loop(fused, a, b, w=3):
    r = w // 2
    m, n = a.shape
    out = np.ones((m - 2 * r, n - 2 * r))
    for p in range(r, m - r):
        for q in range(r, n - r):
            win = (slice(p - r, p + r + 1), slice(q - r, q + r + 1))
            score_a, fus_seen = _window_score(a[win], fused[win], r)
            score_b, _ = _window_score(b[win], fus_seen, r)
            out[p - r, q - r] = (score_a + score_b) / 2
    return out


CASES = {
    "random integers": lambda rng: [rng.integers(0, 6, (7, 8)).astype(float) for _ in range(3)],
    "random floats": lambda rng: [rng.random((6, 7)) for _ in range(3)],
    "one pixel changed": lambda rng: (lambda a: [a + (np.arange(56).reshape(7, 8) == 27), a,
                                                 rng.integers(0, 9, (7, 8)).astype(float)])(
        rng.integers(0, 9, (7, 8)).astype(float)),
    "constant source": lambda rng: [rng.integers(0, 6, (7, 8)).astype(float), np.full((7, 8), 3.0),
                                    rng.integers(0, 6, (7, 8)).astype(float)],
    "source B equals fused": lambda rng: (lambda f: [f, rng.integers(0, 6, (7, 8)).astype(float), f.copy()])(
        rng.integers(0, 6, (7, 8)).astype(float)),
    "negatively correlated": lambda rng: (lambda a: [a.max() - a, a, rng.random((7, 8))])(rng.random((7, 8))),
    "sparse windows": lambda rng: [(rng.random((7, 8)) > 0.8).astype(float) * 200 for _ in range(3)],
    "constant patches": lambda rng: [np.kron(rng.integers(0, 4, (3, 3)), np.ones((3, 3))) * k for k in (20, 30, 50)],
}


# ---------------------------------------------------------------------------------------------
# Against fmi.m itself. Every expected value below was computed by the FunFuseAn authors'
# `Fusion Metrics/fmi.m` (M. Haghighat's Fast-FMI) run under GNU Octave 7.3.0 on exactly these
# inputs as double arrays: mean2(fmi(A, B, F)) (feature 'none', w = 3 unless stated:
# mean2(fmi(A, B, F, 'none', w))). None of them comes from this package.


def _texture(h, w, k):
    """A deterministic textured 0-255 image (arithmetic, no random generator, so that the inputs
    the oracle saw are rebuilt exactly by any numpy)."""
    i, j = np.mgrid[0:h, 0:w]
    return (((37 * k + 11) * i + (13 * k + 7) * j + (5 + k) * i * j * j) % 256).astype(float)


def _quadrants(k, n=12):
    """Constant and textured quadrants: constant k * 50 top left, textured top right, constant
    k * 90 + 13 bottom left, three grey levels bottom right."""
    x = np.zeros((n, n))
    h = n // 2
    x[:h, :h] = k * 50
    x[:h, h:] = _texture(h, n - h, k)
    x[h:, :h] = k * 90 + 13
    x[h:, h:] = _texture(n - h, n - h, k + 3) % 3
    return x


def _quadrant_triple():
    return _quadrants(0), _quadrants(1), _quadrants(2)


def _full(value, n=6):
    return np.full((n, n), float(value))


def _spike():
    x = _full(51, 3)
    x[2, 0] = 52
    return x


def _spike_partner():
    return np.array([[10.0, 200, 30], [40, 5, 60], [70, 80, 90]])


def _binary(k, n=9):
    x = _texture(n, n, k) % 2
    if k == 0:
        x[:4, :5] = 0  # no edges in this part of F
    return x


# name: (builder returning (fused, A, B), window, mean2 of fmi.m's map under Octave)
OCTAVE_SYNTHETIC = {
    # both sources constant, fused constant (different values): fmi.m scores 1 per source,
    # because its Pearson c of two uniform pdfs is 1 (round-off of mean(pdf)), not 0
    "both sources 0, fused constant 51": (lambda: (_full(51), _full(0), _full(0)), 3, 1.0),
    "sources constant 3 and 5, fused constant 9": (lambda: (_full(9), _full(3), _full(5)), 3, 1.0),
    "source A 0, B textured, fused constant 51": (lambda: (_full(51), _full(0), _texture(6, 6, 1)), 3, 0.5),
    "A textured, B 0, fused constant 51": (lambda: (_full(51), _texture(6, 6, 2), _full(0)), 3, 0.5),
    "both sources 0, fused textured": (lambda: (_texture(6, 6, 3), _full(0), _full(0)), 3, 0.0),
    "A constant 7, B and fused textured": (lambda: (_texture(6, 6, 4), _full(7), _texture(6, 6, 5)), 3, 0.029954078408),
    "fused constant, A and B textured": (lambda: (_full(40), _texture(6, 6, 6), _texture(6, 6, 7)), 3, 0.0),
    # the first branch turns the constant fused window into ones in place; B (ones) then
    # equals it and scores 1 by fmi.m's identical-window shortcut (scored, two uniform pdfs: 1 too)
    "A 0, B 1, fused constant 2": (lambda: (_full(2), _full(0), _full(1)), 3, 1.0),
    "fused constant 7, sources eye and 0": (lambda: (_full(7, 8), np.eye(8), _full(0, 8)), 3, 0.666666666667),
    "constant and textured quadrants": (_quadrant_triple, 3, 0.589762732969),
    "constant and textured quadrants, w = 5": (_quadrant_triple, 5, 0.504108007599),
    "both sources 0, fused constant 51, w = 5": (lambda: (_full(51, 7), _full(0, 7), _full(0, 7)), 5, 1.0),
    # source order: B equal to a fused window with one pixel above a flat rest. Second, B meets
    # the window as A's branch left it (normalised: a one-point pdf, sd 0), is scored, and a
    # one-point pdf scores 0; first, it is identical to F and scores 1
    "one-pixel fused window, B = F, A first": (lambda: (_spike(), _spike_partner(), _spike()), 3, 0.0),
    "one-pixel fused window, B = F, B first": (lambda: (_spike(), _spike(), _spike_partner()), 3, 0.5),
    # 0/1 maps (as edge features give) with an edge-free patch in F: the same in both orders
    "binary maps, A first": (lambda: (_binary(0), _binary(1), _binary(2)), 3, 0.382885284266),
    "binary maps, B first": (lambda: (_binary(0), _binary(2), _binary(1)), 3, 0.382885284266),
}


@pytest.mark.parametrize("case", list(OCTAVE_SYNTHETIC))
def test_fmi_matches_fmi_m_under_octave_on_constant_windows(case):
    build, window, expected = OCTAVE_SYNTHETIC[case]
    fused, a, b = build()
    assert fmi(fused, a, b, window=window) == pytest.approx(expected, rel=0, abs=1e-9)


REF = "reference/mdafuse_mr_pet"

# MdAFuse MR-PET reference triples: sources/mri_i.png and pet_i.png through MATLAB rgb2gray,
# fused/i.png as is, double 0-255; fmi.m called as fmi(MRI, PET, F) on the crop
# (1-based MATLAB rows, cols, inclusive); None = the whole 256 x 256 image.
OCTAVE_CROPS = [
    # the four figures of issue 11 (pair 0)
    (0, (1, 30), (1, 30), 0.8176020408),
    (0, (41, 70), (41, 70), 0.3280236376),
    (0, (61, 90), (61, 90), 0.3321985645),
    (0, (101, 140), (101, 140), 0.3393298885),
    # whole images (Octave: 13 and 14 minutes each)
    (0, None, None, 0.479481925939),
    (1, None, None, 0.571590214486),
    # 24 x 24 crops at random places (the first seven of fourteen tried; all fourteen agree)
    (5, (30, 53), (185, 208), 0.591916078477),
    (11, (199, 222), (33, 56), 0.947197317209),
    (14, (183, 206), (58, 81), 0.449747543972),
    (18, (154, 177), (231, 254), 0.818181818182),
    (23, (17, 40), (126, 149), 0.369294123480),
    (29, (7, 30), (113, 136), 0.602381315389),
    (41, (145, 168), (202, 225), 1.0),
]


@pytest.mark.shared_data
@pytest.mark.parametrize("pair, rows, cols, expected", OCTAVE_CROPS)
def test_fmi_matches_fmi_m_under_octave_on_mdafuse_crops(shared_data, pair, rows, cols, expected):
    root = shared_data / REF
    fused = read_grey_as(root / "fused" / f"{pair}.png", "matlab")
    mri = read_grey_as(root / "sources" / f"mri_{pair}.png", "matlab")
    pet = read_grey_as(root / "sources" / f"pet_{pair}.png", "matlab")
    crop = (slice(None), slice(None)) if rows is None else (slice(rows[0] - 1, rows[1]), slice(cols[0] - 1, cols[1]))
    assert fmi(fused[crop], mri[crop], pet[crop]) == pytest.approx(expected, rel=0, abs=1e-9)


@pytest.mark.parametrize("case", list(CASES))
def test_vectorised_fmi_matches_a_literal_transcription_of_fmi_m(case):
    rng = np.random.default_rng(7)
    fused, a, b = CASES[case](rng)
    expected = _fmi_loop(fused, a, b)
    got = fmi_map(fused, a, b)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_fmi_5x5_window_matches_the_transcription():
    rng = np.random.default_rng(3)
    fused, a, b = (rng.integers(0, 20, (8, 9)).astype(float) for _ in range(3))
    np.testing.assert_allclose(fmi_map(fused, a, b, window=5), _fmi_loop(fused, a, b, w=5), atol=1e-12)


def test_hand_cases_on_one_window():
    f = np.array([[1.0, 5, 2], [7, 3, 9], [4, 8, 6]])
    # identical windows score 1 (fmi.m's shortcut)
    assert fmi(f, f, f) == 1.0
    # a positive affine copy normalises to the same pdf: Pearson c = 1, the Frechet upper bound
    # has correlation 1 too, so phi = 1, the joint pdf is diag(p) and 2 I / (H + H) = 1
    assert fmi(f, 2 * f + 3, f) == pytest.approx(1.0, abs=1e-12)
    # a constant source window becomes a uniform pdf; against a non-constant fused window its
    # Pearson c is round-off (~1e-17), so the joint pdf is the product, I = 0 and the source's
    # score is 0; B = F scores 1
    assert fmi(f, np.full((3, 3), 4.0), f) == pytest.approx(0.5, abs=1e-12)
    # a window with a single non-zero pixel is a one-point pdf (sd 0): independence, score 0
    spike = np.zeros((3, 3))
    spike[1, 2] = 9.0
    assert fmi(f, spike, spike * 2) == pytest.approx(0.0, abs=1e-12)


def test_fmi_invariants_identity_symmetry_bounds():
    rng = np.random.default_rng(11)
    a = rng.random((20, 24)) * 255
    b = rng.random((20, 24)) * 255
    f = (a + b) / 2 + rng.normal(0, 5, a.shape)
    assert fmi(a, a, a) == 1.0
    assert fmi(f, a, b) == pytest.approx(fmi(f, b, a), abs=1e-12)
    values = fmi_map(f, a, b)
    assert np.all(values >= -1e-12) and np.all(values <= 1 + 1e-12)
    assert np.isfinite(values).all()


def test_fmi_constant_and_zero_images_are_defined():
    zeros = np.zeros((8, 8))
    assert fmi(zeros, zeros, zeros) == 1.0
    # two different constants: not identical, both normalise to ones, two uniform pdfs; fmi.m's
    # Pearson c of those is 1 (its mean(pdf) is an ulp off 1/9), the joint pdf the diagonal and
    # each window scores 1 (Octave: 1 on every window, as in OCTAVE_SYNTHETIC)
    np.testing.assert_allclose(fmi_map(np.full((8, 8), 7.0), zeros, zeros), 1.0, rtol=0, atol=1e-12)
    assert np.isfinite(fmi_map(np.full((8, 8), 7.0), zeros + np.eye(8), zeros)).all()


def test_fmi_rejects_bad_input():
    with pytest.raises(MetricInputError):
        fmi(np.zeros((8, 8)), np.zeros((8, 9)), np.zeros((8, 8)))
    with pytest.raises(MetricInputError):
        fmi(np.full((8, 8), np.nan), np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError):
        fmi(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)), window=4)
    with pytest.raises(NotImplementedError):
        fmi(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)), feature="wavelet")
    with pytest.raises(ValueError):
        fmi(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)), feature="canny")
